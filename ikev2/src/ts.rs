//! Traffic selectors (RFC 7296 §3.13) and narrowing (§2.9).
//!
//! A [`TrafficSelector`] is an address range of one family, an IP protocol (0 = any) and a
//! port range. A side of a Child SA is a list of them (a "TS set"). Configuration uses
//! CIDR strings (`10.1.0.0/16`, `0.0.0.0/0`, `::/0`, a bare address for a host) or an
//! explicit range `10.0.0.1-10.0.0.9`.
//!
//! Narrowing: the responder intersects what the initiator proposes with its own
//! configuration ([`narrow`]); an empty result is TS_UNACCEPTABLE. The initiator accepts
//! the answer only if it is within what it proposed ([`is_subset`]).

use core::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One traffic selector: an inclusive address range, protocol and inclusive port range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TrafficSelector {
    /// IP protocol number; 0 means any.
    pub ip_proto: u8,
    /// First port (0 for any).
    pub start_port: u16,
    /// Last port (65535 for any).
    pub end_port: u16,
    /// First address (same family as `end`).
    pub start: IpAddr,
    /// Last address.
    pub end: IpAddr,
}

/// Why a traffic selector string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TsError {
    /// Not an address, CIDR or range.
    #[error("`{0}` is not an address, CIDR (10.1.0.0/16) or range (10.0.0.1-10.0.0.9)")]
    Syntax(String),
    /// The prefix length is too long for the family.
    #[error("prefix length in `{0}` is too long")]
    PrefixLen(String),
    /// A range whose ends are of different families or in the wrong order.
    #[error("range `{0}` mixes families or ends before it starts")]
    Range(String),
}

fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(v6: bool, x: u128) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(x))
    } else {
        IpAddr::V4(Ipv4Addr::from(x as u32))
    }
}

impl TrafficSelector {
    /// All IPv4 addresses, any protocol and port (`0.0.0.0/0`).
    pub const ANY_V4: TrafficSelector = TrafficSelector {
        ip_proto: 0,
        start_port: 0,
        end_port: 65535,
        start: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        end: IpAddr::V4(Ipv4Addr::BROADCAST),
    };
    /// All IPv6 addresses, any protocol and port (`::/0`).
    pub const ANY_V6: TrafficSelector = TrafficSelector {
        ip_proto: 0,
        start_port: 0,
        end_port: 65535,
        start: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        end: IpAddr::V6(Ipv6Addr::new(
            0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff,
        )),
    };

    /// The selector for a CIDR block (host bits are ignored), any protocol and port.
    /// `None` if the prefix length is too long.
    pub fn from_cidr(addr: IpAddr, prefix_len: u8) -> Option<Self> {
        let bits: u32 = if addr.is_ipv4() { 32 } else { 128 };
        if u32::from(prefix_len) > bits {
            return None;
        }
        let x = to_u128(addr);
        let host_bits = bits - u32::from(prefix_len);
        let host_mask: u128 = if host_bits == 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        let v6 = addr.is_ipv6();
        Some(TrafficSelector {
            ip_proto: 0,
            start_port: 0,
            end_port: 65535,
            start: from_u128(v6, x & !host_mask),
            end: from_u128(v6, x | host_mask),
        })
    }

    /// An address range, any protocol and port. `None` if the families differ or
    /// `start > end`.
    pub fn from_range(start: IpAddr, end: IpAddr) -> Option<Self> {
        if start.is_ipv4() != end.is_ipv4() || to_u128(start) > to_u128(end) {
            return None;
        }
        Some(TrafficSelector {
            ip_proto: 0,
            start_port: 0,
            end_port: 65535,
            start,
            end,
        })
    }

    /// Parses `10.1.0.0/16`, `::/0`, `192.0.2.1` (a host) or `10.0.0.1-10.0.0.9`.
    pub fn parse(s: &str) -> Result<Self, TsError> {
        let s = s.trim();
        let syntax = || TsError::Syntax(s.to_string());
        if let Some((a, len)) = s.split_once('/') {
            let addr: IpAddr = a.trim().parse().map_err(|_| syntax())?;
            let len: u8 = len.trim().parse().map_err(|_| syntax())?;
            return Self::from_cidr(addr, len).ok_or_else(|| TsError::PrefixLen(s.to_string()));
        }
        if let Some((a, b)) = s.split_once('-') {
            let a: IpAddr = a.trim().parse().map_err(|_| syntax())?;
            let b: IpAddr = b.trim().parse().map_err(|_| syntax())?;
            return Self::from_range(a, b).ok_or_else(|| TsError::Range(s.to_string()));
        }
        let addr: IpAddr = s.parse().map_err(|_| syntax())?;
        Ok(Self::from_cidr(addr, if addr.is_ipv4() { 32 } else { 128 }).unwrap_or(Self::ANY_V4))
    }

