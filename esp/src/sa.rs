//! Security associations: keys, sequence numbers, replay window, lifetimes, counters,
//! and in-place [`Sa::seal`] / [`Sa::open`].

use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::backend::{
    AeadKey, AwsLc, Backend, CbcKey, MacKey, CBC_IV_LEN, GCM_NONCE_LEN, GCM_TAG_LEN, MAX_MAC_LEN,
};
use crate::replay::{infer_at, ReplayError, ReplayWindow, DEFAULT_WINDOW};
use crate::suite::{Suite, SuiteError};
use crate::ESP_HEADER_LEN;

/// Which way an SA protects traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// We seal with it.
    Outbound,
    /// We open with it.
    Inbound,
}

/// Limits of one kind (soft or hard). `None` means no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Inner (plaintext) payload bytes sealed or opened.
    pub bytes: Option<u64>,
    /// Packets sealed or opened.
    pub packets: Option<u64>,
    /// Age of the SA (compared by [`Sa::expiry`] with the age the caller passes).
    pub time: Option<Duration>,
}

/// Soft and hard lifetimes of an SA (RFC 4301 §4.4.2.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Lifetime {
    /// Reaching one of these is reported once, as a hint to rekey.
    pub soft: Limits,
    /// Reaching one of these is reported once; after that byte and packet limits are
    /// enforced (seal and open refuse with `Expired`).
    pub hard: Limits,
}

/// Everything about an SA except its keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SaParams {
    /// SPI, as on the wire (the receiver's choice).
    pub spi: u32,
    /// Outbound (seal) or inbound (open).
    pub direction: Direction,
    /// Cipher suite.
    pub suite: Suite,
    /// Extended (64-bit) sequence numbers (RFC 4303 §2.2.1), as negotiated.
    pub esn: bool,
    /// Anti-replay window in packets (inbound only), rounded up to a power of two in
    /// 64..=65536.
    pub replay_window: u32,
    /// Lifetimes.
    pub lifetime: Lifetime,
    /// State to resume from: outbound, the last sequence number already sent (the next
    /// packet carries `start_seq + 1`); inbound, the highest already received (numbers
    /// at or below it inside the window are treated as received). 0 for a new SA. Only
    /// for restoring state (HA failover, tests): never reuse numbers with the same keys.
    pub start_seq: u64,
}

impl SaParams {
    /// Parameters with the defaults: no ESN, a [`DEFAULT_WINDOW`] window, no lifetimes.
    pub const fn new(spi: u32, direction: Direction, suite: Suite) -> Self {
        SaParams {
            spi,
            direction,
            suite,
            esn: false,
            replay_window: DEFAULT_WINDOW,
            lifetime: Lifetime {
                soft: Limits {
                    bytes: None,
                    packets: None,
                    time: None,
                },
                hard: Limits {
                    bytes: None,
                    packets: None,
                    time: None,
                },
            },
            start_seq: 0,
        }
    }

    /// Sets `esn`.
    pub const fn with_esn(mut self, esn: bool) -> Self {
        self.esn = esn;
        self
    }

    /// Sets `replay_window`.
    pub const fn with_replay_window(mut self, packets: u32) -> Self {
        self.replay_window = packets;
        self
    }

    /// Sets `lifetime`.
    pub const fn with_lifetime(mut self, lifetime: Lifetime) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Sets `start_seq`.
    pub const fn with_start_seq(mut self, seq: u64) -> Self {
        self.start_seq = seq;
        self
    }
}

/// Why [`Sa::seal`] refused a packet. Nothing was sent; count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[repr(u8)]
pub enum SealError {
    /// `seal` on an inbound SA.
    #[error("seal on an inbound SA")]
    WrongDirection = 0,
    /// The payload range is not inside the buffer.
    #[error("payload range outside the buffer")]
    BadRange = 1,
    /// Fewer than `suite.header_len()` bytes before the payload.
    #[error("not enough headroom for the ESP header and IV")]
    NoHeadroom = 2,
    /// Fewer than `suite.trailer_len(len)` bytes after the payload.
    #[error("not enough tailroom for padding, trailer and ICV")]
    NoTailroom = 3,
    /// The sequence number space is used up: rekey (RFC 4303 §3.3.3, no cycling).
    #[error("sequence number space exhausted, rekey")]
    SequenceExhausted = 4,
    /// A hard byte or packet lifetime was reached: rekey or delete the SA.
    #[error("hard lifetime reached")]
    Expired = 5,
    /// The crypto backend failed.
    #[error("crypto backend failure")]
    Backend = 6,
}

