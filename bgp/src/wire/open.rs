//! OPEN message (RFC 4271 §4.2) with capabilities (RFC 5492).

use std::net::Ipv4Addr;

use super::{code, EncodeError, NotifyError, Reader};

/// AS_TRANS (RFC 6793): the 2-byte stand-in for a 4-byte AS number.
pub const AS_TRANS: u16 = 23456;

const CAP_MULTIPROTOCOL: u8 = 1;
const CAP_ROUTE_REFRESH: u8 = 2;
const CAP_GRACEFUL_RESTART: u8 = 64;
const CAP_FOUR_OCTET_AS: u8 = 65;
const CAP_ENHANCED_ROUTE_REFRESH: u8 = 70;
const PARAM_CAPABILITIES: u8 = 2;

/// Graceful restart capability value (RFC 4724 §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GracefulRestartCap {
    /// The 4 restart flag bits (0x8 = Restart State, 0x4 = Notification, RFC 8538).
    pub flags: u8,
    /// Restart time in seconds (12 bits).
    pub restart_time: u16,
    /// (AFI, SAFI, flags) per family; flags 0x80 = forwarding state preserved.
    pub families: Vec<(u16, u8, u8)>,
}

/// One capability (RFC 5492). Malformed known capabilities are kept as `Unknown`, so the
/// value round-trips and the session treats the capability as not advertised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Capability {
    /// Multiprotocol extensions (RFC 4760), code 1.
    Multiprotocol {
        /// AFI.
        afi: u16,
        /// SAFI.
        safi: u8,
    },
    /// Route refresh (RFC 2918), code 2.
    RouteRefresh,
    /// Graceful restart (RFC 4724), code 64.
    GracefulRestart(GracefulRestartCap),
    /// 4-octet AS numbers (RFC 6793), code 65.
    FourOctetAs(u32),
    /// Enhanced route refresh (RFC 7313), code 70.
    EnhancedRouteRefresh,
    /// Anything else, kept verbatim.
    Unknown {
        /// Capability code.
        code: u8,
        /// Capability value.
        value: Vec<u8>,
    },
}

impl Capability {
    fn parse(c: u8, value: &[u8]) -> Capability {
        let mut r = Reader::new(value);
        let known = match (c, value.len()) {
            (CAP_MULTIPROTOCOL, 4) => {
                let afi = r.u16();
                let _reserved = r.u8();
                let safi = r.u8();
                afi.zip(safi)
                    .map(|(afi, safi)| Capability::Multiprotocol { afi, safi })
            }
            (CAP_ROUTE_REFRESH, 0) => Some(Capability::RouteRefresh),
            (CAP_ENHANCED_ROUTE_REFRESH, 0) => Some(Capability::EnhancedRouteRefresh),
            (CAP_FOUR_OCTET_AS, 4) => r.u32().map(Capability::FourOctetAs),
            (CAP_GRACEFUL_RESTART, n) if n >= 2 && (n - 2) % 4 == 0 => r.u16().map(|ft| {
                let mut families = Vec::new();
                while let (Some(a), Some(s), Some(f)) = (r.u16(), r.u8(), r.u8()) {
                    families.push((a, s, f));
                }
                Capability::GracefulRestart(GracefulRestartCap {
                    flags: (ft >> 12) as u8,
                    restart_time: ft & 0x0fff,
                    families,
                })
            }),
            _ => None,
        };
        known.unwrap_or_else(|| Capability::Unknown {
            code: c,
            value: value.to_vec(),
        })
    }

