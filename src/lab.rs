//! `causeway lab`: a throw-away two-site lab in network namespaces on this machine.
//!
//! ```text
//!  host-a 10.1.0.10 ── 10.1.0.1 gw-a 192.0.2.1 ══ WAN ══ 198.51.100.7 gw-b 10.2.0.1 ── 10.2.0.10 host-b
//!                      AS 65010, BGP 10.1.255.1            AS 65515 ("Azure"), BGP 10.2.255.254
//! ```
//!
//! gw-a runs `causeway run` (via `ip netns exec`) with `profile = "azure"`; gw-b plays the
//! Azure VPN Gateway (Azure's proposals, ASN 65515): a second causeway, or with
//! `--peer strongswan` strongSwan's charon (kernel-libipsec) + BIRD 2. Options: `--encap
//! esp` (raw ESP), `--nat` (gw-a behind a masquerading NAT router: NAT-T),
//! `--forced-tunneling` (gw-a sends 0.0.0.0/0 into the tunnel), `--keep-logs`, and
//! `--active-active` (a topology of its own, in [`active`]: gw-a with two tunnels and two
//! BGP sessions to the two instances of an active-active "Azure" gateway).
//!
//! The lab proves, step by step: the configs validate; both sides come up; IKE establishes
//! a Child SA (SPIs cross-checked on both sides); LAN-to-LAN ping goes through ESP (counters
//! move, nftables on gw-b's WAN sees ESP and no plaintext); BGP reaches Established and the
//! learned routes are in the kernel with Causeway's protocol id; NAT traversal / forced
//! tunneling when asked; throughput (iperf3, informational); SIGHUP reload of BGP
//! announcements; Child SA and IKE SA rekeys; terminate/initiate (routes withdrawn and
//! restored); the CLI and the metrics endpoint; clean shutdown (exit 0, routes and TUN
//! removed); no PSK in any log. Everything is torn down on every path: Drop guards, a
//! SIGINT/SIGTERM flag checked while waiting, and a sweep of namespaces left by a killed
//! run. Exit 0 only if every step passed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::api::{NeighborStatus, Request, Snapshot, TunnelStatus};
use crate::control;

mod active;
mod swan;

/// Set by SIGINT/SIGTERM/SIGHUP.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// `--forced-tunneling`: site A sends everything (0.0.0.0/0) into the tunnel.
static FORCED: AtomicBool = AtomicBool::new(false);

fn forced() -> bool {
    FORCED.load(Ordering::SeqCst)
}

/// `--nat`: gw-a sits behind a NAT router (masquerade) with a private WAN address.
static NAT: AtomicBool = AtomicBool::new(false);

fn nat() -> bool {
    NAT.load(Ordering::SeqCst)
}

/// gw-a's private WAN address behind the NAT router (its public one is [`WAN_A`]).
const WAN_A_PRIVATE: &str = "192.168.100.2";
const NAT_LAN: &str = "192.168.100.1";

/// gw-a's own outer address: public, or private behind the NAT.
fn wan_a_local() -> &'static str {
    if nat() {
        WAN_A_PRIVATE
    } else {
        WAN_A
    }
}

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// The protocol id the lab configures for Causeway's kernel routes.
const PROTO: u8 = 249;
/// Tunnel name on both sides (TUN device `cw-lab`).
const TUNNEL: &str = "lab";
const IFACE: &str = "cw-lab";
const WAN_A: &str = "192.0.2.1";
const WAN_B: &str = "198.51.100.7";
const BGP_A: &str = "10.1.255.1";
const BGP_B: &str = "10.2.255.254";
const HOST_A: &str = "10.1.0.10";
const HOST_B: &str = "10.2.0.10";
/// Prefixes site B ("Azure") announces; site A announces its LAN.
const ANNOUNCE_B: [&str; 2] = ["10.2.0.0/24", "10.2.1.0/24"];
const ANNOUNCE_A: [&str; 1] = ["10.1.0.0/24"];

/// Run `ip` with arguments; error with its stderr.
fn ip(args: &[&str]) -> Result<String, String> {
    cmd("ip", args)
}

fn cmd(prog: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{prog}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{prog} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A network namespace, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn create(name: String) -> Result<Self, String> {
        ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// `ip -n NAME ...`
    fn ip(&self, args: &[&str]) -> Result<String, String> {
        let mut v = vec!["-n", self.name.as_str()];
        v.extend_from_slice(args);
        ip(&v)
    }

    /// `ip netns exec NAME prog ...`
    fn exec(&self, prog: &str, args: &[&str]) -> Result<String, String> {
        let mut v = vec!["netns", "exec", self.name.as_str(), prog];
        v.extend_from_slice(args);
        ip(&v)
    }

    /// A veth pair: `dev` here, `peer_dev` in `peer` (created inside the namespaces, so
    /// never visible in the root namespace).
    fn veth(&self, dev: &str, peer: &Netns, peer_dev: &str) -> Result<(), String> {
        let peer_ns = peer.name.as_str();
        self.ip(&[
            "link", "add", dev, "type", "veth", "peer", "name", peer_dev, "netns", peer_ns,
        ])
        .map(|_| ())
    }

    fn sysctl(&self, key: &str, value: &str) -> Result<(), String> {
        self.exec("sysctl", &["-qw", &format!("{key}={value}")])
            .map(|_| ())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// A `causeway run` in a namespace; SIGTERM then SIGKILL on drop.
struct Daemon {
    child: Option<Child>,
    socket: PathBuf,
    log: PathBuf,
    started: Instant,
}

impl Daemon {
    fn start(ns: &Netns, exe: &Path, config: &Path, dir: &Path, tag: &str) -> Result<Self, String> {
        let log = dir.join(format!("causeway-{tag}.log"));
        let file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = file.try_clone().map_err(|e| e.to_string())?;
        let exe_s = exe.to_string_lossy().into_owned();
        let cfg_s = config.to_string_lossy().into_owned();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, &exe_s, "run", "-c", &cfg_s])
            // Debug level: the lab also proves that not even debug logs carry the PSK.
            .env("RUST_LOG", "debug")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("starting causeway in {}: {e}", ns.name))?;
        Ok(Daemon {
            child: Some(child),
            socket: dir.join(format!("{tag}.sock")),
            log,
            started: Instant::now(),
        })
    }

    fn status(&self) -> Result<Snapshot, String> {
        let r = control::call(&self.socket, &Request::Status).map_err(|e| format!("{e:#}"))?;
        if !r.ok {
            return Err(r.error.unwrap_or_else(|| "request failed".into()));
        }
        r.status.ok_or_else(|| "no data in answer".into())
    }

    fn signal(&self, sig: libc::c_int) -> Result<(), String> {
        let pid = self
            .child
            .as_ref()
            .and_then(|c| i32::try_from(c.id()).ok())
            .ok_or("daemon not running")?;
        // SAFETY: plain kill(2) on our own child's pid.
        if unsafe { libc::kill(pid, sig) } != 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        Ok(())
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGTERM and wait up to `grace`; returns the exit status if it exited by itself.
    fn stop(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        terminate(self.child.take()?, grace)
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// SIGTERM to `child`, then up to `grace` for it to exit: its exit status, or `None`
/// when it had to be killed (SIGKILL).
fn terminate(mut child: Child, grace: Duration) -> Option<std::process::ExitStatus> {
    if let Ok(Some(st)) = child.try_wait() {
        return Some(st);
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        // `ip netns exec` execs the program, so the pid is the program's own.
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let until = Instant::now() + grace;
    while Instant::now() < until {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.stop(Duration::from_secs(5));
    }
}

/// A temp directory removed on drop (unless kept).
struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Pass,
    Fail,
    NotAvailable,
}

struct Step {
    name: String,
    outcome: Outcome,
    detail: Vec<String>,
    took: Duration,
}

#[derive(Default)]
struct Report {
    steps: Vec<Step>,
}

impl Report {
    fn record(&mut self, name: &str, took: Duration, outcome: Outcome, detail: Vec<String>) {
        let mark = match outcome {
            Outcome::Pass => "✓",
            Outcome::Fail => "✗",
            Outcome::NotAvailable => "–",
        };
        let suffix = if outcome == Outcome::NotAvailable {
            " (not available)"
        } else {
            ""
        };
        println!("{mark} {name}{suffix}  [{:.1}s]", took.as_secs_f64());
        for d in &detail {
            println!("    {d}");
        }
        self.steps.push(Step {
            name: name.to_string(),
            outcome,
            detail,
            took,
        });
    }

    /// Run a step; `Ok(detail)` passes, `Err(detail)` fails.
    fn step<T>(
        &mut self,
        name: &str,
        f: impl FnOnce() -> Result<(T, Vec<String>), String>,
    ) -> Option<T> {
        let t0 = Instant::now();
        if interrupted() {
            self.record(
                name,
                Duration::ZERO,
                Outcome::Fail,
                vec!["interrupted".into()],
            );
            return None;
        }
        match f() {
            Ok((v, detail)) => {
                self.record(name, t0.elapsed(), Outcome::Pass, detail);
                Some(v)
            }
            Err(e) => {
                self.record(name, t0.elapsed(), Outcome::Fail, vec![e]);
                None
            }
        }
    }

    fn skip(&mut self, name: &str, why: &str) {
        self.record(
            name,
            Duration::ZERO,
            Outcome::NotAvailable,
            vec![why.to_string()],
        );
    }

    fn all_passed(&self) -> bool {
        !self.steps.is_empty() && self.steps.iter().all(|s| s.outcome == Outcome::Pass)
    }

    fn summary(&self, total: Duration) -> String {
        let n = |o| self.steps.iter().filter(|s| s.outcome == o).count();
        let mut s = String::new();
        let _ = writeln!(s, "\n== causeway lab summary ({:.1}s)", total.as_secs_f64());
        for st in &self.steps {
            let mark = match st.outcome {
                Outcome::Pass => "✓",
                Outcome::Fail => "✗",
                Outcome::NotAvailable => "–",
            };
            let first = st.detail.first().map(String::as_str).unwrap_or("");
            let _ = writeln!(
                s,
                "{mark} {:<60} {:>5.1}s  {}",
                st.name,
                st.took.as_secs_f64(),
                if st.outcome == Outcome::Pass {
                    ""
                } else {
                    first
                }
            );
        }
        let _ = writeln!(
            s,
            "{} passed, {} failed, {} not available",
            n(Outcome::Pass),
            n(Outcome::Fail),
            n(Outcome::NotAvailable)
        );
        s
    }
}

/// Poll `f` every 200 ms until it returns `Some`, the timeout passes or we are interrupted.
fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let until = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= until || interrupted() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Remove namespaces of earlier lab runs whose process is gone.
fn sweep_stale() {
    let Ok(list) = ip(&["netns", "list"]) else {
        return;
    };
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("cwlab-") else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            // Daemons of a killed lab may still run inside: stop them first.
            for p in ip(&["netns", "pids", name]).unwrap_or_default().lines() {
                if let Ok(p) = p.trim().parse::<i32>() {
                    // SAFETY: kill(2) on a process inside a namespace our earlier run made.
                    unsafe {
                        libc::kill(p, libc::SIGKILL);
                    }
                }
            }
            let _ = ip(&["netns", "del", name]);
            println!("removed {name} left over by an earlier lab run (pid {pid} is gone)");
        }
    }
}

struct Site<'a> {
    tag: &'a str,
    wan: &'a str,
    peer_wan: &'a str,
    bgp_addr: &'a str,
    peer_bgp: &'a str,
    asn: u32,
    role: &'a str,
    tunnel_extra: &'a str,
    neighbor_extra: &'a str,
    local_net: &'a str,
    remote_net: &'a str,
    announce: &'a [&'a str],
    start_action: &'a str,
}

