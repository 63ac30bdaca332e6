//! End-to-end gateway tests through the real daemon (issue 5, Tests): two `causeway run`
//! gateways in network namespaces.
//!
//! ```text
//!  host-a 10.1.0.10 ── gw-a 192.0.2.1 ══ WAN ══ 198.51.100.7 gw-b ── 10.2.0.10 host-b
//! ```
//!
//! * `wrong_psk_is_reported`: different PSKs; the initiator reports the authentication
//!   failure in `status --json` and its log, and no log carries either PSK.
//! * `tampered_and_replayed_esp_is_dropped_and_counted`: an ESP-in-UDP datagram captured on
//!   gw-a's WAN is re-sent (replay) and re-sent with a flipped ciphertext byte (auth); the
//!   receiver counts both by reason and the tunnel keeps working.
//!
//! Needs root, `ip`, `ping`, `python3` and /dev/net/tun; skips with a message otherwise.
//! Every namespace and process is removed by Drop guards, also when an assertion fails.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

mod common;
use common::net::{
    child_count, first_child, ping, ping_soon, random_psk, site_config, start_pair, state,
    topology, wait_for, write_secret, Daemon, Proc, HOST_B, TUNNEL,
};
use common::swan::{Swan, CHARON, SWANCTL};
use common::{can_run, have};

#[test]
fn wrong_psk_is_reported() {
    if !can_run(&["ip"]) {
        return;
    }
    let net = topology("wpsk");
    let psk_a = random_psk();
    let psk_b = random_psk();
    let (a, b) = start_pair(&net, &psk_a, &psk_b, "");
    let is_auth_error = |s: &str| {
        let s = s.to_ascii_lowercase();
        s.contains("auth") && s.contains("fail")
    };
    let reported = wait_for(Duration::from_secs(20), || {
        let t = a.tunnel()?;
        let err = t.get("last_error")?.as_str()?.to_string();
        is_auth_error(&err).then_some((t, err))
    });
    let Some((t, err)) = reported else {
        panic!(
            "gw-a never reported an authentication failure: {:?}\n--- gw-a:\n{}\n--- gw-b:\n{}",
            a.tunnel(),
            a.log_tail(30),
            b.log_tail(30)
        );
    };
    assert_ne!(state(&t), "established", "tunnel up with wrong PSK: {t}");
    assert!(
        t.get("child_sas")
            .and_then(Value::as_array)
            .is_none_or(|v| v.is_empty()),
        "Child SA with wrong PSK: {t}"
    );
    eprintln!("gw-a last_error: {err}");
    let log_a = a.log_text();
    // A line at warning level or above, not only debug chatter.
    let lines: Vec<&str> = log_a
        .lines()
        .filter(|l| is_auth_error(l) && (l.contains(" WARN ") || l.contains(" ERROR ")))
        .collect();
    assert!(
        !lines.is_empty(),
        "no WARN/ERROR line about the authentication failure in gw-a's log:\n{}",
        a.log_tail(30)
    );
    eprintln!("gw-a log ({} such lines): {}", lines.len(), lines[0]);
    for (who, d) in [("gw-a", &a), ("gw-b", &b)] {
        let log = d.log_text();
        assert!(!log.is_empty(), "{who} log empty");
        for psk in [&psk_a, &psk_b] {
            assert!(!log.contains(psk.as_str()), "{who} log contains a PSK");
        }
    }
    drop(a);
    drop(b);
    drop(net);
}

/// Runs in gw-a: captures one outgoing ESP-in-UDP datagram (non-ESP marker != 0) on `wan`,
/// then re-sends it `argv[1]` times unchanged (replay) and `argv[2]` times with one
/// ciphertext byte flipped and a fresh sequence number (so only the ICV can reject it),
/// from the same source address and port, through a raw IP socket.
const INJECT_PY: &str = r#"
import socket, struct, sys, time
replays, tampered = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind(("wan", 0))
s.settimeout(10)
while True:
    f, addr = s.recvfrom(65535)
    if addr[2] != socket.PACKET_OUTGOING or f[12:14] != b"\x08\x00":
        continue
    ip = f[14:]
    ihl = (ip[0] & 15) * 4
    if ip[9] != 17:
        continue
    udp = ip[ihl:]
    sport, dport = struct.unpack("!HH", udp[:4])
    esp = udp[8:]
    if dport != 4500 or len(esp) < 48 or esp[:4] == b"\0\0\0\0":
        continue
    break
