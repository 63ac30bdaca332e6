//! In-place ESP (RFC 4303) for the cipher suites Azure VPN Gateway and strongSwan
//! negotiate: AES-GCM-128/192/256 with a 16-byte ICV (RFC 4106) and AES-CBC-128/192/256
//! with HMAC-SHA1-96, HMAC-SHA-256-128, HMAC-SHA-384-192 or HMAC-SHA-512-256 (RFC 3602,
//! RFC 2404, RFC 4868), with 32-bit or extended (ESN) sequence numbers, an anti-replay
//! window, lifetimes and counters, plus UDP encapsulation framing (RFC 3948).
//!
//! No sockets, no clocks, no allocation per packet (proved by `tests/alloc.rs`).
//!
//! # Building an SA
//!
//! ```
//! use esp::{Direction, Sa, SaParams, Suite};
//! # let keymat = [7u8; 36];
//! // KEYMAT for this direction (RFC 7296 §2.17): encryption key (for GCM: AES key ||
//! // 4-byte salt, RFC 4106 §8.1), then the integrity key (CBC suites only).
//! let params = SaParams::new(0x1234_5678, Direction::Outbound, Suite::AES256_GCM16)
//!     .with_esn(true);
//! let sa = Sa::from_keymat(params, &keymat)?;          // or Sa::new(params, encr, integ)
//! # Ok::<(), esp::SuiteError>(())
//! ```
//!
//! Keys are expanded once at construction (backend key objects wipe themselves on drop;
//! the GCM salt is zeroized); `Debug` on an [`Sa`] never prints key material.
//!
//! # Sealing (outbound), in place
//!
//! The caller puts the inner IP packet at `buf[payload]` with at least
//! `suite.header_len()` bytes before it ([`MAX_HEADER_LEN`] fits every suite) and
//! `suite.max_trailer_len()` after it ([`MAX_TRAILER_LEN`] fits every suite), plus
//! whatever outer IP/UDP headers it wants to add itself in front of that.
//!
//! ```
//! # use esp::{Direction, Sa, SaParams, Suite, MAX_HEADER_LEN, MAX_TRAILER_LEN};
//! # let sa = Sa::from_keymat(SaParams::new(1000, Direction::Outbound, Suite::AES256_GCM16), &[7u8; 36])?;
//! # let inner = [0x45u8; 60];
//! let mut buf = [0u8; 2048];
//! let payload = MAX_HEADER_LEN..MAX_HEADER_LEN + inner.len();
//! buf[payload.clone()].copy_from_slice(&inner);
//! let sealed = sa.seal(&mut buf, payload, esp::NEXT_HEADER_IPV4).expect("seal");
//! let wire = &buf[sealed.packet]; // SPI | seq | IV | ciphertext | ICV
//! # Ok::<(), esp::SuiteError>(())
//! ```
//!
//! [`Sa::seal`] takes `&self` and is safe to call from several threads on one SA: the
//! sequence number comes from an `AtomicU64`. It never wraps: past 2^32 − 1 (or, with
//! ESN, [`ESN_SEQ_LIMIT`]) seal fails with [`SealError::SequenceExhausted`]; a
//! [`LifetimeEvent::Soft`] is reported [`SEQ_SOFT_MARGIN`] packets before that. The
//! AES-GCM IV is the 64-bit sequence number, so it is unique per key as long as one key
//! is used by exactly one outbound `Sa` (never build two from the same KEYMAT). The CBC IV
//! is unpredictable as RFC 3602 §3 requires: AES_K(seq || SPI || const), the method of
//! NIST SP 800-38A Appendix C. [`Sa::seal_ip`] picks the next header (4 or 41) from the IP
//! version nibble ([`ip_next_header`]).
//!
//! # Opening (inbound), in place
//!
//! [`Sa::open`] takes `&self` too: the replay window sits behind a `Mutex` that is taken
//! twice per packet for a few nanoseconds (check before the ICV, update after it), never
//! during crypto. Order: length, SPI, replay check (with ESN high-bits inference, RFC 4303
//! Appendix A2.2), ICV, window update, decryption, padding check (monotonic 1, 2, 3, ...).
//! It returns the inner packet's range in the same buffer and its next header, or an
//! [`OpenError`] reason (`Replayed`, `TooOld`, `Auth`, `Padding`, `Truncated`, `WrongSpi`,
//! ...). It never panics, whatever the input (property-tested and fuzzed). Next header 59
//! is a dummy packet (RFC 4303 §2.6): drop it after a successful open.
//!
//! # Lifetimes and counters
//!
//! [`SaParams::lifetime`] holds soft and hard limits in bytes (inner payload bytes),
//! packets and time. The crate reads no clock:
//! * per packet, [`Sealed::lifetime`] / [`Opened::lifetime`] report a byte or packet limit
//!   crossed by that very packet (exactly once per limit); after a hard limit, `seal` /
//!   `open` refuse with `Expired`;
//! * time limits are checked by the caller: [`Sa::expiry`]`(age)` compares the SA's age
//!   (caller's clock) and counters with all limits and returns `Alive`, `Soft` or `Hard`.
//!
//! [`Sa::counters`] returns packets, bytes and drops per [`OpenError`] / [`SealError`]
//! reason (the SA counts its own failures; the names in `OpenError::name` suit metrics).
//!
//! # UDP encapsulation
//!
//! [`udp::classify`] tells a UDP/4500 payload apart: IKE behind the non-ESP marker
//! (returns the IKE message's range), ESP (returns the SPI for the SA lookup), or a
//! NAT-keepalive. [`udp::write_non_esp_marker`] prefixes an IKE message in place.
//!
//! # Crypto backend
//!
//! [`backend::Backend`] is the one small trait set an SA needs (AEAD seal/open in place
//! with a detached tag, CBC encrypt/decrypt in place, HMAC); [`Sa`] is generic
//! over it with the `aws-lc-rs` backend [`backend::AwsLc`] as default.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backend;
pub mod replay;
mod sa;
pub mod suite;
pub mod udp;

