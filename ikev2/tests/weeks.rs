//! "Weeks of life": two endpoints on a simulated clock with short lifetimes, random
//! latency, loss and duplication (seeded), through thousands of Child SA and IKE SA
//! rekeys initiated by both sides (jitter makes them collide), liveness checks, and (with
//! PFS) IKE fragmentation. The SA pair must never be lost, nothing may fail, and the
//! state must stay bounded.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use ikev2::crypto::TestRng;
use ikev2::{ChildSa, Config, Endpoint, Event, Transmit};

const I_ADDR: &str = "192.0.2.1:500";
const R_ADDR: &str = "198.51.100.7:500";

/// A small deterministic generator for the network's decisions (not for keys).
struct Net(u64);

impl Net {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// The high half (the low bits of xorshift are weak).
    fn high(&mut self) -> u64 {
        self.next() >> 32
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.high() % 1000 < percent * 10
    }
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.high() % (hi - lo + 1))
    }
}

fn config(local: &str, remote: &str, esp: &str) -> Config {
    let mut c = common::config(
        local,
        remote,
        "weeks",
        &["aes128gcm16-prfsha256-x25519"],
        &[esp],
    );
    c.child_lifetime = Duration::from_secs(900);
    c.child_rekey_time = Some(Duration::from_secs(300));
    c.child_rekey_jitter = Duration::from_secs(120);
    c.ike_lifetime = Duration::from_secs(3600);
    c.ike_rekey_time = Some(Duration::from_secs(1000));
    c.ike_rekey_jitter = Duration::from_secs(400);
    // Liveness checks between the rekeys (there is no ESP traffic here).
    c.dpd_delay = Some(Duration::from_secs(100));
    // With PFS, CREATE_CHILD_SA (≈ 240 bytes) goes out in IKE fragments (RFC 7383).
    if esp.contains("x25519") {
        c.fragment_size = 200;
    }
    c
}

/// What one side has installed in its dataplane, from its events.
#[derive(Default)]
struct Side {
    /// Installed Child SAs by our SPI, with their order of establishment.
    children: HashMap<u32, (usize, ChildSa)>,
    /// Child SAs we are deleting (no more outbound traffic on them).
    deleting: std::collections::HashSet<u32>,
    /// Deferred Child SAs the peer confirmed.
    confirmed: std::collections::HashSet<u32>,
    established: usize,
    rekeys_initiated: usize,
    /// Old SPIs already replaced once (a second replacement is a rekey collision).
    replaced: std::collections::HashSet<u32>,
    collisions: usize,
    ike_rekeys: usize,
    deleted: usize,
    failures: Vec<String>,
}

impl Side {
    fn apply(&mut self, ev: Event) {
        match ev {
            Event::ChildSaEstablished(c) => {
                self.established += 1;
                if let Some(old) = c.replaces {
                    self.rekeys_initiated += 1;
                    if !self.replaced.insert(old) {
                        self.collisions += 1;
                    }
                }
                self.children.insert(c.local_spi, (self.established, *c));
            }
            Event::ChildSaDeleting { local_spi, .. } => {
                self.deleting.insert(local_spi);
            }
            Event::ChildSaConfirmed { local_spi, .. } => {
                self.confirmed.insert(local_spi);
            }
            Event::ChildSaDeleted { local_spi, .. } => {
                self.deleting.remove(&local_spi);
                self.confirmed.remove(&local_spi);
                self.deleted += 1;
                assert!(
                    self.children.remove(&local_spi).is_some(),
                    "deleted an unknown Child SA"
                );
            }
            Event::IkeSaRekeyed { .. } => self.ike_rekeys += 1,
            Event::Failed(f) => self.failures.push(f.to_string()),
            Event::ChildSaExpired { .. } => self.failures.push("Child SA expired".into()),
            Event::IkeSaExpired { .. } => self.failures.push("IKE SA expired".into()),
            Event::IkeSaDeleted { .. } => self.failures.push("IKE SA deleted".into()),
            _ => {}
        }
    }
}

impl Side {
    /// Where the daemon sends: the newest Child SA not being deleted and not deferred
    /// (`defer_outbound`) unless confirmed; else the newest not being deleted.
    fn outbound(&self) -> Option<&ChildSa> {
        let mut v: Vec<_> = self
            .children
            .values()
            .filter(|(_, c)| !self.deleting.contains(&c.local_spi))
            .collect();
        v.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
        let ready = |c: &ChildSa| !c.defer_outbound || self.confirmed.contains(&c.local_spi);
        v.iter()
            .map(|(_, c)| c)
            .find(|c| ready(c))
            .or(v.first().map(|(_, c)| c))
    }
}

/// Whether `a`'s outbound Child SA has its inbound half (same keys) on `b`.
fn outbound_ok(a: &Side, b: &Side) -> bool {
    a.outbound().is_some_and(|c| {
        b.children
            .get(&c.remote_spi)
            .is_some_and(|(_, d)| d.remote_spi == c.local_spi && d.keys_in == c.keys_out)
    })
}

