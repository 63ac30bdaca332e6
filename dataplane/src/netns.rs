//! Network namespaces for tests and `causeway lab`.
//!
//! [`NetNs::create`] makes a uniquely named namespace with `ip netns add` (so it shows up
//! in `ip netns list` and `ip -n NAME` works) and deletes it on drop, also when a test
//! panics. Code runs inside it on a dedicated thread ([`NetNs::run`], [`NetNs::spawn`]):
//! `setns(2)` on `/run/netns/NAME` switches only the calling thread, and every socket,
//! TUN device and thread created there afterwards belongs to the namespace.

use std::io;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;

/// A network namespace that is deleted when dropped.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// True when running as root (namespaces, TUN and raw sockets need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// True when the `ip` tool (iproute2) is available.
pub fn have_ip_tool() -> bool {
    Command::new("ip")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Why namespace tests cannot run here, or `None` when they can. Tests print this
/// and return (skip) instead of failing.
pub fn skip_reason() -> Option<&'static str> {
    if !is_root() {
        Some("not root")
    } else if !have_ip_tool() {
        Some("`ip` (iproute2) not installed")
    } else if !std::path::Path::new("/dev/net/tun").exists() {
        Some("/dev/net/tun missing")
    } else {
        None
    }
}

fn ip(args: &[&str]) -> io::Result<Output> {
    let out = Command::new("ip").args(args).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out)
}

impl NetNs {
    /// Creates `PREFIX-PID-N` (the name is cut to stay short; use a short prefix such as
    /// `cw-rt`). Loopback is brought up.
    pub fn create(prefix: &str) -> io::Result<NetNs> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}-{}-{n}", std::process::id());
        ip(&["netns", "add", &name])?;
        let ns = NetNs { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS...` and returns its output (error on a non-zero exit).
    pub fn ip(&self, args: &[&str]) -> io::Result<Output> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Runs a command inside the namespace (`ip netns exec NAME PROG ARGS...`).
    pub fn exec(&self, prog: &str, args: &[&str]) -> io::Result<Output> {
        Command::new("ip")
            .args(["netns", "exec", &self.name, prog])
            .args(args)
            .output()
    }

    /// Moves the calling thread into the namespace (for good: use a thread of its own).
    pub fn enter_current_thread(&self) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::open(format!("/run/netns/{}", self.name))?;
        // SAFETY: valid fd of a namespace file; affects only this thread.
        let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Starts `f` on a new thread inside the namespace.
    pub fn spawn<T, F>(&self, f: F) -> io::Result<JoinHandle<io::Result<T>>>
    where
        T: Send + 'static,
        F: FnOnce() -> io::Result<T> + Send + 'static,
    {
        let path = format!("/run/netns/{}", self.name);
        let file = std::fs::File::open(path)?;
        Ok(std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            // SAFETY: valid namespace fd; affects only this new thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
            drop(file);
            f()
        }))
    }

    /// Runs `f` inside the namespace on a dedicated thread and waits for it. A panic in
    /// `f` is passed on to the caller.
    pub fn run<T, F>(&self, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> io::Result<T> + Send + 'static,
    {
        match self.spawn(f)?.join() {
            Ok(r) => r,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("warning: could not delete netns {}: {e}", self.name);
        }
    }
}
