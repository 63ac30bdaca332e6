//! The high-level representation: [`Payload`], [`Message`], chain parse/emit, the lookup
//! trait [`PayloadSlice`] and the SK/SKF framing helpers.

use super::codec::{len_u16, patch_u16, put_u16};
use super::header::{Header, HeaderRepr, HEADER_LEN};
use super::payloads::FRAGMENT_FIELDS_LEN;
use super::{
    AuthPayload, DeletePayload, EncryptedFragment, EncryptedPayload, Error, IdPayload, KePayload,
    NotifyPayload, NotifyType, PayloadIter, PayloadType, Proposal, RawPayload, TrafficSelector,
    GENERIC_HEADER_LEN,
};

/// Offset of the SK body (IV) in a message whose only payload is SK: header + generic header.
pub const ENCRYPTED_BODY_OFFSET: usize = HEADER_LEN + GENERIC_HEADER_LEN;

/// Offset of the SKF body (IV) in a message whose only payload is SKF: header + generic
/// header + fragment number + total fragments.
pub const FRAGMENT_BODY_OFFSET: usize = HEADER_LEN + GENERIC_HEADER_LEN + FRAGMENT_FIELDS_LEN;

/// One payload, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Payload {
    /// SA (33): the proposals.
    Sa(Vec<Proposal>),
    /// KE (34).
    Ke(KePayload),
    /// IDi (35).
    IdI(IdPayload),
    /// IDr (36).
    IdR(IdPayload),
    /// CERT (37): raw body (encoding octet + data), not interpreted.
    Cert(Vec<u8>),
    /// CERTREQ (38): raw body, not interpreted.
    CertReq(Vec<u8>),
    /// AUTH (39).
    Auth(AuthPayload),
    /// Ni/Nr (40): the nonce data.
    Nonce(Vec<u8>),
    /// N (41).
    Notify(NotifyPayload),
    /// D (42).
    Delete(DeletePayload),
    /// V (43): the vendor ID data.
    VendorId(Vec<u8>),
    /// TSi (44).
    TsI(Vec<TrafficSelector>),
    /// TSr (45).
    TsR(Vec<TrafficSelector>),
    /// SK (46); must be the last payload of a chain.
    Encrypted(EncryptedPayload),
    /// SKF (53); must be the last payload of a chain.
    EncryptedFragment(EncryptedFragment),
    /// A payload type this codec does not interpret (CP, EAP, unassigned), received without
    /// the critical bit; re-emitted as is (critical bit clear). `payload_type` must not be
    /// NONE or a type listed above ([`PayloadType::is_known`]), or emitting fails.
    Unknown {
        /// The payload type.
        payload_type: PayloadType,
        /// The raw body.
        data: Vec<u8>,
    },
}

impl Payload {
    /// The payload type of this payload.
    pub fn payload_type(&self) -> PayloadType {
        match self {
            Payload::Sa(_) => PayloadType::SA,
            Payload::Ke(_) => PayloadType::KE,
            Payload::IdI(_) => PayloadType::IDI,
            Payload::IdR(_) => PayloadType::IDR,
            Payload::Cert(_) => PayloadType::CERT,
            Payload::CertReq(_) => PayloadType::CERTREQ,
            Payload::Auth(_) => PayloadType::AUTH,
            Payload::Nonce(_) => PayloadType::NONCE,
            Payload::Notify(_) => PayloadType::NOTIFY,
            Payload::Delete(_) => PayloadType::DELETE,
            Payload::VendorId(_) => PayloadType::VENDOR_ID,
            Payload::TsI(_) => PayloadType::TSI,
            Payload::TsR(_) => PayloadType::TSR,
            Payload::Encrypted(_) => PayloadType::SK,
            Payload::EncryptedFragment(_) => PayloadType::SKF,
            Payload::Unknown { payload_type, .. } => *payload_type,
        }
    }

