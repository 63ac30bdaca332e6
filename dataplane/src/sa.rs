//! SA tables and the interface to the `esp` crate's SAs.
//!
//! The dataplane does not know ESP's wire format beyond the SPI: it calls
//! [`EspOutbound::seal`] and [`EspInbound::open`] in place. These two traits are the seam
//! to the `esp` crate (implemented here for its SA types once they exist, and by test
//! doubles). Both take `&self`: an SA is shared between the control plane (which swaps
//! it) and a worker; sequence numbers and replay windows use interior mutability.
//!
//! Tables:
//! * [`InboundTable`]: SPI → inbound entry. Copy-on-write map behind an `ArcSwap`: a
//!   lookup is one atomic load and a hash probe, no lock; installs/removes (rare) clone
//!   the map.
//! * Outbound: one `ArcSwapOption` slot per tunnel (see [`crate::Tunnel::set_outbound`]).
//!
//! Make-before-break on rekey: install the new inbound SA, then switch the outbound
//! slot, then remove the old inbound SPI after a grace period (packets in flight).

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;

use arc_swap::ArcSwap;
use ipnet::IpNet;

/// Why an SA refused a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SaError {
    /// Sequence number already seen or left of the replay window.
    #[error("replayed or too old")]
    Replay,
    /// ICV mismatch or bad padding.
    #[error("authentication failed")]
    Auth,
    /// Too short or otherwise malformed.
    #[error("malformed ESP packet")]
    Malformed,
    /// The outbound sequence number space is exhausted: the SA must be rekeyed.
    #[error("sequence number exhausted")]
    SeqExhausted,
    /// The buffer lacks head- or tailroom.
    #[error("buffer too small")]
    Buffer,
}

/// Result of a successful [`EspInbound::open`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The inner packet in the buffer given to `open`.
    pub payload: Range<usize>,
    /// ESP next header: 4 = IPv4, 41 = IPv6, 59 = dummy packet (RFC 4303 §2.6).
    pub next_header: u8,
    /// The packet's full (ESN-inferred) sequence number.
    pub seq: u64,
}

/// An outbound ESP SA as the dataplane uses it.
pub trait EspOutbound: Send + Sync + 'static {
    /// The peer's SPI carried in the packets.
    fn spi(&self) -> u32;
    /// Bytes needed in front of the payload: ESP header + IV.
    fn header_len(&self) -> usize;
    /// Most bytes needed behind the payload: padding, pad length, next header, ICV.
    fn max_trailer_len(&self) -> usize;
    /// Seals the inner packet at `buf[payload]` in place: at least `header_len()` bytes
    /// of headroom before it and `max_trailer_len()` bytes of tailroom after it.
    /// Returns the range of the ESP packet (SPI .. ICV) in `buf`.
    fn seal(
        &self,
        buf: &mut [u8],
        payload: Range<usize>,
        next_header: u8,
    ) -> Result<Range<usize>, SaError>;
}

/// An inbound ESP SA as the dataplane uses it.
pub trait EspInbound: Send + Sync + 'static {
    /// Our SPI (the table key).
    fn spi(&self) -> u32;
    /// Verifies, replay-checks and decrypts the ESP packet at `buf[packet]` (SPI .. ICV)
    /// in place.
    fn open(&self, buf: &mut [u8], packet: Range<usize>) -> Result<Opened, SaError>;
    /// The highest sequence number [`EspInbound::open`] accepted so far (0: none). Only
    /// called off the fast path (when a packet arrives from a new source address).
    fn highest_seq(&self) -> u64;
}

impl EspOutbound for esp::Sa {
    fn spi(&self) -> u32 {
        esp::Sa::spi(self)
    }
    fn header_len(&self) -> usize {
        self.suite().header_len()
    }
    fn max_trailer_len(&self) -> usize {
        self.suite().max_trailer_len()
    }
    fn seal(
        &self,
        buf: &mut [u8],
        payload: Range<usize>,
        next_header: u8,
    ) -> Result<Range<usize>, SaError> {
        esp::Sa::seal(self, buf, payload, next_header)
            .map(|s| s.packet)
            .map_err(|e| match e {
                esp::SealError::SequenceExhausted | esp::SealError::Expired => {
                    SaError::SeqExhausted
                }
                esp::SealError::NoHeadroom
                | esp::SealError::NoTailroom
                | esp::SealError::BadRange => SaError::Buffer,
                _ => SaError::Malformed,
            })
    }
}

impl EspInbound for esp::Sa {
    fn spi(&self) -> u32 {
        esp::Sa::spi(self)
    }
    fn open(&self, buf: &mut [u8], packet: Range<usize>) -> Result<Opened, SaError> {
        esp::Sa::open(self, buf, packet)
            .map(|o| Opened {
                payload: o.payload,
                next_header: o.next_header,
                seq: o.seq,
            })
            .map_err(|e| match e {
                esp::OpenError::Replayed | esp::OpenError::TooOld => SaError::Replay,
                esp::OpenError::Auth | esp::OpenError::Padding => SaError::Auth,
                _ => SaError::Malformed,
            })
    }
    fn highest_seq(&self) -> u64 {
        esp::Sa::seq(self)
    }
}

