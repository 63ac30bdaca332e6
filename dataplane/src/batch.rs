//! `recvmmsg(2)` / `sendmmsg(2)` batching for the UDP and raw ESP sockets.
//!
//! One system call moves up to [`BATCH`] datagrams. No allocation per call: the
//! receive side owns fixed buffers and address slots.

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Datagrams per system call.
pub const BATCH: usize = 32;

/// `SOL_UDP` option: send one buffer as several datagrams of this size (UDP GSO).
const UDP_SEGMENT: libc::c_int = 103;
/// `SOL_UDP` option: let the kernel coalesce received datagrams (UDP GRO).
const UDP_GRO: libc::c_int = 104;
/// Most datagrams in one UDP GSO send (the kernel's `UDP_MAX_SEGMENTS` is 64 or more).
pub const GSO_MAX_SEGMENTS: usize = 64;
/// Most bytes in one UDP GSO send (one IP datagram's payload).
const GSO_MAX_BYTES: usize = 65_000;
/// Control-message space per receive slot (one `UDP_GRO` int, 8-byte aligned).
const CMSG_SLOT: usize = 64;

/// Receive buffers for one socket: [`BATCH`] slots of `slot_len` bytes.
pub struct RecvBatch {
    bufs: Vec<Vec<u8>>,
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
    /// Control buffers (`u64` for alignment), empty unless built with [`RecvBatch::with_gro`].
    cmsgs: Vec<[u64; CMSG_SLOT / 8]>,
}

// SAFETY: the raw pointers in `iovs`/`hdrs` point into the boxes/vecs owned by the same
// struct and are rebuilt before every call; nothing is shared with another thread.
unsafe impl Send for RecvBatch {}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("slots", &self.bufs.len())
            .finish()
    }
}

fn zeroed<T>() -> T {
    // SAFETY: only used for plain C structs (sockaddr_storage, iovec, mmsghdr) for which
    // all-zero bytes are a valid value.
    unsafe { MaybeUninit::<T>::zeroed().assume_init() }
}

impl RecvBatch {
    /// Buffers for `slots` datagrams of up to `slot_len` bytes each (longer ones are
    /// truncated and reported with `truncated = true`).
    pub fn new(slots: usize, slot_len: usize) -> Self {
        let slots = slots.clamp(1, 1024);
        RecvBatch {
            bufs: (0..slots).map(|_| vec![0u8; slot_len]).collect(),
            addrs: (0..slots).map(|_| zeroed()).collect(),
            iovs: (0..slots).map(|_| zeroed()).collect(),
            hdrs: (0..slots).map(|_| zeroed()).collect(),
            cmsgs: Vec::new(),
        }
    }

    /// Like [`RecvBatch::new`], with room for the `UDP_GRO` control message: use on a
    /// socket where [`enable_udp_gro`] succeeded; [`RecvBatch::segment_size`] then tells
    /// how a coalesced datagram splits (make `slot_len` 65535 or more).
    pub fn with_gro(slots: usize, slot_len: usize) -> Self {
        let mut b = Self::new(slots, slot_len);
        b.cmsgs = vec![[0u64; CMSG_SLOT / 8]; b.bufs.len()];
        b
    }

    /// The segment size of datagram `i` of the last receive when the kernel coalesced
    /// several datagrams of one flow into it (each `size` bytes, the last one shorter).
    pub fn segment_size(&self, i: usize) -> Option<usize> {
        self.cmsgs.get(i)?;
        let h = &self.hdrs.get(i)?.msg_hdr;
        if h.msg_controllen == 0 {
            return None;
        }
        // SAFETY: msg_control points at `c` (live, CMSG_SLOT bytes) and the kernel set
        // msg_controllen to what it wrote; CMSG_FIRSTHDR/NXTHDR stay inside it.
        unsafe {
            let mut cm = libc::CMSG_FIRSTHDR(h);
            while !cm.is_null() {
                if (*cm).cmsg_level == libc::SOL_UDP && (*cm).cmsg_type == UDP_GRO {
                    let mut v: libc::c_int = 0;
                    std::ptr::copy_nonoverlapping(
                        libc::CMSG_DATA(cm),
                        &mut v as *mut libc::c_int as *mut u8,
                        std::mem::size_of::<libc::c_int>(),
                    );
                    return usize::try_from(v).ok().filter(|&v| v > 0);
                }
                cm = libc::CMSG_NXTHDR(h, cm);
            }
        }
        None
    }

