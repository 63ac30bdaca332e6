//! IKEv2 message codec (RFC 7296 §3, RFC 7383 fragments), in the smoltcp view/`Repr` style.
//!
//! # Layers
//!
//! * **Views** (zero-copy, borrowed): [`Header<T>`] over the 28-octet IKE header and
//!   [`GenericPayload<T>`] over one generic payload header + body, both with
//!   `new_unchecked`/`new_checked`/`check_len`, getters (`T: AsRef<[u8]>`) and setters
//!   (`T: AsMut<[u8]>`). [`PayloadIter`] walks a payload chain over borrowed bytes and yields
//!   [`RawPayload`]s (type, critical bit, raw body). Use it when you need the exact received
//!   bytes of a payload, e.g. the body of IDi/IDr for the AUTH computation (RFC 7296 §2.15).
//! * **Reprs** (parsed, owned `Vec<u8>` data: this is control-plane traffic):
//!   [`HeaderRepr`], [`Proposal`]/[`Transform`]/[`Attribute`] (SA), [`KePayload`],
//!   [`IdPayload`], [`AuthPayload`], [`NotifyPayload`], [`DeletePayload`],
//!   [`TrafficSelector`], [`EncryptedPayload`] (SK), [`EncryptedFragment`] (SKF).
//!   Each body Repr has `parse(body: &[u8]) -> Result<Self, Error>`, `buffer_len()` and
//!   `emit(&self, out: &mut Vec<u8>) -> Result<(), Error>` (emit only fails when a value does
//!   not fit its length field, e.g. a body over 65 531 octets or more than 255 transforms).
//!   SA and TS bodies are lists: [`Proposal::parse_sa`]/[`Proposal::emit_sa`] and
//!   [`TrafficSelector::parse_ts`]/[`TrafficSelector::emit_ts`].
//! * **High level**: [`Payload`] (one enum over every payload) and [`Message`]
//!   (`header` + `payloads`) with [`Message::parse`] / [`Message::emit`], the chain functions
//!   [`parse_chain`] / [`emit_chain`] (for the decrypted content of an SK payload),
//!   [`raw_body`] (a payload's body exactly as received, e.g. IDi for the AUTH octets), the
//!   lookup trait [`PayloadSlice`] (implemented for `[Payload]`: `sa()`, `nonce()`,
//!   `notify(NotifyType::COOKIE)`, ...), and the SK framing helpers
//!   [`emit_encrypted_prefix`] / [`emit_fragment_prefix`] that write the final header and
//!   SK/SKF generic header for a given body length, so the caller can place the encrypted
//!   body and compute the ICV over header .. end of ciphertext (RFC 7296 §3.14).
//!   [`Reassembly`] puts the decrypted contents of SKF fragments back together (RFC 7383).
//!
//! # Contract
//!
//! * Parsing never panics, on any input. After `check_len()` succeeded no getter of a view
//!   panics. Setters on a view built with `new_unchecked` over a short buffer may panic: when
//!   emitting, size the buffer with `buffer_len()` first (never use `new_checked` to emit).
//! * Wire enums are open newtypes ([`PayloadType`], [`NotifyType`], [`ExchangeType`], ...):
//!   unknown values round-trip; `Debug` prints the RFC name when known.
//! * Errors are a typed [`Error`] that maps to the Notify to answer with
//!   ([`Error::notify_type`]): `InvalidMajorVersion` → INVALID_MAJOR_VERSION,
//!   `UnsupportedCriticalPayload(t)` → UNSUPPORTED_CRITICAL_PAYLOAD (data = `[t]`), everything
//!   else → INVALID_SYNTAX. When [`Message::parse`] fails, [`Header::new_checked`] may still
//!   give the SPIs and message ID needed to answer.
//! * Unknown payloads without the critical bit are kept as [`Payload::Unknown`] and
//!   re-emitted; an unknown payload with the critical bit makes the whole chain fail with
//!   [`Error::UnsupportedCriticalPayload`]. The critical bit of known payloads is ignored on
//!   receipt and sent as 0 (RFC 7296 §3.2).
//! * The SK (46) and SKF (53) payloads end the outer chain: their "next payload" field is
//!   the type of the first *inner* payload ([`EncryptedPayload::next_payload`]), and any
//!   octet after them is an error.
//! * Semantic rules (nonce 16..=256 octets, proposal numbering, which payloads an exchange
//!   needs) are the state machine's job, not the codec's.
#![deny(unsafe_code)]