src, dst = ip[12:16], ip[16:20]
seq = struct.unpack("!I", esp[4:8])[0]
time.sleep(0.2)
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
def send(payload):
    ulen = 8 + len(payload)
    u = struct.pack("!HHHH", sport, dport, ulen, 0) + payload
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, 0, 0x4000, 64, 17, 0, src, dst)
    r.sendto(h + u, (socket.inet_ntoa(dst), 0))
for _ in range(replays):
    send(bytes(esp))
bad = bytearray(esp)
bad[4:8] = struct.pack("!I", (seq + 100000) & 0xffffffff)
bad[24] ^= 0x01
for _ in range(tampered):
    send(bytes(bad))
print("spi=%s seq=%d len=%d sport=%d" % (esp[:4].hex(), seq, len(esp), sport))
"#;

#[test]
fn tampered_and_replayed_esp_is_dropped_and_counted() {
    if !can_run(&["ip", "ping", "python3"]) {
        return;
    }
    const REPLAYS: u64 = 3;
    const TAMPERED: u64 = 2;
    let net = topology("tamper");
    let psk = random_psk();
    let (a, b) = start_pair(&net, &psk, &psk, "encap = \"udp\"");
    let up = wait_for(Duration::from_secs(20), || {
        let (ta, tb) = (a.tunnel()?, b.tunnel()?);
        (state(&ta) == "established" && child_count(&ta) == 1 && child_count(&tb) == 1)
            .then_some(())
    });
    assert!(
        up.is_some(),
        "no Child SA within 20 s\n--- gw-a:\n{}\n--- gw-b:\n{}",
        a.log_tail(30),
        b.log_tail(30)
    );
    ping(&net.host_a, HOST_B, 3).unwrap_or_else(|e| panic!("ping before injection: {e}"));
    let (replay0, auth0) = (b.drops("replay"), b.drops("auth_failed"));
    // Traffic for the capture: pings from host-a while the injector listens on gw-a's WAN.
    let mut pinger = Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.host_a.name,
            "ping",
            "-c",
            "25",
            "-i",
            "0.2",
            "-q",
        ])
        .arg(HOST_B)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn ping");
    let injected = net.gw_a.exec(
        "python3",
        &["-c", INJECT_PY, &REPLAYS.to_string(), &TAMPERED.to_string()],
    );
    let _ = pinger.kill();
    let _ = pinger.wait();
    let injected = injected.unwrap_or_else(|e| panic!("injector: {e}"));
    eprintln!("injected: {}", injected.trim());
    let counted = wait_for(Duration::from_secs(5), || {
        let (r, au) = (b.drops("replay"), b.drops("auth_failed"));
        (r >= replay0 + REPLAYS && au >= auth0 + TAMPERED).then_some((r, au))
    });
    let Some((replay1, auth1)) = counted else {
        panic!(
            "drops not counted: replay {replay0} -> {}, auth_failed {auth0} -> {} ({:?})",
            b.drops("replay"),
            b.drops("auth_failed"),
            b.tunnel().and_then(|t| t.get("drops").cloned())
        );
    };
    eprintln!("gw-b drops: replay {replay0} -> {replay1}, auth_failed {auth0} -> {auth1}");
    assert_eq!(replay1 - replay0, REPLAYS, "replay drops");
    assert_eq!(auth1 - auth0, TAMPERED, "auth drops");
    // The Prometheus endpoint (inside gw-b's namespace) shows the same counters.
    let metrics = net
        .gw_b
        .exec(
            "python3",
            &[
                "-c",
                "import urllib.request as u; print(u.urlopen('http://127.0.0.1:9474/metrics', timeout=5).read().decode())",
            ],
        )
        .unwrap_or_else(|e| panic!("metrics scrape: {e}"));
    for (reason, n) in [("replay", replay1), ("auth_failed", auth1)] {
        let line =
            format!("causeway_tunnel_drops_total{{tunnel=\"{TUNNEL}\",reason=\"{reason}\"}} {n}");
        assert!(
            metrics.lines().any(|l| l == line),
            "metrics lack `{line}`:\n{metrics}"
        );
    }
    let tb = b.tunnel().expect("gw-b status");
    assert_eq!(
        state(&tb),
        "established",
        "gw-b tunnel after injection: {tb}"
    );
    ping(&net.host_a, HOST_B, 3).unwrap_or_else(|e| panic!("ping after injection: {e}"));
    drop(a);
    drop(b);
    drop(net);
}

