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

/// Receive buffers for one socket: [`BATCH`] slots of `slot_len` bytes.
pub struct RecvBatch {
    bufs: Vec<Vec<u8>>,
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    hdrs: Vec<libc::mmsghdr>,
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
        }
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

    #[test]
    fn sockaddr_conversions_roundtrip() {
        for a in ["192.0.2.1:4500", "[2001:db8::1]:500"] {
            let a: SocketAddr = a.parse().unwrap();
            let (ss, _) = std_to_sockaddr(a);
            assert_eq!(sockaddr_to_std(&ss), Some(a));
        }
    }
}
