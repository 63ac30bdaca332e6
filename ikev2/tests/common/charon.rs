//! strongSwan's charon (kernel-libipsec) in one network namespace and Causeway's
//! `ike_peer` example in another, for the interop tests (interop_strongswan,
//! interop_matrix).
//!
//! [`SwanLab`] owns both namespaces, a temp directory with charon's config and logs,
//! charon itself and the peers started with [`SwanLab::start_peer`]; everything is
//! removed on drop, also when a test fails. The topology (veth links, addresses) is up
//! to each test.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const CHARON: &str = "/usr/sbin/charon-systemd";
pub const SWANCTL: &str = "/usr/sbin/swanctl";

/// Runs a command (`args[0]` with the rest as arguments).
pub fn sh(args: &[&str]) -> std::io::Result<std::process::Output> {
    Command::new(args[0]).args(&args[1..]).output()
}

/// Runs a command that must succeed.
pub fn ok(args: &[&str]) {
    let o = sh(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A veth pair: `dev_a` in namespace `ns_a`, `dev_b` in `ns_b` (both still down).
pub fn veth(ns_a: &str, dev_a: &str, ns_b: &str, dev_b: &str) {
    ok(&[
        "ip", "-n", ns_a, "link", "add", dev_a, "type", "veth", "peer", "name", dev_b, "netns",
        ns_b,
    ]);
}

/// The `ike_peer` example next to this test binary, if built.
pub fn example_binary() -> Option<PathBuf> {
    // target/debug/deps/<test>-xxxx → target/debug/examples/ike_peer
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("examples").join("ike_peer");
    p.exists().then_some(p)
}

/// Builds the example (a no-op when fresh; `cargo test --test X` does not build examples).
fn build_example() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Some(target) = std::env::current_exe()
            .ok()
            .and_then(|e| Some(e.parent()?.parent()?.parent()?.to_path_buf()))
        else {
            return;
        };
        let _ = Command::new(env!("CARGO"))
            .args([
                "build",
                "-q",
                "-p",
                "causeway-ikev2",
                "--example",
                "ike_peer",
            ])
            .env("CARGO_TARGET_DIR", target)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status();
    });
}

/// Whether the interop tests must be skipped here; prints why (`SKIP <test>: ...`).
pub fn skipped(test: &str) -> bool {
    match skip_reason() {
        Some(r) => {
            eprintln!("SKIP {test}: {r}");
            true
        }
        None => false,
    }
}

/// Why the interop tests cannot run here (not root, charon, swanctl, a plugin or the
/// example missing), or `None`.
pub fn skip_reason() -> Option<String> {
    let uid = sh(&["id", "-u"]).ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("not root".into());
    }
    for p in [CHARON, SWANCTL] {
        if !Path::new(p).exists() {
            return Some(format!("{p} missing"));
        }
    }
    for plugin in ["gcm", "openssl", "kernel-libipsec"] {
        let f = format!("/usr/lib/ipsec/plugins/libstrongswan-{plugin}.so");
        if !Path::new(&f).exists() {
            return Some(format!(
                "strongSwan plugin {plugin} missing (libstrongswan-standard-plugins / libcharon-extra-plugins)"
            ));
        }
    }
    build_example();
    if example_binary().is_none() {
        return Some("examples/ike_peer not built (cargo test builds it)".into());
    }
    None
}

/// One swanctl.conf connection: IKEv2 with a PSK, the addresses as identities, one
/// child SA.
pub struct Conn<'a> {
    pub name: &'a str,
    pub child: &'a str,
    /// charon's address.
    pub sw_addr: &'a str,
    /// Causeway's address (also its identity).
    pub cw_addr: &'a str,
    /// charon's `remote_addrs`: Causeway's address, or `%any` (e.g. behind a NAT).
    pub remote_addrs: &'a str,
    pub ike: &'a str,
    pub esp: &'a str,
    /// charon's side of the traffic selectors.
    pub sw_ts: &'a str,
    pub cw_ts: &'a str,
}

