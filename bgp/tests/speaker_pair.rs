//! Speaker ↔ speaker tests over in-memory byte pipes with a simulated clock.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use bgp::wire::{code, AsPath, Ctx, Message, Origin, PathAttributes, UpdateRepr};
use bgp::{
    DownReason, MaxPrefix, MaxPrefixAction, NeighborConfig, Policy, Prefix, SessionState, Speaker,
    SpeakerConfig, SpeakerEvent,
};
use common::{Link, Net};

const SITE_AS: u32 = 4_200_000_010;
const AZURE_AS: u32 = 65515;

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}
fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Site speaker: neighbor 1 = Azure instance 0 at 10.2.255.4 (and optionally neighbor 2 =
/// instance 1 at 10.2.255.5).
fn site(neighbors: usize, announce: &[&str]) -> Speaker {
    let mut ns = Vec::new();
    for i in 0..neighbors {
        let mut n = NeighborConfig::new(i as u32 + 1, ip(&format!("10.2.255.{}", 4 + i)), AZURE_AS);
        n.hold_time = 240;
        n.next_hop_v4 = Some(Ipv4Addr::new(10, 1, 255, 1));
        n.next_hop_v6 = Some("fd00:1::1".parse().unwrap());
        n.policy.announce = announce.iter().map(|s| p(s)).collect();
        ns.push(n);
    }
    Speaker::new(SpeakerConfig {
        local_as: SITE_AS,
        router_id: Ipv4Addr::new(10, 1, 255, 1),
        neighbors: ns,
    })
}

/// Azure-like speaker `idx` (router id 10.2.255.4+idx), passive, hold 180.
fn azure(idx: u8, announce: &[&str]) -> Speaker {
    let mut n = NeighborConfig::new(7, ip("10.1.255.1"), SITE_AS);
    n.passive = true;
    n.next_hop_v4 = Some(Ipv4Addr::new(10, 2, 255, 4 + idx));
    n.next_hop_v6 = Some(format!("fd00:2::{}", 4 + idx).parse().unwrap());
    n.policy.announce = announce.iter().map(|s| p(s)).collect();
    Speaker::new(SpeakerConfig {
        local_as: AZURE_AS,
        router_id: Ipv4Addr::new(10, 2, 255, 4 + idx),
        neighbors: vec![n],
    })
}

fn pair(site_announce: &[&str], azure_announce: &[&str]) -> Net {
    let mut net = Net::new(
        vec![site(1, site_announce), azure(0, azure_announce)],
        vec![Link {
            a: (0, 1),
            b: (1, 7),
            up: true,
        }],
    );
    net.start();
    net
}

fn state(net: &Net, i: usize, id: u32) -> SessionState {
    net.speakers[i].session(id).unwrap().state()
}

#[test]
fn session_up_with_4byte_asn_and_azure_timers() {
    let mut net = pair(&[], &[]);
    assert_eq!(state(&net, 0, 1), SessionState::Established);
    assert_eq!(state(&net, 1, 7), SessionState::Established);
    let up = net.events[0]
        .iter()
        .find_map(|e| match e {
            SpeakerEvent::SessionUp { negotiated, .. } => Some(negotiated.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!((up.hold_time, up.keepalive), (180, 60));
    assert_eq!(up.peer_as, AZURE_AS);
    assert!(up.ctx.four_octet_as);
    let up_b = net.events[1]
        .iter()
        .find_map(|e| match e {
            SpeakerEvent::SessionUp { negotiated, .. } => Some(negotiated.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(up_b.peer_as, SITE_AS);
    // The site's OPEN carries AS_TRANS in the 2-byte field.
    let open = &net.sent.iter().find(|(i, _, _)| *i == 0).unwrap().2;
    assert_eq!(&open[20..22], &23456u16.to_be_bytes());
    // Keepalives keep it up for an hour of simulated time.
    let before = net.sent.len();
    net.advance(Duration::from_secs(3600));
    assert_eq!(state(&net, 0, 1), SessionState::Established);
    let keepalives = net.sent[before..]
        .iter()
        .filter(|(_, _, b)| b.len() == 19)
        .count();
    assert!((110..=125).contains(&keepalives), "{keepalives}");
}

#[test]
fn announce_and_withdraw_ipv4_ipv6() {
    let mut net = pair(
        &["10.1.0.0/16", "fd00:1::/48", "0.0.0.0/0"],
        &["10.2.0.0/16", "fd00:2::/48"],
    );
    // Azure learned the site's routes with the site's next hops.
    assert_eq!(
        net.fib_next_hops(1, "10.1.0.0/16"),
        Some(vec![(ip("10.1.255.1"), 7)])
    );
    assert_eq!(
        net.fib_next_hops(1, "0.0.0.0/0"),
        Some(vec![(ip("10.1.255.1"), 7)])
    );
    assert_eq!(
        net.fib_next_hops(1, "fd00:1::/48"),
        Some(vec![(ip("fd00:1::1"), 7)])
    );
    assert_eq!(
        net.fib_next_hops(0, "10.2.0.0/16"),
        Some(vec![(ip("10.2.255.4"), 1)])
    );
    assert_eq!(
        net.fib_next_hops(0, "fd00:2::/48"),
        Some(vec![(ip("fd00:2::4"), 1)])
    );
    // The AS path seen by Azure is the site's AS once.
    let sel = net.speakers[1].rib().selected(&p("10.1.0.0/16")).unwrap();
    assert_eq!(
        sel.best.1.attrs.as_path,
        Some(AsPath::sequence(vec![SITE_AS]))
    );
    assert!(net.events[0].contains(&SpeakerEvent::EndOfRib {
        neighbor: 1,
        afi: bgp::Afi::Ipv6
    }));
    // Withdraw one IPv4 and the IPv6 prefix.
    net.take_events(1);
    let pol = Policy {
        announce: vec![p("10.1.0.0/16")],
        ..Policy::default()
    };
    net.speakers[0].set_policy(1, pol);
    net.drive();
    let ev = net.take_events(1);
    assert!(ev.contains(&SpeakerEvent::FibRemove {
        prefix: p("fd00:1::/48")
    }));
    assert!(ev.contains(&SpeakerEvent::FibRemove {
        prefix: p("0.0.0.0/0")
    }));
    assert_eq!(net.fib_next_hops(1, "0.0.0.0/0"), None);
    assert!(net.fib_next_hops(1, "10.1.0.0/16").is_some());
    // Prepending 2 more: Azure sees a path of 3.
    let pol = Policy {
        announce: vec![p("10.1.0.0/16")],
        prepend: 2,
        ..Policy::default()
    };
    net.speakers[0].set_policy(1, pol);
    net.drive();
    let sel = net.speakers[1].rib().selected(&p("10.1.0.0/16")).unwrap();
    assert_eq!(sel.best.1.attrs.as_path.as_ref().unwrap().path_len(), 3);
}

#[test]
fn import_filter_with_le() {
    let mut s = site(1, &[]);
    let pol = Policy {
        import: bgp::PrefixList::parse(&["10.2.0.0/16 le 24"]).unwrap(),
        ..Policy::default()
    };
    s.set_policy(1, pol);
    let mut net = Net::new(
        vec![
            s,
            azure(
                0,
                &["10.2.0.0/16", "10.2.1.0/24", "10.2.1.0/25", "10.3.0.0/16"],
            ),
        ],
        vec![Link {
            a: (0, 1),
            b: (1, 7),
            up: true,
        }],
    );
    net.start();
    let fib: Vec<String> = net.speakers[0]
        .fib()
        .keys()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(fib, ["10.2.0.0/16", "10.2.1.0/24"]);
    assert_eq!(net.speakers[0].neighbors()[0].rejected, 2);
}

#[test]
fn collision_keeps_one_connection() {
    // Both sides active: both connect at once.
    let a = site(1, &["10.1.0.0/16"]);
    let mut bn = NeighborConfig::new(7, ip("10.1.255.1"), SITE_AS);
    bn.next_hop_v4 = Some(Ipv4Addr::new(10, 2, 255, 4));
    bn.policy.announce = vec![p("10.2.0.0/16")];
    let b = Speaker::new(SpeakerConfig {
        local_as: AZURE_AS,
        router_id: Ipv4Addr::new(10, 2, 255, 4),
        neighbors: vec![bn],
    });
    let mut net = Net::new(
        vec![a, b],
        vec![Link {
            a: (0, 1),
            b: (1, 7),
            up: true,
        }],
    );
    let now = net.now;
    net.speakers[0].start(now);
    net.speakers[1].start(now);
    // Both connects are pending before any byte moves: two TCP connections.
    let ca = net.speakers[0].poll_connect().unwrap();
    let cb = net.speakers[1].poll_connect().unwrap();
    net.speakers[0].tcp_connected(now, ca, bgp::Dir::Outbound);
    net.speakers[1].tcp_connected(now, cb, bgp::Dir::Inbound);
    net.speakers[1].tcp_connected(now, cb, bgp::Dir::Outbound);
    net.speakers[0].tcp_connected(now, ca, bgp::Dir::Inbound);
    net.drive();
    assert_eq!(state(&net, 0, 1), SessionState::Established);
    assert_eq!(state(&net, 1, 7), SessionState::Established);
    // The higher router id (Azure 10.2.255.4) keeps the connection it initiated.
    let na = net.speakers[0]
        .session(1)
        .unwrap()
        .negotiated()
        .unwrap()
        .dir;
    let nb = net.speakers[1]
        .session(7)
        .unwrap()
        .negotiated()
        .unwrap()
        .dir;
    assert_eq!((na, nb), (bgp::Dir::Inbound, bgp::Dir::Outbound));
    let ups = net.events[0]
        .iter()
        .filter(|e| matches!(e, SpeakerEvent::SessionUp { .. }))
        .count();
    assert_eq!(ups, 1);
    // A Cease/collision NOTIFICATION was sent by someone.
    let collision = net.sent.iter().any(|(_, _, b)| {
        b.windows(3)
            .any(|w| w == [3, code::CEASE, code::CEASE_COLLISION])
    });
    assert!(collision);
    assert!(net.fib_next_hops(0, "10.2.0.0/16").is_some());
    assert!(net.fib_next_hops(1, "10.1.0.0/16").is_some());
}

#[test]
fn hold_timer_expiry_removes_routes() {
    let mut net = pair(&["10.1.0.0/16"], &["10.2.0.0/16"]);
    net.take_events(0);
    net.links[0].up = false; // path dies silently: no FIN, no bytes
    net.advance(Duration::from_secs(179));
    assert_eq!(state(&net, 0, 1), SessionState::Established);
    net.advance(Duration::from_secs(2));
    let ev = net.take_events(0);
    assert!(ev.iter().any(|e| matches!(e,
        SpeakerEvent::SessionDown { reason: DownReason::NotificationSent(n), .. } if n.code == code::HOLD_TIMER_EXPIRED)));
    assert!(ev.contains(&SpeakerEvent::FibRemove {
        prefix: p("10.2.0.0/16")
    }));
    // The path comes back: the session re-establishes by itself (connect retry backoff).
    net.links[0].up = true;
    net.advance(Duration::from_secs(300));
    assert_eq!(state(&net, 0, 1), SessionState::Established);
    assert!(net.fib_next_hops(0, "10.2.0.0/16").is_some());
}

#[test]
fn neighbor_down_withdraws_immediately_and_ecmp() {
    // Site with two Azure instances (active-active): equal routes → two next hops.
    let mut net = Net::new(
        vec![
            site(2, &["10.1.0.0/16"]),
            azure(0, &["10.2.0.0/16"]),
            azure(1, &["10.2.0.0/16"]),
        ],
        vec![
            Link {
                a: (0, 1),
                b: (1, 7),
                up: true,
            },
            Link {
                a: (0, 2),
                b: (2, 7),
                up: true,
            },
        ],
    );
    net.start();
    assert_eq!(
        net.fib_next_hops(0, "10.2.0.0/16"),
        Some(vec![(ip("10.2.255.4"), 1), (ip("10.2.255.5"), 2)])
    );
    net.take_events(0);
    let now = net.now;
    net.speakers[0].neighbor_down(now, 1);
    net.drive();
    let ev = net.take_events(0);
    assert!(ev.contains(&SpeakerEvent::FibChange {
        prefix: p("10.2.0.0/16"),
        next_hops: vec![(ip("10.2.255.5"), 2)]
    }));
    assert_eq!(
        net.fib_next_hops(0, "10.2.0.0/16"),
        Some(vec![(ip("10.2.255.5"), 2)])
    );
    // Tunnel back: reconnect at once (no backoff wait), ECMP again.
    let now = net.now;
    net.speakers[0].neighbor_up(now, 1);
    net.drive();
    assert_eq!(
        net.fib_next_hops(0, "10.2.0.0/16").map(|v| v.len()),
        Some(2)
    );
    // Instance 1 prepends: no longer equal, instance 0 wins alone.
    net.advance(Duration::from_secs(10));
    assert_eq!(
        net.fib_next_hops(0, "10.2.0.0/16").map(|v| v.len()),
        Some(2)
    );
    let pol = Policy {
        announce: vec![p("10.2.0.0/16")],
        prepend: 1,
        ..Policy::default()
    };
    net.speakers[2].set_policy(7, pol);
    net.drive();
    assert_eq!(
        net.fib_next_hops(0, "10.2.0.0/16"),
        Some(vec![(ip("10.2.255.4"), 1)])
    );
}

/// Builds raw UPDATE bytes from Azure's side.
fn raw_update(attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut body = vec![0, 0];
    body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    body.extend_from_slice(attrs);
    body.extend_from_slice(nlri);
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(2);
    m.extend_from_slice(&body);
    m
}

fn inject(net: &mut Net, bytes: &[u8]) {
    let now = net.now;
    let dir = net.speakers[0]
        .session(1)
        .unwrap()
        .negotiated()
        .unwrap()
        .dir;
    net.speakers[0].handle_bytes(now, 1, dir, bytes);
    net.drive();
}

const ORIGIN: [u8; 4] = [0x40, 1, 1, 0];
const NEXT_HOP: [u8; 7] = [0x40, 3, 4, 10, 2, 255, 4];

fn as_path(asns: &[u32]) -> Vec<u8> {
    let mut v = vec![0x40, 2, (2 + 4 * asns.len()) as u8, 2, asns.len() as u8];
    for a in asns {
        v.extend_from_slice(&a.to_be_bytes());
    }
    v
}

#[test]
fn rfc7606_malformed_attribute_is_treat_as_withdraw() {
    let mut net = pair(&[], &["10.2.0.0/16"]);
    assert!(net.fib_next_hops(0, "10.2.0.0/16").is_some());
    // Same prefix again, with COMMUNITIES of length 3 (not a multiple of 4).
    let mut attrs = ORIGIN.to_vec();
    attrs.extend(as_path(&[AZURE_AS]));
    attrs.extend(NEXT_HOP);
    attrs.extend([0xc0, 8, 3, 1, 2, 3]);
    inject(&mut net, &raw_update(&attrs, &[16, 10, 2]));
    assert_eq!(net.fib_next_hops(0, "10.2.0.0/16"), None);
    assert_eq!(state(&net, 0, 1), SessionState::Established);
    // Malformed AGGREGATOR is only discarded: the route is installed.
    let mut attrs = ORIGIN.to_vec();
    attrs.extend(as_path(&[AZURE_AS]));
    attrs.extend(NEXT_HOP);
    attrs.extend([0xc0, 7, 2, 1, 2]);
    inject(&mut net, &raw_update(&attrs, &[16, 10, 2]));
    assert!(net.fib_next_hops(0, "10.2.0.0/16").is_some());
    // Unknown optional transitive attribute: accepted and kept with the Partial bit.
    let mut attrs = ORIGIN.to_vec();
    attrs.extend(as_path(&[AZURE_AS]));
    attrs.extend(NEXT_HOP);
    attrs.extend([0xc0, 99, 2, 0xab, 0xcd]);
    inject(&mut net, &raw_update(&attrs, &[16, 10, 9]));
    let sel = net.speakers[0].rib().selected(&p("10.9.0.0/16")).unwrap();
    assert_eq!(sel.best.1.attrs.unknown[0].type_code, 99);
    assert_eq!(state(&net, 0, 1), SessionState::Established);
    // A malformed NLRI field does reset the session (RFC 7606 §5.3).
    inject(&mut net, &raw_update(&attrs, &[40, 10, 9, 0, 0, 0, 0]));
    assert!(net.events[0].iter().any(|e| matches!(e,
        SpeakerEvent::SessionDown { reason: DownReason::NotificationSent(n), .. } if n.code == 3 && n.subcode == 10)));
}

#[test]
fn loop_prevention_rejects_own_as() {
    let mut net = pair(&[], &[]);
    let mut attrs = ORIGIN.to_vec();
    attrs.extend(as_path(&[AZURE_AS, SITE_AS]));
    attrs.extend(NEXT_HOP);
    inject(&mut net, &raw_update(&attrs, &[16, 10, 7]));
    assert_eq!(net.fib_next_hops(0, "10.7.0.0/16"), None);
    assert_eq!(net.speakers[0].neighbors()[0].rejected, 1);
    // eBGP: the first AS must be the neighbor's.
    let mut attrs = ORIGIN.to_vec();
    attrs.extend(as_path(&[65001]));
    attrs.extend(NEXT_HOP);
    inject(&mut net, &raw_update(&attrs, &[16, 10, 8]));
    assert_eq!(net.fib_next_hops(0, "10.8.0.0/16"), None);
    assert_eq!(net.speakers[0].neighbors()[0].rejected, 2);
    assert_eq!(state(&net, 0, 1), SessionState::Established);
}

/// Splits a transmit into messages.
fn split(mut b: &[u8]) -> Vec<Message> {
    let mut v = Vec::new();
    while let Ok(Some(n)) = bgp::wire::frame_len(b) {
        if let Ok(m) = Message::parse(&b[..n], &Ctx::default()) {
            v.push(m);
        }
        b = &b[n..];
    }
    v
}

#[test]
fn bad_open_notifications() {
    // Each case: the Azure side is misconfigured; the site must answer with the NOTIFICATION.
    type Tweak = Box<dyn Fn(&mut NeighborConfig)>;
    let cases: [(&str, Tweak, u8); 2] = [
        (
            "hold time 2",
            Box::new(|n: &mut NeighborConfig| n.hold_time = 2),
            code::OPEN_BAD_HOLD_TIME,
        ),
        (
            "wrong remote AS",
            Box::new(|n: &mut NeighborConfig| n.remote_as = 65001),
            code::OPEN_BAD_PEER_AS,
        ),
    ];
    for (name, tweak, sub) in cases {
        let mut n = NeighborConfig::new(7, ip("10.1.255.1"), SITE_AS);
        n.passive = true;
        tweak(&mut n);
        let b = Speaker::new(SpeakerConfig {
            local_as: AZURE_AS,
            router_id: Ipv4Addr::new(10, 2, 255, 4),
            neighbors: vec![n],
        });
        let mut net = Net::new(
            vec![site(1, &[]), b],
            vec![Link {
                a: (0, 1),
                b: (1, 7),
                up: true,
            }],
        );
        net.start();
        assert_ne!(state(&net, 0, 1), SessionState::Established, "{name}");
        let got = net.sent.iter().flat_map(|(_, _, b)| split(b)).any(
            |m| matches!(m, Message::Notification(n) if n.code == code::OPEN && n.subcode == sub),
        );
        assert!(got, "{name}: no OPEN error {sub}");
    }
    // Bad version: raw OPEN with version 3 into a session.
    let mut s = bgp::Session::new(bgp::SessionConfig::new(
        SITE_AS,
        AZURE_AS,
        Ipv4Addr::new(10, 1, 255, 1),
    ));
    let now = std::time::Instant::now();
    s.start(now);
    s.tcp_connected(now, bgp::Dir::Inbound);
    while s.poll_transmit().is_some() {}
    let mut open = vec![0xff; 16];
    open.extend_from_slice(&[0, 29, 1, 3, 0xff, 0xeb, 0, 180, 10, 2, 255, 4, 0]);
    s.handle_bytes(now, bgp::Dir::Inbound, &open);
    let t = s.poll_transmit().unwrap();
    assert_eq!(
        &t.bytes[18..],
        &[3, code::OPEN, code::OPEN_BAD_VERSION, 0, 4]
    );
}

#[test]
fn max_prefix_actions() {
    for action in [
        MaxPrefixAction::Warn,
        MaxPrefixAction::Teardown,
        MaxPrefixAction::RestartAfter(Duration::from_secs(30)),
    ] {
        let mut s = site(1, &[]);
        s.set_policy(
            1,
            Policy {
                max_prefixes: Some(MaxPrefix { limit: 2, action }),
                ..Policy::default()
            },
        );
        let mut net = Net::new(
            vec![s, azure(0, &["10.2.0.0/16", "10.3.0.0/16", "10.4.0.0/16"])],
            vec![Link {
                a: (0, 1),
                b: (1, 7),
                up: true,
            }],
        );
        net.start();
        assert!(net.events[0].iter().any(|e| matches!(
            e,
            SpeakerEvent::MaxPrefixExceeded {
                count: 3,
                limit: 2,
                ..
            }
        )));
        match action {
            MaxPrefixAction::Warn => {
                assert_eq!(state(&net, 0, 1), SessionState::Established);
                assert_eq!(net.speakers[0].fib().len(), 3);
            }
            _ => {
                assert_eq!(state(&net, 0, 1), SessionState::Idle);
                assert!(net.speakers[0].fib().is_empty());
                // The over-limit table never reached the FIB (one UPDATE carried all three).
                assert!(!net.events[0]
                    .iter()
                    .any(|e| matches!(e, SpeakerEvent::FibChange { .. })));
                assert!(net.events[1].iter().any(|e| matches!(e,
                    SpeakerEvent::SessionDown { reason: DownReason::NotificationReceived(n), .. } if n.code == 6 && n.subcode == 1)));
                net.advance(Duration::from_secs(45));
                // RestartAfter comes back up after 30 s and trips again (same table): it is
                // Idle again, but only after a second SessionUp. Teardown stays down.
                assert_eq!(state(&net, 0, 1), SessionState::Idle);
                let ups = net.events[0]
                    .iter()
                    .filter(|e| matches!(e, SpeakerEvent::SessionUp { .. }))
                    .count();
                assert_eq!(
                    ups,
                    if action == MaxPrefixAction::Teardown {
                        1
                    } else {
                        2
                    },
                    "{action:?}"
                );
            }
        }
    }
}

#[test]
fn graceful_restart_helper_keeps_routes_until_end_of_rib() {
    let mut net = pair(&[], &["10.2.0.0/16", "10.3.0.0/16"]);
    // Azure advertises GR with forwarding preserved for IPv4 (needs the F bit): emulate by
    // checking the plain case first — without F bit the routes are flushed at once.
    net.take_events(0);
    net.reset_link(0);
    let ev = net.take_events(0);
    assert!(ev.contains(&SpeakerEvent::FibRemove {
        prefix: p("10.2.0.0/16")
    }));
    net.advance(Duration::from_secs(5));
    assert_eq!(state(&net, 0, 1), SessionState::Established);
    assert!(net.fib_next_hops(0, "10.2.0.0/16").is_some());
}

#[test]
fn graceful_restart_with_forwarding_state() {
    // A raw peer that advertises GR with F bit for IPv4, announces two prefixes, drops the
    // TCP connection, comes back and announces only one before End-of-RIB.
    let mut s = site(1, &[]);
    let now0 = std::time::Instant::now();
    s.start(now0);
    let id = s.poll_connect().unwrap();
    let open = |s: &mut Speaker, now, fbit: u8| {
        s.tcp_connected(now, id, bgp::Dir::Outbound);
        while s.poll_transmit().is_some() {}
        let o = bgp::wire::OpenRepr {
            my_as: 65515,
            hold_time: 180,
            bgp_id: Ipv4Addr::new(10, 2, 255, 4),
            capabilities: vec![
                bgp::wire::Capability::Multiprotocol { afi: 1, safi: 1 },
                bgp::wire::Capability::GracefulRestart(bgp::wire::GracefulRestartCap {
                    flags: 0,
                    restart_time: 90,
                    families: vec![(1, 1, fbit)],
                }),
                bgp::wire::Capability::FourOctetAs(65515),
            ],
        };
        let mut b = Message::Open(o).emit(&Ctx::default()).unwrap();
        b.extend(Message::Keepalive.emit(&Ctx::default()).unwrap());
        s.handle_bytes(now, id, bgp::Dir::Outbound, &b);
    };
    let announce = |prefixes: Vec<Prefix>| {
        Message::Update(UpdateRepr {
            attrs: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::sequence(vec![65515])),
                next_hop: Some(Ipv4Addr::new(10, 2, 255, 4)),
                ..Default::default()
            },
            nlri: prefixes,
            ..Default::default()
        })
        .emit(&Ctx::default())
        .unwrap()
    };
    open(&mut s, now0, 0x80);
    assert_eq!(s.session(id).unwrap().state(), SessionState::Established);
    s.handle_bytes(
        now0,
        id,
        bgp::Dir::Outbound,
        &announce(vec![p("10.2.0.0/16"), p("10.3.0.0/16")]),
    );
    assert_eq!(s.fib().len(), 2);
    while s.poll_event().is_some() {}
    // TCP drops: routes stay (stale), no FIB removal.
    s.tcp_closed(now0, id, bgp::Dir::Outbound);
    let ev: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(
        !ev.iter()
            .any(|e| matches!(e, SpeakerEvent::FibRemove { .. })),
        "{ev:?}"
    );
    assert_eq!(s.fib().len(), 2);
    // Peer restarts within the restart time and re-announces one prefix, then EoR.
    let now1 = now0 + Duration::from_secs(30);
    s.handle_timeout(now1);
    let id2 = s.poll_connect().unwrap();
    assert_eq!(id2, id);
    open(&mut s, now1, 0x80);
    s.handle_bytes(
        now1,
        id,
        bgp::Dir::Outbound,
        &announce(vec![p("10.2.0.0/16")]),
    );
    assert_eq!(s.fib().len(), 2);
    let eor = Message::Update(UpdateRepr::end_of_rib(bgp::Afi::Ipv4))
        .emit(&Ctx::default())
        .unwrap();
    s.handle_bytes(now1, id, bgp::Dir::Outbound, &eor);
    let ev: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(ev.contains(&SpeakerEvent::FibRemove {
        prefix: p("10.3.0.0/16")
    }));
    assert_eq!(s.fib().keys().collect::<Vec<_>>(), vec![p("10.2.0.0/16")]);
    // Second drop, peer never returns: stale routes go when the restart timer fires.
    s.tcp_closed(now1, id, bgp::Dir::Outbound);
    assert_eq!(s.fib().len(), 1);
    let now2 = now1 + Duration::from_secs(91);
    s.handle_timeout(now2);
    assert!(s.fib().is_empty());
    // Third round: routes go stale, the peer returns WITHOUT the forwarding-state bit:
    // the stale routes are flushed as soon as the session is up (RFC 4724 §4.2).
    let now3 = now2 + Duration::from_secs(200);
    s.handle_timeout(now3);
    let _ = s.poll_connect();
    open(&mut s, now3, 0x80);
    s.handle_bytes(
        now3,
        id,
        bgp::Dir::Outbound,
        &announce(vec![p("10.2.0.0/16")]),
    );
    assert_eq!(s.fib().len(), 1);
    s.tcp_closed(now3, id, bgp::Dir::Outbound);
    assert_eq!(s.fib().len(), 1);
    let now4 = now3 + Duration::from_secs(10);
    s.handle_timeout(now4);
    let _ = s.poll_connect();
    open(&mut s, now4, 0);
    assert!(s.fib().is_empty());
}

#[test]
fn import_change_uses_enhanced_route_refresh() {
    let mut s = site(1, &[]);
    s.set_policy(
        1,
        Policy {
            import: bgp::PrefixList::parse(&["10.2.0.0/16"]).unwrap(),
            ..Policy::default()
        },
    );
    let mut net = Net::new(
        vec![s, azure(0, &["10.2.0.0/16", "10.3.0.0/16"])],
        vec![Link {
            a: (0, 1),
            b: (1, 7),
            up: true,
        }],
    );
    net.start();
    assert_eq!(net.speakers[0].fib().len(), 1);
    let before = net.sent.len();
    net.speakers[0].set_policy(1, Policy::default());
    net.drive();
    assert_eq!(net.speakers[0].fib().len(), 2);
    // Azure answered with BoRR ... EoRR (RFC 7313).
    let rr: Vec<u8> = net.sent[before..]
        .iter()
        .filter(|(i, _, _)| *i == 1)
        .flat_map(|(_, _, b)| split(b))
        .filter_map(|m| match m {
            Message::RouteRefresh(r) => Some(r.subtype),
            _ => None,
        })
        .collect();
    assert_eq!(rr, vec![1, 2, 1, 2]); // IPv4 and IPv6
                                      // Narrowing again drops 10.3.0.0/16.
    net.speakers[0].set_policy(
        1,
        Policy {
            import: bgp::PrefixList::parse(&["10.2.0.0/16"]).unwrap(),
            ..Policy::default()
        },
    );
    net.drive();
    assert_eq!(net.speakers[0].fib().len(), 1);
}

#[test]
fn full_table_of_4000_prefixes_is_packed() {
    // Azure's documented limit: 4,000 prefixes from a site. Here the site sends 4,000 /24s.
    let prefixes: Vec<String> = (0..4000u32)
        .map(|i| format!("10.{}.{}.0/24", 64 + i / 256, i % 256))
        .collect();
    let refs: Vec<&str> = prefixes.iter().map(String::as_str).collect();
    let t = std::time::Instant::now();
    let net = pair(&refs, &[]);
    let elapsed = t.elapsed();
    assert_eq!(net.speakers[1].fib().len(), 4000);
    let updates: Vec<usize> = net
        .sent
        .iter()
        .filter(|(i, _, _)| *i == 0)
        .flat_map(|(_, _, b)| {
            let mut sizes = vec![];
            let mut b = &b[..];
            while let Ok(Some(n)) = bgp::wire::frame_len(b) {
                if b[18] == 2 {
                    sizes.push(n);
                }
                b = &b[n..];
            }
            sizes
        })
        .collect();
    assert!(updates.iter().all(|&n| n <= 4096));
    // 4000 × 4 bytes of NLRI = 16,000 bytes: 4 full UPDATEs + 2 End-of-RIB markers.
    assert_eq!(updates.len(), 4 + 2, "{updates:?}");
    eprintln!(
        "4000 prefixes: {} UPDATEs, session up + table transfer in {elapsed:?} (debug build)",
        updates.len()
    );
}

#[test]
fn export_learned_routes_to_another_neighbor() {
    // Site (neighbor 1 = Azure, neighbor 2 = a branch in AS 65020 that gets transit routes).
    let mut az = NeighborConfig::new(1, ip("10.2.255.4"), AZURE_AS);
    az.next_hop_v4 = Some(Ipv4Addr::new(10, 1, 255, 1));
    az.policy.announce = vec![p("10.1.0.0/16")];
    let mut br = NeighborConfig::new(2, ip("10.5.0.1"), 65020);
    br.next_hop_v4 = Some(Ipv4Addr::new(10, 5, 0, 2));
    br.policy.export_learned = true;
    br.policy.export = bgp::PrefixList::parse(&["10.0.0.0/8 le 24"]).unwrap();
    let site = Speaker::new(SpeakerConfig {
        local_as: SITE_AS,
        router_id: Ipv4Addr::new(10, 1, 255, 1),
        neighbors: vec![az, br],
    });
    let mut bn = NeighborConfig::new(9, ip("10.5.0.2"), SITE_AS);
    bn.passive = true;
    bn.policy.announce = vec![p("10.5.0.0/16"), p("192.168.0.0/16")];
    let branch = Speaker::new(SpeakerConfig {
        local_as: 65020,
        router_id: Ipv4Addr::new(10, 5, 0, 1),
        neighbors: vec![bn],
    });
    let mut net = Net::new(
        vec![site, azure(0, &["10.2.0.0/16"]), branch],
        vec![
            Link {
                a: (0, 1),
                b: (1, 7),
                up: true,
            },
            Link {
                a: (0, 2),
                b: (2, 9),
                up: true,
            },
        ],
    );
    net.start();
    // The branch learns Azure's route through the site, AS path [site, Azure].
    let sel = net.speakers[2].rib().selected(&p("10.2.0.0/16")).unwrap();
    assert_eq!(
        sel.best.1.attrs.as_path,
        Some(AsPath::sequence(vec![SITE_AS, AZURE_AS]))
    );
    assert_eq!(sel.best.1.next_hop, ip("10.5.0.2"));
    // Export to Azure stays limited to the announcements (export_learned off).
    assert!(net.fib_next_hops(1, "10.5.0.0/16").is_none());
    // The branch's routes are in the site's FIB.
    assert!(net.fib_next_hops(0, "192.168.0.0/16").is_some());
    // Azure withdraws: the branch loses the route too.
    net.speakers[1].set_policy(7, Policy::default());
    net.drive();
    assert!(net.speakers[2].rib().selected(&p("10.2.0.0/16")).is_none());
}

#[test]
fn full_table_fib_events_once_per_prefix_and_shared_attributes() {
    let prefixes: Vec<String> = (0..4000u32)
        .map(|i| format!("10.{}.{}.0/24", 64 + i / 256, i % 256))
        .collect();
    let refs: Vec<&str> = prefixes.iter().map(String::as_str).collect();
    let mut net = pair(&refs, &[]);
    let learned = net.take_events(1);
    let changes = learned
        .iter()
        .filter(|e| matches!(e, SpeakerEvent::FibChange { next_hops, .. } if next_hops.len() == 1))
        .count();
    assert_eq!(changes, 4000);
    assert!(!learned
        .iter()
        .any(|e| matches!(e, SpeakerEvent::FibRemove { .. })));
    // Equal attributes from several UPDATEs share one allocation.
    let mut ptrs: Vec<*const bgp::Route> = net.speakers[1]
        .rib()
        .loc_iter()
        .map(|(_, e)| std::sync::Arc::as_ptr(e.best().1))
        .collect();
    ptrs.sort();
    ptrs.dedup();
    assert_eq!(ptrs.len(), 1);
    assert_eq!(net.speakers[1].rib().count(7), 4000);
    // The site withdraws everything: exactly one removal per prefix, nothing left.
    let mut pol = net.speakers[0].neighbor_config(1).unwrap().policy.clone();
    pol.announce.clear();
    net.speakers[0].set_policy(1, pol);
    net.drive();
    let withdrawn = net.take_events(1);
    let removes = withdrawn
        .iter()
        .filter(|e| matches!(e, SpeakerEvent::FibRemove { .. }))
        .count();
    assert_eq!(removes, 4000);
    assert!(net.speakers[1].fib().is_empty());
    assert_eq!(net.speakers[1].rib().count(7), 0);
}
