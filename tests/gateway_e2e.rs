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

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{can_run, have, run};

const EXE: &str = env!("CARGO_BIN_EXE_causeway");
const TUNNEL: &str = "e2e";
const WAN_A: &str = "192.0.2.1";
const WAN_B: &str = "198.51.100.7";
const HOST_B: &str = "10.2.0.10";

/// A network namespace, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn create(name: String) -> Self {
        // A namespace of the same name can only be left over from a killed run of this pid.
        let _ = run("ip", &["netns", "del", &name]);
        run("ip", &["netns", "add", &name]).unwrap_or_else(|e| panic!("{e}"));
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) {
        let mut v = vec!["-n", self.name.as_str()];
        v.extend_from_slice(args);
        run("ip", &v).unwrap_or_else(|e| panic!("{e}"));
    }

    fn exec(&self, prog: &str, args: &[&str]) -> Result<String, String> {
        let mut v = vec!["netns", "exec", self.name.as_str(), prog];
        v.extend_from_slice(args);
        run("ip", &v)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

/// A `causeway run` in a namespace; SIGTERM, then SIGKILL, on drop.
struct Daemon {
    child: Option<Child>,
    socket: PathBuf,
    log: PathBuf,
}

impl Daemon {
    fn start(ns: &Netns, config: &Path, socket: &Path, log: &Path) -> Self {
        let file = std::fs::File::create(log).expect("daemon log");
        let err = file.try_clone().expect("clone log fd");
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, EXE, "run", "-c"])
            .arg(config)
            // Debug level: not even debug logs may carry a PSK.
            .env("RUST_LOG", "debug")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .expect("start causeway run");
        Daemon {
            child: Some(child),
            socket: socket.to_path_buf(),
            log: log.to_path_buf(),
        }
    }

    /// The tunnel's entry of `causeway status --json`.
    fn tunnel(&self) -> Option<Value> {
        let sock = self.socket.to_str()?;
        let out = run(EXE, &["--socket", sock, "status", "--json"]).ok()?;
        let v: Value = serde_json::from_str(&out).ok()?;
        v.get("tunnels")?
            .as_array()?
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some(TUNNEL))
            .cloned()
    }

    fn drops(&self, reason: &str) -> u64 {
        self.tunnel()
            .and_then(|t| t.get("drops")?.get(reason)?.as_u64())
            .unwrap_or(0)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn log_tail(&self, n: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(n)..].join("\n")
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            // `ip netns exec` execs the program: the pid is causeway's own.
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Namespaces and files. Field order is drop order: namespaces, then files. Daemons are
/// kept in separate variables declared after the `Net`, so they are dropped first.
struct Net {
    host_a: Netns,
    host_b: Netns,
    gw_a: Netns,
    gw_b: Netns,
    dir: TempDir,
}

fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let until = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A random hex PSK (32 characters).
fn random_psk() -> String {
    let mut rnd = [0u8; 16];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").expect("urandom"),
        &mut rnd,
    )
    .expect("urandom");
    rnd.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_secret(path: &Path, text: &str) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("psk file");
}

