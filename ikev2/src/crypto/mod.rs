//! Cryptography for IKEv2 with pre-shared keys (sans-IO: randomness comes in through
//! [`Rng`], nothing reads a clock).
//!
//! * [`Rng`], [`SystemRng`] (aws-lc), [`TestRng`] (deterministic, SHA-256 counter).
//! * [`DhGroup`] / [`DhPrivateKey`]: groups 2, 14, 15, 24 (MODP, RFC 6989 peer checks),
//!   19, 20 (ECP, RFC 5903 `x | y` encoding), 31 (Curve25519, RFC 8031).
//! * [`Prf`]: HMAC-SHA1/256/384/512 with `prf` and `prf+` (RFC 7296 §2.13).
//! * [`Encr`], [`Integ`], [`IkeSuite`], [`ChildSuite`]: negotiated transforms by IKEv2 ID.
//! * [`IkeKeys`] (SKEYSEED, SK_*, IKE rekey) and [`ChildKeys`] (KEYMAT), RFC 7296
//!   §2.14, §2.17, §2.18.
//! * [`signed_octets`], [`psk_auth`], [`verify_psk_auth`]: PSK AUTH (RFC 7296 §2.15).
//! * [`SkCipher`]: the SK payload (AES-CBC + HMAC-SHA1/SHA2, AES-GCM-16 per RFC 5282).
//!
//! Typical initiator flow:
//! ```
//! use ikev2::crypto::*;
//! let suite = IkeSuite { encr: Encr::AesGcm16, key_bits: 256, integ: None,
//!                        prf: Prf::HmacSha256, dh: DhGroup::Curve25519 };
//! let mut rng = TestRng::new(1);
//! let me = DhPrivateKey::generate(suite.dh, &mut rng).unwrap();
//! let peer = DhPrivateKey::generate(suite.dh, &mut rng).unwrap();
//! let g_ir = me.shared_secret(&peer.public_value()).unwrap();
//! let (ni, nr) = ([1u8; 32], [2u8; 32]);
//! let keys = IkeKeys::initial(&suite, &g_ir, &ni, &nr, &[1; 8], &[2; 8]).unwrap();
//! let (out, _inb) = keys.ciphers(true).unwrap();
//! let body = out.encrypt_to_vec(b"header+skhdr", b"inner payloads", &mut rng).unwrap();
//! let theirs = keys.cipher_i2r().unwrap();
//! assert_eq!(theirs.decrypt(b"header+skhdr", &body).unwrap(), b"inner payloads");
//! ```
//!
//! Secrets ([`Secret`], keys inside [`IkeKeys`], [`ChildKeys`], [`DhPrivateKey`],
//! [`SkCipher`]) are never shown by `Debug` and are zeroized on drop where the bytes
//! are ours (aws-lc owns and frees its key schedules).

mod auth;
mod dh;
mod keys;
mod modp_params;
mod prf;
mod rng;
mod secret;
mod sk;
mod suite;

pub use auth::{ct_eq, psk_auth, signed_octets, verify_psk_auth, KEY_PAD};
pub use dh::{DhError, DhGroup, DhPrivateKey};
pub use keys::{skeyseed, skeyseed_rekey, ChildKeys, IkeKeys};
pub use prf::Prf;
pub use rng::{Rng, SystemRng, TestRng};
pub use secret::Secret;
pub use sk::{SkCipher, SkError};
pub use suite::{check_cipher, ChildSuite, Encr, IkeSuite, Integ};

/// Errors from suite checks and key derivation. Never carries key material.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// A transform, key length or combination this implementation does not offer.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// Key material of the wrong length was supplied.
    #[error("wrong key length")]
    KeyLength,
    /// More than 255 `prf+` iterations were requested (RFC 7296 §2.13).
    #[error("prf+ output too long")]
    PrfPlusTooLong,
    /// Diffie-Hellman failure.
    #[error("key exchange: {0}")]
    Dh(#[from] DhError),
}
