//! UPDATE message (RFC 4271 §4.3) with RFC 4760 multiprotocol attributes and RFC 7606
//! revised error handling.
//!
//! RFC 7606 outcomes: errors that require a session reset are `Err(NotifyError)`;
//! "treat-as-withdraw" and "attribute discard" parse successfully and are reported in
//! [`UpdateRepr::error`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::attr::*;
use super::{code, Ctx, EncodeError, NotifyError, Reader, AS_TRANS, SAFI_UNICAST};
use crate::prefix::{Afi, Prefix};

/// MP_REACH_NLRI for IPv4/IPv6 unicast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MpReach {
    /// Address family.
    pub afi: Afi,
    /// Next hops: one address, or for IPv6 a global and a link-local address.
    pub next_hops: Vec<IpAddr>,
    /// Reachable prefixes.
    pub nlri: Vec<Prefix>,
}

/// MP_UNREACH_NLRI for IPv4/IPv6 unicast. No prefixes = End-of-RIB for the family.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MpUnreach {
    /// Address family.
    pub afi: Afi,
    /// Withdrawn prefixes.
    pub withdrawn: Vec<Prefix>,
}

/// The RFC 7606 outcome of an UPDATE that parsed but had attribute errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttrError {
    /// Treat-as-withdraw: every prefix announced in this UPDATE must be withdrawn.
    pub treat_as_withdraw: bool,
    /// Type codes of attributes that were discarded.
    pub discarded: Vec<u8>,
    /// The first error seen (what would have been sent under RFC 4271 rules), for logs.
    pub reason: NotifyError,
}

/// An UPDATE message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpdateRepr {
    /// Withdrawn IPv4 routes.
    pub withdrawn: Vec<Prefix>,
    /// Path attributes (without the MP ones).
    pub attrs: PathAttributes,
    /// MP_REACH_NLRI.
    pub mp_reach: Option<MpReach>,
    /// MP_UNREACH_NLRI.
    pub mp_unreach: Option<MpUnreach>,
    /// IPv4 NLRI.
    pub nlri: Vec<Prefix>,
    /// RFC 7606 outcome; `None` when the message was clean. Not emitted.
    pub error: Option<AttrError>,
}

impl UpdateRepr {
    /// The End-of-RIB marker for `afi` (RFC 4724 §2).
    pub fn end_of_rib(afi: Afi) -> UpdateRepr {
        match afi {
            Afi::Ipv4 => UpdateRepr::default(),
            Afi::Ipv6 => UpdateRepr {
                mp_unreach: Some(MpUnreach {
                    afi: Afi::Ipv6,
                    withdrawn: vec![],
                }),
                ..UpdateRepr::default()
            },
        }
    }

    /// The family this UPDATE is an End-of-RIB marker for, if it is one.
    pub fn is_end_of_rib(&self) -> Option<Afi> {
        let bare = self.withdrawn.is_empty()
            && self.nlri.is_empty()
            && self.mp_reach.is_none()
            && self.attrs == PathAttributes::default()
            && self.error.is_none();
        if !bare {
            return None;
        }
        match &self.mp_unreach {
            None => Some(Afi::Ipv4),
            Some(u) if u.withdrawn.is_empty() => Some(u.afi),
            _ => None,
        }
    }

    /// All prefixes announced by this UPDATE (IPv4 NLRI and MP_REACH).
    pub fn announced(&self) -> impl Iterator<Item = &Prefix> {
        self.nlri
            .iter()
            .chain(self.mp_reach.iter().flat_map(|m| m.nlri.iter()))
    }

    /// All prefixes withdrawn by this UPDATE (withdrawn routes and MP_UNREACH).
    pub fn withdrawn_all(&self) -> impl Iterator<Item = &Prefix> {
        self.withdrawn
            .iter()
            .chain(self.mp_unreach.iter().flat_map(|m| m.withdrawn.iter()))
    }