impl SealError {
    /// Number of variants.
    pub const COUNT: usize = 7;
    /// All variants, in discriminant order.
    pub const ALL: [SealError; Self::COUNT] = [
        SealError::WrongDirection,
        SealError::BadRange,
        SealError::NoHeadroom,
        SealError::NoTailroom,
        SealError::SequenceExhausted,
        SealError::Expired,
        SealError::Backend,
    ];

    /// Short stable name (metrics label).
    pub const fn name(self) -> &'static str {
        match self {
            SealError::WrongDirection => "wrong_direction",
            SealError::BadRange => "bad_range",
            SealError::NoHeadroom => "no_headroom",
            SealError::NoTailroom => "no_tailroom",
            SealError::SequenceExhausted => "sequence_exhausted",
            SealError::Expired => "expired",
            SealError::Backend => "backend",
        }
    }
}

/// Why [`Sa::open`] dropped a packet. Count it; never answer it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[repr(u8)]
pub enum OpenError {
    /// `open` on an outbound SA.
    #[error("open on an outbound SA")]
    WrongDirection = 0,
    /// The packet range is not inside the buffer.
    #[error("packet range outside the buffer")]
    BadRange = 1,
    /// Shorter than header + IV + minimal ciphertext + ICV.
    #[error("packet truncated")]
    Truncated = 2,
    /// CBC ciphertext is not a multiple of the block size.
    #[error("ciphertext not a multiple of the block size")]
    Misaligned = 3,
    /// The SPI is not this SA's.
    #[error("wrong SPI")]
    WrongSpi = 4,
    /// Sequence number 0, or no 64-bit number fits (ESN).
    #[error("invalid sequence number")]
    InvalidSequence = 5,
    /// Already received (replay or duplicate).
    #[error("replayed packet")]
    Replayed = 6,
    /// Left of the anti-replay window.
    #[error("sequence number left of the replay window")]
    TooOld = 7,
    /// ICV verification failed (forged, corrupted, wrong key, or wrong ESN guess).
    #[error("integrity check failed")]
    Auth = 8,
    /// Valid ICV but the pad length or pad bytes are wrong (RFC 4303 §2.4).
    #[error("bad padding")]
    Padding = 9,
    /// A hard byte or packet lifetime was reached.
    #[error("hard lifetime reached")]
    Expired = 10,
    /// The crypto backend failed.
    #[error("crypto backend failure")]
    Backend = 11,
}

impl OpenError {
    /// Number of variants.
    pub const COUNT: usize = 12;
    /// All variants, in discriminant order.
    pub const ALL: [OpenError; Self::COUNT] = [
        OpenError::WrongDirection,
        OpenError::BadRange,
        OpenError::Truncated,
        OpenError::Misaligned,
        OpenError::WrongSpi,
        OpenError::InvalidSequence,
        OpenError::Replayed,
        OpenError::TooOld,
        OpenError::Auth,
        OpenError::Padding,
        OpenError::Expired,
        OpenError::Backend,
    ];

    /// Short stable name (metrics label).
    pub const fn name(self) -> &'static str {
        match self {
            OpenError::WrongDirection => "wrong_direction",
            OpenError::BadRange => "bad_range",
            OpenError::Truncated => "truncated",
            OpenError::Misaligned => "misaligned",
            OpenError::WrongSpi => "wrong_spi",
            OpenError::InvalidSequence => "invalid_sequence",
            OpenError::Replayed => "replayed",
            OpenError::TooOld => "too_old",
            OpenError::Auth => "auth",
            OpenError::Padding => "padding",
            OpenError::Expired => "expired",
            OpenError::Backend => "backend",
        }
    }
}

impl From<ReplayError> for OpenError {
    fn from(e: ReplayError) -> Self {
        match e {
            ReplayError::Replayed => OpenError::Replayed,
            ReplayError::TooOld => OpenError::TooOld,
            ReplayError::Invalid => OpenError::InvalidSequence,
        }
    }
}

