//! `causeway lab --active-active`: an Azure active-active VPN gateway.
//!
//! ```text
//!                                        ╔═ 198.51.100.7 gw-b1 10.2.0.1 ═╗  (instance 0, BGP 10.2.255.4)
//!  host-a 10.1.0.10 ── gw-a 192.0.2.1 ═══╣                               ╠══ br0 host-b 10.2.0.10-25
//!                      AS 65010          ╚═ 198.51.100.8 gw-b2 10.2.0.2 ═╝  (instance 1, BGP 10.2.255.5)
//! ```
//!
//! gw-a runs one causeway with two `[[tunnel]]`s (`az1` → gw-b1 on TUN `cw-az1`, `az2` →
//! gw-b2 on `cw-az2`, both from the one public address 192.0.2.1, one PSK) and two
//! `[[bgp.neighbor]]`s (multihop from 10.1.255.1 to each instance's BGP peer IP, as with
//! Azure). gw-b1 and gw-b2 are two causeways with AS 65515 and Azure's proposals, each
//! announcing the site-B prefixes; both sit on site B's LAN (a bridge in host-b, whose
//! default route spreads over both, as Azure's SDN does). Each instance also has a
//! fallback route to site A through the other instance (metric 100), as Azure's
//! instances learn each other's routes over iBGP: when one instance's tunnel is down,
//! return traffic reaching it takes the other.
//!
//! gw-a's tunnels both carry `10.2.0.0/16`, plus their own instance's BGP peer IP as a
//! /32 selector: the /32 routes each BGP session into its own tunnel; the /16 both carry
//! is one kernel route, multipath over the TUNs of the tunnels that are up.
//!
//! The steps prove: both tunnels up on their own TUN devices, both sessions Established,
//! the site-B prefixes learned from both neighbors and installed (ECMP over both TUNs when
//! the daemon installs multipath routes), traffic through both tunnels at the same time
//! (ESP counters of both move; an iperf3 stream through each), and failover: `causeway
//! terminate` of either tunnel takes its routes (BGP and the shared /16) out of the kernel
//! at once (asserted: within [`ROUTES_OFF_MAX`] of the command, measured; a 250 ms poll
//! took 176–219 ms before the daemon followed Child SA events) while a running
//! ping carries on through the other tunnel, and `causeway initiate` brings it back; the
//! same when an instance drops its tunnel (maintenance), after which gw-a reconnects by
//! itself. Then the CLI, metrics, clean shutdown and the logs (no PSK), as in the lab.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{
    check_psk_absent, cli, cmd, run_check, spi_pairs, wait_for, write_psk, Daemon, Netns, Reap,
    Report, ANNOUNCE_A, ANNOUNCE_B, BGP_A, HOST_A, PROTO, WAN_A,
};
use crate::api::{NeighborStatus, RouteStatus, Snapshot, TunnelStatus};

/// One instance of the active-active gateway and gw-a's tunnel to it.
struct Instance {
    /// Namespace suffix, config and log tag.
    tag: &'static str,
    /// gw-a's tunnel to this instance.
    tunnel: &'static str,
    /// Its TUN device in gw-a.
    iface: &'static str,
    /// gw-a's WAN link to it.
    link: &'static str,
    /// The instance's public address.
    wan: &'static str,
    /// The instance's BGP peer IP (in the GatewaySubnet).
    bgp: &'static str,
    /// The instance's address on site B's LAN.
    lan: &'static str,
    /// Its port on host-b's bridge.
    port: &'static str,
}

const INSTANCES: [Instance; 2] = [
    Instance {
        tag: "b1",
        tunnel: "az1",
        iface: "cw-az1",
        link: "wan1",
        wan: "198.51.100.7",
        bgp: "10.2.255.4",
        lan: "10.2.0.1",
        port: "p1",
    },
    Instance {
        tag: "b2",
        tunnel: "az2",
        iface: "cw-az2",
        link: "wan2",
        wan: "198.51.100.8",
        bgp: "10.2.255.5",
        lan: "10.2.0.2",
        port: "p2",
    },
];

/// The selector both of gw-a's tunnels carry: one multipath route over both TUNs.
const SITE_B: &str = "10.2.0.0/16";
/// Longest time from `causeway terminate` (the command) until the terminated tunnel's
/// device is out of every route. Event-driven: ~10–30 ms here; the earlier 250 ms poll
/// took 176–219 ms (debug build, loaded 2-core machine).
const ROUTES_OFF_MAX: Duration = Duration::from_millis(150);

/// The tunnel (and TUN `cw-onprem`) of each instance towards gw-a.
const B_TUNNEL: &str = "onprem";
const B_IFACE: &str = "cw-onprem";
/// host-b's addresses 10.2.0.10 .. 10.2.0.(10 + N - 1): different flows for ECMP.
const HOST_B_ADDRS: u8 = 16;

fn host_b_addrs() -> Vec<String> {
    (0..HOST_B_ADDRS)
        .map(|i| format!("10.2.0.{}", 10 + i))
        .collect()
}

/// The namespaces, in teardown order (hosts first).
struct AaLab {
    host_a: Netns,
    host_b: Netns,
    gw_a: Netns,
    gw_b: [Netns; 2],
}

