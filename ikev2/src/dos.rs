//! Responder DoS protection (RFC 7296 §2.6): stateless COOKIEs once too many IKE SAs
//! are half-open, a per-source rate limit on IKE_SA_INIT, and a hard bound on half-open
//! IKE SAs. Every table here has a fixed maximum size.

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

    /// Decides about an IKE_SA_INIT request for a new IKE SA from `from`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn check(
        &mut self,
        now: Instant,
        rng: &mut dyn Rng,
        cfg: &crate::Config,
        half_open: usize,
        hdr: &HeaderRepr,
        msg: &Message,
        from: SocketAddr,
        local: SocketAddr,
        transmits: &mut VecDeque<Transmit>,
    ) -> Verdict {
        if !self.within_rate(now, from.ip(), cfg.init_rate_limit) {
            return Verdict::RateLimited;
        }
        if half_open < cfg.cookie_threshold {
            return Verdict::Accept;
        }
        let Some(ni) = msg.payloads.iter().find_map(|p| match p {
            Payload::Nonce(n) => Some(n.as_slice()),
            _ => None,
        }) else {
            return Verdict::RateLimited;
        };
        let offered = msg.payloads.iter().find_map(|p| match p {
            Payload::Notify(n) if n.notify_type == NotifyType::COOKIE => Some(n.data.as_slice()),
            _ => None,
        });
        let s = self.secrets(now, rng);
        let valid = offered.is_some_and(|c| {
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
                let want = cookie(ver, k, ni, from.ip(), hdr.spi_i);
                // Not secret, but compare in constant time anyway.
                want.len() == c.len() && subtle::ConstantTimeEq::ct_eq(&want[..], c).into()
            })
        });
        if !valid {
            let c = cookie(s.version, &s.current, ni, from.ip(), hdr.spi_i);
            reply(transmits, hdr, local, from, NotifyType::COOKIE, c);
            return Verdict::CookieSent;
        }
        if half_open >= cfg.half_open_limit {
            return Verdict::TableFull;
        }
        Verdict::Accept
    }
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
}
