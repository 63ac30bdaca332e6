//! Sockets for IKE and ESP: UDP 500/4500 (IPv4 and IPv6) and raw ESP (IP protocol 50),
//! plus the RFC 3948 demultiplexer for port 4500.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};

use socket2::{Domain, Protocol, Socket, Type};

/// IKE's port.
pub const IKE_PORT: u16 = 500;
/// IKE/ESP port with NAT traversal (RFC 3948).
pub const NATT_PORT: u16 = 4500;
/// The non-ESP marker that precedes IKE messages on port 4500 (RFC 3948 §2.2).
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];
/// IP protocol number of ESP.
pub const IPPROTO_ESP: i32 = 50;

/// What a datagram received on port 4500 carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Natt<'a> {
    /// An IKE message (the non-ESP marker stripped).
    Ike(&'a [u8]),
    /// A NAT-keepalive (the single byte 0xFF, RFC 3948 §2.3).
    Keepalive,
    /// An ESP packet starting at the SPI.
    Esp(&'a [u8]),
    /// Too short to be anything (dropped).
    Invalid,
}

/// Classifies a port-4500 datagram (RFC 3948 §2) with [`esp::udp::classify`]: the
/// non-ESP marker (IKE, at least an IKE header behind it), one 0xFF byte (keepalive),
/// anything else of at least 8 bytes is ESP.
pub fn classify_natt(d: &[u8]) -> Natt<'_> {
    match esp::udp::classify(d) {
        esp::udp::Datagram::Ike(r) => d.get(r).map_or(Natt::Invalid, Natt::Ike),
        esp::udp::Datagram::Esp { .. } => Natt::Esp(d),
        esp::udp::Datagram::Keepalive => Natt::Keepalive,
        esp::udp::Datagram::Invalid => Natt::Invalid,
    }
}

/// The SPI of an ESP packet (first four bytes), if it has one.
pub fn esp_spi(esp: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(esp.get(..4)?.try_into().ok()?))
}

/// Binds a UDP socket for IKE/ESP on `local` (e.g. `192.0.2.1:500`, `[2001:db8::1]:4500`,
/// or the unspecified address). IPv6 sockets are v6-only so the same port can also be
/// bound for IPv4. Path MTU discovery is off (`IP_PMTUDISC_DONT`): DF is clear, so an
/// outer packet that does not fit the path is fragmented instead of black-holed (ESP
/// cannot act on ICMP "fragmentation needed" for its outer packets anyway; size the
/// TUN MTU so this stays rare). Blocking mode; convert with
/// `tokio::net::UdpSocket::from_std` after `set_nonblocking(true)` for async use.
pub fn bind_udp(local: SocketAddr) -> io::Result<UdpSocket> {
    bind_udp_inner(local, false)
}

/// Like [`bind_udp`], with `SO_REUSEPORT`: several such sockets (of this process's user)
/// bind the same address and port, and the kernel hands each arriving datagram to one of
/// them by a hash of its addresses and ports: all datagrams of one peer (one 4-tuple)
/// reach the same socket, so a tunnel's inbound ESP is never reordered across sockets.
/// Bind the first with port 0 (or the real port), the next ones to its bound address.
pub fn bind_udp_reuseport(local: SocketAddr) -> io::Result<UdpSocket> {
    bind_udp_inner(local, true)
}

fn bind_udp_inner(local: SocketAddr, reuseport: bool) -> io::Result<UdpSocket> {
    let domain = Domain::for_address(local);
    let s = Socket::new(domain, Type::DGRAM.cloexec(), Some(Protocol::UDP))?;
    if local.is_ipv6() {
        s.set_only_v6(true)?;
    }
    if reuseport {
        s.set_reuse_port(true)?;
    }
    // Large buffers: ESP bursts.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    set_pmtu_dont(&s, local.ip())?;
    s.bind(&local.into())?;
    Ok(s.into())
}

/// Opens a raw ESP (protocol 50) socket bound to `local`. Receiving on IPv4 returns the
/// IP header in front of the ESP packet (use [`strip_ipv4_header`]); IPv6 does not.
pub fn raw_esp_socket(local: IpAddr) -> io::Result<Socket> {
    let domain = if local.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(
        domain,
        Type::RAW.cloexec(),
        Some(Protocol::from(IPPROTO_ESP)),
    )?;
    // (No IPV6_V6ONLY: raw sockets refuse it with EINVAL.)
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    set_pmtu_dont(&s, local)?;
    s.bind(&SocketAddr::new(local, 0).into())?;
    Ok(s)
}