fn build_topology(pid: u32) -> Result<(AaLab, Vec<String>), String> {
    let gw_a = Netns::create(format!("cwlab-{pid}-a"))?;
    let gw_b = [
        Netns::create(format!("cwlab-{pid}-b1"))?,
        Netns::create(format!("cwlab-{pid}-b2"))?,
    ];
    let host_a = Netns::create(format!("cwlab-{pid}-ha"))?;
    let host_b = Netns::create(format!("cwlab-{pid}-hb"))?;
    // Site B's LAN: a bridge in host-b with one port per instance.
    host_b.ip(&["link", "add", "br0", "type", "bridge"])?;
    for (i, (b, inst)) in gw_b.iter().zip(INSTANCES.iter()).enumerate() {
        let other = &INSTANCES[1 - i];
        // WAN: gw-a's one public address on a link per instance.
        gw_a.veth(inst.link, b, "wan")?;
        gw_a.ip(&["addr", "add", &format!("{WAN_A}/32"), "dev", inst.link])?;
        gw_a.ip(&["link", "set", inst.link, "up"])?;
        gw_a.ip(&[
            "route",
            "add",
            &format!("{}/32", inst.wan),
            "dev",
            inst.link,
            "src",
            WAN_A,
        ])?;
        b.ip(&["addr", "add", &format!("{}/24", inst.wan), "dev", "wan"])?;
        b.ip(&["link", "set", "wan", "up"])?;
        b.ip(&["route", "add", &format!("{WAN_A}/32"), "dev", "wan"])?;
        // LAN.
        b.veth("lan", &host_b, inst.port)?;
        b.ip(&["addr", "add", &format!("{}/24", inst.lan), "dev", "lan"])?;
        b.ip(&["link", "set", "lan", "up"])?;
        host_b.ip(&["link", "set", inst.port, "master", "br0"])?;
        host_b.ip(&["link", "set", inst.port, "up"])?;
        b.sysctl("net.ipv4.ip_forward", "1")?;
        b.sysctl("net.ipv4.conf.all.rp_filter", "0")?;
        b.sysctl("net.ipv4.conf.default.rp_filter", "0")?;
        // Forwarding to the other instance on the same LAN is normal here: no redirects
        // (host-b would cache them and stop spreading its traffic).
        b.sysctl("net.ipv4.conf.all.send_redirects", "0")?;
        b.sysctl("net.ipv4.conf.lan.send_redirects", "0")?;
        // The other instance as fallback towards site A (Azure's instances exchange their
        // routes over iBGP): loses against the BGP route while the own tunnel is up.
        for p in ANNOUNCE_A {
            b.ip(&["route", "add", p, "via", other.lan, "metric", "100"])?;
        }
    }
    host_b.ip(&["link", "set", "br0", "up"])?;
    for a in host_b_addrs() {
        host_b.ip(&["addr", "add", &format!("{a}/24"), "dev", "br0"])?;
    }
    // Azure's SDN sends VNet traffic to either instance.
    host_b.ip(&[
        "route",
        "add",
        "default",
        "nexthop",
        "via",
        INSTANCES[0].lan,
        "nexthop",
        "via",
        INSTANCES[1].lan,
    ])?;
    gw_a.veth("lan", &host_a, "eth0")?;
    gw_a.ip(&["addr", "add", "10.1.0.1/24", "dev", "lan"])?;
    gw_a.ip(&["link", "set", "lan", "up"])?;
    gw_a.sysctl("net.ipv4.ip_forward", "1")?;
    gw_a.sysctl("net.ipv4.conf.all.rp_filter", "0")?;
    gw_a.sysctl("net.ipv4.conf.default.rp_filter", "0")?;
    host_a.ip(&["addr", "add", &format!("{HOST_A}/24"), "dev", "eth0"])?;
    host_a.ip(&["link", "set", "eth0", "up"])?;
    host_a.ip(&["route", "add", "default", "via", "10.1.0.1"])?;
    let detail = vec![
        format!(
            "{} ({HOST_A}) — {} (WAN {WAN_A} on wan1 and wan2)",
            host_a.name, gw_a.name
        ),
        format!(
            "  ══ {} (instance 0, WAN {}, LAN {}) ══ {} (br0: 10.2.0.10-{})",
            gw_b[0].name,
            INSTANCES[0].wan,
            INSTANCES[0].lan,
            host_b.name,
            9 + HOST_B_ADDRS
        ),
        format!(
            "  ══ {} (instance 1, WAN {}, LAN {}) ══ {} (default route over both instances)",
            gw_b[1].name, INSTANCES[1].wan, INSTANCES[1].lan, host_b.name
        ),
    ];
    Ok((
        AaLab {
            host_a,
            host_b,
            gw_a,
            gw_b,
        },
        detail,
    ))
}

fn list(v: &[&str]) -> String {
    v.iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// gw-a's config: two tunnels, two neighbors.
fn config_a(dir: &Path, encap: &str) -> String {
    let d = dir.display();
    let mut s = format!(
        r#"# causeway lab --active-active: site a (on-premises, two tunnels to the two instances)
[daemon]
control_socket = "{d}/a.sock"
metrics = "127.0.0.1:9474"
"#
    );
    for inst in &INSTANCES {
        s.push_str(&format!(
            r#"
[[tunnel]]
name = "{tunnel}"
profile = "azure"
local_addrs = "{WAN_A}"
remote_addrs = "{wan}"
psk_file = "{d}/lab.psk"
local_ts = ["10.1.0.0/16"]
# The site, plus this instance's BGP peer IP: its /32 route keeps the session in this tunnel.
remote_ts = ["10.2.0.0/16", "{bgp}/32"]
encap = "{encap}"
mtu = 1400
start_action = "start"
"#,
            tunnel = inst.tunnel,
            wan = inst.wan,
            bgp = inst.bgp,
        ));
    }
    s.push_str(&format!(
        r#"
[bgp]
asn = 65010
router_id = "{BGP_A}"
proto = {PROTO}
"#
    ));
    for inst in &INSTANCES {
        s.push_str(&format!(
            r#"
[[bgp.neighbor]]
address = "{bgp}"
tunnel = "{tunnel}"
local_address = "{BGP_A}"
announce = [{announce}]
"#,
            bgp = inst.bgp,
            tunnel = inst.tunnel,
            announce = list(&ANNOUNCE_A),
        ));
    }
    s
}

/// An instance's config: Azure's proposals, AS 65515, waits for gw-a.
fn config_b(dir: &Path, encap: &str, i: usize) -> String {
    let inst = &INSTANCES[i];
    format!(
        r#"# causeway lab --active-active: instance {i} of the "Azure" gateway
[daemon]
control_socket = "{d}/{tag}.sock"
metrics = "127.0.0.1:9474"

[[tunnel]]
name = "{B_TUNNEL}"
local_addrs = "{wan}"
remote_addrs = "{WAN_A}"
psk_file = "{d}/lab.psk"
local_ts = ["10.2.0.0/16"]
remote_ts = ["10.1.0.0/16"]
encap = "{encap}"
mtu = 1400
start_action = "none"
ike_proposals = ["aes256-sha1-modp1024", "aes256-sha256-modp1024", "aes128-sha1-modp1024", "aes256-sha256-modp2048"]
esp_proposals = ["aes256gcm16"]
ike_lifetime = "28800s"
child_lifetime = "27000s"
dpd_delay = "45s"
mss_clamp = 1350

[bgp]
asn = 65515
router_id = "{bgp}"
proto = {PROTO}

[[bgp.neighbor]]
address = "{BGP_A}"
tunnel = "{B_TUNNEL}"
local_address = "{bgp}"
remote_asn = 65010
multihop = 8
hold_time = "180s"
announce = [{announce}]
"#,
        d = dir.display(),
        tag = inst.tag,
        wan = inst.wan,
        bgp = inst.bgp,
        announce = list(&ANNOUNCE_B),
    )
}

/// Writes the PSK and the three configs: (gw-a, [gw-b1, gw-b2]).
fn write_configs(dir: &Path, encap: &str) -> Result<(PathBuf, [PathBuf; 2]), String> {
    write_psk(dir)?;
    let pa = dir.join("site-a.toml");
    std::fs::write(&pa, config_a(dir, encap)).map_err(|e| e.to_string())?;
    let mut pb = [PathBuf::new(), PathBuf::new()];
    for (i, p) in pb.iter_mut().enumerate() {
        *p = dir.join(format!("site-{}-azure.toml", INSTANCES[i].tag));
        std::fs::write(&*p, config_b(dir, encap, i)).map_err(|e| e.to_string())?;
    }
    Ok((pa, pb))
}

fn tunnel<'a>(s: &'a Snapshot, name: &str) -> Option<&'a TunnelStatus> {
    s.tunnels.iter().find(|t| t.name == name)
}