fn config_text(s: &Site<'_>, dir: &Path, encap: &str) -> String {
    let list = |v: &[&str]| {
        v.iter()
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        r#"# causeway lab: site {tag} ({role})
[daemon]
control_socket = "{dir}/{tag}.sock"
metrics = "127.0.0.1:9474"

[[tunnel]]
name = "{TUNNEL}"
local_addrs = "{wan}"
remote_addrs = "{peer_wan}"
psk_file = "{dir}/lab.psk"
local_ts = ["{local_net}"]
remote_ts = ["{remote_net}"]
encap = "{encap}"
mtu = 1400
start_action = "{start}"
{tunnel_extra}
[bgp]
asn = {asn}
router_id = "{bgp_addr}"
proto = {PROTO}

[[bgp.neighbor]]
address = "{peer_bgp}"
tunnel = "{TUNNEL}"
local_address = "{bgp_addr}"
announce = [{announce}]
{neighbor_extra}"#,
        tag = s.tag,
        role = s.role,
        dir = dir.display(),
        wan = s.wan,
        peer_wan = s.peer_wan,
        local_net = s.local_net,
        remote_net = s.remote_net,
        start = s.start_action,
        tunnel_extra = s.tunnel_extra,
        asn = s.asn,
        bgp_addr = s.bgp_addr,
        peer_bgp = s.peer_bgp,
        announce = list(s.announce),
        neighbor_extra = s.neighbor_extra,
    )
}

/// The four namespaces, in teardown order (hosts first).
struct Lab {
    host_a: Netns,
    host_b: Netns,
    gw_a: Netns,
    gw_b: Netns,
    /// The NAT router in front of gw-a (`--nat`).
    nat: Option<Netns>,
}

fn build_topology(pid: u32) -> Result<(Lab, Vec<String>), String> {
    let gw_a = Netns::create(format!("cwlab-{pid}-a"))?;
    let gw_b = Netns::create(format!("cwlab-{pid}-b"))?;
    let host_a = Netns::create(format!("cwlab-{pid}-ha"))?;
    let host_b = Netns::create(format!("cwlab-{pid}-hb"))?;
    // veth pairs created inside the namespaces: never visible in the root namespace.
    let nat_ns = if nat() {
        Some(Netns::create(format!("cwlab-{pid}-nat"))?)
    } else {
        None
    };
    match &nat_ns {
        None => {
            gw_a.veth("wan", &gw_b, "wan")?;
        }
        Some(n) => {
            // gw-a (private) — NAT router (public WAN_A, masquerade) — gw-b.
            gw_a.veth("wan", n, "lan")?;
            n.veth("wan", &gw_b, "wan")?;
            n.ip(&["addr", "add", &format!("{NAT_LAN}/24"), "dev", "lan"])?;
            n.ip(&["addr", "add", &format!("{WAN_A}/24"), "dev", "wan"])?;
            n.ip(&["link", "set", "lan", "up"])?;
            n.ip(&["link", "set", "wan", "up"])?;
            n.ip(&["route", "add", &format!("{WAN_B}/32"), "dev", "wan"])?;
            n.sysctl("net.ipv4.ip_forward", "1")?;
            let rules = "table ip cwnat {\n  chain post {\n    type nat hook postrouting priority 100;\n    oifname \"wan\" udp dport 4500 counter comment \"natt\"\n    oifname \"wan\" masquerade\n  }\n}\n";
            let path = std::env::temp_dir().join(format!("cwlab-{pid}-nat.nft"));
            std::fs::write(&path, rules).map_err(|e| e.to_string())?;
            let res = n.exec("nft", &["-f", &path.to_string_lossy()]);
            let _ = std::fs::remove_file(&path);
            res.map_err(|e| format!("NAT rules: {e}"))?;
        }
    }
    gw_a.veth("lan", &host_a, "eth0")?;
    gw_b.veth("lan", &host_b, "eth0")?;
    for (gw, wan, peer, lan_addr, host, host_addr) in [
        (
            &gw_a,
            wan_a_local(),
            WAN_B,
            "10.1.0.1/24",
            &host_a,
            "10.1.0.10/24",
        ),
        (&gw_b, WAN_B, WAN_A, "10.2.0.1/24", &host_b, "10.2.0.10/24"),
    ] {
        gw.ip(&["addr", "add", &format!("{wan}/24"), "dev", "wan"])?;
        gw.ip(&["link", "set", "wan", "up"])?;
        if nat_ns.is_some() && wan == WAN_A_PRIVATE {
            gw.ip(&["route", "add", &format!("{peer}/32"), "via", NAT_LAN])?;
        } else {
            gw.ip(&["route", "add", &format!("{peer}/32"), "dev", "wan"])?;
        }
        gw.ip(&["addr", "add", lan_addr, "dev", "lan"])?;
        gw.ip(&["link", "set", "lan", "up"])?;
        gw.sysctl("net.ipv4.ip_forward", "1")?;
        gw.sysctl("net.ipv4.conf.all.rp_filter", "0")?;
        gw.sysctl("net.ipv4.conf.default.rp_filter", "0")?;
        host.ip(&["addr", "add", host_addr, "dev", "eth0"])?;
        host.ip(&["link", "set", "eth0", "up"])?;
        let gw_lan = lan_addr.split('/').next().unwrap_or_default();
        host.ip(&["route", "add", "default", "via", gw_lan])?;
    }
    let detail = vec![match &nat_ns {
        None => format!(
            "{} (10.1.0.10) — {} (WAN {WAN_A}) ══ {} (WAN {WAN_B}) — {} (10.2.0.10)",
            host_a.name, gw_a.name, gw_b.name, host_b.name
        ),
        Some(n) => format!(
            "{} (10.1.0.10) — {} (WAN {WAN_A_PRIVATE}) — {} (NAT, public {WAN_A}) ══ {} (WAN {WAN_B}) — {} (10.2.0.10)",
            host_a.name, gw_a.name, n.name, gw_b.name, host_b.name
        ),
    }];
    Ok((
        Lab {
            host_a,
            host_b,
            gw_a,
            gw_b,
            nat: nat_ns,
        },
        detail,
    ))
}