impl Conn<'_> {
    /// The connection's entry for the `connections { }` section.
    pub fn entry(&self) -> String {
        format!(
            r#"  {name} {{
    version = 2
    local_addrs = {sw}
    remote_addrs = {remote_addrs}
    proposals = {ike}
    local {{ auth = psk
            id = {sw} }}
    remote {{ auth = psk
             id = {cw} }}
    children {{
      {child} {{
        local_ts = {sw_ts}
        remote_ts = {cw_ts}
        esp_proposals = {esp}
      }}
    }}
  }}
"#,
            name = self.name,
            child = self.child,
            sw = self.sw_addr,
            cw = self.cw_addr,
            remote_addrs = self.remote_addrs,
            ike = self.ike,
            esp = self.esp,
            sw_ts = self.sw_ts,
            cw_ts = self.cw_ts,
        )
    }
}

/// Two namespaces (`cw_ns` for Causeway, `sw_ns` for charon, plus any in `extra_ns`),
/// a directory for configs and logs, charon and the Causeway peers; all removed on drop.
pub struct SwanLab {
    pub cw_ns: String,
    pub sw_ns: String,
    /// More namespaces of the topology (e.g. a NAT router), removed with the others.
    pub extra_ns: Vec<String>,
    pub dir: PathBuf,
    charon: Option<Child>,
    peers: Vec<Child>,
}

impl Drop for SwanLab {
    fn drop(&mut self) {
        for mut p in self.peers.drain(..) {
            let _ = p.kill();
            let _ = p.wait();
        }
        if let Some(mut c) = self.charon.take() {
            let _ = sh(&["kill", "-TERM", &c.id().to_string()]);
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.cw_ns, &self.sw_ns].into_iter().chain(&self.extra_ns) {
            // Whatever is left in our namespaces was started by this test.
            if let Ok(o) = sh(&["ip", "netns", "pids", ns]) {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    let _ = sh(&["kill", "-KILL", pid]);
                }
            }
            let _ = sh(&["ip", "netns", "del", ns]);
        }
        if std::env::var_os("CW_KEEP_LOGS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl SwanLab {
    /// Namespaces `<name>-a` (Causeway) and `<name>-s` (charon) with loopback up, and the
    /// directory `<tmp>/<name>`. `name` must be unique (include the pid).
    pub fn new(name: &str) -> SwanLab {
        let lab = SwanLab {
            cw_ns: format!("{name}-a"),
            sw_ns: format!("{name}-s"),
            extra_ns: Vec::new(),
            dir: std::env::temp_dir().join(name),
            charon: None,
            peers: Vec::new(),
        };
        let _ = std::fs::remove_dir_all(&lab.dir);
        std::fs::create_dir_all(&lab.dir).unwrap();
        for ns in [&lab.cw_ns, &lab.sw_ns] {
            ok(&["ip", "netns", "add", ns]);
            ok(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        lab
    }

    /// Starts charon in `sw_ns` with `strongswan.conf` (plus `extra` lines in its
    /// `charon { }` section), waits for its vici socket and loads `swanctl` (the text of
    /// swanctl.conf); returns what `swanctl --load-all` printed.
    pub fn start_charon(&mut self, extra: &str, swanctl: &str) -> String {
        let d = self.dir.display();
        let conf = format!(
            r#"charon {{
  load = random nonce openssl aes sha1 sha2 hmac gcm gmp curve25519 kdf pem pkcs1 x509 pubkey kernel-libipsec kernel-netlink socket-default vici
  install_routes = no
  retransmit_tries = 2
  {extra}
  plugins {{
    vici {{ socket = unix://{d}/charon.vici }}
  }}
  filelog {{
    t {{ path = {d}/charon.log
        flush_line = yes
        default = 1
        ike = 2
        cfg = 2 }}
  }}
}}
"#
        );
        std::fs::write(self.dir.join("strongswan.conf"), conf).unwrap();
        std::fs::write(self.dir.join("swanctl.conf"), swanctl).unwrap();
        let log = std::fs::File::create(self.dir.join("charon.stdout")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.sw_ns, CHARON])
            .env("STRONGSWAN_CONF", self.dir.join("strongswan.conf"))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.charon = Some(child);
        // Wait for the vici socket, then load the configuration.
        let sock = self.dir.join("charon.vici");
        let t = Instant::now();
        while !sock.exists() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "charon did not start: {}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let file = self.dir.join("swanctl.conf");
        self.swanctl(&["--load-all", "--file", &file.display().to_string()])
    }

    /// Kills charon at once (SIGKILL: it sends no Delete), as in a crash or reboot.
    pub fn kill_charon(&mut self) {
        if let Some(mut c) = self.charon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(self.dir.join("charon.vici"));
    }

    /// Runs swanctl against our charon; its stdout and stderr.
    pub fn swanctl(&self, args: &[&str]) -> String {
        let mut a = vec!["netns", "exec", &self.sw_ns, SWANCTL];
        a.extend_from_slice(args);
        let uri = format!("unix://{}/charon.vici", self.dir.display());
        a.extend_from_slice(&["--uri", &uri]);
        let o = Command::new("ip")
            .args(&a)
            .env("STRONGSWAN_CONF", self.dir.join("strongswan.conf"))
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    }

    /// Runs swanctl, which must report "completed successfully" (e.g. `--initiate`,
    /// `--terminate`); its output.
    pub fn swanctl_completes(&self, args: &[&str]) -> String {
        let out = self.swanctl(args);
        assert!(
            out.contains("completed successfully"),
            "swanctl {args:?}: {out}\n{}",
            self.logs()
        );
        out
    }

    /// [`wait_for`] the peer's `what` event; panics (with charon's logs) without it.
    pub fn expect_event(
        &self,
        rx: &mpsc::Receiver<String>,
        what: &str,
        timeout: Duration,
    ) -> String {
        wait_for(rx, what, timeout).unwrap_or_else(|e| panic!("{e}\n{}", self.logs()))
    }

    /// Whether charon's log shows `what` (within 3 s: the log is written asynchronously).
    pub fn log_shows(&self, what: &str) -> bool {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(3) {
            let log = std::fs::read_to_string(self.dir.join("charon.log")).unwrap_or_default();
            if log.contains(what) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// The ends of charon's logs, for failure messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for f in ["charon.stdout", "charon.log"] {
            if let Ok(t) = std::fs::read_to_string(self.dir.join(f)) {
                let tail: Vec<&str> = t.lines().rev().take(80).collect();
                s.push_str(&format!("--- {f} (tail) ---\n"));
                for l in tail.into_iter().rev() {
                    s.push_str(l);
                    s.push('\n');
                }
            }
        }
        s
    }

    /// Starts the `ike_peer` example in `cw_ns` with `args`; its JSON lines (also printed,
    /// prefixed with `name`) arrive on the returned channel. The caller owns the process.
    pub fn start_peer(&self, args: &[&str], name: &str) -> (Child, mpsc::Receiver<String>) {
        let exe = example_binary().unwrap().display().to_string();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.cw_ns, &exe])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let name = name.to_string();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                println!("{name}: {l}");
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        (child, rx)
    }

