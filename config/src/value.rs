//! Parsers for the value syntaxes used in the config: durations, sizes, prefixes,
//! prefix filters, IKE identities and names. Every parser returns a message (without
//! position) on error and never panics.

use core::fmt;
use core::str::FromStr;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;

/// Parses a duration: a decimal number followed by a unit, `s`, `m`, `h` or `d`
/// (`"30s"`, `"90m"`, `"8h"`, `"7.5h"`, `"1d"`), as in strongSwan. At most nine
/// fractional digits.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "invalid duration `{}`: expected a number and a unit s, m, h or d (e.g. \"30s\", \"7.5h\")",
            s.escape_debug()
        )
    };
    let t = s.trim();
    let unit_start = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (num, unit) = t.split_at(unit_start);
    let unit_secs: u128 = match unit.trim_start() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    let (int, frac) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if int.is_empty()
        || frac.len() > 9
        || frac.contains('.')
        || (num.contains('.') && frac.is_empty())
    {
        return Err(bad());
    }
    let int: u128 = int.parse().map_err(|_| bad())?;
    let frac_val: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().map_err(|_| bad())?
    };
    let scale = 10u128.pow(frac.len() as u32);
    let unit_ns = unit_secs * 1_000_000_000;
    let nanos = int
        .checked_mul(unit_ns)
        .and_then(|n| n.checked_add(frac_val * unit_ns / scale))
        .ok_or_else(bad)?;
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| bad())?;
    Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32))
}

/// Formats a duration the way [`parse_duration`] reads it (largest exact unit).
pub fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() != 0 {
        return format!("{}s", d.as_secs_f64());
    }
    let s = d.as_secs();
    if s != 0 && s % 86_400 == 0 {
        format!("{}d", s / 86_400)
    } else if s != 0 && s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s != 0 && s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// Parses a byte count with an optional binary unit: `"1000"`, `"512K"`, `"102400000KB"`,
/// `"100M"`, `"4GiB"`. K/KB/KiB = 1024, M = 1024², G = 1024³, T = 1024⁴.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || {
        format!(
            "invalid size `{}`: expected bytes, optionally with a unit K, M, G or T (e.g. \"102400000KB\")",
            s.escape_debug()
        )
    };
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let mul: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        _ => return Err(bad()),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    n.checked_mul(mul).ok_or_else(bad)
}

/// Parses a network prefix `ADDR/LEN`; a bare address means a host prefix (/32, /128).
/// Host bits must be zero (`10.2.0.1/16` is refused, with the network as a hint).
pub fn parse_prefix(s: &str) -> Result<IpNet, String> {
    let t = s.trim();
    let net = match IpNet::from_str(t) {
        Ok(n) => n,
        Err(_) => match IpAddr::from_str(t) {
            Ok(a) => IpNet::from(a),
            Err(_) => {
                return Err(format!(
                    "invalid prefix `{}`: expected ADDRESS/LENGTH (e.g. \"10.2.0.0/16\")",
                    s.escape_debug()
                ))
            }
        },
    };
    if net.trunc() != net {
        return Err(format!(
            "prefix `{t}` has host bits set; did you mean `{}`?",
            net.trunc()
        ));
    }
    Ok(net)
}

/// Parses an IP address (v4 or v6).
pub fn parse_ip(s: &str) -> Result<IpAddr, String> {
    IpAddr::from_str(s.trim()).map_err(|_| format!("invalid IP address `{}`", s.escape_debug()))
}

/// A route filter entry: a prefix and the range of prefix lengths it accepts, as in
/// Cisco/FRR prefix lists: `"10.2.0.0/16"` (exactly /16), `"10.2.0.0/16 le 24"`
/// (/16 to /24 inside 10.2.0.0/16), `"10.0.0.0/8 ge 16 le 24"`, `"0.0.0.0/0 le 32"` (any).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PrefixFilter {
    /// The covering prefix.
    pub prefix: IpNet,
    /// Minimum accepted prefix length (`ge`), if given.
    pub ge: Option<u8>,
    /// Maximum accepted prefix length (`le`), if given.
    pub le: Option<u8>,
}

