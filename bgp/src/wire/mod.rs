//! BGP-4 message codec (RFC 4271 §4) in the view/`Repr` style.
//!
//! [`Header`] is a checked view over the 19-byte message header: after
//! [`Header::new_checked`] no accessor panics. Message bodies are parsed into owned `Repr`
//! types ([`OpenRepr`], [`UpdateRepr`], [`NotificationRepr`], [`RouteRefreshRepr`]) that emit
//! themselves again. Every parse error is a [`NotifyError`]: the NOTIFICATION
//! (code, subcode, data) to send to the peer. Nothing in this module panics on any input.

mod attr;
mod notification;
mod open;
mod update;

pub use attr::{
    AsPath, AsSegment, Origin, PathAttributes, RawAttribute, ATTR_AGGREGATOR, ATTR_AS4_AGGREGATOR,
    ATTR_AS4_PATH, ATTR_AS_PATH, ATTR_ATOMIC_AGGREGATE, ATTR_COMMUNITIES, ATTR_LARGE_COMMUNITIES,
    ATTR_LOCAL_PREF, ATTR_MED, ATTR_MP_REACH, ATTR_MP_UNREACH, ATTR_NEXT_HOP, ATTR_ORIGIN,
    FLAG_EXTENDED, FLAG_OPTIONAL, FLAG_PARTIAL, FLAG_TRANSITIVE,
};
pub use notification::{NotificationRepr, RouteRefreshRepr};
pub use open::{Capability, GracefulRestartCap, OpenRepr, AS_TRANS};
pub use update::{AttrError, MpReach, MpUnreach, UpdateRepr};

use std::fmt;

/// Length of the message header.
pub const HEADER_LEN: usize = 19;
/// Largest message without RFC 8654 extended messages.
pub const MAX_MESSAGE_LEN: usize = 4096;

/// SAFI 1 (unicast), the only one this speaker uses.
pub const SAFI_UNICAST: u8 = 1;

/// NOTIFICATION error codes and subcodes (RFC 4271 §4.5, RFC 4486, RFC 7313).
pub mod code {
    /// Message Header Error.
    pub const HEADER: u8 = 1;
    /// Header: connection not synchronized (bad marker).
    pub const HEADER_NOT_SYNC: u8 = 1;
    /// Header: bad message length.
    pub const HEADER_BAD_LENGTH: u8 = 2;
    /// Header: bad message type.
    pub const HEADER_BAD_TYPE: u8 = 3;
    /// OPEN Message Error.
    pub const OPEN: u8 = 2;
    /// OPEN: unsupported version number.
    pub const OPEN_BAD_VERSION: u8 = 1;
    /// OPEN: bad peer AS.
    pub const OPEN_BAD_PEER_AS: u8 = 2;
    /// OPEN: bad BGP identifier.
    pub const OPEN_BAD_BGP_ID: u8 = 3;
    /// OPEN: unsupported optional parameter.
    pub const OPEN_UNSUPPORTED_PARAM: u8 = 4;
    /// OPEN: unacceptable hold time.
    pub const OPEN_BAD_HOLD_TIME: u8 = 6;
    /// OPEN: unsupported capability (RFC 5492).
    pub const OPEN_UNSUPPORTED_CAPABILITY: u8 = 7;
    /// UPDATE Message Error.
    pub const UPDATE: u8 = 3;
    /// UPDATE: malformed attribute list.
    pub const UPDATE_MALFORMED_ATTR_LIST: u8 = 1;
    /// UPDATE: unrecognized well-known attribute.
    pub const UPDATE_UNRECOGNIZED_WELL_KNOWN: u8 = 2;
    /// UPDATE: missing well-known attribute.
    pub const UPDATE_MISSING_WELL_KNOWN: u8 = 3;
    /// UPDATE: attribute flags error.
    pub const UPDATE_ATTR_FLAGS: u8 = 4;
    /// UPDATE: attribute length error.
    pub const UPDATE_ATTR_LENGTH: u8 = 5;
    /// UPDATE: invalid ORIGIN attribute.
    pub const UPDATE_INVALID_ORIGIN: u8 = 6;
    /// UPDATE: invalid NEXT_HOP attribute.
    pub const UPDATE_INVALID_NEXT_HOP: u8 = 8;
    /// UPDATE: optional attribute error.
    pub const UPDATE_OPTIONAL_ATTR: u8 = 9;
    /// UPDATE: invalid network field.
    pub const UPDATE_INVALID_NETWORK: u8 = 10;
    /// UPDATE: malformed AS_PATH.
    pub const UPDATE_MALFORMED_AS_PATH: u8 = 11;
    /// Hold Timer Expired.
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    /// Finite State Machine Error.
    pub const FSM: u8 = 5;
    /// Cease (RFC 4486 subcodes below).
    pub const CEASE: u8 = 6;
    /// Cease: maximum number of prefixes reached.
    pub const CEASE_MAX_PREFIXES: u8 = 1;
    /// Cease: administrative shutdown.
    pub const CEASE_ADMIN_SHUTDOWN: u8 = 2;
    /// Cease: peer de-configured.
    pub const CEASE_PEER_DECONFIGURED: u8 = 3;
    /// Cease: administrative reset.
    pub const CEASE_ADMIN_RESET: u8 = 4;
    /// Cease: connection rejected.
    pub const CEASE_CONNECTION_REJECTED: u8 = 5;
    /// Cease: connection collision resolution.
    pub const CEASE_COLLISION: u8 = 7;
    /// ROUTE-REFRESH Message Error (RFC 7313).
    pub const ROUTE_REFRESH: u8 = 7;
    /// ROUTE-REFRESH: invalid message length.
    pub const ROUTE_REFRESH_BAD_LENGTH: u8 = 1;
}

