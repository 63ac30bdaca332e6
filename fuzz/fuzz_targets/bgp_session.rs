//! Feed arbitrary bytes into an Established session inside a Speaker (so the RIB, policy and
//! export paths run too): nothing may panic, and the speaker keeps answering.
#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use bgp::wire::{Capability, Ctx, Message, OpenRepr};
use bgp::{Dir, MaxPrefix, MaxPrefixAction, NeighborConfig, Speaker, SpeakerConfig};
use libfuzzer_sys::fuzz_target;

fn established(now: Instant, four: bool) -> Speaker {
    let mut n = NeighborConfig::new(1, "10.2.255.4".parse().unwrap(), 65515);
    n.policy.announce = vec!["10.1.0.0/16".parse().unwrap(), "fd00:1::/48".parse().unwrap()];
    n.policy.max_prefixes = Some(MaxPrefix {
        limit: 50,
        action: MaxPrefixAction::RestartAfter(Duration::from_secs(5)),
    });
    let mut s = Speaker::new(SpeakerConfig {
        local_as: 65010,
        router_id: Ipv4Addr::new(10, 1, 255, 1),
        neighbors: vec![n],
    });
    s.start(now);
    let _ = s.poll_connect();
    s.tcp_connected(now, 1, Dir::Outbound);
    let mut caps = vec![
        Capability::Multiprotocol { afi: 1, safi: 1 },
        Capability::Multiprotocol { afi: 2, safi: 1 },
        Capability::RouteRefresh,
    ];
    if four {
        caps.push(Capability::FourOctetAs(65515));
    }
    let open = OpenRepr {
        my_as: 65515,
        hold_time: 180,
        bgp_id: Ipv4Addr::new(10, 2, 255, 4),
        capabilities: caps,
    };
    let mut b = Message::Open(open).emit(&Ctx::default()).unwrap();
    b.extend(Message::Keepalive.emit(&Ctx::default()).unwrap());
    s.handle_bytes(now, 1, Dir::Outbound, &b);
    s
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let mut now = Instant::now();
    let mut s = established(now, mode & 2 == 0);
    assert!(s.session(1).unwrap().negotiated().is_some());
    if mode & 1 == 1 {
        // raw stream
        for chunk in rest.chunks(1 + usize::from(mode >> 4)) {
            s.handle_bytes(now, 1, Dir::Outbound, chunk);
        }
    } else {
        // framed: (type, len_hi, len_lo, body...) repeated, wrapped in valid headers
        while rest.len() >= 3 {
            let t = rest[0] % 6;
            let l = usize::from(u16::from_be_bytes([rest[1], rest[2]])) % 600;
            let body = &rest[3..(3 + l).min(rest.len())];
            rest = &rest[(3 + l).min(rest.len())..];
            let mut m = vec![0xff; 16];
            m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
            m.push(t);
            m.extend_from_slice(body);
            s.handle_bytes(now, 1, Dir::Outbound, &m);
            now += Duration::from_secs(1);
            s.handle_timeout(now);
            while s.poll_transmit().is_some() {}
            while s.poll_event().is_some() {}
        }
    }
    while s.poll_transmit().is_some() {}
    while s.poll_event().is_some() {}
    now += Duration::from_secs(400);
    s.handle_timeout(now);
    let _ = s.poll_timeout();
    let _ = s.neighbors();
});