/// Whether some Child SA of `a` matches one of `b` (crossed SPIs and keys).
fn matched_pair(a: &Side, b: &Side) -> bool {
    a.children.values().any(|(_, c)| {
        b.children.get(&c.remote_spi).is_some_and(|(_, d)| {
            d.remote_spi == c.local_spi && d.keys_in == c.keys_out && d.keys_out == c.keys_in
        })
    })
}

struct Sim {
    seed: u64,
    start: Instant,
    now: Instant,
    i: Endpoint,
    r: Endpoint,
    si: Side,
    sr: Side,
    net: Net,
    /// In flight: (delivery time, sequence) → (to the responder?, datagram).
    flight: BTreeMap<(Instant, u64), (bool, Transmit)>,
    seq: u64,
    loss: u64,
    dup: u64,
    sent: u64,
    max_children: usize,
    max_ike: usize,
    fragments: u64,
    /// Instants at which the invariants were checked.
    checks: u64,
    /// Since when a side has had more than one Child SA (a leftover pair is a leak).
    crowded_since: Option<Instant>,
    /// Recent events (for the failure message).
    trace: std::collections::VecDeque<String>,
}

impl Sim {
    fn pump(&mut self) {
        while let Some(t) = self.i.poll_transmit() {
            self.send(true, t);
        }
        while let Some(t) = self.r.poll_transmit() {
            self.send(false, t);
        }
        let t = (self.now - self.start).as_secs_f64();
        while let Some(e) = self.i.poll_event() {
            self.log(format!("{t:.3} I {}", brief(&e)));
            self.si.apply(e);
        }
        while let Some(e) = self.r.poll_event() {
            self.log(format!("{t:.3} R {}", brief(&e)));
            self.sr.apply(e);
        }
    }

    fn log(&mut self, line: String) {
        if self.trace.len() == 400 {
            self.trace.pop_front();
        }
        self.trace.push_back(line);
    }

