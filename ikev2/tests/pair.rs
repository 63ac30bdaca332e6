//! Initiator ↔ responder in memory, on a simulated clock (like quinn-proto's `Pair`).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::config;
use ikev2::crypto::TestRng;
use ikev2::proposal::parse_esp_proposals;
use ikev2::ts::{parse_ts_list, TrafficSelector};
use ikev2::{
    ChildSa, Config, Encap, Endpoint, Event, FailReason, Identity, IkeSuite, Psk, Transmit,
};

const I_ADDR: &str = "192.0.2.1:500";
const R_ADDR: &str = "198.51.100.7:500";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Deliver,
    Drop,
    Duplicate,
}

/// Decides what happens to the n-th datagram.
type FateFn = Box<dyn FnMut(usize, &Transmit) -> Fate>;

/// How many of `events` match a pattern: `count!(&p.i_events, Event::IkeSaDeleted { .. })`.
macro_rules! count {
    ($events:expr, $pat:pat) => {
        Pair::count($events, |e| matches!(e, $pat))
    };
}

struct Pair {
    now: Instant,
    start: Instant,
    i: Endpoint,
    r: Endpoint,
    i_events: Vec<Event>,
    r_events: Vec<Event>,
    /// Decides what happens to the n-th datagram (0-based, both directions counted).
    fate: FateFn,
    sent: usize,
    /// Simulated NAT in front of the initiator: its source address as the responder sees it.
    nat_public: Option<SocketAddr>,
    log: Vec<(bool, usize)>,
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The initiator's config (PSK "s") with one IKE and one ESP proposal.
fn i_config(ike: &str, esp: &str) -> Config {
    config(I_ADDR, R_ADDR, "s", &[ike], &[esp])
}

/// The responder's config (PSK "s") with one IKE and one ESP proposal.
fn r_config(ike: &str, esp: &str) -> Config {
    config(R_ADDR, I_ADDR, "s", &[ike], &[esp])
}

impl Pair {
    fn new(ic: Config, rc: Config) -> Pair {
        let now = Instant::now();
        Pair {
            now,
            start: now,
            i: Endpoint::new(ic, Box::new(TestRng::new(1))),
            r: Endpoint::new(rc, Box::new(TestRng::new(2))),
            i_events: Vec::new(),
            r_events: Vec::new(),
            fate: Box::new(|_, _| Fate::Deliver),
            sent: 0,
            nat_public: None,
            log: Vec::new(),
        }
    }

    /// A pair with `f` applied to both configs (settings both sides share).
    fn alike(mut ic: Config, mut rc: Config, f: impl Fn(&mut Config)) -> Pair {
        f(&mut ic);
        f(&mut rc);
        Pair::new(ic, rc)
    }

    fn default_pair(ike: &str, esp: &str) -> Pair {
        Pair::new(
            config(I_ADDR, R_ADDR, "secret", &[ike], &[esp]),
            config(R_ADDR, I_ADDR, "secret", &[ike], &[esp]),
        )
    }

    /// Starts the exchange at the initiator and runs it for up to 1 s.
    fn run_initiation(&mut self) {
        self.i.initiate(self.now);
        self.drive(Duration::from_secs(1));
    }

    /// [`Pair::run_initiation`], then [`Pair::assert_up`].
    fn bring_up(&mut self) -> (ChildSa, ChildSa) {
        self.run_initiation();
        self.assert_up()
    }

    /// Gives the `n`-th datagram (0-based, both directions counted) `fate`; all others
    /// are delivered.
    fn fate_of(&mut self, n: usize, fate: Fate) {
        self.fate = Box::new(move |k, _| if k == n { fate } else { Fate::Deliver });
    }

    fn deliver(&mut self, to_responder: bool, t: &Transmit) {
        if to_responder {
            let from = match self.nat_public {
                Some(p) => SocketAddr::new(
                    p.ip(),
                    if t.src.port() == 4500 {
                        p.port() + 1
                    } else {
                        p.port()
                    },
                ),
                None => t.src,
            };
            self.r.handle_datagram(self.now, from, t.dst, &t.payload);
        } else {
            // Undo the NAT for the way back.
            let to = match self.nat_public {
                Some(_) => SocketAddr::new(
                    addr(I_ADDR).ip(),
                    if t.dst.port() == 500 { 500 } else { 4500 },
                ),
                None => t.dst,
            };
            self.i.handle_datagram(self.now, t.src, to, &t.payload);
        }
    }

    fn collect(&mut self) {
        while let Some(e) = self.i.poll_event() {
            self.i_events.push(e);
        }
        while let Some(e) = self.r.poll_event() {
            self.r_events.push(e);
        }
    }

    /// Runs until nothing is in flight and no timer is due within `limit` of the start.
    fn drive(&mut self, limit: Duration) {
        loop {
            let mut moved = false;
            while let Some(t) = self.i.poll_transmit() {
                moved = true;
                self.route(true, t);
            }
            while let Some(t) = self.r.poll_transmit() {
                moved = true;
                self.route(false, t);
            }
            self.collect();
            if moved {
                continue;
            }
            let next = [self.i.poll_timeout(), self.r.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= self.start + limit => {
                    self.now = self.now.max(t);
                    self.i.handle_timeout(self.now);
                    self.r.handle_timeout(self.now);
                }
                _ => break,
            }
        }
    }

    fn route(&mut self, to_responder: bool, t: Transmit) {
        let n = self.sent;
        self.sent += 1;
        self.log.push((to_responder, t.payload.len()));
        match (self.fate)(n, &t) {
            Fate::Deliver => self.deliver(to_responder, &t),
            Fate::Drop => {}
            Fate::Duplicate => {
                self.deliver(to_responder, &t);
                self.deliver(to_responder, &t);
            }
        }
    }

    fn children(events: &[Event]) -> Vec<&ChildSa> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::ChildSaEstablished(c) => Some(&**c),
                _ => None,
            })
            .collect()
    }

    /// The algorithms of the first IKE SA established.
    fn ike_suite(events: &[Event]) -> IkeSuite {
        events
            .iter()
            .find_map(|e| match e {
                Event::IkeSaEstablished { suite, .. } => Some(*suite),
                _ => None,
            })
            .expect("an IKE SA established")
    }

    fn failures(events: &[Event]) -> Vec<&FailReason> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Failed(f) => Some(f),
                _ => None,
            })
            .collect()
    }

    fn count(events: &[Event], f: impl Fn(&Event) -> bool) -> usize {
        events.iter().filter(|e| f(e)).count()
    }

    /// Asserts one IKE SA and one Child SA on each side with crossed SPIs and keys.
    fn assert_up(&self) -> (ChildSa, ChildSa) {
        let ike_up = |ev: &[Event]| count!(ev, Event::IkeSaEstablished { .. });
        assert_eq!(
            ike_up(&self.i_events),
            1,
            "initiator events: {:?}",
            self.i_events
        );
        assert_eq!(
            ike_up(&self.r_events),
            1,
            "responder events: {:?}",
            self.r_events
        );
        let ic = Pair::children(&self.i_events);
        let rc = Pair::children(&self.r_events);
        assert_eq!(ic.len(), 1, "initiator events: {:?}", self.i_events);
        assert_eq!(rc.len(), 1, "responder events: {:?}", self.r_events);
        let (a, b) = (ic[0], rc[0]);
        assert_eq!(a.local_spi, b.remote_spi);
        assert_eq!(a.remote_spi, b.local_spi);
        assert_ne!(a.local_spi, a.remote_spi);
        assert_eq!(a.keys_out, b.keys_in, "initiator out == responder in");
        assert_eq!(a.keys_in, b.keys_out, "initiator in == responder out");
        assert_ne!(a.keys_in, a.keys_out);
        assert_eq!(a.suite, b.suite);
        assert_eq!(
            a.keys_in.keymat().len(),
            a.suite.encryption_keymat_len() + a.suite.integrity_keymat_len()
        );
        assert_eq!(a.local_ts, b.remote_ts);
        assert_eq!(a.remote_ts, b.local_ts);
        self.assert_no_failures();
        assert!(self.i.is_established() && self.r.is_established());
        (a.clone(), b.clone())
    }

    /// Asserts that neither side reported an IKE SA or a Child SA deleted.
    fn assert_nothing_deleted(&self) {
        for ev in [&self.i_events, &self.r_events] {
            let deleted = count!(
                ev,
                Event::IkeSaDeleted { .. } | Event::ChildSaDeleted { .. }
            );
            assert_eq!(deleted, 0, "{ev:?}");
        }
    }

    /// Asserts that each side reported exactly one failure: `why`.
    fn assert_both_failed(&self, why: &FailReason) {
        assert_eq!(Pair::failures(&self.i_events), vec![why], "initiator");
        assert_eq!(Pair::failures(&self.r_events), vec![why], "responder");
    }

    /// Asserts that neither side reported a failure.
    fn assert_no_failures(&self) {
        assert!(
            Pair::failures(&self.i_events).is_empty(),
            "initiator events: {:?}",
            self.i_events
        );
        assert!(
            Pair::failures(&self.r_events).is_empty(),
            "responder events: {:?}",
            self.r_events
        );
    }
}

