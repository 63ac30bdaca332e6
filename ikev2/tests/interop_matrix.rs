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

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::charon::{field, ok, skipped, veth, wait_for, Conn, SwanLab};

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

/// The namespaces of a [`SwanLab`] joined by one veth with the addresses of every case.
fn new_lab(cases: &[Case]) -> SwanLab {
    let lab = SwanLab::new(&format!("cw-ikm-{}", std::process::id()));
    let (cw_ns, sw_ns) = (&lab.cw_ns, &lab.sw_ns);
    veth(cw_ns, "cw0", sw_ns, "sw0");
    ok(&["ip", "-n", cw_ns, "link", "set", "cw0", "up"]);
    ok(&["ip", "-n", sw_ns, "link", "set", "sw0", "up"]);
    for c in cases {
        let (cw, sw) = (format!("{}/24", c.cw_addr()), format!("{}/24", c.sw_addr()));
        ok(&["ip", "-n", cw_ns, "addr", "add", &cw, "dev", "cw0"]);
        ok(&["ip", "-n", sw_ns, "addr", "add", &sw, "dev", "sw0"]);
        // An address inside each site's selector: kernel-libipsec routes from it.
        let cw_site = format!("10.1.{}.1/32", c.slot);
        let sw_site = format!("10.2.{}.1/32", c.slot);
        ok(&["ip", "-n", cw_ns, "addr", "add", &cw_site, "dev", "lo"]);
        ok(&["ip", "-n", sw_ns, "addr", "add", &sw_site, "dev", "lo"]);
    }
    lab
}

/// Starts charon with one swanctl connection per case.
fn start_charon(lab: &mut SwanLab, cases: &[Case]) {
    let mut swanctl = String::from("connections {\n");
    for c in cases {
        let (conn, child) = (c.conn(), c.child());
        let (sw, cw, sw_ts, cw_ts) = (c.sw_addr(), c.cw_addr(), c.sw_ts(), c.cw_ts());
        let entry = Conn {
            name: &conn,
            child: &child,
            sw_addr: &sw,
            cw_addr: &cw,
            remote_addrs: &cw,
            ike: c.row().ike,
            esp: c.row().esp,
            sw_ts: &sw_ts,
            cw_ts: &cw_ts,
        };
        swanctl.push_str(&entry.entry());
    }
    swanctl.push_str(&format!(
        "}}\nsecrets {{\n  ike-cw {{\n    secret = \"{PSK}\"\n  }}\n}}\n"
    ));
    let o = lab.start_charon("", &swanctl);
    for c in cases {
        assert!(
            o.contains(&format!("loaded connection '{}'", c.conn())),
            "{o}\n{}",
            lab.logs()
        );
    }
}

/// Starts the Causeway peer of `case` (killed with the lab); its JSON lines arrive on the
/// returned channel.
fn start_causeway(lab: &mut SwanLab, case: &Case) -> mpsc::Receiver<String> {
    let (cw, sw, cw_ts, sw_ts) = (case.cw_addr(), case.sw_addr(), case.cw_ts(), case.sw_ts());
    let mut args = vec![
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
    lab.start_owned_peer(&args, &format!("causeway {}", case.conn()))
}

/// `swanctl --list-sas` of one connection.
fn list_sas(lab: &SwanLab, case: &Case) -> String {
    lab.swanctl(&["--list-sas", "--ike", &case.conn()])
}

/// The first string of a JSON array field (`"local_ts":["10.1.0.0/24"]`).
fn first_of(line: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\":[\"");
    let i = line.find(&pat)? + pat.len();
    let j = line[i..].find('"')?;
    Some(line[i..i + j].to_string())
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
    lab: &SwanLab,
    case: &Case,
    ike: &str,
    child: &str,
    want_esp_alg: &str,
) -> Result<String, String> {
    let sas = list_sas(lab, case);
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
    lab: &SwanLab,
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
    if skipped("interop_matrix") {
        return;
    }
    let started = Instant::now();
    let cases = Case::all();
    let mut lab = new_lab(&cases);
    start_charon(&mut lab, &cases);
    let mut runs: Vec<Run> = Vec::new();
    for case in cases {
        let rx = start_causeway(&mut lab, &case);
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
            let after = list_sas(&lab, case);
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
