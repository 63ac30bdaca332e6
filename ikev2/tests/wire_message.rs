//! Message-level codec tests on hand-built bytes: construct/parse/emit of a small message,
//! error mapping (critical payloads, version, trailing data), the SK/SKF prefix helpers.

use ikev2::wire::{
    emit_chain, emit_encrypted_prefix, emit_fragment_prefix, parse_chain, EncryptedFragment,
    EncryptedPayload, Error, ExchangeType, Flags, Header, HeaderRepr, Message, NotifyPayload,
    NotifyType, Payload, PayloadSlice, PayloadType, ProtocolId, ENCRYPTED_BODY_OFFSET,
    FRAGMENT_BODY_OFFSET,
};

fn header() -> HeaderRepr {
    HeaderRepr {
        spi_i: 0x1111_2222_3333_4444,
        spi_r: 0x5555_6666_7777_8888,
        exchange_type: ExchangeType::INFORMATIONAL,
        flags: Flags {
            initiator: true,
            version: false,
            response: false,
        },
        message_id: 7,
    }
}

/// INFORMATIONAL (unencrypted, for the test): N(COOKIE, ab cd) then V(01 02 03).
#[rustfmt::skip]
static MSG: [u8; 45] = [
    0x11, 0x11, 0x22, 0x22, 0x33, 0x33, 0x44, 0x44, // SPIi
    0x55, 0x55, 0x66, 0x66, 0x77, 0x77, 0x88, 0x88, // SPIr
    0x29, 0x20, 0x25, 0x08, 0x00, 0x00, 0x00, 0x07, // N, 2.0, INFORMATIONAL, I, msg id 7
    0x00, 0x00, 0x00, 0x2d,                         // length 45
    0x2b, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x40, 0x06, 0xab, 0xcd, // N -> V, COOKIE
    0x00, 0x00, 0x00, 0x07, 0x01, 0x02, 0x03,       // V, last
];

fn msg() -> Message {
    Message {
        header: header(),
        payloads: vec![
            Payload::Notify(NotifyPayload::new(NotifyType::COOKIE, vec![0xab, 0xcd])),
            Payload::VendorId(vec![1, 2, 3]),
        ],
    }
}

#[test]
fn parse() {
    assert_eq!(Message::parse(&MSG).unwrap(), msg());
}

#[test]
fn emit() {
    assert_eq!(msg().emit().unwrap(), MSG);
    assert_eq!(msg().buffer_len(), MSG.len());
}

#[test]
fn lookups() {
    let m = msg();
    assert_eq!(
        m.payloads.notify(NotifyType::COOKIE).unwrap().data,
        [0xab, 0xcd]
    );
    assert!(m.payloads.notify(NotifyType::INITIAL_CONTACT).is_none());
    assert_eq!(m.payloads.notifies().count(), 1);
    assert!(m.payloads.error_notify().is_none());
    assert!(m.payloads.first_of(PayloadType::VENDOR_ID).is_some());
    assert!(m.payloads.sa().is_none() && m.payloads.encrypted().is_none());
}

#[test]
fn check_len() {
    for n in 0..MSG.len() {
        assert!(Message::parse(&MSG[..n]).is_err());
    }
    let mut long = MSG.to_vec();
    long.push(0);
    assert_eq!(Message::parse(&long), Err(Error::BadLength("IKE header")));
}

fn with_payload_after_header(ptype: u8, critical: bool, body: &[u8]) -> Vec<u8> {
    let mut b = MSG[..28].to_vec();
    b[16] = ptype;
    b.extend_from_slice(&[0, if critical { 0x80 } else { 0 }]);
    b.extend_from_slice(&((4 + body.len()) as u16).to_be_bytes());
    b.extend_from_slice(body);
    let len = b.len() as u32;
    b[24..28].copy_from_slice(&len.to_be_bytes());
    b
}

#[test]
fn unknown_payloads() {
    // Non-critical unknown (CP, 47): kept and re-emitted.
    let b = with_payload_after_header(47, false, &[9, 9]);
    let m = Message::parse(&b).unwrap();
    assert_eq!(
        m.payloads,
        [Payload::Unknown {
            payload_type: PayloadType::CP,
            data: vec![9, 9]
        }]
    );
    assert_eq!(m.emit().unwrap(), b);
    // Critical unknown: UNSUPPORTED_CRITICAL_PAYLOAD with the type as data.
    let b = with_payload_after_header(200, true, &[]);
    let e = Message::parse(&b).unwrap_err();
    assert_eq!(e, Error::UnsupportedCriticalPayload(200));
    assert_eq!(e.notify_type(), NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD);
    assert_eq!(e.notify_data(), [200]);
    // The critical bit on a known payload is ignored (RFC 7296 §3.2).
    let b = with_payload_after_header(43, true, &[1]);
    assert_eq!(
        Message::parse(&b).unwrap().payloads,
        [Payload::VendorId(vec![1])]
    );
    // Emitting an Unknown with a known type is refused.
    let bad = Message {
        header: header(),
        payloads: vec![Payload::Unknown {
            payload_type: PayloadType::SA,
            data: vec![],
        }],
    };
    assert!(matches!(bad.emit(), Err(Error::InvalidValue(_))));
}