    /// Parses the UPDATE body.
    pub fn parse(body: &[u8], ctx: &Ctx) -> Result<UpdateRepr, NotifyError> {
        let malformed = || NotifyError::new(code::UPDATE, code::UPDATE_MALFORMED_ATTR_LIST, []);
        let bad_net = || NotifyError::new(code::UPDATE, code::UPDATE_INVALID_NETWORK, []);
        let mut r = Reader::new(body);
        let wlen = r.u16().ok_or_else(malformed)?;
        let wbytes = r.bytes(usize::from(wlen)).ok_or_else(malformed)?;
        let alen = r.u16().ok_or_else(malformed)?;
        let abytes = r.bytes(usize::from(alen)).ok_or_else(malformed)?;
        let nbytes = r.rest();
        let withdrawn = Prefix::parse_nlri_list(Afi::Ipv4, wbytes).ok_or_else(bad_net)?;
        let nlri = Prefix::parse_nlri_list(Afi::Ipv4, nbytes).ok_or_else(bad_net)?;
        let mut u = UpdateRepr {
            withdrawn,
            nlri,
            ..UpdateRepr::default()
        };
        let mut st = AttrState::default();
        parse_attrs(&mut u, &mut st, abytes, ctx)?;
        // RFC 6793 §4.2.3: merge AS4 attributes on 2-byte sessions.
        if !ctx.four_octet_as {
            if let (Some(p), Some(p4)) = (&u.attrs.as_path, &st.as4_path) {
                u.attrs.as_path = Some(p.merge_as4(p4));
            }
            if let (Some((a, _)), Some(agg4)) = (u.attrs.aggregator, st.as4_aggregator) {
                if a == u32::from(AS_TRANS) {
                    u.attrs.aggregator = Some(agg4);
                }
            }
        }
        // RFC 7606 §3 d: missing well-known attributes when there is NLRI.
        let has_reach =
            !u.nlri.is_empty() || u.mp_reach.as_ref().is_some_and(|m| !m.nlri.is_empty());
        if has_reach {
            let missing = if u.attrs.origin.is_none() {
                Some(ATTR_ORIGIN)
            } else if u.attrs.as_path.is_none() {
                Some(ATTR_AS_PATH)
            } else if !u.nlri.is_empty() && u.attrs.next_hop.is_none() {
                Some(ATTR_NEXT_HOP)
            } else {
                None
            };
            if let Some(m) = missing {
                st.withdraw(NotifyError::new(
                    code::UPDATE,
                    code::UPDATE_MISSING_WELL_KNOWN,
                    [m],
                ));
            }
        }
        u.error = st.error;
        Ok(u)
    }

    /// Appends the UPDATE body to `out` (the `error` field is not encoded).
    pub fn emit(&self, out: &mut Vec<u8>, ctx: &Ctx) -> Result<(), EncodeError> {
        let mut w = Vec::new();
        for p in &self.withdrawn {
            p.emit_nlri(&mut w);
        }
        let mut a = Vec::new();
        self.attrs.emit_low(ctx.four_octet_as, &mut a);
        if let Some(m) = &self.mp_reach {
            let mut v = Vec::new();
            v.extend_from_slice(&m.afi.code().to_be_bytes());
            v.push(SAFI_UNICAST);
            let mut nh = Vec::new();
            for h in &m.next_hops {
                match h {
                    IpAddr::V4(a) => nh.extend_from_slice(&a.octets()),
                    IpAddr::V6(a) => nh.extend_from_slice(&a.octets()),
                }
            }
            v.push(u8::try_from(nh.len()).map_err(|_| EncodeError("next hop too long"))?);
            v.extend_from_slice(&nh);
            v.push(0);
            for p in &m.nlri {
                p.emit_nlri(&mut v);
            }
            push_attr(&mut a, FLAG_OPTIONAL, ATTR_MP_REACH, &v);
        }
        if let Some(m) = &self.mp_unreach {
            let mut v = Vec::new();
            v.extend_from_slice(&m.afi.code().to_be_bytes());
            v.push(SAFI_UNICAST);
            for p in &m.withdrawn {
                p.emit_nlri(&mut v);
            }
            push_attr(&mut a, FLAG_OPTIONAL, ATTR_MP_UNREACH, &v);
        }
        self.attrs.emit_high(ctx.four_octet_as, &mut a);
        let wl = u16::try_from(w.len()).map_err(|_| EncodeError("withdrawn too long"))?;
        let al = u16::try_from(a.len()).map_err(|_| EncodeError("attributes too long"))?;
        out.extend_from_slice(&wl.to_be_bytes());
        out.extend_from_slice(&w);
        out.extend_from_slice(&al.to_be_bytes());
        out.extend_from_slice(&a);
        for p in &self.nlri {
            p.emit_nlri(out);
        }
        Ok(())
    }
}

