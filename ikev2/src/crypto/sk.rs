//! Protection of the Encrypted and Authenticated payload (SK, RFC 7296 §3.14) with
//! AES-CBC + HMAC, or AES-GCM-16 (RFC 5282).
//!
//! The SK payload body this module produces and consumes is
//! `IV | ciphertext(inner payloads | padding | pad length) | ICV`. The caller (the wire
//! codec) writes the IKE header and the SK generic payload header with their final
//! lengths first and passes those bytes as `aad_prefix`:
//!
//! * CBC + HMAC: the ICV is `HMAC(SK_a, aad_prefix | IV | ciphertext)`, truncated;
//!   the IV is 16 random bytes; padding is zeros up to the AES block.
//! * GCM: `aad_prefix` is the AAD (RFC 5282 §5.1), nonce = salt(4) | IV(8), the IV is 8
//!   random bytes from the caller's [`Rng`], no padding (pad length 0), ICV 16 bytes.

use core::fmt;

use aws_lc_rs::{aead, cipher, hmac};

use super::suite::{check_cipher, Encr, Integ};
use super::{ct_eq, CryptoError, Rng};

/// Why an SK payload could not be produced or opened. Deliberately coarse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SkError {
    /// The body is too short or not a whole number of cipher blocks.
    #[error("malformed encrypted payload length")]
    BadLength,
    /// The ICV does not verify (wrong key, tampering, or corruption).
    #[error("integrity check failed")]
    IntegrityCheckFailed,
    /// The pad length byte points outside the plaintext.
    #[error("bad padding")]
    BadPadding,
    /// `out_body` is not exactly `body_len(inner_len)` bytes.
    #[error("output buffer has the wrong size")]
    OutputSize,
    /// The crypto backend failed.
    #[error("cipher backend failure")]
    Backend,
}

struct CbcKeys {
    enc: cipher::EncryptingKey,
    dec: cipher::DecryptingKey,
    integ: Integ,
    mac: hmac::Key,
}

enum Kind {
    Cbc(Box<CbcKeys>),
    Gcm {
        key: aead::LessSafeKey,
        salt: [u8; 4],
    },
}

/// SK payload protection for one direction of one IKE SA (SK_ei/SK_ai or SK_er/SK_ar).
/// Keys live inside aws-lc objects; `Debug` shows the algorithms only.
pub struct SkCipher {
    encr: Encr,
    key_bits: u16,
    kind: Kind,
}

impl fmt::Debug for SkCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let integ = match &self.kind {
            Kind::Cbc(c) => Some(c.integ),
            Kind::Gcm { .. } => None,
        };
        f.debug_struct("SkCipher")
            .field("encr", &self.encr)
            .field("key_bits", &self.key_bits)
            .field("integ", &integ)
            .field("keys", &"<redacted>")
            .finish()
    }
}

const AES_BLOCK: usize = 16;
const GCM_ICV: usize = 16;

