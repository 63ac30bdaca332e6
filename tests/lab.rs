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

#[test]
fn lab_passes_end_to_end() {
    if !is_root() {
        eprintln!("skipping lab_passes_end_to_end: needs root (network namespaces)");
        return;
    }
    for tool in ["ip", "ping"] {
        if !have(tool) {
            eprintln!("skipping lab_passes_end_to_end: `{tool}` missing (scripts/install-deps.sh)");
            return;
        }
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        eprintln!("skipping lab_passes_end_to_end: /dev/net/tun missing");
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_causeway"))
        .arg("lab")
        .output()
        .expect("run causeway lab");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    // The lab always tears down: no namespace of its run may be left.
    let list = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(
        !list.lines().any(|l| l.starts_with("cwlab-")),
        "lab namespaces left behind:\n{list}"
    );
    assert!(
        stdout.contains("causeway lab summary"),
        "no summary:\n{stdout}"
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "causeway lab failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("causeway lab: PASS"));
}