/// A protocol error: the NOTIFICATION (code, subcode, data) that must be sent to the peer.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
#[error("BGP error {code}/{subcode} ({}) data {data:02x?}", error_name(*.code, *.subcode))]
pub struct NotifyError {
    /// Error code (see [`code`]).
    pub code: u8,
    /// Error subcode.
    pub subcode: u8,
    /// Diagnostic data.
    pub data: Vec<u8>,
}

impl fmt::Debug for NotifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl NotifyError {
    /// An error with the given code, subcode and data.
    pub fn new(code: u8, subcode: u8, data: impl Into<Vec<u8>>) -> NotifyError {
        NotifyError {
            code,
            subcode,
            data: data.into(),
        }
    }

    /// The NOTIFICATION message carrying this error.
    pub fn to_notification(&self) -> NotificationRepr {
        NotificationRepr {
            code: self.code,
            subcode: self.subcode,
            data: self.data.clone(),
        }
    }
}

impl From<NotifyError> for NotificationRepr {
    fn from(e: NotifyError) -> NotificationRepr {
        NotificationRepr {
            code: e.code,
            subcode: e.subcode,
            data: e.data,
        }
    }
}

/// Human-readable name of a NOTIFICATION code/subcode pair.
pub fn error_name(code: u8, subcode: u8) -> &'static str {
    match (code, subcode) {
        (1, 1) => "connection not synchronized",
        (1, 2) => "bad message length",
        (1, 3) => "bad message type",
        (1, _) => "message header error",
        (2, 1) => "unsupported version number",
        (2, 2) => "bad peer AS",
        (2, 3) => "bad BGP identifier",
        (2, 4) => "unsupported optional parameter",
        (2, 6) => "unacceptable hold time",
        (2, 7) => "unsupported capability",
        (2, _) => "OPEN message error",
        (3, 1) => "malformed attribute list",
        (3, 2) => "unrecognized well-known attribute",
        (3, 3) => "missing well-known attribute",
        (3, 4) => "attribute flags error",
        (3, 5) => "attribute length error",
        (3, 6) => "invalid ORIGIN",
        (3, 8) => "invalid NEXT_HOP",
        (3, 9) => "optional attribute error",
        (3, 10) => "invalid network field",
        (3, 11) => "malformed AS_PATH",
        (3, _) => "UPDATE message error",
        (4, _) => "hold timer expired",
        (5, _) => "finite state machine error",
        (6, 1) => "cease: maximum number of prefixes reached",
        (6, 2) => "cease: administrative shutdown",
        (6, 3) => "cease: peer de-configured",
        (6, 4) => "cease: administrative reset",
        (6, 5) => "cease: connection rejected",
        (6, 6) => "cease: other configuration change",
        (6, 7) => "cease: connection collision resolution",
        (6, 8) => "cease: out of resources",
        (6, 9) => "cease: hard reset",
        (6, _) => "cease",
        (7, _) => "route-refresh message error",
        _ => "unknown error",
    }
}

/// Error from emitting a `Repr` that does not fit the wire format (e.g. over 4096 bytes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot encode BGP message: {0}")]
pub struct EncodeError(pub &'static str);

/// Decoding/encoding context: what the session negotiated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ctx {
    /// Both sides advertised the 4-octet AS capability (RFC 6793): AS_PATH and AGGREGATOR
    /// carry 4-byte AS numbers.
    pub four_octet_as: bool,
}

impl Default for Ctx {
    fn default() -> Ctx {
        Ctx {
            four_octet_as: true,
        }
    }
}