/// Builds host-a — gw-a ══ gw-b — host-b for test `test`.
fn topology(test: &str) -> Net {
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("cw-{test}-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let dir = TempDir(dir);
    let host_a = Netns::create(format!("cw-{test}-{pid}-ha"));
    let host_b = Netns::create(format!("cw-{test}-{pid}-hb"));
    let gw_a = Netns::create(format!("cw-{test}-{pid}-a"));
    let gw_b = Netns::create(format!("cw-{test}-{pid}-b"));
    gw_a.ip(&[
        "link", "add", "wan", "type", "veth", "peer", "name", "wan", "netns", &gw_b.name,
    ]);
    for (gw, host) in [(&gw_a, &host_a), (&gw_b, &host_b)] {
        gw.ip(&[
            "link", "add", "lan", "type", "veth", "peer", "name", "eth0", "netns", &host.name,
        ]);
    }
    for (gw, wan, peer, lan, host, host_addr) in [
        (&gw_a, WAN_A, WAN_B, "10.1.0.1", &host_a, "10.1.0.10/24"),
        (&gw_b, WAN_B, WAN_A, "10.2.0.1", &host_b, "10.2.0.10/24"),
    ] {
        gw.ip(&["addr", "add", &format!("{wan}/24"), "dev", "wan"]);
        gw.ip(&["link", "set", "wan", "up"]);
        gw.ip(&["route", "add", &format!("{peer}/32"), "dev", "wan"]);
        gw.ip(&["addr", "add", &format!("{lan}/24"), "dev", "lan"]);
        gw.ip(&["link", "set", "lan", "up"]);
        for (k, v) in [
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv4.conf.all.rp_filter", "0"),
            ("net.ipv4.conf.default.rp_filter", "0"),
        ] {
            gw.exec("sysctl", &["-qw", &format!("{k}={v}")])
                .unwrap_or_else(|e| panic!("{e}"));
        }
        host.ip(&["addr", "add", host_addr, "dev", "eth0"]);
        host.ip(&["link", "set", "eth0", "up"]);
        host.ip(&["route", "add", "default", "via", lan]);
    }
    Net {
        host_a,
        host_b,
        gw_a,
        gw_b,
        dir,
    }
}

/// Config of gw-a (`a_side`, initiates) or gw-b (waits), reading the PSK from `psk_file`.
fn site_config(dir: &Path, a_side: bool, psk_file: &str, extra: &str) -> String {
    let (tag, wan, peer, local, remote, start) = if a_side {
        ("a", WAN_A, WAN_B, "10.1.0.0/24", "10.2.0.0/24", "start")
    } else {
        ("b", WAN_B, WAN_A, "10.2.0.0/24", "10.1.0.0/24", "none")
    };
    format!(
        r#"[daemon]
control_socket = "{dir}/{tag}.sock"
metrics = "127.0.0.1:9474"

[[tunnel]]
name = "{TUNNEL}"
local_addrs = "{wan}"
remote_addrs = "{peer}"
psk_file = "{dir}/{psk_file}"
local_ts = ["{local}"]
remote_ts = ["{remote}"]
mtu = 1400
start_action = "{start}"
{extra}
"#,
        dir = dir.display()
    )
}

/// Writes the configs and starts gw-b, then gw-a (the initiator). Returns (a, b).
fn start_pair(net: &Net, psk_a: &str, psk_b: &str, extra: &str) -> (Daemon, Daemon) {
    let d = net.dir.0.clone();
    write_secret(&d.join("a.psk"), psk_a);
    write_secret(&d.join("b.psk"), psk_b);
    let ca = d.join("a.toml");
    let cb = d.join("b.toml");
    std::fs::write(&ca, site_config(&d, true, "a.psk", extra)).expect("config a");
    std::fs::write(&cb, site_config(&d, false, "b.psk", extra)).expect("config b");
    let b = Daemon::start(&net.gw_b, &cb, &d.join("b.sock"), &d.join("b.log"));
    // gw-b must listen before gw-a's first IKE_SA_INIT.
    let _ = wait_for(Duration::from_secs(10), || b.tunnel().map(|_| ()));
    let a = Daemon::start(&net.gw_a, &ca, &d.join("a.sock"), &d.join("a.log"));
    (a, b)
}

fn state(t: &Value) -> &str {
    t.get("state").and_then(Value::as_str).unwrap_or("")
}

fn ping(ns: &Netns, to: &str, count: u32) -> Result<String, String> {
    let c = count.to_string();
    ns.exec("ping", &["-c", &c, "-i", "0.2", "-W", "2", "-q", to])
}

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
        let n = |t: &Value| {
            t.get("child_sas")
                .and_then(Value::as_array)
                .map_or(0, Vec::len)
        };
        (state(&ta) == "established" && n(&ta) == 1 && n(&tb) == 1).then_some(())
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

const CHARON: &str = "/usr/sbin/charon-systemd";
const SWANCTL: &str = "/usr/sbin/swanctl";

/// A child process: SIGTERM, then SIGKILL after 5 s, on drop.
struct Proc(Option<Child>);

impl Drop for Proc {
    fn drop(&mut self) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// strongSwan (charon with kernel-libipsec) in gw-b; stopped on drop.
struct Swan {
    dir: PathBuf,
    _charon: Proc,
}

impl Swan {
    fn start(ns: &Netns, dir: &Path, psk: &str) -> Self {
        let d = dir.join("swan");
        std::fs::create_dir_all(&d).expect("swan dir");
        let dd = d.display();
        // kernel-libipsec must load before kernel-netlink (no kernel ESP needed).
        let strongswan = format!(
            r#"charon {{
  load = random nonce openssl aes sha1 sha2 hmac gcm gmp kdf pem pkcs1 x509 pubkey kernel-libipsec kernel-netlink socket-default vici
  install_routes = yes
  plugins {{
    vici {{ socket = unix://{dd}/charon.vici }}
  }}
  filelog {{
    t {{ path = {dd}/charon.log
        default = 1
        ike = 2 }}
  }}
}}
"#
        );
        let swanctl = format!(
            r#"connections {{
  {TUNNEL} {{
    version = 2
    local_addrs = {WAN_B}
    remote_addrs = {WAN_A}
    proposals = aes256-sha256-modp2048s256
    encap = yes
    local {{
      auth = psk
      id = {WAN_B}
    }}
    remote {{
      auth = psk
      id = {WAN_A}
    }}
    children {{
      {TUNNEL} {{
        local_ts = 10.2.0.0/24
        remote_ts = 10.1.0.0/24
        esp_proposals = aes256gcm16
        start_action = none
        close_action = none
      }}
    }}
  }}
}}
secrets {{
  ike-e2e {{
    id-a = {WAN_A}
    id-b = {WAN_B}
    secret = "{psk}"
  }}
}}
"#
        );
        std::fs::write(d.join("strongswan.conf"), strongswan).expect("strongswan.conf");
        write_secret(&d.join("swanctl.conf"), &swanctl);
        let log = std::fs::File::create(d.join("charon.stdout")).expect("charon log");
        let log2 = log.try_clone().expect("clone log fd");
        let charon = Command::new("ip")
            .args(["netns", "exec", &ns.name, CHARON])
            .env("STRONGSWAN_CONF", d.join("strongswan.conf"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .expect("start charon");
        let swan = Swan {
            dir: d.clone(),
            _charon: Proc(Some(charon)),
        };
        let started = wait_for(Duration::from_secs(10), || {
            d.join("charon.vici").exists().then_some(())
        });
        assert!(started.is_some(), "charon did not start: {}", swan.log());
        let file = d.join("swanctl.conf").to_string_lossy().into_owned();
        let out = swan
            .swanctl(&["--load-all", "--file", &file])
            .unwrap_or_else(|e| panic!("swanctl --load-all: {e}"));
        assert!(
            out.contains(&format!("loaded connection '{TUNNEL}'")),
            "swanctl --load-all: {out}"
        );
        swan
    }

    fn swanctl(&self, args: &[&str]) -> Result<String, String> {
        let uri = format!("unix://{}", self.dir.join("charon.vici").display());
        let out = Command::new(SWANCTL)
            .args(args)
            .args(["--uri", &uri])
            .env("STRONGSWAN_CONF", self.dir.join("strongswan.conf"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if out.status.success() {
            Ok(text)
        } else {
            Err(text)
        }
    }

    fn log(&self) -> String {
        let t = std::fs::read_to_string(self.dir.join("charon.log")).unwrap_or_default();
        let lines: Vec<&str> = t.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
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
    let mut cfg = site_config(&d, true, "a.psk", &extra);
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
        let n = t
            .get("child_sas")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        (state(&t) == "established" && n >= 1).then_some(t)
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
    let child_alg = t
        .get("child_sas")
        .and_then(|c| c.get(0)?.get("algorithms")?.as_str().map(str::to_string));
    assert_eq!(
        child_alg.as_deref(),
        Some("aes256gcm16"),
        "ESP algorithms: {t}"
    );
    // libipsec installs its routes shortly after the SA: allow a few attempts.
    let pinged = wait_for(Duration::from_secs(10), || {
        ping(&net.host_a, HOST_B, 3).ok()
    });
    assert!(
        pinged.is_some(),
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