const AZURE_IKE: &[&str] = &[
    "aes256-sha1-modp1024",
    "aes256-sha256-modp1024",
    "aes256-sha256-modp2048",
    "aes256-sha256-modp2048s256",
    "aes256gcm16-prfsha384-ecp384",
    "aes128-sha256-ecp256",
    "aes256-sha256-x25519",
    "aes128gcm16-prfsha256-curve25519",
    "aes256-sha384-ecp384",
    "aes256-sha512-modp3072",
];
const AZURE_ESP: &[&str] = &[
    "aes256gcm16",
    "aes128gcm16",
    "aes256-sha256",
    "aes256-sha1",
    "aes256gcm16-modp2048s256",
];

#[test]
fn every_ike_proposal_derives_equal_keys() {
    for ike in AZURE_IKE {
        let mut p = Pair::default_pair(ike, "aes256gcm16");
        let wall = std::time::Instant::now();
        p.run_initiation();
        // CPU time of both sides' whole handshake (printed with --nocapture).
        eprintln!("handshake {ike}: {:?}", wall.elapsed());
        let (a, _) = p.assert_up();
        assert_eq!(a.suite, esp::suite::Suite::AES256_GCM16, "{ike}");
        let want = ikev2::parse_ike_proposal(ike).unwrap();
        assert_eq!(Pair::ike_suite(&p.i_events).to_proposal(), want, "{ike}");
        assert_eq!(p.sent, 4, "{ike}: 4 messages without loss");
    }
}

#[test]
fn every_esp_proposal_derives_equal_keys() {
    for esp_s in AZURE_ESP {
        for ike in ["aes256-sha1-modp1024", "aes256-sha256-modp2048s256"] {
            let mut p = Pair::default_pair(ike, esp_s);
            let (a, _) = p.bring_up();
            let mut want = ikev2::parse_esp_proposal(esp_s).unwrap();
            want.dh.clear(); // no PFS group on the first Child SA
            assert_eq!(a.child_suite.to_proposal().without_dh(), want, "{esp_s}");
            assert_eq!(Some(a.suite), a.child_suite.esp_suite());
        }
    }
}

#[test]
fn azure_defaults_negotiate_aes256_sha1_modp1024() {
    let ic = Config::new(addr(I_ADDR), addr(R_ADDR), Psk::new(b"k".to_vec()));
    let rc = Config::new(addr(R_ADDR), addr(I_ADDR), Psk::new(b"k".to_vec()));
    let mut p = Pair::new(ic, rc);
    let (a, _) = p.bring_up();
    assert_eq!(a.suite, esp::suite::Suite::AES256_GCM16);
    assert_eq!(
        Pair::ike_suite(&p.r_events).to_string(),
        "aes256-sha1-prfsha1-modp1024"
    );
}

#[test]
fn each_single_loss_or_duplicate_still_comes_up() {
    for n in 0..4 {
        for fate in [Fate::Drop, Fate::Duplicate] {
            let mut p = Pair::default_pair("aes256-sha256-ecp256", "aes256gcm16");
            p.fate_of(n, fate);
            p.i.initiate(p.now);
            p.drive(Duration::from_secs(60));
            p.assert_up();
            if fate == Fate::Drop {
                // A lost message costs one retransmission timeout (4 s).
                assert!(p.now >= p.start + Duration::from_secs(4), "message {n}");
                assert!(p.now < p.start + Duration::from_secs(5), "message {n}");
            }
        }
    }
}

#[test]
fn mismatched_proposals_give_no_proposal_chosen() {
    let mut p = Pair::new(
        i_config("aes256-sha256-modp2048", "aes256gcm16"),
        r_config("aes128gcm16-prfsha256-ecp384", "aes256gcm16"),
    );
    p.run_initiation();
    p.assert_both_failed(&FailReason::NoProposalChosen { what: "IKE" });
    assert!(!p.i.is_established() && !p.r.is_established());
    assert_eq!(
        p.i.poll_timeout(),
        None,
        "no retransmission after a definitive answer"
    );
}

#[test]
fn mismatched_esp_gives_no_proposal_chosen_and_deletes_ike_sa() {
    let mut p = Pair::new(
        i_config("aes256-sha256-modp2048", "aes256gcm16"),
        r_config("aes256-sha256-modp2048", "aes128-sha1"),
    );
    p.run_initiation();
    p.assert_both_failed(&FailReason::NoProposalChosen { what: "ESP" });
    let deleted = |ev: &[Event]| count!(ev, Event::IkeSaDeleted { .. });
    assert_eq!(deleted(&p.i_events), 1);
    assert_eq!(deleted(&p.r_events), 1);
    assert!(!p.i.is_established() && !p.r.is_established());
}

#[test]
fn wrong_psk_fails_authentication_on_both_sides() {
    let mut p = Pair::new(
        config(
            I_ADDR,
            R_ADDR,
            "right",
            &["aes256-sha1-modp1024"],
            &["aes256gcm16"],
        ),
        config(
            R_ADDR,
            I_ADDR,
            "wrong",
            &["aes256-sha1-modp1024"],
            &["aes256gcm16"],
        ),
    );
    p.run_initiation();
    p.assert_both_failed(&FailReason::AuthenticationFailed);
    assert!(Pair::children(&p.i_events).is_empty() && Pair::children(&p.r_events).is_empty());
    assert!(!p.i.is_established() && !p.r.is_established());
}

#[test]
fn wrong_remote_id_fails() {
    let ic = i_config("aes256-sha1-modp1024", "aes256gcm16");
    let mut rc = r_config("aes256-sha1-modp1024", "aes256gcm16");
    rc.remote_id = Some(Identity::parse("@site-a.example"));
    let mut p = Pair::new(ic, rc);
    p.run_initiation();
    assert_eq!(
        Pair::failures(&p.i_events),
        vec![&FailReason::AuthenticationFailed]
    );
    assert!(matches!(
        Pair::failures(&p.r_events)[..],
        [FailReason::WrongPeerId { .. }]
    ));
}

#[test]
fn fqdn_identities_work() {
    let mut ic = i_config("aes256-sha256-x25519", "aes256gcm16");
    let mut rc = r_config("aes256-sha256-x25519", "aes256gcm16");
    ic.local_id = Identity::parse("@site-a.example");
    ic.remote_id = Some(Identity::parse("@hub.example"));
    rc.local_id = Identity::parse("@hub.example");
    rc.remote_id = Some(Identity::parse("@site-a.example"));
    let mut p = Pair::new(ic, rc);
    p.bring_up();
    let peer = p.r_events.iter().find_map(|e| match e {
        Event::IkeSaEstablished { peer_id, .. } => Some(peer_id.clone()),
        _ => None,
    });
    assert_eq!(peer.as_deref(), Some("@site-a.example"));
}

#[test]
fn disjoint_selectors_give_ts_unacceptable() {
    let mut ic = i_config("aes256-sha256-modp2048s256", "aes256gcm16");
    let mut rc = r_config("aes256-sha256-modp2048s256", "aes256gcm16");
    ic.local_ts = parse_ts_list(&["10.1.0.0/16"]).unwrap();
    ic.remote_ts = parse_ts_list(&["10.2.0.0/16"]).unwrap();
    rc.local_ts = parse_ts_list(&["10.9.0.0/16"]).unwrap();
    rc.remote_ts = parse_ts_list(&["10.1.0.0/16"]).unwrap();
    let mut p = Pair::new(ic, rc);
    p.run_initiation();
    p.assert_both_failed(&FailReason::TsUnacceptable);
    assert!(Pair::children(&p.i_events).is_empty());
}

