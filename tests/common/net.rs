//! Network-namespace scaffolding of the daemon tests (gateway_e2e, wan, rekey_soak): namespaces,
//! `causeway run` processes, the two-site topology with an optional router or NAT on the
//! WAN, site configs. Everything is removed by Drop guards, also when a test fails.
//!
//! ```text
//!  Direct:  host-a 10.1.0.10 ── gw-a 192.0.2.1 ══════════════════════ 198.51.100.7 gw-b ── host-b 10.2.0.10
//!  Routed:  host-a ── gw-a 192.0.2.1 ══ .254 router 198.51.100.254 ══ 198.51.100.7 gw-b ── host-b
//!  Nat:     host-a ── gw-a 192.168.100.2 ══ .1 NAT (public 192.0.2.1) ══ 198.51.100.7 gw-b ── host-b
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::run;

/// The daemon under test.
pub const EXE: &str = env!("CARGO_BIN_EXE_causeway");
/// The tunnel's name in both sites' configs.
pub const TUNNEL: &str = "e2e";
/// The tunnel's TUN device on both gateways (the default name, `cw-<tunnel>`).
pub const IFACE: &str = "cw-e2e";
/// gw-a's (public) WAN address.
pub const WAN_A: &str = "192.0.2.1";
/// gw-b's WAN address.
pub const WAN_B: &str = "198.51.100.7";
/// A host behind gw-a.
pub const HOST_A: &str = "10.1.0.10";
/// A host behind gw-b.
pub const HOST_B: &str = "10.2.0.10";
/// gw-a's private WAN address behind the NAT ([`Wan::Nat`]).
pub const WAN_A_PRIVATE: &str = "192.168.100.2";
/// The NAT router's inside address ([`Wan::Nat`]).
pub const NAT_INSIDE: &str = "192.168.100.1";
/// The router's addresses on gw-a's and gw-b's WAN subnets ([`Wan::Routed`]).
pub const ROUTER_A: &str = "192.0.2.254";
/// See [`ROUTER_A`].
pub const ROUTER_B: &str = "198.51.100.254";

/// A network namespace, deleted on drop.
pub struct Netns {
    /// Its name (`cw-<test>-<pid>-<role>`).
    pub name: String,
}