impl SkCipher {
    /// Creates the cipher. `encr_key` is SK_e* (for GCM: key then 4-byte salt, i.e.
    /// `key_bits/8 + 4` bytes); `integ_key` is SK_a* (empty for GCM).
    pub fn new(
        encr: Encr,
        key_bits: u16,
        integ: Option<Integ>,
        encr_key: &[u8],
        integ_key: &[u8],
    ) -> Result<Self, CryptoError> {
        check_cipher(encr, key_bits, integ)?;
        if encr_key.len() != encr.keymat_len(key_bits) {
            return Err(CryptoError::KeyLength);
        }
        let kind = match (encr, integ) {
            (Encr::AesCbc, Some(integ)) => {
                if integ_key.len() != integ.key_len() {
                    return Err(CryptoError::KeyLength);
                }
                let alg = match key_bits {
                    128 => &cipher::AES_128,
                    192 => &cipher::AES_192,
                    _ => &cipher::AES_256,
                };
                let ek = cipher::UnboundCipherKey::new(alg, encr_key)
                    .map_err(|_| CryptoError::KeyLength)?;
                let dk = cipher::UnboundCipherKey::new(alg, encr_key)
                    .map_err(|_| CryptoError::KeyLength)?;
                Kind::Cbc(Box::new(CbcKeys {
                    enc: cipher::EncryptingKey::cbc(ek).map_err(|_| CryptoError::KeyLength)?,
                    dec: cipher::DecryptingKey::cbc(dk).map_err(|_| CryptoError::KeyLength)?,
                    integ,
                    mac: hmac::Key::new(integ.hmac_algorithm(), integ_key),
                }))
            }
            (Encr::AesGcm16, None) => {
                if !integ_key.is_empty() {
                    return Err(CryptoError::KeyLength);
                }
                let alg = match key_bits {
                    128 => &aead::AES_128_GCM,
                    192 => &aead::AES_192_GCM,
                    _ => &aead::AES_256_GCM,
                };
                let (k, s) = encr_key.split_at(encr_key.len() - 4);
                let mut salt = [0u8; 4];
                salt.copy_from_slice(s);
                let unbound = aead::UnboundKey::new(alg, k).map_err(|_| CryptoError::KeyLength)?;
                Kind::Gcm {
                    key: aead::LessSafeKey::new(unbound),
                    salt,
                }
            }
            _ => return Err(CryptoError::Unsupported("cipher combination")),
        };
        Ok(SkCipher {
            encr,
            key_bits,
            kind,
        })
    }

    /// Encryption algorithm.
    pub fn encr(&self) -> Encr {
        self.encr
    }

    /// IV length carried at the start of the body.
    pub fn iv_len(&self) -> usize {
        self.encr.iv_len()
    }

    /// ICV length at the end of the body.
    pub fn icv_len(&self) -> usize {
        match &self.kind {
            Kind::Cbc(c) => c.integ.icv_len(),
            Kind::Gcm { .. } => GCM_ICV,
        }
    }

    fn padded_len(&self, inner_len: usize) -> usize {
        match self.kind {
            Kind::Cbc(_) => (inner_len + 1).div_ceil(AES_BLOCK) * AES_BLOCK,
            Kind::Gcm { .. } => inner_len + 1,
        }
    }

    /// Length of the SK payload body (after the 4-byte generic header) for
    /// `inner_len` bytes of inner payloads: IV + padded ciphertext (with the pad
    /// length byte) + ICV.
    pub fn body_len(&self, inner_len: usize) -> usize {
        self.iv_len() + self.padded_len(inner_len) + self.icv_len()
    }

    /// Encrypts `inner_payloads` into `out_body`, which must be exactly
    /// `body_len(inner_payloads.len())` bytes. `aad_prefix` is the IKE header and the SK
    /// generic payload header, already carrying the final lengths.
    pub fn encrypt<R: Rng + ?Sized>(
        &self,
        aad_prefix: &[u8],
        inner_payloads: &[u8],
        rng: &mut R,
        out_body: &mut [u8],
    ) -> Result<(), SkError> {
        let padded = self.padded_len(inner_payloads.len());
        if out_body.len() != self.body_len(inner_payloads.len()) {
            return Err(SkError::OutputSize);
        }
        let iv_len = self.iv_len();
        let icv_len = self.icv_len();
        let (iv, rest) = out_body.split_at_mut(iv_len);
        let (ct, icv) = rest.split_at_mut(padded);
        rng.fill(iv);
        ct[..inner_payloads.len()].copy_from_slice(inner_payloads);
        let pad_len = padded - inner_payloads.len() - 1;
        ct[inner_payloads.len()..padded - 1].fill(0);
        ct[padded - 1] = pad_len as u8;
        match &self.kind {
            Kind::Cbc(c) => {
                let (enc, mac) = (&c.enc, &c.mac);
                let mut iv16 = [0u8; AES_BLOCK];
                iv16.copy_from_slice(iv);
                let ctx = cipher::EncryptionContext::Iv128(iv16.into());
                enc.less_safe_encrypt(ct, ctx)
                    .map_err(|_| SkError::Backend)?;
                let mut m = hmac::Context::with_key(mac);
                m.update(aad_prefix);
                m.update(iv);
                m.update(ct);
                let tag = m.sign();
                let tag = tag.as_ref();
                if tag.len() < icv_len {
                    return Err(SkError::Backend);
                }
                icv.copy_from_slice(&tag[..icv_len]);
            }
            Kind::Gcm { key, salt } => {
                let nonce = gcm_nonce(salt, iv)?;
                let tag = key
                    .seal_in_place_separate_tag(nonce, aead::Aad::from(aad_prefix), ct)
                    .map_err(|_| SkError::Backend)?;
                if tag.as_ref().len() != icv_len {
                    return Err(SkError::Backend);
                }
                icv.copy_from_slice(tag.as_ref());
            }
        }
        Ok(())
    }