impl PrefixFilter {
    /// The accepted prefix lengths: `prefix_len..=prefix_len` without ge/le,
    /// `ge..=max` with only `ge`, `prefix_len..=le` with only `le`, `ge..=le` with both.
    pub fn len_range(&self) -> core::ops::RangeInclusive<u8> {
        let len = self.prefix.prefix_len();
        match (self.ge, self.le) {
            (None, None) => len..=len,
            (Some(ge), None) => ge..=self.prefix.max_prefix_len(),
            (None, Some(le)) => len..=le,
            (Some(ge), Some(le)) => ge..=le,
        }
    }

    /// Whether `net` lies inside the prefix with an accepted length.
    pub fn matches(&self, net: &IpNet) -> bool {
        self.prefix.contains(net) && self.len_range().contains(&net.prefix_len())
    }
}

impl FromStr for PrefixFilter {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut words = s.split_whitespace();
        let prefix = parse_prefix(words.next().unwrap_or(""))?;
        let max = prefix.max_prefix_len();
        let len = prefix.prefix_len();
        let (mut ge, mut le) = (None, None);
        while let Some(w) = words.next() {
            let slot = match w.to_ascii_lowercase().as_str() {
                "ge" => &mut ge,
                "le" => &mut le,
                _ => {
                    return Err(format!(
                        "invalid prefix filter `{}`: expected `PREFIX [ge N] [le N]`, found `{}`",
                        s.escape_debug(),
                        w.escape_debug()
                    ))
                }
            };
            if slot.is_some() {
                return Err(format!(
                    "invalid prefix filter `{}`: `{w}` given twice",
                    s.escape_debug()
                ));
            }
            let n = words
                .next()
                .and_then(|n| n.parse::<u8>().ok())
                .filter(|n| *n <= max)
                .ok_or_else(|| {
                    format!(
                        "invalid prefix filter `{}`: `{w}` needs a length 0..={max}",
                        s.escape_debug()
                    )
                })?;
            *slot = Some(n);
        }
        if let Some(ge) = ge {
            if ge < len {
                return Err(format!(
                    "invalid prefix filter `{}`: ge {ge} is shorter than the prefix length /{len}",
                    s.escape_debug()
                ));
            }
        }
        if let Some(le) = le {
            if le < len || ge.is_some_and(|ge| le < ge) {
                return Err(format!(
                    "invalid prefix filter `{}`: le {le} must be at least the prefix length and ge",
                    s.escape_debug()
                ));
            }
        }
        Ok(PrefixFilter { prefix, ge, le })
    }
}

impl fmt::Display for PrefixFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.prefix)?;
        if let Some(ge) = self.ge {
            write!(f, " ge {ge}")?;
        }
        if let Some(le) = self.le {
            write!(f, " le {le}")?;
        }
        Ok(())
    }
}

/// An IKE identity (IKEv2 ID payload).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// `ID_IPV4_ADDR` / `ID_IPV6_ADDR`: written as the address.
    Addr(IpAddr),
    /// `ID_FQDN`: a domain name, optionally written with a leading `@` (strongSwan style).
    Fqdn(String),
    /// `ID_KEY_ID`: `keyid:TEXT` (the bytes of TEXT) or `keyid:#HEX`.
    KeyId(Vec<u8>),
}