/// How ESP packets travel to the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encap {
    /// ESP in UDP (RFC 3948), from our port 4500 to the peer's port (usually 4500,
    /// another one behind NAT).
    Udp,
    /// Plain ESP, IP protocol 50 (raw socket).
    Esp,
}

/// An inbound SA with what the dataplane needs around it.
#[derive(Clone)]
pub struct InboundSa {
    /// The SA (its [`EspInbound::spi`] is the table key).
    pub esp: Arc<dyn EspInbound>,
    /// Our traffic selectors: an inner packet's destination must be in one.
    pub local_ts: Vec<IpNet>,
    /// The peer's traffic selectors: an inner packet's source must be in one.
    pub remote_ts: Vec<IpNet>,
}

impl fmt::Debug for InboundSa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboundSa")
            .field("spi", &format_args!("{:#010x}", self.esp.spi()))
            .field("local_ts", &self.local_ts)
            .field("remote_ts", &self.remote_ts)
            .finish()
    }
}

/// An outbound SA with its destination.
#[derive(Clone)]
pub struct OutboundSa {
    /// The SA.
    pub esp: Arc<dyn EspOutbound>,
    /// The peer: address and UDP port (port ignored for [`Encap::Esp`]).
    pub peer: SocketAddr,
    /// UDP encapsulation or raw ESP.
    pub encap: Encap,
}

impl fmt::Debug for OutboundSa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundSa")
            .field("spi", &format_args!("{:#010x}", self.esp.spi()))
            .field("peer", &self.peer)
            .field("encap", &self.encap)
            .finish()
    }
}

/// SPI → `Arc<T>` map with lock-free lookups and copy-on-write updates.
pub struct InboundTable<T> {
    map: ArcSwap<HashMap<u32, Arc<T>>>,
}

impl<T> Default for InboundTable<T> {
    fn default() -> Self {
        InboundTable {
            map: ArcSwap::from_pointee(HashMap::new()),
        }
    }
}

impl<T> fmt::Debug for InboundTable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut spis: Vec<u32> = self.map.load().keys().copied().collect();
        spis.sort_unstable();
        f.debug_struct("InboundTable").field("spis", &spis).finish()
    }
}

impl<T> InboundTable<T> {
    /// Looks up an SPI (hot path: no lock, no allocation).
    pub fn get(&self, spi: u32) -> Option<Arc<T>> {
        self.map.load().get(&spi).cloned()
    }

    /// Installs (or replaces) the entry for `spi`.
    pub fn insert(&self, spi: u32, entry: Arc<T>) {
        self.map.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.insert(spi, Arc::clone(&entry));
            m
        });
    }

    /// Removes `spi`; returns whether it was there.
    pub fn remove(&self, spi: u32) -> bool {
        let mut found = false;
        self.map.rcu(|m| {
            let mut m = HashMap::clone(m);
            found = m.remove(&spi).is_some();
            m
        });
        found
    }

    /// Removes every entry for which `pred` holds (e.g. all SAs of a tunnel).
    pub fn remove_where(&self, pred: impl Fn(&T) -> bool) {
        self.map.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.retain(|_, v| !pred(v));
            m
        });
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.load().len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_lookup_remove() {
        let t: InboundTable<u32> = InboundTable::default();
        assert!(t.is_empty());
        t.insert(0x1000, Arc::new(1));
        t.insert(0x2000, Arc::new(2));
        assert_eq!(t.get(0x1000).as_deref(), Some(&1));
        // Make-before-break: the old entry stays valid for holders after replacement.
        let held = t.get(0x2000).unwrap();
        t.insert(0x2000, Arc::new(3));
        assert_eq!(*held, 2);
        assert_eq!(t.get(0x2000).as_deref(), Some(&3));
        assert!(t.remove(0x1000));
        assert!(!t.remove(0x1000));
        assert_eq!(t.get(0x1000), None);
        t.remove_where(|v| *v == 3);
        assert!(t.is_empty());
    }

    #[test]
    fn concurrent_readers_see_whole_maps() {
        let t = Arc::new(InboundTable::<u32>::default());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (t, stop) = (Arc::clone(&t), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut hits = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Some(v) = t.get(7) {
                        assert!(*v < 1000);
                        hits += 1;
                    }
                }
                hits
            })
        };
        for i in 0..1000 {
            t.insert(7, Arc::new(i));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        reader.join().unwrap();
        assert_eq!(t.get(7).as_deref(), Some(&999));
    }
}