#[derive(Default)]
struct AttrState {
    seen: Vec<u8>,
    as4_path: Option<AsPath>,
    as4_aggregator: Option<(u32, Ipv4Addr)>,
    error: Option<AttrError>,
}

impl AttrState {
    fn entry(&mut self, reason: NotifyError) -> &mut AttrError {
        self.error.get_or_insert(AttrError {
            treat_as_withdraw: false,
            discarded: Vec::new(),
            reason,
        })
    }
    fn withdraw(&mut self, reason: NotifyError) {
        self.entry(reason).treat_as_withdraw = true;
    }
    fn discard(&mut self, code: u8, reason: NotifyError) {
        self.entry(reason).discarded.push(code);
    }
}

/// What to do with a malformed attribute of this type (RFC 7606 §7).
enum OnError {
    Withdraw,
    Discard,
    Reset,
}

fn attr_data(flags: u8, t: u8, value: &[u8]) -> Vec<u8> {
    let mut d = Vec::new();
    push_attr(&mut d, flags, t, value);
    d
}

fn parse_attrs(
    u: &mut UpdateRepr,
    st: &mut AttrState,
    abytes: &[u8],
    ctx: &Ctx,
) -> Result<(), NotifyError> {
    let mut r = Reader::new(abytes);
    while !r.is_empty() {
        // Header; an overrun is treat-as-withdraw (RFC 7606 §4), parsing stops.
        let (Some(flags), Some(t)) = (r.u8(), r.u8()) else {
            st.withdraw(NotifyError::new(
                code::UPDATE,
                code::UPDATE_MALFORMED_ATTR_LIST,
                [],
            ));
            break;
        };
        let len = if flags & FLAG_EXTENDED != 0 {
            r.u16().map(usize::from)
        } else {
            r.u8().map(usize::from)
        };
        let Some(value) = len.and_then(|l| r.bytes(l)) else {
            st.withdraw(NotifyError::new(
                code::UPDATE,
                code::UPDATE_ATTR_LENGTH,
                [flags, t],
            ));
            break;
        };
        let dup = st.seen.contains(&t);
        st.seen.push(t);
        if dup {
            if t == ATTR_MP_REACH || t == ATTR_MP_UNREACH {
                return Err(NotifyError::new(
                    code::UPDATE,
                    code::UPDATE_MALFORMED_ATTR_LIST,
                    [],
                ));
            }
            st.discard(
                t,
                NotifyError::new(code::UPDATE, code::UPDATE_MALFORMED_ATTR_LIST, []),
            );
            continue;
        }
        let four = ctx.four_octet_as;
        let opt_trans = flags & (FLAG_OPTIONAL | FLAG_TRANSITIVE);
        const WK: u8 = FLAG_TRANSITIVE;
        const OT: u8 = FLAG_OPTIONAL | FLAG_TRANSITIVE;
        const ON: u8 = FLAG_OPTIONAL;
        let flag_err = NotifyError::new(
            code::UPDATE,
            code::UPDATE_ATTR_FLAGS,
            attr_data(flags, t, value),
        );
        let len_err = NotifyError::new(
            code::UPDATE,
            code::UPDATE_ATTR_LENGTH,
            attr_data(flags, t, value),
        );
        let ok: Result<(), (OnError, NotifyError)> = match t {
            ATTR_ORIGIN => {
                if opt_trans != WK {
                    Err((OnError::Withdraw, flag_err))
                } else if value.len() != 1 {
                    Err((OnError::Withdraw, len_err))
                } else {
                    match Origin::from_u8(value[0]) {
                        Some(o) => {
                            u.attrs.origin = Some(o);
                            Ok(())
                        }
                        None => Err((
                            OnError::Withdraw,
                            NotifyError::new(
                                code::UPDATE,
                                code::UPDATE_INVALID_ORIGIN,
                                attr_data(flags, t, value),
                            ),
                        )),
                    }
                }
            }
            ATTR_AS_PATH => {
                if opt_trans != WK {
                    Err((OnError::Withdraw, flag_err))
                } else {
                    match AsPath::parse(value, four) {
                        Some(p) => {
                            u.attrs.as_path = Some(p);
                            Ok(())
                        }
                        None => Err((
                            OnError::Withdraw,
                            NotifyError::new(code::UPDATE, code::UPDATE_MALFORMED_AS_PATH, []),
                        )),
                    }
                }
            }
            ATTR_NEXT_HOP => {
                if opt_trans != WK {
                    Err((OnError::Withdraw, flag_err))
                } else if value.len() != 4 {
                    Err((OnError::Withdraw, len_err))
                } else {
                    let a = Ipv4Addr::new(value[0], value[1], value[2], value[3]);
                    if a.is_unspecified() || a.is_multicast() || a.is_broadcast() {
                        Err((
                            OnError::Withdraw,
                            NotifyError::new(
                                code::UPDATE,
                                code::UPDATE_INVALID_NEXT_HOP,
                                attr_data(flags, t, value),
                            ),
                        ))
                    } else {
                        u.attrs.next_hop = Some(a);
                        Ok(())
                    }
                }
            }
            ATTR_MED | ATTR_LOCAL_PREF => {
                let want = if t == ATTR_MED { ON } else { WK };
                if opt_trans != want {
                    Err((OnError::Withdraw, flag_err))
                } else if value.len() != 4 {
                    Err((OnError::Withdraw, len_err))
                } else {
                    let v = u32::from_be_bytes([value[0], value[1], value[2], value[3]]);
                    if t == ATTR_MED {
                        u.attrs.med = Some(v);
                    } else {
                        u.attrs.local_pref = Some(v);
                    }
                    Ok(())
                }
            }
            ATTR_ATOMIC_AGGREGATE => {
                if opt_trans != WK {
                    Err((OnError::Discard, flag_err))
                } else if !value.is_empty() {
                    Err((OnError::Discard, len_err))
                } else {
                    u.attrs.atomic_aggregate = true;
                    Ok(())
                }
            }
            ATTR_AGGREGATOR | ATTR_AS4_AGGREGATOR => {
                let as4 = t == ATTR_AS4_AGGREGATOR || four;
                let want = if as4 { 8 } else { 6 };
                if opt_trans != OT {
                    Err((OnError::Discard, flag_err))
                } else if value.len() != want {
                    Err((OnError::Discard, len_err))
                } else {
                    let mut vr = Reader::new(value);
                    let asn = if as4 {
                        vr.u32()
                    } else {
                        vr.u16().map(u32::from)
                    };
                    let ip = vr.u32().map(Ipv4Addr::from);
                    if let (Some(asn), Some(ip)) = (asn, ip) {
                        if t == ATTR_AGGREGATOR {
                            u.attrs.aggregator = Some((asn, ip));
                        } else if !four {
                            st.as4_aggregator = Some((asn, ip));
                        }
                    }
                    Ok(())
                }
            }
            ATTR_AS4_PATH => {
                if opt_trans != OT {
                    Err((OnError::Discard, flag_err))
                } else {
                    match AsPath::parse(value, true) {
                        Some(p) => {
                            if !four {
                                st.as4_path = Some(p);
                            }
                            Ok(())
                        }
                        None => Err((
                            OnError::Discard,
                            NotifyError::new(code::UPDATE, code::UPDATE_MALFORMED_AS_PATH, []),
                        )),
                    }
                }
            }
            ATTR_COMMUNITIES | ATTR_LARGE_COMMUNITIES => {
                let unit = if t == ATTR_COMMUNITIES { 4 } else { 12 };
                if opt_trans != OT {
                    Err((OnError::Withdraw, flag_err))
                } else if value.is_empty() || value.len() % unit != 0 {
                    Err((OnError::Withdraw, len_err))
                } else {
                    let mut vr = Reader::new(value);
                    if t == ATTR_COMMUNITIES {
                        while let Some(c) = vr.u32() {
                            u.attrs.communities.push(c);
                        }
                    } else {
                        while let (Some(a), Some(b), Some(c)) = (vr.u32(), vr.u32(), vr.u32()) {
                            u.attrs.large_communities.push([a, b, c]);
                        }
                    }
                    Ok(())
                }
            }
            ATTR_MP_REACH => {
                if opt_trans != ON {
                    Err((OnError::Reset, flag_err))
                } else {
                    match parse_mp_reach(value) {
                        Ok(m) => {
                            u.mp_reach = m;
                            Ok(())
                        }
                        Err(()) => Err((
                            OnError::Reset,
                            NotifyError::new(
                                code::UPDATE,
                                code::UPDATE_OPTIONAL_ATTR,
                                attr_data(flags, t, value),
                            ),
                        )),
                    }
                }
            }
            ATTR_MP_UNREACH => {
                if opt_trans != ON {
                    Err((OnError::Reset, flag_err))
                } else {
                    match parse_mp_unreach(value) {
                        Ok(m) => {
                            u.mp_unreach = m;
                            Ok(())
                        }
                        Err(()) => Err((
                            OnError::Reset,
                            NotifyError::new(
                                code::UPDATE,
                                code::UPDATE_OPTIONAL_ATTR,
                                attr_data(flags, t, value),
                            ),
                        )),
                    }
                }
            }
            _ => {
                if flags & FLAG_OPTIONAL == 0 {
                    return Err(NotifyError::new(
                        code::UPDATE,
                        code::UPDATE_UNRECOGNIZED_WELL_KNOWN,
                        attr_data(flags, t, value),
                    ));
                }
                if flags & FLAG_TRANSITIVE != 0 {
                    u.attrs.unknown.push(RawAttribute {
                        flags: OT | FLAG_PARTIAL,
                        type_code: t,
                        value: value.to_vec(),
                    });
                }
                Ok(())
            }
        };
        match ok {
            Ok(()) => {}
            Err((OnError::Reset, e)) => return Err(e),
            Err((OnError::Withdraw, e)) => st.withdraw(e),
            Err((OnError::Discard, e)) => st.discard(t, e),
        }
    }
    Ok(())
}

