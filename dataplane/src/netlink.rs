//! Synchronous rtnetlink over a raw `NETLINK_ROUTE` socket: links, addresses, routes.
//!
//! Why raw netlink and not `rtnetlink`: the high-level crate waits for one ACK per route,
//! and its batch mode silently closes the connection on EMSGSIZE (see DESIGN.md). Here a
//! batch is cut into chunks of at most [`CHUNK_BYTES`] bytes, each sent as ONE datagram in
//! which only the last message asks for an ACK. The kernel processes the messages of a
//! datagram in order and always reports failures, so the ACK of the last message proves
//! that the whole chunk was handled, and every error reply names (by sequence number) the
//! route that failed. The receive buffer is 8 MiB (`SO_RCVBUFFORCE` when root).
//!
//! A [`Netlink`] socket lives in the network namespace of the thread that created it.
//! All calls block; the daemon calls them from a blocking task
//! (`tokio::task::spawn_blocking`) or a dedicated thread.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Causeway's default route protocol id (`ip route show proto 252`). Values up to 255;
/// 0-4 and some others are reserved by the kernel/iproute2 (`/etc/iproute2/rt_protos`).
pub const DEFAULT_PROTOCOL: u8 = 252;
/// The main routing table.
pub const TABLE_MAIN: u32 = libc::RT_TABLE_MAIN as u32;
/// Largest datagram of requests sent at once (well under the ~200 KB send buffer).
pub const CHUNK_BYTES: usize = 32 * 1024;
/// Receive buffer asked for (8 MiB).
pub const RCVBUF_BYTES: usize = 8 * 1024 * 1024;

const NLMSG_HDRLEN: usize = 16;
const RTMSG_LEN: usize = 12;
const IFINFOMSG_LEN: usize = 16;
const IFADDRMSG_LEN: usize = 8;
const RTA_TABLE: u16 = 15;
const SOL_NETLINK: libc::c_int = 270;
const NETLINK_CAP_ACK: libc::c_int = 10;
const IFA_F_NODAD: u8 = 0x02;

/// A route as Causeway installs it and as a dump reports it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    /// Destination prefix (host bits are cleared when the message is built).
    pub dst: IpNet,
    /// Next hop, if any. `None` with `oif` set is a device ("dev") route, scope link.
    pub gateway: Option<IpAddr>,
    /// Output interface index (e.g. the TUN's).
    pub oif: Option<u32>,
    /// Routing table (e.g. [`TABLE_MAIN`]).
    pub table: u32,
    /// Route protocol id, e.g. [`DEFAULT_PROTOCOL`]. Causeway's routes are found by this.
    pub protocol: u8,
    /// Metric (`RTA_PRIORITY`), if any.
    pub metric: Option<u32>,
    /// Preferred source address (`RTA_PREFSRC`), if any.
    pub prefsrc: Option<IpAddr>,
    /// ECMP next hops (`RTA_MULTIPATH`). When not empty, `gateway` and `oif` are not sent.
    pub nexthops: Vec<NextHop>,
}

/// One next hop of a multipath (ECMP) route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NextHop {
    /// Gateway, `None` for a device next hop.
    pub gateway: Option<IpAddr>,
    /// Output interface index.
    pub oif: u32,
    /// Relative weight, 1..=256 (the kernel stores weight − 1).
    pub weight: u16,
}

impl Route {
    /// A device route: `dst dev <oif> proto <protocol> table <table>`. For a default
    /// route use [`tunnel_prefixes`] first (installing `0.0.0.0/0` with REPLACE would
    /// overwrite the system's default route in the same table).
    pub fn dev(dst: IpNet, oif: u32, protocol: u8, table: u32) -> Self {
        Route {
            dst: dst.trunc(),
            gateway: None,
            oif: Some(oif),
            table,
            protocol,
            metric: None,
            prefsrc: None,
            nexthops: Vec::new(),
        }
    }

    /// An ECMP route over several next hops (`ip route replace DST nexthop dev A nexthop
    /// dev B ...`). With one next hop this is the plain route through it.
    pub fn multipath(dst: IpNet, hops: Vec<NextHop>, protocol: u8, table: u32) -> Self {
        match hops.as_slice() {
            [one] => match one.gateway {
                Some(gw) => Route::via(dst, gw, Some(one.oif), protocol, table),
                None => Route::dev(dst, one.oif, protocol, table),
            },
            _ => Route {
                dst: dst.trunc(),
                gateway: None,
                oif: None,
                table,
                protocol,
                metric: None,
                prefsrc: None,
                nexthops: hops,
            },
        }
    }

    /// The key that deletes this destination's route of `protocol` in `table` whatever
    /// its next hops (`ip route del DST proto P table T`).
    pub fn delete_key(dst: IpNet, protocol: u8, table: u32) -> Self {
        Route {
            dst: dst.trunc(),
            gateway: None,
            oif: None,
            table,
            protocol,
            metric: None,
            prefsrc: None,
            nexthops: Vec::new(),
        }
    }