/// A lifetime limit this packet crossed (reported on exactly one packet per limit kind).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LifetimeEvent {
    /// Nothing crossed.
    #[default]
    None,
    /// A soft limit (or, outbound, the sequence-number soft margin) was crossed: rekey.
    Soft,
    /// A hard limit was reached with this packet; the next ones are refused.
    Hard,
}

/// Where an SA stands against its lifetimes ([`Sa::expiry`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Expiry {
    /// Below all limits.
    Alive,
    /// At or past a soft limit.
    Soft,
    /// At or past a hard limit: delete the SA.
    Hard,
}

/// A sealed packet.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct Sealed {
    /// The ESP packet (SPI .. ICV) in the buffer.
    pub packet: Range<usize>,
    /// The 64-bit sequence number used.
    pub seq: u64,
    /// A lifetime limit this packet crossed.
    pub lifetime: LifetimeEvent,
}

/// An opened packet.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct Opened {
    /// The inner packet (plaintext payload) in the buffer.
    pub payload: Range<usize>,
    /// Next header: 4 (IPv4), 41 (IPv6), 59 (dummy packet: drop it, RFC 4303 §2.6), ...
    pub next_header: u8,
    /// The full (ESN-inferred) sequence number.
    pub seq: u64,
    /// A lifetime limit this packet crossed.
    pub lifetime: LifetimeEvent,
}

/// A snapshot of an SA's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets sealed / opened successfully.
    pub packets: u64,
    /// Inner payload bytes sealed / opened successfully.
    pub bytes: u64,
    /// Packets dropped by `open`, indexed by `OpenError as usize`.
    pub open_drops: [u64; OpenError::COUNT],
    /// Packets refused by `seal`, indexed by `SealError as usize`.
    pub seal_drops: [u64; SealError::COUNT],
}

impl Counters {
    /// Drops of one reason on open.
    pub fn dropped(&self, reason: OpenError) -> u64 {
        self.open_drops[reason as usize]
    }
    /// Refusals of one reason on seal.
    pub fn refused(&self, reason: SealError) -> u64 {
        self.seal_drops[reason as usize]
    }
}

/// Outbound: when this many sequence numbers are left, a soft lifetime event fires.
pub const SEQ_SOFT_MARGIN: u64 = 1 << 20;

/// Highest sequence number an ESN SA sends: 2^63 - 1 (never reached in practice; it
/// keeps the atomic counter far from wrapping however many callers race past it).
pub const ESN_SEQ_LIMIT: u64 = (1 << 63) - 1;

/// The 4-byte AES-GCM salt (RFC 4106 §4), wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
struct Salt([u8; 4]);

enum Crypto<B: Backend> {
    Gcm {
        key: B::Aead,
        salt: Salt,
    },
    Cbc {
        key: B::Cbc,
        mac: B::Mac,
        icv_len: usize,
    },
}

#[repr(align(64))]
struct CachePadded<T>(T);

struct Stats {
    packets: AtomicU64,
    bytes: AtomicU64,
    open_drops: [AtomicU64; OpenError::COUNT],
    seal_drops: [AtomicU64; SealError::COUNT],
}

/// An ESP security association: one direction, one SPI, one key set.
///
/// `Sa` is `Send + Sync`: [`seal`](Sa::seal) takes the sequence number from an atomic
/// counter and [`open`](Sa::open) guards the replay window with a short mutex (held for
/// the window update and, for numbers not above the highest accepted one, for the
/// pre-crypto window check; never during crypto), so one `Sa` can be shared
/// (`Arc<Sa>`) by all dataplane workers.
pub struct Sa<B: Backend = AwsLc> {
    params: SaParams,
    seq_limit: u64,
    soft_seq: u64,
    crypto: Crypto<B>,
    next_seq: CachePadded<AtomicU64>,
    replay: Option<Mutex<ReplayWindow>>,
    /// Inbound: the window's size (a power of two).
    window_size: u64,
    /// Inbound: a copy of the window's `top`, stored under the window lock after each
    /// accepted packet. `open` reads it without the lock: a number above it (the usual,
    /// in-order case) needs no pre-crypto window check; `accept` re-checks under the
    /// lock anyway, so a stale copy only costs the crypto of a duplicate.
    top_hint: AtomicU64,
    stats: CachePadded<Stats>,
}

