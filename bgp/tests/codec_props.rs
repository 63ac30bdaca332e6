//! Property tests: every message type round-trips; parsing random bytes never panics and,
//! when it succeeds, re-emits to an equal message.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bgp::wire::{
    AsPath, AsSegment, Capability, Ctx, GracefulRestartCap, Message, MpReach, MpUnreach,
    NotificationRepr, OpenRepr, Origin, PathAttributes, RawAttribute, RouteRefreshRepr, UpdateRepr,
    FLAG_OPTIONAL, FLAG_PARTIAL, FLAG_TRANSITIVE,
};
use bgp::{Afi, Prefix};
use proptest::prelude::*;

fn v4_prefix() -> impl Strategy<Value = Prefix> {
    (any::<u32>(), 0u8..=32)
        .prop_map(|(a, l)| Prefix::new(IpAddr::V4(Ipv4Addr::from(a)), l).unwrap())
}

fn v6_prefix() -> impl Strategy<Value = Prefix> {
    (any::<u128>(), 0u8..=128)
        .prop_map(|(a, l)| Prefix::new(IpAddr::V6(Ipv6Addr::from(a)), l).unwrap())
}

fn segment() -> impl Strategy<Value = AsSegment> {
    (1u8..=4, prop::collection::vec(any::<u32>(), 1..8)).prop_map(|(t, v)| match t {
        1 => AsSegment::Set(v),
        2 => AsSegment::Sequence(v),
        3 => AsSegment::ConfedSequence(v),
        _ => AsSegment::ConfedSet(v),
    })
}

fn attrs() -> impl Strategy<Value = PathAttributes> {
    (
        prop_oneof![
            Just(Origin::Igp),
            Just(Origin::Egp),
            Just(Origin::Incomplete)
        ],
        prop::collection::vec(segment(), 0..4),
        0x0100_0000u32..0xe000_0000,
        prop::option::of(any::<u32>()),
        prop::option::of(any::<u32>()),
        any::<bool>(),
        prop::option::of((any::<u32>(), any::<u32>())),
        prop::collection::vec(any::<u32>(), 0..5),
        prop::collection::vec(any::<[u32; 3]>(), 0..3),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..3),
    )
        .prop_map(
            |(origin, segs, nh, med, lp, atomic, agg, comm, large, unknown)| PathAttributes {
                origin: Some(origin),
                as_path: Some(AsPath { segments: segs }),
                next_hop: Some(Ipv4Addr::from(nh)),
                med,
                local_pref: lp,
                atomic_aggregate: atomic,
                aggregator: agg.map(|(a, ip)| (a, Ipv4Addr::from(ip))),
                communities: comm,
                large_communities: large,
                unknown: unknown
                    .into_iter()
                    .zip([16u8, 20, 21])
                    .map(|(value, type_code)| RawAttribute {
                        flags: FLAG_OPTIONAL | FLAG_TRANSITIVE | FLAG_PARTIAL,
                        type_code,
                        value,
                    })
                    .collect(),
            },
        )
}

fn update() -> impl Strategy<Value = UpdateRepr> {
    (
        prop::collection::vec(v4_prefix(), 0..20),
        attrs(),
        prop::collection::vec(v4_prefix(), 0..20),
        prop::option::of((
            prop::collection::vec(any::<u128>(), 1..=2),
            prop::collection::vec(v6_prefix(), 0..20),
        )),
        prop::option::of(prop::collection::vec(v6_prefix(), 0..20)),
    )
        .prop_map(|(withdrawn, attrs, nlri, reach, unreach)| UpdateRepr {
            withdrawn,
            attrs,
            nlri,
            mp_reach: reach.map(|(nh, nlri)| MpReach {
                afi: Afi::Ipv6,
                next_hops: nh
                    .into_iter()
                    .map(|a| IpAddr::V6(Ipv6Addr::from(a)))
                    .collect(),
                nlri,
            }),
            mp_unreach: unreach.map(|withdrawn| MpUnreach {
                afi: Afi::Ipv6,
                withdrawn,
            }),
            error: None,
        })
}

