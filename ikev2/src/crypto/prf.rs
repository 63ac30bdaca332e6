//! Pseudo-random functions (transform type 2) and `prf+` (RFC 7296 §2.13).

use aws_lc_rs::hmac;
use zeroize::Zeroizing;

use super::{CryptoError, Secret};

/// PRF transform, HMAC-based only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Prf {
    /// PRF_HMAC_SHA1 (2), RFC 2104.
    HmacSha1,
    /// PRF_HMAC_SHA2_256 (5), RFC 4868.
    HmacSha256,
    /// PRF_HMAC_SHA2_384 (6), RFC 4868.
    HmacSha384,
    /// PRF_HMAC_SHA2_512 (7), RFC 4868.
    HmacSha512,
}

impl Prf {
    /// IKEv2 transform ID.
    pub const fn id(self) -> u16 {
        match self {
            Prf::HmacSha1 => 2,
            Prf::HmacSha256 => 5,
            Prf::HmacSha384 => 6,
            Prf::HmacSha512 => 7,
        }
    }

    /// The PRF for a transform ID, if supported.
    pub const fn from_id(id: u16) -> Option<Self> {
        match id {
            2 => Some(Prf::HmacSha1),
            5 => Some(Prf::HmacSha256),
            6 => Some(Prf::HmacSha384),
            7 => Some(Prf::HmacSha512),
            _ => None,
        }
    }

    /// Output length in bytes.
    pub const fn output_len(self) -> usize {
        match self {
            Prf::HmacSha1 => 20,
            Prf::HmacSha256 => 32,
            Prf::HmacSha384 => 48,
            Prf::HmacSha512 => 64,
        }
    }

    /// Preferred key length (= output length for HMAC PRFs; the length of SK_d,
    /// SK_pi and SK_pr, RFC 7296 §2.14, RFC 4868 §2.2).
    pub const fn key_len(self) -> usize {
        self.output_len()
    }

    fn algorithm(self) -> hmac::Algorithm {
        match self {
            Prf::HmacSha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Prf::HmacSha256 => hmac::HMAC_SHA256,
            Prf::HmacSha384 => hmac::HMAC_SHA384,
            Prf::HmacSha512 => hmac::HMAC_SHA512,
        }
    }

    /// `prf(key, data)`. HMAC accepts keys of any length.
    pub fn prf(self, key: &[u8], data: &[u8]) -> Secret {
        self.prf_parts(key, &[data])
    }

    /// `prf(key, part0 | part1 | ...)` without building the concatenation.
    pub fn prf_parts(self, key: &[u8], parts: &[&[u8]]) -> Secret {
        let key = hmac::Key::new(self.algorithm(), key);
        let mut ctx = hmac::Context::with_key(&key);
        for p in parts {
            ctx.update(p);
        }
        Secret::new(ctx.sign().as_ref())
    }

    /// Largest output `prf+` can produce: 255 iterations (RFC 7296 §2.13).
    pub const fn prf_plus_max(self) -> usize {
        255 * self.output_len()
    }

    /// `prf+(key, seed)` truncated to `len` bytes (RFC 7296 §2.13):
    /// `T1 = prf(K, S | 0x01)`, `Tn = prf(K, Tn-1 | S | n)`.
    ///
    /// Errors with [`CryptoError::PrfPlusTooLong`] above 255 iterations.
    pub fn prf_plus(self, key: &[u8], seed: &[u8], len: usize) -> Result<Secret, CryptoError> {
        self.prf_plus_parts(key, &[seed], len)
    }

    /// `prf+` with the seed given as parts to concatenate.
    pub fn prf_plus_parts(
        self,
        key: &[u8],
        seed: &[&[u8]],
        len: usize,
    ) -> Result<Secret, CryptoError> {
        if len > self.prf_plus_max() {
            return Err(CryptoError::PrfPlusTooLong);
        }
        let hkey = hmac::Key::new(self.algorithm(), key);
        let mut out = Zeroizing::new(Vec::with_capacity(len + self.output_len()));
        let mut prev_start = 0usize;
        let mut n: u8 = 1;
        while out.len() < len {
            let mut ctx = hmac::Context::with_key(&hkey);
            if n > 1 {
                ctx.update(&out[prev_start..]);
            }
            for s in seed {
                ctx.update(s);
            }
            ctx.update(&[n]);
            prev_start = out.len();
            out.extend_from_slice(ctx.sign().as_ref());
            n = n.wrapping_add(1);
        }
        out.truncate(len);
        Ok(Secret::new(&out))
    }
}