/// One role of the strongSwan interop test: Causeway in gw-a, strongSwan in gw-b.
fn swan_role(causeway_initiates: bool) {
    let net = topology(if causeway_initiates {
        "swan-c"
    } else {
        "swan-s"
    });
    let d = net.dir.0.clone();
    let psk = random_psk();
    write_secret(&d.join("a.psk"), &psk);
    let swan = Swan::start(&net.gw_b, &d, &psk);
    let extra = format!(
        "encap = \"udp\"\nike_proposals = [\"aes256-sha256-modp2048s256\"]\nesp_proposals = [\"aes256gcm16\"]\n{}",
        if causeway_initiates {
            ""
        } else {
            "start_action = \"none\""
        }
    );
    let mut cfg = site_config(&net, true, "a.psk", &extra);
    if !causeway_initiates {
        cfg = cfg.replace("start_action = \"start\"\n", "");
    }
    let ca = d.join("a.toml");
    std::fs::write(&ca, cfg).expect("config a");
    let a = Daemon::start(&net.gw_a, &ca, &d.join("a.sock"), &d.join("a.log"));
    let _ = wait_for(Duration::from_secs(10), || a.tunnel().map(|_| ()));
    if !causeway_initiates {
        let out = swan.swanctl(&["--initiate", "--child", TUNNEL, "--timeout", "20"]);
        assert!(
            out.is_ok(),
            "swanctl --initiate: {out:?}\n--- charon:\n{}\n--- gw-a:\n{}",
            swan.log(),
            a.log_tail(30)
        );
    }
    let up = wait_for(Duration::from_secs(20), || {
        let t = a.tunnel()?;
        (state(&t) == "established" && child_count(&t) >= 1).then_some(t)
    });
    let Some(t) = up else {
        panic!(
            "no Child SA with strongSwan within 20 s\n--- gw-a:\n{}\n--- charon:\n{}",
            a.log_tail(30),
            swan.log()
        );
    };
    let ike = t.get("ike_sa").cloned().unwrap_or(Value::Null);
    assert_eq!(
        ike.get("initiator").and_then(Value::as_bool),
        Some(causeway_initiates),
        "IKE SA role: {ike}"
    );
    // The daemon names every transform (`aes256-sha256-prfsha256-modp2048s256`).
    let ike_alg = ike.get("algorithms").and_then(Value::as_str).unwrap_or("");
    assert!(
        ["aes256-", "sha256", "modp2048s256"]
            .iter()
            .all(|p| ike_alg.contains(p)),
        "IKE algorithms: {ike}"
    );
    assert_eq!(
        first_child(&t, "algorithms").as_deref(),
        Some("aes256gcm16"),
        "ESP algorithms: {t}"
    );
    assert!(
        ping_soon(&net.host_a, HOST_B),
        "host-a cannot ping host-b through Causeway ↔ strongSwan\n--- gw-a:\n{}\n--- charon:\n{}",
        a.log_tail(20),
        swan.log()
    );
    if have("iperf3") {
        let server = Proc(Some(
            Command::new("ip")
                .args(["netns", "exec", &net.host_b.name, "iperf3", "-s", "-1"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("iperf3 server"),
        ));
        let out = wait_for(Duration::from_secs(5), || {
            net.host_a
                .exec(
                    "timeout",
                    &[
                        "40",
                        "iperf3",
                        "-c",
                        HOST_B,
                        "-t",
                        "10",
                        "--connect-timeout",
                        "2000",
                    ],
                )
                .ok()
        });
        drop(server);
        let out = out.unwrap_or_else(|| {
            panic!(
                "iperf3 TCP transfer failed\n--- gw-a:\n{}\n--- charon:\n{}",
                a.log_tail(20),
                swan.log()
            )
        });
        let receiver = out
            .lines()
            .find(|l| l.contains("receiver"))
            .unwrap_or_default()
            .to_string();
        assert!(
            !receiver.is_empty(),
            "iperf3 without a receiver line: {out}"
        );
        eprintln!("iperf3 (causeway initiates: {causeway_initiates}): {receiver}");
    } else {
        eprintln!("skipping the iperf3 part: `iperf3` missing");
    }
    drop(a);
    drop(swan);
    drop(net);
}

#[test]
fn strongswan_seed_policy_both_roles() {
    if !can_run(&["ip", "ping", "timeout"]) {
        return;
    }
    if !Path::new(CHARON).exists() || !Path::new(SWANCTL).exists() {
        eprintln!("skipping: strongSwan (charon-systemd, swanctl) missing");
        return;
    }
    swan_role(true);
    swan_role(false);
}