    /// Convenience: [`SkCipher::encrypt`] into a new vector.
    pub fn encrypt_to_vec<R: Rng + ?Sized>(
        &self,
        aad_prefix: &[u8],
        inner_payloads: &[u8],
        rng: &mut R,
    ) -> Result<Vec<u8>, SkError> {
        let mut out = vec![0u8; self.body_len(inner_payloads.len())];
        self.encrypt(aad_prefix, inner_payloads, rng, &mut out)?;
        Ok(out)
    }

    /// Verifies and decrypts an SK payload body (everything after the SK generic
    /// header), returning the inner payload bytes. The ICV is checked first (constant
    /// time), then the pad length. Never panics, whatever the input.
    pub fn decrypt(&self, aad_prefix: &[u8], body: &[u8]) -> Result<Vec<u8>, SkError> {
        let iv_len = self.iv_len();
        let icv_len = self.icv_len();
        let min = match self.kind {
            Kind::Cbc(_) => iv_len + AES_BLOCK + icv_len,
            Kind::Gcm { .. } => iv_len + 1 + icv_len,
        };
        if body.len() < min {
            return Err(SkError::BadLength);
        }
        let (iv, rest) = body.split_at(iv_len);
        let (ct, icv) = rest.split_at(rest.len() - icv_len);
        let mut pt = ct.to_vec();
        match &self.kind {
            Kind::Cbc(c) => {
                let (dec, mac) = (&c.dec, &c.mac);
                if ct.len() % AES_BLOCK != 0 {
                    return Err(SkError::BadLength);
                }
                let mut m = hmac::Context::with_key(mac);
                m.update(aad_prefix);
                m.update(iv);
                m.update(ct);
                let tag = m.sign();
                let tag = tag.as_ref();
                if tag.len() < icv_len || !ct_eq(&tag[..icv_len], icv) {
                    return Err(SkError::IntegrityCheckFailed);
                }
                let mut iv16 = [0u8; AES_BLOCK];
                iv16.copy_from_slice(iv);
                let ctx = cipher::DecryptionContext::Iv128(iv16.into());
                dec.decrypt(&mut pt, ctx).map_err(|_| SkError::Backend)?;
            }
            Kind::Gcm { key, salt } => {
                let nonce = gcm_nonce(salt, iv).map_err(|_| SkError::BadLength)?;
                key.open_in_place_separate_tag(nonce, aead::Aad::from(aad_prefix), icv, &mut pt)
                    .map_err(|_| SkError::IntegrityCheckFailed)?;
            }
        }
        let pad_len = match pt.last() {
            Some(&b) => usize::from(b),
            None => return Err(SkError::BadLength),
        };
        let inner_len = pt
            .len()
            .checked_sub(pad_len + 1)
            .ok_or(SkError::BadPadding)?;
        pt.truncate(inner_len);
        Ok(pt)
    }
}

fn gcm_nonce(salt: &[u8; 4], iv: &[u8]) -> Result<aead::Nonce, SkError> {
    let mut n = [0u8; aead::NONCE_LEN];
    if iv.len() + salt.len() != n.len() {
        return Err(SkError::Backend);
    }
    n[..4].copy_from_slice(salt);
    n[4..].copy_from_slice(iv);
    Ok(aead::Nonce::assume_unique_for_key(n))
}