fn neighbor<'a>(s: &'a Snapshot, addr: &str) -> Option<&'a NeighborStatus> {
    s.bgp.iter().find(|n| n.address == addr)
}

fn established(n: Option<&NeighborStatus>) -> bool {
    n.is_some_and(|n| n.state == "Established" && n.prefixes_accepted > 0)
}

/// Devices of the kernel route for `prefix` with Causeway's protocol id (one per ECMP path).
fn fib_devs(ns: &Netns, prefix: &str) -> Vec<String> {
    let proto = PROTO.to_string();
    let Ok(text) = ns.ip(&["-j", "route", "show", "proto", &proto]) else {
        return vec![];
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
        return vec![];
    };
    let want = prefix.split('/').next().unwrap_or(prefix);
    let len = prefix.split('/').nth(1).unwrap_or("32");
    let mut devs = vec![];
    for r in v.as_array().map(Vec::as_slice).unwrap_or_default() {
        let dst = r["dst"].as_str().unwrap_or("");
        if dst != prefix && !(len == "32" && dst == want) {
            continue;
        }
        if let Some(d) = r["dev"].as_str() {
            devs.push(d.to_string());
        }
        for h in r["nexthops"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            if let Some(d) = h["dev"].as_str() {
                devs.push(d.to_string());
            }
        }
    }
    devs.sort();
    devs
}

/// The TUN device gw-a forwards host-a's packets to `dst` through.
fn path_of(lab: &AaLab, dst: &str) -> Option<String> {
    let out = lab
        .gw_a
        .ip(&["route", "get", dst, "from", HOST_A, "iif", "lan"])
        .ok()?;
    let mut w = out.split_whitespace();
    w.find(|x| *x == "dev")?;
    w.next().map(str::to_string)
}

/// `causeway sa --json` of a daemon: its tunnels.
fn sa_json(exe: &Path, d: &Daemon) -> Result<Vec<TunnelStatus>, String> {
    let text = cli(exe, d, &["sa", "--json"])?;
    serde_json::from_str(&text).map_err(|e| format!("`causeway sa --json`: {e}"))
}

fn packets_out(tunnels: &[TunnelStatus], name: &str) -> u64 {
    tunnels
        .iter()
        .find(|t| t.name == name)
        .map_or(0, |t| t.counters.packets_out)
}

fn packets_in(tunnels: &[TunnelStatus], name: &str) -> u64 {
    tunnels
        .iter()
        .find(|t| t.name == name)
        .map_or(0, |t| t.counters.packets_in)
}

/// A ping running in the background; killed on drop.
struct BgPing(Option<Child>);

impl BgPing {
    fn start(ns: &Netns, to: &str, count: u32, interval: &str) -> Result<Self, String> {
        let c = count.to_string();
        let child = Command::new("ip")
            .args([
                "netns", "exec", &ns.name, "ping", "-c", &c, "-i", interval, "-W", "1", "-q", to,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("ping {to}: {e}"))?;
        Ok(BgPing(Some(child)))
    }

    /// (transmitted, received) once it finished.
    fn finish(mut self) -> Result<(u64, u64), String> {
        let child = self.0.take().ok_or("ping not running")?;
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.contains("packets transmitted"))
            .ok_or_else(|| format!("no ping summary in: {text}"))?;
        let num = |word: &str| -> Option<u64> {
            let mut prev = None;
            for w in line.split([',', ' ']).filter(|w| !w.is_empty()) {
                if w == word {
                    return prev;
                }
                prev = w.parse().ok();
            }
            None
        };
        Ok((
            num("packets").ok_or("no transmitted count")?,
            num("received").ok_or("no received count")?,
        ))
    }
}

