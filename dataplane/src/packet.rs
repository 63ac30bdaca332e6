//! Inner (plain) IP packet helpers used by the workers. None of them panics on any
//! input: malformed packets give `None`/`false`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// ESP next-header value for IPv4 in IPv4/IPv6 tunnel mode.
pub const NEXT_HEADER_IPV4: u8 = 4;
/// ESP next-header value for IPv6.
pub const NEXT_HEADER_IPV6: u8 = 41;
/// ESP next-header value of a dummy packet (RFC 4303 §2.6): dropped silently.
pub const NEXT_HEADER_NONE: u8 = 59;

const PROTO_TCP: u8 = 6;
const PROTO_ICMP: u8 = 1;
const PROTO_ICMPV6: u8 = 58;

/// IP version and addresses of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpInfo {
    /// ESP next header for this packet: [`NEXT_HEADER_IPV4`] or [`NEXT_HEADER_IPV6`].
    pub next_header: u8,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
}

/// Reads the version and addresses of an IP packet (header length checked).
pub fn ip_info(pkt: &[u8]) -> Option<IpInfo> {
    match pkt.first()? >> 4 {
        4 if pkt.len() >= 20 => Some(IpInfo {
            next_header: NEXT_HEADER_IPV4,
            src: IpAddr::V4(Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15])),
            dst: IpAddr::V4(Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19])),
        }),
        6 if pkt.len() >= 40 => {
            let s: [u8; 16] = pkt[8..24].try_into().ok()?;
            let d: [u8; 16] = pkt[24..40].try_into().ok()?;
            Some(IpInfo {
                next_header: NEXT_HEADER_IPV6,
                src: IpAddr::V6(Ipv6Addr::from(s)),
                dst: IpAddr::V6(Ipv6Addr::from(d)),
            })
        }
        _ => None,
    }
}

/// A hash of a packet's flow that is the same for both directions (addresses and, for
/// TCP/UDP/SCTP/UDP-Lite, ports, each pair ordered; unfragmented IPv4 and IPv6 without
/// extension headers). Used to pick the TUN queue an opened packet is written to: the
/// kernel then reads the flow's outbound packets from that queue too, so each flow stays
/// on one worker. Anything unparsable hashes to 0.
pub fn flow_hash(pkt: &[u8]) -> u32 {
    let (a, b, proto, l4): (u128, u128, u8, Option<&[u8]>) = match pkt.first().map(|v| v >> 4) {
        Some(4) if pkt.len() >= 20 => {
            let ihl = usize::from(pkt[0] & 0x0f) * 4;
            let frag = u16::from_be_bytes([pkt[6], pkt[7]]) & 0x3fff != 0;
            let a = u32::from_be_bytes([pkt[12], pkt[13], pkt[14], pkt[15]]);
            let b = u32::from_be_bytes([pkt[16], pkt[17], pkt[18], pkt[19]]);
            let l4 = if frag { None } else { pkt.get(ihl..) };
            (u128::from(a), u128::from(b), pkt[9], l4)
        }
        Some(6) if pkt.len() >= 40 => {
            let mut a = [0u8; 16];
            let mut b = [0u8; 16];
            a.copy_from_slice(&pkt[8..24]);
            b.copy_from_slice(&pkt[24..40]);
            (
                u128::from_be_bytes(a),
                u128::from_be_bytes(b),
                pkt[6],
                pkt.get(40..),
            )
        }
        _ => return 0,
    };
    let ports = match (proto, l4) {
        (6 | 17 | 132 | 136, Some(l4)) if l4.len() >= 4 => {
            let p = u16::from_be_bytes([l4[0], l4[1]]);
            let q = u16::from_be_bytes([l4[2], l4[3]]);
            (u64::from(p.min(q)) << 16) | u64::from(p.max(q))
        }
        _ => 0,
    };
    let fold = |x: u128| (x as u64) ^ ((x >> 64) as u64);
    let mut h = fold(a.min(b));
    h = mix(h ^ fold(a.max(b)).rotate_left(17));
    h = mix(h ^ (ports << 8) ^ u64::from(proto));
    (h ^ (h >> 32)) as u32
}

/// A 64-bit finaliser (splitmix64's).
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Whether a packet longer than the tunnel MTU must be refused with an ICMP error
/// ([`icmp_too_big`]) instead of being sent: IPv4 with DF set, and every IPv6 packet
/// (routers never fragment IPv6). IPv4 without DF may go out (the outer packet is then
/// fragmented).
pub fn needs_too_big(pkt: &[u8]) -> bool {
    match pkt.first().map(|v| v >> 4) {
        Some(4) => pkt.get(6).is_some_and(|f| f & 0x40 != 0),
        Some(6) => true,
        _ => false,
    }
}

