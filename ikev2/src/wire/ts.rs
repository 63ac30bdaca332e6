//! Traffic Selector payloads, TSi/TSr (RFC 7296 §3.13), with CIDR helpers.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::codec::{len_u16, len_u8, put_u16, Reader};
use super::Error;

open_enum! {
    /// Traffic selector type (RFC 7296 §3.13.1).
    pub struct TsType(u8) {
        /// TS_IPV4_ADDR_RANGE.
        IPV4_ADDR_RANGE = 7,
        /// TS_IPV6_ADDR_RANGE.
        IPV6_ADDR_RANGE = 8,
    }
}

/// An inclusive address range of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrRange {
    /// TS_IPV4_ADDR_RANGE: start and end (inclusive).
    V4(Ipv4Addr, Ipv4Addr),
    /// TS_IPV6_ADDR_RANGE: start and end (inclusive).
    V6(Ipv6Addr, Ipv6Addr),
}

impl AddrRange {
    /// The TS type of this range.
    pub fn ts_type(&self) -> TsType {
        match self {
            AddrRange::V4(..) => TsType::IPV4_ADDR_RANGE,
            AddrRange::V6(..) => TsType::IPV6_ADDR_RANGE,
        }
    }

    /// Start address.
    pub fn start(&self) -> IpAddr {
        match *self {
            AddrRange::V4(s, _) => IpAddr::V4(s),
            AddrRange::V6(s, _) => IpAddr::V6(s),
        }
    }

    /// End address (inclusive).
    pub fn end(&self) -> IpAddr {
        match *self {
            AddrRange::V4(_, e) => IpAddr::V4(e),
            AddrRange::V6(_, e) => IpAddr::V6(e),
        }
    }

    /// The range as (start, end, address bits) integers.
    fn bounds(&self) -> (u128, u128, u32) {
        match *self {
            AddrRange::V4(s, e) => (u32::from(s).into(), u32::from(e).into(), 32),
            AddrRange::V6(s, e) => (u128::from(s), u128::from(e), 128),
        }
    }
}

/// One traffic selector (RFC 7296 §3.13.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrafficSelector {
    /// IP protocol ID (0 = any).
    pub ip_protocol: u8,
    /// Start port (0 with end 65535 = any).
    pub start_port: u16,
    /// End port (inclusive).
    pub end_port: u16,
    /// Address range.
    pub range: AddrRange,
}

const TS_V4_LEN: usize = 16;
const TS_V6_LEN: usize = 40;

fn prefix_mask(bits: u32, prefix: u32) -> u128 {
    // Host bits set: the low (bits - prefix) bits.
    let host = bits - prefix;
    if host >= 128 {
        u128::MAX
    } else {
        (1u128 << host) - 1
    }
}

