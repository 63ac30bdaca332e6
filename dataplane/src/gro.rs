//! Receive coalescing (GRO) for an offload TUN: opened inner packets of one TCP or UDP
//! flow that follow each other are merged into one super-packet with a virtio-net header
//! (`gso_type` TCPV4/TCPV6/UDP_L4, checksum left to the kernel), so one `write(2)` hands
//! the kernel dozens of packets.
//!
//! The rules are those of wireguard-go's and the kernel's GRO: same addresses, ports,
//! TOS/TTL (traffic class/hop limit), DF, TCP header length and options; IPv4 without
//! options or fragments, IPv6 without extension headers; TCP flags ACK (PSH only on the
//! last segment); in-order sequence numbers; every segment but the last of the same size;
//! valid checksums (a packet with a bad checksum is written alone, unchanged, so the
//! kernel drops it as it would have). Each packet is copied once (the first whole, the
//! next ones' payloads appended); nothing is allocated once the buffers exist.

/// Bytes of the virtio-net header written in front of every frame.
pub const VNET_HDR_LEN: usize = 10;
/// Largest IP packet a super-packet may become.
const MAX_SUPER: usize = 65_535;
/// Most segments in one super-packet: the kernel refuses UDP GSO frames of more than
/// `UDP_MAX_SEGMENTS` (64 on older kernels, 128 on newer) segments with EINVAL.
pub const MAX_SEGS: usize = 64;
/// Open flows tracked at a time (linear search; bulk traffic has one or a few).
const MAX_ITEMS: usize = 8;

const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;
const GSO_UDP_L4: u8 = 5;
const F_NEEDS_CSUM: u8 = 1;

const TCP_ACK: u8 = 0x10;
const TCP_PSH: u8 = 0x08;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Proto {
    Tcp,
    Udp,
}

/// What a coalescable packet looks like.
#[derive(Clone, Copy)]
struct Parsed {
    v6: bool,
    proto: Proto,
    /// IP header length.
    iph: usize,
    /// Transport header length (8 for UDP).
    th: usize,
    seq: u32,
    psh: bool,
}

/// An open super-packet.
#[derive(Clone, Copy)]
struct Item {
    buf: usize,
    p: Parsed,
    /// Payload bytes of the first segment (the segment size).
    gso: usize,
    segs: usize,
    next_seq: u32,
    /// A shorter segment (or PSH) ended it: nothing may follow.
    closed: bool,
}

/// Coalescing writer state: frame buffers and the open flows.
pub struct Coalescer {
    bufs: Vec<Vec<u8>>,
    /// Per used buffer: the item it holds, if coalescable.
    used: usize,
    items: [Option<Item>; MAX_ITEMS],
    next_item: usize,
    /// Whether UDP may be coalesced (the device has USO).
    udp: bool,
}

impl std::fmt::Debug for Coalescer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer")
            .field("bufs", &self.bufs.len())
            .field("used", &self.used)
            .finish()
    }
}

impl Coalescer {
    /// Room for `frames` frames of up to 64 KiB each (allocated once).
    pub fn new(frames: usize) -> Self {
        Coalescer {
            bufs: (0..frames.max(1))
                .map(|_| Vec::with_capacity(VNET_HDR_LEN + MAX_SUPER))
                .collect(),
            used: 0,
            items: [None; MAX_ITEMS],
            next_item: 0,
            udp: true,
        }
    }

    /// Whether UDP datagrams may be coalesced (only when the TUN device accepts USO
    /// frames, Linux 6.2+; default on). TCP always may.
    pub fn set_udp(&mut self, on: bool) {
        self.udp = on;
    }

    /// Frames collected so far (not yet written).
    pub fn pending(&self) -> usize {
        self.used
    }

    /// True when the next [`Coalescer::push`] may need a fresh frame and none is left:
    /// flush first.
    pub fn is_full(&self) -> bool {
        self.used == self.bufs.len()
    }

