//! Property tests for the IKEv2 codec: arbitrary Repr → emit → parse == Repr, and parsing
//! random or mutated bytes never panics (and what parses re-emits to the same Repr).

use std::net::{Ipv4Addr, Ipv6Addr};

use ikev2::wire::{
    emit_chain, parse_chain, AddrRange, Attribute, AttributeType, AttributeValue, AuthMethod,
    AuthPayload, DeletePayload, EncryptedFragment, EncryptedPayload, ExchangeType, Flags,
    HeaderRepr, IdPayload, IdType, KePayload, Message, NotifyPayload, NotifyType, Payload,
    PayloadType, Proposal, ProtocolId, TrafficSelector, Transform, TransformType,
};
use proptest::prelude::*;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

fn attribute() -> impl Strategy<Value = Attribute> {
    (
        0u16..0x8000,
        prop_oneof![
            any::<u16>().prop_map(AttributeValue::Tv),
            bytes(8).prop_map(AttributeValue::Tlv)
        ],
    )
        .prop_map(|(t, value)| Attribute {
            attr_type: AttributeType(t),
            value,
        })
}

fn transform() -> impl Strategy<Value = Transform> {
    (
        any::<u8>(),
        any::<u16>(),
        prop::collection::vec(attribute(), 0..3),
    )
        .prop_map(|(t, id, attributes)| Transform {
            transform_type: TransformType(t),
            id,
            attributes,
        })
}

fn proposal() -> impl Strategy<Value = Proposal> {
    (
        any::<u8>(),
        any::<u8>(),
        bytes(9),
        prop::collection::vec(transform(), 0..6),
    )
        .prop_map(|(number, p, spi, transforms)| Proposal {
            number,
            protocol: ProtocolId(p),
            spi,
            transforms,
        })
}

fn selector() -> impl Strategy<Value = TrafficSelector> {
    let v4 = (any::<u32>(), any::<u32>())
        .prop_map(|(a, b)| AddrRange::V4(Ipv4Addr::from(a), Ipv4Addr::from(b)));
    let v6 = (any::<u128>(), any::<u128>())
        .prop_map(|(a, b)| AddrRange::V6(Ipv6Addr::from(a), Ipv6Addr::from(b)));
    (any::<u8>(), any::<u16>(), any::<u16>(), prop_oneof![v4, v6]).prop_map(
        |(ip_protocol, start_port, end_port, range)| TrafficSelector {
            ip_protocol,
            start_port,
            end_port,
            range,
        },
    )
}

/// Payload types with no dedicated variant (never NONE, never a known type).
fn unknown_type() -> impl Strategy<Value = PayloadType> {
    prop_oneof![1u8..=32, 47u8..=52, 54u8..=255].prop_map(PayloadType)
}

/// Any payload except SK/SKF (which must be last).
fn plain_payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        prop::collection::vec(proposal(), 1..4).prop_map(Payload::Sa),
        (any::<u16>(), bytes(64)).prop_map(|(group, data)| Payload::Ke(KePayload { group, data })),
        (any::<u8>(), bytes(20)).prop_map(|(t, data)| Payload::IdI(IdPayload {
            id_type: IdType(t),
            data
        })),
        (any::<u8>(), bytes(20)).prop_map(|(t, data)| Payload::IdR(IdPayload {
            id_type: IdType(t),
            data
        })),
        bytes(20).prop_map(Payload::Cert),
        bytes(20).prop_map(Payload::CertReq),
        (any::<u8>(), bytes(32)).prop_map(|(m, data)| Payload::Auth(AuthPayload {
            method: AuthMethod(m),
            data
        })),
        bytes(64).prop_map(Payload::Nonce),
        (any::<u8>(), bytes(8), any::<u16>(), bytes(24)).prop_map(|(p, spi, t, data)| {
            Payload::Notify(NotifyPayload {
                protocol: ProtocolId(p),
                spi,
                notify_type: NotifyType(t),
                data,
            })
        }),
        (any::<u8>(), prop::collection::vec(any::<u32>(), 0..5)).prop_map(|(p, spis)| {
            Payload::Delete(DeletePayload {
                protocol: ProtocolId(p),
                spis,
            })
        }),
        bytes(20).prop_map(Payload::VendorId),
        prop::collection::vec(selector(), 0..4).prop_map(Payload::TsI),
        prop::collection::vec(selector(), 0..4).prop_map(Payload::TsR),
        (unknown_type(), bytes(20))
            .prop_map(|(payload_type, data)| Payload::Unknown { payload_type, data }),
    ]
}

fn encrypted_payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        (any::<u8>(), bytes(80)).prop_map(|(n, body)| Payload::Encrypted(EncryptedPayload {
            next_payload: PayloadType(n),
            body
        })),
        (any::<u8>(), any::<u16>(), any::<u16>(), bytes(80)).prop_map(
            |(n, number, total, body)| Payload::EncryptedFragment(EncryptedFragment {
                next_payload: PayloadType(n),
                number,
                total,
                body
            })
        ),
    ]
}