    /// Parses one raw payload from a chain. Unknown payload types become
    /// [`Payload::Unknown`], or [`Error::UnsupportedCriticalPayload`] if the critical bit is
    /// set.
    pub fn parse(raw: &RawPayload<'_>) -> Result<Payload, Error> {
        let b = raw.body;
        Ok(match raw.payload_type {
            PayloadType::SA => Payload::Sa(Proposal::parse_sa(b)?),
            PayloadType::KE => Payload::Ke(KePayload::parse(b)?),
            PayloadType::IDI => Payload::IdI(IdPayload::parse(b)?),
            PayloadType::IDR => Payload::IdR(IdPayload::parse(b)?),
            PayloadType::CERT => Payload::Cert(b.to_vec()),
            PayloadType::CERTREQ => Payload::CertReq(b.to_vec()),
            PayloadType::AUTH => Payload::Auth(AuthPayload::parse(b)?),
            PayloadType::NONCE => Payload::Nonce(b.to_vec()),
            PayloadType::NOTIFY => Payload::Notify(NotifyPayload::parse(b)?),
            PayloadType::DELETE => Payload::Delete(DeletePayload::parse(b)?),
            PayloadType::VENDOR_ID => Payload::VendorId(b.to_vec()),
            PayloadType::TSI => Payload::TsI(TrafficSelector::parse_ts(b)?),
            PayloadType::TSR => Payload::TsR(TrafficSelector::parse_ts(b)?),
            PayloadType::SK => Payload::Encrypted(EncryptedPayload {
                next_payload: raw.next_payload,
                body: b.to_vec(),
            }),
            PayloadType::SKF => {
                Payload::EncryptedFragment(EncryptedFragment::parse(raw.next_payload, b)?)
            }
            t if raw.critical => return Err(Error::UnsupportedCriticalPayload(t.0)),
            t => Payload::Unknown {
                payload_type: t,
                data: b.to_vec(),
            },
        })
    }

    /// Octets of the body (without the generic header).
    pub fn body_len(&self) -> usize {
        match self {
            Payload::Sa(p) => Proposal::sa_buffer_len(p),
            Payload::Ke(p) => p.buffer_len(),
            Payload::IdI(p) | Payload::IdR(p) => p.buffer_len(),
            Payload::Auth(p) => p.buffer_len(),
            Payload::Notify(p) => p.buffer_len(),
            Payload::Delete(p) => p.buffer_len(),
            Payload::TsI(t) | Payload::TsR(t) => TrafficSelector::ts_buffer_len(t),
            Payload::Encrypted(p) => p.body.len(),
            Payload::EncryptedFragment(p) => p.buffer_len(),
            Payload::Cert(d)
            | Payload::CertReq(d)
            | Payload::Nonce(d)
            | Payload::VendorId(d)
            | Payload::Unknown { data: d, .. } => d.len(),
        }
    }

    /// Octets of the payload including its generic header.
    pub fn buffer_len(&self) -> usize {
        GENERIC_HEADER_LEN + self.body_len()
    }

    /// Emits the body (without the generic header).
    pub fn emit_body(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        match self {
            Payload::Sa(p) => Proposal::emit_sa(p, out),
            Payload::Ke(p) => p.emit(out),
            Payload::IdI(p) | Payload::IdR(p) => p.emit(out),
            Payload::Auth(p) => p.emit(out),
            Payload::Notify(p) => p.emit(out),
            Payload::Delete(p) => p.emit(out),
            Payload::TsI(t) | Payload::TsR(t) => TrafficSelector::emit_ts(t, out),
            Payload::EncryptedFragment(p) => p.emit(out),
            Payload::Encrypted(EncryptedPayload { body: d, .. })
            | Payload::Cert(d)
            | Payload::CertReq(d)
            | Payload::Nonce(d)
            | Payload::VendorId(d)
            | Payload::Unknown { data: d, .. } => {
                out.extend_from_slice(d);
                Ok(())
            }
        }
    }