    /// Adds one IP packet (merged into an open frame of its flow, or a frame of its own).
    /// Call [`Coalescer::flush`] first when [`Coalescer::is_full`].
    pub fn push(&mut self, pkt: &[u8]) {
        let parsed = parse(pkt).filter(|p| self.udp || p.proto == Proto::Tcp);
        if let Some(p) = parsed {
            if self.try_append(pkt, p) {
                return;
            }
        }
        if self.is_full() {
            return; // caller broke the contract; the packet is dropped, never overrun
        }
        let b = &mut self.bufs[self.used];
        b.clear();
        b.extend_from_slice(&[0u8; VNET_HDR_LEN]);
        b.extend_from_slice(pkt);
        if let Some(p) = parsed {
            let gso = pkt.len() - p.iph - p.th;
            let item = Item {
                buf: self.used,
                p,
                gso,
                segs: 1,
                next_seq: p.seq.wrapping_add(gso as u32),
                closed: p.psh,
            };
            // Replace the oldest slot (round robin), finishing what it held.
            if let Some(old) = self.items[self.next_item].replace(item) {
                if old.segs > 1 {
                    finish(&mut self.bufs[old.buf], &old);
                }
            }
            self.next_item = (self.next_item + 1) % MAX_ITEMS;
        }
        self.used += 1;
    }

    fn try_append(&mut self, pkt: &[u8], p: Parsed) -> bool {
        let payload = pkt.len() - p.iph - p.th;
        for slot in self.items.iter_mut() {
            let Some(it) = *slot else { continue };
            let head = &self.bufs[it.buf][VNET_HDR_LEN..];
            if it.p.v6 != p.v6 || it.p.proto != p.proto || !same_flow(head, pkt, &p) {
                continue;
            }
            // Same flow: append or give up on this packet (never reorder within a flow).
            let ok = !it.closed
                && it.segs < MAX_SEGS
                && payload <= it.gso
                && head.len() + payload <= MAX_SUPER
                && (p.proto == Proto::Udp || (p.seq == it.next_seq && it.p.th == p.th))
                && headers_match(head, pkt, &it.p, &p)
                && checksum_ok(pkt, &p)
                && (it.segs > 1 || checksum_ok(head, &it.p));
            if !ok {
                // The flow's frame is done; this packet starts a new one.
                if it.segs > 1 {
                    finish(&mut self.bufs[it.buf], &it);
                }
                *slot = None;
                return false;
            }
            let b = &mut self.bufs[it.buf];
            b.extend_from_slice(&pkt[p.iph + p.th..]);
            let mut it = it;
            it.segs += 1;
            it.next_seq = it.next_seq.wrapping_add(payload as u32);
            if payload < it.gso {
                it.closed = true;
            }
            if p.psh {
                b[VNET_HDR_LEN + it.p.iph + 13] |= TCP_PSH;
                it.closed = true;
            }
            *slot = Some(it);
            return true;
        }
        false
    }

    /// Finishes every frame (headers, lengths, virtio-net header) and hands each to
    /// `write` in order; forgets them. Returns how many frames `write` failed on.
    pub fn flush(&mut self, mut write: impl FnMut(&[u8]) -> std::io::Result<usize>) -> usize {
        // Finish coalesced frames.
        for it in self.items.iter_mut().filter_map(Option::take) {
            if it.segs > 1 {
                finish(&mut self.bufs[it.buf], &it);
            }
        }
        self.next_item = 0;
        let mut failed = 0;
        for b in &self.bufs[..self.used] {
            if write(b).is_err() {
                failed += 1;
            }
        }
        self.used = 0;
        failed
    }
}

/// Parses a coalescing candidate.
fn parse(pkt: &[u8]) -> Option<Parsed> {
    let v = pkt.first()? >> 4;
    let (v6, iph, proto) = match v {
        4 => {
            if pkt.len() < 20 || pkt[0] & 0x0f != 5 {
                return None; // IPv4 options: no
            }
            if usize::from(u16::from_be_bytes([pkt[2], pkt[3]])) != pkt.len() {
                return None;
            }
            // MF or a fragment offset: no.
            if pkt[6] & 0x20 != 0 || (u16::from_be_bytes([pkt[6], pkt[7]]) & 0x1fff) != 0 {
                return None;
            }
            (false, 20, pkt[9])
        }
        6 => {
            if pkt.len() < 40 || usize::from(u16::from_be_bytes([pkt[4], pkt[5]])) + 40 != pkt.len()
            {
                return None;
            }
            (true, 40, pkt[6])
        }
        _ => return None,
    };
    match proto {
        6 => {
            let th = usize::from(*pkt.get(iph + 12)? >> 4) * 4;
            if !(20..=60).contains(&th) || pkt.len() <= iph + th {
                return None; // also: no payload
            }
            let flags = pkt[iph + 13];
            let psh = match flags {
                TCP_ACK => false,
                f if f == TCP_ACK | TCP_PSH => true,
                _ => return None,
            };
            let seq = u32::from_be_bytes(pkt[iph + 4..iph + 8].try_into().ok()?);
            Some(Parsed {
                v6,
                proto: Proto::Tcp,
                iph,
                th,
                seq,
                psh,
            })
        }
        17 => {
            if pkt.len() <= iph + 8
                || usize::from(u16::from_be_bytes([pkt[iph + 4], pkt[iph + 5]])) != pkt.len() - iph
            {
                return None;
            }
            Some(Parsed {
                v6,
                proto: Proto::Udp,
                iph,
                th: 8,
                seq: 0,
                psh: false,
            })
        }
        _ => None,
    }
}