    /// Receives up to the number of slots without blocking (`MSG_DONTWAIT`). Returns how
    /// many arrived (`WouldBlock` when none).
    pub fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        for i in 0..self.bufs.len() {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr() as *mut libc::c_void,
                iov_len: self.bufs[i].len(),
            };
            let mut h: libc::mmsghdr = zeroed();
            h.msg_hdr.msg_name = &mut self.addrs[i] as *mut libc::sockaddr_storage as *mut _;
            h.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            h.msg_hdr.msg_iov = &mut self.iovs[i];
            h.msg_hdr.msg_iovlen = 1;
            if let Some(c) = self.cmsgs.get_mut(i) {
                h.msg_hdr.msg_control = c.as_mut_ptr() as *mut libc::c_void;
                h.msg_hdr.msg_controllen = CMSG_SLOT as _;
            }
            self.hdrs[i] = h;
        }
        loop {
            // SAFETY: every header points at live buffers/addresses of `self`, sized as
            // declared; the kernel writes at most that much.
            let rc = unsafe {
                libc::recvmmsg(
                    fd,
                    self.hdrs.as_mut_ptr(),
                    self.hdrs.len() as libc::c_uint,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                )
            };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            return Ok(rc as usize);
        }
    }

    /// Datagram `i` of the last [`RecvBatch::recv`]: buffer (the whole slot), length,
    /// sender, and whether it was truncated.
    pub fn get(&mut self, i: usize) -> Option<(&mut [u8], usize, Option<SocketAddr>, bool)> {
        let h = self.hdrs.get(i)?;
        let len = (h.msg_len as usize).min(self.bufs[i].len());
        let truncated = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        let from = sockaddr_to_std(&self.addrs[i]);
        Some((&mut self.bufs[i], len, from, truncated))
    }
}