#[macro_use]
mod macros;
mod chain;
mod codec;
mod fragment;
mod header;
mod message;
mod payloads;
mod sa;
mod ts;

pub use chain::{GenericPayload, PayloadIter, PayloadType, RawPayload, GENERIC_HEADER_LEN};
pub use fragment::Reassembly;
pub use header::{ExchangeType, Flags, Header, HeaderRepr, HEADER_LEN, IKE_VERSION};
pub use message::{
    emit_chain, emit_encrypted_prefix, emit_fragment_prefix, parse_chain, raw_body, Message,
    Payload, PayloadSlice, ENCRYPTED_BODY_OFFSET, FRAGMENT_BODY_OFFSET,
};
pub use payloads::{
    AuthMethod, AuthPayload, DeletePayload, EncryptedFragment, EncryptedPayload, IdPayload, IdType,
    KePayload, NotifyPayload, NotifyType,
};
pub use sa::{
    dh, encr, esn, integ, prf, Attribute, AttributeType, AttributeValue, Proposal, ProtocolId,
    Transform, TransformType,
};
pub use ts::{AddrRange, TrafficSelector, TsType};

/// What is wrong with a message. Every variant maps to the Notify to answer with
/// ([`Error::notify_type`]). The `&'static str` names the structure at fault
/// (e.g. `"proposal"`, `"transform attribute"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The buffer ends before a fixed-size field or before the end a length field announces.
    #[error("{0}: truncated")]
    Truncated(&'static str),
    /// A length field is smaller than the fixed part of its structure, or disagrees with the
    /// enclosing length (e.g. the IKE header length differs from the datagram length).
    #[error("{0}: invalid length field")]
    BadLength(&'static str),
    /// Octets remain after the last structure (e.g. after SK, or after the last selector).
    #[error("{0}: trailing data")]
    TrailingData(&'static str),
    /// A field holds a value that the RFC forbids (e.g. a wrong "last substructure" value,
    /// a transform count that disagrees with the transforms present, an unknown TS type).
    #[error("{0}: invalid value")]
    InvalidValue(&'static str),
    /// The IKE major version is not 2 (RFC 7296 §2.5); holds the received major version.
    #[error("unsupported IKE major version {0}")]
    InvalidMajorVersion(u8),
    /// An unknown payload type with the critical bit set (RFC 7296 §2.5); holds its type.
    #[error("unsupported critical payload type {0}")]
    UnsupportedCriticalPayload(u8),
    /// Emitting only: a value does not fit its length or count field.
    #[error("{0}: too long to encode")]
    TooLong(&'static str),
}

impl Error {
    /// The Notify message type to answer with (RFC 7296 §3.10.1).
    pub fn notify_type(&self) -> NotifyType {
        match self {
            Error::InvalidMajorVersion(_) => NotifyType::INVALID_MAJOR_VERSION,
            Error::UnsupportedCriticalPayload(_) => NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD,
            _ => NotifyType::INVALID_SYNTAX,
        }
    }

    /// The Notification Data to send with [`Error::notify_type`]: the one-octet payload type
    /// for UNSUPPORTED_CRITICAL_PAYLOAD, empty otherwise (for INVALID_MAJOR_VERSION the
    /// version goes into the response header, not the data).
    pub fn notify_data(&self) -> Vec<u8> {
        match self {
            Error::UnsupportedCriticalPayload(t) => vec![*t],
            _ => Vec::new(),
        }
    }
}
