//! Interop with strongSwan's charon (kernel-libipsec) in two network namespaces joined by
//! a veth pair: Causeway's `ike_peer` example in one, `charon-systemd` in the other.
//! Causeway as initiator and as responder; both sides must agree on SPIs and algorithms.
//!
//! Skips (with a message) when not root, when charon/swanctl or the example binary are
//! missing. Namespaces, processes and files are always removed (Drop guard).

mod common;

use std::ops::{Deref, DerefMut};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::charon::{field, ok, skipped, veth, wait_exit, wait_for, Conn, SwanLab};

const CW_ADDR: &str = "192.0.2.1";
const SW_ADDR: &str = "192.0.2.2";
const PSK: &str = "causeway-interop-psk";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The namespaces and charon of [`SwanLab`] in one of the topologies of [`Topo`], with
/// one swanctl connection `cw` (child `net`) to the Causeway peer.
struct Lab {
    sw: SwanLab,
    cw_addr: &'static str,
    sw_addr: &'static str,
    /// charon's `remote_addrs` (`%any` behind the NAT).
    sw_remote: &'static str,
    /// Extra lines for the `charon { }` section of strongswan.conf.
    charon_extra: String,
}

impl Deref for Lab {
    type Target = SwanLab;
    fn deref(&self) -> &SwanLab {
        &self.sw
    }
}

impl DerefMut for Lab {
    fn deref_mut(&mut self) -> &mut SwanLab {
        &mut self.sw
    }
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
        let name = format!("cw-ike{tag}-{}-{n}", std::process::id());
        let (cw_addr, sw_addr, sw_remote) = match topo {
            Topo::V4 => (CW_ADDR, SW_ADDR, CW_ADDR),
            Topo::V6 => ("2001:db8::1", "2001:db8::2", "2001:db8::1"),
            Topo::Nat => (CW_ADDR, "198.51.100.2", "%any"),
        };
        let mut lab = Lab {
            sw: SwanLab::new(&name),
            cw_addr,
            sw_addr,
            sw_remote,
            charon_extra: String::new(),
        };
        let (cw_ns, sw_ns) = (lab.cw_ns.clone(), lab.sw_ns.clone());
        for (ns, site) in [(&cw_ns, "10.1.0.1/32"), (&sw_ns, "10.2.0.1/32")] {
            // An address inside the site's selector (strongSwan routes from it).
            ok(&["ip", "-n", ns, "addr", "add", site, "dev", "lo"]);
        }
        let addr = |ns: &str, dev: &str, a: &str| {
            ok(&["ip", "-n", ns, "addr", "add", a, "dev", dev, "nodad"]);
            ok(&["ip", "-n", ns, "link", "set", dev, "up"]);
        };
        if topo != Topo::Nat {
            veth(&cw_ns, "cw0", &sw_ns, "sw0");
            let len = if topo == Topo::V6 { 64 } else { 24 };
            addr(&cw_ns, "cw0", &format!("{cw_addr}/{len}"));
            addr(&sw_ns, "sw0", &format!("{sw_addr}/{len}"));
            return lab;
        }
        // cw 192.0.2.1 — 192.0.2.254 [NAT] 198.51.100.254 — 198.51.100.2 sw
        let nat = format!("{name}-n");
        lab.extra_ns.push(nat.clone());
        ok(&["ip", "netns", "add", &nat]);
        ok(&["ip", "-n", &nat, "link", "set", "lo", "up"]);
        veth(&cw_ns, "cw0", &nat, "in0");
        veth(&sw_ns, "sw0", &nat, "out0");
        addr(&cw_ns, "cw0", "192.0.2.1/24");
        addr(&nat, "in0", "192.0.2.254/24");
        addr(&nat, "out0", "198.51.100.254/24");
        addr(&sw_ns, "sw0", "198.51.100.2/24");
        ok(&[
            "ip",
            "-n",
            &cw_ns,
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
            &nat,
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
            &nat,
            "nft",
            "-f",
            &f.display().to_string(),
        ]);
        lab
    }

    /// Starts charon with the connection `cw` for `case`.
    fn start_charon(&mut self, case: &Case<'_>) {
        let conn = Conn {
            name: "cw",
            child: "net",
            sw_addr: self.sw_addr,
            cw_addr: self.cw_addr,
            remote_addrs: self.sw_remote,
            ike: case.ike,
            esp: case.esp,
            sw_ts: "10.2.0.0/16",
            cw_ts: "10.1.0.0/16",
        };
        let swanctl = format!(
            r#"connections {{
{entry}}}
secrets {{
  ike-cw {{
    id-a = {cw}
    id-b = {sw}
    secret = "{PSK}"
  }}
}}
"#,
            entry = conn.entry(),
            cw = self.cw_addr,
            sw = self.sw_addr,
        );
        let o = self.sw.start_charon(&self.charon_extra, &swanctl);
        assert!(o.contains("loaded connection 'cw'"), "{o}\n{}", self.logs());
    }

    /// Starts the Causeway peer; its JSON lines arrive on the returned channel.
    fn start_causeway(
        &self,
        case: &Case<'_>,
        initiate: bool,
        hold: &str,
        extra: &[&str],
    ) -> (Child, mpsc::Receiver<String>) {
        let mut args = vec![
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
        let peer = self.start_peer(&args, "causeway");
        if !initiate {
            // Let it bind its sockets before strongSwan initiates.
            std::thread::sleep(Duration::from_millis(300));
        }
        peer
    }

    /// The IKE SA and Child SA come up: initiated by the Causeway peer by itself, or by
    /// strongSwan (`swanctl --initiate`); returns Causeway's two JSON lines.
    fn bring_up(&self, rx: &mpsc::Receiver<String>, causeway_initiates: bool) -> (String, String) {
        if !causeway_initiates {
            self.swanctl_completes(&["--initiate", "--child", "net", "--timeout", "15"]);
        }
        let ike = self.expect_event(rx, "ike_sa_established", Duration::from_secs(20));
        let child = self.expect_event(rx, "child_sa_established", Duration::from_secs(5));
        (ike, child)
    }

    /// The initiator deletes the IKE SA: a Causeway initiator by itself (after `--hold`),
    /// strongSwan with `swanctl --terminate`; Causeway must report it deleted.
    fn tear_down(&self, rx: &mpsc::Receiver<String>, causeway_initiated: bool) -> String {
        if !causeway_initiated {
            self.swanctl_completes(&["--terminate", "--ike", "cw", "--timeout", "10"]);
        }
        self.expect_event(rx, "ike_sa_deleted", Duration::from_secs(15))
    }

    /// After an IKE SA rekey (Causeway's `ike_sa_rekeyed` line `rekeyed`): strongSwan
    /// lists the new IKE SPIs. Returns its listing and the new initiator SPI.
    fn check_ike_rekeyed<'a>(&self, rekeyed: &'a str) -> (String, &'a str) {
        std::thread::sleep(Duration::from_millis(500));
        let sas = self.swanctl(&["--list-sas"]);
        println!("{sas}");
        let (spi_i, spi_r) = (
            field(rekeyed, "spi_i").unwrap(),
            field(rekeyed, "spi_r").unwrap(),
        );
        assert!(
            sas.contains(spi_i) && sas.contains(spi_r),
            "new IKE SPIs not in\n{sas}"
        );
        (sas, spi_i)
    }
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
    handshake(Topo::V4, case, true, ike_alg, esp_alg);
}