    fn is_encrypted(&self) -> bool {
        matches!(self, Payload::Encrypted(_) | Payload::EncryptedFragment(_))
    }
}

/// Parses a payload chain that starts with a payload of type `first` and fills `bytes`
/// exactly: the payloads after the IKE header, or the decrypted content of an SK payload
/// (`first` = [`EncryptedPayload::next_payload`], `bytes` = plaintext without padding).
pub fn parse_chain(first: PayloadType, bytes: &[u8]) -> Result<Vec<Payload>, Error> {
    let mut it = PayloadIter::new(first, bytes);
    let mut out = Vec::new();
    for raw in it.by_ref() {
        out.push(Payload::parse(&raw?)?);
    }
    it.finish()?;
    Ok(out)
}

/// The raw body of the first payload of type `wanted` in a chain (e.g. IDi for the AUTH
/// computation, taken verbatim). `None` if absent or if the chain is malformed before it.
pub fn raw_body(first: PayloadType, bytes: &[u8], wanted: PayloadType) -> Option<&[u8]> {
    PayloadIter::new(first, bytes)
        .map_while(Result::ok)
        .find(|p| p.payload_type == wanted)
        .map(|p| p.body)
}

/// Emits a payload chain (generic headers with correct next-payload and length fields)
/// and returns the type of the first payload (NONE if empty) with the bytes, e.g. the
/// plaintext to put in an SK payload.
pub fn emit_chain(payloads: &[Payload]) -> Result<(PayloadType, Vec<u8>), Error> {
    let mut out = Vec::with_capacity(payloads.iter().map(Payload::buffer_len).sum());
    let first = emit_chain_into(payloads, &mut out)?;
    Ok((first, out))
}

fn emit_chain_into(payloads: &[Payload], out: &mut Vec<u8>) -> Result<PayloadType, Error> {
    for (i, p) in payloads.iter().enumerate() {
        let next = match (p, payloads.get(i + 1)) {
            (Payload::Encrypted(_) | Payload::EncryptedFragment(_), Some(_)) => {
                return Err(Error::InvalidValue("SK/SKF payload not last"));
            }
            (Payload::Encrypted(e), None) => e.next_payload,
            (Payload::EncryptedFragment(f), None) => f.next_payload,
            (_, Some(n)) => n.payload_type(),
            (_, None) => PayloadType::NONE,
        };
        if let Payload::Unknown { payload_type, .. } = p {
            if payload_type.is_known() || *payload_type == PayloadType::NONE {
                return Err(Error::InvalidValue("Unknown payload with a known type"));
            }
        }
        let start = out.len();
        out.push(next.0);
        out.push(0);
        put_u16(out, 0);
        p.emit_body(out)?;
        let len = len_u16(out.len() - start, "payload")?;
        patch_u16(out, start + 2, len);
        debug_assert!(!p.is_encrypted() || i + 1 == payloads.len());
    }
    Ok(payloads
        .first()
        .map(Payload::payload_type)
        .unwrap_or(PayloadType::NONE))
}

/// Appends an IKE header and an SK generic header to `out`, with the final length fields
/// for an SK body (IV | ciphertext | ICV) of `body_len` octets, and returns the offset in
/// `out` where the body goes. The caller appends the body there and computes the ICV over
/// `out[start .. offset + body_len - icv_len]` (RFC 7296 §3.14).
pub fn emit_encrypted_prefix(
    out: &mut Vec<u8>,
    header: &HeaderRepr,
    inner_first: PayloadType,
    body_len: usize,
) -> Result<usize, Error> {
    let payload_len = len_u16(GENERIC_HEADER_LEN + body_len, "SK payload")?;
    let total = u32::try_from(ENCRYPTED_BODY_OFFSET + body_len)
        .map_err(|_| Error::TooLong("IKE message"))?;
    let start = out.len();
    out.resize(start + HEADER_LEN, 0);
    header.emit(
        &mut Header::new_unchecked(&mut out[start..]),
        PayloadType::SK,
        total,
    );
    out.push(inner_first.0);
    out.push(0);
    put_u16(out, payload_len);
    Ok(out.len())
}