    /// A route via a next hop, optionally pinned to an interface.
    pub fn via(dst: IpNet, gateway: IpAddr, oif: Option<u32>, protocol: u8, table: u32) -> Self {
        Route {
            dst: dst.trunc(),
            gateway: Some(gateway),
            oif,
            table,
            protocol,
            metric: None,
            prefsrc: None,
            nexthops: Vec::new(),
        }
    }
}

/// The prefixes to install for a remote traffic selector. A default route
/// (`0.0.0.0/0`, `::/0`) becomes its two halves (`0.0.0.0/1` + `128.0.0.0/1`, `::/1` +
/// `8000::/1`): more specific than the system's default route, so they win without
/// REPLACE-ing it (a replaced default route would be lost on shutdown). Other prefixes
/// are returned as they are (host bits cleared).
pub fn tunnel_prefixes(ts: IpNet) -> Vec<IpNet> {
    if ts.prefix_len() != 0 {
        return vec![ts.trunc()];
    }
    match ts {
        IpNet::V4(_) => vec![
            IpNet::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 1).unwrap_or(ts),
            IpNet::new(IpAddr::V4(Ipv4Addr::new(128, 0, 0, 0)), 1).unwrap_or(ts),
        ],
        IpNet::V6(_) => vec![
            IpNet::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 1).unwrap_or(ts),
            IpNet::new(IpAddr::V6(Ipv6Addr::new(0x8000, 0, 0, 0, 0, 0, 0, 0)), 1).unwrap_or(ts),
        ],
    }
}

/// One operation of a route batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteOp {
    /// Add, or replace an existing route with the same key (`ip route replace`).
    Replace(Route),
    /// Delete (`ip route del`): key is dst, table, metric, and protocol/gateway/oif when set.
    Delete(Route),
}

/// Answer of `RTM_GETROUTE` for one address (`ip route get`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteLookup {
    /// Next hop, `None` when the destination is on-link.
    pub gateway: Option<IpAddr>,
    /// Output interface.
    pub oif: Option<u32>,
    /// Source address the kernel would use.
    pub prefsrc: Option<IpAddr>,
    /// Table the route was found in.
    pub table: u32,
}

/// A synchronous `NETLINK_ROUTE` socket.
#[derive(Debug)]
pub struct Netlink {
    fd: std::os::fd::OwnedFd,
    seq: u32,
    rxbuf: Vec<u8>,
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Little builder for one netlink message in a shared buffer.
struct MsgBuilder<'a> {
    buf: &'a mut Vec<u8>,
    start: usize,
}

impl<'a> MsgBuilder<'a> {
    fn new(buf: &'a mut Vec<u8>, ty: u16, flags: u16, seq: u32) -> Self {
        let start = buf.len();
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        MsgBuilder { buf, start }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
    }
    fn attr(&mut self, ty: u16, data: &[u8]) {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.bytes(data);
    }
    fn attr_u32(&mut self, ty: u16, v: u32) {
        self.attr(ty, &v.to_ne_bytes());
    }
    fn attr_ip(&mut self, ty: u16, ip: IpAddr) {
        match ip {
            IpAddr::V4(a) => self.attr(ty, &a.octets()),
            IpAddr::V6(a) => self.attr(ty, &a.octets()),
        }
    }
    fn finish(self) {
        let len = (self.buf.len() - self.start) as u32;
        self.buf[self.start..self.start + 4].copy_from_slice(&len.to_ne_bytes());
    }
}

fn family(ip: &IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => libc::AF_INET as u8,
        IpAddr::V6(_) => libc::AF_INET6 as u8,
    }
}

fn net_family(net: &IpNet) -> u8 {
    family(&net.addr())
}

fn parse_ip(fam: u8, data: &[u8]) -> Option<IpAddr> {
    if fam == libc::AF_INET as u8 {
        let b: [u8; 4] = data.get(..4)?.try_into().ok()?;
        Some(IpAddr::V4(Ipv4Addr::from(b)))
    } else if fam == libc::AF_INET6 as u8 {
        let b: [u8; 16] = data.get(..16)?.try_into().ok()?;
        Some(IpAddr::V6(Ipv6Addr::from(b)))
    } else {
        None
    }
}

fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn read_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Iterates `(type, payload)` over netlink attributes; stops at the first malformed one.
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = read_u16(b, 0)? as usize;
        let ty = read_u16(b, 2)? & 0x3fff;
        if len < 4 || len > b.len() {
            return None;
        }
        let data = &b[4..len];
        b = b.get(align4(len)..).unwrap_or(&[]);
        Some((ty, data))
    })
}

/// Iterates `(type, flags, seq, payload)` over the messages of a datagram.
fn messages(mut b: &[u8]) -> impl Iterator<Item = (u16, u16, u32, &[u8])> {
    std::iter::from_fn(move || {
        let len = read_u32(b, 0)? as usize;
        let ty = read_u16(b, 4)?;
        let flags = read_u16(b, 6)?;
        let seq = read_u32(b, 8)?;
        if len < NLMSG_HDRLEN || len > b.len() {
            return None;
        }
        let payload = &b[NLMSG_HDRLEN..len];
        b = b.get(align4(len)..).unwrap_or(&[]);
        Some((ty, flags, seq, payload))
    })
}

