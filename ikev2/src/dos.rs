//! Responder DoS protection (RFC 7296 §2.6): stateless COOKIEs once too many IKE SAs
//! are half-open, a per-source rate limit on IKE_SA_INIT, a bound on half-open IKE SAs
//! per source address and in all. Every table here has a fixed maximum size.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use zeroize::Zeroizing;

use crate::crypto::Rng;
use crate::event::Transmit;
use crate::wire::{ExchangeType, Flags, HeaderRepr, Message, NotifyPayload, NotifyType, Payload};

/// How long one cookie secret is used; the previous one stays valid as long again.
pub(crate) const COOKIE_SECRET_LIFETIME: Duration = Duration::from_secs(60);
/// Most source addresses tracked by the rate limit (older ones are forgotten first).
pub(crate) const RATE_TABLE_MAX: usize = 4096;
/// The rate limit's window.
const RATE_WINDOW: Duration = Duration::from_secs(1);
/// Most half-open IKE SAs from one source address (see [`per_address_limit`]): one
/// address that answers cookies cannot take the whole half-open table.
pub(crate) const HALF_OPEN_PER_ADDRESS: usize = 32;

/// The responder's anti-DoS state.
pub(crate) struct Guard {
    /// Current and previous secret, with their version IDs.
    secrets: Option<Secrets>,
    /// IKE_SA_INIT requests per source address in the current window.
    rate: HashMap<IpAddr, (Instant, u32)>,
    /// Insertion order of `rate` (for forgetting the oldest).
    order: VecDeque<IpAddr>,
}

struct Secrets {
    version: u32,
    current: Zeroizing<[u8; 32]>,
    previous: Option<Zeroizing<[u8; 32]>>,
    rotated_at: Instant,
}

/// What to do with an IKE_SA_INIT request for a new IKE SA.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Go ahead (create the half-open IKE SA).
    Accept,
    /// Over the per-source rate: drop silently.
    RateLimited,
    /// Answered with a COOKIE (no state kept).
    CookieSent,
    /// The half-open table is full: drop silently.
    TableFull,
}

