//! TUN devices: one per tunnel, layer 3, no packet-information header, one queue.
//!
//! Created with `tun-rs` (sync device); MTU, addresses and link state are set through
//! [`crate::netlink`] so the same code path works in any network namespace (the device
//! and the netlink socket belong to the namespace of the creating thread).

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use ipnet::IpNet;

use crate::netlink::{link_index, Netlink};

/// How to create a TUN device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunConfig {
    /// Interface name, at most 15 bytes (e.g. `cw-azure`).
    pub name: String,
    /// MTU of the device (the inner packet size the kernel may hand us).
    pub mtu: u32,
    /// Addresses to put on the device (optional; BGP over the tunnel usually needs one).
    pub addrs: Vec<IpNet>,
}

/// An open TUN device (the device disappears when this is dropped).
pub struct Tun {
    dev: tun_rs::SyncDevice,
    name: String,
    ifindex: u32,
}

impl Tun {
    /// Creates the device, sets MTU and addresses, brings it up.
    pub fn create(cfg: &TunConfig) -> io::Result<Tun> {
        if cfg.name.is_empty() || cfg.name.len() > 15 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad interface name {:?} (1-15 bytes)", cfg.name),
            ));
        }
        let dev = tun_rs::DeviceBuilder::new()
            .name(cfg.name.clone())
            .packet_information(false)
            .build_sync()?;
        let ifindex = link_index(&cfg.name)?;
        let mut nl = Netlink::new()?;
        nl.set_link(ifindex, false, Some(cfg.mtu))?;
        // No IPv6 link-local address: it would make the kernel send router solicitations
        // and MLD reports into the tunnel (dropped and counted as noise). Explicit IPv6
        // addresses still work. Best effort: IPv6 may be disabled altogether.
        let _ = nl.set_ipv6_addr_gen_none(ifindex);
        for a in &cfg.addrs {
            nl.add_address(ifindex, *a)?;
        }
        nl.set_link(ifindex, true, None)?;
        Ok(Tun {
            dev,
            name: cfg.name.clone(),
            ifindex,
        })
    }

    /// Interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Interface index (for routes: [`crate::Route::dev`]).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Reads one packet (blocking). Returns its length.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.dev.recv(buf)
    }

    /// Writes one packet.
    pub fn send(&self, pkt: &[u8]) -> io::Result<usize> {
        self.dev.send(pkt)
    }

    /// Switches reads (and writes) to non-blocking: `recv` returns `WouldBlock` when
    /// no packet is queued.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.dev.set_nonblocking(nonblocking)
    }

    /// Waits until a packet can be read or `timeout` passes; true when readable.
    pub fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        poll_readable(self.dev.as_raw_fd(), timeout)
    }
}

impl std::fmt::Debug for Tun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tun")
            .field("name", &self.name)
            .field("ifindex", &self.ifindex)
            .finish()
    }
}

impl AsRawFd for Tun {
    fn as_raw_fd(&self) -> RawFd {
        self.dev.as_raw_fd()
    }
}

/// `poll(2)` for POLLIN on one fd with a timeout; true when readable.
pub(crate) fn poll_readable(fd: RawFd, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: one valid pollfd.
    let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(false);
        }
        return Err(e);
    }
    Ok(rc > 0 && pfd.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP) != 0)
}
