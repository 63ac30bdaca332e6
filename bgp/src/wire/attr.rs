//! Path attributes (RFC 4271 §5, RFC 1997, RFC 8092, RFC 6793) and their value codecs.

use std::net::Ipv4Addr;

use super::{Reader, AS_TRANS};

/// Attribute flag: optional.
pub const FLAG_OPTIONAL: u8 = 0x80;
/// Attribute flag: transitive.
pub const FLAG_TRANSITIVE: u8 = 0x40;
/// Attribute flag: partial.
pub const FLAG_PARTIAL: u8 = 0x20;
/// Attribute flag: extended (2-byte) length.
pub const FLAG_EXTENDED: u8 = 0x10;

/// ORIGIN.
pub const ATTR_ORIGIN: u8 = 1;
/// AS_PATH.
pub const ATTR_AS_PATH: u8 = 2;
/// NEXT_HOP.
pub const ATTR_NEXT_HOP: u8 = 3;
/// MULTI_EXIT_DISC.
pub const ATTR_MED: u8 = 4;
/// LOCAL_PREF.
pub const ATTR_LOCAL_PREF: u8 = 5;
/// ATOMIC_AGGREGATE.
pub const ATTR_ATOMIC_AGGREGATE: u8 = 6;
/// AGGREGATOR.
pub const ATTR_AGGREGATOR: u8 = 7;
/// COMMUNITIES (RFC 1997).
pub const ATTR_COMMUNITIES: u8 = 8;
/// MP_REACH_NLRI (RFC 4760).
pub const ATTR_MP_REACH: u8 = 14;
/// MP_UNREACH_NLRI (RFC 4760).
pub const ATTR_MP_UNREACH: u8 = 15;
/// AS4_PATH (RFC 6793).
pub const ATTR_AS4_PATH: u8 = 17;
/// AS4_AGGREGATOR (RFC 6793).
pub const ATTR_AS4_AGGREGATOR: u8 = 18;
/// LARGE_COMMUNITY (RFC 8092).
pub const ATTR_LARGE_COMMUNITIES: u8 = 32;

/// ORIGIN values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// 0
    Igp,
    /// 1
    Egp,
    /// 2
    Incomplete,
}

impl Origin {
    pub(crate) fn from_u8(v: u8) -> Option<Origin> {
        match v {
            0 => Some(Origin::Igp),
            1 => Some(Origin::Egp),
            2 => Some(Origin::Incomplete),
            _ => None,
        }
    }
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            Origin::Igp => 0,
            Origin::Egp => 1,
            Origin::Incomplete => 2,
        }
    }
}

/// One AS_PATH segment.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AsSegment {
    /// AS_SET (type 1).
    Set(Vec<u32>),
    /// AS_SEQUENCE (type 2).
    Sequence(Vec<u32>),
    /// AS_CONFED_SEQUENCE (type 3, RFC 5065).
    ConfedSequence(Vec<u32>),
    /// AS_CONFED_SET (type 4, RFC 5065).
    ConfedSet(Vec<u32>),
}

impl AsSegment {
    fn type_code(&self) -> u8 {
        match self {
            AsSegment::Set(_) => 1,
            AsSegment::Sequence(_) => 2,
            AsSegment::ConfedSequence(_) => 3,
            AsSegment::ConfedSet(_) => 4,
        }
    }

    /// The AS numbers of the segment.
    pub fn asns(&self) -> &[u32] {
        match self {
            AsSegment::Set(v)
            | AsSegment::Sequence(v)
            | AsSegment::ConfedSequence(v)
            | AsSegment::ConfedSet(v) => v,
        }
    }

    fn with(code: u8, v: Vec<u32>) -> Option<AsSegment> {
        match code {
            1 => Some(AsSegment::Set(v)),
            2 => Some(AsSegment::Sequence(v)),
            3 => Some(AsSegment::ConfedSequence(v)),
            4 => Some(AsSegment::ConfedSet(v)),
            _ => None,
        }
    }
}

/// An AS_PATH: segments in order, AS numbers always held as 4 bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AsPath {
    /// The segments. Parsed paths never hold empty segments or more than 255 AS numbers
    /// per segment; emit splits longer ones.
    pub segments: Vec<AsSegment>,
}

impl AsPath {
    /// A path made of one AS_SEQUENCE (empty path when `asns` is empty).
    pub fn sequence(asns: Vec<u32>) -> AsPath {
        if asns.is_empty() {
            AsPath::default()
        } else {
            AsPath {
                segments: vec![AsSegment::Sequence(asns)],
            }
        }
    }