fn capability() -> impl Strategy<Value = Capability> {
    prop_oneof![
        (any::<u16>(), any::<u8>()).prop_map(|(afi, safi)| Capability::Multiprotocol { afi, safi }),
        Just(Capability::RouteRefresh),
        Just(Capability::EnhancedRouteRefresh),
        any::<u32>().prop_map(Capability::FourOctetAs),
        (
            0u8..16,
            0u16..4096,
            prop::collection::vec(any::<(u16, u8, u8)>(), 0..4)
        )
            .prop_map(
                |(flags, restart_time, families)| Capability::GracefulRestart(GracefulRestartCap {
                    flags,
                    restart_time,
                    families,
                })
            ),
        (any::<u8>(), prop::collection::vec(any::<u8>(), 0..40))
            .prop_filter("known code", |(c, _)| ![1, 2, 64, 65, 70].contains(c))
            .prop_map(|(code, value)| Capability::Unknown { code, value }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (
            any::<u16>(),
            any::<u16>(),
            any::<u32>(),
            prop::collection::vec(capability(), 0..8)
        )
            .prop_map(
                |(my_as, hold_time, id, capabilities)| Message::Open(OpenRepr {
                    my_as,
                    hold_time,
                    bgp_id: Ipv4Addr::from(id),
                    capabilities,
                })
            ),
        update().prop_map(Message::Update),
        (
            any::<u8>(),
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 0..100)
        )
            .prop_map(
                |(code, subcode, data)| Message::Notification(NotificationRepr {
                    code,
                    subcode,
                    data
                })
            ),
        Just(Message::Keepalive),
        any::<(u16, u8, u8)>().prop_map(|(afi, subtype, safi)| Message::RouteRefresh(
            RouteRefreshRepr { afi, subtype, safi }
        )),
    ]
}

/// Bytes with a valid header and a random body, so the body parsers are reached.
fn framed() -> impl Strategy<Value = Vec<u8>> {
    (1u8..=5, prop::collection::vec(any::<u8>(), 0..400)).prop_map(|(t, body)| {
        let mut m = vec![0xff; 16];
        m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
        m.push(t);
        m.extend_from_slice(&body);
        m
    })
}

fn check_reparse(bytes: &[u8], ctx: &Ctx) {
    if let Ok(m) = Message::parse(bytes, ctx) {
        if matches!(&m, Message::Update(u) if u.error.is_some()) {
            return;
        }
        let out = m.emit(ctx).expect("a parsed message re-emits");
        assert_eq!(Message::parse(&out, ctx), Ok(m));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip(m in message(), four in any::<bool>()) {
        let ctx = Ctx { four_octet_as: four };
        let Ok(bytes) = m.emit(&ctx) else {
            // only oversize messages may fail to encode
            return Ok(());
        };
        prop_assert!(bytes.len() <= 4096);
        prop_assert_eq!(Message::parse(&bytes, &ctx), Ok(m));
    }

    #[test]
    fn random_bytes_never_panic(b in prop::collection::vec(any::<u8>(), 0..600), four in any::<bool>()) {
        check_reparse(&b, &Ctx { four_octet_as: four });
    }

    #[test]
    fn random_bodies_never_panic(b in framed(), four in any::<bool>()) {
        check_reparse(&b, &Ctx { four_octet_as: four });
    }

    #[test]
    fn mutated_valid_messages_never_panic(m in message(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4)) {
        let ctx = Ctx::default();
        if let Ok(mut b) = m.emit(&ctx) {
            for (i, v) in flips {
                let i = i.index(b.len());
                b[i] = v;
            }
            check_reparse(&b, &ctx);
        }
    }

    #[test]
    fn prefix_filter_parse_never_panics(s in "\\PC{0,40}") {
        let _ = bgp::parse_prefix_filter(&s);
    }
}
