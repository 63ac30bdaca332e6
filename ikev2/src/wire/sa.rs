//! The Security Association payload (RFC 7296 §3.3): proposals, transforms, attributes.

use super::codec::{len_u16, len_u8, patch_u16, put_u16, Reader};
use super::Error;

open_enum! {
    /// Protocol ID of a proposal, Notify or Delete (RFC 7296 §3.3.1).
    pub struct ProtocolId(u8) {
        /// None (Notify about the IKE SA may use 0 or IKE).
        NONE = 0,
        /// IKE.
        IKE = 1,
        /// AH.
        AH = 2,
        /// ESP.
        ESP = 3,
    }
}

open_enum! {
    /// Transform type (RFC 7296 §3.3.2).
    pub struct TransformType(u8) {
        /// Encryption Algorithm (ENCR).
        ENCR = 1,
        /// Pseudorandom Function (PRF).
        PRF = 2,
        /// Integrity Algorithm (INTEG).
        INTEG = 3,
        /// Diffie-Hellman / Key Exchange Method (D-H, KE).
        DH = 4,
        /// Extended Sequence Numbers (ESN).
        ESN = 5,
    }
}

open_enum! {
    /// Transform attribute type (RFC 7296 §3.3.5), without the AF bit.
    pub struct AttributeType(u16) {
        /// Key Length in bits (TV format).
        KEY_LENGTH = 14,
    }
}

/// Transform IDs for [`TransformType::ENCR`] (IANA "Transform Type 1").
pub mod encr {
    /// ENCR_3DES.
    pub const DES3: u16 = 3;
    /// ENCR_NULL.
    pub const NULL: u16 = 11;
    /// ENCR_AES_CBC (needs a Key Length attribute).
    pub const AES_CBC: u16 = 12;
    /// ENCR_AES_CTR.
    pub const AES_CTR: u16 = 13;
    /// ENCR_AES_GCM_8 (8-octet ICV).
    pub const AES_GCM_8: u16 = 18;
    /// ENCR_AES_GCM_12 (12-octet ICV).
    pub const AES_GCM_12: u16 = 19;
    /// ENCR_AES_GCM_16 (16-octet ICV).
    pub const AES_GCM_16: u16 = 20;
    /// ENCR_CHACHA20_POLY1305.
    pub const CHACHA20_POLY1305: u16 = 28;
}

/// Transform IDs for [`TransformType::PRF`].
pub mod prf {
    /// PRF_HMAC_MD5.
    pub const HMAC_MD5: u16 = 1;
    /// PRF_HMAC_SHA1.
    pub const HMAC_SHA1: u16 = 2;
    /// PRF_AES128_XCBC.
    pub const AES128_XCBC: u16 = 4;
    /// PRF_HMAC_SHA2_256.
    pub const HMAC_SHA2_256: u16 = 5;
    /// PRF_HMAC_SHA2_384.
    pub const HMAC_SHA2_384: u16 = 6;
    /// PRF_HMAC_SHA2_512.
    pub const HMAC_SHA2_512: u16 = 7;
}

/// Transform IDs for [`TransformType::INTEG`].
pub mod integ {
    /// NONE (with AEAD ciphers).
    pub const NONE: u16 = 0;
    /// AUTH_HMAC_MD5_96.
    pub const HMAC_MD5_96: u16 = 1;
    /// AUTH_HMAC_SHA1_96.
    pub const HMAC_SHA1_96: u16 = 2;
    /// AUTH_AES_XCBC_96.
    pub const AES_XCBC_96: u16 = 5;
    /// AUTH_HMAC_SHA2_256_128.
    pub const HMAC_SHA2_256_128: u16 = 12;
    /// AUTH_HMAC_SHA2_384_192.
    pub const HMAC_SHA2_384_192: u16 = 13;
    /// AUTH_HMAC_SHA2_512_256.
    pub const HMAC_SHA2_512_256: u16 = 14;
}

