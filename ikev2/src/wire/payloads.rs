//! Payload bodies: KE, ID, AUTH, Notify, Delete, SK and SKF (RFC 7296 §3.4-3.14, RFC 7383).

use super::codec::{len_u16, len_u8, put_u16, Reader};
use super::{Error, PayloadType, ProtocolId};

open_enum! {
    /// Identification type (RFC 7296 §3.5).
    pub struct IdType(u8) {
        /// A single four-octet IPv4 address.
        IPV4_ADDR = 1,
        /// A fully-qualified domain name string.
        FQDN = 2,
        /// An RFC 822 email address string.
        RFC822_ADDR = 3,
        /// A single sixteen-octet IPv6 address.
        IPV6_ADDR = 5,
        /// DER encoded ASN.1 X.500 Distinguished Name.
        DER_ASN1_DN = 9,
        /// DER encoded ASN.1 X.509 GeneralName.
        DER_ASN1_GN = 10,
        /// An opaque octet stream.
        KEY_ID = 11,
    }
}

open_enum! {
    /// Authentication method (RFC 7296 §3.8, RFC 7427).
    pub struct AuthMethod(u8) {
        /// RSA Digital Signature.
        RSA_SIG = 1,
        /// Shared Key Message Integrity Code.
        SHARED_KEY_MIC = 2,
        /// DSS Digital Signature.
        DSS_SIG = 3,
        /// Generic Digital Signature (RFC 7427).
        DIGITAL_SIGNATURE = 14,
    }
}

open_enum! {
    /// Notify message type (RFC 7296 §3.10.1, RFC 7383): < 16384 are errors, >= 16384 status.
    pub struct NotifyType(u16) {
        /// UNSUPPORTED_CRITICAL_PAYLOAD (data: the one-octet payload type).
        UNSUPPORTED_CRITICAL_PAYLOAD = 1,
        /// INVALID_IKE_SPI.
        INVALID_IKE_SPI = 4,
        /// INVALID_MAJOR_VERSION.
        INVALID_MAJOR_VERSION = 5,
        /// INVALID_SYNTAX.
        INVALID_SYNTAX = 7,
        /// INVALID_MESSAGE_ID (data: the four-octet message ID).
        INVALID_MESSAGE_ID = 9,
        /// INVALID_SPI (data: the SPI).
        INVALID_SPI = 11,
        /// NO_PROPOSAL_CHOSEN.
        NO_PROPOSAL_CHOSEN = 14,
        /// INVALID_KE_PAYLOAD (data: the two-octet accepted DH group).
        INVALID_KE_PAYLOAD = 17,
        /// AUTHENTICATION_FAILED.
        AUTHENTICATION_FAILED = 24,
        /// SINGLE_PAIR_REQUIRED.
        SINGLE_PAIR_REQUIRED = 34,
        /// NO_ADDITIONAL_SAS.
        NO_ADDITIONAL_SAS = 35,
        /// INTERNAL_ADDRESS_FAILURE.
        INTERNAL_ADDRESS_FAILURE = 36,
        /// FAILED_CP_REQUIRED.
        FAILED_CP_REQUIRED = 37,
        /// TS_UNACCEPTABLE.
        TS_UNACCEPTABLE = 38,
        /// INVALID_SELECTORS.
        INVALID_SELECTORS = 39,
        /// TEMPORARY_FAILURE.
        TEMPORARY_FAILURE = 43,
        /// CHILD_SA_NOT_FOUND.
        CHILD_SA_NOT_FOUND = 44,
        /// INITIAL_CONTACT.
        INITIAL_CONTACT = 16384,
        /// SET_WINDOW_SIZE (data: four-octet window size).
        SET_WINDOW_SIZE = 16385,
        /// ADDITIONAL_TS_POSSIBLE.
        ADDITIONAL_TS_POSSIBLE = 16386,
        /// IPCOMP_SUPPORTED.
        IPCOMP_SUPPORTED = 16387,
        /// NAT_DETECTION_SOURCE_IP (data: SHA-1 digest).
        NAT_DETECTION_SOURCE_IP = 16388,
        /// NAT_DETECTION_DESTINATION_IP (data: SHA-1 digest).
        NAT_DETECTION_DESTINATION_IP = 16389,
        /// COOKIE (data: 1..=64 octets).
        COOKIE = 16390,
        /// USE_TRANSPORT_MODE.
        USE_TRANSPORT_MODE = 16391,
        /// HTTP_CERT_LOOKUP_SUPPORTED.
        HTTP_CERT_LOOKUP_SUPPORTED = 16392,
        /// REKEY_SA (protocol + SPI of the SA being rekeyed).
        REKEY_SA = 16393,
        /// ESP_TFC_PADDING_NOT_SUPPORTED.
        ESP_TFC_PADDING_NOT_SUPPORTED = 16394,
        /// NON_FIRST_FRAGMENTS_ALSO.
        NON_FIRST_FRAGMENTS_ALSO = 16395,
        /// MOBIKE_SUPPORTED (RFC 4555).
        MOBIKE_SUPPORTED = 16396,
        /// IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383).
        IKEV2_FRAGMENTATION_SUPPORTED = 16430,
        /// SIGNATURE_HASH_ALGORITHMS (RFC 7427).
        SIGNATURE_HASH_ALGORITHMS = 16431,
    }
}