    /// [`SwanLab::start_peer`], with the process killed when the lab is dropped.
    pub fn start_owned_peer(&mut self, args: &[&str], name: &str) -> mpsc::Receiver<String> {
        let (child, rx) = self.start_peer(args, name);
        self.peers.push(child);
        rx
    }
}

/// The value of a string field in one of the peer's JSON lines.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":\"");
    let i = line.find(&pat)? + pat.len();
    let j = line[i..].find('"')?;
    Some(&line[i..i + j])
}

/// Waits for the peer's `{"event":"<what>"}` line; an error on a `failed` event (with
/// the failure) or after `timeout` (with what was seen instead).
pub fn wait_for(
    rx: &mpsc::Receiver<String>,
    what: &str,
    timeout: Duration,
) -> Result<String, String> {
    let end = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(&format!("\"event\":\"{what}\"")) => return Ok(l),
            Ok(l) if l.contains("\"event\":\"failed\"") => {
                return Err(format!(
                    "failed while waiting for {what}: {l}\n{}",
                    seen.join("\n")
                ))
            }
            Ok(l) => seen.push(l),
            Err(_) => return Err(format!("no {what} in time; saw:\n{}", seen.join("\n"))),
        }
    }
}

/// The exit code of `c` within `timeout`; else kills it and returns `None`.
pub fn wait_exit(c: &mut Child, timeout: Duration) -> Option<i32> {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if let Ok(Some(s)) = c.try_wait() {
            return s.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = c.kill();
    let _ = c.wait();
    None
}