/// Transform IDs for [`TransformType::DH`] (Diffie-Hellman groups / KE methods).
pub mod dh {
    /// NONE.
    pub const NONE: u16 = 0;
    /// 1024-bit MODP group (group 2).
    pub const MODP_1024: u16 = 2;
    /// 1536-bit MODP group (group 5).
    pub const MODP_1536: u16 = 5;
    /// 2048-bit MODP group (group 14).
    pub const MODP_2048: u16 = 14;
    /// 3072-bit MODP group (group 15).
    pub const MODP_3072: u16 = 15;
    /// 4096-bit MODP group (group 16).
    pub const MODP_4096: u16 = 16;
    /// 256-bit random ECP group (group 19).
    pub const ECP_256: u16 = 19;
    /// 384-bit random ECP group (group 20).
    pub const ECP_384: u16 = 20;
    /// 521-bit random ECP group (group 21).
    pub const ECP_521: u16 = 21;
    /// 2048-bit MODP group with 256-bit prime order subgroup (group 24, RFC 5114).
    pub const MODP_2048_256: u16 = 24;
    /// Curve25519 (group 31).
    pub const CURVE25519: u16 = 31;
}

/// Transform IDs for [`TransformType::ESN`].
pub mod esn {
    /// No Extended Sequence Numbers.
    pub const NO: u16 = 0;
    /// Extended Sequence Numbers.
    pub const YES: u16 = 1;
}

/// The value of a transform attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AttributeValue {
    /// Type/Value format (AF bit set): a 2-octet value.
    Tv(u16),
    /// Type/Length/Value format (AF bit clear).
    Tlv(Vec<u8>),
}

/// A transform attribute (RFC 7296 §3.3.5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attribute {
    /// Attribute type (15 bits; the top bit is the format and is masked off when emitting).
    pub attr_type: AttributeType,
    /// The value and its format.
    pub value: AttributeValue,
}

impl Attribute {
    /// A Key Length attribute (TV, type 14), in bits.
    pub fn key_length(bits: u16) -> Attribute {
        Attribute {
            attr_type: AttributeType::KEY_LENGTH,
            value: AttributeValue::Tv(bits),
        }
    }

    fn buffer_len(&self) -> usize {
        match &self.value {
            AttributeValue::Tv(_) => 4,
            AttributeValue::Tlv(v) => 4 + v.len(),
        }
    }

    fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        let t = self.attr_type.0 & 0x7fff;
        match &self.value {
            AttributeValue::Tv(v) => {
                put_u16(out, t | 0x8000);
                put_u16(out, *v);
            }
            AttributeValue::Tlv(v) => {
                put_u16(out, t);
                put_u16(out, len_u16(v.len(), "transform attribute")?);
                out.extend_from_slice(v);
            }
        }
        Ok(())
    }
}

/// A transform substructure (RFC 7296 §3.3.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Transform {
    /// Transform type.
    pub transform_type: TransformType,
    /// Transform ID (see [`encr`], [`prf`], [`integ`], [`dh`], [`esn`]).
    pub id: u16,
    /// Attributes (usually none, or a Key Length).
    pub attributes: Vec<Attribute>,
}

const TRANSFORM_HEADER_LEN: usize = 8;
const PROPOSAL_HEADER_LEN: usize = 8;
const LAST: u8 = 0;
const MORE_PROPOSALS: u8 = 2;
const MORE_TRANSFORMS: u8 = 3;

impl Transform {
    /// A transform without attributes.
    pub fn new(transform_type: TransformType, id: u16) -> Transform {
        Transform {
            transform_type,
            id,
            attributes: Vec::new(),
        }
    }

    /// Adds a Key Length attribute (bits).
    pub fn with_key_length(mut self, bits: u16) -> Transform {
        self.attributes.push(Attribute::key_length(bits));
        self
    }