#[test]
fn version_error_keeps_header_readable() {
    let mut b = MSG;
    b[17] = 0x30;
    let e = Message::parse(&b).unwrap_err();
    assert_eq!(e, Error::InvalidMajorVersion(3));
    assert_eq!(e.notify_type(), NotifyType::INVALID_MAJOR_VERSION);
    // The caller can still read what it needs to answer.
    let h = Header::new_checked(&b[..]).unwrap();
    assert_eq!(h.spi_i(), 0x1111_2222_3333_4444);
    assert_eq!(h.message_id(), 7);
}

#[test]
fn syntax_errors_map_to_invalid_syntax() {
    // A Notify whose SPI size runs past the body.
    let b = with_payload_after_header(41, false, &[3, 4, 0x40, 0x09, 1]);
    let e = Message::parse(&b).unwrap_err();
    assert_eq!(e, Error::Truncated("Notify SPI"));
    assert_eq!(e.notify_type(), NotifyType::INVALID_SYNTAX);
    assert!(e.notify_data().is_empty());
    assert!(!e.to_string().is_empty());
}

#[test]
fn sk_is_last() {
    // SK (inner first = IDi) then one more octet: trailing data.
    let mut b = with_payload_after_header(46, false, &[0xee; 20]);
    b[28] = 35;
    let m = Message::parse(&b).unwrap();
    assert_eq!(
        m.payloads,
        [Payload::Encrypted(EncryptedPayload {
            next_payload: PayloadType::IDI,
            body: vec![0xee; 20]
        })]
    );
    b.push(0);
    let len = b.len() as u32;
    b[24..28].copy_from_slice(&len.to_be_bytes());
    assert_eq!(
        Message::parse(&b),
        Err(Error::TrailingData("payload chain"))
    );
    // Emitting SK anywhere but last is refused.
    let bad = Message {
        header: header(),
        payloads: vec![m.payloads[0].clone(), Payload::VendorId(vec![])],
    };
    assert!(matches!(bad.emit(), Err(Error::InvalidValue(_))));
}

#[test]
fn encrypted_prefix_matches_message_emit() {
    let body = vec![0x5a; 48];
    let mut out = vec![0xff; 3]; // appends after existing content
    let off = emit_encrypted_prefix(&mut out, &header(), PayloadType::IDI, body.len()).unwrap();
    assert_eq!(off, 3 + ENCRYPTED_BODY_OFFSET);
    out.extend_from_slice(&body);
    let m = Message {
        header: header(),
        payloads: vec![Payload::Encrypted(EncryptedPayload {
            next_payload: PayloadType::IDI,
            body,
        })],
    };
    assert_eq!(out[3..], m.emit().unwrap());
    assert_eq!(Message::parse(&out[3..]).unwrap(), m);
    assert_eq!(
        emit_encrypted_prefix(&mut Vec::new(), &header(), PayloadType::IDI, 65532),
        Err(Error::TooLong("SK payload"))
    );
}

#[test]
fn fragment_prefix_matches_message_emit() {
    let body = vec![0x33; 40];
    let mut out = Vec::new();
    let off =
        emit_fragment_prefix(&mut out, &header(), PayloadType::IDI, 1, 3, body.len()).unwrap();
    assert_eq!(off, FRAGMENT_BODY_OFFSET);
    out.extend_from_slice(&body);
    let m = Message {
        header: header(),
        payloads: vec![Payload::EncryptedFragment(EncryptedFragment {
            next_payload: PayloadType::IDI,
            number: 1,
            total: 3,
            body,
        })],
    };
    assert_eq!(out, m.emit().unwrap());
    let back = Message::parse(&out).unwrap();
    let f = back.payloads.fragment().unwrap();
    assert_eq!(
        (f.number, f.total, f.next_payload),
        (1, 3, PayloadType::IDI)
    );
}

#[test]
fn inner_chain_round_trip() {
    let inner = vec![
        Payload::Notify(NotifyPayload {
            protocol: ProtocolId::ESP,
            spi: vec![0xc0, 0, 0, 1],
            notify_type: NotifyType::REKEY_SA,
            data: vec![],
        }),
        Payload::Nonce(vec![7; 32]),
    ];
    let (first, bytes) = emit_chain(&inner).unwrap();
    assert_eq!(first, PayloadType::NOTIFY);
    assert_eq!(parse_chain(first, &bytes).unwrap(), inner);
    assert_eq!(
        parse_chain(first, &bytes)
            .unwrap()
            .notify(NotifyType::REKEY_SA)
            .unwrap()
            .spi_u32(),
        Some(0xc000_0001)
    );
    assert_eq!(emit_chain(&[]).unwrap(), (PayloadType::NONE, vec![]));
    assert_eq!(parse_chain(PayloadType::NONE, &[]).unwrap(), vec![]);
    assert_eq!(
        parse_chain(PayloadType::NONE, &[0]),
        Err(Error::TrailingData("payload chain"))
    );
}

#[test]
fn too_long_values_are_refused() {
    let m = Message {
        header: header(),
        payloads: vec![Payload::Nonce(vec![0; 70_000])],
    };
    assert_eq!(m.emit(), Err(Error::TooLong("payload")));
    let m = Message {
        header: header(),
        payloads: vec![Payload::Notify(NotifyPayload {
            protocol: ProtocolId::ESP,
            spi: vec![0; 300],
            notify_type: NotifyType::INVALID_SPI,
            data: vec![],
        })],
    };
    assert_eq!(m.emit(), Err(Error::TooLong("Notify SPI")));
}
