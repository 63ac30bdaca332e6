//! One responder for dynamic peers (any address) with several initiators in memory.

mod common;

use std::time::{Duration, Instant};

use ikev2::crypto::TestRng;
use ikev2::{Config, Endpoint, Event, Identity};

const R_ADDR: &str = "198.51.100.7:500";

fn config(local: &str, remote: &str, id: Identity) -> Config {
    let mut c = common::config(
        local,
        remote,
        "multi",
        &["aes128gcm16-prfsha256-x25519"],
        &["aes128gcm16"],
    );
    c.local_id = id;
    c
}

/// Delivers everything in flight between the responder and the initiators.
fn run(r: &mut Endpoint, peers: &mut [&mut Endpoint], now: Instant, r_ev: &mut Vec<Event>) {
    loop {
        let mut moved = false;
        for p in peers.iter_mut() {
            while let Some(t) = p.poll_transmit() {
                moved = true;
                r.handle_datagram(now, t.src, t.dst, &t.payload);
            }
        }
        while let Some(t) = r.poll_transmit() {
            moved = true;
            if let Some(p) = peers.iter_mut().find(|p| p.config().local_addr == t.dst) {
                p.handle_datagram(now, t.src, t.dst, &t.payload);
            }
        }
        while let Some(e) = r.poll_event() {
            r_ev.push(e);
        }
        if !moved {
            return;
        }
    }
}

fn initiator(addr: &str, name: &str, seed: u64) -> Endpoint {
    Endpoint::new(
        config(addr, R_ADDR, Identity::Fqdn(name.into())),
        Box::new(TestRng::new(seed)),
    )
}

#[test]
fn initial_contact_removes_only_the_sas_of_that_peer_identity() {
    let mut r = Endpoint::new(
        config(R_ADDR, "0.0.0.0:500", Identity::Fqdn("hub".into())),
        Box::new(TestRng::new(1)),
    );
    let mut a = initiator("192.0.2.1:500", "a.example", 2);
    let mut b = initiator("192.0.2.2:500", "b.example", 3);
    let now = Instant::now();
    let mut ev = Vec::new();
    a.initiate(now);
    b.initiate(now);
    run(&mut r, &mut [&mut a, &mut b], now, &mut ev);
    assert!(a.is_established() && b.is_established());
    let before = r.ike_sas();
    assert_eq!(before.len(), 2);
    // "a" restarts (new endpoint, new SPIs) and sends INITIAL_CONTACT.
    let mut a2 = initiator("192.0.2.1:500", "a.example", 4);
    let now = now + Duration::from_secs(5);
    a2.initiate(now);
    ev.clear();
    run(&mut r, &mut [&mut a2, &mut b], now, &mut ev);
    assert!(a2.is_established());
    let after = r.ike_sas();
    assert_eq!(after.len(), 2, "a's old IKE SA is gone, b's stays");
    let old_a = before
        .iter()
        .find(|s| !after.iter().any(|x| x.spi_i == s.spi_i))
        .expect("one old IKE SA removed");
    let kept_b = before
        .iter()
        .find(|s| after.iter().any(|x| x.spi_i == s.spi_i))
        .unwrap();
    // The removed one was a's: its Child SA and IKE SA were reported deleted, silently
    // (no Delete sent to anyone), and b's Child SA is untouched.
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::IkeSaDeleted { spi_i, .. } if *spi_i == old_a.spi_i)));
    let (a_child, _) = old_a.children[0];
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::ChildSaDeleted { local_spi, .. } if *local_spi == a_child)));
    let (b_child, _) = kept_b.children[0];
    assert!(!ev
        .iter()
        .any(|e| matches!(e, Event::ChildSaDeleted { local_spi, .. } if *local_spi == b_child)));
    assert!(b.is_established());
    assert!(!ev.iter().any(|e| matches!(e, Event::Failed(_))), "{ev:?}");
}