#[test]
fn responder_narrows_any_to_its_selectors() {
    let ic = i_config("aes256-sha256-ecp256", "aes256gcm16");
    let mut rc = r_config("aes256-sha256-ecp256", "aes256gcm16");
    rc.local_ts = parse_ts_list(&["10.2.0.0/16", "10.3.0.0/16"]).unwrap();
    rc.remote_ts = parse_ts_list(&["10.1.0.0/16"]).unwrap();
    let mut p = Pair::new(ic, rc);
    let (a, _) = p.bring_up();
    assert_eq!(a.local_ts, parse_ts_list(&["10.1.0.0/16"]).unwrap());
    assert_eq!(
        a.remote_ts,
        parse_ts_list(&["10.2.0.0/16", "10.3.0.0/16"]).unwrap()
    );
    assert_eq!(TrafficSelector::ANY_V4.to_string(), "0.0.0.0/0");
}

#[test]
fn invalid_ke_payload_retry_succeeds() {
    // The initiator prefers ecp256 (its KE), the responder only takes modp2048.
    let mut p = Pair::new(
        i_config("aes256-sha256-ecp256-modp2048", "aes256gcm16"),
        r_config("aes256-sha256-modp2048", "aes256gcm16"),
    );
    p.bring_up();
    assert_eq!(p.sent, 6, "INVALID_KE round trip + 4 messages");
    assert_eq!(
        Pair::ike_suite(&p.i_events).dh,
        ikev2::crypto::DhGroup::Modp2048
    );
}

#[test]
fn responder_prefers_the_group_of_the_initiators_ke() {
    // Both groups acceptable to the responder: no INVALID_KE round trip needed.
    let mut p = Pair::new(
        i_config("aes256-sha256-ecp256-modp2048", "aes256gcm16"),
        r_config("aes256-sha256-modp2048-ecp256", "aes256gcm16"),
    );
    p.bring_up();
    assert_eq!(p.sent, 4);
}

#[test]
fn delete_from_initiator_tears_down_both_sides() {
    let mut p = Pair::default_pair("aes256-sha1-modp1024", "aes256gcm16");
    let (a, b) = p.bring_up();
    p.i.terminate(p.now);
    p.drive(Duration::from_secs(2));
    for (ev, c) in [(&p.i_events, &a), (&p.r_events, &b)] {
        assert!(ev.iter().any(
            |e| matches!(e, Event::ChildSaDeleted { local_spi, .. } if *local_spi == c.local_spi)
        ));
        assert_eq!(count!(ev, Event::IkeSaDeleted { .. }), 1);
    }
    assert!(!p.i.is_established() && !p.r.is_established());
    assert!(p.i.ike_sas().is_empty() && p.r.ike_sas().is_empty());
}

#[test]
fn delete_from_responder_and_child_delete() {
    let mut p = Pair::default_pair("aes256-sha256-modp2048s256", "aes256gcm16");
    let (a, b) = p.bring_up();
    // Child SA delete from the responder, by its inbound SPI.
    assert!(p.r.delete_child(p.now, b.local_spi));
    p.drive(Duration::from_secs(2));
    let child_del = |ev: &[Event]| count!(ev, Event::ChildSaDeleted { .. });
    assert_eq!(child_del(&p.i_events), 1);
    assert_eq!(child_del(&p.r_events), 1);
    assert!(p.i_events.iter().any(|e| matches!(e, Event::ChildSaDeleted { local_spi, remote_spi } if *local_spi == a.local_spi && *remote_spi == a.remote_spi)));
    assert!(p.i.is_established(), "IKE SA stays");
    // Then the IKE SA, from the responder.
    p.r.terminate(p.now);
    p.drive(Duration::from_secs(3));
    assert!(!p.i.is_established() && !p.r.is_established());
}

#[test]
fn liveness_check_is_answered_and_silence_is_detected() {
    let mut p = Pair::default_pair("aes256-sha256-x25519", "aes256gcm16");
    p.bring_up();
    let sent = p.sent;
    p.i.check_liveness(p.now);
    p.drive(Duration::from_secs(2));
    assert_eq!(p.sent, sent + 2);
    assert!(p.i.is_established());
    // Now the responder goes silent.
    p.fate = Box::new(|_, t| {
        if t.dst == addr(R_ADDR) || t.dst.ip() == addr(R_ADDR).ip() {
            Fate::Drop
        } else {
            Fate::Deliver
        }
    });
    let t0 = p.now;
    p.i.check_liveness(p.now);
    p.drive(Duration::from_secs(400));
    assert!(Pair::failures(&p.i_events).contains(&&FailReason::PeerUnreachable { tries: 5 }));
    assert!(!p.i.is_established());
    // strongSwan's schedule: 4 s × 1.8^n, 5 retransmissions, ≈165 s in total.
    let took = p.now - t0;
    assert!(
        took > Duration::from_secs(160) && took < Duration::from_secs(170),
        "{took:?}"
    );
}

#[test]
fn unreachable_peer_fails_after_retransmissions() {
    let mut p = Pair::default_pair("aes256-sha256-x25519", "aes256gcm16");
    p.fate = Box::new(|_, _| Fate::Drop);
    p.i.initiate(p.now);
    p.drive(Duration::from_secs(400));
    assert_eq!(
        Pair::failures(&p.i_events),
        vec![&FailReason::PeerUnreachable { tries: 5 }]
    );
    assert_eq!(p.sent, 6, "first send + 5 retransmissions");
    assert_eq!(p.i.poll_timeout(), None);
}

#[test]
fn nat_is_detected_and_ike_floats_to_4500() {
    let mut p = nat_pair("aes256-sha256-modp2048");
    let (a, b) = p.bring_up();
    assert!(a.udp_encap && b.udp_encap);
    assert_eq!(a.remote_addr.port(), 4500);
    assert_eq!(a.local_addr.port(), 4500);
    assert_eq!(b.remote_addr, addr("203.0.113.9:40001"));
}

#[test]
fn forced_encapsulation_without_nat() {
    let mut ic = i_config("aes256-sha256-ecp256", "aes256gcm16");
    ic.encap = Encap::Force;
    let rc = r_config("aes256-sha256-ecp256", "aes256gcm16");
    let mut p = Pair::new(ic, rc);
    let (a, b) = p.bring_up();
    assert!(a.udp_encap && b.udp_encap);
    assert_eq!(b.local_addr.port(), 4500);
}

#[test]
fn no_nat_keeps_port_500_and_no_encap() {
    let mut p = Pair::default_pair("aes256-sha256-ecp256", "aes256gcm16");
    let (a, b) = p.bring_up();
    assert!(!a.udp_encap && !b.udp_encap);
    assert_eq!(a.remote_addr, addr(R_ADDR));
}

#[test]
fn garbage_and_foreign_datagrams_are_ignored() {
    let mut p = Pair::default_pair("aes256-sha256-ecp256", "aes256gcm16");
    for junk in [&b""[..], &[0u8; 27][..], &[0xffu8; 200][..]] {
        p.r.handle_datagram(p.now, addr(I_ADDR), addr(R_ADDR), junk);
    }
    // A valid request from an address that is not the configured peer.
    p.i.initiate(p.now);
    let t = p.i.poll_transmit().unwrap();
    p.r.handle_datagram(p.now, addr("203.0.113.50:500"), addr(R_ADDR), &t.payload);
    assert!(p.r.poll_transmit().is_none());
    // Flipped bits in a protected message are dropped, and the exchange still completes.
    p.r.handle_datagram(p.now, t.src, t.dst, &t.payload);
    let resp = p.r.poll_transmit().unwrap();
    p.i.handle_datagram(p.now, resp.src, resp.dst, &resp.payload);
    let auth = p.i.poll_transmit().unwrap();
    let mut bad = auth.payload.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    p.r.handle_datagram(p.now, auth.src, auth.dst, &bad);
    assert!(p.r.poll_transmit().is_none());
    p.r.handle_datagram(p.now, auth.src, auth.dst, &auth.payload);
    p.drive(Duration::from_secs(1));
    p.assert_up();
}

#[test]
fn keys_and_psk_never_in_debug() {
    let mut p = Pair::default_pair("aes256-sha256-ecp256", "aes256gcm16");
    let (a, _) = p.bring_up();
    let dbg = format!(
        "{:?} {:?} {:?} {:?}",
        p.i_events,
        p.r_events,
        p.i,
        p.i.config()
    );
    assert!(dbg.contains("<redacted>"));
    assert!(!dbg.contains("secret"), "PSK leaked");
    let hex: String = a
        .keys_in
        .encryption()
        .iter()
        .map(|b| format!("{b}, "))
        .collect();
    assert!(
        !dbg.contains(hex.trim_end_matches(", ")),
        "key bytes leaked"
    );
}