fn ping(ns: &Netns, to: &str, count: u32) -> Result<String, String> {
    let c = count.to_string();
    let out = ns.exec("ping", &["-c", &c, "-i", "0.2", "-W", "2", "-q", to])?;
    Ok(out
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or("")
        .trim()
        .to_string())
}

fn tunnel_of(s: &Snapshot) -> Option<&TunnelStatus> {
    s.tunnels.iter().find(|t| t.name == TUNNEL)
}

/// True when the daemon says IKE is not part of this build.
fn ike_unavailable(s: &Snapshot) -> bool {
    tunnel_of(s).is_some_and(|t| t.state == "unavailable")
}

fn bgp_unavailable(s: &Snapshot) -> bool {
    s.bgp.iter().any(|n| n.state == "unavailable")
}

/// Build the lab, prove it, tear it down. Exit 0 only if every step passed.
pub fn run(
    keep_logs: bool,
    encap: &str,
    peer: PeerKind,
    forced_tunneling: bool,
    behind_nat: bool,
    active_active: bool,
) -> ExitCode {
    FORCED.store(forced_tunneling, Ordering::SeqCst);
    NAT.store(behind_nat, Ordering::SeqCst);
    let t_start = Instant::now();
    install_signal_handlers();
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("causeway lab: must run as root (it creates network namespaces)");
        return ExitCode::FAILURE;
    }
    for tool in ["ip", "ping", "sysctl"] {
        if cmd("sh", &["-c", &format!("command -v {tool}")]).is_err() {
            eprintln!("causeway lab: `{tool}` is missing (run scripts/install-deps.sh)");
            return ExitCode::FAILURE;
        }
    }
    if !Path::new("/dev/net/tun").exists() {
        eprintln!("causeway lab: /dev/net/tun is missing");
        return ExitCode::FAILURE;
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("causeway lab: cannot find my own binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    if behind_nat && encap == "esp" {
        eprintln!("causeway lab: raw ESP cannot cross the NAT: use --encap auto or udp with --nat");
        return ExitCode::FAILURE;
    }
    if behind_nat && cmd("sh", &["-c", "command -v nft"]).is_err() {
        eprintln!("causeway lab: --nat needs nft (nftables) for the NAT router");
        return ExitCode::FAILURE;
    }
    if active_active && (peer != PeerKind::Causeway || forced_tunneling || behind_nat) {
        eprintln!("causeway lab: --active-active runs causeway on all three gateways; it does not combine with --peer strongswan, --nat or --forced-tunneling");
        return ExitCode::FAILURE;
    }
    if peer == PeerKind::StrongSwan {
        if encap == "esp" {
            eprintln!("causeway lab: strongSwan's kernel-libipsec always uses ESP-in-UDP: use --encap udp");
            return ExitCode::FAILURE;
        }
        if let Err(e) = swan::available() {
            eprintln!("causeway lab: --peer strongswan: {e} (run scripts/install-deps.sh)");
            return ExitCode::FAILURE;
        }
    }
    if active_active {
        println!(
            "causeway lab --active-active: site A's causeway runs two IKEv2/ESP tunnels and two BGP sessions to the two instances of an active-active \"Azure\" gateway (two causeways, AS 65515) in front of one site-B LAN\n"
        );
    } else {
        println!(
            "causeway lab: two sites in network namespaces, an IKEv2/ESP tunnel and BGP between causeway (site A) and {} (site B)\n",
            match peer {
                PeerKind::Causeway => "causeway configured like Azure",
                PeerKind::StrongSwan => "strongSwan + BIRD configured like Azure",
            }
        );
    }
    sweep_stale();
    let pid = std::process::id();
    println!(
        "lab id: {pid} (namespaces cwlab-{pid}-*, ESP encapsulation: {encap}{}{})\n",
        if forced_tunneling {
            ", forced tunneling: site A routes 0.0.0.0/0 into the tunnel"
        } else {
            ""
        },
        if behind_nat {
            ", site A behind NAT"
        } else {
            ""
        }
    );
    let dir = TempDir {
        path: std::env::temp_dir().join(format!("cwlab-{pid}")),
        keep: keep_logs,
    };
    if let Err(e) = std::fs::create_dir_all(&dir.path) {
        eprintln!("causeway lab: {}: {e}", dir.path.display());
        return ExitCode::FAILURE;
    }
    let mut report = Report::default();
    let result = if active_active {
        active::run_steps(&mut report, pid, &exe, &dir.path, encap)
    } else {
        run_steps(&mut report, pid, &exe, &dir.path, encap, peer)
    };
    if interrupted() {
        println!("\ninterrupted: tearing down");
    }
    // Teardown happens in run_steps' drops; report it.
    let t0 = Instant::now();
    let leftovers: Vec<String> = ip(&["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with(&format!("cwlab-{pid}-")))
        .map(|l| l.to_string())
        .collect();
    if leftovers.is_empty() {
        report.record(
            "teardown: namespaces removed",
            t0.elapsed() + result,
            Outcome::Pass,
            vec![],
        );
    } else {
        report.record(
            "teardown: namespaces removed",
            t0.elapsed() + result,
            Outcome::Fail,
            vec![format!("left over: {}", leftovers.join(", "))],
        );
    }
    print!("{}", report.summary(t_start.elapsed()));
    if keep_logs {
        println!("logs and configs kept in {}", dir.path.display());
    }
    if report.all_passed() && !interrupted() {
        println!("causeway lab: PASS");
        ExitCode::SUCCESS
    } else {
        println!("causeway lab: FAIL");
        ExitCode::FAILURE
    }
}

/// All steps; returns how long the teardown inside it took.
fn run_steps(
    report: &mut Report,
    pid: u32,
    exe: &Path,
    dir: &Path,
    encap: &str,
    peer: PeerKind,
) -> Duration {
    let Some(lab) = report.step("build namespaces, veth links, addresses", || {
        build_topology(pid)
    }) else {
        return Duration::ZERO;
    };
    let _ = lab_steps(report, &lab, exe, dir, encap, peer);
    let t0 = Instant::now();
    drop(lab);
    t0.elapsed()
}

/// A random PSK in `dir/lab.psk` (mode 0600), shared by every tunnel of the lab.
fn write_psk(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let psk_path = dir.join("lab.psk");
    let mut rnd = [0u8; 24];
    {
        use std::io::Read;
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut rnd))
            .map_err(|e| format!("/dev/urandom: {e}"))?;
    }
    let psk: String = rnd.iter().map(|b| format!("{b:02x}")).collect();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&psk_path)
            .map_err(|e| format!("{}: {e}", psk_path.display()))?;
        f.write_all(psk.as_bytes()).map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn write_configs(dir: &Path, encap: &str) -> Result<(PathBuf, PathBuf), String> {
    write_psk(dir)?;
    let a = Site {
        tag: "a",
        wan: wan_a_local(),
        peer_wan: WAN_B,
        bgp_addr: BGP_A,
        peer_bgp: BGP_B,
        asn: 65010,
        role: "on-premises, `profile = \"azure\"`",
        // The profile fills in Azure's proposals, lifetimes, DPD, MSS clamp, the
        // neighbor's ASN 65515 and multihop.
        tunnel_extra: if nat() {
            // Behind NAT: identify with the public address (as Azure expects).
            "profile = \"azure\"\nlocal_id = \"192.0.2.1\"\n"
        } else {
            "profile = \"azure\"\n"
        },
        neighbor_extra: "",
        local_net: "10.1.0.0/16",
        remote_net: if forced() { "0.0.0.0/0" } else { "10.2.0.0/16" },
        announce: &ANNOUNCE_A,
        start_action: "start",
    };
    let b = Site {
        tag: "b",
        wan: WAN_B,
        peer_wan: WAN_A,
        bgp_addr: BGP_B,
        peer_bgp: BGP_A,
        asn: 65515,
        role: "configured like an Azure VPN Gateway",
        // What Azure VPN Gateway offers by default (see INTEROP.md).
        tunnel_extra: "ike_proposals = [\"aes256-sha1-modp1024\", \"aes256-sha256-modp1024\", \"aes128-sha1-modp1024\", \"aes256-sha256-modp2048\"]\nesp_proposals = [\"aes256gcm16\"]\nike_lifetime = \"28800s\"\nchild_lifetime = \"27000s\"\ndpd_delay = \"45s\"\nmss_clamp = 1350\n",
        neighbor_extra: "remote_asn = 65010\nmultihop = 8\nhold_time = \"180s\"\n",
        local_net: if forced() { "0.0.0.0/0" } else { "10.2.0.0/16" },
        remote_net: "10.1.0.0/16",
        announce: &ANNOUNCE_B,
        start_action: "none",
    };
    let pa = dir.join("site-a.toml");
    let pb = dir.join("site-b-azure.toml");
    std::fs::write(&pa, config_text(&a, dir, encap)).map_err(|e| e.to_string())?;
    std::fs::write(&pb, config_text(&b, dir, encap)).map_err(|e| e.to_string())?;
    Ok((pa, pb))
}