/// `Ok(None)` for an AFI/SAFI we do not support (the attribute is ignored).
fn parse_mp_reach(value: &[u8]) -> Result<Option<MpReach>, ()> {
    let mut r = Reader::new(value);
    let afi = r.u16().ok_or(())?;
    let safi = r.u8().ok_or(())?;
    let nhl = r.u8().ok_or(())?;
    let nh = r.bytes(usize::from(nhl)).ok_or(())?;
    let _reserved = r.u8().ok_or(())?;
    let (Some(afi), SAFI_UNICAST) = (Afi::from_code(afi), safi) else {
        return Ok(None);
    };
    let next_hops = match (afi, nh.len()) {
        (Afi::Ipv4, 4) => vec![IpAddr::V4(Ipv4Addr::new(nh[0], nh[1], nh[2], nh[3]))],
        (Afi::Ipv6, 16) | (Afi::Ipv6, 32) => nh
            .chunks_exact(16)
            .map(|c| {
                let mut o = [0u8; 16];
                o.copy_from_slice(c);
                IpAddr::V6(Ipv6Addr::from(o))
            })
            .collect(),
        _ => return Err(()),
    };
    let nlri = Prefix::parse_nlri_list(afi, r.rest()).ok_or(())?;
    Ok(Some(MpReach {
        afi,
        next_hops,
        nlri,
    }))
}

