//! The IKE header (RFC 7296 §3.1): a view ([`Header`]) and a parsed form ([`HeaderRepr`]).

use super::{Error, PayloadType};

/// Length of the fixed IKE header in octets.
pub const HEADER_LEN: usize = 28;

/// The version octet this crate sends: major 2, minor 0.
pub const IKE_VERSION: u8 = 0x20;

mod field {
    use core::ops::Range;
    pub(super) const SPI_I: Range<usize> = 0..8;
    pub(super) const SPI_R: Range<usize> = 8..16;
    pub(super) const NEXT_PAYLOAD: usize = 16;
    pub(super) const VERSION: usize = 17;
    pub(super) const EXCHANGE_TYPE: usize = 18;
    pub(super) const FLAGS: usize = 19;
    pub(super) const MESSAGE_ID: Range<usize> = 20..24;
    pub(super) const LENGTH: Range<usize> = 24..28;
}

const FLAG_INITIATOR: u8 = 0x08;
const FLAG_VERSION: u8 = 0x10;
const FLAG_RESPONSE: u8 = 0x20;

open_enum! {
    /// IKEv2 exchange type (RFC 7296 §3.1).
    pub struct ExchangeType(u8) {
        /// IKE_SA_INIT.
        IKE_SA_INIT = 34,
        /// IKE_AUTH.
        IKE_AUTH = 35,
        /// CREATE_CHILD_SA.
        CREATE_CHILD_SA = 36,
        /// INFORMATIONAL.
        INFORMATIONAL = 37,
    }
}

/// The header flags (RFC 7296 §3.1). The other five bits are sent as 0 and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags {
    /// I (0x08): set in messages sent by the original initiator of the IKE SA.
    pub initiator: bool,
    /// V (0x10): the sender can speak a higher major version.
    pub version: bool,
    /// R (0x20): this message is a response.
    pub response: bool,
}

impl Flags {
    /// Decodes the flags octet (unknown bits are ignored).
    pub fn from_bits(bits: u8) -> Flags {
        Flags {
            initiator: bits & FLAG_INITIATOR != 0,
            version: bits & FLAG_VERSION != 0,
            response: bits & FLAG_RESPONSE != 0,
        }
    }

    /// Encodes the flags octet.
    pub fn bits(self) -> u8 {
        let mut b = 0;
        if self.initiator {
            b |= FLAG_INITIATOR;
        }
        if self.version {
            b |= FLAG_VERSION;
        }
        if self.response {
            b |= FLAG_RESPONSE;
        }
        b
    }
}