fn build_route(buf: &mut Vec<u8>, ty: u16, flags: u16, seq: u32, r: &Route) {
    let mut m = MsgBuilder::new(buf, ty, flags, seq);
    let dst = r.dst.trunc();
    let dev_only = if r.nexthops.is_empty() {
        r.gateway.is_none() && r.oif.is_some()
    } else {
        r.nexthops.iter().all(|h| h.gateway.is_none())
    };
    let scope = if ty == libc::RTM_DELROUTE {
        libc::RT_SCOPE_NOWHERE // "any scope" for delete
    } else if dev_only {
        libc::RT_SCOPE_LINK
    } else {
        libc::RT_SCOPE_UNIVERSE
    };
    let table_byte = if r.table < 256 {
        r.table as u8
    } else {
        libc::RT_TABLE_COMPAT
    };
    let rtm_type = if ty == libc::RTM_DELROUTE {
        libc::RTN_UNSPEC
    } else {
        libc::RTN_UNICAST
    };
    m.bytes(&[
        net_family(&dst),
        dst.prefix_len(),
        0,
        0,
        table_byte,
        r.protocol,
        scope,
        rtm_type,
        0,
        0,
        0,
        0,
    ]);
    m.attr_ip(libc::RTA_DST, dst.addr());
    m.attr_u32(RTA_TABLE, r.table);
    if r.nexthops.is_empty() {
        if let Some(gw) = r.gateway {
            m.attr_ip(libc::RTA_GATEWAY, gw);
        }
        if let Some(oif) = r.oif {
            m.attr_u32(libc::RTA_OIF, oif);
        }
    } else {
        // RTA_MULTIPATH: a list of struct rtnexthop { len u16, flags u8, hops u8,
        // ifindex i32 } each followed by its own attributes (RTA_GATEWAY).
        let mut mp = Vec::with_capacity(r.nexthops.len() * 16);
        for h in &r.nexthops {
            let gw_len = match h.gateway {
                Some(IpAddr::V4(_)) => 8,
                Some(IpAddr::V6(_)) => 20,
                None => 0,
            };
            mp.extend_from_slice(&((8 + gw_len) as u16).to_ne_bytes());
            mp.push(0);
            mp.push(h.weight.clamp(1, 256).saturating_sub(1) as u8);
            mp.extend_from_slice(&(h.oif as i32).to_ne_bytes());
            if let Some(gw) = h.gateway {
                let b: Vec<u8> = match gw {
                    IpAddr::V4(a) => a.octets().to_vec(),
                    IpAddr::V6(a) => a.octets().to_vec(),
                };
                mp.extend_from_slice(&((4 + b.len()) as u16).to_ne_bytes());
                mp.extend_from_slice(&libc::RTA_GATEWAY.to_ne_bytes());
                mp.extend_from_slice(&b);
            }
        }
        m.attr(libc::RTA_MULTIPATH, &mp);
    }
    if let Some(metric) = r.metric {
        m.attr_u32(libc::RTA_PRIORITY, metric);
    }
    if let Some(src) = r.prefsrc {
        m.attr_ip(libc::RTA_PREFSRC, src);
    }
    m.finish();
}

/// Parses an `RTM_NEWROUTE` payload (rtmsg + attributes).
fn parse_route(p: &[u8]) -> Option<Route> {
    let hdr = p.get(..RTMSG_LEN)?;
    let (fam, dst_len, table_byte, protocol) = (hdr[0], hdr[1], hdr[4], hdr[5]);
    let mut table = u32::from(table_byte);
    let mut dst = None;
    let mut gateway = None;
    let mut oif = None;
    let mut metric = None;
    let mut prefsrc = None;
    let mut nexthops = Vec::new();
    for (ty, data) in attrs(&p[RTMSG_LEN..]) {
        match ty {
            libc::RTA_MULTIPATH => nexthops = parse_multipath(fam, data),
            libc::RTA_DST => dst = parse_ip(fam, data),
            libc::RTA_GATEWAY => gateway = parse_ip(fam, data),
            libc::RTA_OIF => oif = read_u32(data, 0),
            libc::RTA_PRIORITY => metric = read_u32(data, 0),
            libc::RTA_PREFSRC => prefsrc = parse_ip(fam, data),
            RTA_TABLE => table = read_u32(data, 0).unwrap_or(table),
            _ => {}
        }
    }
    let addr = match dst {
        Some(a) => a,
        None if fam == libc::AF_INET as u8 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        None if fam == libc::AF_INET6 as u8 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        None => return None,
    };
    Some(Route {
        dst: IpNet::new(addr, dst_len).ok()?,
        gateway,
        oif,
        table,
        protocol,
        metric,
        prefsrc,
        nexthops,
    })
}