fn parse_mp_unreach(value: &[u8]) -> Result<Option<MpUnreach>, ()> {
    let mut r = Reader::new(value);
    let afi = r.u16().ok_or(())?;
    let safi = r.u8().ok_or(())?;
    let (Some(afi), SAFI_UNICAST) = (Afi::from_code(afi), safi) else {
        return Ok(None);
    };
    let withdrawn = Prefix::parse_nlri_list(afi, r.rest()).ok_or(())?;
    Ok(Some(MpUnreach { afi, withdrawn }))
}

#[cfg(test)]
mod tests {
    use super::super::Message;
    use super::*;

    fn pfx(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    fn body(attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0];
        b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        b.extend_from_slice(attrs);
        b.extend_from_slice(nlri);
        b
    }

    const GOOD: &[u8] = &[
        0x40, 1, 1, 0, // ORIGIN IGP
        0x40, 2, 6, 2, 1, 0, 0, 0xff, 0xeb, // AS_PATH seq [65515]
        0x40, 3, 4, 10, 2, 255, 254, // NEXT_HOP
    ];

    #[test]
    fn parse_simple() {
        let u = UpdateRepr::parse(&body(GOOD, &[16, 10, 2]), &Ctx::default()).unwrap();
        assert_eq!(u.nlri, vec![pfx("10.2.0.0/16")]);
        assert_eq!(u.attrs.origin, Some(Origin::Igp));
        assert_eq!(u.attrs.as_path, Some(AsPath::sequence(vec![65515])));
        assert_eq!(u.attrs.next_hop, Some(Ipv4Addr::new(10, 2, 255, 254)));
        assert!(u.error.is_none());
        let mut out = Vec::new();
        u.emit(&mut out, &Ctx::default()).unwrap();
        assert_eq!(out, body(GOOD, &[16, 10, 2]));
    }