impl Netns {
    /// Creates the namespace (after removing a leftover of the same name) with `lo` up.
    pub fn create(name: String) -> Self {
        // A namespace of the same name can only be left over from a killed run of this pid.
        let _ = run("ip", &["netns", "del", &name]);
        run("ip", &["netns", "add", &name]).unwrap_or_else(|e| panic!("{e}"));
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n NAME ARGS`; panics on failure.
    pub fn ip(&self, args: &[&str]) {
        let mut v = vec!["-n", self.name.as_str()];
        v.extend_from_slice(args);
        run("ip", &v).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Runs a program inside the namespace.
    pub fn exec(&self, prog: &str, args: &[&str]) -> Result<String, String> {
        let mut v = vec!["netns", "exec", self.name.as_str(), prog];
        v.extend_from_slice(args);
        run("ip", &v)
    }

    /// Sets sysctls inside the namespace; panics on failure.
    pub fn sysctl(&self, kv: &[(&str, &str)]) {
        for (k, v) in kv {
            self.exec("sysctl", &["-qw", &format!("{k}={v}")])
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// Loads an nftables ruleset (text) inside the namespace.
    pub fn nft(&self, rules: &str) -> Result<String, String> {
        use std::io::Write as _;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("nft: {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(rules.as_bytes())
                .map_err(|e| format!("nft stdin: {e}"))?;
        }
        let out = child.wait_with_output().map_err(|e| format!("nft: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "nft -f: {}\n{rules}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// One `Udp:` counter of this namespace's /proc/net/snmp (0 when missing).
    pub fn udp_stat(&self, stat: &str) -> u64 {
        let snmp = self.exec("cat", &["/proc/net/snmp"]).unwrap_or_default();
        let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
        let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
            return 0;
        };
        names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(n, _)| *n == stat)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    }

    /// Udp RcvbufErrors of this namespace (datagrams the kernel dropped on a full socket).
    pub fn udp_rcvbuf_errors(&self) -> u64 {
        self.udp_stat("RcvbufErrors")
    }

    /// Sum of the `drops` column of /proc/net/raw (raw ESP sockets with a full buffer).
    pub fn raw_drops(&self) -> u64 {
        let raw = self.exec("cat", &["/proc/net/raw"]).unwrap_or_default();
        raw.lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
            .sum()
    }

    /// One counter of /sys/class/net/DEV/statistics (0 when missing).
    pub fn link_stat(&self, dev: &str, stat: &str) -> u64 {
        let out = self
            .exec("cat", &[&format!("/sys/class/net/{dev}/statistics/{stat}")])
            .unwrap_or_default();
        out.trim().parse().unwrap_or(0)
    }

    /// TX drops of an interface (for a TUN: packets its reader did not take in time).
    pub fn tx_dropped(&self, dev: &str) -> u64 {
        self.link_stat(dev, "tx_dropped")
    }

    /// The receive buffer (`skmem` rb, bytes) of the UDP socket bound to `port` here.
    pub fn udp_rcvbuf(&self, port: u16) -> Option<u64> {
        let out = self
            .exec("ss", &["-uamn", "sport", "=", &format!(":{port}")])
            .ok()?;
        let at = out.find(",rb")? + 3;
        let digits: String = out[at..].chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    }

    /// Spawns `PROG ARGS` inside the namespace: stdin null, stdout as given, stderr piped.
    pub fn spawn(&self, prog: &str, args: &[&str], stdout: Stdio) -> Child {
        Command::new("ip")
            .args(["netns", "exec", &self.name, prog])
            .args(args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {prog} in {}: {e}", self.name))
    }

    /// Packets counted by the nftables rule carrying `comment "NAME"` in `table`
    /// (e.g. `inet cwloss`), or `None` if there is no such rule.
    pub fn nft_counter(&self, table: &str, name: &str) -> Option<u64> {
        let mut args = vec!["list", "table"];
        args.extend(table.split_whitespace());
        let text = self.exec("nft", &args).ok()?;
        let line = text
            .lines()
            .find(|l| l.contains(&format!("comment \"{name}\"")))?;
        let mut words = line.split_whitespace();
        words.find(|w| *w == "packets")?;
        words.next()?.parse().ok()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

/// A `causeway run` in a namespace; SIGTERM, then SIGKILL, on drop.
pub struct Daemon {
    child: Option<Child>,
    socket: PathBuf,
    log: PathBuf,
}

impl Daemon {
    /// Starts `causeway run -c CONFIG` in `ns`, logging at debug level to `log`.
    pub fn start(ns: &Netns, config: &Path, socket: &Path, log: &Path) -> Self {
        Self::start_at(ns, config, socket, log, "debug")
    }

    /// Like [`Daemon::start`] with another `RUST_LOG` level (a flood at debug level
    /// would mostly measure the logging).
    pub fn start_at(ns: &Netns, config: &Path, socket: &Path, log: &Path, level: &str) -> Self {
        Self::start_opts(ns, config, socket, log, level, false)
    }

    /// Like [`Daemon::start_at`]; with `append` the log keeps what an earlier run of the
    /// same site wrote (a restarted daemon).
    pub fn start_opts(
        ns: &Netns,
        config: &Path,
        socket: &Path,
        log: &Path,
        level: &str,
        append: bool,
    ) -> Self {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(log)
            .expect("daemon log");
        let err = file.try_clone().expect("clone log fd");
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, EXE, "run", "-c"])
            .arg(config)
            // Debug level: not even debug logs may carry a PSK.
            .env("RUST_LOG", level)
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

    /// The daemon's pid (`ip netns exec` execs the program: the pid is causeway's own).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The control socket's path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The log file's path.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// SIGKILL (no Deletes sent), and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Resident set size in KiB (`VmRSS` of /proc/PID/status).
    pub fn rss_kib(&self) -> Option<u64> {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let line = text.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// `causeway --socket S ARGS`.
    pub fn cli(&self, args: &[&str]) -> Result<String, String> {
        let mut v = vec!["--socket", self.socket.to_str().unwrap_or_default()];
        v.extend_from_slice(args);
        run(EXE, &v)
    }

    /// `causeway status --json`, parsed.
    pub fn status(&self) -> Option<Value> {
        serde_json::from_str(&self.cli(&["status", "--json"]).ok()?).ok()
    }

    /// The tunnel's entry of `causeway status --json`.
    pub fn tunnel(&self) -> Option<Value> {
        self.status()?
            .get("tunnels")?
            .as_array()?
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some(TUNNEL))
            .cloned()
    }

    /// The tunnel's drop counter for `reason` (0 when absent).
    pub fn drops(&self, reason: &str) -> u64 {
        self.tunnel()
            .and_then(|t| t.get("drops")?.get(reason)?.as_u64())
            .unwrap_or(0)
    }

    /// The whole log.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` log lines.
    pub fn log_tail(&self, n: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(n)..].join("\n")
    }