fn prove_cli(exe: &Path, d: &Daemon) -> Result<((), Vec<String>), String> {
    let status = cli(exe, d, &["status"])?;
    if !status.contains(&format!("tunnel {TUNNEL}  established")) {
        return Err(format!(
            "`causeway status` does not show the tunnel established:\n{status}"
        ));
    }
    for (cmd, want) in [
        ("sa", "child SA"),
        ("bgp", "Established"),
        ("routes", "bgp"),
    ] {
        let text = cli(exe, d, &[cmd])?;
        if !text.contains(want) {
            return Err(format!("`causeway {cmd}` lacks {want:?}:\n{text}"));
        }
        let json = cli(exe, d, &[cmd, "--json"])?;
        serde_json::from_str::<serde_json::Value>(&json)
            .map_err(|e| format!("`causeway {cmd} --json` is not JSON: {e}"))?;
    }
    let json = cli(exe, d, &["status", "--json"])?;
    let snap: Snapshot = serde_json::from_str(&json)
        .map_err(|e| format!("`causeway status --json` does not parse: {e}"))?;
    if tunnel_of(&snap).is_none() {
        return Err("`causeway status --json` has no tunnel".into());
    }
    let mut detail = vec!["gw-a `causeway status`:".to_string()];
    detail.extend(status.lines().map(|l| format!("  {l}")));
    Ok(((), detail))
}

/// nftables counters on a gateway's WAN ingress: ESP-in-UDP packets vs plaintext
/// LAN-addressed packets (which must never appear on the WAN).
struct WireCounter<'a> {
    ns: &'a Netns,
}

impl<'a> WireCounter<'a> {
    fn install(ns: &'a Netns) -> Option<Self> {
        cmd("sh", &["-c", "command -v nft"]).ok()?;
        let rules = "table inet cwlab {\n  chain pre {\n    type filter hook prerouting priority -300;\n    iifname \"wan\" udp dport 4500 counter comment \"espudp\"\n    iifname \"wan\" meta l4proto esp counter comment \"esp\"\n    iifname \"wan\" ip saddr 10.0.0.0/8 counter comment \"plain\"\n  }\n}\n";
        let path = std::env::temp_dir().join(format!("cwlab-{}-nft.conf", std::process::id()));
        std::fs::write(&path, rules).ok()?;
        let p = path.to_string_lossy().into_owned();
        let ok = ns.exec("nft", &["-f", &p]).is_ok();
        let _ = std::fs::remove_file(&path);
        ok.then_some(WireCounter { ns })
    }

    /// (ESP-in-UDP packets, plaintext packets) seen so far.
    fn read(&self) -> Result<(u64, u64), String> {
        let text = self.ns.exec("nft", &["list", "table", "inet", "cwlab"])?;
        let count = |tag: &str| {
            nft_counter(&text, tag).ok_or_else(|| format!("no {tag} counter in: {text}"))
        };
        Ok((count("esp")? + count("espudp")?, count("plain")?))
    }
}

/// The packet count of the rule with `comment "<tag>"` in an `nft list` output.
fn nft_counter(listing: &str, tag: &str) -> Option<u64> {
    let rule = listing
        .lines()
        .find(|l| l.contains(&format!("comment \"{tag}\"")))?;
    let mut words = rule.split_whitespace();
    words.find(|w| *w == "packets")?;
    words.next()?.parse().ok()
}

impl Drop for WireCounter<'_> {
    fn drop(&mut self) {
        let _ = self.ns.exec("nft", &["delete", "table", "inet", "cwlab"]);
    }
}

fn prove_metrics(ns: &Netns) -> Result<((), Vec<String>), String> {
    // bash's /dev/tcp: no HTTP client needed inside the namespace.
    let script = "exec 3<>/dev/tcp/127.0.0.1/9474 && printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3";
    let text = ns.exec("bash", &["-c", script])?;
    if !text.starts_with("HTTP/1.1 200") {
        return Err(format!("bad answer: {}", text.lines().next().unwrap_or("")));
    }
    let want = [
        format!("causeway_tunnel_up{{tunnel=\"{TUNNEL}\"}} 1"),
        format!("causeway_bgp_established{{neighbor=\"{BGP_B}\"}} 1"),
    ];
    for w in &want {
        if !text.lines().any(|l| l == w) {
            return Err(format!("metrics lack `{w}`"));
        }
    }
    let detail: Vec<String> = text
        .lines()
        .filter(|l| {
            l.starts_with("causeway_tunnel_tx_packets_total")
                || l.starts_with("causeway_tunnel_rx_packets_total")
                || l.starts_with("causeway_bgp_prefixes_accepted")
                || want.iter().any(|w| w == l)
        })
        .map(|l| format!("127.0.0.1:9474 {l}"))
        .collect();
    Ok(((), detail))
}

/// Which implementation plays site B (the "Azure" side).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerKind {
    /// A second causeway daemon.
    Causeway,
    /// strongSwan (charon with kernel-libipsec) for IKE/ESP and BIRD 2 for BGP.
    StrongSwan,
}

/// Site B as the steps see it.
trait Peer {
    /// What it is, for the report.
    fn describe(&self) -> String;
    /// Installed Child SAs as (inbound SPI, outbound SPI) in lowercase hex.
    fn child_spis(&self) -> Vec<(String, String)>;
    /// (packets opened, packets sealed) so far, if the peer reports them.
    fn packets(&self) -> Option<(u64, u64)>;
    /// Drops by reason, if the peer reports them.
    fn drops(&self) -> Option<String>;
    /// A description of the BGP session when it is Established with routes.
    fn bgp_established(&self) -> Option<String>;
    /// Whether the peer learned `prefix` (from gw-a) over BGP.
    fn learned(&self, prefix: &str) -> bool;
    /// Stop it; what happened.
    fn stop(&mut self) -> Result<Vec<String>, String>;
    /// The end of its log.
    fn log_tail(&self) -> String;
}

/// A second causeway daemon as site B.
struct CausewayPeer {
    d: Daemon,
    ns: String,
}

impl Peer for CausewayPeer {
    fn describe(&self) -> String {
        "causeway (AS 65515, Azure's proposals)".into()
    }
    fn child_spis(&self) -> Vec<(String, String)> {
        daemon_child_spis(&self.d)
    }
    fn packets(&self) -> Option<(u64, u64)> {
        let s = self.d.status().ok()?;
        let t = tunnel_of(&s)?;
        Some((t.counters.packets_in, t.counters.packets_out))
    }
    fn drops(&self) -> Option<String> {
        let s = self.d.status().ok()?;
        Some(drop_list(tunnel_of(&s)?))
    }
    fn bgp_established(&self) -> Option<String> {
        let s = self.d.status().ok()?;
        s.bgp
            .iter()
            .find(|n| n.state == "Established" && n.prefixes_accepted > 0)
            .map(|n| neighbor_line("gw-b (AS 65515)", n))
    }
    fn learned(&self, prefix: &str) -> bool {
        ip(&["-n", &self.ns, "route", "show", "proto", &PROTO.to_string()])
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with(prefix) && l.contains(IFACE))
    }
    fn stop(&mut self) -> Result<Vec<String>, String> {
        Ok(vec![stop_clean(&mut self.d, &self.ns, "gw-b")?])
    }
    fn log_tail(&self) -> String {
        self.d.log_tail(3)
    }
}

/// (inbound SPI, outbound SPI) of each Child SA of the tunnel.
fn spi_pairs(t: &TunnelStatus) -> Vec<(String, String)> {
    t.child_sas
        .iter()
        .map(|c| (c.spi_in.clone(), c.spi_out.clone()))
        .collect()
}

/// [`spi_pairs`] of the lab tunnel as the daemon reports it (none if it does not answer).
fn daemon_child_spis(d: &Daemon) -> Vec<(String, String)> {
    d.status()
        .ok()
        .and_then(|s| tunnel_of(&s).map(spi_pairs))
        .unwrap_or_default()
}

