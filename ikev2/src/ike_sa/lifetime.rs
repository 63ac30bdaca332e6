//! Lifetimes: rekey-time jitter, hard expiry of Child SAs and IKE SAs by time, and the
//! soft/hard byte, packet and sequence-number limits the daemon reports.

use std::time::Duration;

use super::*;

/// `t` minus a random draw in `0..=jitter` (never below half of `t`, so a large jitter
/// cannot make rekeys run back to back).
pub(in crate::ike_sa) fn jittered(rng: &mut dyn Rng, t: Duration, jitter: Duration) -> Duration {
    let jitter = jitter.min(t / 2);
    if jitter.is_zero() {
        return t;
    }
    let mut b = [0u8; 8];
    rng.fill(&mut b);
    // 53 random bits → a fraction in [0, 1].
    let frac = (u64::from_be_bytes(b) >> 11) as f64 / ((1u64 << 53) - 1) as f64;
    t.saturating_sub(scale(jitter, frac))
}

impl IkeSa {
    /// When this IKE SA is rekeyed next (for status output).
    pub(crate) fn ike_rekey_at(&self) -> Option<Instant> {
        self.ike_rekey_at.filter(|_| !self.rekeyed)
    }

    /// When this IKE SA expires (for status output).
    pub(crate) fn ike_expires_at(&self) -> Option<Instant> {
        self.ike_expires_at.filter(|_| !self.rekeyed)
    }

    /// Timing of the Child SAs (for status output).
    pub(crate) fn child_times(&self) -> Vec<crate::endpoint::ChildTimes> {
        self.children
            .iter()
            .map(|c| crate::endpoint::ChildTimes {
                local_spi: c.local_spi,
                established_at: c.established_at,
                rekey_at: c.rekey_at,
                expires_at: c.expires_at,
            })
            .collect()
    }

    /// The next hard expiry (of this IKE SA or one of its Child SAs).
    pub(in crate::ike_sa) fn next_expiry(&self) -> Option<Instant> {
        if self.rekeyed || !matches!(self.state, State::Established | State::Deleting) {
            return None;
        }
        self.children
            .iter()
            .filter_map(|c| c.expires_at)
            .chain(
                self.ike_expires_at
                    .filter(|_| self.state == State::Established),
            )
            .min()
    }

    /// Deletes what reached its hard lifetime (called from `handle_timeout`).
    pub(in crate::ike_sa) fn enforce_lifetimes(&mut self, ctx: &mut Ctx<'_>) {
        if self.rekeyed || !matches!(self.state, State::Established | State::Deleting) {
            return;
        }
        if self.state == State::Established && self.ike_expires_at.is_some_and(|t| ctx.now >= t) {
            ctx.events.push_back(Event::IkeSaExpired {
                spi_i: self.spi_i,
                spi_r: self.spi_r,
            });
            // The Child SAs go first (the dataplane must stop using them now), then the
            // IKE SA is deleted (IkeSaDeleted when the peer answers or does not).
            self.report_children_deleted(ctx);
            self.start_delete_ike(ctx);
            return;
        }
        let due: Vec<u32> = self
            .children
            .iter()
            .filter(|c| c.expires_at.is_some_and(|t| ctx.now >= t))
            .map(|c| c.local_spi)
            .collect();
        for spi in due {
            self.expire_child(ctx, spi);
        }
    }

    fn report_children_deleted(&mut self, ctx: &mut Ctx<'_>) {
        for c in self.children.drain(..) {
            ctx.events.push_back(Event::ChildSaDeleted {
                local_spi: c.local_spi,
                remote_spi: c.remote_spi,
            });
        }
    }

    /// Hard expiry of one Child SA (by our inbound SPI): reported expired and deleted at
    /// once, and a Delete goes to the peer. False if there is no such Child SA.
    pub(crate) fn expire_child(&mut self, ctx: &mut Ctx<'_>, local_spi: u32) -> bool {
        if self.rekeyed || !self.is_established() {
            return false;
        }
        let Some(pos) = self.children.iter().position(|c| c.local_spi == local_spi) else {
            return false;
        };
        let c = self.children.remove(pos);
        ctx.events.push_back(Event::ChildSaExpired {
            local_spi: c.local_spi,
            remote_spi: c.remote_spi,
        });
        ctx.events.push_back(Event::ChildSaDeleted {
            local_spi: c.local_spi,
            remote_spi: c.remote_spi,
        });
        if self.state == State::Established {
            self.queued.push_back(ReqKind::DeleteChild(vec![local_spi]));
            self.flush_queue(ctx);
        }
        true
    }

    /// Soft expiry reported by the daemon (bytes, packets, sequence numbers): rekey the
    /// Child SA unless a rekey of it is already under way. False if there is no such
    /// Child SA.
    pub(crate) fn child_soft_expired(&mut self, ctx: &mut Ctx<'_>, local_spi: u32) -> bool {
        if self.state != State::Established
            || self.rekeyed
            || !self.children.iter().any(|c| c.local_spi == local_spi)
        {
            return false;
        }
        let under_way = self.queued.contains(&ReqKind::RekeyChild(local_spi))
            || self
                .child_req
                .as_ref()
                .is_some_and(|r| r.old_spi == local_spi);
        under_way || self.rekey_child(ctx, local_spi)
    }
}