    /// Whether this is an IPv4 selector.
    pub fn is_ipv4(&self) -> bool {
        self.start.is_ipv4()
    }

    /// Whether this selector covers all addresses, protocols and ports of its family.
    pub fn is_any(&self) -> bool {
        *self == Self::ANY_V4 || *self == Self::ANY_V6
    }

    /// Whether the selector is internally consistent (same family, ordered ranges).
    pub fn is_valid(&self) -> bool {
        self.start.is_ipv4() == self.end.is_ipv4()
            && to_u128(self.start) <= to_u128(self.end)
            && self.start_port <= self.end_port
    }

    /// The intersection of two selectors, if not empty.
    pub fn intersect(&self, other: &Self) -> Option<Self> {
        if self.is_ipv4() != other.is_ipv4() || !self.is_valid() || !other.is_valid() {
            return None;
        }
        let ip_proto = match (self.ip_proto, other.ip_proto) {
            (0, p) | (p, 0) => p,
            (a, b) if a == b => a,
            _ => return None,
        };
        let start_port = self.start_port.max(other.start_port);
        let end_port = self.end_port.min(other.end_port);
        let start = to_u128(self.start).max(to_u128(other.start));
        let end = to_u128(self.end).min(to_u128(other.end));
        if start_port > end_port || start > end {
            return None;
        }
        let v6 = !self.is_ipv4();
        Some(TrafficSelector {
            ip_proto,
            start_port,
            end_port,
            start: from_u128(v6, start),
            end: from_u128(v6, end),
        })
    }

    /// Whether `other` lies entirely within `self`.
    pub fn contains(&self, other: &Self) -> bool {
        self.intersect(other).as_ref() == Some(other)
    }

    /// Whether an address (any protocol/port) lies within this selector's range.
    pub fn contains_addr(&self, a: IpAddr) -> bool {
        a.is_ipv4() == self.is_ipv4()
            && to_u128(self.start) <= to_u128(a)
            && to_u128(a) <= to_u128(self.end)
    }

    /// The address range as the smallest list of CIDR blocks (address, prefix length),
    /// e.g. for installing routes.
    pub fn to_cidrs(&self) -> Vec<(IpAddr, u8)> {
        let mut out = Vec::new();
        if !self.is_valid() {
            return out;
        }
        let v6 = !self.is_ipv4();
        let bits: u32 = if v6 { 128 } else { 32 };
        let mut start = to_u128(self.start);
        let end = to_u128(self.end);
        loop {
            // Largest block aligned at `start` that does not pass `end`.
            let mut size_bits = if start == 0 {
                bits
            } else {
                start.trailing_zeros().min(bits)
            };
            while size_bits > 0 {
                let last = if size_bits == 128 {
                    u128::MAX
                } else {
                    start + ((1u128 << size_bits) - 1)
                };
                if last <= end {
                    break;
                }
                size_bits -= 1;
            }
            out.push((from_u128(v6, start), (bits - size_bits) as u8));
            let last = if size_bits == 128 {
                u128::MAX
            } else {
                start + ((1u128 << size_bits) - 1)
            };
            if last >= end {
                break;
            }
            start = last + 1;
        }
        out
    }
}

impl fmt::Display for TrafficSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cidrs = self.to_cidrs();
        match cidrs.as_slice() {
            [(a, l)] => write!(f, "{a}/{l}")?,
            _ => write!(f, "{}-{}", self.start, self.end)?,
        }
        if self.ip_proto != 0 || self.start_port != 0 || self.end_port != 65535 {
            write!(f, "[{}/", self.ip_proto)?;
            if self.start_port == self.end_port {
                write!(f, "{}]", self.start_port)?;
            } else {
                write!(f, "{}-{}]", self.start_port, self.end_port)?;
            }
        }
        Ok(())
    }
}

/// Parses a list of selector strings (configuration `local_ts` / `remote_ts`).
pub fn parse_ts_list<S: AsRef<str>>(list: &[S]) -> Result<Vec<TrafficSelector>, TsError> {
    list.iter()
        .map(|s| TrafficSelector::parse(s.as_ref()))
        .collect()
}

/// Narrowing (RFC 7296 §2.9): all non-empty pairwise intersections of `offered` with
/// `configured`, without duplicates or selectors contained in another one, in the
/// order of `offered`. Empty means TS_UNACCEPTABLE.
pub fn narrow(offered: &[TrafficSelector], configured: &[TrafficSelector]) -> Vec<TrafficSelector> {
    let mut out: Vec<TrafficSelector> = Vec::new();
    for o in offered {
        for c in configured {
            if let Some(x) = o.intersect(c) {
                if out.iter().any(|y| y.contains(&x)) {
                    continue;
                }
                out.retain(|y| !x.contains(y));
                out.push(x);
            }
        }
    }
    out
}