impl NotifyType {
    /// True for error types (< 16384).
    pub fn is_error(self) -> bool {
        self.0 < 16384
    }
}

/// Key Exchange payload body (RFC 7296 §3.4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KePayload {
    /// Diffie-Hellman group number (see [`super::dh`]).
    pub group: u16,
    /// Key exchange data (the public value).
    pub data: Vec<u8>,
}

impl KePayload {
    /// Parses a KE body.
    pub fn parse(body: &[u8]) -> Result<KePayload, Error> {
        let mut r = Reader::new(body);
        let group = r.u16("KE payload")?;
        let _reserved = r.u16("KE payload")?;
        Ok(KePayload {
            group,
            data: r.rest().to_vec(),
        })
    }

    /// Octets of the body.
    pub fn buffer_len(&self) -> usize {
        4 + self.data.len()
    }

    /// Emits the body.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        put_u16(out, self.group);
        put_u16(out, 0);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

/// Identification payload body, IDi or IDr (RFC 7296 §3.5). For the AUTH computation
/// (RFC 7296 §2.15) the received body should be taken verbatim from a
/// [`super::RawPayload`]; `emit` writes the reserved octets as zero.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdPayload {
    /// ID type.
    pub id_type: IdType,
    /// Identification data (address octets, FQDN string, key ID, ...).
    pub data: Vec<u8>,
}

impl IdPayload {
    /// An IPv4 or IPv6 address identity.
    pub fn from_ip(ip: core::net::IpAddr) -> IdPayload {
        match ip {
            core::net::IpAddr::V4(a) => IdPayload {
                id_type: IdType::IPV4_ADDR,
                data: a.octets().to_vec(),
            },
            core::net::IpAddr::V6(a) => IdPayload {
                id_type: IdType::IPV6_ADDR,
                data: a.octets().to_vec(),
            },
        }
    }

    /// An FQDN identity.
    pub fn fqdn(name: &str) -> IdPayload {
        IdPayload {
            id_type: IdType::FQDN,
            data: name.as_bytes().to_vec(),
        }
    }

    /// The address, for IPV4_ADDR (4 octets) and IPV6_ADDR (16 octets) identities.
    pub fn ip(&self) -> Option<core::net::IpAddr> {
        match self.id_type {
            IdType::IPV4_ADDR => <[u8; 4]>::try_from(self.data.as_slice())
                .ok()
                .map(core::net::IpAddr::from),
            IdType::IPV6_ADDR => <[u8; 16]>::try_from(self.data.as_slice())
                .ok()
                .map(core::net::IpAddr::from),
            _ => None,
        }
    }

    /// Parses an ID body.
    pub fn parse(body: &[u8]) -> Result<IdPayload, Error> {
        let mut r = Reader::new(body);
        let id_type = IdType(r.u8("ID payload")?);
        let _reserved = r.take(3, "ID payload")?;
        Ok(IdPayload {
            id_type,
            data: r.rest().to_vec(),
        })
    }

    /// Octets of the body.
    pub fn buffer_len(&self) -> usize {
        4 + self.data.len()
    }

    /// Emits the body (this is also RestOfIDPayload for the AUTH computation).
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.extend_from_slice(&[self.id_type.0, 0, 0, 0]);
        out.extend_from_slice(&self.data);
        Ok(())
    }

    /// The emitted body as a new vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.buffer_len());
        // Cannot fail: an ID body has no length field of its own.
        let _ = self.emit(&mut v);
        v
    }
}

