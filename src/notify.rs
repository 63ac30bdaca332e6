//! systemd readiness notification (`sd_notify(3)` protocol) without libsystemd.

use std::os::unix::net::UnixDatagram;

/// Send `state` (e.g. `READY=1\nSTATUS=...`) to `$NOTIFY_SOCKET`, if set. Errors are ignored:
/// notification is best effort, as in libsystemd.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let res = if let Some(abstract_name) = bytes.strip_prefix(b"@") {
        send_abstract(&sock, abstract_name, state)
    } else {
        sock.send_to(state.as_bytes(), std::path::Path::new(&path))
            .map(|_| ())
    };
    if let Err(e) = res {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

fn send_abstract(sock: &UnixDatagram, name: &[u8], state: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    sock.send_to_addr(state.as_bytes(), &addr).map(|_| ())
}

/// The watchdog interval systemd asked for (`WATCHDOG_USEC`, for this pid), if any.
pub fn watchdog_interval() -> Option<std::time::Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    Some(std::time::Duration::from_micros(usec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_notify_socket() {
        let dir = std::env::temp_dir().join(format!("cw-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("n.sock");
        let rx = UnixDatagram::bind(&path).unwrap();
        // Only this test touches NOTIFY_SOCKET in this test binary.
        std::env::set_var("NOTIFY_SOCKET", &path);
        notify("READY=1\nSTATUS=up");
        std::env::remove_var("NOTIFY_SOCKET");
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=up");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