/// Skips the IPv4 header of a datagram read from a raw IPv4 socket.
pub fn strip_ipv4_header(d: &[u8]) -> Option<&[u8]> {
    let ihl = usize::from(d.first()? & 0x0f) * 4;
    if ihl < 20 {
        return None;
    }
    d.get(ihl..)
}

fn set_pmtu_dont(s: &Socket, local: IpAddr) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let (level, name, val) = if local.is_ipv4() {
        (
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            libc::IP_PMTUDISC_DONT,
        )
    } else {
        (
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU_DISCOVER,
            libc::IPV6_PMTUDISC_DONT,
        )
    };
    // SAFETY: pointer/len describe a live c_int; the fd is valid for the call.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            level,
            name,
            &val as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as u32,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify() {
        assert_eq!(classify_natt(&[0xff]), Natt::Keepalive);
        let mut ike = [0u8; 32];
        ike[4] = 1;
        assert_eq!(classify_natt(&ike), Natt::Ike(&ike[4..]));
        assert_eq!(classify_natt(&[0, 0, 0, 0, 1, 2]), Natt::Invalid);
        let esp = [0, 0, 0x10, 0, 0, 0, 0, 1, 9];
        assert_eq!(classify_natt(&esp), Natt::Esp(&esp));
        assert_eq!(classify_natt(&[1, 2, 3]), Natt::Invalid);
        assert_eq!(classify_natt(&[]), Natt::Invalid);
        assert_eq!(esp_spi(&esp), Some(0x1000));
        assert_eq!(esp_spi(&[1]), None);
        let mut ip = [0u8; 24];
        ip[0] = 0x45;
        ip[20] = 7;
        assert_eq!(strip_ipv4_header(&ip), Some(&[7, 0, 0, 0][..]));
        assert_eq!(strip_ipv4_header(&[0x41]), None);
    }

    #[test]
    fn reuseport_sockets_share_a_port_and_one_peer_reaches_one_socket() {
        let a = bind_udp_reuseport("127.0.0.1:0".parse().unwrap()).unwrap();
        let bound = a.local_addr().unwrap();
        let b = bind_udp_reuseport(bound).unwrap();
        assert_eq!(b.local_addr().unwrap(), bound);
        // A socket without SO_REUSEPORT cannot join the group.
        assert!(bind_udp(bound).is_err());
        let peer = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        for i in 0..20u8 {
            peer.send_to(&[i; 12], bound).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut counts = [0usize; 2];
        let mut buf = [0u8; 64];
        for (k, s) in [&a, &b].into_iter().enumerate() {
            s.set_nonblocking(true).unwrap();
            while let Ok((n, from)) = s.recv_from(&mut buf) {
                assert_eq!((n, from), (12, peer.local_addr().unwrap()));
                counts[k] += 1;
            }
        }
        counts.sort_unstable();
        assert_eq!(counts, [0, 20], "one peer's datagrams all reach one socket");
    }

    #[test]
    fn bind_v4_and_v6_on_loopback_same_port() {
        let a = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = a.local_addr().unwrap().port();
        // v6-only lets the same port be bound on ::1 too (when IPv6 is available).
        if let Ok(b) = bind_udp(SocketAddr::new("::1".parse().unwrap(), port)) {
            assert_eq!(b.local_addr().unwrap().port(), port);
        }
        if crate::netns::is_root() {
            raw_esp_socket("127.0.0.1".parse().unwrap()).unwrap();
            raw_esp_socket("::1".parse().unwrap()).unwrap();
        }
        let c = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let mut ike = [7u8; 40];
        ike[..4].copy_from_slice(&NON_ESP_MARKER);
        c.send_to(&ike, a.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = a.recv_from(&mut buf).unwrap();
        assert_eq!(from, c.local_addr().unwrap());
        assert_eq!(classify_natt(&buf[..n]), Natt::Ike(&ike[4..]));
    }
}