impl Guard {
    pub(crate) fn new() -> Guard {
        Guard {
            secrets: None,
            rate: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Number of source addresses the rate limit tracks.
    pub(crate) fn rate_entries(&self) -> usize {
        self.rate.len()
    }

    /// Counts one IKE_SA_INIT from `ip`; false if over `limit` per second.
    fn within_rate(&mut self, now: Instant, ip: IpAddr, limit: u32) -> bool {
        if let Some((start, n)) = self.rate.get_mut(&ip) {
            if now.saturating_duration_since(*start) >= RATE_WINDOW {
                *start = now;
                *n = 0;
            }
            *n += 1;
            return *n <= limit;
        }
        // Forget the oldest sources (stale ones first would need a scan; the oldest
        // inserted is a fine approximation and keeps this O(1)).
        while self.rate.len() >= RATE_TABLE_MAX {
            match self.order.pop_front() {
                Some(old) => {
                    self.rate.remove(&old);
                }
                None => {
                    self.rate.clear();
                    break;
                }
            }
        }
        self.rate.insert(ip, (now, 1));
        self.order.push_back(ip);
        1 <= limit
    }

    fn secrets(&mut self, now: Instant, rng: &mut dyn Rng) -> &Secrets {
        fn fresh(rng: &mut dyn Rng) -> Zeroizing<[u8; 32]> {
            let mut k = Zeroizing::new([0u8; 32]);
            rng.fill(&mut k[..]);
            k
        }
        let s = self.secrets.get_or_insert_with(|| Secrets {
            version: 1,
            current: fresh(rng),
            previous: None,
            rotated_at: now,
        });
        if now.saturating_duration_since(s.rotated_at) >= COOKIE_SECRET_LIFETIME {
            let new = fresh(rng);
            s.previous = Some(std::mem::replace(&mut s.current, new));
            s.version = s.version.wrapping_add(1);
            s.rotated_at = now;
        }
        s
    }

    /// Whether `c` is a cookie we made (current or previous secret) for `ni`, `ip` and
    /// `spi_i`.
    fn valid_cookie(
        &mut self,
        now: Instant,
        rng: &mut dyn Rng,
        c: &[u8],
        ni: &[u8],
        ip: IpAddr,
        spi_i: u64,
    ) -> bool {
        let s = self.secrets(now, rng);
        let Some((ver, _)) = c.split_first_chunk::<4>() else {
            return false;
        };
        let ver = u32::from_be_bytes(*ver);
        let secret = if ver == s.version {
            Some(&s.current)
        } else if ver == s.version.wrapping_sub(1) {
            s.previous.as_ref()
        } else {
            None
        };
        secret.is_some_and(|k| {
            let want = cookie(ver, k, ni, ip, spi_i);
            // Not secret, but compare in constant time anyway.
            want.len() == c.len() && subtle::ConstantTimeEq::ct_eq(&want[..], c).into()
        })
    }

    /// Decides about an IKE_SA_INIT request for a new IKE SA from `from`, with
    /// `half_open` IKE SAs half-open in all and `half_open_from` of them from `from`'s
    /// address.
    ///
    /// * A request with a valid COOKIE has shown that it can receive at its address: it
    ///   skips the rate limit and is only held to the half-open bounds.
    /// * Otherwise, once `cookie_threshold` SAs are half-open, it is answered with a
    ///   COOKIE (stateless; the answer is smaller than the request, so nothing is
    ///   amplified).
    /// * Otherwise the per-source rate limit applies, then the half-open bounds.
    ///
    /// With a fixed peer every request that gets here carries the peer's address, so a
    /// rate limit on cookie answers would let anyone who spoofs that address keep the real
    /// peer from ever getting a cookie: cookie answers to the configured peer are never
    /// rate limited. For a dynamic peer (any address) they are, so that we cannot be made
    /// to send more than `init_rate_limit` answers a second to one victim.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn check(
        &mut self,
        now: Instant,
        rng: &mut dyn Rng,
        cfg: &crate::Config,
        half_open: usize,
        half_open_from: usize,
        hdr: &HeaderRepr,
        msg: &Message,
        from: SocketAddr,
        local: SocketAddr,
        transmits: &mut VecDeque<Transmit>,
    ) -> Verdict {
        let ni = msg.payloads.iter().find_map(|p| match p {
            Payload::Nonce(n) => Some(n.as_slice()),
            _ => None,
        });
        let offered = msg.payloads.iter().find_map(|p| match p {
            Payload::Notify(n) if n.notify_type == NotifyType::COOKIE => Some(n.data.as_slice()),
            _ => None,
        });
        let valid = match (offered, ni) {
            (Some(c), Some(ni)) => self.valid_cookie(now, rng, c, ni, from.ip(), hdr.spi_i),
            _ => false,
        };
        if !valid {
            let within = self.within_rate(now, from.ip(), cfg.init_rate_limit);
            if half_open < cfg.cookie_threshold {
                if !within {
                    return Verdict::RateLimited;
                }
            } else {
                let fixed_peer = !cfg.remote_addr.ip().is_unspecified();
                let Some(ni) = ni.filter(|_| within || fixed_peer) else {
                    return Verdict::RateLimited;
                };
                let s = self.secrets(now, rng);
                let c = cookie(s.version, &s.current, ni, from.ip(), hdr.spi_i);
                reply(transmits, hdr, local, from, NotifyType::COOKIE, c);
                return Verdict::CookieSent;
            }
        }
        if half_open >= cfg.half_open_limit || half_open_from >= per_address_limit(cfg) {
            return Verdict::TableFull;
        }
        Verdict::Accept
    }
}

/// Most half-open IKE SAs from one address: [`HALF_OPEN_PER_ADDRESS`], but never fewer
/// than `cookie_threshold` + 1 (before cookies are asked for, the limit must not be what
/// turns a real peer away) nor more than `half_open_limit`.
pub(crate) fn per_address_limit(cfg: &crate::Config) -> usize {
    HALF_OPEN_PER_ADDRESS
        .max(cfg.cookie_threshold.saturating_add(1))
        .min(cfg.half_open_limit)
}

/// `VersionIDofSecret | SHA-256(Ni | IPi | SPIi | secret)` (RFC 7296 §2.6).
fn cookie(version: u32, secret: &[u8; 32], ni: &[u8], ip: IpAddr, spi_i: u64) -> Vec<u8> {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(ni);
    match ip {
        IpAddr::V4(a) => ctx.update(&a.octets()),
        IpAddr::V6(a) => ctx.update(&a.octets()),
    }
    ctx.update(&spi_i.to_be_bytes());
    ctx.update(secret);
    let mut out = version.to_be_bytes().to_vec();
    out.extend_from_slice(ctx.finish().as_ref());
    out
}

/// An unprotected IKE_SA_INIT response carrying one notify (no state is kept).
pub(crate) fn reply(
    transmits: &mut VecDeque<Transmit>,
    hdr: &HeaderRepr,
    local: SocketAddr,
    from: SocketAddr,
    t: NotifyType,
    data: Vec<u8>,
) {
    let msg = Message {
        header: HeaderRepr {
            spi_i: hdr.spi_i,
            spi_r: 0,
            exchange_type: ExchangeType::IKE_SA_INIT,
            flags: Flags {
                initiator: false,
                version: false,
                response: true,
            },
            message_id: 0,
        },
        payloads: vec![Payload::Notify(NotifyPayload::new(t, data))],
    };
    if let Ok(bytes) = msg.emit() {
        transmits.push_back(Transmit {
            src: local,
            dst: from,
            payload: bytes,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::TestRng;

    #[test]
    fn rate_table_stays_bounded_and_limits_one_source() {
        let mut g = Guard::new();
        let now = Instant::now();
        for i in 0..20_000u32 {
            g.within_rate(now, IpAddr::from(i.to_be_bytes()), 5);
        }
        assert!(g.rate_entries() <= RATE_TABLE_MAX);
        assert!(g.order.len() <= RATE_TABLE_MAX);
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let ok = (0..10).filter(|_| g.within_rate(now, ip, 5)).count();
        assert_eq!(ok, 5);
        assert!(g.within_rate(now + RATE_WINDOW, ip, 5), "a new window");
    }

    #[test]
    fn cookie_secrets_rotate_and_the_previous_one_stays_valid() {
        let mut g = Guard::new();
        let mut rng = TestRng::new(5);
        let now = Instant::now();
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let (v1, c1) = {
            let s = g.secrets(now, &mut rng);
            (s.version, cookie(s.version, &s.current, b"nonce", ip, 7))
        };
        let s = g.secrets(now + COOKIE_SECRET_LIFETIME, &mut rng);
        assert_eq!(s.version, v1 + 1);
        let prev = s.previous.as_ref().unwrap();
        assert_eq!(cookie(v1, prev, b"nonce", ip, 7), c1);
        assert_ne!(cookie(s.version, &s.current, b"nonce", ip, 7), c1);
        // Another address, SPI or nonce gives another cookie.
        assert_ne!(
            cookie(v1, prev, b"nonce", "192.0.2.8".parse().unwrap(), 7),
            c1
        );
        assert_ne!(cookie(v1, prev, b"nonce", ip, 8), c1);
        assert_ne!(cookie(v1, prev, b"other", ip, 7), c1);
    }

    fn init(spi_i: u64, cookie: Option<&[u8]>) -> (HeaderRepr, Message) {
        let header = HeaderRepr {
            spi_i,
            spi_r: 0,
            exchange_type: ExchangeType::IKE_SA_INIT,
            flags: Flags {
                initiator: true,
                version: false,
                response: false,
            },
            message_id: 0,
        };
        let mut payloads = Vec::new();
        if let Some(c) = cookie {
            payloads.push(Payload::Notify(NotifyPayload::new(
                NotifyType::COOKIE,
                c.to_vec(),
            )));
        }
        payloads.push(Payload::Nonce(vec![7; 32]));
        let msg = Message { header, payloads };
        (header, msg)
    }

    fn cfg(remote: &str) -> crate::Config {
        let mut c = crate::Config::new(
            "198.51.100.7:500".parse().unwrap(),
            remote.parse().unwrap(),
            crate::Psk::new(b"k".to_vec()),
        );
        c.cookie_threshold = 10;
        c.init_rate_limit = 10;
        c
    }

    /// The COOKIE notify's data of the last answer.
    fn last_cookie(t: &VecDeque<Transmit>) -> Vec<u8> {
        let m = Message::parse(&t.back().unwrap().payload).unwrap();
        match &m.payloads[0] {
            Payload::Notify(n) if n.notify_type == NotifyType::COOKIE => n.data.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_flood_spoofing_the_fixed_peer_cannot_keep_it_from_its_cookie() {
        let cfg = cfg("192.0.2.1:500");
        let mut g = Guard::new();
        let mut rng = TestRng::new(9);
        let mut tx = VecDeque::new();
        let now = Instant::now();
        let local: SocketAddr = "198.51.100.7:500".parse().unwrap();
        // 10 half-open (cookies engaged): 5,000 spoofed requests from the peer's address
        // in one second are all answered with a cookie, none creates state.
        for n in 0..5_000u64 {
            let (h, m) = init(n + 1, None);
            let from = SocketAddr::new("192.0.2.1".parse().unwrap(), 1024 + (n % 60_000) as u16);
            let v = g.check(now, &mut rng, &cfg, 10, 10, &h, &m, from, local, &mut tx);
            assert_eq!(v, Verdict::CookieSent);
        }
        // The real peer, far over the rate: a cookie, then in with it.
        let real: SocketAddr = "192.0.2.1:500".parse().unwrap();
        let (h, m) = init(0xabc, None);
        assert_eq!(
            g.check(now, &mut rng, &cfg, 10, 10, &h, &m, real, local, &mut tx),
            Verdict::CookieSent
        );
        let c = last_cookie(&tx);
        let (h, m) = init(0xabc, Some(&c));
        assert_eq!(
            g.check(now, &mut rng, &cfg, 10, 10, &h, &m, real, local, &mut tx),
            Verdict::Accept
        );
        // A cookie for another SPI is no proof.
        let (h, m) = init(0xabd, Some(&c));
        assert_eq!(
            g.check(now, &mut rng, &cfg, 10, 10, &h, &m, real, local, &mut tx),
            Verdict::CookieSent
        );
        // Below the threshold the rate limit applies to the peer's address as before.
        let later = now + RATE_WINDOW;
        let ok = (0..20u64)
            .filter(|n| {
                let (h, m) = init(0x1000 + n, None);
                g.check(later, &mut rng, &cfg, 0, 0, &h, &m, real, local, &mut tx)
                    == Verdict::Accept
            })
            .count();
        assert_eq!(ok, 10);
    }

    #[test]
    fn a_dynamic_peer_gets_at_most_the_rate_of_cookie_answers_per_address() {
        let cfg = cfg("0.0.0.0:500");
        let mut g = Guard::new();
        let mut rng = TestRng::new(9);
        let mut tx = VecDeque::new();
        let now = Instant::now();
        let local: SocketAddr = "198.51.100.7:500".parse().unwrap();
        let victim: SocketAddr = "203.0.113.5:500".parse().unwrap();
        let verdicts: Vec<Verdict> = (0..100u64)
            .map(|n| {
                let (h, m) = init(n + 1, None);
                g.check(now, &mut rng, &cfg, 10, 0, &h, &m, victim, local, &mut tx)
            })
            .collect();
        let cookies = verdicts
            .iter()
            .filter(|v| **v == Verdict::CookieSent)
            .count();
        assert_eq!(cookies, 10);
        assert_eq!(tx.len(), 10);
    }

    #[test]
    fn one_address_holds_at_most_its_share_of_the_half_open_table() {
        let mut cfg = cfg("0.0.0.0:500");
        assert_eq!(per_address_limit(&cfg), HALF_OPEN_PER_ADDRESS);
        let mut g = Guard::new();
        let mut rng = TestRng::new(9);
        let mut tx = VecDeque::new();
        let now = Instant::now();
        let local: SocketAddr = "198.51.100.7:500".parse().unwrap();
        let from: SocketAddr = "203.0.113.5:500".parse().unwrap();
        let (h, m) = init(1, None);
        assert_eq!(
            g.check(now, &mut rng, &cfg, 40, 31, &h, &m, from, local, &mut tx),
            Verdict::CookieSent
        );
        let c = last_cookie(&tx);
        let (h, m) = init(1, Some(&c));
        let mut go = |g: &mut Guard, all, same| {
            g.check(now, &mut rng, &cfg, all, same, &h, &m, from, local, &mut tx)
        };
        assert_eq!(go(&mut g, 40, 31), Verdict::Accept);
        assert_eq!(go(&mut g, 40, 32), Verdict::TableFull);
        assert_eq!(go(&mut g, 1000, 0), Verdict::TableFull);
        // Never below the cookie threshold + 1, never above the table.
        cfg.cookie_threshold = 100;
        assert_eq!(per_address_limit(&cfg), 101);
        cfg.half_open_limit = 50;
        assert_eq!(per_address_limit(&cfg), 50);
    }
}