    /// The Key Length attribute (bits), if present in TV format.
    pub fn key_length(&self) -> Option<u16> {
        self.attributes.iter().find_map(|a| match a.value {
            AttributeValue::Tv(v) if a.attr_type == AttributeType::KEY_LENGTH => Some(v),
            _ => None,
        })
    }

    /// Parses one transform substructure (exactly `buf`, header included); returns it and
    /// its "last substructure" octet.
    fn parse(buf: &[u8]) -> Result<(Transform, u8), Error> {
        let mut r = Reader::new(buf);
        let last = r.u8("transform")?;
        let _reserved = r.u8("transform")?;
        let _len = r.u16("transform")?;
        let transform_type = TransformType(r.u8("transform")?);
        let _reserved = r.u8("transform")?;
        let id = r.u16("transform")?;
        let mut attributes = Vec::new();
        while !r.is_empty() {
            let t = r.u16("transform attribute")?;
            let value = if t & 0x8000 != 0 {
                AttributeValue::Tv(r.u16("transform attribute")?)
            } else {
                let n = r.u16("transform attribute")? as usize;
                AttributeValue::Tlv(r.take(n, "transform attribute")?.to_vec())
            };
            attributes.push(Attribute {
                attr_type: AttributeType(t & 0x7fff),
                value,
            });
        }
        Ok((
            Transform {
                transform_type,
                id,
                attributes,
            },
            last,
        ))
    }

    /// Octets of the encoded substructure.
    pub fn buffer_len(&self) -> usize {
        TRANSFORM_HEADER_LEN
            + self
                .attributes
                .iter()
                .map(Attribute::buffer_len)
                .sum::<usize>()
    }

    fn emit(&self, out: &mut Vec<u8>, last: bool) -> Result<(), Error> {
        let start = out.len();
        out.push(if last { LAST } else { MORE_TRANSFORMS });
        out.push(0);
        put_u16(out, 0);
        out.push(self.transform_type.0);
        out.push(0);
        put_u16(out, self.id);
        for a in &self.attributes {
            a.emit(out)?;
        }
        let len = len_u16(out.len() - start, "transform")?;
        patch_u16(out, start + 2, len);
        Ok(())
    }
}

/// A proposal substructure (RFC 7296 §3.3.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Proposal {
    /// Proposal number (1 for the first proposal; the responder echoes the chosen one's).
    pub number: u8,
    /// Protocol ID (IKE, AH, ESP).
    pub protocol: ProtocolId,
    /// SPI: empty in an initial IKE_SA_INIT, 8 octets for IKE rekeys, 4 for AH/ESP.
    pub spi: Vec<u8>,
    /// Transforms.
    pub transforms: Vec<Transform>,
}