    #[test]
    fn malformed_origin_is_treat_as_withdraw() {
        let mut a = GOOD.to_vec();
        a[3] = 7;
        let u = UpdateRepr::parse(&body(&a, &[16, 10, 2]), &Ctx::default()).unwrap();
        let e = u.error.unwrap();
        assert!(e.treat_as_withdraw);
        assert_eq!((e.reason.code, e.reason.subcode), (3, 6));
    }

    #[test]
    fn missing_next_hop_is_treat_as_withdraw() {
        let u = UpdateRepr::parse(&body(&GOOD[..13], &[16, 10, 2]), &Ctx::default()).unwrap();
        assert_eq!(u.error.unwrap().reason.data, vec![ATTR_NEXT_HOP]);
    }

    #[test]
    fn bad_aggregator_is_discarded() {
        let mut a = GOOD.to_vec();
        a.extend_from_slice(&[0xc0, 7, 3, 1, 2, 3]);
        let u = UpdateRepr::parse(&body(&a, &[16, 10, 2]), &Ctx::default()).unwrap();
        let e = u.error.unwrap();
        assert!(!e.treat_as_withdraw);
        assert_eq!(e.discarded, vec![ATTR_AGGREGATOR]);
        assert_eq!(u.attrs.aggregator, None);
    }

    #[test]
    fn attribute_overrun_is_treat_as_withdraw() {
        let mut a = GOOD.to_vec();
        a.extend_from_slice(&[0xc0, 8, 200, 1, 2, 3, 4]);
        let u = UpdateRepr::parse(&body(&a, &[16, 10, 2]), &Ctx::default()).unwrap();
        assert!(u.error.unwrap().treat_as_withdraw);
        assert_eq!(u.nlri, vec![pfx("10.2.0.0/16")]);
    }