#[test]
fn endpoint_is_send() {
    fn is_send<T: Send>() {}
    is_send::<Endpoint>();
    is_send::<Event>();
}

#[test]
fn initiator_retries_with_cookie() {
    use ikev2::wire::{HeaderRepr, Message, NotifyPayload, NotifyType, Payload};
    let mut p = Pair::default_pair("aes256-sha256-modp2048s256", "aes256gcm16");
    p.i.initiate(p.now);
    let first = p.i.poll_transmit().unwrap();
    let req = Message::parse(&first.payload).unwrap();
    // A responder under load answers with a COOKIE instead of keeping state.
    let cookie = vec![0xc0, 0x0c, 0x1e, 0x42];
    let answer = Message {
        header: HeaderRepr::sa_init(req.header.spi_i, true),
        payloads: vec![Payload::Notify(NotifyPayload::new(
            NotifyType::COOKIE,
            cookie.clone(),
        ))],
    };
    p.i.handle_datagram(p.now, first.dst, first.src, &answer.emit().unwrap());
    let retry = p.i.poll_transmit().expect("retry with the cookie");
    let m = Message::parse(&retry.payload).unwrap();
    match &m.payloads[0] {
        Payload::Notify(n) => {
            assert_eq!(n.notify_type, NotifyType::COOKIE);
            assert_eq!(n.data, cookie);
        }
        other => panic!("COOKIE must come first, got {other:?}"),
    }
    // All other payloads unchanged (RFC 7296 §2.6).
    assert_eq!(&m.payloads[1..], &req.payloads[..]);
    // The (cookie-less) responder accepts the retry and the SA comes up.
    p.r.handle_datagram(p.now, retry.src, retry.dst, &retry.payload);
    p.drive(Duration::from_secs(1));
    p.assert_up();
}

#[test]
fn half_open_responder_sa_is_forgotten() {
    let mut p = Pair::default_pair("aes256-sha256-ecp256", "aes256gcm16");
    // Deliver only the IKE_SA_INIT request; the initiator then vanishes.
    p.i.initiate(p.now);
    let t = p.i.poll_transmit().unwrap();
    p.r.handle_datagram(p.now, t.src, t.dst, &t.payload);
    assert!(p.r.poll_transmit().is_some());
    assert_eq!(p.r.ike_sas().len(), 1);
    let due = p.r.poll_timeout().expect("half-open timer");
    assert_eq!(due, p.now + Duration::from_secs(30));
    p.r.handle_timeout(due);
    assert!(p.r.ike_sas().is_empty());
    assert_eq!(p.r.poll_timeout(), None);
}

#[test]
fn automatic_liveness_checks_detect_a_dead_peer() {
    let mut ic = i_config("aes256-sha256-ecp256", "aes256gcm16");
    ic.dpd_delay = Some(Duration::from_secs(30));
    let rc = r_config("aes256-sha256-ecp256", "aes256gcm16");
    let mut p = Pair::new(ic, rc);
    p.bring_up();
    let up = p.now;
    // A live peer answers every 30 s check.
    p.drive(Duration::from_secs(100));
    assert!(p.i.is_established());
    assert_eq!(p.sent, 4 + 2 * 3, "three checks in 100 s");
    // Then the peer dies.
    p.fate = Box::new(|_, _| Fate::Drop);
    p.drive(Duration::from_secs(400));
    assert!(Pair::failures(&p.i_events).contains(&&FailReason::PeerUnreachable { tries: 5 }));
    assert!(p.now > up + Duration::from_secs(100));
}

/// Checks that the n-th Child SA of each side matches its counterpart (crossed keys).
fn assert_crossed(p: &Pair, n: usize) -> (ChildSa, ChildSa) {
    let ic = Pair::children(&p.i_events);
    let rc = Pair::children(&p.r_events);
    assert!(
        ic.len() > n && rc.len() > n,
        "{:?}\n{:?}",
        p.i_events,
        p.r_events
    );
    let (a, b) = (ic[n], rc[n]);
    assert_eq!(a.local_spi, b.remote_spi);
    assert_eq!(a.remote_spi, b.local_spi);
    assert_eq!(a.keys_out, b.keys_in);
    assert_eq!(a.keys_in, b.keys_out);
    assert_eq!(a.local_ts, b.remote_ts);
    assert_eq!(a.remote_ts, b.local_ts);
    (a.clone(), b.clone())
}

fn rekey_and_check(ike: &str, esp_s: &str, from_initiator: bool) {
    let mut p = Pair::default_pair(ike, esp_s);
    let (a, b) = p.bring_up();
    let ok = if from_initiator {
        p.i.rekey_child(p.now, a.local_spi)
    } else {
        p.r.rekey_child(p.now, b.local_spi)
    };
    assert!(ok);
    p.drive(Duration::from_secs(2));
    let (a2, b2) = assert_crossed(&p, 1);
    assert_ne!(a2.keys_in, a.keys_in, "new keys");
    assert_eq!((a.replaces, b.replaces), (None, None));
    assert_eq!(a2.replaces, Some(a.local_spi));
    assert_eq!(b2.replaces, Some(b.local_spi));
    assert_ne!(a2.local_spi, a.local_spi);
    assert_eq!(a2.suite, a.suite);
    // Make-before-break: the old pair is deleted on both sides, after the new one came up.
    for (ev, old) in [(&p.i_events, &a), (&p.r_events, &b)] {
        let pos_new = ev
            .iter()
            .rposition(|e| matches!(e, Event::ChildSaEstablished(_)))
            .unwrap();
        let pos_del = ev
            .iter()
            .position(|e| matches!(e, Event::ChildSaDeleted { local_spi, .. } if *local_spi == old.local_spi))
            .expect("old Child SA deleted");
        assert!(pos_del > pos_new);
    }
    p.assert_no_failures();
    // No loss: the rekey's initiator sends on the new Child SA at once and announces
    // the Delete of the old one; its responder defers until the peer confirmed.
    let (rekeyer, answerer, old_r, new_r, new_a) = if from_initiator {
        (&p.i_events, &p.r_events, &a, &b2, &a2)
    } else {
        (&p.r_events, &p.i_events, &b, &a2, &b2)
    };
    assert!(!new_a.defer_outbound && new_r.defer_outbound);
    assert!(rekeyer.iter().any(
        |e| matches!(e, Event::ChildSaDeleting { local_spi, .. } if *local_spi == old_r.local_spi)
    ));
    let confirmed = answerer
        .iter()
        .position(|e| matches!(e, Event::ChildSaConfirmed { local_spi, .. } if *local_spi == new_r.local_spi))
        .expect("confirmed");
    let old_gone = answerer
        .iter()
        .position(|e| matches!(e, Event::ChildSaDeleted { local_spi, .. } if *local_spi != new_r.local_spi))
        .expect("old deleted");
    assert!(confirmed < old_gone);
    let info = p.i.ike_sas();
    assert_eq!(info[0].children, vec![(a2.local_spi, a2.remote_spi)]);
    assert_eq!(
        p.r.ike_sas()[0].children,
        vec![(b2.local_spi, b2.remote_spi)]
    );
}

#[test]
fn child_rekey_from_initiator() {
    rekey_and_check("aes256-sha1-modp1024", "aes256gcm16", true);
}

#[test]
fn child_rekey_from_responder() {
    rekey_and_check("aes256-sha256-ecp256", "aes256-sha256", false);
}

#[test]
fn child_rekey_with_pfs() {
    rekey_and_check(
        "aes256-sha256-modp2048s256",
        "aes256gcm16-modp2048s256",
        true,
    );
    rekey_and_check("aes256-sha256-x25519", "aes128gcm16-ecp256", false);
}

#[test]
fn pfs_required_but_not_offered_keeps_the_old_child() {
    let mut p = Pair::new(
        i_config("aes256-sha256-ecp256", "aes256gcm16"),
        r_config("aes256-sha256-ecp256", "aes256gcm16-ecp256"),
    );
    let (a, _) = p.bring_up(); // no DH in IKE_AUTH: the first Child SA comes up
    assert!(p.i.rekey_child(p.now, a.local_spi));
    p.drive(Duration::from_secs(2));
    assert_eq!(
        Pair::failures(&p.i_events),
        vec![&FailReason::NoProposalChosen { what: "ESP" }]
    );
    assert_eq!(p.i.ike_sas()[0].children, vec![(a.local_spi, a.remote_spi)]);
}

