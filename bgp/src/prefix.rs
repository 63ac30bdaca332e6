//! IP prefixes, their NLRI encoding (RFC 4271 §4.3) and prefix lists with `ge`/`le`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 or IPv6 prefix with all host bits cleared.
///
/// Ordering is IPv4 before IPv6, then by address, then by length.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

#[allow(clippy::len_without_is_empty)]
impl Prefix {
    /// A prefix of `len` bits at `addr`; host bits are cleared. `None` when `len` is longer
    /// than the address.
    pub fn new(addr: IpAddr, len: u8) -> Option<Prefix> {
        let max = max_len(&addr);
        if len > max {
            return None;
        }
        let addr = match addr {
            IpAddr::V4(a) => {
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        Some(Prefix { addr, len })
    }

    /// Rebuilds a prefix from a compact map key made of a valid prefix (host bits already
    /// clear, length in range). Crate-internal: no checks.
    pub(crate) fn from_key(addr: IpAddr, len: u8) -> Prefix {
        Prefix { addr, len }
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn len(&self) -> u8 {
        self.len
    }

    /// True for the zero-length (default route) prefix.
    pub fn is_default(&self) -> bool {
        self.len == 0
    }

    /// True for an IPv4 prefix.
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// The address family of this prefix.
    pub fn afi(&self) -> Afi {
        if self.is_ipv4() {
            Afi::Ipv4
        } else {
            Afi::Ipv6
        }
    }

    /// True when `other` lies within this prefix (same family, at least as long).
    pub fn contains(&self, other: &Prefix) -> bool {
        if self.addr.is_ipv4() != other.addr.is_ipv4() || other.len < self.len {
            return false;
        }
        Prefix::new(other.addr, self.len) == Some(*self)
    }

    /// Length of this prefix in NLRI encoding (length byte plus address bytes).
    pub fn nlri_len(&self) -> usize {
        1 + usize::from(self.len).div_ceil(8)
    }

    /// Appends the NLRI encoding (RFC 4271 §4.3) to `out`.
    pub fn emit_nlri(&self, out: &mut Vec<u8>) {
        out.push(self.len);
        let n = usize::from(self.len).div_ceil(8);
        match self.addr {
            IpAddr::V4(a) => out.extend_from_slice(&a.octets()[..n]),
            IpAddr::V6(a) => out.extend_from_slice(&a.octets()[..n]),
        }
    }

    /// Parses one NLRI-encoded prefix of family `afi` from the front of `buf`, returning it
    /// and the bytes consumed. `None` when the length is invalid or the bytes run out.
    /// Host bits set on the wire are cleared.
    pub fn parse_nlri(afi: Afi, buf: &[u8]) -> Option<(Prefix, usize)> {
        let (&len, rest) = buf.split_first()?;
        let n = usize::from(len).div_ceil(8);
        let bytes = rest.get(..n)?;
        let addr = match afi {
            Afi::Ipv4 => {
                if len > 32 {
                    return None;
                }
                let mut o = [0u8; 4];
                o[..n].copy_from_slice(bytes);
                IpAddr::V4(Ipv4Addr::from(o))
            }
            Afi::Ipv6 => {
                if len > 128 {
                    return None;
                }
                let mut o = [0u8; 16];
                o[..n].copy_from_slice(bytes);
                IpAddr::V6(Ipv6Addr::from(o))
            }
        };
        Some((Prefix::new(addr, len)?, 1 + n))
    }

    /// Parses a whole NLRI field of family `afi`. `None` when any prefix is malformed.
    pub fn parse_nlri_list(afi: Afi, mut buf: &[u8]) -> Option<Vec<Prefix>> {
        let mut v = Vec::new();
        while !buf.is_empty() {
            let (p, n) = Prefix::parse_nlri(afi, buf)?;
            v.push(p);
            buf = buf.get(n..)?;
        }
        Some(v)
    }
}

fn max_len(addr: &IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Error from parsing a prefix or a prefix-list entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid prefix {input:?}: {reason}")]
pub struct PrefixParseError {
    /// The text that failed to parse.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

fn perr(input: &str, reason: &'static str) -> PrefixParseError {
    PrefixParseError {
        input: input.to_string(),
        reason,
    }
}

impl FromStr for Prefix {
    type Err = PrefixParseError;

    /// Parses `ADDR/LEN`. Host bits must be clear (`10.0.0.1/8` is rejected, as a typo guard).
    fn from_str(s: &str) -> Result<Prefix, PrefixParseError> {
        let s = s.trim();
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| perr(s, "expected ADDR/LEN"))?;
        let addr: IpAddr = a.parse().map_err(|_| perr(s, "bad address"))?;
        let len: u8 = l.parse().map_err(|_| perr(s, "bad length"))?;
        let p = Prefix::new(addr, len).ok_or_else(|| perr(s, "length too long"))?;
        if p.addr != addr {
            return Err(perr(s, "host bits set"));
        }
        Ok(p)
    }
}

/// Address family identifier (RFC 4760), restricted to the two this speaker supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Afi {
    /// AFI 1.
    Ipv4,
    /// AFI 2.
    Ipv6,
}

impl Afi {
    /// The IANA AFI number.
    pub fn code(self) -> u16 {
        match self {
            Afi::Ipv4 => 1,
            Afi::Ipv6 => 2,
        }
    }

    /// The family for an IANA AFI number, if supported.
    pub fn from_code(c: u16) -> Option<Afi> {
        match c {
            1 => Some(Afi::Ipv4),
            2 => Some(Afi::Ipv6),
            _ => None,
        }
    }
}

/// One prefix-list entry: `PREFIX [ge N] [le M]`.
///
/// Without `ge`/`le` it matches exactly the prefix. `ge N` matches lengths ≥ N (up to the
/// address length unless `le` is given); `le M` matches lengths from the prefix length up to M.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrefixListEntry {
    /// The covering prefix.
    pub prefix: Prefix,
    /// Shortest matching length.
    pub ge: u8,
    /// Longest matching length.
    pub le: u8,
}

impl PrefixListEntry {
    /// True when `p` is inside `prefix` and its length is within `ge..=le`.
    pub fn matches(&self, p: &Prefix) -> bool {
        self.prefix.contains(p) && p.len() >= self.ge && p.len() <= self.le
    }
}

impl fmt::Display for PrefixListEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.prefix)?;
        let max = max_len(&self.prefix.addr());
        if self.ge != self.prefix.len() {
            write!(f, " ge {}", self.ge)?;
        }
        if self.le != self.prefix.len() && !(self.ge != self.prefix.len() && self.le == max) {
            write!(f, " le {}", self.le)?;
        }
        Ok(())
    }
}