    #[test]
    fn resets() {
        // bad NLRI
        let e = UpdateRepr::parse(&body(GOOD, &[33, 1, 2, 3, 4, 5]), &Ctx::default()).unwrap_err();
        assert_eq!((e.code, e.subcode), (3, 10));
        // withdrawn length overrun
        let e = UpdateRepr::parse(&[0, 9, 0], &Ctx::default()).unwrap_err();
        assert_eq!((e.code, e.subcode), (3, 1));
        // unknown well-known attribute
        let mut a = GOOD.to_vec();
        a.extend_from_slice(&[0x40, 99, 0]);
        let e = UpdateRepr::parse(&body(&a, &[]), &Ctx::default()).unwrap_err();
        assert_eq!((e.code, e.subcode), (3, 2));
        // malformed MP_REACH
        let mut a = GOOD.to_vec();
        a.extend_from_slice(&[0x80, 14, 5, 0, 2, 1, 16, 0]);
        let e = UpdateRepr::parse(&body(&a, &[]), &Ctx::default()).unwrap_err();
        assert_eq!((e.code, e.subcode), (3, 9));
    }

    #[test]
    fn unknown_transitive_gets_partial_and_round_trips() {
        let mut a = GOOD.to_vec();
        a.extend_from_slice(&[0xc0, 16, 8, 0, 2, 0xfd, 0xe9, 0, 0, 0, 1]); // ext community
        a.extend_from_slice(&[0x80, 99, 1, 5]); // optional non-transitive: dropped
        let u = UpdateRepr::parse(&body(&a, &[]), &Ctx::default()).unwrap();
        assert_eq!(u.attrs.unknown.len(), 1);
        assert_eq!(u.attrs.unknown[0].flags & FLAG_PARTIAL, FLAG_PARTIAL);
        let m = Message::Update(u.clone());
        let b = m.emit(&Ctx::default()).unwrap();
        assert_eq!(Message::parse(&b, &Ctx::default()).unwrap(), m);
    }

    #[test]
    fn ipv6_and_end_of_rib() {
        let u = UpdateRepr {
            attrs: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::sequence(vec![65010])),
                ..Default::default()
            },
            mp_reach: Some(MpReach {
                afi: Afi::Ipv6,
                next_hops: vec!["2001:db8::1".parse().unwrap(), "fe80::1".parse().unwrap()],
                nlri: vec![pfx("2001:db8:1::/48"), pfx("::/0")],
            }),
            ..Default::default()
        };
        let ctx = Ctx::default();
        let b = Message::Update(u.clone()).emit(&ctx).unwrap();
        assert_eq!(Message::parse(&b, &ctx).unwrap(), Message::Update(u));
        for afi in [Afi::Ipv4, Afi::Ipv6] {
            let b = Message::Update(UpdateRepr::end_of_rib(afi))
                .emit(&ctx)
                .unwrap();
            let Message::Update(p) = Message::parse(&b, &ctx).unwrap() else {
                panic!()
            };
            assert_eq!(p.is_end_of_rib(), Some(afi));
        }
    }

    #[test]
    fn two_byte_session_with_as4_path() {
        let ctx = Ctx {
            four_octet_as: false,
        };
        let u = UpdateRepr {
            attrs: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::sequence(vec![65010, 4_200_000_001, 65515])),
                next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
                aggregator: Some((4_200_000_001, Ipv4Addr::new(1, 1, 1, 1))),
                ..Default::default()
            },
            nlri: vec![pfx("10.1.0.0/16")],
            ..Default::default()
        };
        let b = Message::Update(u.clone()).emit(&ctx).unwrap();
        assert!(b.windows(2).any(|w| w == [0xc0, ATTR_AS4_PATH]));
        assert_eq!(Message::parse(&b, &ctx).unwrap(), Message::Update(u));
    }
}
