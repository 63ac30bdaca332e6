//! `causeway lab` end to end: two gateways in network namespaces, tunnel, traffic, BGP,
//! clean shutdown. Needs root (network namespaces, TUN); skips with a message otherwise.

use std::process::Command;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn can_run() -> bool {
    if !is_root() {
        eprintln!("skipping: `causeway lab` needs root (network namespaces)");
        return false;
    }
    for tool in ["ip", "ping"] {
        if !have(tool) {
            eprintln!("skipping: `{tool}` missing (scripts/install-deps.sh)");
            return false;
        }
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        eprintln!("skipping: /dev/net/tun missing");
        return false;
    }
    true
}

/// Runs `causeway lab ARGS` and checks it passed and left nothing behind.
fn lab(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_causeway"))
        .arg("lab")
        .args(args)
        .output()
        .expect("run causeway lab");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    // The lab always tears down: no namespace of this run may be left.
    let list = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let list = String::from_utf8_lossy(&list.stdout);
    let pid = stdout
        .lines()
        .find_map(|l| l.strip_prefix("lab id: "))
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or("none")
        .to_string();
    assert!(
        !list
            .lines()
            .any(|l| l.starts_with(&format!("cwlab-{pid}-"))),
        "lab namespaces left behind:\n{list}"
    );
    assert!(
        stdout.contains("causeway lab summary"),
        "no summary:\n{stdout}"
    );
    assert!(stdout.contains(" 0 failed, 0 not available"), "{stdout}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "causeway lab failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("causeway lab: PASS"));
}

/// ESP-in-UDP (port 4500), the default.
#[test]
fn lab_passes_end_to_end() {
    if can_run() {
        lab(&[]);
    }
}

/// Raw ESP (IP protocol 50), as with Azure when there is no NAT.
#[test]
fn lab_passes_with_raw_esp() {
    if can_run() {
        lab(&["--encap", "esp"]);
    }
}

/// Site B played by strongSwan (charon, kernel-libipsec) + BIRD 2: real interop.
#[test]
fn lab_passes_against_strongswan_and_bird() {
    if !can_run() {
        return;
    }
    for bin in ["/usr/sbin/charon-systemd", "/usr/sbin/swanctl"] {
        if !std::path::Path::new(bin).exists() {
            eprintln!("skipping: {bin} missing (scripts/install-deps.sh)");
            return;
        }
    }
    for tool in ["bird", "birdc"] {
        if !have(tool) {
            eprintln!("skipping: `{tool}` missing (scripts/install-deps.sh)");
            return;
        }
    }
    lab(&["--peer", "strongswan"]);
}

/// Forced tunneling: site A routes 0.0.0.0/0 into the tunnel, the peer stays on the WAN.
#[test]
fn lab_passes_with_forced_tunneling() {
    if can_run() {
        lab(&["--forced-tunneling"]);
    }
}

/// Site A behind a NAT router: NAT detection, IKE on 4500, ESP in UDP.
#[test]
fn lab_passes_behind_nat() {
    if !can_run() {
        return;
    }
    if !have("nft") {
        eprintln!("skipping: `nft` missing (scripts/install-deps.sh)");
        return;
    }
    lab(&["--nat"]);
}

/// Azure active-active: one causeway with two tunnels (two TUNs) and two BGP sessions to the
/// two instances of site B's gateway; traffic over both at once, failover and back.
#[test]
fn lab_passes_active_active() {
    if can_run() {
        lab(&["--active-active"]);
    }
}