#[cfg(test)]
mod kat;

pub use replay::{ReplayWindow, DEFAULT_WINDOW};
pub use sa::{
    Counters, Direction, Expiry, Lifetime, LifetimeEvent, Limits, OpenError, Opened, Sa, SaParams,
    SealError, Sealed, ESN_SEQ_LIMIT, SEQ_SOFT_MARGIN,
};
pub use suite::{Encryption, Integrity, Suite, SuiteError};

/// Length of the ESP header: SPI (4) + sequence number (4).
pub const ESP_HEADER_LEN: usize = 8;

/// Headroom that fits every suite: ESP header + the largest IV (CBC, 16 bytes).
pub const MAX_HEADER_LEN: usize = ESP_HEADER_LEN + 16;

/// Tailroom that fits every suite: up to 15 bytes of CBC padding, pad length, next
/// header and the largest ICV (HMAC-SHA-512-256, 32 bytes).
pub const MAX_TRAILER_LEN: usize = 15 + 2 + 32;

/// Next header for an IPv4 inner packet (IP-in-IP, tunnel mode).
pub const NEXT_HEADER_IPV4: u8 = 4;
/// Next header for an IPv6 inner packet.
pub const NEXT_HEADER_IPV6: u8 = 41;
/// "No next header": marks a dummy (traffic-flow-confidentiality) packet.
pub const NEXT_HEADER_NONE: u8 = 59;

/// The ESP next header for an inner IP packet, from its version nibble: 4 for IPv4, 41
/// for IPv6, `None` for an empty packet or another version.
pub fn ip_next_header(packet: &[u8]) -> Option<u8> {
    match packet.first().map(|b| b >> 4) {
        Some(4) => Some(NEXT_HEADER_IPV4),
        Some(6) => Some(NEXT_HEADER_IPV6),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_constants_cover_every_suite() {
        for s in Suite::all() {
            assert!(s.header_len() <= MAX_HEADER_LEN, "{s}");
            assert!(s.max_trailer_len() <= MAX_TRAILER_LEN, "{s}");
        }
        assert_eq!(
            Suite::all().map(|s| s.max_trailer_len()).max(),
            Some(MAX_TRAILER_LEN)
        );
    }

    #[test]
    fn sa_is_shareable_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Sa>();
        send_sync::<ReplayWindow>();
    }

    #[test]
    fn next_header_from_version() {
        assert_eq!(ip_next_header(&[0x45, 0]), Some(4));
        assert_eq!(ip_next_header(&[0x60, 0]), Some(41));
        assert_eq!(ip_next_header(&[0x50]), None);
        assert_eq!(ip_next_header(&[]), None);
    }
}
