//! [`Endpoint`]: the sans-IO driver of one configured connection (one peer).

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

use crate::config::Config;
use crate::crypto::Rng;
use crate::event::{Event, Transmit};
use crate::ike_sa::{Ctx, IkeSa, State};
use crate::proposal::IkeSuite;
use crate::wire::{ExchangeType, Header, HeaderRepr, Message, Payload};

/// A short view of one IKE SA, for status output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IkeSaInfo {
    /// Initiator's SPI.
    pub spi_i: u64,
    /// Responder's SPI (0 while unknown).
    pub spi_r: u64,
    /// Whether we initiated it.
    pub initiator: bool,
    /// Whether IKE_AUTH completed (and it is not being deleted).
    pub established: bool,
    /// Negotiated algorithms (after IKE_SA_INIT).
    pub suite: Option<IkeSuite>,
    /// The peer's IKE address.
    pub remote_addr: SocketAddr,
    /// Child SAs as (our inbound SPI, the peer's SPI).
    pub children: Vec<(u32, u32)>,
    /// When IKE_AUTH completed.
    pub established_at: Option<Instant>,
    /// When this IKE SA will be rekeyed (`None`: not scheduled, or under way).
    pub rekey_at: Option<Instant>,
    /// When it expires (hard lifetime) unless rekeyed before.
    pub expires_at: Option<Instant>,
    /// Timing of each Child SA, in the order of `children`.
    pub child_times: Vec<ChildTimes>,
}

/// When one Child SA was made, will be rekeyed and expires (for `causeway sa`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChildTimes {
    /// Our (inbound) SPI.
    pub local_spi: u32,
    /// When it was established.
    pub established_at: Instant,
    /// When it will be rekeyed (`None`: not scheduled, under way, or being replaced).
    pub rekey_at: Option<Instant>,
    /// Its hard lifetime.
    pub expires_at: Option<Instant>,
}

/// Counters of one [`Endpoint`] (since it was created).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// IKE datagrams handed to [`Endpoint::handle_datagram`].
    pub received: u64,
    /// Of those, dropped without effect: malformed, from an unexpected address, for an
    /// unknown SPI or message ID, or failing the integrity check.
    pub dropped: u64,
    /// Our requests sent again after a timeout.
    pub retransmitted: u64,
    /// Cached responses sent again for a retransmitted request.
    pub resent_responses: u64,
    /// IKE_SA_INIT requests answered with a COOKIE ([`Config::cookie_threshold`]).
    pub cookies_sent: u64,
    /// IKE_SA_INIT requests dropped by the per-source rate limit
    /// ([`Config::init_rate_limit`]).
    pub rate_limited: u64,
    /// IKE_SA_INIT requests dropped because the half-open table was full
    /// ([`Config::half_open_limit`]) or the source address had too many half-open IKE
    /// SAs (32, at least [`Config::cookie_threshold`] + 1).
    pub half_open_full: u64,
}

/// Sizes of the endpoint's tables (all bounded; for monitoring and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableSizes {
    /// IKE SAs in any state.
    pub ike_sas: usize,
    /// Of those, half-open (responder, waiting for IKE_AUTH).
    pub half_open: usize,
    /// Source addresses tracked by the IKE_SA_INIT rate limit (at most 4,096).
    pub rate_entries: usize,
}