    fn emit(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let (c, value): (u8, Vec<u8>) = match self {
            Capability::Multiprotocol { afi, safi } => {
                let mut v = afi.to_be_bytes().to_vec();
                v.extend_from_slice(&[0, *safi]);
                (CAP_MULTIPROTOCOL, v)
            }
            Capability::RouteRefresh => (CAP_ROUTE_REFRESH, vec![]),
            Capability::EnhancedRouteRefresh => (CAP_ENHANCED_ROUTE_REFRESH, vec![]),
            Capability::FourOctetAs(asn) => (CAP_FOUR_OCTET_AS, asn.to_be_bytes().to_vec()),
            Capability::GracefulRestart(g) => {
                let ft = (u16::from(g.flags & 0x0f) << 12) | (g.restart_time & 0x0fff);
                let mut v = ft.to_be_bytes().to_vec();
                for (a, s, f) in &g.families {
                    v.extend_from_slice(&a.to_be_bytes());
                    v.push(*s);
                    v.push(*f);
                }
                (CAP_GRACEFUL_RESTART, v)
            }
            Capability::Unknown { code, value } => (*code, value.clone()),
        };
        let len = u8::try_from(value.len()).map_err(|_| EncodeError("capability too long"))?;
        out.push(c);
        out.push(len);
        out.extend_from_slice(&value);
        Ok(())
    }
}

/// An OPEN message. The version is always 4 (anything else fails to parse with
/// "unsupported version number").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenRepr {
    /// My Autonomous System (AS_TRANS when the 4-byte AS does not fit).
    pub my_as: u16,
    /// Proposed hold time in seconds.
    pub hold_time: u16,
    /// BGP identifier.
    pub bgp_id: Ipv4Addr,
    /// Capabilities, in order, gathered from all capability parameters.
    pub capabilities: Vec<Capability>,
}

impl OpenRepr {
    /// The AS number: the 4-octet capability's value if present, else `my_as`.
    pub fn asn(&self) -> u32 {
        self.four_octet_as().unwrap_or(u32::from(self.my_as))
    }

    /// The 4-octet AS capability value, if advertised.
    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::FourOctetAs(a) => Some(*a),
            _ => None,
        })
    }

    /// True when the multiprotocol capability for (afi, SAFI unicast) is present.
    pub fn has_family(&self, afi: u16) -> bool {
        self.capabilities.iter().any(|c| {
            matches!(c, Capability::Multiprotocol { afi: a, safi } if *a == afi && *safi == super::SAFI_UNICAST)
        })
    }

    /// True when any multiprotocol capability is present.
    pub fn has_any_multiprotocol(&self) -> bool {
        self.capabilities
            .iter()
            .any(|c| matches!(c, Capability::Multiprotocol { .. }))
    }

    /// The graceful restart capability, if advertised.
    pub fn graceful_restart(&self) -> Option<&GracefulRestartCap> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart(g) => Some(g),
            _ => None,
        })
    }

    /// Parses the OPEN body (after the header).
    pub fn parse(body: &[u8]) -> Result<OpenRepr, NotifyError> {
        let unspecific = || NotifyError::new(code::OPEN, 0, []);
        let mut r = Reader::new(body);
        let version = r.u8().ok_or_else(unspecific)?;
        if version != 4 {
            return Err(NotifyError::new(code::OPEN, code::OPEN_BAD_VERSION, [0, 4]));
        }
        let my_as = r.u16().ok_or_else(unspecific)?;
        let hold_time = r.u16().ok_or_else(unspecific)?;
        let bgp_id = Ipv4Addr::from(r.u32().ok_or_else(unspecific)?);
        let opt_len = r.u8().ok_or_else(unspecific)?;
        let params = r.bytes(usize::from(opt_len)).ok_or_else(unspecific)?;
        if !r.is_empty() {
            return Err(unspecific());
        }
        let mut capabilities = Vec::new();
        let mut pr = Reader::new(params);
        while !pr.is_empty() {
            let ptype = pr.u8().ok_or_else(unspecific)?;
            let plen = pr.u8().ok_or_else(unspecific)?;
            let pval = pr.bytes(usize::from(plen)).ok_or_else(unspecific)?;
            if ptype != PARAM_CAPABILITIES {
                return Err(NotifyError::new(
                    code::OPEN,
                    code::OPEN_UNSUPPORTED_PARAM,
                    [],
                ));
            }
            let mut cr = Reader::new(pval);
            while !cr.is_empty() {
                let c = cr.u8().ok_or_else(unspecific)?;
                let clen = cr.u8().ok_or_else(unspecific)?;
                let cval = cr.bytes(usize::from(clen)).ok_or_else(unspecific)?;
                capabilities.push(Capability::parse(c, cval));
            }
        }
        Ok(OpenRepr {
            my_as,
            hold_time,
            bgp_id,
            capabilities,
        })
    }

    /// Appends the OPEN body to `out`. Capabilities are packed into as few parameters as fit.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(4);
        out.extend_from_slice(&self.my_as.to_be_bytes());
        out.extend_from_slice(&self.hold_time.to_be_bytes());
        out.extend_from_slice(&self.bgp_id.octets());
        let mut params = Vec::new();
        let mut cur = Vec::new();
        for c in &self.capabilities {
            let mut one = Vec::new();
            c.emit(&mut one)?;
            if one.len() > 255 {
                return Err(EncodeError("capability too long"));
            }
            if cur.len() + one.len() > 255 {
                push_param(&mut params, &cur);
                cur.clear();
            }
            cur.extend_from_slice(&one);
        }
        if !cur.is_empty() {
            push_param(&mut params, &cur);
        }
        let plen = u8::try_from(params.len()).map_err(|_| EncodeError("too many capabilities"))?;
        out.push(plen);
        out.extend_from_slice(&params);
        Ok(())
    }
}