/// BGP message types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    /// 1
    Open,
    /// 2
    Update,
    /// 3
    Notification,
    /// 4
    Keepalive,
    /// 5 (RFC 2918)
    RouteRefresh,
    /// Anything else.
    Unknown(u8),
}

impl From<u8> for MessageType {
    fn from(v: u8) -> MessageType {
        match v {
            1 => MessageType::Open,
            2 => MessageType::Update,
            3 => MessageType::Notification,
            4 => MessageType::Keepalive,
            5 => MessageType::RouteRefresh,
            x => MessageType::Unknown(x),
        }
    }
}

impl From<MessageType> for u8 {
    fn from(v: MessageType) -> u8 {
        match v {
            MessageType::Open => 1,
            MessageType::Update => 2,
            MessageType::Notification => 3,
            MessageType::Keepalive => 4,
            MessageType::RouteRefresh => 5,
            MessageType::Unknown(x) => x,
        }
    }
}

mod field {
    pub(super) const MARKER: std::ops::Range<usize> = 0..16;
    pub(super) const LENGTH: std::ops::Range<usize> = 16..18;
    pub(super) const TYPE: usize = 18;
}

/// A view over a BGP message header (and the body after it).
///
/// After [`Header::new_checked`] succeeds the buffer holds at least [`HEADER_LEN`] bytes and
/// no accessor panics. [`Header::new_unchecked`] plus the setters are for emitting into a
/// buffer the caller sized.
#[derive(Debug, Clone)]
pub struct Header<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Wraps a buffer without checking its length.
    pub fn new_unchecked(buffer: T) -> Header<T> {
        Header { buffer }
    }

    /// Wraps a buffer after [`Header::check_len`].
    pub fn new_checked(buffer: T) -> Option<Header<T>> {
        let h = Header { buffer };
        h.check_len().then_some(h)
    }

    /// True when the buffer holds a whole header.
    pub fn check_len(&self) -> bool {
        self.buffer.as_ref().len() >= HEADER_LEN
    }

    /// True when the marker is all ones.
    pub fn marker_ok(&self) -> bool {
        self.buffer.as_ref()[field::MARKER]
            .iter()
            .all(|&b| b == 0xff)
    }

    /// The length field (whole message, header included).
    pub fn length(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::LENGTH];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The type field.
    pub fn msg_type(&self) -> MessageType {
        MessageType::from(self.buffer.as_ref()[field::TYPE])
    }

    /// The message body (up to the length field, clamped to the buffer).
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        let end = usize::from(self.length()).clamp(HEADER_LEN, b.len());
        &b[HEADER_LEN..end]
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    /// Sets the marker to all ones.
    pub fn set_marker(&mut self) {
        self.buffer.as_mut()[field::MARKER].fill(0xff);
    }

    /// Sets the length field.
    pub fn set_length(&mut self, len: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&len.to_be_bytes());
    }

    /// Sets the type field.
    pub fn set_msg_type(&mut self, t: MessageType) {
        self.buffer.as_mut()[field::TYPE] = t.into();
    }
}

/// Checks the header at the front of a TCP byte stream and returns the length of the first
/// message: `Ok(None)` when more bytes are needed, `Err` on a bad marker or length.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, NotifyError> {
    let Some(h) = Header::new_checked(buf) else {
        return Ok(None);
    };
    if !h.marker_ok() {
        return Err(NotifyError::new(code::HEADER, code::HEADER_NOT_SYNC, []));
    }
    let len = usize::from(h.length());
    if !(HEADER_LEN..=MAX_MESSAGE_LEN).contains(&len) {
        return Err(NotifyError::new(
            code::HEADER,
            code::HEADER_BAD_LENGTH,
            h.length().to_be_bytes(),
        ));
    }
    Ok((buf.len() >= len).then_some(len))
}

/// A parsed BGP message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum Message {
    /// OPEN.
    Open(OpenRepr),
    /// UPDATE (possibly carrying an RFC 7606 outcome in [`UpdateRepr::error`]).
    Update(UpdateRepr),
    /// NOTIFICATION.
    Notification(NotificationRepr),
    /// KEEPALIVE.
    Keepalive,
    /// ROUTE-REFRESH.
    RouteRefresh(RouteRefreshRepr),
}