/// A view over an IKE header. After [`Header::check_len`] (or `new_checked`) succeeded,
/// no getter panics. Setters panic if the buffer is shorter than [`HEADER_LEN`].
#[derive(Debug, Clone)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Wraps a buffer without checking its length.
    pub fn new_unchecked(buffer: T) -> Header<T> {
        Header { buffer }
    }

    /// Wraps a buffer and checks it holds at least a full header ([`Header::check_len`]).
    pub fn new_checked(buffer: T) -> Result<Header<T>, Error> {
        let h = Header::new_unchecked(buffer);
        h.check_len()?;
        Ok(h)
    }

    /// Checks that the buffer holds at least [`HEADER_LEN`] octets. It does not check the
    /// length field (see [`HeaderRepr::parse`]).
    pub fn check_len(&self) -> Result<(), Error> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated("IKE header"))
        } else {
            Ok(())
        }
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u64_at(&self, r: core::ops::Range<usize>) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.buffer.as_ref()[r]);
        u64::from_be_bytes(b)
    }

    fn u32_at(&self, r: core::ops::Range<usize>) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.buffer.as_ref()[r]);
        u32::from_be_bytes(b)
    }

    /// IKE SA Initiator's SPI.
    pub fn spi_i(&self) -> u64 {
        self.u64_at(field::SPI_I)
    }

    /// IKE SA Responder's SPI (0 in the first IKE_SA_INIT request).
    pub fn spi_r(&self) -> u64 {
        self.u64_at(field::SPI_R)
    }

    /// Type of the first payload.
    pub fn next_payload(&self) -> PayloadType {
        PayloadType(self.buffer.as_ref()[field::NEXT_PAYLOAD])
    }

    /// Major version (high nibble of the version octet).
    pub fn major_version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION] >> 4
    }

    /// Minor version (low nibble of the version octet).
    pub fn minor_version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION] & 0x0f
    }

    /// Exchange type.
    pub fn exchange_type(&self) -> ExchangeType {
        ExchangeType(self.buffer.as_ref()[field::EXCHANGE_TYPE])
    }

    /// Flags.
    pub fn flags(&self) -> Flags {
        Flags::from_bits(self.buffer.as_ref()[field::FLAGS])
    }

    /// Message ID.
    pub fn message_id(&self) -> u32 {
        self.u32_at(field::MESSAGE_ID)
    }

    /// Length of the whole message (header + payloads) in octets.
    pub fn length(&self) -> u32 {
        self.u32_at(field::LENGTH)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    /// Sets the initiator's SPI.
    pub fn set_spi_i(&mut self, v: u64) {
        self.buffer.as_mut()[field::SPI_I].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the responder's SPI.
    pub fn set_spi_r(&mut self, v: u64) {
        self.buffer.as_mut()[field::SPI_R].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the type of the first payload.
    pub fn set_next_payload(&mut self, v: PayloadType) {
        self.buffer.as_mut()[field::NEXT_PAYLOAD] = v.0;
    }

    /// Sets the version octet (major << 4 | minor); this crate sends [`IKE_VERSION`].
    pub fn set_version(&mut self, major: u8, minor: u8) {
        self.buffer.as_mut()[field::VERSION] = (major << 4) | (minor & 0x0f);
    }

    /// Sets the exchange type.
    pub fn set_exchange_type(&mut self, v: ExchangeType) {
        self.buffer.as_mut()[field::EXCHANGE_TYPE] = v.0;
    }

    /// Sets the flags.
    pub fn set_flags(&mut self, v: Flags) {
        self.buffer.as_mut()[field::FLAGS] = v.bits();
    }

    /// Sets the message ID.
    pub fn set_message_id(&mut self, v: u32) {
        self.buffer.as_mut()[field::MESSAGE_ID].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the message length.
    pub fn set_length(&mut self, v: u32) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&v.to_be_bytes());
    }
}

/// The parsed IKE header, without the fields that are derived when emitting (next payload,
/// length) and with the version fixed at 2.0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct HeaderRepr {
    /// IKE SA Initiator's SPI.
    pub spi_i: u64,
    /// IKE SA Responder's SPI.
    pub spi_r: u64,
    /// Exchange type.
    pub exchange_type: ExchangeType,
    /// Flags (I, V, R).
    pub flags: Flags,
    /// Message ID.
    pub message_id: u32,
}

impl HeaderRepr {
    /// Parses a header view: checks the length, the major version (must be 2: otherwise
    /// [`Error::InvalidMajorVersion`]; the minor version is ignored, RFC 7296 §2.5) and that
    /// the length field equals the buffer length ([`Error::BadLength`] otherwise).
    pub fn parse<T: AsRef<[u8]>>(h: &Header<T>) -> Result<HeaderRepr, Error> {
        h.check_len()?;
        if h.major_version() != 2 {
            return Err(Error::InvalidMajorVersion(h.major_version()));
        }
        let len = h.length();
        if len as usize != h.buffer.as_ref().len() {
            if (len as usize) > h.buffer.as_ref().len() {
                return Err(Error::Truncated("IKE message"));
            }
            return Err(Error::BadLength("IKE header"));
        }
        Ok(HeaderRepr {
            spi_i: h.spi_i(),
            spi_r: h.spi_r(),
            exchange_type: h.exchange_type(),
            flags: h.flags(),
            message_id: h.message_id(),
        })
    }

    /// The header of an IKE_SA_INIT message before the responder chose its SPI (SPIr 0,
    /// message ID 0): the initiator's request (`response` false), or a responder's answer
    /// that keeps no state, such as a COOKIE or an error notify (RFC 7296 §1.2, §2.6).
    pub fn sa_init(spi_i: u64, response: bool) -> HeaderRepr {
        HeaderRepr {
            spi_i,
            spi_r: 0,
            exchange_type: ExchangeType::IKE_SA_INIT,
            flags: Flags {
                initiator: !response,
                version: false,
                response,
            },
            message_id: 0,
        }
    }

