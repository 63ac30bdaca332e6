//! NAT traversal after IKE_SA_INIT: keepalives (RFC 3948 §2.3) and following a peer
//! behind a NAT whose address or port changes (RFC 7296 §2.23).

use std::time::Duration;

use super::*;

/// The payload of a NAT keepalive: one 0xFF byte (RFC 3948 §2.3), sent on port 4500
/// without the non-ESP marker.
pub(crate) const KEEPALIVE: [u8; 1] = [0xff];

impl IkeSa {
    /// The keepalive interval if this IKE SA needs keepalives: we are behind a NAT (or
    /// encapsulation is forced) and they are configured.
    pub(in crate::ike_sa) fn keepalive_interval(&self, ctx: &Ctx<'_>) -> Option<Duration> {
        let behind = self.nat_here || (self.nat && ctx.config.encap == Encap::Force);
        ctx.config.nat_keepalive.filter(|d| behind && !d.is_zero())
    }

    /// Sends a NAT keepalive when it is due (called from `handle_timeout`).
    pub(in crate::ike_sa) fn nat_keepalive(&mut self, ctx: &mut Ctx<'_>) {
        if self.state != State::Established || self.rekeyed {
            return;
        }
        let (Some(t), Some(d)) = (self.keepalive_at, self.keepalive_interval(ctx)) else {
            return;
        };
        if ctx.now < t {
            return;
        }
        ctx.transmits.push_back(Transmit {
            src: self.local,
            dst: self.remote,
            payload: KEEPALIVE.to_vec(),
        });
        self.keepalive_at = Some(at(ctx.now, d));
    }

    /// Whether a change of the peer's address or port is followed (RFC 7296 §2.23): only
    /// when the peer is behind a NAT (without one its address does not change: no
    /// MOBIKE), and not when we are behind a NAT ourselves ("opens a possible DoS
    /// attack") unless we are the responder, whose peer's NAT may have rebound (as
    /// strongSwan does).
    pub(in crate::ike_sa) fn may_follow_peer(&self) -> bool {
        self.nat_there && (!self.nat_here || !self.initiator)
    }

    /// An authenticated message came `from` → `to`: when the peer is behind a NAT (or
    /// any NAT was detected), its address and port may have changed (a NAT rebinding):
    /// follow it, and tell the daemon where ESP must go now.
    pub(in crate::ike_sa) fn follow_peer(
        &mut self,
        ctx: &mut Ctx<'_>,
        from: SocketAddr,
        to: SocketAddr,
    ) {
        self.local = effective_local(to, ctx.config);
        if from == self.remote {
            return;
        }
        if !self.is_established() {
            // Still in IKE_AUTH (e.g. the initiator floated to port 4500).
            self.remote = from;
            return;
        }
        if !self.may_follow_peer() {
            return;
        }
        self.moved_to(ctx, from);
    }

    /// Authenticated ESP of one of this IKE SA's Child SAs came `from` (see
    /// [`crate::Endpoint::esp_from`]): followed like an authenticated IKE message.
    /// Returns whether the peer's address changed.
    pub(crate) fn follow_esp(&mut self, ctx: &mut Ctx<'_>, from: SocketAddr) -> bool {
        if from == self.remote || !self.is_established() || !self.may_follow_peer() {
            return false;
        }
        self.moved_to(ctx, from);
        true
    }

    /// The peer is at `from` now: IKE goes there, and the daemon is told to send ESP
    /// there too.
    fn moved_to(&mut self, ctx: &mut Ctx<'_>, from: SocketAddr) {
        self.remote = from;
        ctx.events.push_back(Event::PeerAddressChanged {
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            remote_addr: from,
            children: self
                .children
                .iter()
                .map(|c| (c.local_spi, c.remote_spi))
                .collect(),
        });
    }
}