/// Authentication payload body (RFC 7296 §3.8).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AuthPayload {
    /// Authentication method.
    pub method: AuthMethod,
    /// Authentication data (for SHARED_KEY_MIC: the prf output).
    pub data: Vec<u8>,
}

impl AuthPayload {
    /// Parses an AUTH body.
    pub fn parse(body: &[u8]) -> Result<AuthPayload, Error> {
        let mut r = Reader::new(body);
        let method = AuthMethod(r.u8("AUTH payload")?);
        let _reserved = r.take(3, "AUTH payload")?;
        Ok(AuthPayload {
            method,
            data: r.rest().to_vec(),
        })
    }

    /// Octets of the body.
    pub fn buffer_len(&self) -> usize {
        4 + self.data.len()
    }

    /// Emits the body.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.extend_from_slice(&[self.method.0, 0, 0, 0]);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

/// Notify payload body (RFC 7296 §3.10).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NotifyPayload {
    /// Protocol ID (0 or IKE for IKE SA notifications, AH/ESP for Child SA ones).
    pub protocol: ProtocolId,
    /// SPI (empty for IKE SA notifications, 4 octets for AH/ESP).
    pub spi: Vec<u8>,
    /// Notify message type.
    pub notify_type: NotifyType,
    /// Notification data.
    pub data: Vec<u8>,
}

impl NotifyPayload {
    /// A notification about the IKE SA (protocol 0, no SPI).
    pub fn new(notify_type: NotifyType, data: Vec<u8>) -> NotifyPayload {
        NotifyPayload {
            protocol: ProtocolId::NONE,
            spi: Vec::new(),
            notify_type,
            data,
        }
    }

    /// The SPI as a u32 if it is 4 octets long.
    pub fn spi_u32(&self) -> Option<u32> {
        <[u8; 4]>::try_from(self.spi.as_slice())
            .ok()
            .map(u32::from_be_bytes)
    }

    /// Parses a Notify body.
    pub fn parse(body: &[u8]) -> Result<NotifyPayload, Error> {
        let mut r = Reader::new(body);
        let protocol = ProtocolId(r.u8("Notify payload")?);
        let spi_size = r.u8("Notify payload")? as usize;
        let notify_type = NotifyType(r.u16("Notify payload")?);
        let spi = r.take(spi_size, "Notify SPI")?.to_vec();
        Ok(NotifyPayload {
            protocol,
            spi,
            notify_type,
            data: r.rest().to_vec(),
        })
    }

    /// Octets of the body.
    pub fn buffer_len(&self) -> usize {
        4 + self.spi.len() + self.data.len()
    }

    /// Emits the body.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.push(self.protocol.0);
        out.push(len_u8(self.spi.len(), "Notify SPI")?);
        put_u16(out, self.notify_type.0);
        out.extend_from_slice(&self.spi);
        out.extend_from_slice(&self.data);
        Ok(())
    }
}

/// Delete payload body (RFC 7296 §3.11). The SPI size is derived: 0 when `protocol` is IKE
/// and `spis` is empty (deletes the IKE SA), 4 otherwise. Received SPI sizes other than 0
/// and 4 are rejected.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeletePayload {
    /// Protocol ID (IKE, AH, ESP).
    pub protocol: ProtocolId,
    /// The SPIs of the SAs to delete (AH/ESP: the SPIs of the sender's inbound SAs).
    pub spis: Vec<u32>,
}

impl DeletePayload {
    /// Parses a Delete body.
    pub fn parse(body: &[u8]) -> Result<DeletePayload, Error> {
        let mut r = Reader::new(body);
        let protocol = ProtocolId(r.u8("Delete payload")?);
        let spi_size = r.u8("Delete payload")?;
        let count = r.u16("Delete payload")? as usize;
        let mut spis = Vec::new();
        match spi_size {
            0 => {
                if count != 0 {
                    return Err(Error::InvalidValue("Delete SPI count"));
                }
            }
            4 => {
                for _ in 0..count {
                    let b = r.take(4, "Delete SPIs")?;
                    spis.push(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                }
            }
            _ => return Err(Error::InvalidValue("Delete SPI size")),
        }
        if !r.is_empty() {
            return Err(Error::TrailingData("Delete payload"));
        }
        Ok(DeletePayload { protocol, spis })
    }

    fn spi_size(&self) -> u8 {
        if self.protocol == ProtocolId::IKE && self.spis.is_empty() {
            0
        } else {
            4
        }
    }

    /// Octets of the body.
    pub fn buffer_len(&self) -> usize {
        4 + 4 * self.spis.len()
    }

    /// Emits the body.
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        out.push(self.protocol.0);
        out.push(self.spi_size());
        put_u16(out, len_u16(self.spis.len(), "Delete SPIs")?);
        for s in &self.spis {
            out.extend_from_slice(&s.to_be_bytes());
        }
        Ok(())
    }
}

