//! TUN devices: one per tunnel, layer 3, no packet-information header, one or more queues
//! ([`Tun::create_queues`]: `IFF_MULTI_QUEUE`, one file descriptor per queue; the kernel
//! picks the queue a packet is read from by its flow, and remembers for each flow the
//! queue its packets were last written to, so a flow stays on one worker).
//!
//! [`Tun::create_offload`] opens the device with `IFF_VNET_HDR` and TSO/USO offloads: the
//! kernel then hands over TCP/UDP super-packets of up to 64 KiB, which
//! [`Tun::recv_multiple`] splits into MTU-sized packets, and [`Tun::send_multiple`]
//! coalesces packets of one TCP flow (GRO) before writing them, so one system call moves
//! dozens of packets each way.
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
    offload: bool,
    uso: bool,
}

/// Bytes of the virtio-net header in front of every frame of an offload device.
pub const VNET_HDR_LEN: usize = tun_rs::VIRTIO_NET_HDR_LEN;
/// Most packets one [`Tun::recv_multiple`] can produce (a 64 KiB super-packet split at a
/// small MSS); give it at least this many buffers.
pub const MAX_SEGMENTS: usize = tun_rs::IDEAL_BATCH_SIZE;

/// Most queues of one TUN device (the kernel's limit is 256).
pub const MAX_QUEUES: usize = 64;

/// Coalescing state for [`Tun::send_multiple`] (reuse one per thread: no allocation once
/// warmed up).
pub struct GroTable(tun_rs::GROTable);

impl Default for GroTable {
    fn default() -> Self {
        GroTable(tun_rs::GROTable::new())
    }
}

impl std::fmt::Debug for GroTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroTable")
    }
}

impl Tun {
    /// Creates the device, sets MTU and addresses, brings it up.
    pub fn create(cfg: &TunConfig) -> io::Result<Tun> {
        Self::create_inner(cfg, false)
    }

    /// Like [`Tun::create`], with `IFF_VNET_HDR` and TSO (and USO where the kernel has
    /// it) enabled: read with [`Tun::recv_multiple`], write with [`Tun::send_multiple`]
    /// ([`Tun::recv`]/[`Tun::send`] then carry a virtio-net header in front of each frame).
    /// Falls back to a plain device when the kernel refuses the offloads
    /// ([`Tun::offload`] tells which one it is).
    pub fn create_offload(cfg: &TunConfig) -> io::Result<Tun> {
        Self::create_inner(cfg, true)
    }

    fn create_inner(cfg: &TunConfig, offload: bool) -> io::Result<Tun> {
        let mut v = Self::create_queues(cfg, offload, 1)?;
        v.pop()
            .ok_or_else(|| io::Error::other("TUN device without a queue"))
    }

    /// Creates the device like [`Tun::create`] / [`Tun::create_offload`] (`offload`) with
    /// `queues` queues (`IFF_MULTI_QUEUE` when more than one): one [`Tun`] per queue, all
    /// the same device (it goes away when the last one is dropped). Each queue is read by
    /// one worker; the kernel hands a flow's packets to one queue. Falls back to fewer
    /// queues (at least one) when the kernel refuses more.
    pub fn create_queues(cfg: &TunConfig, offload: bool, queues: usize) -> io::Result<Vec<Tun>> {
        if cfg.name.is_empty() || cfg.name.len() > 15 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad interface name {:?} (1-15 bytes)", cfg.name),
            ));
        }
        let queues = queues.clamp(1, MAX_QUEUES);
        let multi = queues > 1;
        let build = |offload: bool, multi: bool| {
            tun_rs::DeviceBuilder::new()
                .name(cfg.name.clone())
                .packet_information(false)
                .offload(offload)
                .multi_queue(multi)
                .build_sync()
        };
        let build_any = |multi: bool| match build(offload, multi) {
            Ok(d) => Ok(d),
            Err(e) if offload => {
                tracing::debug!("TUN offloads unavailable ({e}); plain device");
                build(false, multi)
            }
            Err(e) => Err(e),
        };
        let (dev, multi) = match build_any(multi) {
            Ok(d) => (d, multi),
            Err(e) if multi => {
                tracing::debug!("multi-queue TUN unavailable ({e}); one queue");
                (build_any(false)?, false)
            }
            Err(e) => return Err(e),
        };
        let mut more = Vec::new();
        if multi {
            for _ in 1..queues {
                match dev.try_clone() {
                    Ok(q) => more.push(q),
                    Err(e) => {
                        tracing::debug!("TUN queue {} refused ({e})", more.len() + 1);
                        break;
                    }
                }
            }
        }
        let offload = dev.tcp_gso();
        let uso = offload && dev.udp_gso();
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
        let mut v = Vec::with_capacity(1 + more.len());
        for dev in std::iter::once(dev).chain(more) {
            v.push(Tun {
                dev,
                name: cfg.name.clone(),
                ifindex,
                offload,
                uso,
            });
        }
        Ok(v)
    }

    /// Interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Interface index (for routes: [`crate::Route::dev`]).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Whether the device has `IFF_VNET_HDR` offloads (see [`Tun::create_offload`]).
    pub fn offload(&self) -> bool {
        self.offload
    }

    /// Whether the offload device also takes UDP super-packets (USO, Linux 6.2+).
    pub fn udp_offload(&self) -> bool {
        self.uso
    }

    /// Reads one frame and splits it into packets: `bufs[i][offset..offset + sizes[i]]`
    /// for `i` below the returned count. On a plain device that is exactly one packet; on
    /// an offload device a TCP/UDP super-packet becomes up to [`MAX_SEGMENTS`] packets
    /// (checksums completed). Fails when `bufs` are too few or too small; `scratch` must
    /// hold [`VNET_HDR_LEN`] + 65535 bytes.
    pub fn recv_multiple<B: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        scratch: &mut [u8],
        bufs: &mut [B],
        sizes: &mut [usize],
        offset: usize,
    ) -> io::Result<usize> {
        self.dev.recv_multiple(scratch, bufs, sizes, offset)
    }

    /// Writes the packets `bufs[i][offset..]` (each `Vec` ends where its packet ends),
    /// coalescing segments of one TCP flow into super-packets on an offload device
    /// (`offset` must then be at least [`VNET_HDR_LEN`]: the header goes in front of the
    /// packet; buffers may grow). Returns the bytes written.
    pub fn send_multiple(
        &self,
        gro: &mut GroTable,
        bufs: &mut [Vec<u8>],
        offset: usize,
    ) -> io::Result<usize> {
        self.dev.send_multiple(&mut gro.0, bufs, offset)
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
            .field("offload", &self.offload)
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