/// True for packets that must never leave the link they were sent on, so never enter a
/// tunnel: IPv6 link-local source (fe80::/10) or link-scope multicast destination
/// (ff02::/16), IPv4 link-local (169.254/16) or 224.0.0.0/24 destination. The kernel
/// sends such packets (router solicitations, MLD) into every device that is up.
pub fn is_link_scoped(info: &IpInfo) -> bool {
    match (info.src, info.dst) {
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            s.segments()[0] & 0xffc0 == 0xfe80 || d.segments()[0] & 0xff0f == 0xff02
        }
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            s.is_link_local()
                || d.is_link_local()
                || (d.octets()[0] == 224 && d.octets()[1] == 0 && d.octets()[2] == 0)
        }
        _ => false,
    }
}

/// True when `addr` is inside one of the traffic selectors.
pub fn ts_allows(ts: &[IpNet], addr: IpAddr) -> bool {
    ts.iter().any(|n| n.contains(&addr))
}

/// Inbound policy check (RFC 4301 §5.2): the decrypted packet must come from the
/// peer's selectors and go to ours, and its version must match the ESP next header.
pub fn inbound_allowed(
    pkt: &[u8],
    next_header: u8,
    local_ts: &[IpNet],
    remote_ts: &[IpNet],
) -> bool {
    match ip_info(pkt) {
        Some(i) => {
            i.next_header == next_header
                && ts_allows(remote_ts, i.src)
                && ts_allows(local_ts, i.dst)
        }
        None => false,
    }
}