/// Like [`emit_encrypted_prefix`] for an SKF fragment (RFC 7383 §2.5): appends the IKE
/// header, the SKF generic header, fragment number and total, and returns the offset where
/// the body goes. `inner_first` must be NONE for fragments other than number 1. The ICV
/// covers `out[start .. offset + body_len - icv_len]`.
pub fn emit_fragment_prefix(
    out: &mut Vec<u8>,
    header: &HeaderRepr,
    inner_first: PayloadType,
    number: u16,
    total: u16,
    body_len: usize,
) -> Result<usize, Error> {
    let payload_len = len_u16(
        GENERIC_HEADER_LEN + FRAGMENT_FIELDS_LEN + body_len,
        "SKF payload",
    )?;
    let msg_len = u32::try_from(FRAGMENT_BODY_OFFSET + body_len)
        .map_err(|_| Error::TooLong("IKE message"))?;
    let start = out.len();
    out.resize(start + HEADER_LEN, 0);
    header.emit(
        &mut Header::new_unchecked(&mut out[start..]),
        PayloadType::SKF,
        msg_len,
    );
    out.push(inner_first.0);
    out.push(0);
    put_u16(out, payload_len);
    put_u16(out, number);
    put_u16(out, total);
    Ok(out.len())
}

/// A whole IKE message: header and payload chain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Message {
    /// The header (next payload and length are derived when emitting).
    pub header: HeaderRepr,
    /// The payloads, in order. If the message is protected, the last (usually only) payload
    /// is [`Payload::Encrypted`] or [`Payload::EncryptedFragment`].
    pub payloads: Vec<Payload>,
}

impl Message {
    /// Parses a whole message (one UDP datagram, without the non-ESP marker on port 4500).
    /// Fails if the header length differs from `bytes.len()`, on any malformed payload, on
    /// an unknown critical payload, and on octets after the chain.
    pub fn parse(bytes: &[u8]) -> Result<Message, Error> {
        let h = Header::new_checked(bytes)?;
        let header = HeaderRepr::parse(&h)?;
        let payloads = parse_chain(h.next_payload(), bytes.get(HEADER_LEN..).unwrap_or(&[]))?;
        Ok(Message { header, payloads })
    }

    /// Octets of the emitted message.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payloads.iter().map(Payload::buffer_len).sum::<usize>()
    }

    /// Emits the message. Fails only if a value does not fit its field
    /// ([`Error::TooLong`]), if SK/SKF is not last, or on an [`Payload::Unknown`] with a
    /// known type ([`Error::InvalidValue`]).
    pub fn emit(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(self.buffer_len());
        out.resize(HEADER_LEN, 0);
        let first = emit_chain_into(&self.payloads, &mut out)?;
        let len = u32::try_from(out.len()).map_err(|_| Error::TooLong("IKE message"))?;
        self.header
            .emit(&mut Header::new_unchecked(&mut out[..]), first, len);
        Ok(out)
    }
}