/// Converts a kernel socket address to a std one (IPv4/IPv6 only).
pub fn sockaddr_to_std(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: family says this storage holds a sockaddr_in, which fits in it.
            let sin =
                unsafe { &*(ss as *const libc::sockaddr_storage as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above for sockaddr_in6.
            let sin6 =
                unsafe { &*(ss as *const libc::sockaddr_storage as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

fn std_to_sockaddr(a: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    let mut ss: libc::sockaddr_storage = zeroed();
    let len = match a {
        SocketAddr::V4(v4) => {
            // SAFETY: sockaddr_in fits in sockaddr_storage and is plain data.
            let sin =
                unsafe { &mut *(&mut ss as *mut libc::sockaddr_storage as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = v4.port().to_be();
            sin.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(v6) => {
            // SAFETY: as above for sockaddr_in6.
            let sin6 = unsafe {
                &mut *(&mut ss as *mut libc::sockaddr_storage as *mut libc::sockaddr_in6)
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = v6.port().to_be();
            sin6.sin6_addr.s6_addr = v6.ip().octets();
            sin6.sin6_flowinfo = v6.flowinfo();
            sin6.sin6_scope_id = v6.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// Turns on UDP GRO (`UDP_GRO`) on a socket: the kernel may hand over several datagrams
/// of one flow as one buffer (see [`RecvBatch::with_gro`]).
pub fn enable_udp_gro(fd: RawFd) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: pointer/len describe a live c_int.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_UDP,
            UDP_GRO,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Sends `pkts` to `to` as UDP datagrams with UDP GSO: runs of packets of one size (the
/// last of a run may be shorter) go out in one `sendmsg(2)` with `UDP_SEGMENT`, the
/// packets gathered from their buffers (no copy). Returns how many were sent before an
/// error, and the error (the caller may fall back to [`send_batch`]).
pub fn send_gso(fd: RawFd, pkts: &[&[u8]], to: SocketAddr) -> (usize, Option<io::Error>) {
    let (mut ss, sslen) = std_to_sockaddr(to);
    let mut iovs: [libc::iovec; GSO_MAX_SEGMENTS] = zeroed();
    let mut cmsg = [0u64; CMSG_SLOT / 8];
    let mut sent = 0;
    while sent < pkts.len() {
        // The run: same size as the first, at most one shorter packet at its end.
        let seg = pkts[sent].len();
        let mut end = sent;
        let mut bytes = 0;
        while end < pkts.len() && end - sent < GSO_MAX_SEGMENTS {
            let l = pkts[end].len();
            if l > seg || l == 0 || bytes + l > GSO_MAX_BYTES {
                break;
            }
            bytes += l;
            end += 1;
            if l < seg {
                break;
            }
        }
        if end == sent {
            // An empty or oversized packet: let sendmmsg report it.
            let (n, e) = send_batch(fd, &pkts[sent..sent + 1], to);
            sent += n;
            if e.is_some() {
                return (sent, e);
            }
            continue;
        }
        for (iov, p) in iovs.iter_mut().zip(&pkts[sent..end]) {
            *iov = libc::iovec {
                iov_base: p.as_ptr() as *mut libc::c_void,
                iov_len: p.len(),
            };
        }
        let mut h: libc::msghdr = zeroed();
        h.msg_name = &mut ss as *mut libc::sockaddr_storage as *mut libc::c_void;
        h.msg_namelen = sslen;
        h.msg_iov = iovs.as_mut_ptr();
        h.msg_iovlen = (end - sent) as _;
        if end - sent > 1 {
            h.msg_control = cmsg.as_mut_ptr() as *mut libc::c_void;
            // SAFETY: CMSG_SPACE of a u16 is far below CMSG_SLOT; the header and its
            // data are written inside `cmsg`.
            unsafe {
                h.msg_controllen = libc::CMSG_SPACE(2) as _;
                let cm = libc::CMSG_FIRSTHDR(&h);
                (*cm).cmsg_level = libc::SOL_UDP;
                (*cm).cmsg_type = UDP_SEGMENT;
                (*cm).cmsg_len = libc::CMSG_LEN(2) as _;
                let v = seg as u16;
                std::ptr::copy_nonoverlapping(
                    &v as *const u16 as *const u8,
                    libc::CMSG_DATA(cm),
                    2,
                );
            }
        }
        // SAFETY: the header points at live iovecs (the caller's slices, only read), the
        // address and the control buffer.
        let rc = unsafe { libc::sendmsg(fd, &h, 0) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return (sent, Some(e));
        }
        sent = end;
    }
    (sent, None)
}

/// Sends each of `pkts` to `to` with as few `sendmmsg(2)` calls as possible (blocking
/// socket). Returns how many were sent before an error, and the error if any.
pub fn send_batch(fd: RawFd, pkts: &[&[u8]], to: SocketAddr) -> (usize, Option<io::Error>) {
    let (mut ss, sslen) = std_to_sockaddr(to);
    let mut iovs: [libc::iovec; BATCH] = zeroed();
    let mut hdrs: [libc::mmsghdr; BATCH] = zeroed();
    let mut sent = 0;
    while sent < pkts.len() {
        let chunk = &pkts[sent..pkts.len().min(sent + BATCH)];
        for (i, p) in chunk.iter().enumerate() {
            iovs[i] = libc::iovec {
                iov_base: p.as_ptr() as *mut libc::c_void,
                iov_len: p.len(),
            };
            let mut h: libc::mmsghdr = zeroed();
            h.msg_hdr.msg_name = &mut ss as *mut libc::sockaddr_storage as *mut libc::c_void;
            h.msg_hdr.msg_namelen = sslen;
            h.msg_hdr.msg_iov = &mut iovs[i];
            h.msg_hdr.msg_iovlen = 1;
            hdrs[i] = h;
        }
        // SAFETY: headers point at live iovecs/addr; the iovecs at the caller's slices,
        // which the kernel only reads.
        let rc = unsafe { libc::sendmmsg(fd, hdrs.as_mut_ptr(), chunk.len() as libc::c_uint, 0) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return (sent, Some(e));
        }
        if rc == 0 {
            return (sent, Some(io::Error::other("sendmmsg sent nothing")));
        }
        sent += rc as usize;
    }
    (sent, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn batch_roundtrip_on_loopback() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let pkts: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 10 + usize::from(i)]).collect();
        let refs: Vec<&[u8]> = pkts.iter().map(|p| p.as_slice()).collect();
        let (n, err) = send_batch(tx.as_raw_fd(), &refs, rx.local_addr().unwrap());
        assert!(err.is_none(), "{err:?}");
        assert_eq!(n, 40);
        let mut rb = RecvBatch::new(BATCH, 30);
        let mut got = Vec::new();
        while got.len() < 40 {
            crate::tun::poll_readable(rx.as_raw_fd(), std::time::Duration::from_secs(1)).unwrap();
            let k = rb.recv(rx.as_raw_fd()).unwrap();
            for i in 0..k {
                let (buf, len, from, trunc) = rb.get(i).unwrap();
                assert_eq!(from, Some(tx.local_addr().unwrap()));
                got.push((buf[..len].to_vec(), trunc));
            }
        }
        for (i, (d, trunc)) in got.iter().enumerate() {
            let want = &pkts[i];
            assert_eq!(*trunc, want.len() > 30, "{i}");
            assert_eq!(d.as_slice(), &want[..want.len().min(30)]);
        }
        let e = rb.recv(rx.as_raw_fd()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }

    /// Splits what arrived into datagrams, whether or not the kernel coalesced them.
    fn recv_all(rx: &std::net::UdpSocket, rb: &mut RecvBatch, want: usize) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        while got.len() < want {
            if !crate::tun::poll_readable(rx.as_raw_fd(), std::time::Duration::from_secs(2))
                .unwrap()
            {
                break;
            }
            let k = rb.recv(rx.as_raw_fd()).unwrap();
            for i in 0..k {
                let seg = rb.segment_size(i);
                let (buf, len, _, trunc) = rb.get(i).unwrap();
                assert!(!trunc);
                let seg = seg.unwrap_or(len);
                got.extend(buf[..len].chunks(seg).map(<[u8]>::to_vec));
            }
        }
        got
    }

    #[test]
    fn gso_send_gro_receive_on_loopback() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        enable_udp_gro(rx.as_raw_fd()).unwrap();
        // Two runs of equal sizes (each ending in a shorter one), then a lone bigger one,
        // and more than GSO_MAX_SEGMENTS in a run.
        let mut pkts: Vec<Vec<u8>> = Vec::new();
        for i in 0..10u8 {
            pkts.push(vec![i; 100]);
        }
        pkts.push(vec![0xaa; 40]);
        for i in 0..(GSO_MAX_SEGMENTS as u8 + 5) {
            pkts.push(vec![i; 300]);
        }
        pkts.push(vec![0xbb; 1000]);
        let refs: Vec<&[u8]> = pkts.iter().map(|p| p.as_slice()).collect();
        let (n, err) = send_gso(tx.as_raw_fd(), &refs, rx.local_addr().unwrap());
        assert!(err.is_none(), "{err:?}");
        assert_eq!(n, pkts.len());
        let mut rb = RecvBatch::with_gro(BATCH, 65536);
        let got = recv_all(&rx, &mut rb, pkts.len());
        assert_eq!(got, pkts);
    }

    #[test]
    fn sockaddr_conversions_roundtrip() {
        for a in ["192.0.2.1:4500", "[2001:db8::1]:500"] {
            let a: SocketAddr = a.parse().unwrap();
            let (ss, _) = std_to_sockaddr(a);
            assert_eq!(sockaddr_to_std(&ss), Some(a));
        }
    }
}
