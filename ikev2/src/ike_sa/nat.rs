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
        if !self.nat {
            // Without a NAT the peer's address does not change (no MOBIKE).
            return;
        }
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