impl Proposal {
    /// The transforms of one type, in order.
    pub fn transforms_of(&self, t: TransformType) -> impl Iterator<Item = &Transform> + '_ {
        self.transforms
            .iter()
            .filter(move |x| x.transform_type == t)
    }

    /// The SPI as a u32 if it is 4 octets long (AH/ESP).
    pub fn spi_u32(&self) -> Option<u32> {
        <[u8; 4]>::try_from(self.spi.as_slice())
            .ok()
            .map(u32::from_be_bytes)
    }

    /// The SPI as a u64 if it is 8 octets long (IKE SA rekey).
    pub fn spi_u64(&self) -> Option<u64> {
        <[u8; 8]>::try_from(self.spi.as_slice())
            .ok()
            .map(u64::from_be_bytes)
    }

    /// Parses the body of an SA payload: one or more proposals.
    pub fn parse_sa(body: &[u8]) -> Result<Vec<Proposal>, Error> {
        let mut out = Vec::new();
        let mut rest = body;
        if rest.is_empty() {
            return Err(Error::InvalidValue("SA payload without proposal"));
        }
        loop {
            let (buf, after) = split_substructure(rest, PROPOSAL_HEADER_LEN, "proposal")?;
            let (p, last) = Proposal::parse(buf)?;
            out.push(p);
            rest = after;
            check_last(last, MORE_PROPOSALS, rest.is_empty(), "proposal")?;
            if rest.is_empty() {
                return Ok(out);
            }
        }
    }

    fn parse(buf: &[u8]) -> Result<(Proposal, u8), Error> {
        let mut r = Reader::new(buf);
        let last = r.u8("proposal")?;
        let _reserved = r.u8("proposal")?;
        let _len = r.u16("proposal")?;
        let number = r.u8("proposal")?;
        let protocol = ProtocolId(r.u8("proposal")?);
        let spi_size = r.u8("proposal")? as usize;
        let count = r.u8("proposal")? as usize;
        let spi = r.take(spi_size, "proposal SPI")?.to_vec();
        let mut rest = r.rest();
        let mut transforms = Vec::new();
        while !rest.is_empty() {
            let (tb, after) = split_substructure(rest, TRANSFORM_HEADER_LEN, "transform")?;
            let (t, last) = Transform::parse(tb)?;
            transforms.push(t);
            rest = after;
            check_last(last, MORE_TRANSFORMS, rest.is_empty(), "transform")?;
        }
        if transforms.len() != count {
            return Err(Error::InvalidValue("proposal transform count"));
        }
        Ok((
            Proposal {
                number,
                protocol,
                spi,
                transforms,
            },
            last,
        ))
    }

    /// Octets of the encoded substructure.
    pub fn buffer_len(&self) -> usize {
        PROPOSAL_HEADER_LEN
            + self.spi.len()
            + self
                .transforms
                .iter()
                .map(Transform::buffer_len)
                .sum::<usize>()
    }

    /// Octets of an SA payload body holding `proposals`.
    pub fn sa_buffer_len(proposals: &[Proposal]) -> usize {
        proposals.iter().map(Proposal::buffer_len).sum()
    }

    /// Emits an SA payload body (the proposals, with correct "last substructure" values).
    pub fn emit_sa(proposals: &[Proposal], out: &mut Vec<u8>) -> Result<(), Error> {
        for (i, p) in proposals.iter().enumerate() {
            p.emit(out, i + 1 == proposals.len())?;
        }
        Ok(())
    }

    fn emit(&self, out: &mut Vec<u8>, last: bool) -> Result<(), Error> {
        let start = out.len();
        out.push(if last { LAST } else { MORE_PROPOSALS });
        out.push(0);
        put_u16(out, 0);
        out.push(self.number);
        out.push(self.protocol.0);
        out.push(len_u8(self.spi.len(), "proposal SPI")?);
        out.push(len_u8(self.transforms.len(), "proposal transforms")?);
        out.extend_from_slice(&self.spi);
        for (i, t) in self.transforms.iter().enumerate() {
            t.emit(out, i + 1 == self.transforms.len())?;
        }
        let len = len_u16(out.len() - start, "proposal")?;
        patch_u16(out, start + 2, len);
        Ok(())
    }
}

/// Splits a substructure whose length field is at octets 2..4 off the front of `buf`.
fn split_substructure<'a>(
    buf: &'a [u8],
    min: usize,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), Error> {
    if buf.len() < 4 {
        return Err(Error::Truncated(what));
    }
    let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    if len < min {
        return Err(Error::BadLength(what));
    }
    if len > buf.len() {
        return Err(Error::Truncated(what));
    }
    Ok(buf.split_at(len))
}

/// Checks a "last substructure" octet: `more` if others follow, 0 on the last one.
fn check_last(last: u8, more: u8, is_last: bool, what: &'static str) -> Result<(), Error> {
    let want = if is_last { LAST } else { more };
    if last == want {
        Ok(())
    } else {
        Err(Error::InvalidValue(what))
    }
}

#[cfg(test)]
mod test {
    use super::*;