impl FromStr for Identity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if let Some(rest) = t.strip_prefix("keyid:") {
            let bytes = match rest.strip_prefix('#') {
                Some(hex) => decode_hex(hex).ok_or_else(|| {
                    format!(
                        "invalid identity `{}`: `keyid:#` needs hex digits",
                        s.escape_debug()
                    )
                })?,
                None => rest.as_bytes().to_vec(),
            };
            if bytes.is_empty() || bytes.len() > 255 {
                return Err(format!(
                    "invalid identity `{}`: key ID must be 1..=255 bytes",
                    s.escape_debug()
                ));
            }
            return Ok(Identity::KeyId(bytes));
        }
        if let Ok(a) = IpAddr::from_str(t) {
            return Ok(Identity::Addr(a));
        }
        let name = t.strip_prefix('@').unwrap_or(t);
        if is_fqdn(name) {
            return Ok(Identity::Fqdn(name.to_string()));
        }
        Err(format!(
            "invalid identity `{}`: expected an IP address, a domain name or `keyid:...`",
            s.escape_debug()
        ))
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Addr(a) => write!(f, "{a}"),
            Identity::Fqdn(n) => f.write_str(n),
            Identity::KeyId(b) => match core::str::from_utf8(b) {
                Ok(s) if !s.starts_with('#') && s.chars().all(|c| !c.is_control()) => {
                    write!(f, "keyid:{s}")
                }
                _ => {
                    f.write_str("keyid:#")?;
                    b.iter().try_for_each(|x| write!(f, "{x:02x}"))
                }
            },
        }
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.is_empty() || s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A domain name: labels of letters, digits, `-` and `_` (1..=63 characters each, no
/// leading/trailing `-`), at most 253 characters, not all-numeric.
fn is_fqdn(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    let labels_ok = s.split('.').all(|l| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    });
    labels_ok && s.chars().any(|c| !c.is_ascii_digit() && c != '.')
}

/// Tunnel names: 1..=11 characters from `A-Z a-z 0-9 - _`, so that `cw-<name>` fits
/// the 15-byte Linux interface name limit.
pub fn check_tunnel_name(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 11 {
        return Err(format!(
            "tunnel name `{}` must be 1 to 11 characters (the interface is `cw-<name>`, at most 15)",
            s.escape_debug()
        ));
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "tunnel name `{}` may only contain letters, digits, `-` and `_`",
            s.escape_debug()
        ));
    }
    Ok(())
}

/// Linux interface names: 1..=15 bytes, printable ASCII, no `/`, `:` or whitespace,
/// not `.` or `..`.
pub fn check_interface_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 15
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_graphic() && c != '/' && c != ':');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid interface name `{}`: 1 to 15 printable ASCII characters without `/`, `:` or spaces",
            s.escape_debug()
        ))
    }
}

/// Environment variable names: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn check_env_name(s: &str) -> Result<(), String> {
    let mut chars = s.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid environment variable name `{}`",
            s.escape_debug()
        ))
    }
}