    /// SIGTERM, then SIGKILL after 5 s.
    pub fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            stop_child(child);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// SIGTERM, then SIGKILL after 5 s.
fn stop_child(mut child: Child) {
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

/// A child process: SIGTERM, then SIGKILL after 5 s, on drop.
pub struct Proc(pub Option<Child>);

impl Proc {
    /// Spawns `ip netns exec NS PROG ARGS` with stdio discarded.
    pub fn spawn_in(ns: &Netns, prog: &str, args: &[&str]) -> Proc {
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, prog])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {prog}: {e}"));
        Proc(Some(child))
    }
}

impl Proc {
    /// Waits up to `timeout` for the process to exit (SIGKILL after that) and returns its
    /// stdout, or an error with its exit code, stderr and stdout.
    pub fn wait_output(mut self, timeout: Duration) -> Result<String, String> {
        let mut c = self.0.take().ok_or("no process")?;
        let until = Instant::now() + timeout;
        loop {
            match c.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                _ => {
                    let _ = c.kill();
                    let _ = c.wait();
                    return Err("timed out".into());
                }
            }
        }
        let out = c.wait_with_output().map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "exit {:?}: {} {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).trim(),
                String::from_utf8_lossy(&out.stdout).trim()
            ))
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(child) = self.0.take() {
            stop_child(child);
        }
    }
}

/// A temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A host-wide sysctl raised to at least a value (never lowered), restored on drop.
/// Only for socket buffer limits/defaults, which namespaces cannot set.
pub struct HostSysctl {
    key: &'static str,
    old: Option<u64>,
}

impl HostSysctl {
    fn path(key: &str) -> String {
        format!("/proc/sys/{}", key.replace('.', "/"))
    }

    /// Raises `key` (e.g. `net.core.rmem_max`) to `min` if it is lower.
    pub fn raise(key: &'static str, min: u64) -> HostSysctl {
        let path = Self::path(key);
        let cur = std::fs::read_to_string(&path)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok());
        let old = match cur {
            Some(c) if c < min => match std::fs::write(&path, min.to_string()) {
                Ok(()) => Some(c),
                Err(e) => {
                    eprintln!("note: cannot raise {key} to {min}: {e}");
                    None
                }
            },
            _ => None,
        };
        HostSysctl { key, old }
    }
}

impl Drop for HostSysctl {
    fn drop(&mut self) {
        if let Some(old) = self.old {
            let _ = std::fs::write(Self::path(self.key), old.to_string());
        }
    }
}

/// What joins the two gateways.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wan {
    /// One veth pair, gw-a ═ gw-b.
    Direct,
    /// A router namespace in between (for loss rules and floods in its forward path).
    Routed,
    /// A masquerading NAT router in front of gw-a (public address [`WAN_A`], private
    /// [`WAN_A_PRIVATE`]); its nftables table is `ip cwnat`, see [`nat_rules`].
    Nat,
}

/// Namespaces and files. Field order is drop order: namespaces, then files. Daemons are
/// kept in separate variables declared after the `Net`, so they are dropped first.
pub struct Net {
    /// host-a.
    pub host_a: Netns,
    /// host-b.
    pub host_b: Netns,
    /// gw-a.
    pub gw_a: Netns,
    /// gw-b.
    pub gw_b: Netns,
    /// The router or NAT between the gateways ([`Wan::Routed`], [`Wan::Nat`]).
    pub router: Option<Netns>,
    /// What joins the gateways.
    pub wan: Wan,
    /// Configs, PSKs, logs, sockets.
    pub dir: TempDir,
}

impl Net {
    /// The router namespace; panics for [`Wan::Direct`].
    pub fn router(&self) -> &Netns {
        self.router.as_ref().expect("a topology with a router")
    }