/// Parses a prefix-list entry such as `"10.2.0.0/16 le 24"`, `"0.0.0.0/0 ge 8 le 24"` or
/// `"2001:db8::/32"`. This is the public function the config crate uses.
///
/// Rules (as in Cisco/FRR prefix lists): `len ≤ ge ≤ le ≤ max`; `ge` alone means up to the
/// address length.
pub fn parse_prefix_filter(s: &str) -> Result<PrefixListEntry, PrefixParseError> {
    let mut words = s.split_whitespace();
    let prefix: Prefix = words.next().ok_or_else(|| perr(s, "empty"))?.parse()?;
    let max = max_len(&prefix.addr());
    let mut ge = None;
    let mut le = None;
    while let Some(w) = words.next() {
        let v: u8 = words
            .next()
            .ok_or_else(|| perr(s, "missing number after ge/le"))?
            .parse()
            .map_err(|_| perr(s, "bad number after ge/le"))?;
        match w {
            "ge" if ge.is_none() => ge = Some(v),
            "le" if le.is_none() => le = Some(v),
            _ => return Err(perr(s, "expected `ge N` or `le N`")),
        }
    }
    let (ge, le) = match (ge, le) {
        (None, None) => (prefix.len(), prefix.len()),
        (Some(g), None) => (g, max),
        (None, Some(l)) => (prefix.len(), l),
        (Some(g), Some(l)) => (g, l),
    };
    if ge < prefix.len() || le < ge || le > max {
        return Err(perr(s, "need prefix-len <= ge <= le <= address length"));
    }
    Ok(PrefixListEntry { prefix, ge, le })
}

