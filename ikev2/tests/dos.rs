//! Responder DoS protection in memory: a flood of spoofed IKE_SA_INIT requests while a
//! real initiator connects (RFC 7296 §2.6 cookies, rate limit, bounded tables).

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use ikev2::crypto::TestRng;
use ikev2::{Config, Endpoint, Event, Transmit};

const R_ADDR: &str = "198.51.100.7:500";
const I_ADDR: &str = "192.0.2.1:500";

fn config(local: &str, remote: &str) -> Config {
    common::config(
        local,
        remote,
        "dos",
        &["aes128gcm16-prfsha256-x25519"],
        &["aes128gcm16"],
    )
}

/// xorshift64* for the attacker's addresses and SPIs.
struct Gen(u64);
impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// One IKE_SA_INIT request as a real initiator would send it (the flood's template).
fn template() -> Vec<u8> {
    let mut e = Endpoint::new(config(I_ADDR, R_ADDR), Box::new(TestRng::new(77)));
    e.initiate(Instant::now());
    e.poll_transmit().unwrap().payload
}

fn deliver(to: &mut Endpoint, now: Instant, t: &Transmit) {
    to.handle_datagram(now, t.src, t.dst, &t.payload);
}

#[test]
fn flood_of_spoofed_ike_sa_init_stays_bounded_and_the_real_peer_connects() {
    let t0 = std::time::Instant::now();
    // A responder for a dynamic peer: IKE_SA_INIT from any address.
    let mut rc = config(R_ADDR, "0.0.0.0:500");
    rc.cookie_threshold = 10;
    rc.half_open_limit = 200;
    let mut r = Endpoint::new(rc, Box::new(TestRng::new(2)));
    let mut i = Endpoint::new(config(I_ADDR, R_ADDR), Box::new(TestRng::new(1)));
    let tmpl = template();
    let mut g = Gen(0x1234_5678_9abc_def1);
    let start = Instant::now();
    let mut now = start;
    let mut max = ikev2::TableSizes::default();
    let mut replies = 0u64;
    let mut cookie_replies = 0u64;
    let mut i_events = Vec::new();
    const FLOOD: u64 = 100_000;
    for n in 0..FLOOD {
        // 10,000 requests per simulated second, from random addresses; every 50th from
        // one busy address (the rate limit's target).
        now = start + Duration::from_micros(n * 100);
        let mut msg = tmpl.clone();
        msg[..8].copy_from_slice(&g.next().to_be_bytes());
        let src = if n % 50 == 0 {
            IpAddr::from([203, 0, 113, 66])
        } else {
            IpAddr::from((g.next() as u32).to_be_bytes())
        };
        r.handle_datagram(
            now,
            SocketAddr::new(src, 500),
            R_ADDR.parse().unwrap(),
            &msg,
        );
        while let Some(t) = r.poll_transmit() {
            if t.dst.ip() == "192.0.2.1".parse::<IpAddr>().unwrap() {
                deliver(&mut i, now, &t);
            } else {
                replies += 1;
                // A COOKIE notify answer is the header plus one small notify.
                if t.payload.len() < 80 {
                    cookie_replies += 1;
                }
            }
        }
        // The real initiator starts in the middle of the flood and talks to the
        // responder between flood packets.
        if n == FLOOD / 2 {
            i.initiate(now);
        }
        if n % 97 == 0 || n == FLOOD / 2 {
            i.handle_timeout(now);
            r.handle_timeout(now);
        }
        while let Some(t) = i.poll_transmit() {
            deliver(&mut r, now, &t);
            while let Some(t) = r.poll_transmit() {
                if t.dst.ip() == "192.0.2.1".parse::<IpAddr>().unwrap() {
                    deliver(&mut i, now, &t);
                } else {
                    replies += 1;
                }
            }
        }
        while let Some(e) = i.poll_event() {
            i_events.push(e);
        }
        let s = r.table_sizes();
        max.ike_sas = max.ike_sas.max(s.ike_sas);
        max.half_open = max.half_open.max(s.half_open);
        max.rate_entries = max.rate_entries.max(s.rate_entries);
    }
    let st = r.stats();
    eprintln!(
        "flood of {FLOOD}: {:?}, max tables {max:?}, replies {replies} ({cookie_replies} \
         cookies), {:?}",
        st,
        t0.elapsed()
    );
    // Cookies engaged, the rate limit hit the busy address, the tables stayed small.
    assert!(st.cookies_sent > FLOOD * 9 / 10, "{st:?}");
    assert!(st.rate_limited > 0, "{st:?}");
    assert!(max.half_open <= 10 + 1, "{max:?}");
    assert!(max.ike_sas <= 10 + 2, "{max:?}");
    assert!(max.rate_entries <= 4096, "{max:?}");
    // Every cookie went to a flood source, except the one for the real initiator.
    assert_eq!(cookie_replies + 1, st.cookies_sent);
    // The real initiator got a cookie, retried with it, and is up.
    assert!(i.is_established(), "{i_events:?}");
    assert!(
        i_events
            .iter()
            .any(|e| matches!(e, Event::ChildSaEstablished(_))),
        "{i_events:?}"
    );
    assert!(i_events.iter().all(|e| !matches!(e, Event::Failed(_))));
    assert!(r.is_established());
    // After the half-open timeout only the real IKE SA is left.
    let later = now + Duration::from_secs(60);
    r.handle_timeout(later);
    assert_eq!(r.table_sizes().ike_sas, 1);
    assert_eq!(r.table_sizes().half_open, 0);
}

#[test]
fn only_the_configured_peer_may_start_an_ike_sa() {
    let mut r = Endpoint::new(config(R_ADDR, I_ADDR), Box::new(TestRng::new(2)));
    let now = Instant::now();
    let tmpl = template();
    r.handle_datagram(
        now,
        "203.0.113.5:500".parse().unwrap(),
        R_ADDR.parse().unwrap(),
        &tmpl,
    );
    assert!(r.poll_transmit().is_none());
    assert_eq!(r.table_sizes().ike_sas, 0);
    assert_eq!(r.stats().dropped, 1);
    r.handle_datagram(now, I_ADDR.parse().unwrap(), R_ADDR.parse().unwrap(), &tmpl);
    assert!(r.poll_transmit().is_some());
    assert_eq!(r.table_sizes().half_open, 1);
}

#[test]
fn cookie_threshold_zero_always_asks_for_a_cookie_and_the_initiator_retries() {
    let mut rc = config(R_ADDR, I_ADDR);
    rc.cookie_threshold = 0;
    let mut r = Endpoint::new(rc, Box::new(TestRng::new(2)));
    let mut i = Endpoint::new(config(I_ADDR, R_ADDR), Box::new(TestRng::new(1)));
    let now = Instant::now();
    i.initiate(now);
    for _ in 0..10 {
        while let Some(t) = i.poll_transmit() {
            deliver(&mut r, now, &t);
        }
        while let Some(t) = r.poll_transmit() {
            deliver(&mut i, now, &t);
        }
    }
    assert!(i.is_established() && r.is_established());
    assert_eq!(r.stats().cookies_sent, 1);
    // A cookie for another SPI or address is refused (answered with a fresh cookie).
    let mut msg = template();
    msg[..8].copy_from_slice(&[9; 8]);
    r.handle_datagram(
        now,
        "192.0.2.1:500".parse().unwrap(),
        R_ADDR.parse().unwrap(),
        &msg,
    );
    assert_eq!(r.stats().cookies_sent, 2);
    assert_eq!(r.table_sizes().half_open, 0);
}
