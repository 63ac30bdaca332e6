//! The crypto backend: one small set of traits an [`Sa`](crate::Sa) needs, and the
//! default implementation on `aws-lc-rs`.
//!
//! A backend builds three kinds of pre-expanded keys from raw bytes: an AES-GCM key
//! (seal/open in place with a detached 16-byte tag), an AES-CBC key (encrypt/decrypt in
//! place, no padding: ESP pads itself), and an HMAC key. All operations take `&self`, so
//! one key can be used from several threads at once, and none of them may allocate per
//! call (no random source is needed: IVs are derived, see [`Sa::seal`](crate::Sa::seal)).
//! Implementations must wipe key material when a key is dropped and must not print
//! it in `Debug`.

use crate::suite::Integrity;

/// Length of the AES-GCM nonce: 4-byte salt + 8-byte explicit IV (RFC 4106 §4).
pub const GCM_NONCE_LEN: usize = 12;
/// Length of the AES-GCM tag (ICV) this crate uses (RFC 4106 §8: 16 bytes).
pub const GCM_TAG_LEN: usize = 16;
/// Length of an AES-CBC IV (RFC 3602 §3).
pub const CBC_IV_LEN: usize = 16;
/// Largest full HMAC output (SHA-512).
pub const MAX_MAC_LEN: usize = 64;

/// The backend failed or refused an input. Deliberately carries no detail: for
/// [`AeadKey::open_in_place`] it is the authentication failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("crypto backend error")]
pub struct BackendError;

/// AES-GCM with a 16-byte tag, pre-expanded.
pub trait AeadKey: Send + Sync {
    /// Encrypts `in_out` in place and writes the tag.
    fn seal_in_place(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &mut [u8; GCM_TAG_LEN],
    ) -> Result<(), BackendError>;

    /// Verifies `tag` and decrypts `in_out` in place. On error the contents of `in_out`
    /// are unspecified.
    fn open_in_place(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &[u8; GCM_TAG_LEN],
    ) -> Result<(), BackendError>;
}

/// AES-CBC without padding, pre-expanded for both directions.
pub trait CbcKey: Send + Sync {
    /// Encrypts `in_out` (a multiple of 16 bytes) in place.
    fn encrypt_in_place(
        &self,
        iv: &[u8; CBC_IV_LEN],
        in_out: &mut [u8],
    ) -> Result<(), BackendError>;
    /// Decrypts `in_out` (a multiple of 16 bytes) in place.
    fn decrypt_in_place(
        &self,
        iv: &[u8; CBC_IV_LEN],
        in_out: &mut [u8],
    ) -> Result<(), BackendError>;
}

/// An HMAC key.
pub trait MacKey: Send + Sync {
    /// Computes the full (untruncated) HMAC over the concatenation of `parts` into `out`
    /// and returns its length.
    fn sign(&self, parts: &[&[u8]], out: &mut [u8; MAX_MAC_LEN]) -> Result<usize, BackendError>;
}

/// A crypto backend: constructors for the three key kinds.
pub trait Backend: Send + Sync + 'static {
    /// AES-GCM key type.
    type Aead: AeadKey;
    /// AES-CBC key type.
    type Cbc: CbcKey;
    /// HMAC key type.
    type Mac: MacKey;

    /// An AES-GCM key from 16, 24 or 32 bytes.
    fn aead_key(key: &[u8]) -> Result<Self::Aead, BackendError>;
    /// An AES-CBC key from 16, 24 or 32 bytes.
    fn cbc_key(key: &[u8]) -> Result<Self::Cbc, BackendError>;
    /// An HMAC key for `alg` (any key length; ESP uses the hash output length).
    fn mac_key(alg: Integrity, key: &[u8]) -> Result<Self::Mac, BackendError>;
}

/// The default backend: `aws-lc-rs` (AES-NI/VAES + CLMUL assembly on x86-64).
#[derive(Clone, Copy, Debug, Default)]
pub struct AwsLc;

/// `aws-lc-rs` AES-GCM key.
pub struct AwsLcAead(aws_lc_rs::aead::LessSafeKey);

/// `aws-lc-rs` AES-CBC key (both expanded schedules).
pub struct AwsLcCbc {
    enc: aws_lc_rs::cipher::EncryptingKey,
    dec: aws_lc_rs::cipher::DecryptingKey,
}

/// `aws-lc-rs` HMAC key.
pub struct AwsLcMac(aws_lc_rs::hmac::Key);

impl core::fmt::Debug for AwsLcAead {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("AwsLcAead(<redacted>)")
    }
}
impl core::fmt::Debug for AwsLcCbc {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("AwsLcCbc(<redacted>)")
    }
}
impl core::fmt::Debug for AwsLcMac {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("AwsLcMac(<redacted>)")
    }
}