    /// gw-a's own outer address.
    pub fn wan_a_local(&self) -> &'static str {
        if self.wan == Wan::Nat {
            WAN_A_PRIVATE
        } else {
            WAN_A
        }
    }
}

/// Polls `f` every 100 ms until it gives a value or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, f: impl FnMut() -> Option<T>) -> Option<T> {
    wait_for_every(timeout, Duration::from_millis(100), f)
}

/// Polls `f` every `period` until it gives a value or `timeout` passes.
pub fn wait_for_every<T>(
    timeout: Duration,
    period: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let until = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(period);
    }
}

/// A random hex PSK (32 characters).
pub fn random_psk() -> String {
    let mut rnd = [0u8; 16];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").expect("urandom"),
        &mut rnd,
    )
    .expect("urandom");
    rnd.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes a file only its owner can read (a PSK, a swanctl.conf with secrets).
pub fn write_secret(path: &Path, text: &str) {
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

/// The NAT router's ruleset: masquerade what leaves towards gw-b to source ports
/// `ports` (e.g. `30000-30099`), and count what crosses on UDP 4500 (comments
/// `ka_out`: NAT keepalives, one 0xFF byte, from gw-a; `natt_out`: other UDP 4500 from
/// gw-a; `natt_in`: UDP 4500 from gw-b).
pub fn nat_rules(ports: &str) -> String {
    format!(
        "table ip cwnat {{
  chain xfer {{
    type filter hook forward priority 0;
    iifname \"wa\" udp dport 4500 udp length 9 @th,64,8 0xff counter comment \"ka_out\"
    iifname \"wa\" udp dport 4500 udp length != 9 counter comment \"natt_out\"
    iifname \"wb\" udp sport 4500 counter comment \"natt_in\"
  }}
  chain post {{
    type nat hook postrouting priority 100;
    oifname \"wb\" meta l4proto udp masquerade to :{ports}
    oifname \"wb\" masquerade
  }}
}}
"
    )
}

/// One WAN interface: (namespace, interface, address/len, routes as (destination, via
/// or "" for on-link)).
type Addressing<'a> = (&'a Netns, &'a str, String, Vec<(String, String)>);

/// Builds host-a — gw-a ══ gw-b — host-b for test `test`, gateways directly joined.
pub fn topology(test: &str) -> Net {
    topology_with(test, Wan::Direct)
}