fn drop_list(t: &TunnelStatus) -> String {
    let list: Vec<String> = t
        .drops
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

/// Stops a gateway's daemon (SIGTERM, 10 s); it must exit 0 and leave no routes and no
/// TUN device behind ([`check_clean`]).
fn stop_clean(d: &mut Daemon, ns: &str, tag: &str) -> Result<String, String> {
    match d.stop(Duration::from_secs(10)) {
        Some(s) if s.success() => {}
        Some(s) => return Err(format!("{tag}: {s}")),
        None => return Err(format!("{tag}: did not exit within 10 s (killed)")),
    }
    check_clean(ns, tag)?;
    Ok(format!(
        "{tag}: exit 0, no proto {PROTO} routes and no {IFACE} device left"
    ))
}

/// No causeway routes and no TUN device left in a namespace.
fn check_clean(ns: &str, tag: &str) -> Result<(), String> {
    let routes = ip(&["-n", ns, "route", "show", "proto", &PROTO.to_string()])?;
    if !routes.trim().is_empty() {
        return Err(format!("{tag}: routes left: {}", routes.trim()));
    }
    if ip(&["-n", ns, "link", "show", IFACE]).is_ok() {
        return Err(format!("{tag}: {IFACE} still exists"));
    }
    Ok(())
}

/// What a finished command printed: its stdout, then its stderr.
fn stdout_and_stderr(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run_check(exe: &Path, cfg: &Path) -> Result<Vec<String>, String> {
    let c = cfg.to_string_lossy().into_owned();
    let out = Command::new(exe)
        .args(["check", "-c", &c])
        .output()
        .map_err(|e| e.to_string())?;
    let text = stdout_and_stderr(&out);
    if !out.status.success() {
        return Err(text.trim().to_string());
    }
    Ok(text.lines().map(|l| l.trim().to_string()).collect())
}

fn lab_steps(
    report: &mut Report,
    lab: &Lab,
    exe: &Path,
    dir: &Path,
    encap: &str,
    kind: PeerKind,
) -> Option<()> {
    report.step("underlay: gw-a pings gw-b across the WAN", || {
        ping(&lab.gw_a, WAN_B, 2).map(|s| ((), vec![s]))
    })?;
    report.step(
        "underlay: no route between the LANs without the tunnel",
        || match ping(&lab.host_a, HOST_B, 1) {
            Ok(s) => Err(format!("host-a reached host-b without a tunnel: {s}")),
            Err(_) => Ok((
                (),
                vec!["host-a cannot reach host-b yet (as expected)".into()],
            )),
        },
    )?;
    let (cfg_a, cfg_b) = report.step("write configs and PSK file (0600)", || {
        let (a, b) = write_configs(dir, encap)?;
        let mut detail = vec![format!("in {}", dir.display())];
        if kind == PeerKind::StrongSwan {
            swan::write_configs(dir)?;
            detail.push("site B: strongswan.conf, swanctl.conf, bird.conf".into());
        }
        Ok(((a, b), detail))
    })?;
    report.step("causeway check on the configs", || {
        let mut detail = run_check(exe, &cfg_a)?;
        if kind == PeerKind::Causeway {
            detail.extend(run_check(exe, &cfg_b)?);
        }
        Ok(((), detail))
    })?;

    // Daemons.
    let start_name = match kind {
        PeerKind::Causeway => "start causeway in both gateways, control sockets answer",
        PeerKind::StrongSwan => "start causeway (gw-a), charon + BIRD (gw-b)",
    };
    let (mut peer, mut da) = report.step(start_name, || {
        let t0 = Instant::now();
        // Site B ("Azure") first, as in real life: it is up before the site connects.
        let peer: Box<dyn Peer> = match kind {
            PeerKind::Causeway => Box::new(CausewayPeer {
                d: Daemon::start(&lab.gw_b, exe, &cfg_b, dir, "b")?,
                ns: lab.gw_b.name.clone(),
            }),
            PeerKind::StrongSwan => Box::new(swan::SwanBird::start(&lab.gw_b, dir)?),
        };
        let mut da = Daemon::start(&lab.gw_a, exe, &cfg_a, dir, "a")?;
        let ok = wait_for(Duration::from_secs(15), || {
            let b_ok = match kind {
                PeerKind::Causeway => peer.packets().is_some(),
                PeerKind::StrongSwan => true,
            };
            (da.status().is_ok() && b_ok).then_some(())
        });
        match ok {
            Some(()) => {
                let what = peer.describe();
                Ok((
                    (peer, da),
                    vec![format!(
                        "up after {:.1}s; site B: {what}",
                        t0.elapsed().as_secs_f64()
                    )],
                ))
            }
            None => {
                let mut e = String::from("control sockets did not answer");
                if let Some(st) = da.exited() {
                    let _ = write!(e, "; gw-a exited ({st}): {}", da.log_tail(5));
                }
                let _ = write!(e, "; gw-b: {}", peer.log_tail());
                Err(e)
            }
        }
    })?;
    let peer = peer.as_mut();
    let snap_a = da.status().ok()?;

    // IKE.
    let ike_ok = if ike_unavailable(&snap_a) {
        let why = tunnel_of(&snap_a)
            .and_then(|t| t.last_error.clone())
            .unwrap_or_else(|| "IKE is not available in this build".into());
        report.skip("IKE_SA_INIT + IKE_AUTH: Child SA established", &why);
        false
    } else {
        report
            .step("IKE_SA_INIT + IKE_AUTH: Child SA established", || {
                prove_ike(&da, peer)
            })
            .is_some()
    };

    // Traffic.
    if ike_ok {
        report.step(
            "traffic: LAN ping through ESP, no plaintext on the WAN",
            || prove_traffic(lab, &da, peer),
        );
    } else {
        report.skip(
            "traffic: LAN ping through ESP, no plaintext on the WAN",
            "needs an established Child SA",
        );
    }

    // BGP.
    let snap_a = da.status().ok()?;
    let mut bgp_ok = false;
    if bgp_unavailable(&snap_a) || snap_a.bgp.is_empty() {
        let why = snap_a
            .bgp
            .first()
            .and_then(|n| n.last_error.clone())
            .unwrap_or_else(|| "BGP is not available in this build".into());
        report.skip("BGP: session Established through the tunnel", &why);
        report.skip("routes: BGP routes in the kernel (proto 249)", "needs BGP");
    } else if !ike_ok {
        report.skip(
            "BGP: session Established through the tunnel",
            "needs the tunnel",
        );
        report.skip("routes: BGP routes in the kernel (proto 249)", "needs BGP");
    } else {
        bgp_ok = report
            .step("BGP: session Established through the tunnel", || {
                prove_bgp(&da, peer)
            })
            .is_some();
        if bgp_ok {
            report.step(
                "routes: BGP routes in the kernel (proto 249), ping uses them",
                || prove_routes(lab, peer),
            );
        } else {
            report.skip("routes: BGP routes in the kernel (proto 249)", "needs BGP");
        }
    }

    if ike_ok {
        if let Some(n) = &lab.nat {
            report.step(
                "NAT traversal: NAT detected, IKE and ESP in UDP 4500 through the masquerade",
                || prove_nat(n, &da),
            );
        }
    }

    if ike_ok && forced() {
        report.step(
            "forced tunneling: 0.0.0.0/0 into cw-lab (two /1 routes), peer pinned to the WAN",
            || prove_forced(lab),
        );
    }

    // Throughput (informational: the number depends on the machine and the build).
    if ike_ok {
        if cmd("sh", &["-c", "command -v iperf3"]).is_ok() {
            report.step(
                "throughput: iperf3 TCP host-a -> host-b through the tunnel",
                || prove_throughput(lab),
            );
        } else {
            // Informational only: not a step that can fail the lab.
            println!("- throughput: not measured (iperf3 is not installed)");
        }
    }

    // Reload: gw-a announces one more prefix after SIGHUP.
    if bgp_ok {
        report.step(
            "reload: SIGHUP on gw-a announces a new prefix, gw-b learns it",
            || prove_reload(&da, peer, &cfg_a),
        );
    }

    // Child SA rekey on demand (CREATE_CHILD_SA), traffic keeps flowing.
    if ike_ok {
        report.step(
            "rekey: causeway rekey -> new Child SA on both sides, old one deleted",
            || prove_rekey(lab, exe, &da, peer),
        );
    }

    if ike_ok {
        report.step(
            "rekey --ike: new IKE SA, the Child SA and BGP carry on",
            || prove_rekey_ike(lab, exe, &da, peer),
        );
    }

    // Operator actions: terminate (routes go), initiate (everything comes back).
    if ike_ok {
        report.step(
            "operator: terminate withdraws routes, initiate restores all",
            || prove_terminate_initiate(lab, exe, &da, peer, bgp_ok),
        );
    }

    // The operator CLI and metrics against a live daemon.
    report.step(
        "CLI: causeway status / sa / bgp / routes (text and --json)",
        || prove_cli(exe, &da),
    );
    report.step(
        "metrics: Prometheus endpoint reports tunnel and BGP",
        || prove_metrics(&lab.gw_a),
    );

    // Clean shutdown.
    report.step("shutdown: SIGTERM, exit 0, routes and TUN removed", || {
        let mut detail = vec![stop_clean(&mut da, &lab.gw_a.name, "gw-a")?];
        detail.extend(peer.stop()?);
        Ok(((), detail))
    });

    report.step(
        "secrets: the PSK appears in no causeway log (debug level)",
        || {
            let mut logs = vec![da.log.clone()];
            if kind == PeerKind::Causeway {
                logs.push(dir.join("causeway-b.log"));
            }
            check_psk_absent(dir, &logs).map(|d| ((), d))
        },
    );
    Some(())
}

/// Checks that the lab's PSK (`dir/lab.psk`) appears in none of `logs`: one line per log.
fn check_psk_absent(dir: &Path, logs: &[PathBuf]) -> Result<Vec<String>, String> {
    let psk = std::fs::read_to_string(dir.join("lab.psk")).map_err(|e| e.to_string())?;
    let psk = psk.trim();
    let mut detail = vec![];
    for log in logs {
        let text = std::fs::read_to_string(log).map_err(|e| format!("{}: {e}", log.display()))?;
        if psk.is_empty() || text.contains(psk) {
            return Err(format!("{} contains the PSK", log.display()));
        }
        detail.push(format!(
            "{}: {} lines, no PSK",
            log.file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default(),
            text.lines().count()
        ));
    }
    Ok(detail)
}

fn prove_ike(da: &Daemon, peer: &dyn Peer) -> Result<((), Vec<String>), String> {
    let got = wait_for(Duration::from_secs(30), || {
        let a = da.status().ok()?;
        let t = tunnel_of(&a)?;
        let c = t.child_sas.first()?;
        let theirs = peer.child_spis();
        // The peer's inbound SPI is our outbound one and the other way round.
        theirs
            .iter()
            .any(|(i, o)| *i == c.spi_out && *o == c.spi_in)
            .then(|| a.clone())
    });
    let Some(a) = got else {
        let a = da.status().ok();
        let err = a
            .as_ref()
            .and_then(tunnel_of)
            .map(|t| {
                format!(
                    "gw-a tunnel {}, child SAs {:?}{}",
                    t.state,
                    spi_pairs(t),
                    t.last_error
                        .as_deref()
                        .map(|e| format!(", last error: {e}"))
                        .unwrap_or_default()
                )
            })
            .unwrap_or_else(|| "no status from gw-a".into());
        return Err(format!(
            "no matching Child SA on both sides within 30 s: {err}; gw-b SAs {:?}; gw-a log: {}",
            peer.child_spis(),
            da.log_tail(3)
        ));
    };
    let ta = tunnel_of(&a).ok_or("no tunnel")?;
    let ca = ta.child_sas.first().ok_or("no child SA")?;
    let mut detail = vec![format!(
        "up within {:.1}s of gw-a's daemon start",
        da.started.elapsed().as_secs_f64()
    )];
    if let Some(ike) = &ta.ike_sa {
        detail.push(format!(
            "IKE SA {} spi {}_i {}_r ({})",
            ike.algorithms,
            ike.spi_i,
            ike.spi_r,
            if ike.initiator {
                "gw-a initiated"
            } else {
                "gw-b initiated"
            }
        ));
    }
    detail.push(format!(
        "Child SA {} {}: gw-a out {} = gw-b in, gw-b out {} = gw-a in (checked on both sides)",
        ca.algorithms, ca.encap, ca.spi_out, ca.spi_in
    ));
    detail.push(format!(
        "traffic selectors {} === {}",
        ca.local_ts.join(","),
        ca.remote_ts.join(",")
    ));
    Ok(((), detail))
}

fn prove_traffic(lab: &Lab, da: &Daemon, peer: &dyn Peer) -> Result<((), Vec<String>), String> {
    let before_a = tunnel_of(&da.status()?).ok_or("no tunnel")?.counters;
    let before_b = peer.packets();
    let n = 10u64;
    let wire = WireCounter::install(&lab.gw_b);
    let summary = ping(&lab.host_a, HOST_B, n as u32)?;
    let back = ping(&lab.host_b, HOST_A, 3)?;
    let wire_counts = wire.as_ref().map(|w| w.read());
    let a = tunnel_of(&da.status()?).ok_or("no tunnel")?.clone();
    let out_a = a.counters.packets_out - before_a.packets_out.min(a.counters.packets_out);
    let in_a = a.counters.packets_in - before_a.packets_in.min(a.counters.packets_in);
    let mut detail = vec![
        format!("ping {HOST_A} -> {HOST_B}: {summary}"),
        format!("ping {HOST_B} -> {HOST_A}: {back}"),
        format!("gw-a sealed {out_a} packets, opened {in_a}"),
    ];
    let mut b_ok = true;
    if let (Some((bi0, bo0)), Some((bi1, bo1))) = (before_b, peer.packets()) {
        let (in_b, out_b) = (bi1.saturating_sub(bi0), bo1.saturating_sub(bo0));
        detail.push(format!("gw-b opened {in_b} packets, sealed {out_b}"));
        b_ok = in_b >= n && out_b >= n;
    }
    detail.push(format!(
        "gw-a totals: out {} pkts / {} B, in {} pkts / {} B; drops: {}",
        a.counters.packets_out,
        a.counters.bytes_out,
        a.counters.packets_in,
        a.counters.bytes_in,
        drop_list(&a)
    ));
    if let Some(d) = peer.drops() {
        detail.push(format!("gw-b drops: {d}"));
    }
    match wire_counts {
        Some(Ok((esp_pkts, plain_pkts))) => {
            detail.push(format!(
                "on gw-b's WAN link: {esp_pkts} ESP packets in, {plain_pkts} plaintext 10.0.0.0/8 packets"
            ));
            if esp_pkts < n || plain_pkts > 0 {
                return Err(format!(
                    "wire check failed: {esp_pkts} ESP packets, {plain_pkts} plaintext packets on the WAN"
                ));
            }
        }
        Some(Err(e)) => return Err(format!("reading the nftables counters: {e}")),
        None => detail.push("nft missing: WAN capture check skipped".into()),
    }
    if out_a < n || in_a < n || !b_ok {
        return Err(format!(
            "ESP counters did not move by {n} packets each way ({})",
            detail[2..].join("; ")
        ));
    }
    Ok(((), detail))
}

fn prove_bgp(da: &Daemon, peer: &dyn Peer) -> Result<((), Vec<String>), String> {
    let est = |s: &Snapshot| {
        s.bgp
            .iter()
            .any(|n| n.state == "Established" && n.prefixes_accepted > 0)
    };
    let got = wait_for(Duration::from_secs(40), || {
        let a = da.status().ok()?;
        let b = peer.bgp_established()?;
        est(&a).then_some((a, b))
    });
    let Some((a, b)) = got else {
        let a = da.status().ok();
        let st = a
            .as_ref()
            .and_then(|s| s.bgp.first())
            .map(|n| {
                format!(
                    "gw-a neighbor {} {}{}",
                    n.address,
                    n.state,
                    n.last_error
                        .as_deref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                )
            })
            .unwrap_or_else(|| "no neighbor".into());
        return Err(format!(
            "not Established with routes within 40 s: {st}; gw-b: {}",
            peer.log_tail()
        ));
    };
    let mut detail = vec![format!(
        "Established within {:.1}s of gw-a's daemon start",
        da.started.elapsed().as_secs_f64()
    )];
    for n in &a.bgp {
        detail.push(neighbor_line("gw-a (AS 65010)", n));
    }
    detail.push(b);
    Ok(((), detail))
}

/// One BGP neighbor of `side`, for the report.
fn neighbor_line(side: &str, n: &NeighborStatus) -> String {
    format!(
        "{side}: neighbor {} AS{} {}: received {}, accepted {}, advertised {}",
        n.address,
        n.remote_asn,
        n.state,
        n.prefixes_received,
        n.prefixes_accepted,
        n.prefixes_advertised
    )
}

fn prove_routes(lab: &Lab, peer: &dyn Peer) -> Result<((), Vec<String>), String> {
    let proto = PROTO.to_string();
    let mut detail = vec![];
    let got = wait_for(Duration::from_secs(10), || {
        let text = lab.gw_a.ip(&["route", "show", "proto", &proto]).ok()?;
        ANNOUNCE_B
            .iter()
            .all(|p| text.lines().any(|l| l.starts_with(p) && l.contains(IFACE)))
            .then_some(text)
    });
    match got {
        Some(text) => {
            for l in text.lines() {
                detail.push(format!("gw-a: {}", l.trim()));
            }
        }
        None => {
            let text = lab
                .gw_a
                .ip(&["route", "show", "proto", &proto])
                .unwrap_or_default();
            return Err(format!(
                "gw-a: expected {} dev {IFACE} proto {PROTO}, kernel has: {}",
                ANNOUNCE_B.join(", "),
                if text.trim().is_empty() {
                    "none"
                } else {
                    text.trim()
                }
            ));
        }
    }
    if wait_for(Duration::from_secs(10), || {
        ANNOUNCE_A.iter().all(|p| peer.learned(p)).then_some(())
    })
    .is_none()
    {
        return Err(format!("gw-b did not learn {}", ANNOUNCE_A.join(", ")));
    }
    detail.push(format!("gw-b learned {} from gw-a", ANNOUNCE_A.join(", ")));
    let get = lab.gw_a.ip(&["route", "get", HOST_B])?;
    if !get.contains(IFACE) {
        return Err(format!(
            "route to {HOST_B} does not use {IFACE}: {}",
            get.trim()
        ));
    }
    let summary = ping(&lab.host_a, HOST_B, 3)?;
    detail.push(format!(
        "route get {HOST_B}: {}",
        get.lines().next().unwrap_or("").trim()
    ));
    detail.push(format!("ping over the BGP route: {summary}"));
    Ok(((), detail))
}

fn prove_terminate_initiate(
    lab: &Lab,
    exe: &Path,
    da: &Daemon,
    peer: &dyn Peer,
    with_bgp: bool,
) -> Result<((), Vec<String>), String> {
    let proto = PROTO.to_string();
    let bgp_routes = |ns: &Netns| -> usize {
        ns.ip(&["route", "show", "proto", &proto])
            .unwrap_or_default()
            .lines()
            .filter(|l| ANNOUNCE_B.iter().any(|p| l.starts_with(p)))
            .count()
    };
    let mut detail = vec![];
    let t0 = Instant::now();
    detail.push(format!(
        "causeway terminate {TUNNEL}: {}",
        cli(exe, da, &["terminate", TUNNEL])?
    ));
    let down = wait_for(Duration::from_secs(10), || {
        let a = da.status().ok()?;
        let gone = tunnel_of(&a).is_some_and(|t| t.child_sas.is_empty());
        (gone && peer.child_spis().is_empty() && bgp_routes(&lab.gw_a) == 0).then_some(())
    });
    if down.is_none() {
        return Err(format!(
            "after terminate: SAs or BGP routes still present (gw-b SAs {:?}, gw-a BGP routes: {})",
            peer.child_spis(),
            bgp_routes(&lab.gw_a)
        ));
    }
    detail.push(format!(
        "SAs deleted on both sides{} in {:.1}s",
        if with_bgp {
            " and BGP routes withdrawn from gw-a's kernel"
        } else {
            ""
        },
        t0.elapsed().as_secs_f64()
    ));
    if ping(&lab.host_a, HOST_B, 1).is_ok() {
        return Err("host-a still reaches host-b with the tunnel terminated".into());
    }
    detail.push("host-a cannot reach host-b while terminated".into());
    let t1 = Instant::now();
    detail.push(format!(
        "causeway initiate {TUNNEL}: {}",
        cli(exe, da, &["initiate", TUNNEL])?
    ));
    let want_routes = if with_bgp { ANNOUNCE_B.len() } else { 0 };
    let up = wait_for(Duration::from_secs(40), || {
        let a = da.status().ok()?;
        let est = tunnel_of(&a).is_some_and(|t| t.state == "established")
            && (!with_bgp || a.bgp.iter().all(|n| n.state == "Established"));
        (est && bgp_routes(&lab.gw_a) == want_routes).then_some(())
    });
    if up.is_none() {
        let a = da.status().ok();
        let st = a
            .as_ref()
            .map(|s| {
                format!(
                    "tunnel {}, BGP {}",
                    tunnel_of(s).map(|t| t.state.as_str()).unwrap_or("?"),
                    s.bgp.first().map(|n| n.state.as_str()).unwrap_or("?")
                )
            })
            .unwrap_or_default();
        return Err(format!("not back within 40 s after initiate: {st}"));
    }
    let summary = ping(&lab.host_a, HOST_B, 3)?;
    detail.push(format!(
        "tunnel{} back in {:.1}s; ping: {summary}",
        if with_bgp {
            format!(", BGP session and {want_routes} BGP routes")
        } else {
            String::new()
        },
        t1.elapsed().as_secs_f64()
    ));
    Ok(((), detail))
}

/// The prefix gw-a starts announcing on reload.
const RELOAD_PREFIX: &str = "10.1.2.0/24";

fn prove_reload(da: &Daemon, peer: &dyn Peer, cfg_a: &Path) -> Result<((), Vec<String>), String> {
    let text = std::fs::read_to_string(cfg_a).map_err(|e| e.to_string())?;
    let old = format!("announce = [\"{}\"]", ANNOUNCE_A[0]);
    let new = format!("announce = [\"{}\", \"{RELOAD_PREFIX}\"]", ANNOUNCE_A[0]);
    if !text.contains(&old) {
        return Err("cannot find the announce line in gw-a's config".into());
    }
    std::fs::write(cfg_a, text.replace(&old, &new)).map_err(|e| e.to_string())?;
    let uptime = || {
        da.status()
            .ok()
            .and_then(|s| s.bgp.first().and_then(|n| n.uptime_secs))
    };
    let before = uptime().ok_or("BGP is not Established before the reload")?;
    let t0 = Instant::now();
    da.signal(libc::SIGHUP)?;
    let got = wait_for(Duration::from_secs(10), || {
        peer.learned(RELOAD_PREFIX).then_some(())
    });
    let after = uptime().unwrap_or(0);
    if got.is_none() {
        return Err(format!(
            "gw-b did not learn {RELOAD_PREFIX} within 10 s of SIGHUP; gw-a log: {}",
            da.log_tail(3)
        ));
    }
    if after < before {
        return Err(format!(
            "the BGP session restarted on reload (uptime {before}s -> {after}s)"
        ));
    }
    Ok((
        (),
        vec![
            format!("gw-a config: {new}"),
            format!(
                "gw-b learned {RELOAD_PREFIX} {:.1}s after SIGHUP; session stayed up (uptime {before}s -> {after}s)",
                t0.elapsed().as_secs_f64()
            ),
        ],
    ))
}

/// Runs the causeway CLI against a daemon's control socket: what it printed (stdout,
/// trimmed), or an error with its stderr.
fn cli(exe: &Path, d: &Daemon, args: &[&str]) -> Result<String, String> {
    let out = Command::new(exe)
        .arg("--socket")
        .arg(&d.socket)
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "`causeway {}` failed: {} {stdout}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn prove_rekey(
    lab: &Lab,
    exe: &Path,
    da: &Daemon,
    peer: &dyn Peer,
) -> Result<((), Vec<String>), String> {
    let old = daemon_child_spis(da);
    let Some((old_in, old_out)) = old.last().cloned() else {
        return Err("no Child SA to rekey".into());
    };
    let t0 = Instant::now();
    let mut detail = vec![format!(
        "causeway rekey {TUNNEL}: {}",
        cli(exe, da, &["rekey", TUNNEL])?
    )];
    let got = wait_for(Duration::from_secs(20), || {
        let now = daemon_child_spis(da);
        let [(new_in, new_out)] = now.as_slice() else {
            return None;
        };
        let theirs = peer.child_spis();
        (*new_in != old_in
            && theirs.len() == 1
            && theirs.iter().any(|(i, o)| i == new_out && o == new_in))
        .then(|| (new_in.clone(), new_out.clone()))
    });
    let Some((new_in, new_out)) = got else {
        return Err(format!(
            "no clean rekey within 20 s: gw-a SAs {:?}, gw-b SAs {:?}",
            daemon_child_spis(da),
            peer.child_spis()
        ));
    };
    detail.push(format!(
        "in {old_in} / out {old_out} -> in {new_in} / out {new_out} in {:.1}s; the old pair is gone on both sides",
        t0.elapsed().as_secs_f64()
    ));
    let summary = ping(&lab.host_a, HOST_B, 3)?;
    detail.push(format!("ping with the new SA: {summary}"));
    Ok(((), detail))
}

/// A child process killed on drop.
struct Reap(Option<Child>);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn prove_throughput(lab: &Lab) -> Result<((), Vec<String>), String> {
    let server = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.host_b.name,
            "iperf3",
            "-s",
            "-1",
            "-B",
            HOST_B,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("iperf3 -s: {e}"))?;
    let _server = Reap(Some(server));
    // Wait for the server to listen.
    std::thread::sleep(Duration::from_millis(300));
    let mut out = None;
    for _ in 0..5 {
        match lab.host_a.exec("iperf3", &["-c", HOST_B, "-t", "3", "-J"]) {
            Ok(o) => {
                out = Some(o);
                break;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(300)),
        }
    }
    let out = out.ok_or("iperf3 client failed")?;
    // A kernel drop counter of each gateway: "gw-a N, gw-b M".
    let per_gateway = |counter: fn(&Netns) -> Option<u64>| {
        [("gw-a", &lab.gw_a), ("gw-b", &lab.gw_b)]
            .iter()
            .map(|(tag, ns)| {
                format!(
                    "{tag} {}",
                    counter(ns).map_or("?".into(), |n| n.to_string())
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let v: serde_json::Value =
        serde_json::from_str(&out).map_err(|e| format!("iperf3 JSON: {e}"))?;
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .ok_or("no sum_received in iperf3 output")?;
    let retr = v["end"]["sum_sent"]["retransmits"].as_u64().unwrap_or(0);
    if bps <= 0.0 {
        return Err("no data went through".into());
    }
    Ok((
        (),
        vec![format!(
            "{:.0} Mbit/s received over 3 s, {retr} TCP retransmissions (single stream; {} build); kernel drops: UDP receive buffers {}; {IFACE} queue (causeway not reading fast enough) {}",
            bps / 1e6,
            if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
            per_gateway(udp_rcvbuf_errors),
            per_gateway(tun_tx_dropped)
        )],
    ))
}

fn prove_forced(lab: &Lab) -> Result<((), Vec<String>), String> {
    // 0.0.0.0/0 goes in as its two /1 halves: they win over the system's default
    // route without replacing it (so shutdown cannot leave the host without one).
    let proto = PROTO.to_string();
    let ours = lab.gw_a.ip(&["route", "show", "proto", &proto])?;
    for half in ["0.0.0.0/1", "128.0.0.0/1"] {
        if !ours
            .lines()
            .any(|l| l.starts_with(half) && l.contains(IFACE))
        {
            return Err(format!(
                "gw-a has no {half} route via {IFACE} (proto {PROTO}): {}",
                ours.trim()
            ));
        }
    }
    let default = ours
        .lines()
        .filter(|l| l.ends_with("/1") || l.contains("/1 "))
        .collect::<Vec<_>>()
        .join("; ");
    let pin = lab.gw_a.ip(&["route", "get", WAN_B])?;
    if !pin.contains("dev wan") {
        return Err(format!(
            "the peer {WAN_B} is not reached via the WAN: {}",
            pin.trim()
        ));
    }
    // An address outside every announced prefix still goes into the tunnel.
    let other = lab.gw_a.ip(&["route", "get", "203.0.113.9"])?;
    if !other.contains(IFACE) {
        return Err(format!(
            "203.0.113.9 does not go into {IFACE}: {}",
            other.trim()
        ));
    }
    let summary = ping(&lab.host_a, HOST_B, 3)?;
    // An "internet" address behind gw-b (site B's local_ts is 0.0.0.0/0): host-a reaches
    // it through the tunnel, and the answer comes back through it.
    lab.gw_b
        .ip(&["addr", "add", "203.0.113.9/32", "dev", "lo"])
        .map_err(|e| format!("adding 203.0.113.9 to gw-b: {e}"))?;
    let internet = ping(&lab.host_a, "203.0.113.9", 3)
        .map_err(|e| format!("host-a cannot reach 203.0.113.9 behind gw-b: {e}"))?;
    Ok((
        (),
        vec![
            format!("gw-a (proto {PROTO}): {default}"),
            format!(
                "host-a -> 203.0.113.9 (an address behind gw-b, outside every LAN): {internet}"
            ),
            format!(
                "gw-a: route get {WAN_B}: {}",
                pin.lines().next().unwrap_or("").trim()
            ),
            format!(
                "gw-a: route get 203.0.113.9: {}",
                other.lines().next().unwrap_or("").trim()
            ),
            format!("IKE/ESP keep flowing on the WAN; ping: {summary}"),
        ],
    ))
}

/// `RcvbufErrors` of the namespace's UDP stack (datagrams the kernel dropped because a
/// socket's receive buffer was full: invisible to causeway's own counters).
fn udp_rcvbuf_errors(ns: &Netns) -> Option<u64> {
    let snmp = ns.exec("cat", &["/proc/net/snmp"]).ok()?;
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let names: Vec<&str> = udp.next()?.split_whitespace().collect();
    let values: Vec<&str> = udp.next()?.split_whitespace().collect();
    let i = names.iter().position(|n| *n == "RcvbufErrors")?;
    values.get(i)?.parse().ok()
}

/// Packets the kernel dropped when queueing them to the TUN device for causeway to read.
fn tun_tx_dropped(ns: &Netns) -> Option<u64> {
    let j = ns.ip(&["-s", "-j", "link", "show", IFACE]).ok()?;
    let v: serde_json::Value = serde_json::from_str(&j).ok()?;
    v.get(0)?
        .get("stats64")?
        .get("tx")?
        .get("dropped")?
        .as_u64()
}

fn prove_nat(n: &Netns, da: &Daemon) -> Result<((), Vec<String>), String> {
    let s = da.status()?;
    let t = tunnel_of(&s).ok_or("no tunnel")?;
    let c = t.child_sas.first().ok_or("no Child SA")?;
    if c.encap != "udp" {
        return Err(format!(
            "Child SA uses {} although gw-a is behind NAT",
            c.encap
        ));
    }
    let text = n.exec("nft", &["list", "table", "ip", "cwnat"])?;
    let packets = nft_counter(&text, "natt").ok_or("no NAT-T counter on the NAT router")?;
    if packets == 0 {
        return Err("no UDP 4500 packets went through the NAT".into());
    }
    Ok((
        (),
        vec![
            format!(
                "gw-a {WAN_A_PRIVATE} is seen as {WAN_A}; Child SA {} encap {}",
                c.algorithms, c.encap
            ),
            format!("{packets} UDP/4500 packets (IKE + ESP) masqueraded by the NAT router"),
        ],
    ))
}

fn prove_rekey_ike(
    lab: &Lab,
    exe: &Path,
    da: &Daemon,
    peer: &dyn Peer,
) -> Result<((), Vec<String>), String> {
    /// (IKE SPIs, IKE algorithms, Child SA SPI pairs, BGP uptime).
    type View = (String, String, Vec<(String, String)>, Option<u64>);
    let view = || -> Option<View> {
        let s = da.status().ok()?;
        let t = tunnel_of(&s)?;
        let ike = t.ike_sa.as_ref()?;
        Some((
            format!("{}_i {}_r", ike.spi_i, ike.spi_r),
            ike.algorithms.clone(),
            spi_pairs(t),
            s.bgp.first().and_then(|n| n.uptime_secs),
        ))
    };
    let (old_ike, _, old_children, up_before) = view().ok_or("no IKE SA")?;
    let t0 = Instant::now();
    let mut detail = vec![format!(
        "causeway rekey {TUNNEL} --ike: {}",
        cli(exe, da, &["rekey", TUNNEL, "--ike"])?
    )];
    let got = wait_for(Duration::from_secs(20), || {
        let (ike, algs, children, _) = view()?;
        (ike != old_ike && ike.len() > 8).then_some((ike, algs, children))
    });
    let Some((new_ike, algs, children)) = got else {
        return Err(format!(
            "IKE SA not rekeyed within 20 s (still {old_ike}); gw-a log: {}",
            da.log_tail(3)
        ));
    };
    detail.push(format!(
        "IKE SA {old_ike} -> {new_ike} ({algs}) in {:.1}s",
        t0.elapsed().as_secs_f64()
    ));
    if children != old_children {
        return Err(format!(
            "the Child SAs changed on an IKE rekey: {old_children:?} -> {children:?}"
        ));
    }
    let theirs = peer.child_spis();
    if !children
        .iter()
        .all(|(i, o)| theirs.iter().any(|(pi, po)| pi == o && po == i))
    {
        return Err(format!(
            "gw-b's Child SAs {theirs:?} no longer match {children:?}"
        ));
    }
    detail.push(format!(
        "Child SA unchanged on both sides ({})",
        children
            .iter()
            .map(|(i, o)| format!("in {i} / out {o}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if let (Some(before), Some((_, _, _, Some(after)))) = (up_before, view()) {
        if after < before {
            return Err(format!("BGP restarted (uptime {before}s -> {after}s)"));
        }
        detail.push(format!(
            "BGP session stayed up (uptime {before}s -> {after}s)"
        ));
    }
    let summary = ping(&lab.host_a, HOST_B, 3)?;
    detail.push(format!("ping: {summary}"));
    Ok(((), detail))
}
