//! Helpers shared by the root package's network-namespace tests (gateway_e2e, wan,
//! rekey_soak): root/tool checks and running a command; [`net`]: namespaces, daemons and
//! the two-site topology; [`swan`]: strongSwan as the peer.
#![allow(dead_code)]

pub mod net;
pub mod swan;

use std::path::Path;
use std::process::{Command, Stdio};

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub fn can_run(tools: &[&str]) -> bool {
    if !is_root() {
        eprintln!("skipping: needs root (network namespaces, TUN)");
        return false;
    }
    for tool in tools {
        if !have(tool) {
            eprintln!("skipping: `{tool}` missing (scripts/install-deps.sh)");
            return false;
        }
    }
    if !Path::new("/dev/net/tun").exists() {
        eprintln!("skipping: /dev/net/tun missing");
        return false;
    }
    true
}

pub fn run(prog: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{prog}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{prog} {}` failed: {} {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    }
}