/// One configured IKEv2 connection: it initiates when told to, answers the peer's
/// IKE_SA_INIT, and runs IKE_AUTH and INFORMATIONAL for its IKE SAs.
///
/// Sans-IO: feed it datagrams ([`Endpoint::handle_datagram`]) and timer expiries
/// ([`Endpoint::handle_timeout`]); after every call drain [`Endpoint::poll_transmit`]
/// and [`Endpoint::poll_event`], and re-arm the timer with [`Endpoint::poll_timeout`].
pub struct Endpoint {
    config: Config,
    rng: Box<dyn Rng + Send>,
    sas: Vec<IkeSa>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
    guard: crate::dos::Guard,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("local", &self.config.local_addr)
            .field("remote", &self.config.remote_addr)
            .field("ike_sas", &self.sas.len())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// A new endpoint. `rng` supplies SPIs, nonces, DH keys and IVs
    /// ([`crate::crypto::SystemRng`] in production).
    pub fn new(config: Config, rng: Box<dyn Rng + Send>) -> Endpoint {
        Endpoint {
            config,
            rng,
            sas: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            guard: crate::dos::Guard::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn with_ctx<T>(
        &mut self,
        now: Instant,
        f: impl FnOnce(&mut Ctx<'_>, &mut Vec<IkeSa>) -> T,
    ) -> T {
        let mut ctx = Ctx {
            config: &self.config,
            rng: &mut *self.rng,
            now,
            transmits: &mut self.transmits,
            events: &mut self.events,
            other_sas: self.sas.len().saturating_sub(1),
            stats: &mut self.stats,
        };
        let r = f(&mut ctx, &mut self.sas);
        // New IKE SAs made outside a datagram (e.g. a restart after a dead peer).
        let mut new = Vec::new();
        for sa in &mut self.sas {
            new.append(&mut sa.spawned);
        }
        self.sas.retain(|s| s.state != State::Dead);
        self.sas.extend(new);
        r
    }

    /// Starts a new IKE SA as initiator (IKE_SA_INIT, then IKE_AUTH with the first Child
    /// SA). Failures are reported as [`Event::Failed`].
    pub fn initiate(&mut self, now: Instant) {
        self.with_ctx(now, |ctx, sas| match IkeSa::initiate(ctx) {
            Ok(sa) => sas.push(sa),
            Err(e) => ctx.events.push_back(Event::Failed(e)),
        });
    }

    /// Deletes every IKE SA (INFORMATIONAL with a Delete payload); [`Event::IkeSaDeleted`]
    /// follows when the peer answers or stops answering. Half-open SAs are dropped.
    pub fn terminate(&mut self, now: Instant) {
        self.with_ctx(now, |ctx, sas| {
            for sa in sas.iter_mut() {
                sa.start_delete_ike(ctx);
            }
        });
    }

    /// Deletes one Child SA by our (inbound) SPI. Returns false if no such Child SA.
    pub fn delete_child(&mut self, now: Instant, local_spi: u32) -> bool {
        self.with_ctx(now, |ctx, sas| {
            sas.iter_mut().any(|sa| sa.delete_child(ctx, local_spi))
        })
    }

    /// Rekeys one Child SA (CREATE_CHILD_SA, by our inbound SPI): a new Child SA is
    /// reported first, then the old one as deleted (make-before-break). Returns false if no
    /// such Child SA. Also happens by itself at [`Config::child_rekey_time`].
    pub fn rekey_child(&mut self, now: Instant, local_spi: u32) -> bool {
        self.with_ctx(now, |ctx, sas| {
            sas.iter_mut().any(|sa| sa.rekey_child(ctx, local_spi))
        })
    }

    /// The dataplane reached a Child SA's soft limit (bytes, packets, or a sequence number
    /// near its end; see [`crate::ChildSa::esp_lifetime`]): rekeys it (CREATE_CHILD_SA,
    /// make-before-break) unless a rekey of it is already under way. Returns false if no
    /// such Child SA (by our inbound SPI).
    pub fn child_sa_soft_expired(&mut self, now: Instant, local_spi: u32) -> bool {
        self.with_ctx(now, |ctx, sas| {
            sas.iter_mut()
                .any(|sa| sa.child_soft_expired(ctx, local_spi))
        })
    }

    /// The dataplane reached a Child SA's hard limit (bytes, packets, sequence numbers):
    /// deletes it at once ([`Event::ChildSaExpired`], [`Event::ChildSaDeleted`], and a
    /// Delete to the peer). Returns false if no such Child SA (by our inbound SPI).
    pub fn child_sa_hard_expired(&mut self, now: Instant, local_spi: u32) -> bool {
        self.with_ctx(now, |ctx, sas| {
            sas.iter_mut().any(|sa| sa.expire_child(ctx, local_spi))
        })
    }

    /// Rekeys every established IKE SA (CREATE_CHILD_SA, RFC 7296 §2.18): the Child SAs
    /// move to the new IKE SA ([`Event::IkeSaRekeyed`]), then the old one is deleted.
    /// Also happens by itself at [`Config::ike_rekey_time`].
    pub fn rekey_ike(&mut self, now: Instant) {
        self.with_ctx(now, |ctx, sas| {
            for sa in sas.iter_mut() {
                sa.rekey_ike(ctx);
            }
        });
    }

    /// Sends an empty INFORMATIONAL request on every established IKE SA (liveness check;
    /// no answer after the retransmissions gives [`crate::FailReason::PeerUnreachable`]).
    pub fn check_liveness(&mut self, now: Instant) {
        self.with_ctx(now, |ctx, sas| {
            for sa in sas.iter_mut() {
                sa.check_liveness(ctx);
            }
        });
    }

    /// Handles one received IKE datagram (`from` the peer, `to` our local address; on port
    /// 4500 without the non-ESP marker). Malformed or unexpected datagrams are dropped.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        bytes: &[u8],
    ) {
        self.stats.received += 1;
        // 1. Header first: which SA is this for?
        let parsed = Header::new_checked(bytes)
            .ok()
            .and_then(|h| HeaderRepr::parse(&h).ok())
            .zip(Message::parse(bytes).ok());
        let Some((hdr, msg)) = parsed else {
            self.stats.dropped += 1;
            return;
        };
        let peer_ip = self.config.remote_addr.ip();
        if !peer_ip.is_unspecified() && from.ip() != peer_ip {
            self.stats.dropped += 1;
            return;
        }
        // DoS protection for IKE_SA_INIT requests that would make a new IKE SA.
        if hdr.exchange_type == ExchangeType::IKE_SA_INIT && !hdr.flags.response && hdr.spi_r == 0 {
            let known = self
                .sas
                .iter()
                .any(|s| !s.initiator && s.spi_i == hdr.spi_i && s.remote.ip() == from.ip());
            if !known {
                let (half_open, half_open_from) = self
                    .sas
                    .iter()
                    .filter(|s| s.state == State::HalfOpen)
                    .fold((0, 0), |(all, same), s| {
                        (all + 1, same + usize::from(s.remote.ip() == from.ip()))
                    });
                let local = if to.ip().is_unspecified() {
                    SocketAddr::new(self.config.local_addr.ip(), to.port())
                } else {
                    to
                };
                let verdict = self.guard.check(
                    now,
                    &mut *self.rng,
                    &self.config,
                    half_open,
                    half_open_from,
                    &hdr,
                    &msg,
                    from,
                    local,
                    &mut self.transmits,
                );
                let counter = match verdict {
                    crate::dos::Verdict::Accept => None,
                    crate::dos::Verdict::RateLimited => Some(&mut self.stats.rate_limited),
                    crate::dos::Verdict::CookieSent => Some(&mut self.stats.cookies_sent),
                    crate::dos::Verdict::TableFull => Some(&mut self.stats.half_open_full),
                };
                if let Some(c) = counter {
                    *c += 1;
                    return;
                }
            }
        }
        let used = self.with_ctx(now, |ctx, sas| {
            // 2. A new (or retransmitted) IKE_SA_INIT request.
            if hdr.exchange_type == ExchangeType::IKE_SA_INIT && !hdr.flags.response {
                if hdr.spi_r != 0 {
                    return false;
                }
                if let Some(sa) = sas
                    .iter_mut()
                    .find(|s| !s.initiator && s.spi_i == hdr.spi_i && s.remote.ip() == from.ip())
                {
                    if sa.handle_init_duplicate(ctx, bytes) {
                        return true;
                    }
                }
                if let Some(sa) = IkeSa::respond_init(ctx, &hdr, &msg, bytes, from, to) {
                    sas.push(sa);
                }
                return true;
            }
            // 3. Everything else belongs to an existing SA.
            let Some(i) = sas.iter().position(|s| {
                s.spi_i == hdr.spi_i
                    && (s.spi_r == hdr.spi_r || (s.state == State::InitSent && hdr.flags.response))
            }) else {
                return false;
            };
            let before_up = sas[i].is_established();
            // RFC 7383: a fragment is verified and kept until the message is complete.
            let fragment = matches!(msg.payloads.last(), Some(Payload::EncryptedFragment(_)));
            let retransmitted_request =
                !hdr.flags.response && sas[i].last_resp_id().is_some_and(|id| id == hdr.message_id);
            if fragment && !retransmitted_request {
                match sas[i].add_fragment(&hdr, &msg, bytes) {
                    Ok(true) => {}
                    Ok(false) => return true,
                    Err(_) => return false,
                }
            }
            let r = if hdr.flags.response {
                sas[i].handle_response(ctx, &hdr, &msg, bytes, from, to)
            } else {
                sas[i].handle_request(ctx, &hdr, &msg, bytes, from, to)
            };
            // An IKE SA rekey made a new IKE SA.
            for mut new in std::mem::take(&mut sas[i].spawned) {
                new.flush_queue(ctx);
                sas.push(new);
            }
            // 4. INITIAL_CONTACT (RFC 7296 §2.4): the peer (this identity) forgot every
            //    other IKE SA it had with us: delete them silently (reported as deleted
            //    so the daemon removes their Child SAs from the dataplane).
            if !before_up && sas[i].is_established() && sas[i].initial_contact {
                let keep = (sas[i].spi_i, sas[i].spi_r);
                let peer = sas[i].peer_id.clone();
                for s in sas.iter_mut() {
                    if (s.spi_i, s.spi_r) != keep && s.is_established() && s.peer_id == peer {
                        s.drop_silently(ctx);
                    }
                }
            }
            r.is_ok()
        });
        if !used {
            self.stats.dropped += 1;
        }
    }

    /// Authenticated ESP of our Child SA `local_spi` arrived from `from`, and it was new
    /// (it passed the integrity check and the replay check and advanced the highest
    /// sequence number: an old packet replayed from elsewhere must not move the peer).
    /// When `from` is not where the peer was, the peer is behind a NAT that rebound its
    /// port (or address), and we are not behind a NAT ourselves, the IKE SA follows it
    /// (RFC 7296 §2.23) and [`Event::PeerAddressChanged`] tells where ESP must go now:
    /// without this, traffic stops until the peer's next IKE message. With a configured
    /// peer address only its port may change (like for IKE messages). Returns whether the
    /// peer moved.
    pub fn esp_from(&mut self, now: Instant, local_spi: u32, from: SocketAddr) -> bool {
        let peer_ip = self.config.remote_addr.ip();
        if !peer_ip.is_unspecified() && from.ip() != peer_ip {
            return false;
        }
        self.with_ctx(now, |ctx, sas| {
            sas.iter_mut()
                .find(|s| s.children.iter().any(|c| c.local_spi == local_spi))
                .is_some_and(|sa| sa.follow_esp(ctx, from))
        })
    }

    /// Counters since the endpoint was created.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Tells the endpoint that traffic (e.g. ESP) arrived from the peer: postpones the
    /// liveness checks of [`Config::dpd_delay`] like an IKE message would.
    pub fn peer_alive(&mut self, now: Instant) {
        for sa in &mut self.sas {
            sa.peer_alive(now);
        }
    }

    /// Handles timer expiry: retransmissions and giving up on an unreachable peer.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.with_ctx(now, |ctx, sas| {
            for sa in sas.iter_mut() {
                sa.handle_timeout(ctx);
            }
        });
    }

    /// The next datagram to send, if any. Call until `None` after every input.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// When [`Endpoint::handle_timeout`] must be called next (`None`: no timer).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sas.iter().filter_map(IkeSa::timeout).min()
    }

    /// The next event, if any. Call until `None` after every input.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The IKE SAs this endpoint holds (for status output).
    pub fn ike_sas(&self) -> Vec<IkeSaInfo> {
        self.sas
            .iter()
            .map(|s| IkeSaInfo {
                spi_i: s.spi_i,
                spi_r: s.spi_r,
                initiator: s.initiator,
                established: s.state == State::Established,
                suite: s.suite,
                remote_addr: s.remote,
                children: s
                    .children
                    .iter()
                    .map(|c| (c.local_spi, c.remote_spi))
                    .collect(),
                established_at: s.established_at,
                rekey_at: s.ike_rekey_at(),
                expires_at: s.ike_expires_at(),
                child_times: s.child_times(),
            })
            .collect()
    }

    /// Sizes of the endpoint's tables (IKE SAs, half-open ones, rate-limit entries).
    pub fn table_sizes(&self) -> TableSizes {
        TableSizes {
            ike_sas: self.sas.len(),
            half_open: self
                .sas
                .iter()
                .filter(|s| s.state == State::HalfOpen)
                .count(),
            rate_entries: self.guard.rate_entries(),
        }
    }

    /// Whether an IKE SA is established.
    pub fn is_established(&self) -> bool {
        self.sas.iter().any(|s| s.state == State::Established)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::TestRng;
    use crate::proposal::{parse_esp_proposals, parse_ike_proposals};
    use crate::{Identity, Psk};

    const I_LOCAL: &str = "192.168.1.2:500";
    const R_ADDR: &str = "198.51.100.7:500";
    const NAT_IP: &str = "203.0.113.9";

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn config(local: &str, remote: &str) -> Config {
        let mut c = Config::new(addr(local), addr(remote), Psk::new(b"nat".to_vec()));
        c.ike_proposals = parse_ike_proposals(&["aes256-sha256-x25519"]).unwrap();
        c.esp_proposals = parse_esp_proposals(&["aes256gcm16"]).unwrap();
        c.local_id = Identity::Addr(addr(local).ip());
        c.remote_id = None;
        c
    }

    /// The initiator behind a NAT that maps port p to 40000 + p on `NAT_IP`.
    fn nat_pair() -> (Endpoint, Endpoint, Instant) {
        let mut i = Endpoint::new(config(I_LOCAL, R_ADDR), Box::new(TestRng::new(1)));
        let mut r = Endpoint::new(
            config(R_ADDR, &format!("{NAT_IP}:500")),
            Box::new(TestRng::new(2)),
        );
        let now = Instant::now();
        i.initiate(now);
        for _ in 0..10 {
            while let Some(t) = i.poll_transmit() {
                let public =
                    SocketAddr::new(addr(&format!("{NAT_IP}:1")).ip(), 40000 + t.src.port());
                r.handle_datagram(now, public, t.dst, &t.payload);
            }
            while let Some(t) = r.poll_transmit() {
                let private = SocketAddr::new(addr(I_LOCAL).ip(), t.dst.port() - 40000);
                i.handle_datagram(now, t.src, private, &t.payload);
            }
        }
        assert!(i.is_established() && r.is_established());
        (i, r, now)
    }

    #[test]
    fn esp_from_a_rebound_nat_port_moves_the_peer_only_on_the_side_outside_the_nat() {
        let (mut i, mut r, now) = nat_pair();
        while r.poll_event().is_some() {}
        let sa = r.ike_sas().remove(0);
        assert_eq!(sa.remote_addr, addr(&format!("{NAT_IP}:44500")));
        let (r_spi, _) = sa.children[0];
        // Where the peer already is, another address, an unknown SPI: nothing.
        assert!(!r.esp_from(now, r_spi, sa.remote_addr));
        assert!(!r.esp_from(now, r_spi, addr("203.0.113.10:44500")));
        assert!(!r.esp_from(now, r_spi ^ 1, addr(&format!("{NAT_IP}:51000"))));
        assert!(r.poll_event().is_none());
        // The NAT's new port.
        let moved = addr(&format!("{NAT_IP}:51000"));
        assert!(r.esp_from(now, r_spi, moved));
        match r.poll_event() {
            Some(Event::PeerAddressChanged {
                remote_addr,
                children,
                ..
            }) => {
                assert_eq!(remote_addr, moved);
                assert_eq!(children, sa.children);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(r.ike_sas()[0].remote_addr, moved);
        // The side behind the NAT (the initiator) never follows ESP.
        let (i_spi, _) = i.ike_sas()[0].children[0];
        assert!(!i.esp_from(now, i_spi, addr("198.51.100.7:4501")));
        assert!(!i
            .poll_event()
            .into_iter()
            .any(|e| matches!(e, Event::PeerAddressChanged { .. })));
    }
}
