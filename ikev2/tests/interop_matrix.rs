//! The Azure proposal matrix of issue 4 against strongSwan's charon (kernel-libipsec),
//! Causeway as initiator AND as responder for every row:
//!
//! | IKE                            | ESP                  |
//! |--------------------------------|----------------------|
//! | `aes256-sha1-modp1024`         | `aes256gcm16`        |
//! | `aes256-sha256-modp2048s256`   | `aes256gcm16`        |
//! | `aes256gcm16-prfsha384-ecp384` | `aes256gcm16-ecp384` |
//! | `aes128-sha256-modp2048`       | `aes128-sha256`      |
//! | `aes256-sha384-curve25519`     | `aes256gcm16`        |
//!
//! One namespace pair and ONE charon for all ten cases: every (row, role) gets its own
//! address pair on the veth, its own swanctl connection (`i<row>` / `r<row>`) and its own
//! traffic selectors, and all ten Causeway peers (`examples/ike_peer.rs`) run at once.
//!
//! Proof per case: strongSwan lists the IKE SA ESTABLISHED with Causeway's IKE SPIs and
//! the Child SA INSTALLED with Causeway's ESP SPIs (crossed) and selectors, and the
//! algorithms strongSwan shows are exactly the ones Causeway reports (translated from
//! Causeway's keyword form), and the expected ones for the row.
//!
//! The PFS row (`aes256gcm16-ecp384`) also rekeys its Child SA: Causeway initiates the
//! rekey in the initiator case (`--rekey-after 4`), strongSwan in the responder case
//! (`swanctl --rekey`); afterwards strongSwan lists only the new Child SA, with
//! `AES_GCM_16-256/ECP_384` (the CREATE_CHILD_SA carried an ECP-384 KE).
//!
//! Root only; skips with a message otherwise (or without charon/swanctl/plugins).
//! Namespaces, processes and files are always removed (Drop guard), also on failure.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CHARON: &str = "/usr/sbin/charon-systemd";
const SWANCTL: &str = "/usr/sbin/swanctl";
const PSK: &str = "causeway-matrix-psk";
/// How long a Causeway initiator keeps its SAs before deleting them itself.
const INITIATOR_HOLD: &str = "12";
/// When a Causeway initiator rekeys the Child SA of the PFS row (after the first check).
const REKEY_AFTER: &str = "4";

struct Row {
    ike: &'static str,
    esp: &'static str,
    /// What strongSwan must list for the IKE SA.
    ike_alg: &'static str,
    /// What strongSwan must list for the first Child SA.
    esp_alg: &'static str,
    /// The ESP PFS group's strongSwan name: rekey the Child SA with it.
    pfs: Option<&'static str>,
}

const MATRIX: [Row; 5] = [
    Row {
        ike: "aes256-sha1-modp1024",
        esp: "aes256gcm16",
        ike_alg: "AES_CBC-256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024",
        esp_alg: "AES_GCM_16-256",
        pfs: None,
    },
    Row {
        ike: "aes256-sha256-modp2048s256",
        esp: "aes256gcm16",
        ike_alg: "AES_CBC-256/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048_256",
        esp_alg: "AES_GCM_16-256",
        pfs: None,
    },
    Row {
        ike: "aes256gcm16-prfsha384-ecp384",
        esp: "aes256gcm16-ecp384",
        ike_alg: "AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384",
        esp_alg: "AES_GCM_16-256",
        pfs: Some("ECP_384"),
    },
    Row {
        ike: "aes128-sha256-modp2048",
        esp: "aes128-sha256",
        ike_alg: "AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048",
        esp_alg: "AES_CBC-128/HMAC_SHA2_256_128",
        pfs: None,
    },
    Row {
        ike: "aes256-sha384-curve25519",
        esp: "aes256gcm16",
        ike_alg: "AES_CBC-256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/CURVE_25519",
        esp_alg: "AES_GCM_16-256",
        pfs: None,
    },
];

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
    // target/debug/deps/interop_matrix-xxxx → target/debug/examples/ike_peer
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("examples").join("ike_peer");
    p.exists().then_some(p)
}