    /// Path length for the decision process (RFC 4271 §9.1.2.2 a): each AS in a sequence
    /// counts 1, each AS_SET counts 1, confederation segments count 0.
    pub fn path_len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s {
                AsSegment::Sequence(v) => v.len(),
                AsSegment::Set(_) => 1,
                _ => 0,
            })
            .sum()
    }

    /// True when `asn` appears anywhere in the path (loop detection).
    pub fn contains(&self, asn: u32) -> bool {
        self.segments.iter().any(|s| s.asns().contains(&asn))
    }

    /// The first AS of a leading AS_SEQUENCE (the neighbor AS for MED comparison).
    pub fn first_as(&self) -> Option<u32> {
        match self.segments.first() {
            Some(AsSegment::Sequence(v)) => v.first().copied(),
            _ => None,
        }
    }

    /// Returns a copy with `asn` prepended `count` times.
    pub fn prepended(&self, asn: u32, count: usize) -> AsPath {
        let mut segments = self.segments.clone();
        if count == 0 {
            return AsPath { segments };
        }
        match segments.first_mut() {
            Some(AsSegment::Sequence(v)) if v.len() + count <= 255 => {
                v.splice(0..0, std::iter::repeat_n(asn, count));
            }
            _ => segments.insert(0, AsSegment::Sequence(vec![asn; count])),
        }
        AsPath { segments }
    }

    fn any_wide(&self) -> bool {
        self.segments
            .iter()
            .any(|s| s.asns().iter().any(|&a| a > 0xffff))
    }

    /// Decodes an AS_PATH value with 2- or 4-byte AS numbers. `None` when malformed
    /// (unknown segment type, empty segment, overrun).
    pub(crate) fn parse(value: &[u8], four: bool) -> Option<AsPath> {
        let mut r = Reader::new(value);
        let mut segments = Vec::new();
        while !r.is_empty() {
            let t = r.u8()?;
            let n = r.u8()?;
            if n == 0 {
                return None;
            }
            let mut v = Vec::with_capacity(usize::from(n));
            for _ in 0..n {
                v.push(if four { r.u32()? } else { u32::from(r.u16()?) });
            }
            segments.push(AsSegment::with(t, v)?);
        }
        Some(AsPath { segments })
    }

    /// Encodes the value with 2- or 4-byte AS numbers (4-byte ones become AS_TRANS in the
    /// 2-byte form). Segments over 255 AS numbers are split.
    pub(crate) fn emit(&self, four: bool, out: &mut Vec<u8>) {
        for s in &self.segments {
            for chunk in s.asns().chunks(255) {
                out.push(s.type_code());
                out.push(chunk.len() as u8);
                for &a in chunk {
                    if four {
                        out.extend_from_slice(&a.to_be_bytes());
                    } else {
                        let a2 = u16::try_from(a).unwrap_or(AS_TRANS);
                        out.extend_from_slice(&a2.to_be_bytes());
                    }
                }
            }
        }
    }

    /// RFC 6793 §4.2.3: rebuilds the path from a 2-byte AS_PATH and an AS4_PATH.
    pub(crate) fn merge_as4(&self, as4: &AsPath) -> AsPath {
        let n = self.path_len();
        let n4 = as4.path_len();
        if n < n4 {
            return self.clone();
        }
        let mut keep = n - n4;
        let mut segments = Vec::new();
        for s in &self.segments {
            if keep == 0 {
                break;
            }
            match s {
                AsSegment::Sequence(v) => {
                    let k = keep.min(v.len());
                    segments.push(AsSegment::Sequence(v[..k].to_vec()));
                    keep -= k;
                }
                AsSegment::Set(_) => {
                    segments.push(s.clone());
                    keep -= 1;
                }
                _ => segments.push(s.clone()),
            }
        }
        segments.extend(as4.segments.iter().cloned());
        AsPath { segments }
    }
}

/// An attribute kept verbatim: unknown optional transitive attributes, propagated with the
/// Partial bit set (RFC 4271 §5).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RawAttribute {
    /// Flags (optional, transitive, partial; the extended-length bit is chosen on emit).
    pub flags: u8,
    /// Type code.
    pub type_code: u8,
    /// Value.
    pub value: Vec<u8>,
}

/// The non-multiprotocol path attributes of an UPDATE (MP_REACH/MP_UNREACH live in
/// [`super::UpdateRepr`]). Empty `communities`/`large_communities` mean "absent".
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PathAttributes {
    /// ORIGIN.
    pub origin: Option<Origin>,
    /// AS_PATH (merged with AS4_PATH on 2-byte sessions).
    pub as_path: Option<AsPath>,
    /// NEXT_HOP (IPv4 NLRI only).
    pub next_hop: Option<Ipv4Addr>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF.
    pub local_pref: Option<u32>,
    /// ATOMIC_AGGREGATE present.
    pub atomic_aggregate: bool,
    /// AGGREGATOR (AS, address), merged with AS4_AGGREGATOR on 2-byte sessions.
    pub aggregator: Option<(u32, Ipv4Addr)>,
    /// COMMUNITIES.
    pub communities: Vec<u32>,
    /// LARGE_COMMUNITY triples.
    pub large_communities: Vec<[u32; 3]>,
    /// Unknown optional transitive attributes (Partial bit set).
    pub unknown: Vec<RawAttribute>,
}

pub(crate) fn push_attr(out: &mut Vec<u8>, flags: u8, code: u8, value: &[u8]) {
    if value.len() > 255 {
        out.push((flags & !FLAG_EXTENDED) | FLAG_EXTENDED);
        out.push(code);
        out.extend_from_slice(&(value.len().min(0xffff) as u16).to_be_bytes());
        out.extend_from_slice(&value[..value.len().min(0xffff)]);
    } else {
        out.push(flags & !FLAG_EXTENDED);
        out.push(code);
        out.push(value.len() as u8);
        out.extend_from_slice(value);
    }
}