/// Parses the `struct rtnexthop` list of an `RTA_MULTIPATH` attribute.
fn parse_multipath(fam: u8, mut b: &[u8]) -> Vec<NextHop> {
    let mut out = Vec::new();
    while let (Some(len), Some(&hops), Some(oif)) = (read_u16(b, 0), b.get(3), read_u32(b, 4)) {
        let len = usize::from(len);
        if len < 8 || len > b.len() {
            break;
        }
        let gateway = attrs(&b[8..len])
            .find(|(ty, _)| *ty == libc::RTA_GATEWAY)
            .and_then(|(_, d)| parse_ip(fam, d));
        out.push(NextHop {
            gateway,
            oif,
            weight: u16::from(hops) + 1,
        });
        b = b.get(align4(len)..).unwrap_or(&[]);
    }
    out
}

fn errno_error(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code.saturating_neg())
}

impl Netlink {
    /// Opens a route netlink socket in the calling thread's network namespace.
    pub fn new() -> io::Result<Self> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain socket(2) call; the fd is owned right away.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh, valid fd that nothing else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        let nl = Netlink {
            fd,
            seq: 1,
            rxbuf: vec![0u8; 256 * 1024],
        };
        let size = RCVBUF_BYTES as libc::c_int;
        // Root may exceed rmem_max with RCVBUFFORCE; fall back to the capped RCVBUF.
        if nl
            .setsockopt(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, size)
            .is_err()
        {
            nl.setsockopt(libc::SOL_SOCKET, libc::SO_RCVBUF, size)?;
        }
        nl.setsockopt(libc::SOL_SOCKET, libc::SO_SNDBUF, 1024 * 1024)?;
        // Error replies carry only the header of the failed request, not the whole thing.
        let _ = nl.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1);
        // Never hang the caller if a reply goes missing: fail after 10 s.
        let tv = libc::timeval {
            tv_sec: 10,
            tv_usec: 0,
        };
        // SAFETY: pointer/len describe a live timeval.
        let rc = unsafe {
            libc::setsockopt(
                raw,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: zeroed sockaddr_nl is valid; bind(2) with its exact size.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        let rc = unsafe {
            libc::bind(
                raw,
                &sa as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(nl)
    }

    fn raw(&self) -> libc::c_int {
        use std::os::fd::AsRawFd;
        self.fd.as_raw_fd()
    }

    fn setsockopt(&self, level: libc::c_int, name: libc::c_int, v: libc::c_int) -> io::Result<()> {
        // SAFETY: pointer and length describe a live c_int.
        let rc = unsafe {
            libc::setsockopt(
                self.raw(),
                level,
                name,
                &v as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1).max(1);
        self.seq
    }

    fn send(&self, buf: &[u8]) -> io::Result<()> {
        // SAFETY: zeroed sockaddr_nl addresses the kernel (pid 0); buffer is live.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        let rc = unsafe {
            libc::sendto(
                self.raw(),
                buf.as_ptr() as *const libc::c_void,
                buf.len(),
                0,
                &sa as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        if rc as usize != buf.len() {
            return Err(io::Error::other("short netlink send"));
        }
        Ok(())
    }

    /// Receives one datagram into `rxbuf`, returns its length.
    fn recv(&mut self) -> io::Result<usize> {
        loop {
            // SAFETY: the buffer pointer/len describe `rxbuf`.
            let rc = unsafe {
                libc::recv(
                    self.raw(),
                    self.rxbuf.as_mut_ptr() as *mut libc::c_void,
                    self.rxbuf.len(),
                    libc::MSG_TRUNC,
                )
            };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let n = rc as usize;
            if n > self.rxbuf.len() {
                // Truncated: grow and report; the caller's request is lost.
                self.rxbuf.resize(n.next_power_of_two(), 0);
                return Err(io::Error::other("netlink reply truncated"));
            }
            return Ok(n);
        }
    }

    /// Sends a single request with ACK and waits for it.
    fn request_ack(&mut self, buf: &[u8], seq: u32) -> io::Result<()> {
        self.send(buf)?;
        loop {
            let n = self.recv()?;
            let mut result = None;
            for (ty, _flags, mseq, payload) in messages(&self.rxbuf[..n]) {
                if ty == libc::NLMSG_ERROR as u16 && mseq == seq {
                    let code = read_i32(payload, 0).unwrap_or(-libc::EPROTO);
                    result = Some(if code == 0 {
                        Ok(())
                    } else {
                        Err(errno_error(code))
                    });
                }
            }
            if let Some(r) = result {
                return r;
            }
        }
    }

    /// Applies a batch of route operations.
    ///
    /// Returns `Ok(failures)`: for each operation the kernel refused, its index in `ops`
    /// and the error (e.g. `ESRCH` for deleting a route that is gone, `ENETUNREACH` for a
    /// gateway that is not on-link). `Err` only when the socket itself failed.
    pub fn apply_routes(&mut self, ops: &[RouteOp]) -> io::Result<Vec<(usize, io::Error)>> {
        let mut failures = Vec::new();
        let mut buf = Vec::with_capacity(CHUNK_BYTES + 512);
        let mut i = 0;
        while i < ops.len() {
            buf.clear();
            let first_seq = self.seq.wrapping_add(1);
            let start = i;
            // Fill one chunk; the message that ends it (last op, or the chunk is nearly
            // full: a route message is < 128 bytes) asks for the ACK.
            loop {
                let seq = self.next_seq();
                let last = i + 1 == ops.len() || buf.len() >= CHUNK_BYTES - 256;
                let ack = if last { libc::NLM_F_ACK as u16 } else { 0 };
                match &ops[i] {
                    RouteOp::Replace(r) => build_route(
                        &mut buf,
                        libc::RTM_NEWROUTE,
                        (libc::NLM_F_REQUEST | libc::NLM_F_CREATE | libc::NLM_F_REPLACE) as u16
                            | ack,
                        seq,
                        r,
                    ),
                    RouteOp::Delete(r) => build_route(
                        &mut buf,
                        libc::RTM_DELROUTE,
                        libc::NLM_F_REQUEST as u16 | ack,
                        seq,
                        r,
                    ),
                }
                i += 1;
                if last {
                    break;
                }
            }
            let last_seq = self.seq;
            self.send(&buf)?;
            // Collect errors until the ACK (or error) of the last message.
            'chunk: loop {
                let n = self.recv()?;
                for (ty, _flags, seq, payload) in messages(&self.rxbuf[..n]) {
                    if ty != libc::NLMSG_ERROR as u16 {
                        continue;
                    }
                    let code = read_i32(payload, 0).unwrap_or(-libc::EPROTO);
                    let idx = seq.wrapping_sub(first_seq) as usize;
                    if code != 0 && idx < i - start {
                        failures.push((start + idx, errno_error(code)));
                    }
                    if seq == last_seq {
                        break 'chunk;
                    }
                }
            }
        }
        Ok(failures)
    }

    /// Adds or replaces one route (with ACK).
    pub fn replace_route(&mut self, r: &Route) -> io::Result<()> {
        let seq = self.next_seq();
        let mut buf = Vec::with_capacity(128);
        let flags =
            libc::NLM_F_REQUEST | libc::NLM_F_CREATE | libc::NLM_F_REPLACE | libc::NLM_F_ACK;
        build_route(&mut buf, libc::RTM_NEWROUTE, flags as u16, seq, r);
        self.request_ack(&buf, seq)
    }

    /// Deletes one route (with ACK). `ESRCH` when no such route exists.
    pub fn delete_route(&mut self, r: &Route) -> io::Result<()> {
        let seq = self.next_seq();
        let mut buf = Vec::with_capacity(128);
        let flags = libc::NLM_F_REQUEST | libc::NLM_F_ACK;
        build_route(&mut buf, libc::RTM_DELROUTE, flags as u16, seq, r);
        self.request_ack(&buf, seq)
    }

    /// Dumps the IPv4 and IPv6 unicast routes of all tables, optionally only those with
    /// the given protocol id.
    pub fn list_routes(&mut self, protocol: Option<u8>) -> io::Result<Vec<Route>> {
        let mut out = Vec::new();
        for fam in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
            let seq = self.next_seq();
            let mut buf = Vec::with_capacity(64);
            let mut m = MsgBuilder::new(
                &mut buf,
                libc::RTM_GETROUTE,
                (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16,
                seq,
            );
            m.bytes(&[fam, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            m.finish();
            self.send(&buf)?;
            'dump: loop {
                let n = self.recv()?;
                for (ty, _flags, mseq, payload) in messages(&self.rxbuf[..n]) {
                    if mseq != seq {
                        continue;
                    }
                    if ty == libc::NLMSG_DONE as u16 {
                        break 'dump;
                    }
                    if ty == libc::NLMSG_ERROR as u16 {
                        let code = read_i32(payload, 0).unwrap_or(-libc::EPROTO);
                        if code != 0 {
                            return Err(errno_error(code));
                        }
                        break 'dump;
                    }
                    if ty != libc::RTM_NEWROUTE {
                        continue;
                    }
                    // Only unicast routes; skip local/broadcast/multicast etc.
                    if payload.get(7) != Some(&libc::RTN_UNICAST) {
                        continue;
                    }
                    if let Some(r) = parse_route(payload) {
                        if protocol.is_none_or(|p| p == r.protocol) {
                            out.push(r);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Deletes every route with protocol id `protocol` (all tables, both families): the
    /// stale sweep at start-up and the cleanup at shutdown. Returns how many were deleted.
    pub fn flush_routes(&mut self, protocol: u8) -> io::Result<usize> {
        let routes = self.list_routes(Some(protocol))?;
        let ops: Vec<RouteOp> = routes.into_iter().map(RouteOp::Delete).collect();
        let failures = self.apply_routes(&ops)?;
        // ESRCH: already gone (e.g. removed with its interface); not an error here.
        let real: Vec<_> = failures
            .iter()
            .filter(|(_, e)| e.raw_os_error() != Some(libc::ESRCH))
            .collect();
        if let Some((_, e)) = real.first() {
            return Err(io::Error::new(
                e.kind(),
                format!("{} route deletes failed, first: {e}", real.len()),
            ));
        }
        Ok(ops.len() - failures.len())
    }

    /// `ip route get <dst>`: the route the kernel would use now.
    pub fn route_get(&mut self, dst: IpAddr) -> io::Result<RouteLookup> {
        let seq = self.next_seq();
        let mut buf = Vec::with_capacity(64);
        let mut m = MsgBuilder::new(
            &mut buf,
            libc::RTM_GETROUTE,
            libc::NLM_F_REQUEST as u16,
            seq,
        );
        let len = if dst.is_ipv4() { 32 } else { 128 };
        m.bytes(&[family(&dst), len, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        m.attr_ip(libc::RTA_DST, dst);
        m.finish();
        self.send(&buf)?;
        loop {
            let n = self.recv()?;
            for (ty, _flags, mseq, payload) in messages(&self.rxbuf[..n]) {
                if mseq != seq {
                    continue;
                }
                if ty == libc::NLMSG_ERROR as u16 {
                    let code = read_i32(payload, 0).unwrap_or(-libc::EPROTO);
                    return Err(if code == 0 {
                        io::Error::other("no route in reply")
                    } else {
                        errno_error(code)
                    });
                }
                if ty == libc::RTM_NEWROUTE {
                    let r = parse_route(payload)
                        .ok_or_else(|| io::Error::other("malformed route reply"))?;
                    return Ok(RouteLookup {
                        gateway: r.gateway,
                        oif: r.oif,
                        prefsrc: r.prefsrc,
                        table: r.table,
                    });
                }
            }
        }
    }

    /// Sets a link up or down and optionally its MTU (`ip link set dev X up mtu N`).
    pub fn set_link(&mut self, ifindex: u32, up: bool, mtu: Option<u32>) -> io::Result<()> {
        let seq = self.next_seq();
        let mut buf = Vec::with_capacity(64);
        let mut m = MsgBuilder::new(
            &mut buf,
            libc::RTM_NEWLINK,
            (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16,
            seq,
        );
        let mut hdr = [0u8; IFINFOMSG_LEN];
        hdr[0] = libc::AF_UNSPEC as u8;
        hdr[4..8].copy_from_slice(&(ifindex as i32).to_ne_bytes());
        let flags = if up { libc::IFF_UP as u32 } else { 0 };
        hdr[8..12].copy_from_slice(&flags.to_ne_bytes());
        hdr[12..16].copy_from_slice(&(libc::IFF_UP as u32).to_ne_bytes());
        m.bytes(&hdr);
        if let Some(mtu) = mtu {
            m.attr_u32(libc::IFLA_MTU, mtu);
        }
        m.finish();
        self.request_ack(&buf, seq)
    }

    /// Turns off IPv6 link-local address generation on a link (`ip link set dev X
    /// addrgenmode none`); set before the link goes up.
    pub fn set_ipv6_addr_gen_none(&mut self, ifindex: u32) -> io::Result<()> {
        const IFLA_AF_SPEC: u16 = 26;
        const IFLA_INET6_ADDR_GEN_MODE: u16 = 8;
        const IN6_ADDR_GEN_MODE_NONE: u8 = 1;
        let seq = self.next_seq();
        let mut buf = Vec::with_capacity(64);
        let mut m = MsgBuilder::new(
            &mut buf,
            libc::RTM_NEWLINK,
            (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16,
            seq,
        );
        let mut hdr = [0u8; IFINFOMSG_LEN];
        hdr[4..8].copy_from_slice(&(ifindex as i32).to_ne_bytes());
        m.bytes(&hdr);
        // IFLA_AF_SPEC { AF_INET6 { IFLA_INET6_ADDR_GEN_MODE: u8 } }
        let mut inner = Vec::new();
        inner.extend_from_slice(&5u16.to_ne_bytes());
        inner.extend_from_slice(&IFLA_INET6_ADDR_GEN_MODE.to_ne_bytes());
        inner.extend_from_slice(&[IN6_ADDR_GEN_MODE_NONE, 0, 0, 0]);
        let mut af = Vec::new();
        af.extend_from_slice(&((4 + 8) as u16).to_ne_bytes());
        af.extend_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        af.extend_from_slice(&inner);
        m.attr(IFLA_AF_SPEC | 0x8000, &af);
        m.finish();
        self.request_ack(&buf, seq)
    }

    /// Adds (or replaces) an address on a link (`ip addr replace A/N dev X`). IPv6
    /// addresses skip duplicate address detection so they are usable at once.
    pub fn add_address(&mut self, ifindex: u32, addr: IpNet) -> io::Result<()> {
        let seq = self.next_seq();
        let mut buf = Vec::with_capacity(64);
        let mut m = MsgBuilder::new(
            &mut buf,
            libc::RTM_NEWADDR,
            (libc::NLM_F_REQUEST | libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_REPLACE)
                as u16,
            seq,
        );
        let mut hdr = [0u8; IFADDRMSG_LEN];
        hdr[0] = net_family(&addr);
        hdr[1] = addr.prefix_len();
        hdr[2] = if addr.addr().is_ipv6() {
            IFA_F_NODAD
        } else {
            0
        };
        hdr[3] = libc::RT_SCOPE_UNIVERSE;
        hdr[4..8].copy_from_slice(&ifindex.to_ne_bytes());
        m.bytes(&hdr);
        m.attr_ip(libc::IFA_LOCAL, addr.addr());
        m.attr_ip(libc::IFA_ADDRESS, addr.addr());
        m.finish();
        self.request_ack(&buf, seq)
    }

    /// Removes an address from a link (`ip addr del`).
    pub fn delete_address(&mut self, ifindex: u32, addr: IpNet) -> io::Result<()> {
        let seq = self.next_seq();
        let mut buf = Vec::with_capacity(64);
        let mut m = MsgBuilder::new(
            &mut buf,
            libc::RTM_DELADDR,
            (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16,
            seq,
        );
        let mut hdr = [0u8; IFADDRMSG_LEN];
        hdr[0] = net_family(&addr);
        hdr[1] = addr.prefix_len();
        hdr[4..8].copy_from_slice(&ifindex.to_ne_bytes());
        m.bytes(&hdr);
        m.attr_ip(libc::IFA_LOCAL, addr.addr());
        m.finish();
        self.request_ack(&buf, seq)
    }

    /// Underlay protection for forced tunneling (remote TS 0.0.0.0/0 or ::/0): looks up
    /// the route to the peer's public address now (before the tunnel's default route is
    /// in place) and pins it with a host route (/32 or /128) with our protocol id, so IKE
    /// and ESP packets to the peer never enter the tunnel. Returns the installed route;
    /// remove it with [`Netlink::delete_route`] on shutdown (or it goes with the
    /// start-up flush of the protocol id).
    pub fn protect_peer(&mut self, peer: IpAddr, protocol: u8, table: u32) -> io::Result<Route> {
        let found = self.route_get(peer)?;
        let host = IpNet::from(peer);
        let route = Route {
            dst: host,
            gateway: found.gateway,
            oif: found.oif,
            table,
            protocol,
            metric: None,
            prefsrc: None,
            nexthops: Vec::new(),
        };
        if route.gateway.is_none() && route.oif.is_none() {
            return Err(io::Error::other(
                "route to peer has neither gateway nor device",
            ));
        }
        self.replace_route(&route)?;
        Ok(route)
    }
}

/// Interface index of a link by name, in the calling thread's network namespace.
pub fn link_index(name: &str) -> io::Result<u32> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))?;
    // SAFETY: valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_message_roundtrips_through_parser() {
        let r = Route {
            dst: "10.20.30.0/24".parse().unwrap(),
            gateway: Some("192.0.2.1".parse().unwrap()),
            oif: Some(7),
            table: 1000,
            protocol: DEFAULT_PROTOCOL,
            metric: Some(50),
            prefsrc: Some("192.0.2.9".parse().unwrap()),
            nexthops: Vec::new(),
        };
        let mut buf = Vec::new();
        build_route(&mut buf, libc::RTM_NEWROUTE, 0, 5, &r);
        let msgs: Vec<_> = messages(&buf).collect();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].0, libc::RTM_NEWROUTE);
        assert_eq!(msgs[0].2, 5);
        assert_eq!(parse_route(msgs[0].3), Some(r));
    }

    #[test]
    fn multipath_route_roundtrips_through_parser() {
        let hops = vec![
            NextHop {
                gateway: None,
                oif: 7,
                weight: 1,
            },
            NextHop {
                gateway: Some("192.0.2.1".parse().unwrap()),
                oif: 9,
                weight: 3,
            },
        ];
        let r = Route::multipath(
            "10.9.0.0/16".parse().unwrap(),
            hops.clone(),
            249,
            TABLE_MAIN,
        );
        assert_eq!(r.nexthops, hops);
        let mut buf = Vec::new();
        build_route(&mut buf, libc::RTM_NEWROUTE, 0, 3, &r);
        let (_, _, _, p) = messages(&buf).next().unwrap();
        assert_eq!(parse_route(p), Some(r));
        // One next hop is the plain route.
        let one = Route::multipath("10.9.0.0/16".parse().unwrap(), hops[..1].to_vec(), 249, 254);
        assert_eq!(one, Route::dev("10.9.0.0/16".parse().unwrap(), 7, 249, 254));
    }

    #[test]
    fn host_bits_are_cleared_and_v6_parses() {
        let r = Route::dev("2001:db8::1/64".parse().unwrap(), 3, 200, TABLE_MAIN);
        assert_eq!(r.dst, "2001:db8::/64".parse::<IpNet>().unwrap());
        let mut buf = Vec::new();
        build_route(&mut buf, libc::RTM_NEWROUTE, 0, 1, &r);
        let (_, _, _, p) = messages(&buf).next().unwrap();
        assert_eq!(parse_route(p), Some(r));
    }

    #[test]
    fn default_route_is_split() {
        let v4 = tunnel_prefixes("0.0.0.0/0".parse().unwrap());
        assert_eq!(v4.len(), 2);
        assert!(v4.iter().all(|n| n.prefix_len() == 1));
        let a: IpAddr = "203.0.113.9".parse().unwrap();
        let b: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(v4.iter().any(|n| n.contains(&a)) && v4.iter().any(|n| n.contains(&b)));
        let v6 = tunnel_prefixes("::/0".parse().unwrap());
        let c: IpAddr = "2001:db8::1".parse().unwrap();
        let d: IpAddr = "fd00::1".parse().unwrap();
        assert!(v6.iter().any(|n| n.contains(&c)) && v6.iter().any(|n| n.contains(&d)));
        assert_eq!(
            tunnel_prefixes("10.2.3.4/16".parse().unwrap()),
            vec!["10.2.0.0/16".parse::<IpNet>().unwrap()]
        );
    }

    /// Runs `f` in a thread moved into a fresh, unnamed network namespace (gone when the
    /// thread ends). `None` (with a message) when not root.
    fn in_private_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: needs root (network namespace)");
            return None;
        }
        std::thread::spawn(move || {
            // SAFETY: moves only this thread into a new network namespace.
            let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "unshare: {}", io::Error::last_os_error());
            f()
        })
        .join()
        .map_or_else(|e| std::panic::resume_unwind(e), Some)
    }

    fn sh(args: &[&str]) -> String {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("ip {args:?}: {e}"));
        assert!(out.status.success(), "ip {args:?}: {:?}", out);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn kernel_takes_ecmp_batches_and_reports_failures_per_route() {
        in_private_netns(|| {
            // Children of this thread share its network namespace.
            sh(&[
                "link", "add", "cwa0", "type", "veth", "peer", "name", "cwa1",
            ]);
            sh(&["link", "set", "cwa0", "up"]);
            sh(&["link", "set", "cwa1", "up"]);
            let (a, b) = (link_index("cwa0").unwrap(), link_index("cwa1").unwrap());
            let mut nl = Netlink::new().unwrap();
            let hop = |oif| NextHop {
                gateway: None,
                oif,
                weight: 1,
            };
            let ecmp = Route::multipath(
                "10.9.0.0/16".parse().unwrap(),
                vec![hop(a), hop(b)],
                249,
                TABLE_MAIN,
            );
            let mut ops = vec![RouteOp::Replace(ecmp.clone())];
            for i in 0..3000u32 {
                let dst = IpNet::new(IpAddr::V4(Ipv4Addr::from(0x1000_0000 + (i << 8))), 24);
                ops.push(RouteOp::Replace(Route::dev(
                    dst.unwrap(),
                    a,
                    249,
                    TABLE_MAIN,
                )));
            }
            // One bad route in the middle (no such device): only it fails.
            ops.insert(
                1500,
                RouteOp::Replace(Route::dev(
                    "10.8.0.0/16".parse().unwrap(),
                    999_999,
                    249,
                    254,
                )),
            );
            let failures = nl.apply_routes(&ops).unwrap();
            assert_eq!(failures.len(), 1, "{failures:?}");
            assert_eq!(failures[0].0, 1500);
            let mine = nl.list_routes(Some(249)).unwrap();
            assert_eq!(mine.len(), 3001);
            let got = mine.iter().find(|r| r.dst == ecmp.dst).unwrap();
            let oifs: Vec<u32> = got.nexthops.iter().map(|h| h.oif).collect();
            assert_eq!(oifs, vec![a, b], "{got:?}");
            let shown = sh(&["route", "show", "10.9.0.0/16"]);
            assert!(shown.contains("nexthop dev cwa0") && shown.contains("nexthop dev cwa1"));
            // Replace the ECMP route by a single path atomically, then delete by key; a
            // delete of a missing route is ESRCH for that route only.
            let one = Route::dev(ecmp.dst, b, 249, TABLE_MAIN);
            let del = RouteOp::Delete(Route::delete_key(ecmp.dst, 249, TABLE_MAIN));
            let f = nl
                .apply_routes(&[RouteOp::Replace(one), del.clone(), del])
                .unwrap();
            assert_eq!(f.len(), 1);
            assert_eq!((f[0].0, f[0].1.raw_os_error()), (2, Some(libc::ESRCH)));
            // A delete key of another protocol leaves our routes alone.
            let other = Route::delete_key("16.0.0.0/24".parse().unwrap(), 250, TABLE_MAIN);
            let f = nl.apply_routes(&[RouteOp::Delete(other)]).unwrap();
            assert_eq!(f.len(), 1);
            assert_eq!(nl.flush_routes(249).unwrap(), 3000);
            assert!(nl.list_routes(Some(249)).unwrap().is_empty());
        });
    }

    #[test]
    fn parsers_survive_garbage() {
        for len in 0..64 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            for m in messages(&junk) {
                let _ = parse_route(m.3);
            }
            let _ = parse_route(&junk);
            assert!(attrs(&junk).count() <= junk.len() / 4);
        }
    }
}