#[test]
fn rekey_without_pfs_is_accepted_when_configured() {
    // Azure: we want PFS, the peer rekeys without a KE payload.
    let mut rc = r_config("aes256-sha256-ecp256", "aes256gcm16-ecp256");
    rc.accept_rekey_without_pfs = true;
    let ic = i_config("aes256-sha256-ecp256", "aes256gcm16");
    let mut p = Pair::new(ic, rc);
    let (a, _) = p.bring_up();
    assert!(p.i.rekey_child(p.now, a.local_spi));
    p.drive(Duration::from_secs(2));
    let (a2, b2) = assert_crossed(&p, 1);
    assert_eq!((a2.child_suite.dh, b2.child_suite.dh), (None, None));
    p.assert_no_failures();
}

#[test]
fn children_rekey_by_themselves() {
    let mut p = Pair::alike(
        i_config("aes256-sha256-ecp256", "aes256gcm16"),
        r_config("aes256-sha256-ecp256", "aes256gcm16"),
        |c| c.child_rekey_time = Some(Duration::from_secs(100)),
    );
    p.bring_up();
    // The initiator rekeys at 100 s and 200 s; the responder (at 105 s) never has to.
    p.drive(Duration::from_secs(250));
    assert_eq!(Pair::children(&p.i_events).len(), 3);
    assert_crossed(&p, 1);
    assert_crossed(&p, 2);
    let dels = |ev: &[Event]| count!(ev, Event::ChildSaDeleted { .. });
    assert_eq!(dels(&p.i_events), 2);
    assert_eq!(dels(&p.r_events), 2);
    assert_eq!(p.i.ike_sas()[0].children.len(), 1);
    p.assert_no_failures();
}

#[test]
fn rekey_survives_a_lost_message() {
    for n in [4, 5] {
        let mut p = Pair::default_pair("aes256-sha256-ecp256", "aes256gcm16");
        p.fate_of(n, Fate::Drop);
        let (a, _) = p.bring_up();
        assert!(p.i.rekey_child(p.now, a.local_spi));
        p.drive(Duration::from_secs(30));
        assert_crossed(&p, 1);
        assert_eq!(p.i.ike_sas()[0].children.len(), 1, "message {n}");
        assert_eq!(p.r.ike_sas()[0].children.len(), 1, "message {n}");
    }
}

fn rekeyed(ev: &[Event]) -> Vec<(u64, u64, u64, u64)> {
    ev.iter()
        .filter_map(|e| match e {
            Event::IkeSaRekeyed {
                old_spi_i,
                old_spi_r,
                spi_i,
                spi_r,
                ..
            } => Some((*old_spi_i, *old_spi_r, *spi_i, *spi_r)),
            _ => None,
        })
        .collect()
}

fn ike_rekey_and_check(from_initiator: bool, ike: &str) {
    let mut p = Pair::default_pair(ike, "aes256gcm16");
    let (a, b) = p.bring_up();
    let old = p.i.ike_sas()[0].clone();
    if from_initiator {
        p.i.rekey_ike(p.now);
    } else {
        p.r.rekey_ike(p.now);
    }
    p.drive(Duration::from_secs(2));
    let ri = rekeyed(&p.i_events);
    let rr = rekeyed(&p.r_events);
    assert_eq!(ri.len(), 1, "{:?}", p.i_events);
    assert_eq!(ri, rr);
    assert_eq!((ri[0].0, ri[0].1), (old.spi_i, old.spi_r));
    assert_ne!((ri[0].2, ri[0].3), (old.spi_i, old.spi_r));
    // Only the new IKE SA remains, with the same Child SA; nothing was reported deleted.
    for (ep, c) in [(&p.i, &a), (&p.r, &b)] {
        let sas = ep.ike_sas();
        assert_eq!(sas.len(), 1);
        assert_eq!((sas[0].spi_i, sas[0].spi_r), (ri[0].2, ri[0].3));
        assert_eq!(sas[0].children, vec![(c.local_spi, c.remote_spi)]);
        // The side that rekeyed is the new IKE SA's original initiator (RFC 7296 §2.18).
        assert_eq!(sas[0].initiator, std::ptr::eq(ep, &p.i) == from_initiator);
    }
    p.assert_nothing_deleted();
    p.assert_no_failures();
    // The new IKE SA works: rekey the Child SA through it, then delete everything.
    assert!(p.r.rekey_child(p.now, b.local_spi));
    p.drive(Duration::from_secs(3));
    assert_crossed(&p, 1);
    p.i.terminate(p.now);
    p.drive(Duration::from_secs(4));
    for ev in [&p.i_events, &p.r_events] {
        let del: Vec<_> = ev
            .iter()
            .filter_map(|e| match e {
                Event::IkeSaDeleted { spi_i, spi_r } => Some((*spi_i, *spi_r)),
                _ => None,
            })
            .collect();
        assert_eq!(del, vec![(ri[0].2, ri[0].3)]);
    }
    assert!(p.i.ike_sas().is_empty() && p.r.ike_sas().is_empty());
}

#[test]
fn ike_rekey_from_initiator() {
    ike_rekey_and_check(true, "aes256-sha1-modp1024");
}

#[test]
fn ike_rekey_from_responder() {
    ike_rekey_and_check(false, "aes256gcm16-prfsha384-ecp384");
}

#[test]
fn ike_rekey_by_itself() {
    // After an INVALID_KE_PAYLOAD round trip at IKE_SA_INIT, the rekey (by time) uses the
    // group in use (modp2048) and needs no second round trip.
    let mut p = Pair::alike(
        i_config("aes256-sha256-ecp256-modp2048", "aes256gcm16"),
        r_config("aes256-sha256-modp2048", "aes256gcm16"),
        |c| c.ike_rekey_time = Some(Duration::from_secs(100)),
    );
    p.bring_up();
    p.drive(Duration::from_secs(150));
    assert_eq!(rekeyed(&p.i_events).len(), 1, "{:?}", p.i_events);
    assert_eq!(
        p.sent,
        6 + 2 + 2,
        "INVALID_KE + IKE_SA_INIT + IKE_AUTH, rekey, delete"
    );
    assert_eq!(rekeyed(&p.i_events), rekeyed(&p.r_events));
    assert!(Pair::failures(&p.i_events).is_empty(), "{:?}", p.i_events);
    assert_eq!(p.i.ike_sas().len(), 1);
    assert!(p.i.is_established() && p.r.is_established());
}

#[test]
fn delete_survives_loss_and_duplication() {
    for n in [4, 5] {
        for fate in [Fate::Drop, Fate::Duplicate] {
            let mut p = Pair::default_pair("aes256-sha256-ecp256", "aes256gcm16");
            p.fate_of(n, fate);
            p.bring_up();
            p.i.terminate(p.now);
            p.drive(Duration::from_secs(200));
            // A lost Delete response: the responder is gone, the initiator retransmits
            // into the void and gives up; either way both report the IKE SA deleted once.
            for ev in [&p.i_events, &p.r_events] {
                assert_eq!(
                    count!(ev, Event::IkeSaDeleted { .. }),
                    1,
                    "{n} {fate:?}: {ev:?}"
                );
            }
            assert!(p.i.ike_sas().is_empty() && p.r.ike_sas().is_empty());
        }
    }
}

#[test]
fn restarted_peer_with_initial_contact_replaces_the_old_sa() {
    let mut p = Pair::default_pair("aes256-sha256-ecp256", "aes256gcm16");
    let (_, b) = p.bring_up();
    // The initiator restarts: a fresh endpoint (new SPIs, same addresses).
    p.i = Endpoint::new(
        config(
            I_ADDR,
            R_ADDR,
            "secret",
            &["aes256-sha256-ecp256"],
            &["aes256gcm16"],
        ),
        Box::new(TestRng::new(99)),
    );
    p.i_events.clear();
    p.run_initiation();
    let ups = Pair::children(&p.r_events);
    assert_eq!(ups.len(), 2);
    assert!(p.r_events.iter().any(
        |e| matches!(e, Event::ChildSaDeleted { local_spi, .. } if *local_spi == b.local_spi)
    ));
    assert_eq!(count!(&p.r_events, Event::IkeSaDeleted { .. }), 1);
    assert_eq!(p.r.ike_sas().len(), 1, "only the new IKE SA is left");
    assert_crossed_last(&p);
}