/// Same addresses and ports.
fn same_flow(a: &[u8], b: &[u8], p: &Parsed) -> bool {
    let addrs = if p.v6 { 8..40 } else { 12..20 };
    let ports = p.iph..p.iph + 4;
    a.get(addrs.clone()) == b.get(addrs) && a.get(ports.clone()) == b.get(ports)
}

/// IP fields that must match, and TCP options.
fn headers_match(head: &[u8], pkt: &[u8], h: &Parsed, p: &Parsed) -> bool {
    let ip_ok = if p.v6 {
        // Version + traffic class, hop limit.
        head[0] == pkt[0] && head[1] >> 4 == pkt[1] >> 4 && head[7] == pkt[7]
    } else {
        // TOS, DF/reserved, TTL.
        head[1] == pkt[1] && head[6] >> 5 == pkt[6] >> 5 && head[8] == pkt[8]
    };
    ip_ok
        && (p.proto == Proto::Udp
            || head.get(h.iph + 20..h.iph + h.th) == pkt.get(p.iph + 20..p.iph + p.th))
}

/// Ones'-complement sum of `data` added to `sum` (not folded).
fn sum16(data: &[u8], mut sum: u64) -> u64 {
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        sum += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    let mut i = 0;
    while i + 1 < rest.len() {
        sum += u64::from(u16::from_be_bytes([rest[i], rest[i + 1]]));
        i += 2;
    }
    if i < rest.len() {
        sum += u64::from(rest[i]) << 8;
    }
    sum
}

fn fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Pseudo-header sum for a transport segment of `len` bytes.
fn pseudo(pkt: &[u8], p: &Parsed, len: usize) -> u64 {
    let addrs = if p.v6 { &pkt[8..40] } else { &pkt[12..20] };
    let proto = if p.proto == Proto::Tcp { 6u64 } else { 17 };
    sum16(addrs, 0) + proto + len as u64
}

/// Whether the transport checksum of `pkt` is valid (a zero UDP/IPv4 checksum means
/// "none" and counts as valid).
fn checksum_ok(pkt: &[u8], p: &Parsed) -> bool {
    let seg = &pkt[p.iph..];
    if p.proto == Proto::Udp && !p.v6 && seg[6] == 0 && seg[7] == 0 {
        return true;
    }
    fold(sum16(seg, pseudo(pkt, p, seg.len()))) == 0xffff
}