impl Message {
    /// Parses exactly one whole message (header included). Trailing bytes beyond the length
    /// field are an error.
    pub fn parse(buf: &[u8], ctx: &Ctx) -> Result<Message, NotifyError> {
        let len = match frame_len(buf)? {
            Some(l) if l == buf.len() => l,
            _ => {
                let l = Header::new_checked(buf).map(|h| h.length()).unwrap_or(0);
                return Err(NotifyError::new(
                    code::HEADER,
                    code::HEADER_BAD_LENGTH,
                    l.to_be_bytes(),
                ));
            }
        };
        let h = Header::new_unchecked(buf);
        let body = h.payload();
        let bad_len = || {
            NotifyError::new(
                code::HEADER,
                code::HEADER_BAD_LENGTH,
                (len as u16).to_be_bytes(),
            )
        };
        match h.msg_type() {
            MessageType::Open => {
                if len < 29 {
                    return Err(bad_len());
                }
                OpenRepr::parse(body).map(Message::Open)
            }
            MessageType::Update => {
                if len < 23 {
                    return Err(bad_len());
                }
                UpdateRepr::parse(body, ctx).map(Message::Update)
            }
            MessageType::Notification => {
                if len < 21 {
                    return Err(bad_len());
                }
                Ok(Message::Notification(NotificationRepr::parse(body)))
            }
            MessageType::Keepalive => {
                if len != HEADER_LEN {
                    return Err(bad_len());
                }
                Ok(Message::Keepalive)
            }
            MessageType::RouteRefresh => RouteRefreshRepr::parse(body).map(Message::RouteRefresh),
            MessageType::Unknown(t) => {
                Err(NotifyError::new(code::HEADER, code::HEADER_BAD_TYPE, [t]))
            }
        }
    }

    /// The message type.
    pub fn msg_type(&self) -> MessageType {
        match self {
            Message::Open(_) => MessageType::Open,
            Message::Update(_) => MessageType::Update,
            Message::Notification(_) => MessageType::Notification,
            Message::Keepalive => MessageType::Keepalive,
            Message::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }

    /// Emits the whole message (header included). Fails only when the result would exceed
    /// [`MAX_MESSAGE_LEN`] or a field does not fit its wire width.
    pub fn emit(&self, ctx: &Ctx) -> Result<Vec<u8>, EncodeError> {
        let mut out = vec![0u8; HEADER_LEN];
        match self {
            Message::Open(o) => o.emit(&mut out)?,
            Message::Update(u) => u.emit(&mut out, ctx)?,
            Message::Notification(n) => n.emit(&mut out),
            Message::Keepalive => {}
            Message::RouteRefresh(r) => r.emit(&mut out),
        }
        if out.len() > MAX_MESSAGE_LEN {
            return Err(EncodeError("message longer than 4096 bytes"));
        }
        let len = out.len() as u16;
        let mut h = Header::new_unchecked(&mut out[..]);
        h.set_marker();
        h.set_length(len);
        h.set_msg_type(self.msg_type());
        Ok(out)
    }
}

/// A bounds-checked reader over a byte slice. Every read returns `None` past the end.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf
    }
    pub(crate) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Some(a)
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }
    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.bytes(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.bytes(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEEPALIVE: [u8; 19] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0, 19, 4,
    ];

    #[test]
    fn header_view() {
        let h = Header::new_checked(&KEEPALIVE[..]).unwrap();
        assert!(h.marker_ok());
        assert_eq!(h.length(), 19);
        assert_eq!(h.msg_type(), MessageType::Keepalive);
        assert!(h.payload().is_empty());
        assert!(Header::new_checked(&KEEPALIVE[..18]).is_none());
    }

    #[test]
    fn keepalive_round_trip() {
        let ctx = Ctx::default();
        assert_eq!(Message::parse(&KEEPALIVE, &ctx), Ok(Message::Keepalive));
        assert_eq!(Message::Keepalive.emit(&ctx).unwrap(), KEEPALIVE);
    }

    #[test]
    fn header_errors() {
        let ctx = Ctx::default();
        let mut b = KEEPALIVE;
        b[3] = 0;
        assert_eq!(
            Message::parse(&b, &ctx).unwrap_err().subcode,
            code::HEADER_NOT_SYNC
        );
        let mut b = KEEPALIVE;
        b[17] = 18;
        let e = Message::parse(&b, &ctx).unwrap_err();
        assert_eq!((e.code, e.subcode, e.data.clone()), (1, 2, vec![0, 18]));
        let mut b = KEEPALIVE;
        b[18] = 9;
        assert_eq!(Message::parse(&b, &ctx).unwrap_err().data, vec![9]);
        let mut long = KEEPALIVE.to_vec();
        long.push(0);
        long[17] = 20;
        assert_eq!(Message::parse(&long, &ctx).unwrap_err().subcode, 2);
        assert_eq!(frame_len(&KEEPALIVE[..10]), Ok(None));
        assert_eq!(frame_len(&long[..19]), Ok(None));
        assert_eq!(frame_len(&long), Ok(Some(20)));
    }
}