impl<B: Backend> core::fmt::Debug for Sa<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sa")
            .field("spi", &format_args!("{:#010x}", self.params.spi))
            .field("direction", &self.params.direction)
            .field("suite", &format_args!("{}", self.params.suite))
            .field("esn", &self.params.esn)
            .field("keys", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl Sa<AwsLc> {
    /// An SA with the default (`aws-lc-rs`) backend. `encr` is the encryption key (for
    /// GCM: AES key || 4-byte salt, RFC 4106 §8.1), `integ` the integrity key (empty for
    /// GCM), both as taken from KEYMAT (RFC 7296 §2.17).
    pub fn new(params: SaParams, encr: &[u8], integ: &[u8]) -> Result<Self, SuiteError> {
        Self::with_backend(params, encr, integ)
    }

    /// Like [`Sa::new`] with one KEYMAT slice: encryption key then integrity key.
    pub fn from_keymat(params: SaParams, keymat: &[u8]) -> Result<Self, SuiteError> {
        let want = params.suite.encryption_keymat_len() + params.suite.integrity_keymat_len();
        if keymat.len() != want {
            return Err(SuiteError::KeyLength {
                got: keymat.len(),
                want,
            });
        }
        let (e, i) = keymat.split_at(params.suite.encryption_keymat_len());
        Self::new(params, e, i)
    }
}

impl<B: Backend> Sa<B> {
    /// An SA with backend `B`; see [`Sa::new`].
    pub fn with_backend(params: SaParams, encr: &[u8], integ: &[u8]) -> Result<Self, SuiteError> {
        let suite = params.suite;
        if encr.len() != suite.encryption_keymat_len() {
            return Err(SuiteError::KeyLength {
                got: encr.len(),
                want: suite.encryption_keymat_len(),
            });
        }
        if integ.len() != suite.integrity_keymat_len() {
            return Err(SuiteError::KeyLength {
                got: integ.len(),
                want: suite.integrity_keymat_len(),
            });
        }
        let crypto = match suite.integrity() {
            None => {
                let (k, s) = encr.split_at(suite.aes_key_len());
                let mut salt = Salt([0; 4]);
                salt.0.copy_from_slice(s);
                Crypto::Gcm {
                    key: B::aead_key(k).map_err(|_| SuiteError::Backend)?,
                    salt,
                }
            }
            Some(alg) => Crypto::Cbc {
                key: B::cbc_key(encr).map_err(|_| SuiteError::Backend)?,
                mac: B::mac_key(alg, integ).map_err(|_| SuiteError::Backend)?,
                icv_len: alg.icv_len(),
            },
        };
        let seq_limit = if params.esn {
            ESN_SEQ_LIMIT
        } else {
            u64::from(u32::MAX)
        };
        let replay = match params.direction {
            Direction::Inbound => Some(ReplayWindow::with_top(
                params.replay_window,
                params.start_seq,
            )),
            Direction::Outbound => None,
        };
        let window_size = replay.as_ref().map_or(0, |w| u64::from(w.size()));
        let replay = replay.map(Mutex::new);
        Ok(Sa {
            params,
            seq_limit,
            soft_seq: seq_limit - SEQ_SOFT_MARGIN,
            crypto,
            next_seq: CachePadded(AtomicU64::new(params.start_seq.min(seq_limit) + 1)),
            replay,
            window_size,
            top_hint: AtomicU64::new(params.start_seq),
            stats: CachePadded(Stats {
                packets: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
                open_drops: [const { AtomicU64::new(0) }; OpenError::COUNT],
                seal_drops: [const { AtomicU64::new(0) }; SealError::COUNT],
            }),
        })
    }

    /// The parameters the SA was built with.
    pub fn params(&self) -> &SaParams {
        &self.params
    }

    /// SPI.
    pub fn spi(&self) -> u32 {
        self.params.spi
    }

    /// Direction.
    pub fn direction(&self) -> Direction {
        self.params.direction
    }

    /// Cipher suite.
    pub fn suite(&self) -> Suite {
        self.params.suite
    }

    /// Outbound: the sequence number the next packet will carry. Inbound: the highest
    /// authenticated sequence number received so far (0: none).
    pub fn seq(&self) -> u64 {
        match &self.replay {
            Some(w) => w.lock().unwrap_or_else(PoisonError::into_inner).top(),
            None => self.next_seq.0.load(Ordering::Relaxed),
        }
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> Counters {
        let s = &self.stats.0;
        let mut c = Counters {
            packets: s.packets.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
            ..Counters::default()
        };
        for (d, a) in c.open_drops.iter_mut().zip(&s.open_drops) {
            *d = a.load(Ordering::Relaxed);
        }
        for (d, a) in c.seal_drops.iter_mut().zip(&s.seal_drops) {
            *d = a.load(Ordering::Relaxed);
        }
        c
    }

    /// Compares the counters and `age` (how long ago the SA was installed, measured by
    /// the caller's clock) with the lifetimes. The crate reads no clock: call this from
    /// the control plane's timer; byte and packet crossings are also reported per packet
    /// in [`Sealed::lifetime`] / [`Opened::lifetime`].
    pub fn expiry(&self, age: Duration) -> Expiry {
        let s = &self.stats.0;
        let packets = s.packets.load(Ordering::Relaxed);
        let bytes = s.bytes.load(Ordering::Relaxed);
        let reached = |l: &Limits| {
            l.packets.is_some_and(|p| packets >= p)
                || l.bytes.is_some_and(|b| bytes >= b)
                || l.time.is_some_and(|t| age >= t)
        };
        let seq_hard = self.params.direction == Direction::Outbound
            && self.next_seq.0.load(Ordering::Relaxed) > self.seq_limit;
        let seq_soft = self.params.direction == Direction::Outbound
            && self.next_seq.0.load(Ordering::Relaxed) > self.soft_seq;
        if seq_hard || reached(&self.params.lifetime.hard) {
            Expiry::Hard
        } else if seq_soft || reached(&self.params.lifetime.soft) {
            Expiry::Soft
        } else {
            Expiry::Alive
        }
    }

    #[inline]
    fn seal_drop(&self, e: SealError) -> SealError {
        self.stats.0.seal_drops[e as usize].fetch_add(1, Ordering::Relaxed);
        e
    }

    #[inline]
    fn open_drop(&self, e: OpenError) -> OpenError {
        self.stats.0.open_drops[e as usize].fetch_add(1, Ordering::Relaxed);
        e
    }

    /// A hard byte or packet limit was reached (enforced approximately under
    /// concurrency: racing threads may each pass one more packet).
    #[inline]
    fn hard_reached(&self) -> bool {
        let hard = &self.params.lifetime.hard;
        hard.bytes
            .is_some_and(|h| self.stats.0.bytes.load(Ordering::Relaxed) >= h)
            || hard
                .packets
                .is_some_and(|h| self.stats.0.packets.load(Ordering::Relaxed) >= h)
    }

    /// Counts a processed packet and reports the limits it crossed.
    #[inline]
    fn account(&self, len: u64, seq: Option<u64>) -> LifetimeEvent {
        let s = &self.stats.0;
        let p1 = s.packets.fetch_add(1, Ordering::Relaxed) + 1;
        let b0 = s.bytes.fetch_add(len, Ordering::Relaxed);
        let b1 = b0.saturating_add(len);
        let lt = &self.params.lifetime;
        let crossed = |l: &Limits| {
            l.packets.is_some_and(|p| p1 == p) || l.bytes.is_some_and(|b| b0 < b && b1 >= b)
        };
        if crossed(&lt.hard) {
            LifetimeEvent::Hard
        } else if crossed(&lt.soft) || seq == Some(self.soft_seq) {
            LifetimeEvent::Soft
        } else {
            LifetimeEvent::None
        }
    }

    /// Seals the inner packet at `buf[payload]` in place into an ESP packet and returns
    /// its range.
    ///
    /// `buf` must have `suite().header_len()` bytes of headroom before `payload.start`
    /// and `suite().trailer_len(payload.len())` (at most `suite().max_trailer_len()`)
    /// bytes of tailroom after `payload.end`; the bytes there are overwritten. Writes
    /// SPI, sequence number and IV in front, RFC 4303 padding (1, 2, 3, ...), pad
    /// length, `next_header` and the ICV behind, and encrypts in place. No allocation.
    ///
    /// The GCM IV is the 64-bit sequence number (unique per key). The CBC IV is
    /// unpredictable without the key: AES_K(seq || SPI || const), the method of NIST
    /// SP 800-38A Appendix C (about 20 times cheaper than drawing random bytes).
    pub fn seal(
        &self,
        buf: &mut [u8],
        payload: Range<usize>,
        next_header: u8,
    ) -> Result<Sealed, SealError> {
        if self.params.direction != Direction::Outbound {
            return Err(self.seal_drop(SealError::WrongDirection));
        }
        self.check_seal_room(buf, &payload)
            .map_err(|e| self.seal_drop(e))?;
        if self.hard_reached() {
            return Err(self.seal_drop(SealError::Expired));
        }
        let seq = self.next_seq.0.fetch_add(1, Ordering::Relaxed);
        if seq > self.seq_limit || seq == 0 {
            return Err(self.seal_drop(SealError::SequenceExhausted));
        }
        let mut iv = [0u8; CBC_IV_LEN];
        let iv_len = self.params.suite.iv_len();
        match &self.crypto {
            Crypto::Gcm { .. } => iv[..8].copy_from_slice(&seq.to_be_bytes()),
            Crypto::Cbc { key, .. } => {
                // NIST SP 800-38A Appendix C: an unpredictable IV is the block cipher,
                // under the same key, applied to a nonce unique per encryption. Nonce:
                // seq (unique per key) || SPI || "IVgn". CBC with a zero IV over one
                // block is exactly that forward cipher call.
                iv[..8].copy_from_slice(&seq.to_be_bytes());
                iv[8..12].copy_from_slice(&self.params.spi.to_be_bytes());
                iv[12..].copy_from_slice(b"IVgn");
                key.encrypt_in_place(&[0; CBC_IV_LEN], &mut iv)
                    .map_err(|_| self.seal_drop(SealError::Backend))?
            }
        }
        let len = payload.len() as u64;
        let packet = self
            .seal_core(buf, payload, next_header, seq, &iv[..iv_len])
            .map_err(|e| self.seal_drop(e))?;
        let lifetime = self.account(len, Some(seq));
        Ok(Sealed {
            packet,
            seq,
            lifetime,
        })
    }

    /// Like [`Sa::seal`] with the next header taken from the IP version of the payload
    /// (4 for IPv4, 41 for IPv6; see [`crate::ip_next_header`]). An empty payload or an
    /// unknown version is sealed as a dummy packet (next header 59).
    pub fn seal_ip(&self, buf: &mut [u8], payload: Range<usize>) -> Result<Sealed, SealError> {
        let nh = buf
            .get(payload.clone())
            .and_then(crate::ip_next_header)
            .unwrap_or(crate::NEXT_HEADER_NONE);
        self.seal(buf, payload, nh)
    }

    fn check_seal_room(&self, buf: &[u8], payload: &Range<usize>) -> Result<(), SealError> {
        let suite = self.params.suite;
        if payload.start > payload.end || payload.end > buf.len() {
            return Err(SealError::BadRange);
        }
        if payload.start < suite.header_len() {
            return Err(SealError::NoHeadroom);
        }
        if buf.len() - payload.end < suite.trailer_len(payload.len()) {
            return Err(SealError::NoTailroom);
        }
        Ok(())
    }

    /// The seal transform with an explicit sequence number and IV (known-answer tests
    /// use IVs that are not the sequence number).
    pub(crate) fn seal_core(
        &self,
        buf: &mut [u8],
        payload: Range<usize>,
        next_header: u8,
        seq: u64,
        iv: &[u8],
    ) -> Result<Range<usize>, SealError> {
        let suite = self.params.suite;
        self.check_seal_room(buf, &payload)?;
        if iv.len() != suite.iv_len() {
            return Err(SealError::Backend);
        }
        let start = payload.start - suite.header_len();
        let ct_start = payload.start;
        let pad = suite.pad_len(payload.len());
        let ct_end = payload.end + pad + 2;
        let end = ct_end + suite.icv_len();
        let pkt = buf.get_mut(start..end).ok_or(SealError::NoTailroom)?;
        // Offsets inside `pkt`.
        let ct_s = ct_start - start;
        let ct_e = ct_end - start;
        let pl_e = payload.end - start;

        pkt[0..4].copy_from_slice(&self.params.spi.to_be_bytes());
        pkt[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
        pkt[ESP_HEADER_LEN..ct_s].copy_from_slice(iv);
        for (i, b) in pkt[pl_e..pl_e + pad].iter_mut().enumerate() {
            // pad < 16, so i + 1 fits a u8.
            *b = (i + 1) as u8;
        }
        pkt[ct_e - 2] = pad as u8;
        pkt[ct_e - 1] = next_header;
        let seq_hi = ((seq >> 32) as u32).to_be_bytes();

        match &self.crypto {
            Crypto::Gcm { key, salt } => {
                let mut nonce = [0u8; GCM_NONCE_LEN];
                nonce[..4].copy_from_slice(&salt.0);
                nonce[4..].copy_from_slice(iv);
                let mut aad = [0u8; 12];
                let aad_len = gcm_aad(&mut aad, self.params.spi, seq, self.params.esn);
                let (body, icv) = pkt.split_at_mut(ct_e);
                let mut tag = [0u8; GCM_TAG_LEN];
                key.seal_in_place(&nonce, &aad[..aad_len], &mut body[ct_s..], &mut tag)
                    .map_err(|_| SealError::Backend)?;
                icv.copy_from_slice(&tag);
            }
            Crypto::Cbc { key, mac, icv_len } => {
                let mut ivb = [0u8; CBC_IV_LEN];
                ivb.copy_from_slice(iv);
                key.encrypt_in_place(&ivb, &mut pkt[ct_s..ct_e])
                    .map_err(|_| SealError::Backend)?;
                let mut full = [0u8; MAX_MAC_LEN];
                let (body, icv) = pkt.split_at_mut(ct_e);
                let parts: [&[u8]; 2] = [body, &seq_hi];
                let n = if self.params.esn { 2 } else { 1 };
                let got = mac
                    .sign(&parts[..n], &mut full)
                    .map_err(|_| SealError::Backend)?;
                if got < *icv_len {
                    return Err(SealError::Backend);
                }
                icv.copy_from_slice(&full[..*icv_len]);
            }
        }
        Ok(start..end)
    }

    /// Opens the ESP packet at `buf[packet]` in place and returns the inner packet's
    /// range and next header.
    ///
    /// Order (RFC 4303 §3.4): length and SPI checks; anti-replay check (with ESN
    /// inference) before any crypto; ICV verification; window update only after a valid
    /// ICV; decryption; padding check. Every failure is an [`OpenError`], counted in the
    /// SA's [`Counters`]. Never panics, whatever the bytes.
    pub fn open(&self, buf: &mut [u8], packet: Range<usize>) -> Result<Opened, OpenError> {
        self.open_inner(buf, packet).map_err(|e| self.open_drop(e))
    }

    fn open_inner(&self, buf: &mut [u8], packet: Range<usize>) -> Result<Opened, OpenError> {
        let Some(window) = &self.replay else {
            return Err(OpenError::WrongDirection);
        };
        let suite = self.params.suite;
        if packet.start > packet.end {
            return Err(OpenError::BadRange);
        }
        let start = packet.start;
        let pkt = buf.get_mut(packet).ok_or(OpenError::BadRange)?;
        let hdr = suite.header_len();
        let icv_len = suite.icv_len();
        let min_ct = match self.crypto {
            Crypto::Gcm { .. } => 2,
            Crypto::Cbc { .. } => 16,
        };
        if pkt.len() < hdr + min_ct + icv_len {
            return Err(OpenError::Truncated);
        }
        let ct_e = pkt.len() - icv_len;
        let ct_len = ct_e - hdr;
        if matches!(self.crypto, Crypto::Cbc { .. }) && ct_len % 16 != 0 {
            return Err(OpenError::Misaligned);
        }
        let spi = u32::from_be_bytes([pkt[0], pkt[1], pkt[2], pkt[3]]);
        if spi != self.params.spi {
            return Err(OpenError::WrongSpi);
        }
        if self.hard_reached() {
            return Err(OpenError::Expired);
        }
        let seq_lo = u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]);
        let seq = {
            // Fast path: right of everything accepted so far (as of the hint), so the
            // window has nothing to object to; no lock.
            let hint = self.top_hint.load(Ordering::Relaxed);
            match infer_at(self.window_size, hint, seq_lo, self.params.esn)? {
                seq if seq > hint => seq,
                _ => {
                    let w = window.lock().unwrap_or_else(PoisonError::into_inner);
                    let seq = w.infer(seq_lo, self.params.esn)?;
                    w.check(seq)?;
                    seq
                }
            }
        };
        self.verify_decrypt(pkt, seq)?;
        {
            let mut w = window.lock().unwrap_or_else(PoisonError::into_inner);
            w.accept(seq)?;
            self.top_hint.store(w.top(), Ordering::Relaxed);
        }
        // Trailer: ... padding | pad length | next header.
        let pad_len = usize::from(pkt[ct_e - 2]);
        let next_header = pkt[ct_e - 1];
        if pad_len + 2 > ct_len {
            return Err(OpenError::Padding);
        }
        let pl_e = ct_e - 2 - pad_len;
        let mut bad = 0u8;
        for (i, b) in pkt[pl_e..ct_e - 2].iter().enumerate() {
            bad |= *b ^ ((i + 1) as u8);
        }
        if bad != 0 {
            return Err(OpenError::Padding);
        }
        let lifetime = self.account((pl_e - hdr) as u64, None);
        Ok(Opened {
            payload: start + hdr..start + pl_e,
            next_header,
            seq,
            lifetime,
        })
    }

    /// Verifies the ICV and decrypts `pkt[header..ct_end]` in place, with `seq` the
    /// full sequence number (its high half enters the ICV with ESN).
    pub(crate) fn verify_decrypt(&self, pkt: &mut [u8], seq: u64) -> Result<(), OpenError> {
        let suite = self.params.suite;
        let hdr = suite.header_len();
        let ct_e = pkt.len() - suite.icv_len();
        match &self.crypto {
            Crypto::Gcm { key, salt } => {
                let mut nonce = [0u8; GCM_NONCE_LEN];
                nonce[..4].copy_from_slice(&salt.0);
                nonce[4..].copy_from_slice(&pkt[ESP_HEADER_LEN..hdr]);
                let mut aad = [0u8; 12];
                let aad_len = gcm_aad(&mut aad, self.params.spi, seq, self.params.esn);
                let mut tag = [0u8; GCM_TAG_LEN];
                tag.copy_from_slice(&pkt[ct_e..]);
                key.open_in_place(&nonce, &aad[..aad_len], &mut pkt[hdr..ct_e], &tag)
                    .map_err(|_| OpenError::Auth)
            }
            Crypto::Cbc { key, mac, icv_len } => {
                let seq_hi = ((seq >> 32) as u32).to_be_bytes();
                let mut full = [0u8; MAX_MAC_LEN];
                let (body, icv) = pkt.split_at_mut(ct_e);
                let parts: [&[u8]; 2] = [body, &seq_hi];
                let n = if self.params.esn { 2 } else { 1 };
                let got = mac
                    .sign(&parts[..n], &mut full)
                    .map_err(|_| OpenError::Backend)?;
                if got < *icv_len {
                    return Err(OpenError::Backend);
                }
                if !bool::from(full[..*icv_len].ct_eq(icv)) {
                    return Err(OpenError::Auth);
                }
                let mut iv = [0u8; CBC_IV_LEN];
                iv.copy_from_slice(&body[ESP_HEADER_LEN..hdr]);
                key.decrypt_in_place(&iv, &mut body[hdr..])
                    .map_err(|_| OpenError::Backend)
            }
        }
    }
}

/// Writes the GCM AAD (RFC 4106 §5): SPI || seq (8 bytes), or SPI || seq_hi || seq_lo
/// (12 bytes) with ESN. Returns its length.
#[inline]
fn gcm_aad(aad: &mut [u8; 12], spi: u32, seq: u64, esn: bool) -> usize {
    aad[..4].copy_from_slice(&spi.to_be_bytes());
    if esn {
        aad[4..12].copy_from_slice(&seq.to_be_bytes());
        12
    } else {
        aad[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
        8
    }
}