impl AeadKey for AwsLcAead {
    #[inline]
    fn seal_in_place(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &mut [u8; GCM_TAG_LEN],
    ) -> Result<(), BackendError> {
        use aws_lc_rs::aead::{Aad, Nonce};
        let t = self
            .0
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                in_out,
            )
            .map_err(|_| BackendError)?;
        let t = t.as_ref();
        if t.len() != GCM_TAG_LEN {
            return Err(BackendError);
        }
        tag.copy_from_slice(t);
        Ok(())
    }

    #[inline]
    fn open_in_place(
        &self,
        nonce: &[u8; GCM_NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &[u8; GCM_TAG_LEN],
    ) -> Result<(), BackendError> {
        use aws_lc_rs::aead::{Aad, Nonce};
        self.0
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                tag,
                in_out,
            )
            .map(|_| ())
            .map_err(|_| BackendError)
    }
}

impl CbcKey for AwsLcCbc {
    #[inline]
    fn encrypt_in_place(
        &self,
        iv: &[u8; CBC_IV_LEN],
        in_out: &mut [u8],
    ) -> Result<(), BackendError> {
        use aws_lc_rs::cipher::EncryptionContext;
        use aws_lc_rs::iv::FixedLength;
        self.enc
            .less_safe_encrypt(in_out, EncryptionContext::Iv128(FixedLength::from(*iv)))
            .map(|_| ())
            .map_err(|_| BackendError)
    }

    #[inline]
    fn decrypt_in_place(
        &self,
        iv: &[u8; CBC_IV_LEN],
        in_out: &mut [u8],
    ) -> Result<(), BackendError> {
        use aws_lc_rs::cipher::DecryptionContext;
        use aws_lc_rs::iv::FixedLength;
        self.dec
            .decrypt(in_out, DecryptionContext::Iv128(FixedLength::from(*iv)))
            .map(|_| ())
            .map_err(|_| BackendError)
    }
}

impl MacKey for AwsLcMac {
    #[inline]
    fn sign(&self, parts: &[&[u8]], out: &mut [u8; MAX_MAC_LEN]) -> Result<usize, BackendError> {
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&self.0);
        for p in parts {
            ctx.update(p);
        }
        let tag = ctx.sign();
        let tag = tag.as_ref();
        let dst = out.get_mut(..tag.len()).ok_or(BackendError)?;
        dst.copy_from_slice(tag);
        Ok(tag.len())
    }
}

fn aes_gcm_alg(len: usize) -> Result<&'static aws_lc_rs::aead::Algorithm, BackendError> {
    Ok(match len {
        16 => &aws_lc_rs::aead::AES_128_GCM,
        24 => &aws_lc_rs::aead::AES_192_GCM,
        32 => &aws_lc_rs::aead::AES_256_GCM,
        _ => return Err(BackendError),
    })
}

fn aes_alg(len: usize) -> Result<&'static aws_lc_rs::cipher::Algorithm, BackendError> {
    Ok(match len {
        16 => &aws_lc_rs::cipher::AES_128,
        24 => &aws_lc_rs::cipher::AES_192,
        32 => &aws_lc_rs::cipher::AES_256,
        _ => return Err(BackendError),
    })
}

impl Backend for AwsLc {
    type Aead = AwsLcAead;
    type Cbc = AwsLcCbc;
    type Mac = AwsLcMac;

    fn aead_key(key: &[u8]) -> Result<AwsLcAead, BackendError> {
        let alg = aes_gcm_alg(key.len())?;
        let k = aws_lc_rs::aead::UnboundKey::new(alg, key).map_err(|_| BackendError)?;
        Ok(AwsLcAead(aws_lc_rs::aead::LessSafeKey::new(k)))
    }

    fn cbc_key(key: &[u8]) -> Result<AwsLcCbc, BackendError> {
        use aws_lc_rs::cipher::{DecryptingKey, EncryptingKey, UnboundCipherKey};
        let alg = aes_alg(key.len())?;
        let enc = EncryptingKey::cbc(UnboundCipherKey::new(alg, key).map_err(|_| BackendError)?)
            .map_err(|_| BackendError)?;
        let dec = DecryptingKey::cbc(UnboundCipherKey::new(alg, key).map_err(|_| BackendError)?)
            .map_err(|_| BackendError)?;
        Ok(AwsLcCbc { enc, dec })
    }

    fn mac_key(alg: Integrity, key: &[u8]) -> Result<AwsLcMac, BackendError> {
        use aws_lc_rs::hmac;
        let a = match alg {
            Integrity::HmacSha1_96 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Integrity::HmacSha256_128 => hmac::HMAC_SHA256,
            Integrity::HmacSha384_192 => hmac::HMAC_SHA384,
            Integrity::HmacSha512_256 => hmac::HMAC_SHA512,
        };
        Ok(AwsLcMac(hmac::Key::new(a, key)))
    }
}