/// Builds the example (a no-op when fresh; `cargo test --test X` does not build examples).
fn build_example() {
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
            return Some(format!("strongSwan plugin {plugin} missing"));
        }
    }
    build_example();
    if example_binary().is_none() {
        return Some("examples/ike_peer not built".into());
    }
    None
}

/// One (row, role) case: its own addresses, selectors and swanctl connection.
struct Case {
    row: usize,
    /// Causeway initiates (else strongSwan does).
    causeway_initiates: bool,
    /// 0..10: picks the addresses and selectors.
    slot: usize,
}

impl Case {
    fn all() -> Vec<Case> {
        let mut v = Vec::new();
        for row in 0..MATRIX.len() {
            for causeway_initiates in [true, false] {
                let slot = v.len();
                v.push(Case {
                    row,
                    causeway_initiates,
                    slot,
                });
            }
        }
        v
    }
    fn row(&self) -> &'static Row {
        &MATRIX[self.row]
    }
    /// swanctl connection name.
    fn conn(&self) -> String {
        format!(
            "{}{}",
            if self.causeway_initiates { "i" } else { "r" },
            self.row + 1
        )
    }
    fn child(&self) -> String {
        format!("c-{}", self.conn())
    }
    fn cw_addr(&self) -> String {
        format!("192.0.2.{}", 10 + self.slot)
    }
    fn sw_addr(&self) -> String {
        format!("192.0.2.{}", 100 + self.slot)
    }
    fn cw_ts(&self) -> String {
        format!("10.1.{}.0/24", self.slot)
    }
    fn sw_ts(&self) -> String {
        format!("10.2.{}.0/24", self.slot)
    }
    fn label(&self) -> String {
        format!(
            "{} {} + {}",
            if self.causeway_initiates {
                "causeway->strongswan"
            } else {
                "strongswan->causeway"
            },
            self.row().ike,
            self.row().esp
        )
    }
}

/// Two namespaces joined by a veth, one charon; everything removed on drop.
struct Lab {
    cw_ns: String,
    sw_ns: String,
    dir: PathBuf,
    charon: Option<Child>,
    peers: Vec<Child>,
}