/// One's complement sum of 16-bit big-endian words.
fn sum16(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        acc += u32::from(*b) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Internet checksum (RFC 1071) of `data` with an initial partial sum.
fn checksum(data: &[u8], acc: u32) -> u16 {
    !fold(sum16(data, acc))
}

/// Incremental checksum update for one 16-bit word changing `old` → `new` (RFC 1624 eq. 3).
fn update_checksum(cksum: u16, old: u16, new: u16) -> u16 {
    let acc = u32::from(!cksum) + u32::from(!old) + u32::from(new);
    !fold(acc)
}

/// Finds the TCP segment of an unfragmented IPv4/IPv6 packet: offset of the TCP header.
fn tcp_offset(pkt: &[u8]) -> Option<usize> {
    match pkt.first()? >> 4 {
        4 => {
            if pkt.len() < 20 {
                return None;
            }
            let ihl = usize::from(pkt[0] & 0x0f) * 4;
            let frag = u16::from_be_bytes([pkt[6], pkt[7]]) & 0x1fff;
            let more = pkt[6] & 0x20 != 0;
            if ihl < 20 || pkt[9] != PROTO_TCP || frag != 0 || more {
                return None;
            }
            Some(ihl)
        }
        6 => {
            // Only a TCP header directly after the fixed header (no extension headers).
            if pkt.len() < 40 || pkt[6] != PROTO_TCP {
                return None;
            }
            Some(40)
        }
        _ => None,
    }
}

/// TCP MSS clamping: if `pkt` is a TCP SYN (or SYN-ACK) whose MSS option exceeds `mss`,
/// lowers it to `mss` and fixes the TCP checksum incrementally. Returns true when the
/// packet was changed. Fragments, IPv6 packets with extension headers and malformed
/// options are left alone.
pub fn clamp_mss(pkt: &mut [u8], mss: u16) -> bool {
    let Some(off) = tcp_offset(pkt) else {
        return false;
    };
    let Some(tcp) = pkt.get_mut(off..) else {
        return false;
    };
    if tcp.len() < 20 || tcp[13] & 0x02 == 0 {
        return false; // not a SYN
    }
    let doff = usize::from(tcp[12] >> 4) * 4;
    if doff < 20 || doff > tcp.len() {
        return false;
    }
    let mut i = 20;
    while i < doff {
        match tcp[i] {
            0 => return false, // end of options
            1 => i += 1,       // NOP
            kind => {
                let Some(&len) = tcp.get(i + 1) else {
                    return false;
                };
                let len = usize::from(len);
                if len < 2 || i + len > doff {
                    return false;
                }
                if kind == 2 && len == 4 {
                    let old = u16::from_be_bytes([tcp[i + 2], tcp[i + 3]]);
                    if old <= mss {
                        return false;
                    }
                    tcp[i + 2..i + 4].copy_from_slice(&mss.to_be_bytes());
                    let ck = u16::from_be_bytes([tcp[16], tcp[17]]);
                    // The MSS value sits at an even offset from the TCP header start
                    // only if i is even; the checksum is over 16-bit words, so adjust
                    // the word that contains it (both bytes for odd offsets).
                    let new_ck = if i % 2 == 0 {
                        update_checksum(ck, old, mss)
                    } else {
                        // Bytes i+2, i+3 straddle words (i+1,i+2) and (i+3,i+4).
                        let w1_old = u16::from_be_bytes([tcp[i + 1], (old >> 8) as u8]);
                        let w1_new = u16::from_be_bytes([tcp[i + 1], (mss >> 8) as u8]);
                        let next = tcp.get(i + 4).copied().unwrap_or(0);
                        let w2_old = u16::from_be_bytes([old as u8, next]);
                        let w2_new = u16::from_be_bytes([mss as u8, next]);
                        update_checksum(update_checksum(ck, w1_old, w1_new), w2_old, w2_new)
                    };
                    tcp[16..18].copy_from_slice(&new_ck.to_be_bytes());
                    return true;
                }
                i += len;
            }
        }
    }
    false
}

/// Builds an ICMP "fragmentation needed" (IPv4, type 3 code 4, RFC 1191) or ICMPv6
/// "packet too big" (type 2, RFC 8201) answer to `pkt` into `out`, from `src` (an
/// address of ours of the same family) to the packet's source, announcing `mtu`.
///
/// Returns the length written, or `None` when no error must be sent: IPv4 without DF,
/// ICMP error messages, non-first fragments, malformed packets, a family mismatch, or
/// `out` shorter than the answer (at most 576 bytes for IPv4, 1280 for IPv6).
pub fn icmp_too_big(pkt: &[u8], mtu: u16, src: IpAddr, out: &mut [u8]) -> Option<usize> {
    let info = ip_info(pkt)?;
    match (info.src, src) {
        (IpAddr::V4(dst), IpAddr::V4(src)) => {
            let ihl = usize::from(pkt[0] & 0x0f) * 4;
            if ihl < 20 || pkt.len() < ihl {
                return None;
            }
            let df = pkt[6] & 0x40 != 0;
            let frag_off = u16::from_be_bytes([pkt[6], pkt[7]]) & 0x1fff;
            if !df || frag_off != 0 || dst.is_unspecified() || dst.is_multicast() {
                return None;
            }
            if pkt[9] == PROTO_ICMP {
                // Never answer an ICMP error; echo request/reply (8/0) are fine.
                match pkt.get(ihl) {
                    Some(0) | Some(8) => {}
                    _ => return None,
                }
            }
            let quoted = pkt.len().min(576 - 28);
            let total = 28 + quoted;
            let out = out.get_mut(..total)?;
            out.fill(0);
            out[0] = 0x45;
            out[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            out[6] = 0x40; // DF
            out[8] = 64;
            out[9] = PROTO_ICMP;
            out[12..16].copy_from_slice(&src.octets());
            out[16..20].copy_from_slice(&dst.octets());
            let ck = checksum(&out[..20], 0);
            out[10..12].copy_from_slice(&ck.to_be_bytes());
            out[20] = 3;
            out[21] = 4;
            out[26..28].copy_from_slice(&mtu.to_be_bytes());
            out[28..].copy_from_slice(&pkt[..quoted]);
            let ck = checksum(&out[20..], 0);
            out[22..24].copy_from_slice(&ck.to_be_bytes());
            Some(total)
        }
        (IpAddr::V6(dst), IpAddr::V6(src)) => {
            if dst.is_unspecified() || dst.is_multicast() {
                return None;
            }
            if pkt[6] == PROTO_ICMPV6 {
                // Only informational messages (type >= 128) may be answered.
                if pkt.get(40).is_none_or(|t| *t < 128) {
                    return None;
                }
            }
            let quoted = pkt.len().min(1280 - 48);
            let total = 48 + quoted;
            let out = out.get_mut(..total)?;
            out.fill(0);
            out[0] = 0x60;
            let plen = (8 + quoted) as u16;
            out[4..6].copy_from_slice(&plen.to_be_bytes());
            out[6] = PROTO_ICMPV6;
            out[7] = 64;
            out[8..24].copy_from_slice(&src.octets());
            out[24..40].copy_from_slice(&dst.octets());
            out[40] = 2;
            out[41] = 0;
            out[44..48].copy_from_slice(&u32::from(mtu).to_be_bytes());
            out[48..].copy_from_slice(&pkt[..quoted]);
            // Pseudo-header: src, dst, upper-layer length, next header.
            let mut acc = sum16(&out[8..40], 0);
            acc += u32::from(plen);
            acc += u32::from(PROTO_ICMPV6);
            let ck = checksum(&out[40..], acc);
            out[42..44].copy_from_slice(&ck.to_be_bytes());
            Some(total)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::tests_support::{syn_v4, tcp_checksum_v4};

    fn mss_of(p: &[u8], pad: usize) -> u16 {
        u16::from_be_bytes([p[40 + pad + 2], p[40 + pad + 3]])
    }

    #[test]
    fn mss_is_clamped_with_valid_checksum_at_even_and_odd_offsets() {
        for pad in 0..4 {
            let mut p = syn_v4(pad, 1460);
            assert!(clamp_mss(&mut p, 1350), "pad {pad}");
            assert_eq!(mss_of(&p, pad), 1350);
            let stored = u16::from_be_bytes([p[36], p[37]]);
            assert_eq!(stored, tcp_checksum_v4(&p), "pad {pad}");
        }
    }

    #[test]
    fn smaller_mss_and_non_syn_are_untouched() {
        let mut p = syn_v4(0, 1200);
        let orig = p.clone();
        assert!(!clamp_mss(&mut p, 1350));
        assert_eq!(p, orig);
        let mut p = syn_v4(0, 1460);
        p[33] = 0x10; // ACK only
        let orig = p.clone();
        assert!(!clamp_mss(&mut p, 1350));
        assert_eq!(p, orig);
    }

    #[test]
    fn mss_clamp_ipv6() {
        let v4 = syn_v4(0, 1440);
        let tcp = &v4[20..];
        let mut p = vec![0u8; 40 + tcp.len()];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&(tcp.len() as u16).to_be_bytes());
        p[6] = PROTO_TCP;
        p[7] = 64;
        p[8..24].copy_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        p[24..40].copy_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        p[40..].copy_from_slice(tcp);
        let full = |p: &[u8]| {
            let mut acc = sum16(&p[8..40], 0);
            acc += u32::from(PROTO_TCP) + (p.len() - 40) as u32;
            let mut t = p[40..].to_vec();
            t[16] = 0;
            t[17] = 0;
            checksum(&t, acc)
        };
        let ck = full(&p);
        p[56..58].copy_from_slice(&ck.to_be_bytes());
        assert!(clamp_mss(&mut p, 1330));
        assert_eq!(u16::from_be_bytes([p[62], p[63]]), 1330);
        assert_eq!(u16::from_be_bytes([p[56], p[57]]), full(&p));
    }

    #[test]
    fn mss_clamp_never_panics_on_truncations() {
        let p = syn_v4(1, 1460);
        for n in 0..p.len() {
            let mut q = p[..n].to_vec();
            let _ = clamp_mss(&mut q, 1000);
        }
        let mut bad = syn_v4(0, 1460);
        bad[41] = 40; // option length past the header
        assert!(!clamp_mss(&mut bad, 1000));
    }

    #[test]
    fn frag_needed_v4() {
        let p = syn_v4(0, 1460);
        let mut out = [0u8; 600];
        let src = IpAddr::V4(Ipv4Addr::new(10, 1, 0, 1));
        let n = icmp_too_big(&p, 1400, src, &mut out).unwrap();
        let o = &out[..n];
        assert_eq!(n, 28 + p.len());
        assert_eq!(checksum(&o[..20], 0), 0, "IP header checksum");
        assert_eq!(checksum(&o[20..], 0), 0, "ICMP checksum");
        assert_eq!((o[20], o[21]), (3, 4));
        assert_eq!(u16::from_be_bytes([o[26], o[27]]), 1400);
        assert_eq!(&o[16..20], &[10, 1, 0, 5]);
        assert_eq!(&o[28..], &p[..]);
        // Without DF: nothing.
        let mut q = p.clone();
        q[6] = 0;
        assert_eq!(icmp_too_big(&q, 1400, src, &mut out), None);
        // Answer to an ICMP error: nothing.
        let mut e = vec![0u8; 36];
        e[0] = 0x45;
        e[6] = 0x40;
        e[9] = PROTO_ICMP;
        e[20] = 3;
        assert_eq!(icmp_too_big(&e, 1400, src, &mut out), None);
        // Family mismatch or small buffer: nothing.
        let v6src: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(icmp_too_big(&p, 1400, v6src, &mut out), None);
        assert_eq!(icmp_too_big(&p, 1400, src, &mut out[..30]), None);
    }

    #[test]
    fn packet_too_big_v6() {
        let mut p = vec![0u8; 1500];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&1460u16.to_be_bytes());
        p[6] = 17;
        p[8..24].copy_from_slice(&"2001:db8:1::5".parse::<Ipv6Addr>().unwrap().octets());
        p[24..40].copy_from_slice(&"2001:db8:2::9".parse::<Ipv6Addr>().unwrap().octets());
        let src: IpAddr = "2001:db8:1::1".parse().unwrap();
        let mut out = [0u8; 1280];
        let n = icmp_too_big(&p, 1380, src, &mut out).unwrap();
        assert_eq!(n, 1280);
        let o = &out[..n];
        assert_eq!((o[40], o[41]), (2, 0));
        assert_eq!(u32::from_be_bytes([o[44], o[45], o[46], o[47]]), 1380);
        assert_eq!(&o[24..40], &p[8..24]);
        let mut acc = sum16(&o[8..40], 0);
        acc += (n - 40) as u32 + u32::from(PROTO_ICMPV6);
        assert_eq!(checksum(&o[40..], acc), 0, "ICMPv6 checksum");
    }

    #[test]
    fn inbound_policy() {
        let p = syn_v4(0, 1460); // 10.1.0.5 -> 10.2.0.9
        let l: Vec<IpNet> = vec!["10.2.0.0/16".parse().unwrap()];
        let r: Vec<IpNet> = vec!["10.1.0.0/16".parse().unwrap()];
        assert!(inbound_allowed(&p, NEXT_HEADER_IPV4, &l, &r));
        assert!(!inbound_allowed(&p, NEXT_HEADER_IPV6, &l, &r));
        assert!(!inbound_allowed(&p, NEXT_HEADER_IPV4, &r, &l));
        assert!(!inbound_allowed(&p[..10], NEXT_HEADER_IPV4, &l, &r));
        let info = ip_info(&p).unwrap();
        assert_eq!(info.src, IpAddr::V4(Ipv4Addr::new(10, 1, 0, 5)));
        assert!(!is_link_scoped(&info));
        let rs = IpInfo {
            next_header: NEXT_HEADER_IPV6,
            src: "fe80::1".parse().unwrap(),
            dst: "ff02::2".parse().unwrap(),
        };
        assert!(is_link_scoped(&rs));
        let global6 = IpInfo {
            next_header: NEXT_HEADER_IPV6,
            src: "2001:db8::1".parse().unwrap(),
            dst: "ff05::2".parse().unwrap(),
        };
        assert!(!is_link_scoped(&global6));
        assert_eq!(update_checksum(0x1234, 5, 5), 0x1234);
    }

    #[test]
    fn flow_hash_is_symmetric_and_tells_flows_apart() {
        let p = syn_v4(0, 1460);
        // The reverse direction: addresses and ports swapped.
        let mut r = p.clone();
        r[12..16].copy_from_slice(&p[16..20]);
        r[16..20].copy_from_slice(&p[12..16]);
        r[20..22].copy_from_slice(&p[22..24]);
        r[22..24].copy_from_slice(&p[20..22]);
        assert_eq!(flow_hash(&p), flow_hash(&r));
        let mut other = p.clone();
        other[20..22].copy_from_slice(&40001u16.to_be_bytes());
        assert_ne!(flow_hash(&p), flow_hash(&other));
        // Fragments hash on addresses only (the ports are not in every fragment).
        let mut frag = p.clone();
        frag[6] = 0x20; // MF
        let mut frag2 = other.clone();
        frag2[6] = 0x20;
        assert_eq!(flow_hash(&frag), flow_hash(&frag2));
        // Many flows spread over two queues.
        let mut per_queue = [0u32; 2];
        for port in 0..1000u16 {
            let mut q = p.clone();
            q[20..22].copy_from_slice(&(30000 + port).to_be_bytes());
            per_queue[(flow_hash(&q) % 2) as usize] += 1;
        }
        assert!(per_queue.iter().all(|&n| n > 400), "{per_queue:?}");
        let mut v6 = vec![0u8; 48];
        v6[0] = 0x60;
        v6[6] = 17;
        v6[8..24].copy_from_slice(&"fd00::1".parse::<Ipv6Addr>().unwrap().octets());
        v6[24..40].copy_from_slice(&"fd00::2".parse::<Ipv6Addr>().unwrap().octets());
        v6[40..44].copy_from_slice(&[0x10, 0, 0x20, 0]);
        let mut v6r = v6.clone();
        v6r[8..24].copy_from_slice(&v6[24..40]);
        v6r[24..40].copy_from_slice(&v6[8..24]);
        v6r[40..44].copy_from_slice(&[0x20, 0, 0x10, 0]);
        assert_eq!(flow_hash(&v6), flow_hash(&v6r));
        assert_eq!(flow_hash(&[]), 0);
        assert_eq!(flow_hash(&[0x45, 0, 0]), 0);
        assert!(needs_too_big(&p));
        let mut no_df = p.clone();
        no_df[6] = 0;
        assert!(!needs_too_big(&no_df));
        assert!(needs_too_big(&v6));
        assert!(!needs_too_big(&[]));
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// No panic on any bytes, and a clamped packet keeps a valid TCP checksum.
        #[test]
        fn clamp_mss_any_bytes(mut p in proptest::collection::vec(any::<u8>(), 0..120), mss in any::<u16>()) {
            let before = p.clone();
            let changed = clamp_mss(&mut p, mss);
            if !changed {
                prop_assert_eq!(p, before);
            }
        }

        #[test]
        fn clamp_keeps_checksum_valid(pad in 0usize..8, old in 536u16..9000, mss in 500u16..9000) {
            let mut p = tests_support::syn_v4(pad, old);
            let changed = clamp_mss(&mut p, mss);
            prop_assert_eq!(changed, old > mss);
            let stored = u16::from_be_bytes([p[36], p[37]]);
            prop_assert_eq!(stored, tests_support::tcp_checksum_v4(&p));
        }

        #[test]
        fn icmp_too_big_any_bytes(p in proptest::collection::vec(any::<u8>(), 0..200), mtu in any::<u16>()) {
            let mut out = [0u8; 1280];
            for src in ["10.0.0.1".parse::<IpAddr>().unwrap(), "fd00::1".parse().unwrap()] {
                if let Some(n) = icmp_too_big(&p, mtu, src, &mut out) {
                    prop_assert!(n <= out.len());
                    prop_assert!(ip_info(&out[..n]).is_some());
                }
            }
            let _ = ip_info(&p);
            let _ = flow_hash(&p);
            let _ = needs_too_big(&p);
        }
    }
}

#[cfg(test)]
mod tests_support {
    use super::*;

    /// TCP/IPv4 SYN with `pad` NOPs then MSS `mss`, valid checksums.
    pub(super) fn syn_v4(pad: usize, mss: u16) -> Vec<u8> {
        let mut opts = vec![1u8; pad];
        opts.extend_from_slice(&[2, 4]);
        opts.extend_from_slice(&mss.to_be_bytes());
        while opts.len() % 4 != 0 {
            opts.push(1);
        }
        let tcp_len = 20 + opts.len();
        let total = 20 + tcp_len;
        let mut p = vec![0u8; total];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[6] = 0x40;
        p[8] = 64;
        p[9] = PROTO_TCP;
        p[12..16].copy_from_slice(&[10, 1, 0, 5]);
        p[16..20].copy_from_slice(&[10, 2, 0, 9]);
        let ck = checksum(&p[..20], 0);
        p[10..12].copy_from_slice(&ck.to_be_bytes());
        let t = &mut p[20..];
        t[0..2].copy_from_slice(&40000u16.to_be_bytes());
        t[2..4].copy_from_slice(&443u16.to_be_bytes());
        t[4..8].copy_from_slice(&0x01020304u32.to_be_bytes());
        t[12] = ((tcp_len / 4) as u8) << 4;
        t[13] = 0x02;
        t[14..16].copy_from_slice(&64240u16.to_be_bytes());
        t[20..].copy_from_slice(&opts);
        let ck = tcp_checksum_v4(&p);
        p[36..38].copy_from_slice(&ck.to_be_bytes());
        p
    }

    /// Full recomputation, as an oracle for the incremental update.
    pub(super) fn tcp_checksum_v4(p: &[u8]) -> u16 {
        let tcp = &p[20..];
        let mut acc = sum16(&p[12..20], 0);
        acc += u32::from(PROTO_TCP) + tcp.len() as u32;
        let mut t = tcp.to_vec();
        t[16] = 0;
        t[17] = 0;
        checksum(&t, acc)
    }
}