/// Builds the two sites joined as `wan` says (see the module docs).
pub fn topology_with(test: &str, wan: Wan) -> Net {
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("cw-{test}-{pid}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let dir = TempDir(dir);
    let host_a = Netns::create(format!("cw-{test}-{pid}-ha"));
    let host_b = Netns::create(format!("cw-{test}-{pid}-hb"));
    let gw_a = Netns::create(format!("cw-{test}-{pid}-a"));
    let gw_b = Netns::create(format!("cw-{test}-{pid}-b"));
    let router = (wan != Wan::Direct).then(|| Netns::create(format!("cw-{test}-{pid}-r")));
    let forwarding = [
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv4.conf.all.rp_filter", "0"),
        ("net.ipv4.conf.default.rp_filter", "0"),
    ];
    // veth pairs are created inside the namespaces: never visible in the root namespace.
    match &router {
        None => gw_a.ip(&[
            "link", "add", "wan", "type", "veth", "peer", "name", "wan", "netns", &gw_b.name,
        ]),
        Some(r) => {
            r.ip(&[
                "link", "add", "wa", "type", "veth", "peer", "name", "wan", "netns", &gw_a.name,
            ]);
            r.ip(&[
                "link", "add", "wb", "type", "veth", "peer", "name", "wan", "netns", &gw_b.name,
            ]);
            r.sysctl(&forwarding);
        }
    }
    for (gw, host) in [(&gw_a, &host_a), (&gw_b, &host_b)] {
        gw.ip(&[
            "link", "add", "lan", "type", "veth", "peer", "name", "eth0", "netns", &host.name,
        ]);
    }
    let row = |ns, dev, addr: &str, routes: &[(&str, &str)]| -> Addressing {
        let routes = routes
            .iter()
            .map(|(d, v)| (d.to_string(), v.to_string()))
            .collect();
        (ns, dev, format!("{addr}/24"), routes)
    };
    let a_host = format!("{WAN_A}/32");
    let b_host = format!("{WAN_B}/32");
    // gw-b sees gw-a (or the NAT's public address) on its link, or via the router.
    let gw_b_row = match wan {
        Wan::Routed => row(&gw_b, "wan", WAN_B, &[("192.0.2.0/24", ROUTER_B)]),
        Wan::Direct | Wan::Nat => row(&gw_b, "wan", WAN_B, &[(&a_host, "")]),
    };
    let mut plan = vec![gw_b_row];
    match &router {
        None => plan.push(row(&gw_a, "wan", WAN_A, &[(&b_host, "")])),
        Some(r) if wan == Wan::Nat => plan.extend([
            row(
                &gw_a,
                "wan",
                WAN_A_PRIVATE,
                &[("198.51.100.0/24", NAT_INSIDE)],
            ),
            row(r, "wa", NAT_INSIDE, &[]),
            row(r, "wb", WAN_A, &[(&b_host, "")]),
        ]),
        Some(r) => plan.extend([
            row(&gw_a, "wan", WAN_A, &[("198.51.100.0/24", ROUTER_A)]),
            row(r, "wa", ROUTER_A, &[]),
            row(r, "wb", ROUTER_B, &[]),
        ]),
    }
    for (ns, dev, addr, routes) in &plan {
        ns.ip(&["addr", "add", addr, "dev", dev]);
        ns.ip(&["link", "set", dev, "up"]);
        for (dst, via) in routes {
            if via.is_empty() {
                ns.ip(&["route", "add", dst, "dev", dev]);
            } else {
                ns.ip(&["route", "add", dst, "via", via]);
            }
        }
    }
    if let (Some(r), Wan::Nat) = (&router, wan) {
        r.nft(&nat_rules("30000-30099"))
            .unwrap_or_else(|e| panic!("NAT rules: {e}"));
    }
    for (gw, lan, host, host_addr) in [
        (&gw_a, "10.1.0.1", &host_a, "10.1.0.10/24"),
        (&gw_b, "10.2.0.1", &host_b, "10.2.0.10/24"),
    ] {
        gw.ip(&["addr", "add", &format!("{lan}/24"), "dev", "lan"]);
        gw.ip(&["link", "set", "lan", "up"]);
        gw.sysctl(&forwarding);
        host.ip(&["addr", "add", host_addr, "dev", "eth0"]);
        host.ip(&["link", "set", "eth0", "up"]);
        host.ip(&["route", "add", "default", "via", lan]);
    }
    Net {
        host_a,
        host_b,
        gw_a,
        gw_b,
        router,
        wan,
        dir,
    }
}

/// Config of gw-a (`a_side`, initiates) or gw-b (waits), reading the PSK from `psk_file`.
/// Behind the NAT gw-a uses its private address and identifies with the public one.
pub fn site_config(net: &Net, a_side: bool, psk_file: &str, extra: &str) -> String {
    let (tag, wan, peer, local, remote, start) = if a_side {
        (
            "a",
            net.wan_a_local(),
            WAN_B,
            "10.1.0.0/24",
            "10.2.0.0/24",
            "start",
        )
    } else {
        ("b", WAN_B, WAN_A, "10.2.0.0/24", "10.1.0.0/24", "none")
    };
    let id = if a_side && net.wan == Wan::Nat {
        format!("local_id = \"{WAN_A}\"\n")
    } else {
        String::new()
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
{id}{extra}
"#,
        dir = net.dir.0.display()
    )
}

/// Writes the configs (`extra` lines for both sites) and starts gw-b, then gw-a (the
/// initiator). Returns (a, b).
pub fn start_pair(net: &Net, psk_a: &str, psk_b: &str, extra: &str) -> (Daemon, Daemon) {
    start_pair_with(net, psk_a, psk_b, extra, extra)
}

/// Like [`start_pair`], with other `extra` lines for each site.
pub fn start_pair_with(
    net: &Net,
    psk_a: &str,
    psk_b: &str,
    extra_a: &str,
    extra_b: &str,
) -> (Daemon, Daemon) {
    let b = start_b(net, psk_b, extra_b, "debug");
    let a = start_a(net, psk_a, extra_a);
    (a, b)
}

/// Writes gw-b's config and starts it (log level `level`); returns once it answers.
pub fn start_b(net: &Net, psk: &str, extra: &str, level: &str) -> Daemon {
    let d = &net.dir.0;
    write_secret(&d.join("b.psk"), psk);
    let cb = d.join("b.toml");
    std::fs::write(&cb, site_config(net, false, "b.psk", extra)).expect("config b");
    let b = Daemon::start_at(&net.gw_b, &cb, &d.join("b.sock"), &d.join("b.log"), level);
    // gw-b must listen before gw-a's first IKE_SA_INIT.
    let _ = wait_for(Duration::from_secs(10), || b.tunnel().map(|_| ()));
    b
}

/// Writes gw-a's config and starts it (it initiates), logging at debug level.
pub fn start_a(net: &Net, psk: &str, extra: &str) -> Daemon {
    start_a_at(net, psk, extra, "debug")
}

/// [`start_a`] with log level `level`.
pub fn start_a_at(net: &Net, psk: &str, extra: &str, level: &str) -> Daemon {
    let d = &net.dir.0;
    write_secret(&d.join("a.psk"), psk);
    let ca = d.join("a.toml");
    std::fs::write(&ca, site_config(net, true, "a.psk", extra)).expect("config a");
    Daemon::start_at(&net.gw_a, &ca, &d.join("a.sock"), &d.join("a.log"), level)
}

/// A tunnel's `state` (`down`, `connecting`, `established`).
pub fn state(t: &Value) -> &str {
    t.get("state").and_then(Value::as_str).unwrap_or("")
}

/// Number of Child SAs in a tunnel's status.
pub fn child_count(t: &Value) -> usize {
    t.get("child_sas")
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

/// Waits until both daemons have the tunnel established with a Child SA; panics with
/// both logs after `timeout`.
pub fn wait_up(a: &Daemon, b: &Daemon, timeout: Duration) -> Duration {
    let t0 = Instant::now();
    let up = wait_for(timeout, || {
        let (ta, tb) = (a.tunnel()?, b.tunnel()?);
        (state(&ta) == "established" && child_count(&ta) >= 1 && child_count(&tb) >= 1)
            .then_some(())
    });
    assert!(
        up.is_some(),
        "no Child SA within {timeout:?}\n--- gw-a:\n{}\n--- gw-b:\n{}",
        a.log_tail(30),
        b.log_tail(30)
    );
    t0.elapsed()
}

/// A field of the tunnel's first Child SA (`algorithms`, `encap`, ...).
pub fn first_child(t: &Value, key: &str) -> Option<String> {
    t.get("child_sas")?
        .get(0)?
        .get(key)?
        .as_str()
        .map(str::to_string)
}

/// Whether 3 pings from `ns` to `to` get through within 10 s (a peer like strongSwan's
/// libipsec installs its routes shortly after the SA).
pub fn ping_soon(ns: &Netns, to: &str) -> bool {
    wait_for(Duration::from_secs(10), || ping(ns, to, 3).ok()).is_some()
}

/// `ping -c COUNT -i 0.2 -W 2 -q TO` from `ns`.
pub fn ping(ns: &Netns, to: &str, count: u32) -> Result<String, String> {
    let c = count.to_string();
    ns.exec("ping", &["-c", &c, "-i", "0.2", "-W", "2", "-q", to])
}

/// (transmitted, received) of `ping -c COUNT -i INTERVAL -W 1 TO` in `ns` (also when
/// ping failed).
pub fn ping_counts(ns: &Netns, to: &str, count: u32, interval: &str) -> (u64, u64) {
    ping_counts_in(&ns.name, to, count, interval)
}

/// [`ping_counts`] by namespace name (for a thread that does not own the namespace).
pub fn ping_counts_in(ns: &str, to: &str, count: u32, interval: &str) -> (u64, u64) {
    let c = count.to_string();
    let args = [
        "netns", "exec", ns, "ping", "-c", &c, "-i", interval, "-W", "1", "-q", to,
    ];
    let out = match run("ip", &args) {
        Ok(s) | Err(s) => s,
    };
    let line = out
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_default();
    let num = |key: &str| {
        line.split(',')
            .find(|p| p.contains(key))
            .and_then(|p| p.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (num("transmitted"), num("received"))
}
