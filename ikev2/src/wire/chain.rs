//! The generic payload header (RFC 7296 §3.2) and payload chain walking.

use super::Error;

/// Length of the generic payload header in octets.
pub const GENERIC_HEADER_LEN: usize = 4;

const CRITICAL: u8 = 0x80;

open_enum! {
    /// Payload type (RFC 7296 §3.2, RFC 7383 §2.5).
    pub struct PayloadType(u8) {
        /// No Next Payload (end of chain).
        NONE = 0,
        /// Security Association.
        SA = 33,
        /// Key Exchange.
        KE = 34,
        /// Identification - Initiator.
        IDI = 35,
        /// Identification - Responder.
        IDR = 36,
        /// Certificate.
        CERT = 37,
        /// Certificate Request.
        CERTREQ = 38,
        /// Authentication.
        AUTH = 39,
        /// Nonce (Ni, Nr).
        NONCE = 40,
        /// Notify.
        NOTIFY = 41,
        /// Delete.
        DELETE = 42,
        /// Vendor ID.
        VENDOR_ID = 43,
        /// Traffic Selector - Initiator.
        TSI = 44,
        /// Traffic Selector - Responder.
        TSR = 45,
        /// Encrypted and Authenticated.
        SK = 46,
        /// Configuration.
        CP = 47,
        /// Extensible Authentication.
        EAP = 48,
        /// Encrypted and Authenticated Fragment (RFC 7383).
        SKF = 53,
    }
}

impl PayloadType {
    /// True for the payload types this codec parses into a dedicated [`super::Payload`]
    /// variant (CP and EAP are not: they become `Payload::Unknown`).
    pub fn is_known(self) -> bool {
        matches!(self.0, 33..=46 | 53)
    }
}

mod field {
    use core::ops::Range;
    pub(super) const NEXT_PAYLOAD: usize = 0;
    pub(super) const CRITICAL: usize = 1;
    pub(super) const LENGTH: Range<usize> = 2..4;
}

/// A view over one payload: generic header plus body. After [`GenericPayload::check_len`]
/// succeeded no getter panics, and [`GenericPayload::body`] is exactly `length - 4` octets.
#[derive(Debug, Clone)]
pub struct GenericPayload<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> GenericPayload<T> {
    /// Wraps a buffer without checking it.
    pub fn new_unchecked(buffer: T) -> GenericPayload<T> {
        GenericPayload { buffer }
    }

    /// Wraps a buffer and runs [`GenericPayload::check_len`].
    pub fn new_checked(buffer: T) -> Result<GenericPayload<T>, Error> {
        let p = GenericPayload::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the buffer holds the generic header, that the payload length is at least
    /// 4, and that the buffer holds `length` octets (it may hold more: the next payload).
    pub fn check_len(&self) -> Result<(), Error> {
        let b = self.buffer.as_ref();
        if b.len() < GENERIC_HEADER_LEN {
            return Err(Error::Truncated("payload header"));
        }
        let len = self.payload_len() as usize;
        if len < GENERIC_HEADER_LEN {
            return Err(Error::BadLength("payload header"));
        }
        if len > b.len() {
            return Err(Error::Truncated("payload"));
        }
        Ok(())
    }

    /// Type of the next payload (for SK/SKF: of the first inner payload).
    pub fn next_payload(&self) -> PayloadType {
        PayloadType(self.buffer.as_ref()[field::NEXT_PAYLOAD])
    }

    /// The critical bit.
    pub fn critical(&self) -> bool {
        self.buffer.as_ref()[field::CRITICAL] & CRITICAL != 0
    }

    /// Payload length, including the generic header.
    pub fn payload_len(&self) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[field::LENGTH.start], b[field::LENGTH.start + 1]])
    }

    /// The payload body (after the generic header, up to the payload length).
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[GENERIC_HEADER_LEN..self.payload_len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GenericPayload<T> {
    /// Sets the next payload type.
    pub fn set_next_payload(&mut self, v: PayloadType) {
        self.buffer.as_mut()[field::NEXT_PAYLOAD] = v.0;
    }

    /// Sets the critical bit (and clears the reserved bits).
    pub fn set_critical(&mut self, v: bool) {
        self.buffer.as_mut()[field::CRITICAL] = if v { CRITICAL } else { 0 };
    }

    /// Sets the payload length (including the generic header).
    pub fn set_payload_len(&mut self, v: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }
}

/// One payload of a chain, borrowed from the message: its type, critical bit and raw body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPayload<'a> {
    /// The payload type (from the previous header's "next payload" field).
    pub payload_type: PayloadType,
    /// This payload's "next payload" field.
    pub next_payload: PayloadType,
    /// The critical bit.
    pub critical: bool,
    /// The body, without the generic header.
    pub body: &'a [u8],
}