fn assert_crossed_last(p: &Pair) {
    let a = *Pair::children(&p.i_events).last().unwrap();
    let b = *Pair::children(&p.r_events).last().unwrap();
    assert_eq!(a.local_spi, b.remote_spi);
    assert_eq!(a.keys_out, b.keys_in);
    assert_eq!(a.keys_in, b.keys_out);
}

#[test]
fn transmits_on_4500_need_the_marker() {
    let mut ic = i_config("aes256-sha256-ecp256", "aes256gcm16");
    ic.encap = Encap::Force;
    let rc = r_config("aes256-sha256-ecp256", "aes256gcm16");
    let mut p = Pair::new(ic, rc);
    p.i.initiate(p.now);
    let init = p.i.poll_transmit().unwrap();
    assert!(!init.needs_non_esp_marker());
    assert_eq!(
        &init.payload[17..18],
        &[0x20],
        "IKE header, no marker: version byte at 17"
    );
    p.r.handle_datagram(p.now, init.src, init.dst, &init.payload);
    let resp = p.r.poll_transmit().unwrap();
    p.i.handle_datagram(p.now, resp.src, resp.dst, &resp.payload);
    let auth = p.i.poll_transmit().unwrap();
    assert_eq!((auth.src.port(), auth.dst.port()), (4500, 4500));
    assert!(auth.needs_non_esp_marker());
    assert_ne!(
        &auth.payload[..4],
        &[0, 0, 0, 0],
        "payload starts with SPIi, not the marker"
    );
}

#[test]
fn simultaneous_initiation_gives_two_consistent_sas() {
    let mut p = Pair::default_pair("aes256-sha256-ecp256", "aes256gcm16");
    p.i.initiate(p.now);
    p.r.initiate(p.now);
    p.drive(Duration::from_secs(1));
    p.assert_no_failures();
    // Nobody sent INITIAL_CONTACT (each had another IKE SA in progress), so both IKE SAs
    // and both Child SA pairs stay, each matching its counterpart.
    assert_eq!(p.i.ike_sas().len(), 2);
    assert_eq!(p.r.ike_sas().len(), 2);
    let ic = Pair::children(&p.i_events);
    let rc = Pair::children(&p.r_events);
    assert_eq!((ic.len(), rc.len()), (2, 2));
    for a in &ic {
        let b = rc
            .iter()
            .find(|b| b.remote_spi == a.local_spi)
            .expect("counterpart");
        assert_eq!(a.remote_spi, b.local_spi);
        assert_eq!(a.keys_in, b.keys_out);
        assert_eq!(a.keys_out, b.keys_in);
    }
    assert_eq!(count!(&p.i_events, Event::ChildSaDeleted { .. }), 0);
}

#[test]
fn stats_count_drops_retransmissions_and_resent_responses() {
    // Lose the IKE_AUTH response once: one retransmission, one cached response resent.
    let mut p = Pair::default_pair("aes256-sha256-ecp256", "aes256gcm16");
    p.fate_of(3, Fate::Drop);
    p.i.initiate(p.now);
    p.drive(Duration::from_secs(10));
    p.assert_up();
    assert_eq!(p.i.stats().retransmitted, 1);
    assert_eq!(p.r.stats().resent_responses, 1);
    assert_eq!(p.r.stats().received, 3);
    assert_eq!(p.r.stats().dropped, 0);
    for junk in [&b""[..], &[0u8; 40][..]] {
        p.r.handle_datagram(p.now, addr(I_ADDR), addr(R_ADDR), junk);
    }
    assert_eq!(p.r.stats().dropped, 2);
}

#[test]
fn traffic_from_the_peer_postpones_liveness_checks() {
    let mut ic = i_config("aes256-sha256-ecp256", "aes256gcm16");
    ic.dpd_delay = Some(Duration::from_secs(30));
    let rc = r_config("aes256-sha256-ecp256", "aes256gcm16");
    let mut p = Pair::new(ic, rc);
    p.bring_up();
    let first = p.i.poll_timeout().unwrap();
    p.i.peer_alive(p.now + Duration::from_secs(20));
    assert_eq!(p.i.poll_timeout().unwrap(), first + Duration::from_secs(20));
}

#[test]
fn absurd_timer_settings_do_not_panic() {
    let ike = "aes256-sha256-ecp256";
    let mut p = Pair::alike(
        i_config(ike, "aes256gcm16"),
        r_config(ike, "aes256gcm16"),
        |c| {
            c.ike_lifetime = Duration::MAX;
            c.child_lifetime = Duration::MAX;
            c.child_rekey_time = Some(Duration::MAX);
            c.ike_rekey_time = Some(Duration::MAX);
            c.dpd_delay = Some(Duration::MAX);
            c.half_open_timeout = Duration::MAX;
            c.retransmit_timeout = Duration::MAX;
            c.retransmit_base = f64::NAN;
        },
    );
    p.bring_up();
    assert!(p.i.poll_timeout().is_some_and(|t| t > p.now));
}

#[test]
fn simultaneous_child_rekeys_leave_one_child_sa() {
    for seed_shift in 0..6u64 {
        let mut ic = i_config("aes256-sha256-ecp256", "aes256gcm16");
        ic.initial_contact = seed_shift % 2 == 0;
        let rc = r_config("aes256-sha256-ecp256", "aes256gcm16");
        let mut p = Pair::new(ic, rc);
        p.i = Endpoint::new(
            p.i.config().clone(),
            Box::new(TestRng::new(10 + seed_shift)),
        );
        let (a, b) = p.bring_up();
        // Both rekey the same Child SA at the same moment (RFC 7296 §2.8.1).
        assert!(p.i.rekey_child(p.now, a.local_spi));
        assert!(p.r.rekey_child(p.now, b.local_spi));
        p.drive(Duration::from_secs(5));
        let ci = &p.i.ike_sas()[0].children;
        let cr = &p.r.ike_sas()[0].children;
        assert_eq!(ci.len(), 1, "seed {seed_shift}: {:?}", p.i_events);
        assert_eq!(cr.len(), 1, "seed {seed_shift}: {:?}", p.r_events);
        assert_eq!((ci[0].0, ci[0].1), (cr[0].1, cr[0].0));
        assert_ne!(ci[0].0, a.local_spi);
        // Every Child SA reported up on one side was reported down on it, except the last.
        for ev in [&p.i_events, &p.r_events] {
            let ups = Pair::children(ev).len();
            let downs = count!(ev, Event::ChildSaDeleted { .. });
            assert_eq!(ups, downs + 1);
        }
        p.assert_no_failures();
    }
}

/// An x25519 / AES-GCM pair with `f` applied to both configs.
fn pair_with(f: impl Fn(&mut Config)) -> Pair {
    Pair::alike(
        i_config("aes256-sha256-x25519", "aes256gcm16"),
        r_config("aes256-sha256-x25519", "aes256gcm16"),
        f,
    )
}

fn count_expired(ev: &[Event]) -> (usize, usize) {
    (
        count!(ev, Event::ChildSaExpired { .. }),
        count!(ev, Event::IkeSaExpired { .. }),
    )
}

#[test]
fn child_sa_not_rekeyed_is_deleted_at_its_hard_lifetime() {
    let mut p = pair_with(|c| {
        c.child_rekey_time = None;
        c.child_lifetime = Duration::from_secs(100);
    });
    let (a, b) = p.bring_up();
    p.drive(Duration::from_secs(99));
    assert_eq!(count_expired(&p.i_events), (0, 0));
    p.drive(Duration::from_secs(102));
    // Both sides expire it at 100 s; each reports it expired and deleted exactly once.
    for (ev, c) in [(&p.i_events, &a), (&p.r_events, &b)] {
        let pos_exp = ev
            .iter()
            .position(|e| matches!(e, Event::ChildSaExpired { local_spi, .. } if *local_spi == c.local_spi))
            .expect("expired");
        let pos_del = ev
            .iter()
            .position(|e| matches!(e, Event::ChildSaDeleted { local_spi, .. } if *local_spi == c.local_spi))
            .expect("deleted");
        assert!(pos_del > pos_exp);
        assert_eq!(count!(ev, Event::ChildSaDeleted { .. }), 1);
    }
    assert!(p.i.ike_sas()[0].children.is_empty());
    assert!(p.r.ike_sas()[0].children.is_empty());
    assert!(
        p.i.is_established() && p.r.is_established(),
        "the IKE SA stays"
    );
}