fn chain() -> impl Strategy<Value = Vec<Payload>> {
    (
        prop::collection::vec(plain_payload(), 0..6),
        prop::option::of(encrypted_payload()),
    )
        .prop_map(|(mut v, sk)| {
            v.extend(sk);
            v
        })
}

fn header() -> impl Strategy<Value = HeaderRepr> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u8>(),
        any::<u8>(),
        any::<u32>(),
    )
        .prop_map(|(spi_i, spi_r, x, f, message_id)| HeaderRepr {
            spi_i,
            spi_r,
            exchange_type: ExchangeType(x),
            flags: Flags::from_bits(f),
            message_id,
        })
}

fn message() -> impl Strategy<Value = Message> {
    (header(), chain()).prop_map(|(header, payloads)| Message { header, payloads })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn message_round_trip(m in message()) {
        let bytes = m.emit().unwrap();
        prop_assert_eq!(bytes.len(), m.buffer_len());
        let back = Message::parse(&bytes).unwrap();
        prop_assert_eq!(&back, &m);
        // Emission is deterministic.
        prop_assert_eq!(back.emit().unwrap(), bytes);
    }

    #[test]
    fn chain_round_trip(c in chain()) {
        let (first, bytes) = emit_chain(&c).unwrap();
        prop_assert_eq!(parse_chain(first, &bytes).unwrap(), c);
    }

    #[test]
    fn random_bytes_never_panic(b in bytes(400)) {
        if let Ok(m) = Message::parse(&b) {
            let again = Message::parse(&m.emit().unwrap()).unwrap();
            prop_assert_eq!(again, m);
        }
    }

    #[test]
    fn random_chain_after_valid_header_never_panics(
        h in header(), first in any::<u8>(), body in bytes(300)
    ) {
        // A valid header with the right length, so the payload walker sees the garbage.
        let mut b = Message { header: h, payloads: vec![] }.emit().unwrap();
        b[16] = first;
        b.extend_from_slice(&body);
        let len = b.len() as u32;
        b[24..28].copy_from_slice(&len.to_be_bytes());
        if let Ok(m) = Message::parse(&b) {
            let again = Message::parse(&m.emit().unwrap()).unwrap();
            prop_assert_eq!(again, m);
        }
    }

    #[test]
    fn mutated_messages_never_panic(
        m in message(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut b = m.emit().unwrap();
        for (i, v) in flips {
            let i = i.index(b.len());
            b[i] ^= v;
        }
        for input in [&b[..], &b[..cut.index(b.len() + 1)]] {
            if let Ok(m) = Message::parse(input) {
                let again = Message::parse(&m.emit().unwrap()).unwrap();
                prop_assert_eq!(again, m);
            }
        }
    }

    #[test]
    fn prefix_cover_is_exact(a in any::<u32>(), b in any::<u32>()) {
        let (s, e) = (a.min(b), a.max(b));
        let ts = TrafficSelector {
            ip_protocol: 0,
            start_port: 0,
            end_port: 65535,
            range: AddrRange::V4(Ipv4Addr::from(s), Ipv4Addr::from(e)),
        };
        let prefixes = ts.to_prefixes();
        prop_assert!(!prefixes.is_empty() && prefixes.len() <= 62);
        // The prefixes are contiguous, ascending, and cover exactly [s, e].
        let mut next = u64::from(s);
        for (addr, len) in prefixes {
            let std::net::IpAddr::V4(a) = addr else { panic!("family changed") };
            let a = u64::from(u32::from(a));
            prop_assert_eq!(a, next);
            let size = 1u64 << (32 - u32::from(len));
            prop_assert_eq!(a % size, 0);
            next = a + size;
            // Each prefix as a selector round-trips to itself.
            let p = TrafficSelector::from_prefix(addr, len);
            prop_assert_eq!(p.as_prefix(), Some((addr, len)));
        }
        prop_assert_eq!(next, u64::from(e) + 1);
    }

    #[test]
    fn prefix_cover_v6(a in any::<u128>(), b in any::<u128>()) {
        let (s, e) = (a.min(b), a.max(b));
        let ts = TrafficSelector {
            ip_protocol: 0,
            start_port: 0,
            end_port: 65535,
            range: AddrRange::V6(Ipv6Addr::from(s), Ipv6Addr::from(e)),
        };
        let prefixes = ts.to_prefixes();
        prop_assert!(!prefixes.is_empty() && prefixes.len() <= 254);
        let mut next = Some(s);
        for (addr, len) in &prefixes {
            let std::net::IpAddr::V6(a) = addr else { panic!("family changed") };
            prop_assert_eq!(Some(u128::from(*a)), next);
            let host = 128 - u32::from(*len);
            let last = if host == 128 { u128::MAX } else { u128::from(*a) + ((1u128 << host) - 1) };
            next = last.checked_add(1);
        }
        prop_assert_eq!(next, e.checked_add(1));
    }
}