/// Walks a payload chain over borrowed bytes. Yields `Err` once (then stops) on a malformed
/// chain. Stops after an SK or SKF payload (their "next payload" names the first inner
/// payload); the iteration is complete only if [`PayloadIter::remaining`] is then empty,
/// which [`PayloadIter::finish`] checks.
#[derive(Debug, Clone)]
pub struct PayloadIter<'a> {
    next: PayloadType,
    rest: &'a [u8],
    failed: bool,
}

impl<'a> PayloadIter<'a> {
    /// Starts a walk at a payload of type `first` at the start of `bytes`.
    pub fn new(first: PayloadType, bytes: &'a [u8]) -> PayloadIter<'a> {
        PayloadIter {
            next: first,
            rest: bytes,
            failed: false,
        }
    }

    /// The octets not consumed yet.
    pub fn remaining(&self) -> &'a [u8] {
        self.rest
    }

    /// After the iterator returned `None`: checks that no octets are left
    /// ([`Error::TrailingData`] otherwise).
    pub fn finish(&self) -> Result<(), Error> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(Error::TrailingData("payload chain"))
        }
    }
}

impl<'a> Iterator for PayloadIter<'a> {
    type Item = Result<RawPayload<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.next == PayloadType::NONE {
            return None;
        }
        let p = match GenericPayload::new_checked(self.rest) {
            Ok(p) => p,
            Err(e) => {
                self.failed = true;
                return Some(Err(e));
            }
        };
        let len = p.payload_len() as usize;
        let rest: &'a [u8] = self.rest;
        let raw = RawPayload {
            payload_type: self.next,
            next_payload: p.next_payload(),
            critical: p.critical(),
            // check_len guaranteed 4 <= len <= rest.len().
            body: rest.get(GENERIC_HEADER_LEN..len).unwrap_or(&[]),
        };
        self.rest = self.rest.get(len..).unwrap_or(&[]);
        self.next = if raw.payload_type == PayloadType::SK || raw.payload_type == PayloadType::SKF {
            PayloadType::NONE
        } else {
            raw.next_payload
        };
        Some(Ok(raw))
    }
}

#[cfg(test)]
mod test {
    use super::*;

    // Nonce (next = Notify, length 8, body 01 02 03 04) then Notify (next none, critical,
    // length 4, empty body).
    static CHAIN: [u8; 12] = [
        0x29, 0x00, 0x00, 0x08, 0x01, 0x02, 0x03, 0x04, 0x00, 0x80, 0x00, 0x04,
    ];

    #[test]
    fn deconstruct() {
        let p = GenericPayload::new_checked(&CHAIN[..]).unwrap();
        assert_eq!(p.next_payload(), PayloadType::NOTIFY);
        assert!(!p.critical());
        assert_eq!(p.payload_len(), 8);
        assert_eq!(p.body(), &[1, 2, 3, 4]);
    }

    #[test]
    fn construct() {
        let mut buf = [0xffu8; 8];
        let mut p = GenericPayload::new_unchecked(&mut buf[..]);
        p.set_next_payload(PayloadType::NOTIFY);
        p.set_critical(false);
        p.set_payload_len(8);
        buf[4..].copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(buf, CHAIN[..8]);
    }

    #[test]
    fn walk() {
        let mut it = PayloadIter::new(PayloadType::NONCE, &CHAIN);
        let a = it.next().unwrap().unwrap();
        assert_eq!(a.payload_type, PayloadType::NONCE);
        assert_eq!(a.body, &[1, 2, 3, 4]);
        let b = it.next().unwrap().unwrap();
        assert_eq!(b.payload_type, PayloadType::NOTIFY);
        assert!(b.critical);
        assert!(b.body.is_empty());
        assert!(it.next().is_none());
        assert!(it.finish().is_ok());
    }

    #[test]
    fn check_len() {
        assert_eq!(
            GenericPayload::new_checked(&CHAIN[..3]).unwrap_err(),
            Error::Truncated("payload header")
        );
        assert_eq!(
            GenericPayload::new_checked(&CHAIN[..7]).unwrap_err(),
            Error::Truncated("payload")
        );
        let bad = [0u8, 0, 0, 3];
        assert_eq!(
            GenericPayload::new_checked(&bad[..]).unwrap_err(),
            Error::BadLength("payload header")
        );
    }

    #[test]
    fn trailing_and_truncated_chain() {
        let mut it = PayloadIter::new(PayloadType::NONCE, &CHAIN[..10]);
        assert!(it.next().unwrap().is_ok());
        assert_eq!(
            it.next().unwrap().unwrap_err(),
            Error::Truncated("payload header")
        );
        assert!(it.next().is_none());
        let mut it = PayloadIter::new(PayloadType::NONCE, &CHAIN);
        let mut b = CHAIN;
        b[0] = 0;
        it = PayloadIter { rest: &b, ..it };
        assert!(it.next().unwrap().is_ok());
        assert!(it.next().is_none());
        assert_eq!(it.finish(), Err(Error::TrailingData("payload chain")));
    }
}