/// The Encrypted and Authenticated payload (SK, RFC 7296 §3.14).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EncryptedPayload {
    /// Type of the first payload inside (the generic header's "next payload").
    pub next_payload: PayloadType,
    /// The body: IV | ciphertext (inner payloads + padding + pad length) | ICV.
    pub body: Vec<u8>,
}

impl core::fmt::Debug for EncryptedPayload {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EncryptedPayload")
            .field("next_payload", &self.next_payload)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Length of the SKF fixed fields after the generic header (fragment number + total).
pub(crate) const FRAGMENT_FIELDS_LEN: usize = 4;

/// The Encrypted and Authenticated Fragment payload (SKF, RFC 7383 §2.5).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EncryptedFragment {
    /// Type of the first inner payload in fragment 1; NONE (0) in the other fragments.
    pub next_payload: PayloadType,
    /// Fragment number, from 1.
    pub number: u16,
    /// Total number of fragments.
    pub total: u16,
    /// IV | ciphertext | ICV of this fragment.
    pub body: Vec<u8>,
}

impl core::fmt::Debug for EncryptedFragment {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EncryptedFragment")
            .field("next_payload", &self.next_payload)
            .field("number", &self.number)
            .field("total", &self.total)
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl EncryptedFragment {
    /// Parses an SKF body (the generic header's "next payload" is passed in). Does not
    /// check `number <= total` or `number >= 1` (reassembly policy is the caller's).
    pub fn parse(next_payload: PayloadType, body: &[u8]) -> Result<EncryptedFragment, Error> {
        let mut r = Reader::new(body);
        let number = r.u16("SKF payload")?;
        let total = r.u16("SKF payload")?;
        Ok(EncryptedFragment {
            next_payload,
            number,
            total,
            body: r.rest().to_vec(),
        })
    }

    /// Octets of the body (after the generic header).
    pub fn buffer_len(&self) -> usize {
        FRAGMENT_FIELDS_LEN + self.body.len()
    }

    /// Emits the body (after the generic header).
    pub fn emit(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        put_u16(out, self.number);
        put_u16(out, self.total);
        out.extend_from_slice(&self.body);
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn round<T: PartialEq + core::fmt::Debug>(
        bytes: &[u8],
        parse: fn(&[u8]) -> Result<T, Error>,
        emit: fn(&T, &mut Vec<u8>) -> Result<(), Error>,
        len: fn(&T) -> usize,
        want: T,
    ) {
        let got = parse(bytes).unwrap();
        assert_eq!(got, want);
        let mut out = Vec::new();
        emit(&want, &mut out).unwrap();
        assert_eq!(out, bytes);
        assert_eq!(len(&want), bytes.len());
    }

    #[test]
    fn ke() {
        static B: [u8; 7] = [0x00, 0x13, 0x00, 0x00, 0xaa, 0xbb, 0xcc];
        round(
            &B,
            KePayload::parse,
            KePayload::emit,
            KePayload::buffer_len,
            KePayload {
                group: 19,
                data: vec![0xaa, 0xbb, 0xcc],
            },
        );
        for n in 0..4 {
            assert_eq!(
                KePayload::parse(&B[..n]),
                Err(Error::Truncated("KE payload"))
            );
        }
    }

    #[test]
    fn id() {
        static B: [u8; 8] = [0x01, 0x00, 0x00, 0x00, 192, 0, 2, 1];
        let want = IdPayload::from_ip("192.0.2.1".parse().unwrap());
        assert_eq!(want.ip(), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(want.to_bytes(), B);
        round(
            &B,
            IdPayload::parse,
            IdPayload::emit,
            IdPayload::buffer_len,
            want,
        );
        let f = IdPayload::fqdn("gw.example");
        assert_eq!(f.id_type, IdType::FQDN);
        assert_eq!(f.ip(), None);
        assert!(IdPayload::parse(&B[..3]).is_err());
    }

    #[test]
    fn auth() {
        static B: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x11, 0x22];
        round(
            &B,
            AuthPayload::parse,
            AuthPayload::emit,
            AuthPayload::buffer_len,
            AuthPayload {
                method: AuthMethod::SHARED_KEY_MIC,
                data: vec![0x11, 0x22],
            },
        );
        assert!(AuthPayload::parse(&B[..3]).is_err());
    }

    #[test]
    fn notify() {
        // ESP REKEY_SA with SPI 0x01020304, no data.
        static B: [u8; 8] = [0x03, 0x04, 0x40, 0x09, 0x01, 0x02, 0x03, 0x04];
        let want = NotifyPayload {
            protocol: ProtocolId::ESP,
            spi: vec![1, 2, 3, 4],
            notify_type: NotifyType::REKEY_SA,
            data: vec![],
        };
        assert_eq!(want.spi_u32(), Some(0x01020304));
        round(
            &B,
            NotifyPayload::parse,
            NotifyPayload::emit,
            NotifyPayload::buffer_len,
            want,
        );
        // COOKIE with data.
        static C: [u8; 6] = [0x00, 0x00, 0x40, 0x06, 0xab, 0xcd];
        round(
            &C,
            NotifyPayload::parse,
            NotifyPayload::emit,
            NotifyPayload::buffer_len,
            NotifyPayload::new(NotifyType::COOKIE, vec![0xab, 0xcd]),
        );
        // SPI size beyond the body.
        assert_eq!(
            NotifyPayload::parse(&B[..7]),
            Err(Error::Truncated("Notify SPI"))
        );
        assert!(NotifyType::INVALID_SYNTAX.is_error());
        assert!(!NotifyType::COOKIE.is_error());
        assert_eq!(
            format!("{:?}", NotifyType(16430)),
            "IKEV2_FRAGMENTATION_SUPPORTED"
        );
        assert_eq!(format!("{:?}", NotifyType(999)), "NotifyType(999)");
    }

    #[test]
    fn delete() {
        static IKE: [u8; 4] = [0x01, 0x00, 0x00, 0x00];
        round(
            &IKE,
            DeletePayload::parse,
            DeletePayload::emit,
            DeletePayload::buffer_len,
            DeletePayload {
                protocol: ProtocolId::IKE,
                spis: vec![],
            },
        );
        static ESP: [u8; 12] = [
            0x03, 0x04, 0x00, 0x02, 0xc1, 0x00, 0x00, 0x01, 0xc1, 0x00, 0x00, 0x02,
        ];
        round(
            &ESP,
            DeletePayload::parse,
            DeletePayload::emit,
            DeletePayload::buffer_len,
            DeletePayload {
                protocol: ProtocolId::ESP,
                spis: vec![0xc1000001, 0xc1000002],
            },
        );
        assert_eq!(
            DeletePayload::parse(&ESP[..11]),
            Err(Error::Truncated("Delete SPIs"))
        );
        let mut bad = ESP;
        bad[1] = 8;
        assert_eq!(
            DeletePayload::parse(&bad),
            Err(Error::InvalidValue("Delete SPI size"))
        );
        let mut more = ESP.to_vec();
        more.push(0);
        assert_eq!(
            DeletePayload::parse(&more),
            Err(Error::TrailingData("Delete payload"))
        );
    }

    #[test]
    fn fragment() {
        static B: [u8; 7] = [0x00, 0x02, 0x00, 0x03, 0x01, 0x02, 0x03];
        let f = EncryptedFragment::parse(PayloadType::NONE, &B).unwrap();
        assert_eq!(f.number, 2);
        assert_eq!(f.total, 3);
        assert_eq!(f.body, [1, 2, 3]);
        let mut out = Vec::new();
        f.emit(&mut out).unwrap();
        assert_eq!(out, B);
        assert_eq!(f.buffer_len(), 7);
        assert!(EncryptedFragment::parse(PayloadType::NONE, &B[..3]).is_err());
        assert!(!format!("{f:?}").contains("[1, 2, 3]"));
    }
}