fn strongswan_initiates(case: Case<'_>, ike_alg: &str, esp_alg: &str) {
    handshake(Topo::V4, case, false, ike_alg, esp_alg);
}

/// One IKE SA and Child SA, initiated by Causeway or by strongSwan: both sides must list
/// the same SPIs and the expected algorithms; the initiator deletes the SA again and
/// Causeway exits cleanly.
fn handshake(topo: Topo, case: Case<'_>, causeway_initiates: bool, ike_alg: &str, esp_alg: &str) {
    if skipped("interop_strongswan") {
        return;
    }
    let mut lab = Lab::build(if causeway_initiates { "i" } else { "r" }, topo);
    lab.start_charon(&case);
    let started = Instant::now();
    let hold = if causeway_initiates { "3" } else { "-1" };
    let (mut cw, rx) = lab.start_causeway(&case, causeway_initiates, hold, &[]);
    let (ike, child) = lab.bring_up(&rx, causeway_initiates);
    // Process start to Child SA up, both IKE exchanges over the veth (debug build).
    eprintln!("{}: Child SA up after {:?}", case.ike, started.elapsed());
    check_sas(&lab, &ike, &child, ike_alg, esp_alg);
    lab.tear_down(&rx, causeway_initiates);
    assert_eq!(wait_exit(&mut cw, Duration::from_secs(10)), Some(0));
    let after = lab.swanctl(&["--list-sas"]);
    assert!(
        !after.contains("ESTABLISHED"),
        "strongSwan still has the SA:\n{after}"
    );
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
    if skipped("interop_strongswan") {
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
    lab.bring_up(&rx, false);
    let out = lab.swanctl(&["--rekey", "--child", "net"]);
    assert!(out.contains("successfully"), "{out}");
    let child2 = lab.expect_event(&rx, "child_sa_established", Duration::from_secs(10));
    lab.expect_event(&rx, "child_sa_deleted", Duration::from_secs(10));
    let out = lab.swanctl(&["--rekey", "--ike", "cw"]);
    assert!(out.contains("successfully"), "{out}");
    let rekeyed = lab.expect_event(&rx, "ike_sa_rekeyed", Duration::from_secs(10));
    let (sas, spi_i) = lab.check_ike_rekeyed(&rekeyed);
    let local = field(&child2, "local_spi").unwrap();
    assert!(
        sas.contains(local),
        "rekeyed Child SA {local} not in\n{sas}\n{}",
        lab.logs()
    );
    // The Child SA survived the IKE rekey: delete everything through the new IKE SA.
    let del = lab.tear_down(&rx, false);
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
    lab.expect_event(&rx, "child_sa_established", Duration::from_secs(20));
    let child2 = lab.expect_event(&rx, "child_sa_established", Duration::from_secs(10));
    lab.expect_event(&rx, "child_sa_deleted", Duration::from_secs(10));
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
    let rekeyed = lab.expect_event(&rx, "ike_sa_rekeyed", Duration::from_secs(10));
    let (sas, spi_i) = lab.check_ike_rekeyed(&rekeyed);
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
    if skipped("interop_strongswan") {
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
    handshake(Topo::V6, MODP2048S256, true, ike_alg, "AES_GCM_16-256");
    handshake(Topo::V6, MODP2048S256, false, ike_alg, "AES_GCM_16-256");
}

/// Causeway behind a masquerading NAT (random source ports): NAT detection on both
/// sides, IKE floats to 4500 through the NAT, strongSwan sees the translated address.
#[test]
fn causeway_behind_nat() {
    if skipped("interop_strongswan") {
        return;
    }
    let case = AZURE_DEFAULT;
    let mut lab = Lab::build("n", Topo::Nat);
    lab.start_charon(&case);
    let (mut cw, rx) = lab.start_causeway(&case, true, "2", &[]);
    let ike = lab.expect_event(&rx, "ike_sa_established", Duration::from_secs(20));
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
    if skipped("interop_strongswan") {
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
        let (ike, child) = lab.bring_up(&rx, initiate);
        // The rekey (our CREATE_CHILD_SA with a 256-byte KE) after 1 s.
        let rekeyed = lab.expect_event(&rx, "child_sa_established", Duration::from_secs(10));
        assert_ne!(field(&rekeyed, "local_spi"), field(&child, "local_spi"));
        assert!(field(&ike, "spi_i").is_some());
        assert!(lab.log_shows("splitting IKE message"), "{}", lab.logs());
        assert!(
            lab.log_shows("reassembled fragmented IKE message"),
            "{}",
            lab.logs()
        );
        lab.tear_down(&rx, initiate);
        let stats = lab.expect_event(&rx, "stats", Duration::from_secs(10));
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
    if skipped("interop_strongswan") {
        return;
    }
    let case = MODP2048S256;
    let mut lab = Lab::new("ic");
    lab.start_charon(&case);
    let (mut cw, rx) = lab.start_causeway(&case, false, "-1", &[]);
    let (ike1, child1) = lab.bring_up(&rx, false);
    lab.kill_charon();
    lab.start_charon(&case);
    lab.swanctl_completes(&["--initiate", "--child", "net", "--timeout", "15"]);
    assert!(
        lab.log_shows("INITIAL_CONTACT") || lab.log_shows("N(INIT_CONTACT)"),
        "{}",
        lab.logs()
    );
    let ike2 = lab.expect_event(&rx, "ike_sa_established", Duration::from_secs(5));
    assert_ne!(field(&ike1, "spi_i"), field(&ike2, "spi_i"));
    let child2 = lab.expect_event(&rx, "child_sa_established", Duration::from_secs(5));
    let gone = lab.expect_event(&rx, "child_sa_deleted", Duration::from_secs(5));
    assert_eq!(field(&gone, "local_spi"), field(&child1, "local_spi"));
    assert_ne!(field(&child2, "local_spi"), field(&child1, "local_spi"));
    let gone = lab.expect_event(&rx, "ike_sa_deleted", Duration::from_secs(5));
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
    if skipped("interop_strongswan") {
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
    let ike = lab.expect_event(&rx, "ike_sa_established", Duration::from_secs(20));
    assert!(ike.contains("\"nat\":true"), "{ike}");
    lab.expect_event(&rx, "ike_sa_deleted", Duration::from_secs(15));
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
    if skipped("interop_strongswan") {
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
    lab.expect_event(&rx, "child_sa_established", Duration::from_secs(20));
    // A live peer answers the checks.
    std::thread::sleep(Duration::from_secs(5));
    let killed = Instant::now();
    lab.kill_charon();
    let dead = lab.expect_event(&rx, "dead_peer", Duration::from_secs(30));
    let detected = killed.elapsed();
    println!("dead peer detected {detected:?} after the kill: {dead}");
    assert!(detected < Duration::from_secs(12), "{detected:?}");
    assert!(dead.contains("\"action\":\"Clear\""), "{dead}");
    wait_for(&rx, "child_sa_deleted", Duration::from_secs(2)).unwrap();
    wait_for(&rx, "ike_sa_deleted", Duration::from_secs(2)).unwrap();
    // The example exits 1 after the failure ("peer unreachable").
    assert_eq!(wait_exit(&mut cw, Duration::from_secs(10)), Some(1));
}