/// Fixes lengths and checksums of a coalesced frame and writes its virtio-net header.
fn finish(b: &mut [u8], it: &Item) {
    let (hdr, pkt) = b.split_at_mut(VNET_HDR_LEN);
    let p = &it.p;
    let total = pkt.len();
    if p.v6 {
        pkt[4..6].copy_from_slice(&((total - 40) as u16).to_be_bytes());
    } else {
        pkt[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        pkt[10..12].copy_from_slice(&[0, 0]);
        let c = !fold(sum16(&pkt[..20], 0));
        pkt[10..12].copy_from_slice(&c.to_be_bytes());
    }
    let seg_len = total - p.iph;
    let csum_off = if p.proto == Proto::Tcp { 16 } else { 6 };
    if p.proto == Proto::Udp {
        pkt[p.iph + 4..p.iph + 6].copy_from_slice(&(seg_len as u16).to_be_bytes());
    }
    // CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum.
    let ph = fold(pseudo(pkt, p, seg_len));
    pkt[p.iph + csum_off..p.iph + csum_off + 2].copy_from_slice(&ph.to_be_bytes());
    let gso_type = match (p.proto, p.v6) {
        (Proto::Udp, _) => GSO_UDP_L4,
        (Proto::Tcp, false) => GSO_TCPV4,
        (Proto::Tcp, true) => GSO_TCPV6,
    };
    hdr[0] = F_NEEDS_CSUM;
    hdr[1] = gso_type;
    hdr[2..4].copy_from_slice(&((p.iph + p.th) as u16).to_ne_bytes());
    hdr[4..6].copy_from_slice(&(it.gso as u16).to_ne_bytes());
    hdr[6..8].copy_from_slice(&(p.iph as u16).to_ne_bytes());
    hdr[8..10].copy_from_slice(&(csum_off as u16).to_ne_bytes());
}

/// The GSO type written for frames that are not coalesced (for tests).
pub const fn gso_none() -> u8 {
    GSO_NONE
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid IPv4 TCP (or UDP) packet with `payload` bytes.
    fn pkt4(proto: u8, sport: u16, seq: u32, payload: &[u8], flags: u8) -> Vec<u8> {
        let th = if proto == 6 { 20 } else { 8 };
        let mut p = vec![0u8; 20 + th + payload.len()];
        let total = p.len() as u16;
        p[0] = 0x45;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[6] = 0x40;
        p[8] = 64;
        p[9] = proto;
        p[12..16].copy_from_slice(&[10, 1, 0, 2]);
        p[16..20].copy_from_slice(&[10, 2, 0, 2]);
        p[20..22].copy_from_slice(&sport.to_be_bytes());
        p[22..24].copy_from_slice(&5201u16.to_be_bytes());
        if proto == 6 {
            p[24..28].copy_from_slice(&seq.to_be_bytes());
            p[32] = 5 << 4;
            p[33] = flags;
            p[34..36].copy_from_slice(&512u16.to_be_bytes());
        } else {
            p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        }
        p[20 + th..].copy_from_slice(payload);
        let c = !fold(sum16(&p[..20], 0));
        p[10..12].copy_from_slice(&c.to_be_bytes());
        let parsed = Parsed {
            v6: false,
            proto: if proto == 6 { Proto::Tcp } else { Proto::Udp },
            iph: 20,
            th,
            seq,
            psh: false,
        };
        let off = if proto == 6 { 16 } else { 6 };
        let c = !fold(sum16(&p[20..], pseudo(&p, &parsed, p.len() - 20)));
        p[20 + off..22 + off].copy_from_slice(&c.to_be_bytes());
        assert!(checksum_ok(&p, &parsed));
        p
    }

    fn frames(c: &mut Coalescer) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        c.flush(|f| {
            out.push(f.to_vec());
            Ok(f.len())
        });
        out
    }

    #[test]
    fn tcp_segments_coalesce_into_one_frame() {
        let data: Vec<u8> = (0..10 * 1000).map(|i| (i % 251) as u8).collect();
        let mut c = Coalescer::new(16);
        for (i, chunk) in data.chunks(1000).enumerate() {
            let flags = if i == 9 { TCP_ACK | TCP_PSH } else { TCP_ACK };
            c.push(&pkt4(6, 40000, 7 + 1000 * i as u32, chunk, flags));
        }
        let f = frames(&mut c);
        assert_eq!(f.len(), 1);
        let (hdr, pkt) = f[0].split_at(VNET_HDR_LEN);
        assert_eq!(hdr[0], F_NEEDS_CSUM);
        assert_eq!(hdr[1], GSO_TCPV4);
        assert_eq!(u16::from_ne_bytes([hdr[4], hdr[5]]), 1000);
        assert_eq!(&pkt[40..], &data[..]);
        assert_eq!(usize::from(u16::from_be_bytes([pkt[2], pkt[3]])), pkt.len());
        assert_eq!(fold(sum16(&pkt[..20], 0)), 0xffff, "IPv4 header checksum");
        assert_eq!(pkt[33], TCP_ACK | TCP_PSH, "PSH moved to the super-packet");
        assert_eq!(u32::from_be_bytes(pkt[24..28].try_into().unwrap()), 7);
    }

    #[test]
    fn gaps_bad_checksums_other_flows_and_non_candidates_stay_apart() {
        let mut c = Coalescer::new(16);
        let a0 = pkt4(6, 1, 0, &[1; 100], TCP_ACK);
        let a1 = pkt4(6, 1, 100, &[2; 100], TCP_ACK);
        let b0 = pkt4(6, 2, 0, &[3; 100], TCP_ACK);
        let gap = pkt4(6, 1, 500, &[4; 100], TCP_ACK);
        let mut bad = pkt4(6, 2, 100, &[5; 100], TCP_ACK);
        bad[60] ^= 1;
        let syn = pkt4(6, 3, 0, &[6; 10], 0x02);
        for p in [&a0, &b0, &a1, &gap, &bad, &syn] {
            c.push(p);
        }
        let f = frames(&mut c);
        // a0+a1 | b0 | gap | bad | syn
        assert_eq!(f.len(), 5);
        assert_eq!(f[0][VNET_HDR_LEN + 40..].len(), 200);
        assert_eq!(&f[1][VNET_HDR_LEN..], &b0[..]);
        assert_eq!(f[1][1], gso_none());
        assert_eq!(&f[2][VNET_HDR_LEN..], &gap[..]);
        assert_eq!(
            &f[3][VNET_HDR_LEN..],
            &bad[..],
            "bad checksum written unchanged"
        );
        assert_eq!(&f[4][VNET_HDR_LEN..], &syn[..]);
    }

    #[test]
    fn udp_datagrams_coalesce_until_a_shorter_one() {
        let mut c = Coalescer::new(16);
        for i in 0..5u8 {
            c.push(&pkt4(17, 9, 0, &[i; 64], 0));
        }
        c.push(&pkt4(17, 9, 0, &[9; 10], 0));
        c.push(&pkt4(17, 9, 0, &[7; 64], 0));
        let f = frames(&mut c);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0][1], GSO_UDP_L4);
        // Small datagrams: at most MAX_SEGS per frame.
        for i in 0..(2 * MAX_SEGS + 1) {
            c.push(&pkt4(17, 9, 0, &[i as u8; 8], 0));
        }
        let f2 = frames(&mut c);
        assert_eq!(f2.len(), 3);
        assert_eq!(f2[0].len(), VNET_HDR_LEN + 28 + MAX_SEGS * 8);
        let pkt = &f[0][VNET_HDR_LEN..];
        assert_eq!(pkt.len(), 28 + 5 * 64 + 10);
        assert_eq!(
            usize::from(u16::from_be_bytes([pkt[24], pkt[25]])),
            pkt.len() - 20
        );
    }

    #[test]
    fn many_interleaved_flows_all_finished() {
        let mut c = Coalescer::new(64);
        // More flows than tracked slots, two segments each, interleaved.
        let n = MAX_ITEMS as u16 + 3;
        for round in 0..2u32 {
            for f in 0..n {
                c.push(&pkt4(6, 100 + f, 1000 * round, &[f as u8; 1000], TCP_ACK));
            }
        }
        for f in frames(&mut c) {
            let pkt = &f[VNET_HDR_LEN..];
            // Every frame is consistent: its IP length matches, the header checksum holds.
            assert_eq!(usize::from(u16::from_be_bytes([pkt[2], pkt[3]])), pkt.len());
            assert_eq!(fold(sum16(&pkt[..20], 0)), 0xffff);
            if f[1] == GSO_NONE {
                assert!(checksum_ok(pkt, &parse(pkt).unwrap()));
            }
        }
    }

    #[test]
    fn udp_stays_apart_without_uso() {
        let mut c = Coalescer::new(16);
        c.set_udp(false);
        for i in 0..3u8 {
            c.push(&pkt4(17, 9, 0, &[i; 64], 0));
        }
        let f = frames(&mut c);
        assert_eq!(f.len(), 3);
        assert!(f.iter().all(|f| f[..VNET_HDR_LEN] == [0; VNET_HDR_LEN]));
    }

    proptest::proptest! {
        #[test]
        fn any_packets_never_panic(pkts in proptest::collection::vec(
            proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120), 0..40)) {
            let mut c = Coalescer::new(4);
            for mut p in pkts {
                // Make some of them look like IPv4/TCP or UDP headers.
                if p.len() > 20 {
                    p[0] = 0x45;
                    let l = p.len() as u16;
                    p[2..4].copy_from_slice(&l.to_be_bytes());
                }
                if c.is_full() {
                    frames(&mut c);
                }
                c.push(&p);
            }
            frames(&mut c);
        }
    }

    #[test]
    fn never_panics_on_garbage() {
        let mut c = Coalescer::new(2);
        for len in 0..80 {
            for b in [0x45u8, 0x60, 0x00, 0xff] {
                let mut p = vec![b; len];
                if len > 9 {
                    p[9] = 6;
                }
                if c.is_full() {
                    frames(&mut c);
                }
                c.push(&p);
            }
        }
        frames(&mut c);
    }
}