impl PathAttributes {
    /// Emits the attributes with type codes below 14 (before MP_REACH/MP_UNREACH).
    pub(crate) fn emit_low(&self, four: bool, out: &mut Vec<u8>) {
        const WK: u8 = FLAG_TRANSITIVE;
        const OT: u8 = FLAG_OPTIONAL | FLAG_TRANSITIVE;
        if let Some(o) = self.origin {
            push_attr(out, WK, ATTR_ORIGIN, &[o.to_u8()]);
        }
        if let Some(p) = &self.as_path {
            let mut v = Vec::new();
            p.emit(four, &mut v);
            push_attr(out, WK, ATTR_AS_PATH, &v);
        }
        if let Some(nh) = self.next_hop {
            push_attr(out, WK, ATTR_NEXT_HOP, &nh.octets());
        }
        if let Some(m) = self.med {
            push_attr(out, FLAG_OPTIONAL, ATTR_MED, &m.to_be_bytes());
        }
        if let Some(l) = self.local_pref {
            push_attr(out, WK, ATTR_LOCAL_PREF, &l.to_be_bytes());
        }
        if self.atomic_aggregate {
            push_attr(out, WK, ATTR_ATOMIC_AGGREGATE, &[]);
        }
        if let Some((asn, ip)) = self.aggregator {
            let mut v = Vec::new();
            if four {
                v.extend_from_slice(&asn.to_be_bytes());
            } else {
                v.extend_from_slice(&u16::try_from(asn).unwrap_or(AS_TRANS).to_be_bytes());
            }
            v.extend_from_slice(&ip.octets());
            push_attr(out, OT, ATTR_AGGREGATOR, &v);
        }
        if !self.communities.is_empty() {
            let v: Vec<u8> = self
                .communities
                .iter()
                .flat_map(|c| c.to_be_bytes())
                .collect();
            push_attr(out, OT, ATTR_COMMUNITIES, &v);
        }
    }

    /// Emits the attributes with type codes above 15 (after MP_REACH/MP_UNREACH).
    pub(crate) fn emit_high(&self, four: bool, out: &mut Vec<u8>) {
        const OT: u8 = FLAG_OPTIONAL | FLAG_TRANSITIVE;
        if !four {
            if let Some(p) = self.as_path.as_ref().filter(|p| p.any_wide()) {
                let mut v = Vec::new();
                p.emit(true, &mut v);
                push_attr(out, OT, ATTR_AS4_PATH, &v);
            }
            if let Some((asn, ip)) = self.aggregator.filter(|(a, _)| *a > 0xffff) {
                let mut v = asn.to_be_bytes().to_vec();
                v.extend_from_slice(&ip.octets());
                push_attr(out, OT, ATTR_AS4_AGGREGATOR, &v);
            }
        }
        if !self.large_communities.is_empty() {
            let v: Vec<u8> = self
                .large_communities
                .iter()
                .flat_map(|c| c.iter().flat_map(|x| x.to_be_bytes()))
                .collect();
            push_attr(out, OT, ATTR_LARGE_COMMUNITIES, &v);
        }
        for u in &self.unknown {
            push_attr(
                out,
                u.flags | FLAG_OPTIONAL | FLAG_TRANSITIVE | FLAG_PARTIAL,
                u.type_code,
                &u.value,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_path_forms() {
        let p = AsPath {
            segments: vec![
                AsSegment::Sequence(vec![65010, 4_200_000_000]),
                AsSegment::Set(vec![1, 2]),
            ],
        };
        assert_eq!(p.path_len(), 3);
        assert!(p.contains(1));
        assert_eq!(p.first_as(), Some(65010));
        let mut v4 = Vec::new();
        p.emit(true, &mut v4);
        assert_eq!(AsPath::parse(&v4, true), Some(p.clone()));
        let mut v2 = Vec::new();
        p.emit(false, &mut v2);
        assert_eq!(v2, [2, 2, 0xfd, 0xf2, 0x5b, 0xa0, 1, 2, 0, 1, 0, 2]);
        let two = AsPath::parse(&v2, false).unwrap();
        assert_eq!(two.merge_as4(&p), p);
        // AS4_PATH longer than AS_PATH is ignored
        let short = AsPath::sequence(vec![1]);
        assert_eq!(short.merge_as4(&p), short);
        assert_eq!(AsPath::parse(&[2, 0], true), None);
        assert_eq!(AsPath::parse(&[9, 1, 0, 0, 0, 1], true), None);
        assert_eq!(AsPath::parse(&[2, 2, 0, 0, 0, 1], true), None);
    }

    #[test]
    fn prepend() {
        let p = AsPath::sequence(vec![65515]);
        assert_eq!(
            p.prepended(65010, 2),
            AsPath::sequence(vec![65010, 65010, 65515])
        );
        assert_eq!(AsPath::default().prepended(7, 1), AsPath::sequence(vec![7]));
    }
}