#[test]
fn ike_sa_not_rekeyed_is_deleted_at_its_hard_lifetime() {
    let mut p = pair_with(|c| {
        c.ike_rekey_time = None;
        c.ike_lifetime = Duration::from_secs(300);
    });
    p.bring_up();
    p.drive(Duration::from_secs(299));
    assert!(p.i.is_established() && p.r.is_established());
    p.drive(Duration::from_secs(330));
    for ev in [&p.i_events, &p.r_events] {
        assert_eq!(count_expired(ev).1, 1, "{ev:?}");
        assert_eq!(count!(ev, Event::IkeSaDeleted { .. }), 1, "{ev:?}");
        assert_eq!(count!(ev, Event::ChildSaDeleted { .. }), 1, "{ev:?}");
    }
    assert!(p.i.ike_sas().is_empty() && p.r.ike_sas().is_empty());
    p.assert_no_failures();
}

#[test]
fn rekeys_are_jittered_and_happen_before_the_hard_lifetime() {
    let mut p = pair_with(|c| {
        c.child_lifetime = Duration::from_secs(1000);
        c.child_rekey_time = Some(Duration::from_secs(100));
        c.child_rekey_jitter = Duration::from_secs(40);
    });
    p.bring_up();
    // Step through 2,000 s and note when each new Child SA appears.
    let mut times = Vec::new();
    let mut seen = 1;
    for s in 2..2000 {
        p.drive(Duration::from_secs(s));
        let n = Pair::children(&p.i_events).len();
        if n > seen {
            times.push(s);
            seen = n;
        }
    }
    let gaps: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.len() > 15, "{times:?}");
    assert!(gaps.iter().all(|g| (59..=101).contains(g)), "{gaps:?}");
    let distinct: std::collections::BTreeSet<_> = gaps.iter().collect();
    assert!(distinct.len() > 5, "jitter varies the interval: {gaps:?}");
    assert_eq!(count_expired(&p.i_events), (0, 0));
    assert_eq!(count_expired(&p.r_events), (0, 0));
    assert_eq!(p.i.ike_sas()[0].children.len(), 1);
    assert_eq!(p.r.ike_sas()[0].children.len(), 1);
    // The status view: next rekey within the jitter window, expiry at the lifetime.
    let info = &p.i.ike_sas()[0];
    let t = info.child_times[0];
    assert_eq!(t.local_spi, info.children[0].0);
    let rekey = t.rekey_at.unwrap() - t.established_at;
    assert!(
        (Duration::from_secs(60)..=Duration::from_secs(100)).contains(&rekey),
        "{rekey:?}"
    );
    assert_eq!(
        t.expires_at.unwrap() - t.established_at,
        Duration::from_secs(1000)
    );
    assert!(info.rekey_at.is_some() && info.expires_at.is_some());
}

#[test]
fn daemon_reported_soft_and_hard_limits() {
    let mut p = pair_with(|c| {
        // Azure: 27,000 s and 102,400,000 KB for Child SAs, 28,800 s for the IKE SA.
        c.child_lifetime = Duration::from_secs(27_000);
        c.ike_lifetime = Duration::from_secs(28_800);
        c.child_life_bytes = Some(102_400_000 * 1024);
    });
    let (a, _) = p.bring_up();
    let lt = a.esp_lifetime;
    assert_eq!(lt.hard.bytes, Some(104_857_600_000));
    assert_eq!(lt.soft.bytes, Some(94_371_840_000));
    assert_eq!((lt.hard.packets, lt.soft.packets), (None, None));
    assert_eq!(a.lifetime, Duration::from_secs(27_000));
    // Soft: a rekey (make-before-break); reporting it twice starts only one.
    assert!(p.i.child_sa_soft_expired(p.now, a.local_spi));
    assert!(p.i.child_sa_soft_expired(p.now, a.local_spi));
    assert!(!p.i.child_sa_soft_expired(p.now, 12345));
    p.drive(Duration::from_secs(3));
    let (a2, b2) = assert_crossed(&p, 1);
    assert_eq!(a2.replaces, Some(a.local_spi));
    assert_eq!(Pair::children(&p.i_events).len(), 2);
    assert_eq!(
        p.i.ike_sas()[0].children,
        vec![(a2.local_spi, a2.remote_spi)]
    );
    // Hard: deleted at once on our side, and on the peer's after its Delete.
    assert!(p.r.child_sa_hard_expired(p.now, b2.local_spi));
    assert!(!p.r.child_sa_hard_expired(p.now, b2.local_spi));
    p.collect();
    assert!(p.r_events.iter().any(
        |e| matches!(e, Event::ChildSaExpired { local_spi, .. } if *local_spi == b2.local_spi)
    ));
    p.drive(Duration::from_secs(5));
    assert!(p.i_events.iter().any(
        |e| matches!(e, Event::ChildSaDeleted { local_spi, .. } if *local_spi == a2.local_spi)
    ));
    assert!(p.i.ike_sas()[0].children.is_empty());
    assert!(p.r.ike_sas()[0].children.is_empty());
    p.assert_no_failures();
}

#[test]
fn simultaneous_ike_rekeys_leave_one_ike_sa_with_the_child() {
    for seed in 0..8u64 {
        let mut p = pair_with(|_| {});
        p.i = Endpoint::new(p.i.config().clone(), Box::new(TestRng::new(40 + seed)));
        let (a, b) = p.bring_up();
        // Both rekey the IKE SA at the same moment (RFC 7296 §2.8.2).
        p.i.rekey_ike(p.now);
        p.r.rekey_ike(p.now);
        p.drive(Duration::from_secs(100));
        let (si, sr) = (p.i.ike_sas(), p.r.ike_sas());
        assert_eq!(si.len(), 1, "seed {seed}: {:?}", p.i_events);
        assert_eq!(sr.len(), 1, "seed {seed}: {:?}", p.r_events);
        assert_eq!((si[0].spi_i, si[0].spi_r), (sr[0].spi_i, sr[0].spi_r));
        assert_eq!(si[0].children, vec![(a.local_spi, a.remote_spi)]);
        assert_eq!(sr[0].children, vec![(b.local_spi, b.remote_spi)]);
        // One rekey reported on each side, to the surviving IKE SA; nothing deleted.
        for ev in [&p.i_events, &p.r_events] {
            let r = rekeyed(ev);
            assert_eq!(r.len(), 1, "seed {seed}: {ev:?}");
            assert_eq!((r[0].2, r[0].3), (si[0].spi_i, si[0].spi_r));
        }
        p.assert_nothing_deleted();
        p.assert_no_failures();
        // The survivor works: a Child SA rekey over it.
        assert!(p.r.rekey_child(p.now, b.local_spi));
        p.drive(Duration::from_secs(110));
        assert_crossed(&p, 1);
    }
}

/// The initiator behind a NAT (public address 203.0.113.9:40000); the responder knows
/// the initiator by that address.
fn nat_pair(ike: &str) -> Pair {
    let ic = i_config(ike, "aes256gcm16");
    let rc = config(R_ADDR, "203.0.113.9:500", "s", &[ike], &["aes256gcm16"]);
    let mut p = Pair::new(ic, rc);
    p.nat_public = Some(addr("203.0.113.9:40000"));
    p
}

#[test]
fn the_side_behind_a_nat_sends_keepalives_every_20_s() {
    use std::cell::RefCell;
    use std::rc::Rc;
    let mut p = nat_pair("aes256-sha256-x25519");
    let seen: Rc<RefCell<Vec<(bool, Transmit)>>> = Rc::default();
    let s2 = seen.clone();
    p.fate = Box::new(move |_, t| {
        s2.borrow_mut()
            .push((t.src.ip() == addr(I_ADDR).ip(), t.clone()));
        Fate::Deliver
    });
    p.bring_up();
    seen.borrow_mut().clear();
    p.drive(Duration::from_secs(101));
    let seen = seen.borrow();
    let from_i: Vec<_> = seen.iter().filter(|(i, _)| *i).map(|(_, t)| t).collect();
    // 20, 40, 60, 80, 100 s: only keepalives, from the initiator (behind the NAT).
    assert_eq!(from_i.len(), 5, "{seen:?}");
    for t in &from_i {
        assert!(t.is_nat_keepalive());
        assert_eq!(t.payload, vec![0xff]);
        assert!(!t.needs_non_esp_marker());
        assert_eq!((t.src.port(), t.dst.port()), (4500, 4500));
    }
    assert!(seen.iter().all(|(i, _)| *i), "the responder sends none");
    assert!(Pair::failures(&p.r_events).is_empty());
}