/// Levenshtein distance, for "did you mean" hints.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub(crate) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4) && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("8h"), Ok(Duration::from_secs(28_800)));
        assert_eq!(parse_duration("7.5h"), Ok(Duration::from_secs(27_000)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("0.5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in [
            "",
            "s",
            "7.5",
            "30",
            "30x",
            "-1s",
            "1.s",
            ".5h",
            "1.2.3h",
            "1e3s",
            "30 sec",
            "5hh",
            "99999999999999999999999999999999999999999d",
            "1.0000000001s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        for d in [30, 5400, 28_800, 27_000, 86_400, 0, 61] {
            let d = Duration::from_secs(d);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("102400000KB"), Ok(102_400_000 * 1024));
        assert_eq!(parse_size("4 GiB"), Ok(4 << 30));
        assert!(parse_size("1X").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999999T").is_err());
    }

    #[test]
    fn prefixes() {
        assert_eq!(
            parse_prefix("10.2.0.0/16").unwrap().to_string(),
            "10.2.0.0/16"
        );
        assert_eq!(parse_prefix("10.2.0.1").unwrap().to_string(), "10.2.0.1/32");
        assert_eq!(
            parse_prefix("2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert_eq!(
            parse_prefix("10.2.0.1/16").unwrap_err(),
            "prefix `10.2.0.1/16` has host bits set; did you mean `10.2.0.0/16`?"
        );
        assert!(parse_prefix("10.2.0.0/33").is_err());
        assert!(parse_prefix("10.2.0/16").is_err());
    }

    #[test]
    fn prefix_filters() {
        let f: PrefixFilter = "10.2.0.0/16 le 24".parse().unwrap();
        assert_eq!(f.len_range(), 16..=24);
        assert!(f.matches(&"10.2.3.0/24".parse().unwrap()));
        assert!(!f.matches(&"10.2.3.128/25".parse().unwrap()));
        assert!(!f.matches(&"10.3.0.0/24".parse().unwrap()));
        let f: PrefixFilter = "10.0.0.0/8 ge 16 le 24".parse().unwrap();
        assert!(!f.matches(&"10.0.0.0/8".parse().unwrap()));
        assert!(f.matches(&"10.9.0.0/16".parse().unwrap()));
        let f: PrefixFilter = "0.0.0.0/0 ge 8".parse().unwrap();
        assert_eq!(f.len_range(), 8..=32);
        let f: PrefixFilter = "10.2.0.0/16".parse().unwrap();
        assert!(f.matches(&"10.2.0.0/16".parse().unwrap()));
        assert!(!f.matches(&"10.2.0.0/17".parse().unwrap()));
        assert_eq!(f.to_string(), "10.2.0.0/16");
        assert_eq!(
            "10.0.0.0/8 GE 16 le 24"
                .parse::<PrefixFilter>()
                .unwrap()
                .to_string(),
            "10.0.0.0/8 ge 16 le 24"
        );
        for bad in [
            "",
            "10.2.0.0/16 le",
            "10.2.0.0/16 le 33",
            "10.2.0.0/16 le 8",
            "10.2.0.0/16 ge 8",
            "10.2.0.0/16 ge 24 le 20",
            "10.2.0.0/16 le 24 le 24",
            "10.2.0.0/16 lt 24",
            "10.2.0.0/16 le x",
        ] {
            assert!(bad.parse::<PrefixFilter>().is_err(), "{bad}");
        }
    }

    #[test]
    fn identities() {
        assert_eq!(
            "192.0.2.1".parse::<Identity>(),
            Ok(Identity::Addr("192.0.2.1".parse().unwrap()))
        );
        assert_eq!(
            "@vpn.example.com".parse::<Identity>(),
            Ok(Identity::Fqdn("vpn.example.com".into()))
        );
        assert_eq!(
            "keyid:site-a".parse::<Identity>(),
            Ok(Identity::KeyId(b"site-a".to_vec()))
        );
        assert_eq!(
            "keyid:#0a0B".parse::<Identity>(),
            Ok(Identity::KeyId(vec![0x0a, 0x0b]))
        );
        for bad in [
            "",
            "keyid:",
            "keyid:#0",
            "keyid:#zz",
            "1.2.3",
            "a b",
            "-x.com",
            "x..y",
        ] {
            assert!(bad.parse::<Identity>().is_err(), "{bad}");
        }
        for s in [
            "192.0.2.1",
            "vpn.example.com",
            "keyid:site-a",
            "keyid:#00ff",
        ] {
            assert_eq!(s.parse::<Identity>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn names() {
        assert!(check_tunnel_name("azure").is_ok());
        assert!(check_tunnel_name("abcdefghijk").is_ok());
        assert!(check_tunnel_name("abcdefghijkl").is_err());
        assert!(check_tunnel_name("").is_err());
        assert!(check_tunnel_name("a b").is_err());
        assert!(check_interface_name("cw-azure").is_ok());
        assert!(check_interface_name("a/b").is_err());
        assert!(check_interface_name("0123456789abcdef").is_err());
        assert!(check_env_name("AZURE_PSK").is_ok());
        assert!(check_env_name("1X").is_err());
        assert_eq!(suggest("nme", &["name", "mtu"]), Some("name"));
        assert_eq!(
            suggest("remote_as", &["remote_asn", "address"]),
            Some("remote_asn")
        );
        assert_eq!(suggest("zzzzzz", &["name", "mtu"]), None);
    }
}