/// Whether every selector in `answer` lies within some selector of `offered` (what an
/// initiator checks on the responder's narrowed TSi/TSr).
pub fn is_subset(answer: &[TrafficSelector], offered: &[TrafficSelector]) -> bool {
    answer.iter().all(|a| offered.iter().any(|o| o.contains(a)))
}

// ===== conversion to/from the wire TS payload =====

use crate::wire;

impl TrafficSelector {
    /// The wire form.
    pub fn to_wire(&self) -> wire::TrafficSelector {
        let range = match (self.start, self.end) {
            (IpAddr::V4(s), IpAddr::V4(e)) => wire::AddrRange::V4(s, e),
            (IpAddr::V6(s), IpAddr::V6(e)) => wire::AddrRange::V6(s, e),
            // Mixed families cannot be built through the public constructors; send
            // an empty IPv4 range that matches nothing.
            _ => wire::AddrRange::V4(Ipv4Addr::BROADCAST, Ipv4Addr::UNSPECIFIED),
        };
        wire::TrafficSelector {
            ip_protocol: self.ip_proto,
            start_port: self.start_port,
            end_port: self.end_port,
            range,
        }
    }

    /// From the wire form.
    pub fn from_wire(t: &wire::TrafficSelector) -> TrafficSelector {
        TrafficSelector {
            ip_proto: t.ip_protocol,
            start_port: t.start_port,
            end_port: t.end_port,
            start: t.range.start(),
            end: t.range.end(),
        }
    }
}

/// Converts a list to the wire form.
pub fn to_wire_list(list: &[TrafficSelector]) -> Vec<wire::TrafficSelector> {
    list.iter().map(TrafficSelector::to_wire).collect()
}

/// Converts a received list, dropping invalid selectors (start after end).
pub fn from_wire_list(list: &[wire::TrafficSelector]) -> Vec<TrafficSelector> {
    list.iter()
        .map(TrafficSelector::from_wire)
        .filter(TrafficSelector::is_valid)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> TrafficSelector {
        TrafficSelector::parse(s).unwrap()
    }

    #[test]
    fn cidr_and_ranges() {
        let t = ts("10.1.2.3/16");
        assert_eq!(t.start, "10.1.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(t.end, "10.1.255.255".parse::<IpAddr>().unwrap());
        assert_eq!(t.to_string(), "10.1.0.0/16");
        assert_eq!(ts("0.0.0.0/0"), TrafficSelector::ANY_V4);
        assert_eq!(ts("::/0"), TrafficSelector::ANY_V6);
        assert!(ts("0.0.0.0/0").is_any());
        assert_eq!(
            ts("192.0.2.1").to_cidrs(),
            vec![("192.0.2.1".parse().unwrap(), 32)]
        );
        let r = ts("10.0.0.1-10.0.0.6");
        assert_eq!(
            r.to_cidrs(),
            vec![
                ("10.0.0.1".parse().unwrap(), 32),
                ("10.0.0.2".parse().unwrap(), 31),
                ("10.0.0.4".parse().unwrap(), 31),
                ("10.0.0.6".parse().unwrap(), 32),
            ]
        );
        assert_eq!(ts("2001:db8::/32").to_string(), "2001:db8::/32");
        assert!(TrafficSelector::parse("10.0.0.0/33").is_err());
        assert!(TrafficSelector::parse("10.0.0.9-10.0.0.1").is_err());
        assert!(TrafficSelector::parse("10.0.0.1-::1").is_err());
        assert!(TrafficSelector::parse("bogus").is_err());
    }

    #[test]
    fn narrowing() {
        let offered = vec![ts("0.0.0.0/0")];
        let conf = vec![ts("10.2.0.0/16"), ts("10.3.0.0/16")];
        assert_eq!(narrow(&offered, &conf), conf);
        let offered = vec![ts("10.2.5.0/24"), ts("10.9.0.0/16")];
        assert_eq!(narrow(&offered, &conf), vec![ts("10.2.5.0/24")]);
        assert!(narrow(&[ts("192.168.0.0/16")], &conf).is_empty());
        assert!(narrow(&[ts("::/0")], &conf).is_empty());
        assert!(is_subset(&[ts("10.2.5.0/24")], &[ts("10.2.0.0/16")]));
        assert!(!is_subset(&[ts("10.2.0.0/15")], &[ts("10.2.0.0/16")]));
        let mut tcp = ts("10.2.0.0/16");
        tcp.ip_proto = 6;
        tcp.start_port = 80;
        tcp.end_port = 80;
        assert_eq!(narrow(&[tcp], &[ts("0.0.0.0/0")]), vec![tcp]);
        assert_eq!(tcp.to_string(), "10.2.0.0/16[6/80]");
    }
}