impl Drop for BgPing {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// All steps of the active-active lab; returns how long the teardown took.
pub(super) fn run_steps(
    report: &mut Report,
    pid: u32,
    exe: &Path,
    dir: &Path,
    encap: &str,
) -> Duration {
    let Some(lab) = report.step(
        "build namespaces: gw-a, two gateway instances, a shared site-B LAN",
        || build_topology(pid),
    ) else {
        return Duration::ZERO;
    };
    let _ = steps(report, &lab, exe, dir, encap);
    let t0 = Instant::now();
    drop(lab);
    t0.elapsed()
}

/// Which of host-b's addresses gw-a sends through each tunnel: one per tunnel, found
/// with `ip route get` (the kernel's ECMP hash). Without ECMP, a tunnel that carries none
/// of them gets its instance's BGP peer IP (routed by its /32 selector).
fn targets(lab: &AaLab) -> [String; 2] {
    let mut out = [String::new(), String::new()];
    for a in host_b_addrs() {
        if let Some(dev) = path_of(lab, &a) {
            for (i, inst) in INSTANCES.iter().enumerate() {
                if dev == inst.iface && out[i].is_empty() {
                    out[i] = a.clone();
                }
            }
        }
    }
    for (i, inst) in INSTANCES.iter().enumerate() {
        if out[i].is_empty() {
            out[i] = inst.bgp.to_string();
        }
    }
    out
}

fn steps(report: &mut Report, lab: &AaLab, exe: &Path, dir: &Path, encap: &str) -> Option<()> {
    report.step(
        "underlay: gw-a reaches both instances across the WAN, host-b both on the LAN",
        || {
            let mut detail = vec![];
            for inst in &INSTANCES {
                let s = super::ping(&lab.gw_a, inst.wan, 2)?;
                detail.push(format!("{} via {}: {s}", inst.wan, inst.link));
                let s = super::ping(&lab.host_b, inst.lan, 1)?;
                detail.push(format!(
                    "host-b -> gw-{} {} on the shared LAN: {s}",
                    inst.tag, inst.lan
                ));
            }
            Ok(((), detail))
        },
    )?;
    report.step(
        "underlay: no route between the LANs without the tunnels",
        || match super::ping(&lab.host_a, "10.2.0.10", 1) {
            Ok(s) => Err(format!("host-a reached host-b without a tunnel: {s}")),
            Err(_) => Ok((
                (),
                vec!["host-a cannot reach host-b yet (as expected)".into()],
            )),
        },
    )?;
    let (cfg_a, cfg_b) = report.step("write configs and the PSK file (0600)", || {
        let (a, b) = write_configs(dir, encap)?;
        Ok((
            (a, b),
            vec![format!(
                "in {}: site-a.toml (2 tunnels, 2 neighbors), site-b1-azure.toml, site-b2-azure.toml",
                dir.display()
            )],
        ))
    })?;
    report.step("causeway check on the three configs", || {
        let mut detail = run_check(exe, &cfg_a)?;
        for c in &cfg_b {
            detail.extend(run_check(exe, c)?);
        }
        Ok(((), detail))
    })?;
    let (mut db, mut da) = report.step(
        "start causeway in gw-b1, gw-b2 (the two instances) and gw-a",
        || {
            let t0 = Instant::now();
            let db = [
                Daemon::start(&lab.gw_b[0], exe, &cfg_b[0], dir, INSTANCES[0].tag)?,
                Daemon::start(&lab.gw_b[1], exe, &cfg_b[1], dir, INSTANCES[1].tag)?,
            ];
            let mut da = Daemon::start(&lab.gw_a, exe, &cfg_a, dir, "a")?;
            let ok = wait_for(Duration::from_secs(15), || {
                (da.status().is_ok() && db.iter().all(|d| d.status().is_ok())).then_some(())
            });
            if ok.is_none() {
                let mut e = String::from("control sockets did not answer");
                if let Some(st) = da.exited() {
                    e.push_str(&format!("; gw-a exited ({st}): {}", da.log_tail(5)));
                }
                for (d, inst) in db.iter().zip(INSTANCES.iter()) {
                    e.push_str(&format!("; gw-{}: {}", inst.tag, d.log_tail(3)));
                }
                return Err(e);
            }
            Ok((
                (db, da),
                vec![format!(
                    "all three control sockets answer after {:.1}s",
                    t0.elapsed().as_secs_f64()
                )],
            ))
        },
    )?;

    let ike_ok = report
        .step(
            "IKE: both tunnels established, each on its own TUN, SPIs match per instance",
            || prove_ike(lab, &da, &db),
        )
        .is_some();
    let bgp_ok = ike_ok
        && report
            .step(
                "BGP: both sessions Established (multihop, one per tunnel)",
                || prove_bgp(&da, &db),
            )
            .is_some();
    let mut ecmp = false;
    let routes_ok = bgp_ok
        && report
            .step(
                "routes: site-B prefixes learned from both neighbors, in the kernel over both TUNs",
                || {
                    let (e, detail) = prove_routes(lab, exe, &da)?;
                    ecmp = e;
                    Ok(((), detail))
                },
            )
            .is_some();
    if routes_ok {
        report.step(
            "traffic: host-a pings through both tunnels at once, ESP counters of both move",
            || prove_both(lab, exe, &da, &db, ecmp),
        );
        if cmd("sh", &["-c", "command -v iperf3"]).is_ok() {
            report.step(
                "throughput: two iperf3 TCP streams at once, one through each tunnel",
                || prove_throughput(lab, exe, &da),
            );
        } else {
            println!("- throughput: not measured (iperf3 is not installed)");
        }
        for victim in 0..2 {
            report.step(
                &format!(
                    "failover: terminate {} -> its routes leave the FIB, ping carries on via {}; initiate restores",
                    INSTANCES[victim].tunnel,
                    INSTANCES[1 - victim].tunnel
                ),
                || prove_failover(lab, exe, &da, victim, ecmp, None),
            );
        }
        // Azure's side of it: an instance drops its tunnel (as in a maintenance), gw-a
        // fails over and reconnects by itself.
        report.step(
            "instance maintenance: gw-b1 terminates its tunnel, gw-a fails over to az2 and reconnects az1 by itself",
            || prove_failover(lab, exe, &da, 0, ecmp, Some(&db[0])),
        );
    }
    report.step(
        "CLI: causeway status / sa / bgp show both tunnels and both neighbors",
        || prove_cli(exe, &da),
    );
    report.step(
        "metrics: Prometheus endpoint reports both tunnels and both sessions up",
        || prove_metrics(&lab.gw_a),
    );
    report.step(
        "shutdown: SIGTERM to all three, exit 0, routes and TUNs removed",
        || {
            let mut detail = vec![stop_clean(
                &mut da,
                &lab.gw_a,
                "gw-a",
                &["cw-az1", "cw-az2"],
            )?];
            for ((d, ns), inst) in db.iter_mut().zip(lab.gw_b.iter()).zip(INSTANCES.iter()) {
                detail.push(stop_clean(d, ns, &format!("gw-{}", inst.tag), &[B_IFACE])?);
            }
            Ok(((), detail))
        },
    );
    report.step(
        "secrets: the PSK appears in no causeway log (debug level)",
        || {
            let logs: Vec<PathBuf> = std::iter::once(da.log.clone())
                .chain(db.iter().map(|d| d.log.clone()))
                .collect();
            check_psk_absent(dir, &logs).map(|d| ((), d))
        },
    );
    Some(())
}

fn prove_ike(lab: &AaLab, da: &Daemon, db: &[Daemon; 2]) -> Result<((), Vec<String>), String> {
    let matched = |a: &Snapshot| -> bool {
        INSTANCES.iter().zip(db.iter()).all(|(inst, d)| {
            let Some(ta) = tunnel(a, inst.tunnel) else {
                return false;
            };
            let Some(c) = ta.child_sas.first() else {
                return false;
            };
            let theirs = d
                .status()
                .ok()
                .and_then(|s| tunnel(&s, B_TUNNEL).map(spi_pairs))
                .unwrap_or_default();
            ta.state == "established"
                && theirs
                    .iter()
                    .any(|(i, o)| *i == c.spi_out && *o == c.spi_in)
        })
    };
    let got = wait_for(Duration::from_secs(30), || {
        let a = da.status().ok()?;
        matched(&a).then_some(a)
    });
    let Some(a) = got else {
        let st = da
            .status()
            .map(|s| {
                s.tunnels
                    .iter()
                    .map(|t| {
                        format!(
                            "{} {} SAs {:?}{}",
                            t.name,
                            t.state,
                            spi_pairs(t),
                            t.last_error
                                .as_deref()
                                .map(|e| format!(" ({e})"))
                                .unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_else(|e| e);
        return Err(format!(
            "both tunnels not up with matching SAs within 30 s: {st}; gw-a log: {}",
            da.log_tail(3)
        ));
    };
    let mut detail = vec![format!(
        "both up within {:.1}s of gw-a's daemon start",
        da.started.elapsed().as_secs_f64()
    )];
    let links = lab.gw_a.ip(&["-br", "link", "show"])?;
    for (inst, d) in INSTANCES.iter().zip(db.iter()) {
        let t = tunnel(&a, inst.tunnel).ok_or("no tunnel")?;
        let c = t.child_sas.first().ok_or("no Child SA")?;
        if t.interface != inst.iface || t.remote_addr != inst.wan {
            return Err(format!(
                "tunnel {}: interface {} remote {} (want {} and {})",
                t.name, t.interface, t.remote_addr, inst.iface, inst.wan
            ));
        }
        if !links.lines().any(|l| l.starts_with(inst.iface)) {
            return Err(format!("gw-a has no {} device: {links}", inst.iface));
        }
        let b_ike = d
            .status()
            .ok()
            .and_then(|s| tunnel(&s, B_TUNNEL).and_then(|t| t.ike_sa.clone()));
        let ike = t.ike_sa.as_ref().ok_or("no IKE SA")?;
        if b_ike.as_ref().map(|b| (&b.spi_i, &b.spi_r)) != Some((&ike.spi_i, &ike.spi_r)) {
            return Err(format!(
                "{}: gw-{} has another IKE SA ({b_ike:?})",
                inst.tunnel, inst.tag
            ));
        }
        detail.push(format!(
            "{} dev {} {} -> {} (gw-{}): IKE {} spi {}_i {}_r; Child SA {} {} out {} / in {} (matches gw-{}); TS {} === {}",
            t.name,
            t.interface,
            t.local_addr,
            t.remote_addr,
            inst.tag,
            ike.algorithms,
            ike.spi_i,
            ike.spi_r,
            c.algorithms,
            c.encap,
            c.spi_out,
            c.spi_in,
            inst.tag,
            c.local_ts.join(","),
            c.remote_ts.join(",")
        ));
    }
    Ok(((), detail))
}

fn prove_bgp(da: &Daemon, db: &[Daemon; 2]) -> Result<((), Vec<String>), String> {
    let got = wait_for(Duration::from_secs(40), || {
        let a = da.status().ok()?;
        let bs: Vec<Snapshot> = db.iter().filter_map(|d| d.status().ok()).collect();
        let ok = INSTANCES.iter().all(|i| established(neighbor(&a, i.bgp)))
            && bs.len() == 2
            && bs.iter().all(|b| established(neighbor(b, BGP_A)));
        ok.then_some((a, bs))
    });
    let Some((a, bs)) = got else {
        let st = da
            .status()
            .map(|s| {
                s.bgp
                    .iter()
                    .map(|n| {
                        format!(
                            "{} {}{}",
                            n.address,
                            n.state,
                            n.last_error
                                .as_deref()
                                .map(|e| format!(" ({e})"))
                                .unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_else(|e| e);
        return Err(format!(
            "not both Established with routes within 40 s: gw-a neighbors {st}; gw-a log: {}",
            da.log_tail(3)
        ));
    };
    let mut detail = vec![format!(
        "both Established within {:.1}s of gw-a's daemon start",
        da.started.elapsed().as_secs_f64()
    )];
    for n in &a.bgp {
        detail.push(super::neighbor_line(&format!("gw-a via {}", n.tunnel), n));
    }
    for (b, inst) in bs.iter().zip(INSTANCES.iter()) {
        if let Some(n) = neighbor(b, BGP_A) {
            detail.push(super::neighbor_line(
                &format!("gw-{} (AS 65515)", inst.tag),
                n,
            ));
        }
    }
    Ok(((), detail))
}

/// Returns whether the kernel routes are ECMP over both TUNs.
fn prove_routes(lab: &AaLab, exe: &Path, da: &Daemon) -> Result<(bool, Vec<String>), String> {
    let mut detail = vec![];
    // Learned from both neighbors: `causeway bgp --json`.
    let nbs: Vec<NeighborStatus> = serde_json::from_str(&cli(exe, da, &["bgp", "--json"])?)
        .map_err(|e| format!("`causeway bgp --json`: {e}"))?;
    for inst in &INSTANCES {
        let n = nbs
            .iter()
            .find(|n| n.address == inst.bgp)
            .ok_or_else(|| format!("no neighbor {} in `causeway bgp --json`", inst.bgp))?;
        if n.prefixes_accepted != ANNOUNCE_B.len() as u64 {
            return Err(format!(
                "neighbor {} accepted {} prefixes, want {}",
                n.address,
                n.prefixes_accepted,
                ANNOUNCE_B.len()
            ));
        }
    }
    detail.push(format!(
        "`causeway bgp --json`: {} and {} each accepted {} prefixes",
        INSTANCES[0].bgp,
        INSTANCES[1].bgp,
        ANNOUNCE_B.len()
    ));
    // `causeway routes --json`: the selected routes.
    let text = cli(exe, da, &["routes", "--json"])?;
    let routes: Vec<RouteStatus> =
        serde_json::from_str(&text).map_err(|e| format!("`causeway routes --json`: {e}"))?;
    let raw: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap_or_default();
    for p in ANNOUNCE_B {
        let Some((r, v)) = routes
            .iter()
            .zip(raw.iter())
            .find(|(r, _)| r.source == "bgp" && r.prefix == p)
        else {
            return Err(format!("`causeway routes --json` lacks {p}:\n{text}"));
        };
        if !r.installed {
            return Err(format!("{p} is not installed: {text}"));
        }
        // Every ECMP next hop, one per tunnel.
        let mut hops: Vec<&str> = r.next_hops.iter().map(|h| h.interface.as_str()).collect();
        hops.sort();
        if hops != ["cw-az1", "cw-az2"] || r.next_hops.iter().any(|h| h.address.is_none()) {
            return Err(format!(
                "{p}: next_hops {:?}, want both tunnels with their BGP next hops",
                r.next_hops
            ));
        }
        let extra = v
            .get("next_hops")
            .map(|h| format!(", next_hops {h}"))
            .unwrap_or_default();
        detail.push(format!(
            "`causeway routes --json`: {} bgp via {} ({}) next hop {} as_path {:?}, installed{extra}",
            r.prefix,
            r.tunnel,
            r.interface,
            r.next_hop.as_deref().unwrap_or("-"),
            r.as_path
        ));
    }
    // The kernel.
    let want: Vec<String> = INSTANCES.iter().map(|i| i.iface.to_string()).collect();
    let got = wait_for(Duration::from_secs(10), || {
        let devs: Vec<Vec<String>> = ANNOUNCE_B.iter().map(|p| fib_devs(&lab.gw_a, p)).collect();
        devs.iter().all(|d| *d == want).then_some(())
    });
    let ecmp = got.is_some();
    for p in ANNOUNCE_B {
        let devs = fib_devs(&lab.gw_a, p);
        if devs.is_empty() {
            return Err(format!("gw-a's kernel has no proto {PROTO} route for {p}"));
        }
        detail.push(format!(
            "gw-a kernel: {p} proto {PROTO} via {}",
            devs.join(" + ")
        ));
    }
    // The /16 both tunnels carry: ONE route, over both TUNs, and the status says so.
    let want_site: Vec<String> = INSTANCES.iter().map(|i| i.iface.to_string()).collect();
    if wait_for(Duration::from_secs(5), || {
        (fib_devs(&lab.gw_a, SITE_B) == want_site).then_some(())
    })
    .is_none()
    {
        return Err(format!(
            "{SITE_B} is not multipath over both TUNs: {:?}",
            fib_devs(&lab.gw_a, SITE_B)
        ));
    }
    let statics: Vec<&RouteStatus> = routes
        .iter()
        .filter(|r| r.source == "static" && r.prefix == SITE_B)
        .collect();
    let devs: Vec<&str> = statics
        .first()
        .map(|r| r.next_hops.iter().map(|h| h.interface.as_str()).collect())
        .unwrap_or_default();
    if statics.len() != 1 || !statics[0].installed || devs != ["cw-az1", "cw-az2"] {
        return Err(format!(
            "`causeway routes --json` for {SITE_B}: {statics:?}"
        ));
    }
    detail.push(format!(
        "{SITE_B} (both tunnels' remote_ts): one kernel route via {}; `causeway routes --json`: one static route, next_hops {}",
        want_site.join(" + "),
        devs.join(" + ")
    ));
    // The selector routes: the BGP peer /32s, one per tunnel.
    let proto = PROTO.to_string();
    for l in lab.gw_a.ip(&["route", "show", "proto", &proto])?.lines() {
        if !l.starts_with(' ')
            && !l.starts_with('\t')
            && !ANNOUNCE_B.iter().chain([&SITE_B]).any(|p| l.starts_with(p))
        {
            detail.push(format!("gw-a kernel: {}", l.trim()));
        }
    }
    if !ecmp {
        detail.push(
            "NOTE: the kernel routes are single-path (no ECMP from the daemon, or unequal paths): failover is tested, load sharing is not"
                .into(),
        );
    }
    // The peer BGP addresses stay each in their own tunnel.
    for inst in &INSTANCES {
        let dev = path_of(lab, inst.bgp).unwrap_or_default();
        if dev != inst.iface {
            return Err(format!(
                "{} (BGP peer of {}) is routed via {dev}, not {}",
                inst.bgp, inst.tunnel, inst.iface
            ));
        }
    }
    // Both instances learned site A.
    for (ns, inst) in lab.gw_b.iter().zip(INSTANCES.iter()) {
        let ok = wait_for(Duration::from_secs(10), || {
            ANNOUNCE_A
                .iter()
                .all(|p| fib_devs(ns, p) == [B_IFACE.to_string()])
                .then_some(())
        });
        if ok.is_none() {
            return Err(format!(
                "gw-{} did not install {}",
                inst.tag,
                ANNOUNCE_A.join(", ")
            ));
        }
    }
    detail.push(format!(
        "gw-b1 and gw-b2 each installed {} via {B_IFACE}",
        ANNOUNCE_A.join(", ")
    ));
    Ok((ecmp, detail))
}

fn prove_both(
    lab: &AaLab,
    exe: &Path,
    da: &Daemon,
    db: &[Daemon; 2],
    ecmp: bool,
) -> Result<((), Vec<String>), String> {
    let dst = targets(lab);
    let mut detail = vec![];
    for (i, inst) in INSTANCES.iter().enumerate() {
        detail.push(format!(
            "gw-a: route get {} from {HOST_A} -> dev {}{}",
            dst[i],
            path_of(lab, &dst[i]).unwrap_or_default(),
            if dst[i] == inst.bgp {
                " (the instance's BGP peer IP: no host-b address hashes to this tunnel)"
            } else {
                ""
            }
        ));
    }
    if ecmp && dst.iter().zip(INSTANCES.iter()).any(|(d, i)| d == i.bgp) {
        return Err(format!(
            "ECMP routes, but none of host-b's {HOST_B_ADDRS} addresses hashes to one of the tunnels: {}",
            detail.join("; ")
        ));
    }
    let b_before: Vec<(u64, u64)> = db
        .iter()
        .map(|d| {
            d.status()
                .ok()
                .and_then(|s| {
                    tunnel(&s, B_TUNNEL).map(|t| (t.counters.packets_in, t.counters.packets_out))
                })
                .unwrap_or_default()
        })
        .collect();
    let before = sa_json(exe, da)?;
    let n = 20u64;
    let pings = [
        BgPing::start(&lab.host_a, &dst[0], n as u32, "0.05")?,
        BgPing::start(&lab.host_a, &dst[1], n as u32, "0.05")?,
    ];
    let mut results = vec![];
    for p in pings {
        results.push(p.finish()?);
    }
    let after = sa_json(exe, da)?;
    for (i, (tx, rx)) in results.iter().enumerate() {
        detail.push(format!(
            "ping {HOST_A} -> {} (at the same time as the other): {tx} sent, {rx} received",
            dst[i]
        ));
        if rx < tx || *tx < n {
            return Err(format!(
                "ping to {} lost packets: {}",
                dst[i],
                detail.join("; ")
            ));
        }
    }
    let mut in_total = 0;
    for (i, inst) in INSTANCES.iter().enumerate() {
        let out = packets_out(&after, inst.tunnel)
            - packets_out(&before, inst.tunnel).min(packets_out(&after, inst.tunnel));
        let inn = packets_in(&after, inst.tunnel).saturating_sub(packets_in(&before, inst.tunnel));
        in_total += inn;
        let (bi, bo) = db[i]
            .status()
            .ok()
            .and_then(|s| {
                tunnel(&s, B_TUNNEL).map(|t| (t.counters.packets_in, t.counters.packets_out))
            })
            .unwrap_or_default();
        let (b_in, b_out) = (
            bi.saturating_sub(b_before[i].0),
            bo.saturating_sub(b_before[i].1),
        );
        detail.push(format!(
            "`causeway sa --json` {} ({}): sealed +{out}, opened +{inn}; gw-{} opened +{b_in}, sealed +{b_out}",
            inst.tunnel, inst.iface, inst.tag
        ));
        if out < n || b_in < n {
            return Err(format!(
                "tunnel {} did not carry the ping: {}",
                inst.tunnel,
                detail.join("; ")
            ));
        }
    }
    if in_total < 2 * n {
        return Err(format!(
            "only {in_total} replies came back through the tunnels: {}",
            detail.join("; ")
        ));
    }
    detail.push(format!(
        "replies: {in_total} packets back over the two tunnels (host-b's default route spreads them over both instances)"
    ));
    Ok(((), detail))
}

/// Runs `prog args` in a namespace in the background with stdout piped; killed on drop.
fn spawn_in(ns: &Netns, prog: &str, args: &[&str]) -> Result<Reap, String> {
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.name, prog])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{prog}: {e}"))?;
    Ok(Reap(Some(child)))
}

fn prove_throughput(lab: &AaLab, exe: &Path, da: &Daemon) -> Result<((), Vec<String>), String> {
    let dst = targets(lab);
    let ports = ["5201", "5202"];
    // A server per address; an instance's BGP peer IP (no ECMP) lives in that instance.
    let mut servers = vec![];
    for (i, (d, port)) in dst.iter().zip(ports).enumerate() {
        let ns = if *d == INSTANCES[i].bgp {
            &lab.gw_b[i]
        } else {
            &lab.host_b
        };
        servers.push(spawn_in(ns, "iperf3", &["-s", "-1", "-B", d, "-p", port])?);
    }
    std::thread::sleep(Duration::from_millis(300));
    let before = sa_json(exe, da)?;
    let mut clients = vec![];
    for (d, port) in dst.iter().zip(ports) {
        clients.push(spawn_in(
            &lab.host_a,
            "iperf3",
            &["-c", d, "-p", port, "-t", "3", "-J"],
        )?);
    }
    let mut rates = vec![];
    for (i, mut c) in clients.into_iter().enumerate() {
        let child = c.0.take().ok_or("iperf3 client not running")?;
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("iperf3 to {} (JSON): {e}", dst[i]))?;
        let bps = v["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .ok_or_else(|| format!("iperf3 to {}: {}", dst[i], v["error"]))?;
        rates.push(bps);
    }
    let after = sa_json(exe, da)?;
    let mut detail = vec![];
    for (i, inst) in INSTANCES.iter().enumerate() {
        let bytes = |t: &[TunnelStatus]| {
            t.iter()
                .find(|t| t.name == inst.tunnel)
                .map_or(0, |t| t.counters.bytes_out)
        };
        let sealed = bytes(&after).saturating_sub(bytes(&before));
        detail.push(format!(
            "{HOST_A} -> {} through {}: {:.0} Mbit/s; {} sealed {:.1} MiB",
            dst[i],
            path_of(lab, &dst[i]).unwrap_or_default(),
            rates[i] / 1e6,
            inst.tunnel,
            sealed as f64 / 1048576.0
        ));
        if rates[i] <= 0.0 || sealed < 1 << 20 {
            return Err(format!(
                "no load through {}: {}",
                inst.tunnel,
                detail.join("; ")
            ));
        }
    }
    detail.push(format!(
        "together {:.0} Mbit/s over 3 s ({} build, 2 cores shared by all three gateways)",
        rates.iter().sum::<f64>() / 1e6,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    ));
    Ok(((), detail))
}

fn prove_failover(
    lab: &AaLab,
    exe: &Path,
    da: &Daemon,
    victim: usize,
    ecmp: bool,
    from_instance: Option<&Daemon>,
) -> Result<((), Vec<String>), String> {
    let v = &INSTANCES[victim];
    let o = &INSTANCES[1 - victim];
    // An address whose traffic runs through the victim, if any does.
    let target = host_b_addrs()
        .into_iter()
        .find(|a| path_of(lab, a).as_deref() == Some(v.iface))
        .unwrap_or_else(|| "10.2.0.10".into());
    let mut detail = vec![format!(
        "ping {HOST_A} -> {target} (via {}) every 50 ms during the failover",
        path_of(lab, &target).unwrap_or_default()
    )];
    let before = sa_json(exe, da)?;
    let up_before = da
        .status()
        .ok()
        .and_then(|s| neighbor(&s, o.bgp).and_then(|n| n.uptime_secs))
        .unwrap_or(0);
    let ping = BgPing::start(&lab.host_a, &target, 80, "0.05")?;
    std::thread::sleep(Duration::from_millis(1000));
    let t0 = Instant::now();
    match from_instance {
        None => detail.push(format!(
            "gw-a: causeway terminate {}: {}",
            v.tunnel,
            cli(exe, da, &["terminate", v.tunnel])?
        )),
        Some(d) => detail.push(format!(
            "gw-{}: causeway terminate {B_TUNNEL}: {}",
            v.tag,
            cli(exe, d, &["terminate", B_TUNNEL])?
        )),
    }
    // Its routes leave the kernel at once: the BGP routes and the shared selector.
    let until = Instant::now() + Duration::from_secs(5);
    let fib_gone = loop {
        if ANNOUNCE_B
            .iter()
            .chain([&SITE_B])
            .all(|p| !fib_devs(&lab.gw_a, p).iter().any(|d| d == v.iface))
        {
            break Some(t0.elapsed());
        }
        if Instant::now() >= until {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let Some(fib_gone) = fib_gone else {
        return Err(format!(
            "{} still carries routes 5 s after terminate: {}",
            v.iface,
            ANNOUNCE_B
                .iter()
                .map(|p| format!("{p} via {}", fib_devs(&lab.gw_a, p).join("+")))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    // The state right after the failover (gw-a reconnects after a dropped tunnel by
    // itself within seconds: check before that).
    let s = da.status()?;
    let vt = tunnel(&s, v.tunnel).ok_or("no tunnel")?;
    let ot = tunnel(&s, o.tunnel).ok_or("no tunnel")?;
    if !vt.child_sas.is_empty() || ot.state != "established" {
        return Err(format!(
            "after terminate: {} has {} Child SAs, {} is {}",
            v.tunnel,
            vt.child_sas.len(),
            o.tunnel,
            ot.state
        ));
    }
    let vn = neighbor(&s, v.bgp)
        .map(|n| n.state.clone())
        .unwrap_or_default();
    let on = neighbor(&s, o.bgp).cloned().unwrap_or_default();
    if vn == "Established" || on.state != "Established" {
        return Err(format!(
            "after terminate: neighbor {} is {vn}, {} is {}",
            v.bgp, o.bgp, on.state
        ));
    }
    if on.uptime_secs.unwrap_or(0) < up_before {
        return Err(format!("the session to {} restarted", o.bgp));
    }
    let fib_now: Vec<String> = ANNOUNCE_B
        .iter()
        .map(|p| format!("{p} via {}", fib_devs(&lab.gw_a, p).join(" + ")))
        .collect();
    if ANNOUNCE_B
        .iter()
        .chain([&SITE_B])
        .any(|p| fib_devs(&lab.gw_a, p) != [o.iface.to_string()])
    {
        return Err(format!(
            "after terminate the kernel has: {}; {SITE_B} via {}",
            fib_now.join(", "),
            fib_devs(&lab.gw_a, SITE_B).join("+")
        ));
    }
    // The status says what the kernel has.
    let site = s
        .routes
        .iter()
        .find(|r| r.source == "static" && r.prefix == SITE_B)
        .map(|r| {
            r.next_hops
                .iter()
                .map(|h| h.interface.clone())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    if site != [o.iface.to_string()] {
        return Err(format!(
            "`causeway status --json`: {SITE_B} next_hops {site:?}, the kernel has {}",
            o.iface
        ));
    }
    if fib_gone > ROUTES_OFF_MAX {
        return Err(format!(
            "routes left {} only {:.0} ms after terminate (want < {} ms)",
            v.iface,
            fib_gone.as_secs_f64() * 1000.0,
            ROUTES_OFF_MAX.as_millis()
        ));
    }
    detail.push(format!(
        "{}'s SAs deleted, neighbor {} {vn}; routes off {} after {:.0} ms (< {} ms): {}, {SITE_B} via {}",
        v.tunnel,
        v.bgp,
        v.iface,
        fib_gone.as_secs_f64() * 1000.0,
        ROUTES_OFF_MAX.as_millis(),
        fib_now.join(", "),
        o.iface
    ));
    let dev = path_of(lab, &target).unwrap_or_default();
    if dev != o.iface {
        return Err(format!("{target} is routed via {dev}, not {}", o.iface));
    }
    detail.push(format!(
        "{} and its session stayed up (neighbor {} uptime {}s); {target} now via {dev}",
        o.tunnel,
        o.bgp,
        on.uptime_secs.unwrap_or(0)
    ));
    let (tx, rx) = ping.finish()?;
    let after = sa_json(exe, da)?;
    let carried = packets_out(&after, o.tunnel).saturating_sub(packets_out(&before, o.tunnel));
    detail.push(format!(
        "running ping: {tx} sent, {rx} received ({} lost) during the failover; {} sealed +{carried}",
        tx.saturating_sub(rx),
        o.tunnel
    ));
    // A blip is allowed (the SAs go before the routes, on both sides); at most 2 s of it.
    if tx.saturating_sub(rx) > 40 || rx == 0 {
        return Err(format!("traffic did not carry on: {}", detail.join("; ")));
    }
    if from_instance.is_none() {
        let now = super::ping(&lab.host_a, &target, 5)?;
        let dev = path_of(lab, &target).unwrap_or_default();
        if dev != o.iface {
            return Err(format!("{target} is routed via {dev}, not {}", o.iface));
        }
        detail.push(format!("after the failover, {target} via {dev}: {now}"));
    }
    // Bring it back.
    let t1 = Instant::now();
    let how = match from_instance {
        None => {
            cli(exe, da, &["initiate", v.tunnel])?;
            format!("gw-a: causeway initiate {}", v.tunnel)
        }
        // gw-a's tunnel wants to be up (start_action = start): it retries on its own.
        Some(_) => format!("gw-a re-initiated {} by itself", v.tunnel),
    };
    let all: Vec<String> = INSTANCES.iter().map(|i| i.iface.to_string()).collect();
    let want: Vec<String> = if ecmp { all.clone() } else { vec![] };
    let back = wait_for(Duration::from_secs(40), || {
        let s = da.status().ok()?;
        let up = INSTANCES.iter().all(|i| {
            tunnel(&s, i.tunnel).is_some_and(|t| t.state == "established")
                && established(neighbor(&s, i.bgp))
        });
        let fib = ANNOUNCE_B.iter().all(|p| {
            let d = fib_devs(&lab.gw_a, p);
            if ecmp {
                d == want
            } else {
                !d.is_empty()
            }
        }) && fib_devs(&lab.gw_a, SITE_B) == all;
        (up && fib).then_some(())
    });
    if back.is_none() {
        return Err(format!(
            "{} not back within 40 s ({how}); kernel: {}; gw-a log: {}",
            v.tunnel,
            ANNOUNCE_B
                .iter()
                .map(|p| format!("{p} via {}", fib_devs(&lab.gw_a, p).join("+")))
                .collect::<Vec<_>>()
                .join(", "),
            da.log_tail(3)
        ));
    }
    let again = super::ping(&lab.host_a, &target, 3)?;
    detail.push(format!(
        "{how}: tunnel, session and {} back {:.1}s later ({:.1}s after the terminate); {target} via {}: {again}",
        if ecmp { "ECMP routes" } else { "routes" },
        t1.elapsed().as_secs_f64(),
        t0.elapsed().as_secs_f64(),
        path_of(lab, &target).unwrap_or_default()
    ));
    Ok(((), detail))
}

fn prove_cli(exe: &Path, da: &Daemon) -> Result<((), Vec<String>), String> {
    let status = cli(exe, da, &["status"])?;
    for inst in &INSTANCES {
        let t = format!("tunnel {}  established", inst.tunnel);
        if !status.contains(&t) || !status.contains(inst.iface) {
            return Err(format!(
                "`causeway status` lacks `{t}` on {}:\n{status}",
                inst.iface
            ));
        }
        if !status
            .lines()
            .any(|l| l.contains(&format!("neighbor {}", inst.bgp)) && l.contains("Established"))
        {
            return Err(format!(
                "`causeway status` lacks neighbor {} Established:\n{status}",
                inst.bgp
            ));
        }
    }
    let snap: Snapshot = serde_json::from_str(&cli(exe, da, &["status", "--json"])?)
        .map_err(|e| format!("`causeway status --json`: {e}"))?;
    let ifaces: Vec<&str> = snap.tunnels.iter().map(|t| t.interface.as_str()).collect();
    if ifaces != ["cw-az1", "cw-az2"] {
        return Err(format!("`causeway status --json` tunnels on {ifaces:?}"));
    }
    for cmd in ["sa", "bgp", "routes"] {
        let text = cli(exe, da, &[cmd])?;
        if cmd != "routes" && !INSTANCES.iter().all(|i| text.contains(i.tunnel)) {
            return Err(format!(
                "`causeway {cmd}` does not show both tunnels:\n{text}"
            ));
        }
    }
    let mut detail = vec!["gw-a `causeway status`:".to_string()];
    detail.extend(status.lines().map(|l| format!("  {l}")));
    Ok(((), detail))
}

fn prove_metrics(ns: &Netns) -> Result<((), Vec<String>), String> {
    let script = "exec 3<>/dev/tcp/127.0.0.1/9474 && printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3";
    let text = ns.exec("bash", &["-c", script])?;
    let mut want = vec![];
    for inst in &INSTANCES {
        want.push(format!(
            "causeway_tunnel_up{{tunnel=\"{}\"}} 1",
            inst.tunnel
        ));
        want.push(format!(
            "causeway_bgp_established{{neighbor=\"{}\"}} 1",
            inst.bgp
        ));
    }
    for w in &want {
        if !text.lines().any(|l| l == w) {
            return Err(format!("metrics lack `{w}`"));
        }
    }
    Ok((
        (),
        want.iter().map(|w| format!("127.0.0.1:9474 {w}")).collect(),
    ))
}

/// Stops a daemon: exit 0, and no Causeway routes and none of `ifaces` left.
fn stop_clean(d: &mut Daemon, ns: &Netns, tag: &str, ifaces: &[&str]) -> Result<String, String> {
    match d.stop(Duration::from_secs(10)) {
        Some(s) if s.success() => {}
        Some(s) => return Err(format!("{tag}: {s}")),
        None => return Err(format!("{tag}: did not exit within 10 s (killed)")),
    }
    let routes = ns.ip(&["route", "show", "proto", &PROTO.to_string()])?;
    if !routes.trim().is_empty() {
        return Err(format!("{tag}: routes left: {}", routes.trim()));
    }
    for i in ifaces {
        if ns.ip(&["link", "show", i]).is_ok() {
            return Err(format!("{tag}: {i} still exists"));
        }
    }
    Ok(format!(
        "{tag}: exit 0, no proto {PROTO} routes, no {} left",
        ifaces.join("/")
    ))
}