/// Lookups over a parsed payload list (a [`Message::payloads`] or the result of
/// [`parse_chain`] on decrypted SK content).
pub trait PayloadSlice {
    /// The first payload of a type.
    fn first_of(&self, t: PayloadType) -> Option<&Payload>;
    /// All Notify payloads, in order.
    fn notifies(&self) -> impl Iterator<Item = &NotifyPayload>;
    /// The first Notify of a type.
    fn notify(&self, t: NotifyType) -> Option<&NotifyPayload>;
    /// The first Notify of an error type (< 16384).
    fn error_notify(&self) -> Option<&NotifyPayload>;
    /// All Delete payloads, in order.
    fn deletes(&self) -> impl Iterator<Item = &DeletePayload>;
    /// The proposals of the first SA payload.
    fn sa(&self) -> Option<&[Proposal]>;
    /// The first KE payload.
    fn ke(&self) -> Option<&KePayload>;
    /// The data of the first Nonce payload.
    fn nonce(&self) -> Option<&[u8]>;
    /// The first IDi payload.
    fn id_i(&self) -> Option<&IdPayload>;
    /// The first IDr payload.
    fn id_r(&self) -> Option<&IdPayload>;
    /// The first AUTH payload.
    fn auth(&self) -> Option<&AuthPayload>;
    /// The selectors of the first TSi payload.
    fn ts_i(&self) -> Option<&[TrafficSelector]>;
    /// The selectors of the first TSr payload.
    fn ts_r(&self) -> Option<&[TrafficSelector]>;
    /// The SK payload.
    fn encrypted(&self) -> Option<&EncryptedPayload>;
    /// The SKF payload.
    fn fragment(&self) -> Option<&EncryptedFragment>;
}

impl PayloadSlice for [Payload] {
    fn first_of(&self, t: PayloadType) -> Option<&Payload> {
        self.iter().find(|p| p.payload_type() == t)
    }

    fn notifies(&self) -> impl Iterator<Item = &NotifyPayload> {
        self.iter().filter_map(|p| match p {
            Payload::Notify(n) => Some(n),
            _ => None,
        })
    }

    fn notify(&self, t: NotifyType) -> Option<&NotifyPayload> {
        self.notifies().find(|n| n.notify_type == t)
    }

    fn error_notify(&self) -> Option<&NotifyPayload> {
        self.notifies().find(|n| n.notify_type.is_error())
    }

    fn deletes(&self) -> impl Iterator<Item = &DeletePayload> {
        self.iter().filter_map(|p| match p {
            Payload::Delete(d) => Some(d),
            _ => None,
        })
    }

    fn sa(&self) -> Option<&[Proposal]> {
        self.iter().find_map(|p| match p {
            Payload::Sa(v) => Some(v.as_slice()),
            _ => None,
        })
    }

    fn ke(&self) -> Option<&KePayload> {
        self.iter().find_map(|p| match p {
            Payload::Ke(v) => Some(v),
            _ => None,
        })
    }

    fn nonce(&self) -> Option<&[u8]> {
        self.iter().find_map(|p| match p {
            Payload::Nonce(v) => Some(v.as_slice()),
            _ => None,
        })
    }

    fn id_i(&self) -> Option<&IdPayload> {
        self.iter().find_map(|p| match p {
            Payload::IdI(v) => Some(v),
            _ => None,
        })
    }

    fn id_r(&self) -> Option<&IdPayload> {
        self.iter().find_map(|p| match p {
            Payload::IdR(v) => Some(v),
            _ => None,
        })
    }

    fn auth(&self) -> Option<&AuthPayload> {
        self.iter().find_map(|p| match p {
            Payload::Auth(v) => Some(v),
            _ => None,
        })
    }

    fn ts_i(&self) -> Option<&[TrafficSelector]> {
        self.iter().find_map(|p| match p {
            Payload::TsI(v) => Some(v.as_slice()),
            _ => None,
        })
    }

    fn ts_r(&self) -> Option<&[TrafficSelector]> {
        self.iter().find_map(|p| match p {
            Payload::TsR(v) => Some(v.as_slice()),
            _ => None,
        })
    }

    fn encrypted(&self) -> Option<&EncryptedPayload> {
        self.iter().find_map(|p| match p {
            Payload::Encrypted(v) => Some(v),
            _ => None,
        })
    }

    fn fragment(&self) -> Option<&EncryptedFragment> {
        self.iter().find_map(|p| match p {
            Payload::EncryptedFragment(v) => Some(v),
            _ => None,
        })
    }
}