    /// Octets needed by the header.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header with version 2.0 and the given first payload type and total length.
    /// Panics if the view's buffer is shorter than [`HEADER_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        h: &mut Header<T>,
        next_payload: PayloadType,
        length: u32,
    ) {
        h.set_spi_i(self.spi_i);
        h.set_spi_r(self.spi_r);
        h.set_next_payload(next_payload);
        h.set_version(2, 0);
        h.set_exchange_type(self.exchange_type);
        h.set_flags(self.flags);
        h.set_message_id(self.message_id);
        h.set_length(length);
    }
}

#[cfg(test)]
mod test {
    use super::*;

    // IKE_SA_INIT request header: SPIi 0x0102030405060708, SPIr 0, next SA (33),
    // version 2.0, exchange 34, flags I, message ID 0, length 28.
    static BYTES: [u8; 28] = [
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x21, 0x20, 0x22, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1c,
    ];

    fn repr() -> HeaderRepr {
        HeaderRepr::sa_init(0x0102030405060708, false)
    }

    #[test]
    fn sa_init_answer_keeps_no_state() {
        let h = HeaderRepr::sa_init(7, true);
        assert_eq!((h.spi_i, h.spi_r, h.message_id), (7, 0, 0));
        assert_eq!(h.exchange_type, ExchangeType::IKE_SA_INIT);
        assert!(h.flags.response && !h.flags.initiator && !h.flags.version);
    }

    #[test]
    fn deconstruct() {
        let h = Header::new_checked(&BYTES[..]).unwrap();
        assert_eq!(h.spi_i(), 0x0102030405060708);
        assert_eq!(h.spi_r(), 0);
        assert_eq!(h.next_payload(), PayloadType::SA);
        assert_eq!(h.major_version(), 2);
        assert_eq!(h.minor_version(), 0);
        assert_eq!(h.exchange_type(), ExchangeType::IKE_SA_INIT);
        assert!(h.flags().initiator && !h.flags().response && !h.flags().version);
        assert_eq!(h.message_id(), 0);
        assert_eq!(h.length(), 28);
    }

    #[test]
    fn construct() {
        let mut buf = [0xffu8; 28];
        let mut h = Header::new_unchecked(&mut buf[..]);
        h.set_spi_i(0x0102030405060708);
        h.set_spi_r(0);
        h.set_next_payload(PayloadType::SA);
        h.set_version(2, 0);
        h.set_exchange_type(ExchangeType::IKE_SA_INIT);
        h.set_flags(Flags::from_bits(0x08));
        h.set_message_id(0);
        h.set_length(28);
        assert_eq!(buf, BYTES);
    }

    #[test]
    fn parse() {
        let h = Header::new_checked(&BYTES[..]).unwrap();
        assert_eq!(HeaderRepr::parse(&h).unwrap(), repr());
    }

    #[test]
    fn emit() {
        let mut buf = [0u8; 28];
        repr().emit(
            &mut Header::new_unchecked(&mut buf[..]),
            PayloadType::SA,
            28,
        );
        assert_eq!(buf, BYTES);
    }

    #[test]
    fn check_len() {
        for n in 0..HEADER_LEN {
            assert_eq!(
                Header::new_checked(&BYTES[..n]).unwrap_err(),
                Error::Truncated("IKE header")
            );
        }
        assert!(Header::new_checked(&BYTES[..]).is_ok());
    }

    #[test]
    fn buffer_len() {
        assert_eq!(repr().buffer_len(), HEADER_LEN);
    }

    #[test]
    fn version_and_length_checks() {
        let mut b = BYTES;
        b[17] = 0x30;
        let h = Header::new_checked(&b[..]).unwrap();
        assert_eq!(HeaderRepr::parse(&h), Err(Error::InvalidMajorVersion(3)));
        // Minor version is ignored.
        b[17] = 0x2f;
        assert!(HeaderRepr::parse(&Header::new_checked(&b[..]).unwrap()).is_ok());
        // Length field larger / smaller than the buffer.
        b[27] = 0x1d;
        let h = Header::new_checked(&b[..]).unwrap();
        assert_eq!(HeaderRepr::parse(&h), Err(Error::Truncated("IKE message")));
        let mut long = b.to_vec();
        long.extend_from_slice(&[0, 0]);
        let h = Header::new_checked(&long[..]).unwrap();
        assert_eq!(HeaderRepr::parse(&h), Err(Error::BadLength("IKE header")));
    }

    #[test]
    fn flags_round_trip() {
        for bits in 0..=255u8 {
            let f = Flags::from_bits(bits);
            assert_eq!(f.bits(), bits & 0x38);
        }
    }
}