fn push_param(params: &mut Vec<u8>, caps: &[u8]) {
    params.push(PARAM_CAPABILITIES);
    params.push(caps.len() as u8);
    params.extend_from_slice(caps);
}

#[cfg(test)]
mod tests {
    use super::super::{Ctx, Message};
    use super::*;

    // OPEN as sent by BIRD 2 (AS 65001, hold 240, id 10.0.0.1) with MP v4, RR, ERR, GR, AS4.
    const OPEN: &[u8] = &[
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0x00, 0x3d, 0x01, 0x04, 0xfd, 0xe9, 0x00, 0xf0, 0x0a, 0x00, 0x00, 0x01, 0x20, 0x02,
        0x1e, 0x01, 0x04, 0x00, 0x01, 0x00, 0x01, 0x02, 0x00, 0x46, 0x00, 0x40, 0x06, 0x00, 0x78,
        0x00, 0x01, 0x01, 0x80, 0x41, 0x04, 0x00, 0x00, 0xfd, 0xe9, 0x45, 0x04, 0x00, 0x01, 0x01,
        0x00,
    ];

    #[test]
    fn parse_bird_open() {
        let Message::Open(o) = Message::parse(OPEN, &Ctx::default()).unwrap() else {
            panic!("not an OPEN")
        };
        assert_eq!(o.my_as, 65001);
        assert_eq!(o.hold_time, 240);
        assert_eq!(o.bgp_id, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(o.asn(), 65001);
        assert!(o.has_family(1));
        let gr = o.graceful_restart().unwrap();
        assert_eq!(gr.restart_time, 120);
        assert_eq!(gr.families, vec![(1, 1, 0x80)]);
        // ADD-PATH (69) is unknown to us and kept verbatim
        assert!(o.capabilities.contains(&Capability::Unknown {
            code: 69,
            value: vec![0, 1, 1, 0]
        }));
        // emit reproduces the same bytes (one capability parameter)
        assert_eq!(Message::Open(o).emit(&Ctx::default()).unwrap(), OPEN);
    }

    #[test]
    fn bad_version_and_params() {
        let mut b = OPEN.to_vec();
        b[19] = 3;
        let e = Message::parse(&b, &Ctx::default()).unwrap_err();
        assert_eq!((e.code, e.subcode, e.data), (2, 1, vec![0, 4]));
        let mut b = OPEN.to_vec();
        b[29] = 9; // parameter type 9
        let e = Message::parse(&b, &Ctx::default()).unwrap_err();
        assert_eq!((e.code, e.subcode), (2, 4));
        let mut b = OPEN.to_vec();
        b[28] = 0x21; // optional parameters length too long
        assert_eq!(Message::parse(&b, &Ctx::default()).unwrap_err().code, 2);
    }

    #[test]
    fn malformed_known_capability_is_kept_unknown() {
        let c = Capability::parse(CAP_FOUR_OCTET_AS, &[0, 1, 2]);
        assert_eq!(
            c,
            Capability::Unknown {
                code: 65,
                value: vec![0, 1, 2]
            }
        );
    }
}