#[test]
fn no_keepalives_without_nat_or_when_disabled() {
    let mut p = pair_with(|_| {});
    p.bring_up();
    let before = p.sent;
    p.drive(Duration::from_secs(200));
    assert_eq!(p.sent, before);
    let mut p = nat_pair("aes256-sha256-x25519");
    p.i = Endpoint::new(
        {
            let mut c = p.i.config().clone();
            c.nat_keepalive = None;
            c
        },
        Box::new(TestRng::new(1)),
    );
    p.bring_up();
    let before = p.sent;
    p.drive(Duration::from_secs(200));
    assert_eq!(p.sent, before);
}

#[test]
fn a_nat_rebinding_is_followed_and_reported() {
    let mut p = nat_pair("aes256-sha256-x25519");
    let (a, b) = p.bring_up();
    assert_eq!(b.remote_addr, addr("203.0.113.9:40001"));
    // The NAT forgets the mapping and picks another port; the next IKE message (a
    // liveness check) comes from there.
    p.nat_public = Some(addr("203.0.113.9:51000"));
    p.i.check_liveness(p.now);
    p.drive(Duration::from_secs(2));
    let moved: Vec<_> = p
        .r_events
        .iter()
        .filter_map(|e| match e {
            Event::PeerAddressChanged {
                remote_addr,
                children,
                ..
            } => Some((*remote_addr, children.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        moved,
        vec![(addr("203.0.113.9:51001"), vec![(b.local_spi, b.remote_spi)])]
    );
    assert_eq!(p.r.ike_sas()[0].remote_addr, addr("203.0.113.9:51001"));
    // Everything goes on over the new mapping: a Child SA rekey from the responder,
    // whose new Child SA carries the new address.
    assert!(p.r.rekey_child(p.now, b.local_spi));
    p.drive(Duration::from_secs(4));
    let (_, b2) = assert_crossed(&p, 1);
    assert_eq!(b2.remote_addr, addr("203.0.113.9:51001"));
    // The initiator saw no change of its peer's address.
    assert!(!p
        .i_events
        .iter()
        .any(|e| matches!(e, Event::PeerAddressChanged { .. })));
    assert_eq!(a.remote_addr, p.i.ike_sas()[0].remote_addr);
    p.assert_no_failures();
}

/// The peer goes silent at 50 s; returns the pair and when the initiator declared it dead.
fn dead_peer(action: ikev2::DpdAction) -> (Pair, Duration) {
    use std::cell::Cell;
    use std::rc::Rc;
    // Only the initiator runs DPD.
    let mut p = pair_with(|c| {
        if c.local_addr == addr(I_ADDR) {
            c.dpd_delay = Some(Duration::from_secs(30));
            c.dpd_action = action;
        }
    });
    p.bring_up();
    p.drive(Duration::from_secs(50));
    let dead = Rc::new(Cell::new(true));
    let d2 = dead.clone();
    p.fate = Box::new(move |_, _| if d2.get() { Fate::Drop } else { Fate::Deliver });
    let mut when = None;
    for s in 51..400 {
        p.drive(Duration::from_secs(s));
        if when.is_none()
            && p.i_events
                .iter()
                .any(|e| matches!(e, Event::DeadPeer { .. }))
        {
            when = Some(Duration::from_secs(s));
            dead.set(false);
        }
    }
    (p, when.expect("dead peer detected"))
}

#[test]
fn dead_peer_clear_deletes_everything_and_says_why() {
    let (p, when) = dead_peer(ikev2::DpdAction::Clear);
    // Last heard at ~31 s (a check), silence from 50 s, the next check at ~61 s, then 5
    // retransmissions (4 s × 1.8ⁿ) ≈ 165 s more.
    assert!(
        (Duration::from_secs(200)..Duration::from_secs(260)).contains(&when),
        "{when:?}"
    );
    let pos = |f: &dyn Fn(&Event) -> bool| p.i_events.iter().position(f).unwrap();
    let dp = pos(
        &|e| matches!(e, Event::DeadPeer { action: ikev2::DpdAction::Clear, silent_for, .. } if *silent_for > Duration::from_secs(150)),
    );
    let cd = pos(&|e| matches!(e, Event::ChildSaDeleted { .. }));
    let id = pos(&|e| matches!(e, Event::IkeSaDeleted { .. }));
    let f = pos(&|e| matches!(e, Event::Failed(FailReason::PeerUnreachable { .. })));
    assert!(dp < cd && cd < id && id < f, "{:?}", p.i_events);
    assert!(p.i.ike_sas().is_empty(), "nothing re-initiated");
}

#[test]
fn dead_peer_trap_deletes_and_waits() {
    let (p, _) = dead_peer(ikev2::DpdAction::Trap);
    assert!(p.i_events.iter().any(|e| matches!(
        e,
        Event::DeadPeer {
            action: ikev2::DpdAction::Trap,
            ..
        }
    )));
    assert!(p.i.ike_sas().is_empty());
}

#[test]
fn dead_peer_restart_reinitiates_and_comes_back_up() {
    let (p, _) = dead_peer(ikev2::DpdAction::Restart);
    // The peer came back right after the detection: a new IKE SA and Child SA.
    assert_eq!(
        count!(&p.i_events, Event::IkeSaEstablished { .. }),
        2,
        "{:?}",
        p.i_events
    );
    assert!(p.i.is_established());
    assert_eq!(p.i.ike_sas().len(), 1);
    assert_crossed_last(&p);
    // The responder dropped its stale IKE SA (INITIAL_CONTACT).
    assert_eq!(p.r.ike_sas().len(), 1, "{:?}", p.r_events);
}

fn is_fragment(t: &Transmit) -> bool {
    t.payload.get(16) == Some(&53)
}

fn fragmenting_pair(
    size: usize,
    i_frag: bool,
) -> (Pair, std::rc::Rc<std::cell::RefCell<Vec<Transmit>>>) {
    let mut p = pair_with(|c| {
        c.fragment_size = size;
        c.esp_proposals = parse_esp_proposals(&["aes256gcm16-modp2048"]).unwrap();
        if c.local_addr == addr(I_ADDR) {
            c.fragmentation = i_frag;
        }
    });
    let seen: std::rc::Rc<std::cell::RefCell<Vec<Transmit>>> = Default::default();
    let s2 = seen.clone();
    p.fate = Box::new(move |_, t| {
        s2.borrow_mut().push(t.clone());
        Fate::Deliver
    });
    (p, seen)
}

#[test]
fn large_messages_are_fragmented_and_reassembled() {
    let (mut p, seen) = fragmenting_pair(200, true);
    let (a, b) = p.bring_up();
    {
        let seen = seen.borrow();
        let frags: Vec<_> = seen.iter().filter(|t| is_fragment(t)).collect();
        // IKE_AUTH request and response, each in at least two fragments, none too long
        // (200 − 20 IP − 8 UDP).
        assert!(frags.len() >= 4, "{} fragments", frags.len());
        assert!(frags.iter().all(|t| t.payload.len() <= 172));
        assert!(frags.iter().any(|t| t.dst == addr(R_ADDR)));
        assert!(frags.iter().any(|t| t.dst == addr(I_ADDR)));
        // IKE_SA_INIT is never fragmented.
        assert!(!is_fragment(&seen[0]) && !is_fragment(&seen[1]));
    }
    // A Child SA rekey with PFS (a 256-byte MODP-2048 KE payload each way).
    seen.borrow_mut().clear();
    assert!(p.i.rekey_child(p.now, a.local_spi));
    p.drive(Duration::from_secs(3));
    let (a2, _) = assert_crossed(&p, 1);
    assert_eq!(a2.replaces, Some(a.local_spi));
    assert!(seen.borrow().iter().filter(|t| is_fragment(t)).count() >= 4);
    assert_eq!(p.r.ike_sas()[0].children.len(), 1, "{b:?}");
    p.assert_no_failures();
}

#[test]
fn a_lost_or_duplicated_fragment_is_recovered() {
    for n in 2..6 {
        for fate in [Fate::Drop, Fate::Duplicate] {
            let (mut p, _) = fragmenting_pair(200, true);
            p.fate_of(n, fate);
            p.i.initiate(p.now);
            p.drive(Duration::from_secs(30));
            p.assert_up();
        }
    }
}

#[test]
fn no_fragments_unless_both_support_them() {
    let (mut p, seen) = fragmenting_pair(200, false);
    p.bring_up();
    assert!(!seen.borrow().iter().any(is_fragment));
    assert!(seen.borrow().iter().any(|t| t.payload.len() > 172));
}