    fn dump(&self) -> String {
        self.trace.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    fn send(&mut self, to_r: bool, t: Transmit) {
        let tt = (self.now - self.start).as_secs_f64();
        let h = t
            .payload
            .get(16..20)
            .map(|b| format!("{b:?}"))
            .unwrap_or_default();
        self.log(format!(
            "{tt:.3} {} sends {} bytes {h} id {:?}",
            if to_r { "I" } else { "R" },
            t.payload.len(),
            t.payload.get(20..28)
        ));
        self.sent += 1;
        if t.payload.get(16) == Some(&53) {
            self.fragments += 1;
        }
        if self.net.chance(self.loss) {
            return;
        }
        let copies = if self.net.chance(self.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let at = self.now + self.net.millis(5, 1500);
            self.seq += 1;
            self.flight.insert((at, self.seq), (to_r, t.clone()));
        }
    }

    fn step(&mut self) {
        let next_msg = self.flight.keys().next().map(|k| k.0);
        let next_timer = [self.i.poll_timeout(), self.r.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let t = [next_msg, next_timer].into_iter().flatten().min().unwrap();
        self.now = self.now.max(t);
        if next_msg == Some(t) {
            let (k, (to_r, d)) = self.flight.pop_first().unwrap();
            debug_assert_eq!(k.0, t);
            if to_r {
                self.r.handle_datagram(self.now, d.src, d.dst, &d.payload);
            } else {
                self.i.handle_datagram(self.now, d.src, d.dst, &d.payload);
            }
        } else {
            self.i.handle_timeout(self.now);
            self.r.handle_timeout(self.now);
        }
        self.pump();
    }

    fn check(&mut self) {
        // Where each side sends (its outbound Child SA, chosen as the daemon does) must
        // be installed inbound on the other at every moment: otherwise packets are lost.
        self.checks += 1;
        assert!(
            outbound_ok(&self.si, &self.sr) && outbound_ok(&self.sr, &self.si),
            "seed {}: outbound gap at {:?}\n{}",
            self.seed,
            self.now - self.start,
            self.dump()
        );
        assert!(
            self.si.failures.is_empty() && self.sr.failures.is_empty(),
            "seed {}, at {:?}: {:?} / {:?}\n{}",
            self.seed,
            self.now - self.start,
            self.si.failures,
            self.sr.failures,
            self.dump()
        );
        assert!(
            matched_pair(&self.si, &self.sr),
            "no matching Child SA pair at {:?}: {:?} / {:?}\n{}",
            self.now - self.start,
            self.si.children.keys().collect::<Vec<_>>(),
            self.sr.children.keys().collect::<Vec<_>>(),
            self.dump()
        );
        // More than one Child SA per side only for a short while (rekeys, collisions;
        // a Delete whose answers are lost keeps the old one for up to the ~165 s of
        // retransmissions).
        if self.si.children.len() > 1 || self.sr.children.len() > 1 {
            let since = *self.crowded_since.get_or_insert(self.now);
            assert!(
                self.now - since < Duration::from_secs(240),
                "seed {}: a Child SA left over since {:?}\n{}",
                self.seed,
                since - self.start,
                self.dump()
            );
        } else {
            self.crowded_since = None;
        }
        assert!(
            self.si.children.len() <= 4 && self.sr.children.len() <= 4,
            "seed {}: too many Child SAs at {:?}\n{}",
            self.seed,
            self.now - self.start,
            self.dump()
        );
        self.max_children = self
            .max_children
            .max(self.si.children.len())
            .max(self.sr.children.len());
        self.max_ike = self
            .max_ike
            .max(self.i.ike_sas().len())
            .max(self.r.ike_sas().len());
    }
}

fn brief(e: &Event) -> String {
    match e {
        Event::ChildSaEstablished(c) => format!(
            "child up {:08x}/{:08x} replaces {:x?}",
            c.local_spi, c.remote_spi, c.replaces
        ),
        Event::IkeSaRekeyed {
            old_spi_i,
            spi_i,
            spi_r,
            ..
        } => format!("IKE rekeyed {old_spi_i:016x} -> {spi_i:016x}/{spi_r:016x}"),
        e => format!("{e:?}"),
    }
}

fn run(seed: u64, days: u64, esp: &str, loss: u64, dup: u64) -> Sim {
    let start = Instant::now();
    let mut s = Sim {
        seed,
        start,
        now: start,
        i: Endpoint::new(config(I_ADDR, R_ADDR, esp), Box::new(TestRng::new(seed))),
        r: Endpoint::new(
            config(R_ADDR, I_ADDR, esp),
            Box::new(TestRng::new(seed + 1000)),
        ),
        si: Side::default(),
        sr: Side::default(),
        net: Net(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
        flight: BTreeMap::new(),
        seq: 0,
        loss: 0,
        dup: 0,
        sent: 0,
        max_children: 0,
        max_ike: 0,
        trace: Default::default(),
        crowded_since: None,
        fragments: 0,
        checks: 0,
    };
    s.i.initiate(s.now);
    s.pump();
    while !(matched_pair(&s.si, &s.sr) && s.flight.is_empty()) {
        s.step();
        assert!(s.now < start + Duration::from_secs(60), "setup");
    }
    s.loss = loss;
    s.dup = dup;
    let end = start + Duration::from_secs(days * 86_400);
    while s.now < end {
        s.step();
        s.check();
    }
    // Quiet down, then the newest Child SA on each side (where outbound traffic goes)
    // must have its inbound half on the peer.
    s.loss = 0;
    s.dup = 0;
    let quiet = s.now + Duration::from_secs(40);
    while s.now < quiet {
        s.step();
        s.check();
    }
    s
}

#[test]
fn weeks_of_rekeys_with_loss_and_duplication() {
    let t0 = std::time::Instant::now();
    let mut total = (0, 0);
    // WEEKS_SEEDS=n runs n seeds (default 4: 4 × 7 days, half of them with PFS).
    let seeds: u64 = std::env::var("WEEKS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    for seed in 1..=seeds {
        let esp = if seed % 2 == 0 {
            "aes128gcm16-x25519"
        } else {
            "aes128gcm16"
        };
        let days = 7;
        // WEEKS_LOSS=percent (default 3 % loss, 2 % duplication).
        let loss = std::env::var("WEEKS_LOSS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3);
        let s = run(seed, days, esp, loss, 2);
        let child_rekeys = s.si.established + s.sr.established;
        let ike_rekeys = s.si.ike_rekeys;
        eprintln!(
            "seed {seed} ({esp}, {days} days): Child SAs established i={} r={}, Child rekey \
             collisions {}, IKE rekeys {}, datagrams {} ({} IKE fragments), max Child SAs {}, \
             max IKE SAs {}, {} instants checked",
            s.si.established,
            s.sr.established,
            s.si.collisions,
            ike_rekeys,
            s.sent,
            s.fragments,
            s.max_children,
            s.max_ike,
            s.checks
        );
        assert!(s.si.established > 1500, "thousands of Child SA rekeys");
        assert!(ike_rekeys > 400, "hundreds of IKE SA rekeys");
        assert!(s.max_children <= 4, "bounded Child SAs: {}", s.max_children);
        assert!(s.max_ike <= 4, "bounded IKE SAs: {}", s.max_ike);
        if esp.contains("x25519") {
            assert!(s.fragments > 1000, "fragments: {}", s.fragments);
        }
        total.0 += child_rekeys;
        total.1 += ike_rekeys;
    }
    eprintln!(
        "total: {} Child SAs, {} IKE rekeys in {:?}",
        total.0,
        total.1,
        t0.elapsed()
    );
}
