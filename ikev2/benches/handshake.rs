//! IKEv2 handshake cost per Diffie-Hellman group.
//!
//! * `handshake/<group>`: a full IKE_SA_INIT + IKE_AUTH (PSK, first Child SA) between an
//!   initiator and a responder [`Endpoint`] in memory: 4 messages, both sides' DH keygen
//!   and shared secret, SKEYSEED, the SK payloads, PSK AUTH and Child SA keys.
//! * `dh/<group>`: the DH operations alone for one side: keygen plus shared secret
//!   against a pre-generated peer public value.
//!
//! The IKE cipher suite is the same for every group (`aes256-sha256-<group>`, ESP
//! `aes256gcm16`), so the differences are the groups'.
//!
//! `cargo bench -p causeway-ikev2 --bench handshake -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use ikev2::crypto::{DhGroup, DhPrivateKey, SystemRng};
use ikev2::proposal::{parse_esp_proposals, parse_ike_proposals};
use ikev2::{Config, Endpoint, Event, Identity, Psk};

/// (group, strongSwan keyword).
const GROUPS: [(DhGroup, &str); 7] = [
    (DhGroup::Modp1024, "modp1024"),
    (DhGroup::Modp2048, "modp2048"),
    (DhGroup::Modp3072, "modp3072"),
    (DhGroup::Modp2048s256, "modp2048s256"),
    (DhGroup::Ecp256, "ecp256"),
    (DhGroup::Ecp384, "ecp384"),
    (DhGroup::Curve25519, "curve25519"),
];

const I_ADDR: &str = "192.0.2.1:500";
const R_ADDR: &str = "198.51.100.7:500";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn config(local: &str, remote: &str, ike: &str) -> Config {
    let mut c = Config::new(addr(local), addr(remote), Psk::new(b"bench-psk".to_vec()));
    c.ike_proposals = parse_ike_proposals(&[ike]).unwrap();
    c.esp_proposals = parse_esp_proposals(&["aes256gcm16"]).unwrap();
    c.local_id = Identity::Addr(addr(local).ip());
    c
}

/// One full IKE_SA_INIT + IKE_AUTH; returns the number of datagrams exchanged.
/// Panics unless both sides report the Child SA.
fn handshake(ic: &Config, rc: &Config) -> usize {
    let now = Instant::now();
    let mut i = Endpoint::new(ic.clone(), Box::new(SystemRng));
    let mut r = Endpoint::new(rc.clone(), Box::new(SystemRng));
    i.initiate(now);
    let (mut i_up, mut r_up) = (false, false);
    let mut datagrams = 0;
    for _ in 0..8 {
        let mut moved = false;
        while let Some(t) = i.poll_transmit() {
            moved = true;
            datagrams += 1;
            r.handle_datagram(now, t.src, t.dst, &t.payload);
        }
        while let Some(t) = r.poll_transmit() {
            moved = true;
            datagrams += 1;
            i.handle_datagram(now, t.src, t.dst, &t.payload);
        }
        while let Some(e) = i.poll_event() {
            i_up |= matches!(e, Event::ChildSaEstablished(_));
            assert!(!matches!(e, Event::Failed(_)), "initiator: {e:?}");
        }
        while let Some(e) = r.poll_event() {
            r_up |= matches!(e, Event::ChildSaEstablished(_));
            assert!(!matches!(e, Event::Failed(_)), "responder: {e:?}");
        }
        if !moved {
            break;
        }
    }
    assert!(i_up && r_up, "handshake did not complete");
    datagrams
}

fn bench_handshake(c: &mut Criterion) {
    let mut g = c.benchmark_group("handshake");
    for (group, kw) in GROUPS {
        let ike = format!("aes256-sha256-{kw}");
        let ic = config(I_ADDR, R_ADDR, &ike);
        let rc = config(R_ADDR, I_ADDR, &ike);
        // IKE_SA_INIT and IKE_AUTH: two requests, two responses.
        assert_eq!(handshake(&ic, &rc), 4);
        g.bench_function(format!("{}-{kw}", group.id()), |b| {
            b.iter(|| black_box(handshake(black_box(&ic), black_box(&rc))))
        });
    }
    g.finish();
}

fn bench_dh(c: &mut Criterion) {
    let mut g = c.benchmark_group("dh");
    let mut rng = SystemRng;
    for (group, kw) in GROUPS {
        let peer = DhPrivateKey::generate(group, &mut rng).unwrap();
        let peer_pub = peer.public_value();
        // Both sides agree (the benchmark measures a working computation).
        let me = DhPrivateKey::generate(group, &mut rng).unwrap();
        let a = me.shared_secret(&peer_pub).unwrap();
        let b = peer.shared_secret(&me.public_value()).unwrap();
        assert_eq!(a.as_ref(), b.as_ref());
        g.bench_function(format!("{}-{kw}", group.id()), |b| {
            b.iter(|| {
                let mut rng = SystemRng;
                let k = DhPrivateKey::generate(group, &mut rng).unwrap();
                black_box(k.public_value());
                black_box(k.shared_secret(black_box(&peer_pub)).unwrap())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench_handshake, bench_dh);
criterion_main!(benches);
