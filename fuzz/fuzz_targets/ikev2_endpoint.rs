//! The IKEv2 state machine on arbitrary datagrams: never panics, whatever arrives,
//! in any state (fresh responder, half-open responder, initiator waiting for answers).
#![no_main]

use std::time::{Duration, Instant};

use ikev2::crypto::TestRng;
use ikev2::{Config, Endpoint, Psk};
use libfuzzer_sys::fuzz_target;

const I: &str = "192.0.2.1:500";
const R: &str = "198.51.100.7:500";

fn endpoint(local: &str, remote: &str, seed: u64) -> Endpoint {
    let mut c = Config::new(
        local.parse().unwrap(),
        remote.parse().unwrap(),
        Psk::new(b"fuzz".to_vec()),
    );
    c.ike_proposals = ikev2::proposal::parse_ike_proposals(&["aes256-sha256-x25519"]).unwrap();
    Endpoint::new(c, Box::new(TestRng::new(seed)))
}

fuzz_target!(|data: &[u8]| {
    // The text parsers the configuration feeds.
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = ikev2::parse_ike_proposal(s);
        let _ = ikev2::parse_esp_proposal(s);
        let _ = ikev2::ts::TrafficSelector::parse(s);
        let _ = ikev2::Identity::parse(s);
    }
    let mut now = Instant::now();
    let (ia, ra) = (I.parse().unwrap(), R.parse().unwrap());
    let mut fresh = endpoint(R, I, 1);
    let mut half_open = endpoint(R, I, 2);
    let mut initiator = endpoint(I, R, 3);
    initiator.initiate(now);
    if let Some(t) = initiator.poll_transmit() {
        half_open.handle_datagram(now, ia, ra, &t.payload);
    }
    // Chunks: 2-byte big-endian length, then the datagram.
    let mut rest = data;
    while rest.len() >= 2 {
        let n = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let d = &rest[2..2 + n];
        rest = &rest[2 + n..];
        fresh.handle_datagram(now, ia, ra, d);
        half_open.handle_datagram(now, ia, ra, d);
        initiator.handle_datagram(now, ra, ia, d);
        now += Duration::from_secs(5);
        for ep in [&mut fresh, &mut half_open, &mut initiator] {
            ep.handle_timeout(now);
            while ep.poll_transmit().is_some() {}
            while ep.poll_event().is_some() {}
        }
    }
});
