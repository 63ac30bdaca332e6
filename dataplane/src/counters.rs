//! Per-tunnel counters: relaxed atomics written by the workers, read by the daemon
//! (`causeway sa`, metrics) at any time with [`TunnelCounters::snapshot`].

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// Outbound packet from the TUN but no outbound SA installed.
    NoOutboundSa,
    /// Inbound ESP with an SPI not in the table.
    UnknownSpi,
    /// ESP `open` failed (ICV, padding, malformed).
    AuthFailed,
    /// Replay window rejected the sequence number.
    Replay,
    /// Inner packet's addresses are outside the SA's traffic selectors.
    Policy,
    /// Packet malformed (not IPv4/IPv6, truncated, too short for ESP).
    Malformed,
    /// Packet bigger than the path allows (answered with ICMP when DF is set).
    TooBig,
    /// ESP `seal` failed (e.g. sequence number exhausted, buffer).
    SealFailed,
    /// A send or write system call failed.
    IoError,
}

impl DropReason {
    /// All reasons, in the order of [`CountersSnapshot::drops`].
    pub const ALL: [DropReason; 9] = [
        DropReason::NoOutboundSa,
        DropReason::UnknownSpi,
        DropReason::AuthFailed,
        DropReason::Replay,
        DropReason::Policy,
        DropReason::Malformed,
        DropReason::TooBig,
        DropReason::SealFailed,
        DropReason::IoError,
    ];

    /// Stable snake_case name (for `--json` and metrics labels).
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::NoOutboundSa => "no_outbound_sa",
            DropReason::UnknownSpi => "unknown_spi",
            DropReason::AuthFailed => "auth_failed",
            DropReason::Replay => "replay",
            DropReason::Policy => "policy",
            DropReason::Malformed => "malformed",
            DropReason::TooBig => "too_big",
            DropReason::SealFailed => "seal_failed",
            DropReason::IoError => "io_error",
        }
    }

    const fn index(self) -> usize {
        match self {
            DropReason::NoOutboundSa => 0,
            DropReason::UnknownSpi => 1,
            DropReason::AuthFailed => 2,
            DropReason::Replay => 3,
            DropReason::Policy => 4,
            DropReason::Malformed => 5,
            DropReason::TooBig => 6,
            DropReason::SealFailed => 7,
            DropReason::IoError => 8,
        }
    }
}

/// Live counters of one tunnel (or of the endpoint, for drops that have no tunnel yet,
/// such as unknown SPIs).
#[derive(Debug, Default)]
pub struct TunnelCounters {
    /// Inner packets received from the TUN and sent encrypted.
    pub packets_out: AtomicU64,
    /// Inner bytes (IP packet length) of `packets_out`.
    pub bytes_out: AtomicU64,
    /// Inner packets decrypted and written to the TUN.
    pub packets_in: AtomicU64,
    /// Inner bytes of `packets_in`.
    pub bytes_in: AtomicU64,
    /// TCP SYNs whose MSS option was lowered.
    pub mss_clamped: AtomicU64,
    /// ICMP "fragmentation needed" / ICMPv6 "packet too big" answers written into the
    /// TUN for packets longer than the tunnel MTU (each such packet is also a
    /// [`DropReason::TooBig`] drop).
    pub icmp_too_big: AtomicU64,
    /// Authenticated, newest ESP packets that arrived from another address or port than
    /// the one the outbound SA sends to (NAT rebinding): moves reported to the daemon
    /// ([`crate::Tunnel::take_peer_move`]), once per new source.
    pub peer_moves: AtomicU64,
    drops: [AtomicU64; 9],
}

/// A copy of [`TunnelCounters`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    /// See [`TunnelCounters::packets_out`].
    pub packets_out: u64,
    /// See [`TunnelCounters::bytes_out`].
    pub bytes_out: u64,
    /// See [`TunnelCounters::packets_in`].
    pub packets_in: u64,
    /// See [`TunnelCounters::bytes_in`].
    pub bytes_in: u64,
    /// See [`TunnelCounters::mss_clamped`].
    pub mss_clamped: u64,
    /// See [`TunnelCounters::icmp_too_big`].
    pub icmp_too_big: u64,
    /// See [`TunnelCounters::peer_moves`].
    pub peer_moves: u64,
    /// Drops, indexed like [`DropReason::ALL`].
    pub drops: [u64; 9],
}

impl CountersSnapshot {
    /// Drops for one reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()]
    }

    /// All drops.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }
}

impl TunnelCounters {
    /// Counts one dropped packet.
    pub fn drop(&self, reason: DropReason) {
        self.drops[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Drops so far for one reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops[reason.index()].load(Ordering::Relaxed)
    }

    /// Counts one packet sent out through the tunnel.
    pub fn count_out(&self, bytes: usize) {
        self.packets_out.fetch_add(1, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts `packets` packets of `bytes` inner bytes in all sent out through the tunnel
    /// (one batch: two atomic additions instead of two per packet).
    pub fn count_out_batch(&self, packets: u64, bytes: u64) {
        if packets > 0 {
            self.packets_out.fetch_add(packets, Ordering::Relaxed);
            self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Counts `packets` packets of `bytes` inner bytes in all received from the tunnel.
    pub fn count_in_batch(&self, packets: u64, bytes: u64) {
        if packets > 0 {
            self.packets_in.fetch_add(packets, Ordering::Relaxed);
            self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Counts one packet received from the tunnel.
    pub fn count_in(&self, bytes: usize) {
        self.packets_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Reads all counters (each one atomically; not a consistent cut across them).
    pub fn snapshot(&self) -> CountersSnapshot {
        let mut drops = [0u64; 9];
        for (d, a) in drops.iter_mut().zip(self.drops.iter()) {
            *d = a.load(Ordering::Relaxed);
        }
        CountersSnapshot {
            packets_out: self.packets_out.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            packets_in: self.packets_in.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            mss_clamped: self.mss_clamped.load(Ordering::Relaxed),
            icmp_too_big: self.icmp_too_big.load(Ordering::Relaxed),
            peer_moves: self.peer_moves.load(Ordering::Relaxed),
            drops,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_snapshots() {
        let c = TunnelCounters::default();
        c.count_out(100);
        c.count_out(50);
        c.count_in(7);
        c.count_out_batch(3, 30);
        c.count_in_batch(0, 0);
        c.drop(DropReason::Policy);
        c.drop(DropReason::Policy);
        c.drop(DropReason::IoError);
        let s = c.snapshot();
        assert_eq!((s.packets_out, s.bytes_out), (5, 180));
        assert_eq!((s.packets_in, s.bytes_in), (1, 7));
        assert_eq!(s.dropped(DropReason::Policy), 2);
        assert_eq!(s.dropped(DropReason::IoError), 1);
        assert_eq!(s.total_drops(), 3);
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