fn to_addr(v: u128, bits: u32) -> IpAddr {
    if bits == 32 {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

impl TrafficSelector {
    /// A selector for the whole prefix `addr/prefix_len`, any protocol and port. Host bits
    /// of `addr` are ignored. `prefix_len` is clamped to the address length.
    pub fn from_prefix(addr: IpAddr, prefix_len: u8) -> TrafficSelector {
        let range = match addr {
            IpAddr::V4(a) => {
                let mask = prefix_mask(32, u32::from(prefix_len).min(32)) as u32;
                let s = u32::from(a) & !mask;
                AddrRange::V4(Ipv4Addr::from(s), Ipv4Addr::from(s | mask))
            }
            IpAddr::V6(a) => {
                let mask = prefix_mask(128, u32::from(prefix_len).min(128));
                let s = u128::from(a) & !mask;
                AddrRange::V6(Ipv6Addr::from(s), Ipv6Addr::from(s | mask))
            }
        };
        TrafficSelector {
            ip_protocol: 0,
            start_port: 0,
            end_port: 65535,
            range,
        }
    }

    /// True if this selector allows any protocol and every port.
    pub fn is_any_port(&self) -> bool {
        self.ip_protocol == 0 && self.start_port == 0 && self.end_port == 65535
    }

    /// The range as a single prefix `(network, prefix_len)`, if it is exactly one.
    pub fn as_prefix(&self) -> Option<(IpAddr, u8)> {
        match self.to_prefixes().as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    /// The smallest list of prefixes that covers exactly the address range (empty if
    /// start > end). Ports and protocol are not considered.
    pub fn to_prefixes(&self) -> Vec<(IpAddr, u8)> {
        let (mut s, e, bits) = self.range.bounds();
        let mut out = Vec::new();
        if s > e {
            return out;
        }
        loop {
            // Largest block aligned at s that ends at or before e.
            let mut host = if s == 0 {
                bits
            } else {
                s.trailing_zeros().min(bits)
            };
            while host > 0
                && s.checked_add(prefix_mask(bits, bits - host))
                    .is_none_or(|x| x > e)
            {
                host -= 1;
            }
            let last = s + prefix_mask(bits, bits - host);
            // host <= bits <= 128 and the prefix length fits a u8.
            out.push((to_addr(s, bits), (bits - host) as u8));
            if last >= e {
                return out;
            }
            s = last + 1;
        }
    }

    fn parse(buf: &[u8]) -> Result<TrafficSelector, Error> {
        let mut r = Reader::new(buf);
        let ts_type = TsType(r.u8("traffic selector")?);
        let ip_protocol = r.u8("traffic selector")?;
        let _len = r.u16("traffic selector")?;
        let start_port = r.u16("traffic selector")?;
        let end_port = r.u16("traffic selector")?;
        let range = match ts_type {
            TsType::IPV4_ADDR_RANGE => {
                let s = r.take(4, "traffic selector")?;
                let e = r.take(4, "traffic selector")?;
                AddrRange::V4(
                    Ipv4Addr::new(s[0], s[1], s[2], s[3]),
                    Ipv4Addr::new(e[0], e[1], e[2], e[3]),
                )
            }
            TsType::IPV6_ADDR_RANGE => {
                let mut s = [0u8; 16];
                s.copy_from_slice(r.take(16, "traffic selector")?);
                let mut e = [0u8; 16];
                e.copy_from_slice(r.take(16, "traffic selector")?);
                AddrRange::V6(Ipv6Addr::from(s), Ipv6Addr::from(e))
            }
            _ => return Err(Error::InvalidValue("traffic selector type")),
        };
        if !r.is_empty() {
            return Err(Error::BadLength("traffic selector"));
        }
        Ok(TrafficSelector {
            ip_protocol,
            start_port,
            end_port,
            range,
        })
    }

    /// Octets of one encoded selector.
    pub fn buffer_len(&self) -> usize {
        match self.range {
            AddrRange::V4(..) => TS_V4_LEN,
            AddrRange::V6(..) => TS_V6_LEN,
        }
    }

    fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.push(self.range.ts_type().0);
        out.push(self.ip_protocol);
        put_u16(out, len_u16(self.buffer_len(), "traffic selector")?);
        put_u16(out, self.start_port);
        put_u16(out, self.end_port);
        match self.range {
            AddrRange::V4(s, e) => {
                out.extend_from_slice(&s.octets());
                out.extend_from_slice(&e.octets());
            }
            AddrRange::V6(s, e) => {
                out.extend_from_slice(&s.octets());
                out.extend_from_slice(&e.octets());
            }
        }
        Ok(())
    }

    /// Parses a TSi/TSr payload body (count, reserved, selectors). The count must match the
    /// selectors present; unknown TS types are rejected with [`Error::InvalidValue`].
    pub fn parse_ts(body: &[u8]) -> Result<Vec<TrafficSelector>, Error> {
        let mut r = Reader::new(body);
        let count = r.u8("TS payload")? as usize;
        let _reserved = r.take(3, "TS payload")?;
        let mut rest = r.rest();
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            if rest.len() < 4 {
                return Err(Error::Truncated("traffic selector"));
            }
            let len = u16::from_be_bytes([rest[2], rest[3]]) as usize;
            if len < 8 {
                return Err(Error::BadLength("traffic selector"));
            }
            if len > rest.len() {
                return Err(Error::Truncated("traffic selector"));
            }
            let (ts, after) = rest.split_at(len);
            out.push(TrafficSelector::parse(ts)?);
            rest = after;
        }
        if !rest.is_empty() {
            return Err(Error::TrailingData("TS payload"));
        }
        Ok(out)
    }

    /// Octets of a TS payload body holding `selectors`.
    pub fn ts_buffer_len(selectors: &[TrafficSelector]) -> usize {
        4 + selectors
            .iter()
            .map(TrafficSelector::buffer_len)
            .sum::<usize>()
    }

    /// Emits a TSi/TSr payload body.
    pub fn emit_ts(selectors: &[TrafficSelector], out: &mut Vec<u8>) -> Result<(), Error> {
        out.push(len_u8(selectors.len(), "TS payload")?);
        out.extend_from_slice(&[0, 0, 0]);
        for s in selectors {
            s.emit(out)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;

    // Two selectors: 10.1.0.0-10.1.255.255 any, and TCP 179 to 2001:db8::/32.
    static TS: [u8; 60] = [
        0x02, 0x00, 0x00, 0x00, // count, reserved
        0x07, 0x00, 0x00, 0x10, 0x00, 0x00, 0xff, 0xff, 10, 1, 0, 0, 10, 1, 255, 255, 0x08, 0x06,
        0x00, 0x28, 0x00, 0xb3, 0x00, 0xb3, //
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, //
        0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff,
    ];

    fn repr() -> Vec<TrafficSelector> {
        let mut v6 = TrafficSelector::from_prefix("2001:db8::".parse().unwrap(), 32);
        v6.ip_protocol = 6;
        v6.start_port = 179;
        v6.end_port = 179;
        vec![
            TrafficSelector::from_prefix("10.1.2.3".parse().unwrap(), 16),
            v6,
        ]
    }

    #[test]
    fn parse() {
        assert_eq!(TrafficSelector::parse_ts(&TS).unwrap(), repr());
    }

    #[test]
    fn emit() {
        let mut out = Vec::new();
        TrafficSelector::emit_ts(&repr(), &mut out).unwrap();
        assert_eq!(out, TS);
        assert_eq!(TrafficSelector::ts_buffer_len(&repr()), TS.len());
    }

    #[test]
    fn check_len() {
        for n in 0..TS.len() {
            assert!(TrafficSelector::parse_ts(&TS[..n]).is_err(), "len {n}");
        }
        let mut bad = TS;
        bad[4] = 9;
        assert_eq!(
            TrafficSelector::parse_ts(&bad),
            Err(Error::InvalidValue("traffic selector type"))
        );
        let mut more = TS.to_vec();
        more.push(0);
        assert_eq!(
            TrafficSelector::parse_ts(&more),
            Err(Error::TrailingData("TS payload"))
        );
    }

    #[test]
    fn prefixes() {
        let r = repr();
        assert_eq!(r[0].as_prefix(), Some(("10.1.0.0".parse().unwrap(), 16)));
        assert_eq!(r[1].as_prefix(), Some(("2001:db8::".parse().unwrap(), 32)));
        assert!(r[0].is_any_port());
        let all4 = TrafficSelector::from_prefix("1.2.3.4".parse().unwrap(), 0);
        assert_eq!(all4.as_prefix(), Some(("0.0.0.0".parse().unwrap(), 0)));
        let all6 = TrafficSelector::from_prefix("::1".parse().unwrap(), 0);
        assert_eq!(all6.as_prefix(), Some(("::".parse().unwrap(), 0)));
        let host = TrafficSelector::from_prefix("::1".parse().unwrap(), 200);
        assert_eq!(host.as_prefix(), Some(("::1".parse().unwrap(), 128)));
        // 10.0.0.1 - 10.0.0.6 = .1/32 .2/31 .4/31 .6/32
        let odd = TrafficSelector {
            range: AddrRange::V4("10.0.0.1".parse().unwrap(), "10.0.0.6".parse().unwrap()),
            ..all4
        };
        let p: Vec<String> = odd
            .to_prefixes()
            .iter()
            .map(|(a, l)| format!("{a}/{l}"))
            .collect();
        assert_eq!(
            p,
            ["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"]
        );
        assert_eq!(odd.as_prefix(), None);
        // Up to the top of the space.
        let top = TrafficSelector {
            range: AddrRange::V4("255.255.255.254".parse().unwrap(), Ipv4Addr::BROADCAST),
            ..all4
        };
        assert_eq!(
            top.as_prefix(),
            Some(("255.255.255.254".parse().unwrap(), 31))
        );
        let empty = TrafficSelector {
            range: AddrRange::V4("10.0.0.2".parse().unwrap(), "10.0.0.1".parse().unwrap()),
            ..all4
        };
        assert!(empty.to_prefixes().is_empty());
    }
}