/// An ordered list of prefix filters. Empty means "match everything" (the import default).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrefixList {
    /// The entries; a prefix matches the list when it matches any entry.
    pub entries: Vec<PrefixListEntry>,
}

impl PrefixList {
    /// Parses each string with [`parse_prefix_filter`].
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<PrefixList, PrefixParseError> {
        let entries = items
            .iter()
            .map(|s| parse_prefix_filter(s.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(PrefixList { entries })
    }

    /// True when the list is empty or some entry matches.
    pub fn permits(&self, p: &Prefix) -> bool {
        self.entries.is_empty() || self.entries.iter().any(|e| e.matches(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        let p: Prefix = "10.2.0.0/16".parse().unwrap();
        assert_eq!(p.to_string(), "10.2.0.0/16");
        assert!("10.2.0.1/16".parse::<Prefix>().is_err());
        assert!("10.2.0.0/33".parse::<Prefix>().is_err());
        let q: Prefix = "2001:db8::/32".parse().unwrap();
        assert_eq!(q.len(), 32);
        assert!(!q.is_ipv4());
    }

    #[test]
    fn nlri_round_trip_and_errors() {
        let p: Prefix = "10.2.128.0/17".parse().unwrap();
        let mut b = Vec::new();
        p.emit_nlri(&mut b);
        assert_eq!(b, [17, 10, 2, 128]);
        assert_eq!(Prefix::parse_nlri(Afi::Ipv4, &b), Some((p, 4)));
        assert_eq!(Prefix::parse_nlri(Afi::Ipv4, &[33, 1, 2, 3, 4, 5]), None);
        assert_eq!(Prefix::parse_nlri(Afi::Ipv4, &[24, 1, 2]), None);
        // host bits on the wire are cleared
        let (h, _) = Prefix::parse_nlri(Afi::Ipv4, &[8, 10]).unwrap();
        assert_eq!(h.to_string(), "10.0.0.0/8");
        let (m, _) = Prefix::parse_nlri(Afi::Ipv4, &[7, 0xff]).unwrap();
        assert_eq!(m.to_string(), "254.0.0.0/7");
    }

    #[test]
    fn prefix_filter_syntax() {
        let e = parse_prefix_filter("10.2.0.0/16 le 24").unwrap();
        assert!(e.matches(&"10.2.0.0/16".parse().unwrap()));
        assert!(e.matches(&"10.2.3.0/24".parse().unwrap()));
        assert!(!e.matches(&"10.2.3.128/25".parse().unwrap()));
        assert!(!e.matches(&"10.3.0.0/24".parse().unwrap()));
        assert_eq!(e.to_string(), "10.2.0.0/16 le 24");
        let g = parse_prefix_filter("0.0.0.0/0 ge 8").unwrap();
        assert_eq!((g.ge, g.le), (8, 32));
        assert!(!g.matches(&"0.0.0.0/0".parse().unwrap()));
        assert!(parse_prefix_filter("10.0.0.0/16 le 8").is_err());
        assert!(parse_prefix_filter("10.0.0.0/16 xx 20").is_err());
        assert!(parse_prefix_filter("10.0.0.0/16 le").is_err());
        let exact = parse_prefix_filter("0.0.0.0/0").unwrap();
        assert!(exact.matches(&"0.0.0.0/0".parse().unwrap()));
        assert!(!exact.matches(&"10.0.0.0/8".parse().unwrap()));
        assert!(PrefixList::default().permits(&"1.0.0.0/8".parse().unwrap()));
    }
}