    // SA body: proposal 1, IKE, no SPI, 4 transforms:
    // ENCR AES_CBC keylen 256, PRF HMAC_SHA2_256, INTEG HMAC_SHA2_256_128, DH 14.
    static SA: [u8; 44] = [
        0x00, 0x00, 0x00, 0x2c, 0x01, 0x01, 0x00, 0x04, // proposal header
        0x03, 0x00, 0x00, 0x0c, 0x01, 0x00, 0x00, 0x0c, 0x80, 0x0e, 0x01, 0x00, // ENCR
        0x03, 0x00, 0x00, 0x08, 0x02, 0x00, 0x00, 0x05, // PRF
        0x03, 0x00, 0x00, 0x08, 0x03, 0x00, 0x00, 0x0c, // INTEG
        0x00, 0x00, 0x00, 0x08, 0x04, 0x00, 0x00, 0x0e, // DH
    ];

    fn repr() -> Vec<Proposal> {
        vec![Proposal {
            number: 1,
            protocol: ProtocolId::IKE,
            spi: vec![],
            transforms: vec![
                Transform::new(TransformType::ENCR, encr::AES_CBC).with_key_length(256),
                Transform::new(TransformType::PRF, prf::HMAC_SHA2_256),
                Transform::new(TransformType::INTEG, integ::HMAC_SHA2_256_128),
                Transform::new(TransformType::DH, dh::MODP_2048),
            ],
        }]
    }

    #[test]
    fn parse() {
        let p = Proposal::parse_sa(&SA).unwrap();
        assert_eq!(p, repr());
        assert_eq!(p[0].transforms[0].key_length(), Some(256));
        assert_eq!(p[0].transforms_of(TransformType::DH).count(), 1);
    }

    #[test]
    fn emit() {
        let mut out = Vec::new();
        Proposal::emit_sa(&repr(), &mut out).unwrap();
        assert_eq!(out, SA);
        assert_eq!(Proposal::sa_buffer_len(&repr()), 44);
    }

    #[test]
    fn two_proposals_last_fields() {
        let mut ps = repr();
        let mut esp = repr().remove(0);
        esp.number = 2;
        esp.protocol = ProtocolId::ESP;
        esp.spi = vec![1, 2, 3, 4];
        ps.push(esp);
        let mut out = Vec::new();
        Proposal::emit_sa(&ps, &mut out).unwrap();
        assert_eq!(out[0], 2); // more proposals
        assert_eq!(out[44], 0); // last proposal
        assert_eq!(Proposal::parse_sa(&out).unwrap(), ps);
        assert_eq!(ps[1].spi_u32(), Some(0x01020304));
        // Wrong "last" values are rejected.
        let mut bad = out.clone();
        bad[0] = 0;
        assert_eq!(
            Proposal::parse_sa(&bad),
            Err(Error::InvalidValue("proposal"))
        );
        let mut bad = out.clone();
        bad[8] = 0; // first transform says last
        assert_eq!(
            Proposal::parse_sa(&bad),
            Err(Error::InvalidValue("transform"))
        );
    }

    #[test]
    fn check_len() {
        let mut b = SA.to_vec();
        for n in 0..b.len() {
            assert!(Proposal::parse_sa(&b[..n]).is_err(), "len {n}");
        }
        // Transform count mismatch.
        b[7] = 3;
        assert_eq!(
            Proposal::parse_sa(&b),
            Err(Error::InvalidValue("proposal transform count"))
        );
    }

    #[test]
    fn tlv_attribute() {
        let t = Transform {
            transform_type: TransformType(9),
            id: 7,
            attributes: vec![Attribute {
                attr_type: AttributeType(20),
                value: AttributeValue::Tlv(vec![1, 2, 3]),
            }],
        };
        let mut out = Vec::new();
        t.emit(&mut out, true).unwrap();
        assert_eq!(out.len(), t.buffer_len());
        assert_eq!(&out[8..], &[0x00, 20, 0, 3, 1, 2, 3]);
        assert_eq!(Transform::parse(&out).unwrap(), (t, 0));
    }
}
