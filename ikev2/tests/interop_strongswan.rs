//! Interop with strongSwan's charon (kernel-libipsec) in two network namespaces joined by
//! a veth pair: Causeway's `ike_peer` example in one, `charon-systemd` in the other.
//! Causeway as initiator and as responder; both sides must agree on SPIs and algorithms.
//!
//! Skips (with a message) when not root, when charon/swanctl or the example binary are
//! missing. Namespaces, processes and files are always removed (Drop guard).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CHARON: &str = "/usr/sbin/charon-systemd";
const SWANCTL: &str = "/usr/sbin/swanctl";
const CW_ADDR: &str = "192.0.2.1";
const SW_ADDR: &str = "192.0.2.2";
const PSK: &str = "causeway-interop-psk";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn sh(args: &[&str]) -> std::io::Result<std::process::Output> {
    Command::new(args[0]).args(&args[1..]).output()
}

fn ok(args: &[&str]) {
    let o = sh(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn example_binary() -> Option<PathBuf> {
    // target/debug/deps/interop_strongswan-xxxx → target/debug/examples/ike_peer
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

fn skip_reason() -> Option<String> {
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

/// Two namespaces, a veth between them, a charon in one; everything removed on drop.
struct Lab {
    cw_ns: String,
    sw_ns: String,
    /// A NAT router between the two (Topo::Nat).
    nat_ns: Option<String>,
    cw_addr: &'static str,
    sw_addr: &'static str,
    /// charon's `remote_addrs` (`%any` behind the NAT).
    sw_remote: &'static str,
    dir: PathBuf,
    charon: Option<Child>,
    /// Extra lines for the `charon { }` section of strongswan.conf.
    charon_extra: String,
}

/// How the two peers are connected.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Topo {
    /// One IPv4 veth.
    V4,
    /// One IPv6 veth (IKE and ESP over IPv6; the selectors stay IPv4).
    V6,
    /// Causeway behind a masquerading NAT router.
    Nat,
}

impl Drop for Lab {
    fn drop(&mut self) {
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
        for ns in [Some(&self.cw_ns), Some(&self.sw_ns), self.nat_ns.as_ref()]
            .into_iter()
            .flatten()
        {
            // Kill anything left in the namespace that we started (by pid, from the ns).
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

#[derive(Clone, Copy)]
struct Case<'a> {
    ike: &'a str,
    esp: &'a str,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        Lab::build(tag, Topo::V4)
    }

    fn build(tag: &str, topo: Topo) -> Lab {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let id = format!("{}-{n}", std::process::id());
        let (cw_addr, sw_addr, sw_remote) = match topo {
            Topo::V4 => (CW_ADDR, SW_ADDR, CW_ADDR),
            Topo::V6 => ("2001:db8::1", "2001:db8::2", "2001:db8::1"),
            Topo::Nat => (CW_ADDR, "198.51.100.2", "%any"),
        };
        let lab = Lab {
            cw_ns: format!("cw-ike{tag}-{id}-a"),
            sw_ns: format!("cw-ike{tag}-{id}-s"),
            nat_ns: (topo == Topo::Nat).then(|| format!("cw-ike{tag}-{id}-n")),
            cw_addr,
            sw_addr,
            sw_remote,
            dir: std::env::temp_dir().join(format!("cw-ike{tag}-{id}")),
            charon: None,
            charon_extra: String::new(),
        };
        let _ = std::fs::remove_dir_all(&lab.dir);
        std::fs::create_dir_all(&lab.dir).unwrap();
        ok(&["ip", "netns", "add", &lab.cw_ns]);
        ok(&["ip", "netns", "add", &lab.sw_ns]);
        for (ns, site) in [(&lab.cw_ns, "10.1.0.1/32"), (&lab.sw_ns, "10.2.0.1/32")] {
            ok(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            // An address inside the site's selector (strongSwan routes from it).
            ok(&["ip", "-n", ns, "addr", "add", site, "dev", "lo"]);
        }
        let addr = |ns: &str, dev: &str, a: &str| {
            ok(&["ip", "-n", ns, "addr", "add", a, "dev", dev, "nodad"]);
            ok(&["ip", "-n", ns, "link", "set", dev, "up"]);
        };
        match &lab.nat_ns {
            None => {
                ok(&[
                    "ip", "-n", &lab.cw_ns, "link", "add", "cw0", "type", "veth", "peer", "name",
                    "sw0", "netns", &lab.sw_ns,
                ]);
                let len = if topo == Topo::V6 { 64 } else { 24 };
                addr(&lab.cw_ns, "cw0", &format!("{cw_addr}/{len}"));
                addr(&lab.sw_ns, "sw0", &format!("{sw_addr}/{len}"));
            }
            Some(nat) => {
                // cw 192.0.2.1 — 192.0.2.254 [NAT] 198.51.100.254 — 198.51.100.2 sw
                ok(&["ip", "netns", "add", nat]);
                ok(&["ip", "-n", nat, "link", "set", "lo", "up"]);
                ok(&[
                    "ip", "-n", &lab.cw_ns, "link", "add", "cw0", "type", "veth", "peer", "name",
                    "in0", "netns", nat,
                ]);
                ok(&[
                    "ip", "-n", &lab.sw_ns, "link", "add", "sw0", "type", "veth", "peer", "name",
                    "out0", "netns", nat,
                ]);
                addr(&lab.cw_ns, "cw0", "192.0.2.1/24");
                addr(nat, "in0", "192.0.2.254/24");
                addr(nat, "out0", "198.51.100.254/24");
                addr(&lab.sw_ns, "sw0", "198.51.100.2/24");
                ok(&[
                    "ip",
                    "-n",
                    &lab.cw_ns,
                    "route",
                    "add",
                    "default",
                    "via",
                    "192.0.2.254",
                ]);
                ok(&[
                    "ip",
                    "netns",
                    "exec",
                    nat,
                    "sysctl",
                    "-qw",
                    "net.ipv4.ip_forward=1",
                ]);
                let rules = "table ip cwnat {\n chain post {\n  type nat hook postrouting priority 100;\n  oifname \"out0\" masquerade random\n }\n}\n";
                let f = lab.dir.join("nat.nft");
                std::fs::write(&f, rules).unwrap();
                ok(&[
                    "ip",
                    "netns",
                    "exec",
                    nat,
                    "nft",
                    "-f",
                    &f.display().to_string(),
                ]);
            }
        }
        lab
    }

    fn vici(&self) -> String {
        format!("unix://{}/charon.vici", self.dir.display())
    }

    fn start_charon(&mut self, case: &Case<'_>) {
        let d = self.dir.display();
        let extra = &self.charon_extra;
        let conf = format!(
            r#"charon {{
  load = random nonce openssl aes sha1 sha2 hmac gcm gmp kdf pem pkcs1 x509 pubkey kernel-libipsec kernel-netlink socket-default vici
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
        let swanctl = format!(
            r#"connections {{
  cw {{
    version = 2
    local_addrs = {sw}
    remote_addrs = {sw_remote}
    proposals = {ike}
    local {{ auth = psk
            id = {sw} }}
    remote {{ auth = psk
             id = {cw} }}
    children {{
      net {{
        local_ts = 10.2.0.0/16
        remote_ts = 10.1.0.0/16
        esp_proposals = {esp}
      }}
    }}
  }}
}}
secrets {{
  ike-cw {{
    id-a = {cw}
    id-b = {sw}
    secret = "{PSK}"
  }}
}}
"#,
            ike = case.ike,
            esp = case.esp,
            sw = self.sw_addr,
            cw = self.cw_addr,
            sw_remote = self.sw_remote,
        );
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
        let o = self.swanctl(&["--load-all", "--file", &file.display().to_string()]);
        assert!(o.contains("loaded connection 'cw'"), "{o}\n{}", self.logs());
    }

    /// Kills charon at once (SIGKILL: it sends no Delete), as in a crash or reboot.
    fn kill_charon(&mut self) {
        if let Some(mut c) = self.charon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(self.dir.join("charon.vici"));
    }

    fn swanctl(&self, args: &[&str]) -> String {
        let mut a = vec!["netns", "exec", &self.sw_ns, SWANCTL];
        a.extend_from_slice(args);
        let uri = self.vici();
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

    /// Whether charon's log shows `what` (within 3 s: the log is written asynchronously).
    fn log_shows(&self, what: &str) -> bool {
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

    fn logs(&self) -> String {
        let mut s = String::new();
        for f in ["charon.stdout", "charon.log"] {
            if let Ok(t) = std::fs::read_to_string(self.dir.join(f)) {
                let tail: Vec<&str> = t.lines().rev().take(60).collect();
                s.push_str(&format!("--- {f} (tail) ---\n"));
                for l in tail.into_iter().rev() {
                    s.push_str(l);
                    s.push('\n');
                }
            }
        }
        s
    }

    /// Starts the Causeway peer; its JSON lines arrive on the returned channel.
    fn start_causeway(
        &self,
        case: &Case<'_>,
        initiate: bool,
        hold: &str,
        extra: &[&str],
    ) -> (Child, mpsc::Receiver<String>) {
        let exe = example_binary().unwrap();
        let exe = exe.display().to_string();
        let mut args = vec![
            "netns",
            "exec",
            &self.cw_ns,
            &exe,
            "--local",
            self.cw_addr,
            "--remote",
            self.sw_addr,
            "--psk",
            PSK,
            "--ike",
            case.ike,
            "--esp",
            case.esp,
            "--local-ts",
            "10.1.0.0/16",
            "--remote-ts",
            "10.2.0.0/16",
            "--hold",
            hold,
            "--timeout",
            "40",
        ];
        if initiate {
            args.push("--initiate");
        }
        args.extend_from_slice(extra);
        let mut child = Command::new("ip")
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                println!("causeway: {l}");
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        (child, rx)
    }
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":\"");
    let i = line.find(&pat)? + pat.len();
    let j = line[i..].find('"')?;
    Some(&line[i..i + j])
}

fn wait_for(rx: &mpsc::Receiver<String>, what: &str, timeout: Duration) -> Result<String, String> {
    let end = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(&format!("\"event\":\"{what}\"")) => return Ok(l),
            Ok(l) if l.contains("\"event\":\"failed\"") => {
                return Err(format!("{l}\n{}", seen.join("\n")))
            }
            Ok(l) => seen.push(l),
            Err(_) => return Err(format!("no {what} in time; saw:\n{}", seen.join("\n"))),
        }
    }
}

fn wait_exit(c: &mut Child, timeout: Duration) -> Option<i32> {
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

/// Checks that strongSwan lists the same IKE SPIs and the crossed ESP SPIs.
fn check_sas(lab: &Lab, ike_line: &str, child_line: &str, want_ike_alg: &str, want_esp_alg: &str) {
    let sas = lab.swanctl(&["--list-sas"]);
    println!("{sas}");
    let spi_i = field(ike_line, "spi_i").unwrap();
    let spi_r = field(ike_line, "spi_r").unwrap();
    let local = field(child_line, "local_spi").unwrap();
    let remote = field(child_line, "remote_spi").unwrap();
    assert!(sas.contains("ESTABLISHED"), "{sas}\n{}", lab.logs());
    assert!(
        sas.contains(spi_i) && sas.contains(spi_r),
        "IKE SPIs {spi_i}/{spi_r} not in:\n{sas}"
    );
    assert!(sas.contains("INSTALLED"), "{sas}\n{}", lab.logs());
    // strongSwan's inbound SPI is our outbound (remote) SPI and vice versa.
    let sw_in = sas
        .lines()
        .find(|l| l.trim_start().starts_with("in "))
        .unwrap_or("");
    let sw_out = sas
        .lines()
        .find(|l| l.trim_start().starts_with("out "))
        .unwrap_or("");
    assert!(
        sw_in.contains(remote),
        "strongSwan in SPI should be {remote}: {sw_in}"
    );
    assert!(
        sw_out.contains(local),
        "strongSwan out SPI should be {local}: {sw_out}"
    );
    assert!(
        sas.contains(want_ike_alg),
        "IKE algorithms {want_ike_alg} not in:\n{sas}"
    );
    assert!(
        sas.contains(want_esp_alg),
        "ESP algorithms {want_esp_alg} not in:\n{sas}"
    );
}

fn causeway_initiates(case: Case<'_>, ike_alg: &str, esp_alg: &str) {
    causeway_initiates_on(Topo::V4, case, ike_alg, esp_alg);
}

fn causeway_initiates_on(topo: Topo, case: Case<'_>, ike_alg: &str, esp_alg: &str) {
    if let Some(r) = skip_reason() {
        eprintln!("SKIP interop_strongswan: {r}");
        return;
    }
    let mut lab = Lab::build("i", topo);
    lab.start_charon(&case);
    let started = Instant::now();
    let (mut cw, rx) = lab.start_causeway(&case, true, "3", &[]);
    let ike = wait_for(&rx, "ike_sa_established", Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    let child = wait_for(&rx, "child_sa_established", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    // Process start to Child SA up, both IKE exchanges over the veth (debug build).
    eprintln!("{}: Child SA up after {:?}", case.ike, started.elapsed());
    check_sas(&lab, &ike, &child, ike_alg, esp_alg);
    // After --hold, Causeway deletes the IKE SA; strongSwan must answer.
    wait_for(&rx, "ike_sa_deleted", Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    assert_eq!(wait_exit(&mut cw, Duration::from_secs(10)), Some(0));
    let after = lab.swanctl(&["--list-sas"]);
    assert!(
        !after.contains("ESTABLISHED"),
        "strongSwan still has the SA:\n{after}"
    );
}

fn strongswan_initiates(case: Case<'_>, ike_alg: &str, esp_alg: &str) {
    strongswan_initiates_on(Topo::V4, case, ike_alg, esp_alg);
}

fn strongswan_initiates_on(topo: Topo, case: Case<'_>, ike_alg: &str, esp_alg: &str) {
    if let Some(r) = skip_reason() {
        eprintln!("SKIP interop_strongswan: {r}");
        return;
    }
    let mut lab = Lab::build("r", topo);
    lab.start_charon(&case);
    let (mut cw, rx) = lab.start_causeway(&case, false, "-1", &[]);
    std::thread::sleep(Duration::from_millis(300)); // sockets bound
    let out = lab.swanctl(&["--initiate", "--child", "net", "--timeout", "15"]);
    assert!(
        out.contains("completed successfully"),
        "{out}\n{}",
        lab.logs()
    );
    let ike = wait_for(&rx, "ike_sa_established", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    let child = wait_for(&rx, "child_sa_established", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    check_sas(&lab, &ike, &child, ike_alg, esp_alg);
    // strongSwan deletes; Causeway must see the IKE SA go and exit cleanly.
    let out = lab.swanctl(&["--terminate", "--ike", "cw", "--timeout", "10"]);
    assert!(
        out.contains("completed successfully"),
        "{out}\n{}",
        lab.logs()
    );
    wait_for(&rx, "ike_sa_deleted", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    assert_eq!(wait_exit(&mut cw, Duration::from_secs(10)), Some(0));
}

const AZURE_DEFAULT: Case<'static> = Case {
    ike: "aes256-sha1-modp1024",
    esp: "aes256gcm16",
};
const MODP2048S256: Case<'static> = Case {
    ike: "aes256-sha256-modp2048s256",
    esp: "aes256gcm16",
};

#[test]
fn causeway_initiates_aes256_sha1_modp1024() {
    causeway_initiates(
        AZURE_DEFAULT,
        "AES_CBC-256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024",
        "AES_GCM_16-256",
    );
}

#[test]
fn causeway_initiates_aes256_sha256_modp2048s256() {
    causeway_initiates(
        MODP2048S256,
        "AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048_256",
        "AES_GCM_16-256",
    );
}

#[test]
fn strongswan_initiates_aes256_sha1_modp1024() {
    strongswan_initiates(
        AZURE_DEFAULT,
        "AES_CBC-256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024",
        "AES_GCM_16-256",
    );
}

#[test]
fn strongswan_initiates_aes256_sha256_modp2048s256() {
    strongswan_initiates(
        MODP2048S256,
        "AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048_256",
        "AES_GCM_16-256",
    );
}

#[test]
fn more_suites_both_ways() {
    for (case, ike_alg, esp_alg) in [
        (
            Case {
                ike: "aes256gcm16-prfsha384-ecp384",
                esp: "aes256-sha256",
            },
            "AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384",
            "AES_CBC-256/HMAC_SHA2_256_128",
        ),
        (
            Case {
                ike: "aes128-sha256-x25519",
                esp: "aes128gcm16",
            },
            "AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519",
            "AES_GCM_16-128",
        ),
    ] {
        causeway_initiates(case, ike_alg, esp_alg);
        strongswan_initiates(case, ike_alg, esp_alg);
    }
}

/// Rekeys in both directions: strongSwan rekeys the Child SA and the IKE SA of a
/// Causeway responder; a Causeway initiator rekeys its Child SA (with PFS).
#[test]
fn rekeys_both_ways() {
    if let Some(r) = skip_reason() {
        eprintln!("SKIP interop_strongswan: {r}");
        return;
    }
    // 1. strongSwan rekeys (Causeway responds).
    let case = Case {
        ike: "aes256-sha256-modp2048s256",
        esp: "aes256gcm16",
    };
    let mut lab = Lab::new("k");
    lab.start_charon(&case);
    let (mut cw, rx) = lab.start_causeway(&case, false, "-1", &[]);
    std::thread::sleep(Duration::from_millis(300));
    let out = lab.swanctl(&["--initiate", "--child", "net", "--timeout", "15"]);
    assert!(
        out.contains("completed successfully"),
        "{out}\n{}",
        lab.logs()
    );
    wait_for(&rx, "child_sa_established", Duration::from_secs(5)).unwrap();
    let out = lab.swanctl(&["--rekey", "--child", "net"]);
    assert!(out.contains("successfully"), "{out}");
    let child2 = wait_for(&rx, "child_sa_established", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    wait_for(&rx, "child_sa_deleted", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    let out = lab.swanctl(&["--rekey", "--ike", "cw"]);
    assert!(out.contains("successfully"), "{out}");
    let rekeyed = wait_for(&rx, "ike_sa_rekeyed", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    std::thread::sleep(Duration::from_millis(500));
    let sas = lab.swanctl(&["--list-sas"]);
    println!("{sas}");
    let (spi_i, spi_r) = (
        field(&rekeyed, "spi_i").unwrap(),
        field(&rekeyed, "spi_r").unwrap(),
    );
    assert!(
        sas.contains(spi_i) && sas.contains(spi_r),
        "new IKE SPIs not in\n{sas}"
    );
    let local = field(&child2, "local_spi").unwrap();
    assert!(
        sas.contains(local),
        "rekeyed Child SA {local} not in\n{sas}\n{}",
        lab.logs()
    );
    // The Child SA survived the IKE rekey: delete everything through the new IKE SA.
    let out = lab.swanctl(&["--terminate", "--ike", "cw", "--timeout", "10"]);
    assert!(
        out.contains("completed successfully"),
        "{out}\n{}",
        lab.logs()
    );
    let del = wait_for(&rx, "ike_sa_deleted", Duration::from_secs(10)).unwrap();
    assert_eq!(field(&del, "spi_i"), Some(spi_i));
    assert_eq!(wait_exit(&mut cw, Duration::from_secs(10)), Some(0));
    drop(lab);

    // 2. Causeway rekeys its Child SA with PFS (strongSwan responds).
    let case = Case {
        ike: "aes256-sha1-modp1024",
        esp: "aes256gcm16-modp2048s256",
    };
    let mut lab = Lab::new("k");
    lab.start_charon(&case);
    let (mut cw, rx) = lab.start_causeway(
        &case,
        true,
        "5",
        &["--rekey-after", "1", "--rekey-ike-after", "2.5"],
    );
    wait_for(&rx, "child_sa_established", Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    let child2 = wait_for(&rx, "child_sa_established", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    wait_for(&rx, "child_sa_deleted", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    std::thread::sleep(Duration::from_millis(300));
    let sas = lab.swanctl(&["--list-sas"]);
    println!("{sas}");
    let local = field(&child2, "local_spi").unwrap();
    let remote = field(&child2, "remote_spi").unwrap();
    assert!(
        sas.contains(local) && sas.contains(remote),
        "rekeyed SPIs not in\n{sas}"
    );
    assert!(sas.contains("MODP_2048_256"), "PFS group not used:\n{sas}");
    assert_eq!(
        sas.matches("INSTALLED").count(),
        1,
        "old Child SA still there:\n{sas}"
    );
    // Then Causeway rekeys the IKE SA; the Child SA moves along.
    let rekeyed = wait_for(&rx, "ike_sa_rekeyed", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    std::thread::sleep(Duration::from_millis(500));
    let sas = lab.swanctl(&["--list-sas"]);
    println!("{sas}");
    let (spi_i, spi_r) = (
        field(&rekeyed, "spi_i").unwrap(),
        field(&rekeyed, "spi_r").unwrap(),
    );
    assert!(
        sas.contains(spi_i) && sas.contains(spi_r),
        "new IKE SPIs not in\n{sas}"
    );
    assert_eq!(
        sas.matches("ESTABLISHED").count(),
        1,
        "old IKE SA still there:\n{sas}"
    );
    assert!(
        sas.contains(local),
        "Child SA lost in the IKE rekey:\n{sas}"
    );
    let del = wait_for(&rx, "ike_sa_deleted", Duration::from_secs(15)).unwrap();
    assert_eq!(field(&del, "spi_i"), Some(spi_i));
    assert_eq!(wait_exit(&mut cw, Duration::from_secs(10)), Some(0));
}

/// A wrong PSK and a proposal mismatch are reported as such on both sides.
#[test]
fn errors_both_ways() {
    if let Some(r) = skip_reason() {
        eprintln!("SKIP interop_strongswan: {r}");
        return;
    }
    let case = AZURE_DEFAULT;
    // 1. Wrong PSK, Causeway initiates: strongSwan answers AUTHENTICATION_FAILED.
    let mut lab = Lab::new("e");
    lab.start_charon(&case);
    let (mut cw, rx) = lab.start_causeway(&case, true, "1", &["--psk", "not-the-psk"]);
    let f = wait_for(&rx, "ike_sa_established", Duration::from_secs(20)).unwrap_err();
    assert!(f.contains("AuthenticationFailed"), "{f}\n{}", lab.logs());
    assert_eq!(wait_exit(&mut cw, Duration::from_secs(10)), Some(1));
    assert!(lab.log_shows("MAC mismatched"), "{}", lab.logs());
    drop(lab);

    // 2. Wrong PSK, strongSwan initiates: Causeway answers AUTHENTICATION_FAILED.
    let mut lab = Lab::new("e");
    lab.start_charon(&case);
    let other = Case {
        ike: "aes128gcm16-prfsha256-ecp256",
        esp: case.esp,
    };
    let (mut cw, rx) = lab.start_causeway(&other, true, "1", &[]);
    let f = wait_for(&rx, "ike_sa_established", Duration::from_secs(20)).unwrap_err();
    assert!(f.contains("NoProposalChosen"), "{f}\n{}", lab.logs());
    assert_eq!(wait_exit(&mut cw, Duration::from_secs(10)), Some(1));
    drop(lab);

    // 4. No common ESP proposal, strongSwan initiates: the IKE SA comes up, the Child SA
    //    is refused with NO_PROPOSAL_CHOSEN.
    let mut lab = Lab::new("e");
    lab.start_charon(&case);
    let other = Case {
        ike: case.ike,
        esp: "aes128-sha1",
    };
    let (mut cw, rx) = lab.start_causeway(&other, false, "-1", &[]);
    std::thread::sleep(Duration::from_millis(300));
    let out = lab.swanctl(&["--initiate", "--child", "net", "--timeout", "15"]);
    assert!(!out.contains("completed successfully"), "{out}");
    wait_for(&rx, "ike_sa_established", Duration::from_secs(10)).unwrap();
    let f = wait_for(&rx, "child_sa_established", Duration::from_secs(10)).unwrap_err();
    assert!(f.contains("NoProposalChosen"), "{f}");
    assert!(lab.log_shows("NO_PROP"), "{}", lab.logs());
    let _ = lab.swanctl(&["--terminate", "--ike", "cw", "--timeout", "5"]);
    let _ = wait_exit(&mut cw, Duration::from_secs(10));
}

#[test]
fn ipv6_outer_addresses_both_ways() {
    let ike_alg = "AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048_256";
    causeway_initiates_on(Topo::V6, MODP2048S256, ike_alg, "AES_GCM_16-256");
    strongswan_initiates_on(Topo::V6, MODP2048S256, ike_alg, "AES_GCM_16-256");
}

/// Causeway behind a masquerading NAT (random source ports): NAT detection on both
/// sides, IKE floats to 4500 through the NAT, strongSwan sees the translated address.
#[test]
fn causeway_behind_nat() {
    if let Some(r) = skip_reason() {
        eprintln!("SKIP interop_strongswan: {r}");
        return;
    }
    let case = AZURE_DEFAULT;
    let mut lab = Lab::build("n", Topo::Nat);
    lab.start_charon(&case);
    let (mut cw, rx) = lab.start_causeway(&case, true, "2", &[]);
    let ike = wait_for(&rx, "ike_sa_established", Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    assert!(ike.contains("\"nat\":true"), "{ike}");
    assert!(ike.contains("198.51.100.2:4500"), "{ike}");
    let child = wait_for(&rx, "child_sa_established", Duration::from_secs(5)).unwrap();
    assert!(child.contains("\"udp_encap\":true"), "{child}");
    check_sas(
        &lab,
        &ike,
        &child,
        "AES_CBC-256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024",
        "AES_GCM_16-256",
    );
    let sas = lab.swanctl(&["--list-sas"]);
    // strongSwan talks to the NAT's public address, on a translated port.
    let remote = sas
        .lines()
        .find(|l| l.contains("remote '192.0.2.1'"))
        .unwrap_or("");
    assert!(remote.contains("@ 198.51.100.254["), "{sas}");
    assert!(!remote.contains("[500]"), "IKE did not float: {sas}");
    assert!(lab.log_shows("remote host is behind NAT"), "{}", lab.logs());
    wait_for(&rx, "ike_sa_deleted", Duration::from_secs(15)).unwrap();
    assert_eq!(wait_exit(&mut cw, Duration::from_secs(10)), Some(0));
}

/// IKE fragmentation (RFC 7383) both ways: with `fragment_size = 200` on both sides the
/// IKE_AUTH messages (and the CREATE_CHILD_SA of a rekey with PFS) are split; each side
/// reassembles the other's.
#[test]
fn fragmented_ike_auth_and_rekey_both_ways() {
    if let Some(r) = skip_reason() {
        eprintln!("SKIP interop_strongswan: {r}");
        return;
    }
    let case = Case {
        ike: "aes256-sha256-modp2048",
        esp: "aes256gcm16-modp2048",
    };
    for initiate in [true, false] {
        let mut lab = Lab::new(if initiate { "fi" } else { "fr" });
        lab.charon_extra = "fragment_size = 200".into();
        lab.start_charon(&case);
        let extra = ["--fragment-size", "200", "--rekey-after", "1"];
        let (mut cw, rx) =
            lab.start_causeway(&case, initiate, if initiate { "3" } else { "-1" }, &extra);
        if !initiate {
            std::thread::sleep(Duration::from_millis(300));
            let out = lab.swanctl(&["--initiate", "--child", "net", "--timeout", "15"]);
            assert!(
                out.contains("completed successfully"),
                "{out}\n{}",
                lab.logs()
            );
        }
        let ike = wait_for(&rx, "ike_sa_established", Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
        let child = wait_for(&rx, "child_sa_established", Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
        // The rekey (our CREATE_CHILD_SA with a 256-byte KE) after 1 s.
        let rekeyed = wait_for(&rx, "child_sa_established", Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
        assert_ne!(field(&rekeyed, "local_spi"), field(&child, "local_spi"));
        assert!(field(&ike, "spi_i").is_some());
        assert!(lab.log_shows("splitting IKE message"), "{}", lab.logs());
        assert!(
            lab.log_shows("reassembled fragmented IKE message"),
            "{}",
            lab.logs()
        );
        if initiate {
            wait_for(&rx, "ike_sa_deleted", Duration::from_secs(15))
                .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
        } else {
            let out = lab.swanctl(&["--terminate", "--ike", "cw", "--timeout", "10"]);
            assert!(
                out.contains("completed successfully"),
                "{out}\n{}",
                lab.logs()
            );
            wait_for(&rx, "ike_sa_deleted", Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
        }
        let stats = wait_for(&rx, "stats", Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
        println!("{stats}");
        assert!(!stats.contains("\"fragments_sent\":0,"), "{stats}");
        assert!(!stats.contains("\"fragments_received\":0}"), "{stats}");
        assert_eq!(wait_exit(&mut cw, Duration::from_secs(10)), Some(0));
    }
}

/// INITIAL_CONTACT honoured as responder: strongSwan crashes and comes back; its new
/// IKE_AUTH carries INITIAL_CONTACT and Causeway drops the old IKE SA and Child SA
/// (reported deleted, so the daemon removes them from the dataplane).
#[test]
fn restarted_strongswan_with_initial_contact_replaces_the_old_sas() {
    if let Some(r) = skip_reason() {
        eprintln!("SKIP interop_strongswan: {r}");
        return;
    }
    let case = MODP2048S256;
    let mut lab = Lab::new("ic");
    lab.start_charon(&case);
    let (mut cw, rx) = lab.start_causeway(&case, false, "-1", &[]);
    std::thread::sleep(Duration::from_millis(300));
    let initiate = |lab: &Lab| {
        let out = lab.swanctl(&["--initiate", "--child", "net", "--timeout", "15"]);
        assert!(
            out.contains("completed successfully"),
            "{out}\n{}",
            lab.logs()
        );
    };
    initiate(&lab);
    let ike1 = wait_for(&rx, "ike_sa_established", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    let child1 = wait_for(&rx, "child_sa_established", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    lab.kill_charon();
    lab.start_charon(&case);
    initiate(&lab);
    assert!(
        lab.log_shows("INITIAL_CONTACT") || lab.log_shows("N(INIT_CONTACT)"),
        "{}",
        lab.logs()
    );
    let ike2 = wait_for(&rx, "ike_sa_established", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    assert_ne!(field(&ike1, "spi_i"), field(&ike2, "spi_i"));
    let child2 = wait_for(&rx, "child_sa_established", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    let gone = wait_for(&rx, "child_sa_deleted", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    assert_eq!(field(&gone, "local_spi"), field(&child1, "local_spi"));
    assert_ne!(field(&child2, "local_spi"), field(&child1, "local_spi"));
    let gone = wait_for(&rx, "ike_sa_deleted", Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    assert_eq!(field(&gone, "spi_i"), field(&ike1, "spi_i"));
    // The new SAs are the ones strongSwan has.
    check_sas(&lab, &ike2, &child2, "MODP_2048_256", "AES_GCM_16-256");
    // (The example exits after reporting an IKE SA deleted.)
    assert_eq!(wait_exit(&mut cw, Duration::from_secs(10)), Some(0));
}

/// NAT keepalives (RFC 3948 §2.3) from Causeway behind a NAT: single 0xFF bytes on port
/// 4500, counted by an nftables rule in strongSwan's namespace (UDP length 9 = 8 + 1).
#[test]
fn keepalives_from_behind_a_nat_reach_strongswan() {
    if let Some(r) = skip_reason() {
        eprintln!("SKIP interop_strongswan: {r}");
        return;
    }
    let case = AZURE_DEFAULT;
    let mut lab = Lab::build("k", Topo::Nat);
    let rules = lab.dir.join("keepalive.nft");
    std::fs::write(
        &rules,
        "table inet cwka {\n  chain input {\n    type filter hook input priority 0;\n    \
         udp dport 4500 udp length 9 @th,64,8 0xff counter\n  }\n}\n",
    )
    .unwrap();
    let o = Command::new("ip")
        .args(["netns", "exec", &lab.sw_ns, "nft", "-f"])
        .arg(&rules)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    lab.start_charon(&case);
    let (mut cw, rx) = lab.start_causeway(&case, true, "4.5", &["--nat-keepalive", "1"]);
    let ike = wait_for(&rx, "ike_sa_established", Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    assert!(ike.contains("\"nat\":true"), "{ike}");
    wait_for(&rx, "ike_sa_deleted", Duration::from_secs(15))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    assert_eq!(wait_exit(&mut cw, Duration::from_secs(10)), Some(0));
    let o = Command::new("ip")
        .args([
            "netns", "exec", &lab.sw_ns, "nft", "list", "table", "inet", "cwka",
        ])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&o.stdout).to_string();
    let packets: u64 = listing
        .split("counter packets ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    println!("keepalives seen by strongSwan's namespace: {packets}\n{listing}");
    // One per second for the ~4.5 s the SA was held.
    assert!(
        (3..=6).contains(&packets),
        "{packets} keepalives\n{listing}"
    );
    // And the tunnel stayed fine with them (strongSwan ignores keepalives).
    assert!(!lab.logs().contains("invalid"), "{}", lab.logs());
}

/// Dead peer detection against a strongSwan that dies (SIGKILL): with `dpd_delay` 2 s
/// and 2 retransmissions (1 s, 1.8 s, 3.24 s) the liveness check fails about 8 s after
/// the last message from the peer; Causeway reports the dead peer, deletes the SAs and
/// fails with "peer unreachable".
#[test]
fn dead_strongswan_is_detected_by_dpd() {
    if let Some(r) = skip_reason() {
        eprintln!("SKIP interop_strongswan: {r}");
        return;
    }
    let case = MODP2048S256;
    let mut lab = Lab::new("d");
    lab.start_charon(&case);
    let extra = [
        "--dpd",
        "2",
        "--retransmit-tries",
        "2",
        "--retransmit-timeout",
        "1",
    ];
    let (mut cw, rx) = lab.start_causeway(&case, true, "-1", &extra);
    wait_for(&rx, "child_sa_established", Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    // A live peer answers the checks.
    std::thread::sleep(Duration::from_secs(5));
    let killed = Instant::now();
    lab.kill_charon();
    let dead = wait_for(&rx, "dead_peer", Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.logs()));
    let detected = killed.elapsed();
    println!("dead peer detected {detected:?} after the kill: {dead}");
    assert!(detected < Duration::from_secs(12), "{detected:?}");
    assert!(dead.contains("\"action\":\"Clear\""), "{dead}");
    wait_for(&rx, "child_sa_deleted", Duration::from_secs(2)).unwrap();
    wait_for(&rx, "ike_sa_deleted", Duration::from_secs(2)).unwrap();
    // The example exits 1 after the failure ("peer unreachable").
    assert_eq!(wait_exit(&mut cw, Duration::from_secs(10)), Some(1));
}