impl Drop for Lab {
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
        for ns in [&self.cw_ns, &self.sw_ns] {
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

impl Lab {
    fn new(cases: &[Case]) -> Lab {
        let id = std::process::id();
        let lab = Lab {
            cw_ns: format!("cw-ikm-{id}-a"),
            sw_ns: format!("cw-ikm-{id}-s"),
            dir: std::env::temp_dir().join(format!("cw-ikm-{id}")),
            charon: None,
            peers: Vec::new(),
        };
        let _ = std::fs::remove_dir_all(&lab.dir);
        std::fs::create_dir_all(&lab.dir).unwrap();
        ok(&["ip", "netns", "add", &lab.cw_ns]);
        ok(&["ip", "netns", "add", &lab.sw_ns]);
        ok(&[
            "ip", "-n", &lab.cw_ns, "link", "add", "cw0", "type", "veth", "peer", "name", "sw0",
            "netns", &lab.sw_ns,
        ]);
        for (ns, dev) in [(&lab.cw_ns, "cw0"), (&lab.sw_ns, "sw0")] {
            ok(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            ok(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        for c in cases {
            let (cw, sw) = (format!("{}/24", c.cw_addr()), format!("{}/24", c.sw_addr()));
            ok(&["ip", "-n", &lab.cw_ns, "addr", "add", &cw, "dev", "cw0"]);
            ok(&["ip", "-n", &lab.sw_ns, "addr", "add", &sw, "dev", "sw0"]);
            // An address inside each site's selector: kernel-libipsec routes from it.
            let cw_site = format!("10.1.{}.1/32", c.slot);
            let sw_site = format!("10.2.{}.1/32", c.slot);
            ok(&["ip", "-n", &lab.cw_ns, "addr", "add", &cw_site, "dev", "lo"]);
            ok(&["ip", "-n", &lab.sw_ns, "addr", "add", &sw_site, "dev", "lo"]);
        }
        lab
    }

    fn vici(&self) -> String {
        format!("unix://{}/charon.vici", self.dir.display())
    }

    fn start_charon(&mut self, cases: &[Case]) {
        let d = self.dir.display();
        let conf = format!(
            r#"charon {{
  load = random nonce openssl aes sha1 sha2 hmac gcm gmp curve25519 kdf pem pkcs1 x509 pubkey kernel-libipsec kernel-netlink socket-default vici
  install_routes = no
  retransmit_tries = 2
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
        let mut swanctl = String::from("connections {\n");
        for c in cases {
            swanctl.push_str(&format!(
                r#"  {conn} {{
    version = 2
    local_addrs = {sw}
    remote_addrs = {cw}
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
                conn = c.conn(),
                child = c.child(),
                sw = c.sw_addr(),
                cw = c.cw_addr(),
                ike = c.row().ike,
                esp = c.row().esp,
                sw_ts = c.sw_ts(),
                cw_ts = c.cw_ts(),
            ));
        }
        swanctl.push_str(&format!(
            "}}\nsecrets {{\n  ike-cw {{\n    secret = \"{PSK}\"\n  }}\n}}\n"
        ));
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
        for c in cases {
            assert!(
                o.contains(&format!("loaded connection '{}'", c.conn())),
                "{o}\n{}",
                self.logs()
            );
        }
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

    fn logs(&self) -> String {
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

    /// Starts the Causeway peer of `case`; its JSON lines arrive on the returned channel.
    fn start_causeway(&mut self, case: &Case) -> mpsc::Receiver<String> {
        let exe = example_binary().unwrap().display().to_string();
        let (cw, sw, cw_ts, sw_ts) = (case.cw_addr(), case.sw_addr(), case.cw_ts(), case.sw_ts());
        let mut args = vec![
            "netns",
            "exec",
            &self.cw_ns,
            &exe,
            "--local",
            &cw,
            "--remote",
            &sw,
            "--psk",
            PSK,
            "--ike",
            case.row().ike,
            "--esp",
            case.row().esp,
            "--local-ts",
            &cw_ts,
            "--remote-ts",
            &sw_ts,
            "--timeout",
            "50",
        ];
        if case.causeway_initiates {
            args.extend_from_slice(&["--initiate", "--hold", INITIATOR_HOLD]);
            if case.row().pfs.is_some() {
                args.extend_from_slice(&["--rekey-after", REKEY_AFTER]);
            }
        } else {
            args.extend_from_slice(&["--hold", "-1"]);
        }
        let mut child = Command::new("ip")
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        self.peers.push(child);
        let (tx, rx) = mpsc::channel();
        let name = case.conn();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                println!("causeway {name}: {l}");
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        rx
    }

    /// `swanctl --list-sas` of one connection.
    fn list_sas(&self, case: &Case) -> String {
        self.swanctl(&["--list-sas", "--ike", &case.conn()])
    }
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":\"");
    let i = line.find(&pat)? + pat.len();
    let j = line[i..].find('"')?;
    Some(&line[i..i + j])
}

/// The first string of a JSON array field (`"local_ts":["10.1.0.0/24"]`).
fn first_of(line: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\":[\"");
    let i = line.find(&pat)? + pat.len();
    let j = line[i..].find('"')?;
    Some(line[i..i + j].to_string())
}

fn wait_for(rx: &mpsc::Receiver<String>, what: &str, timeout: Duration) -> Result<String, String> {
    let end = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(&format!("\"event\":\"{what}\"")) => return Ok(l),
            Ok(l) if l.contains("\"event\":\"failed\"") => {
                return Err(format!("failed while waiting for {what}: {l}"))
            }
            Ok(l) => seen.push(l),
            Err(_) => return Err(format!("no {what} in time; saw: {}", seen.join(" | "))),
        }
    }
}

/// Causeway's keyword suite (`aes256-sha1-prfsha1-modp1024`) in strongSwan's
/// `--list-sas` form (`AES_CBC-256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024`); DH groups
/// dropped unless `with_dh`.
fn strongswan_names(suite: &str, with_dh: bool) -> String {
    let mut out = Vec::new();
    for t in suite.split('-') {
        let (name, dh) = match t {
            "aes128" => ("AES_CBC-128", false),
            "aes192" => ("AES_CBC-192", false),
            "aes256" => ("AES_CBC-256", false),
            "aes128gcm16" => ("AES_GCM_16-128", false),
            "aes192gcm16" => ("AES_GCM_16-192", false),
            "aes256gcm16" => ("AES_GCM_16-256", false),
            "sha1" => ("HMAC_SHA1_96", false),
            "sha256" => ("HMAC_SHA2_256_128", false),
            "sha384" => ("HMAC_SHA2_384_192", false),
            "sha512" => ("HMAC_SHA2_512_256", false),
            "prfsha1" => ("PRF_HMAC_SHA1", false),
            "prfsha256" => ("PRF_HMAC_SHA2_256", false),
            "prfsha384" => ("PRF_HMAC_SHA2_384", false),
            "prfsha512" => ("PRF_HMAC_SHA2_512", false),
            "modp1024" => ("MODP_1024", true),
            "modp2048" => ("MODP_2048", true),
            "modp3072" => ("MODP_3072", true),
            "modp2048s256" => ("MODP_2048_256", true),
            "ecp256" => ("ECP_256", true),
            "ecp384" => ("ECP_384", true),
            "curve25519" | "x25519" => ("CURVE_25519", true),
            "noesn" => continue,
            "esn" => ("ESN", false),
            other => return format!("<unknown keyword {other}>"),
        };
        if with_dh || !dh {
            out.push(name);
        }
    }
    out.join("/")
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// What strongSwan lists for one IKE SA and its (single) Child SA.
struct Listed {
    ike_header: String,
    ike_alg: String,
    child_header: String,
    esp_alg: String,
    spi_in: String,
    spi_out: String,
    local_ts: String,
    remote_ts: String,
    installed: usize,
}

fn parse_listing(sas: &str, case: &Case) -> Result<Listed, String> {
    let lines: Vec<&str> = sas.lines().collect();
    let conn = format!("{}: #", case.conn());
    let child = format!("{}: #", case.child());
    let hi = lines
        .iter()
        .position(|l| l.starts_with(&conn))
        .ok_or(format!("no IKE SA {} listed:\n{sas}", case.conn()))?;
    let ike_alg = lines[hi + 1..]
        .iter()
        .map(|l| l.trim())
        .find(|l| l.starts_with("AES_"))
        .unwrap_or("")
        .to_string();
    // After a rekey the old Child SA stays listed as DELETED for a few seconds
    // (charon.delete_rekeyed_delay): look at the INSTALLED one.
    let is_child = |l: &&str| l.trim_start().starts_with(&child);
    let ci = lines
        .iter()
        .position(|l| is_child(l) && l.contains("INSTALLED"))
        .or_else(|| lines.iter().position(is_child))
        .ok_or(format!("no Child SA {} listed:\n{sas}", case.child()))?;
    let child_header = lines[ci].trim().to_string();
    let esp_alg = child_header
        .split("ESP:")
        .nth(1)
        .unwrap_or("")
        .trim()
        .to_string();
    let after = |prefix: &str| {
        lines[ci + 1..]
            .iter()
            .map(|l| l.trim())
            .find(|l| l.starts_with(prefix))
            .map(|l| l[prefix.len()..].trim().to_string())
            .unwrap_or_default()
    };
    let spi = |s: String| s.split(',').next().unwrap_or("").trim().to_string();
    Ok(Listed {
        ike_header: lines[hi].to_string(),
        ike_alg,
        child_header,
        esp_alg,
        spi_in: spi(after("in ")),
        spi_out: spi(after("out ")),
        local_ts: after("local "),
        remote_ts: after("remote "),
        installed: sas.matches("INSTALLED").count(),
    })
}

/// The proof: strongSwan's listing of `case` matches what Causeway reported.
fn check_case(
    lab: &Lab,
    case: &Case,
    ike: &str,
    child: &str,
    want_esp_alg: &str,
) -> Result<String, String> {
    let sas = lab.list_sas(case);
    println!("--- {} ---\n{sas}", case.label());
    let l = parse_listing(&sas, case)?;
    let (spi_i, spi_r) = (
        field(ike, "spi_i").ok_or("no spi_i")?,
        field(ike, "spi_r").ok_or("no spi_r")?,
    );
    ensure!(
        l.ike_header.contains("ESTABLISHED"),
        "not ESTABLISHED: {}",
        l.ike_header
    );
    // strongSwan marks its own SPI with `*`: initiator SPI `_i`, responder SPI `_r`.
    let (ours_i, ours_r) = if case.causeway_initiates {
        (format!("{spi_i}_i "), format!("{spi_r}_r*"))
    } else {
        (format!("{spi_i}_i*"), format!("{spi_r}_r"))
    };
    let hdr = format!("{} ", l.ike_header.trim_end());
    ensure!(
        hdr.contains(&ours_i) && hdr.contains(&ours_r),
        "IKE SPIs {ours_i}/{ours_r} (Causeway) vs strongSwan: {}",
        l.ike_header
    );
    let cw_ike = strongswan_names(field(ike, "suite").ok_or("no IKE suite")?, true);
    ensure!(
        l.ike_alg == cw_ike,
        "IKE algorithms: strongSwan {} / Causeway {cw_ike}",
        l.ike_alg
    );
    ensure!(
        l.ike_alg == case.row().ike_alg,
        "IKE algorithms {} (expected {})",
        l.ike_alg,
        case.row().ike_alg
    );
    ensure!(
        l.child_header.contains("INSTALLED"),
        "not INSTALLED: {}",
        l.child_header
    );
    ensure!(
        l.installed == 1,
        "{} Child SAs INSTALLED:\n{sas}",
        l.installed
    );
    // strongSwan's inbound SPI is Causeway's outbound (remote) SPI and vice versa.
    let (local, remote) = (
        field(child, "local_spi").ok_or("no local_spi")?,
        field(child, "remote_spi").ok_or("no remote_spi")?,
    );
    ensure!(
        l.spi_in == remote && l.spi_out == local,
        "ESP SPIs: strongSwan in {} out {} / Causeway local {local} remote {remote}",
        l.spi_in,
        l.spi_out
    );
    let with_dh = want_esp_alg.contains("/ECP_") || want_esp_alg.contains("/MODP_");
    let cw_esp = strongswan_names(field(child, "suite").ok_or("no ESP suite")?, with_dh);
    ensure!(
        l.esp_alg == cw_esp,
        "ESP algorithms: strongSwan {} / Causeway {cw_esp}",
        l.esp_alg
    );
    ensure!(
        l.esp_alg == want_esp_alg,
        "ESP algorithms {} (expected {want_esp_alg})",
        l.esp_alg
    );
    let (cw_local_ts, cw_remote_ts) = (
        first_of(child, "local_ts").unwrap_or_default(),
        first_of(child, "remote_ts").unwrap_or_default(),
    );
    ensure!(
        l.local_ts == cw_remote_ts && l.remote_ts == cw_local_ts,
        "selectors: strongSwan {} === {} / Causeway {cw_local_ts} === {cw_remote_ts}",
        l.local_ts,
        l.remote_ts
    );
    Ok(format!(
        "IKE {spi_i}/{spi_r} {} ; ESP {local}/{remote} {}",
        l.ike_alg, l.esp_alg
    ))
}

/// Child SA rekey with PFS: the new Child SA is the only one strongSwan lists, with the
/// PFS group.
fn check_pfs_rekey(
    lab: &Lab,
    case: &Case,
    rx: &mpsc::Receiver<String>,
    ike: &str,
    first: &str,
    group: &str,
) -> Result<String, String> {
    if !case.causeway_initiates {
        let out = lab.swanctl(&["--rekey", "--child", &case.child()]);
        ensure!(out.contains("successfully"), "swanctl --rekey: {out}");
    }
    let new = wait_for(rx, "child_sa_established", Duration::from_secs(15))?;
    let gone = wait_for(rx, "child_sa_deleted", Duration::from_secs(10))?;
    ensure!(
        field(&gone, "local_spi") == field(first, "local_spi"),
        "deleted {gone}, expected the first Child SA {first}"
    );
    ensure!(
        field(&new, "local_spi") != field(first, "local_spi"),
        "rekeyed Child SA has the old SPI: {new}"
    );
    // strongSwan removes the old SA when the Delete exchange completes.
    let want = format!("{}/{group}", case.row().esp_alg);
    let t = Instant::now();
    loop {
        match check_case(lab, case, ike, &new, &want) {
            Ok(s) => return Ok(format!("rekeyed with PFS: {s}")),
            Err(e) if t.elapsed() > Duration::from_secs(3) => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

struct Run {
    case: Case,
    rx: mpsc::Receiver<String>,
    ike: Option<String>,
    result: Result<String, String>,
}

#[test]
fn azure_matrix_both_roles() {
    if let Some(r) = skip_reason() {
        eprintln!("SKIP interop_matrix: {r}");
        return;
    }
    let started = Instant::now();
    let cases = Case::all();
    let mut lab = Lab::new(&cases);
    lab.start_charon(&cases);
    let mut runs: Vec<Run> = Vec::new();
    for case in cases {
        let rx = lab.start_causeway(&case);
        runs.push(Run {
            case,
            rx,
            ike: None,
            result: Err("not run".into()),
        });
    }
    // Initiators first (they delete their SAs themselves after INITIATOR_HOLD), then
    // the responder cases, each started by strongSwan when its turn comes.
    std::thread::sleep(Duration::from_millis(500)); // sockets bound
    runs.sort_by_key(|r| !r.case.causeway_initiates);
    for run in runs.iter_mut() {
        let (case, rx) = (&run.case, &run.rx);
        run.result = (|| {
            if !case.causeway_initiates {
                let child = case.child();
                let out = lab.swanctl(&["--initiate", "--child", &child, "--timeout", "15"]);
                ensure!(
                    out.contains("completed successfully"),
                    "swanctl --initiate: {out}"
                );
            }
            let ike = wait_for(rx, "ike_sa_established", Duration::from_secs(20))?;
            let child = wait_for(rx, "child_sa_established", Duration::from_secs(10))?;
            let mut s = check_case(&lab, case, &ike, &child, case.row().esp_alg)?;
            if let Some(group) = case.row().pfs {
                s.push_str(" ; ");
                s.push_str(&check_pfs_rekey(&lab, case, rx, &ike, &child, group)?);
            }
            run.ike = Some(ike);
            Ok(s)
        })();
    }
    // Teardown: strongSwan deletes the responder cases, Causeway the initiator cases.
    for run in runs.iter_mut() {
        if run.ike.is_none() {
            continue;
        }
        let (case, rx) = (&run.case, &run.rx);
        let closed = (|| {
            if !case.causeway_initiates {
                let out = lab.swanctl(&["--terminate", "--ike", &case.conn(), "--timeout", "10"]);
                ensure!(
                    out.contains("completed successfully"),
                    "swanctl --terminate: {out}"
                );
            }
            let del = wait_for(rx, "ike_sa_deleted", Duration::from_secs(20))?;
            let ike = run.ike.as_deref().unwrap_or_default();
            ensure!(
                field(&del, "spi_i") == field(ike, "spi_i"),
                "deleted {del}, expected {ike}"
            );
            let after = lab.list_sas(case);
            ensure!(
                !after.contains("ESTABLISHED"),
                "strongSwan still has the SA:\n{after}"
            );
            Ok(())
        })();
        if let (Ok(s), Err(e)) = (&run.result, closed) {
            run.result = Err(format!("{s} ; but deletion: {e}"));
        }
    }
    let mut failed = 0;
    println!("\n=== interop matrix ({:?}) ===", started.elapsed());
    for run in &runs {
        match &run.result {
            Ok(s) => println!("PASS {:<60} {s}", run.case.label()),
            Err(e) => {
                failed += 1;
                println!("FAIL {:<60} {e}", run.case.label());
            }
        }
    }
    assert_eq!(
        failed,
        0,
        "{failed} of {} cases failed\n{}",
        runs.len(),
        lab.logs()
    );
}
