//! Negotiated algorithms, named by their IKEv2 transform IDs (RFC 7296 §3.3.2, IANA
//! "IKEv2 Parameters"), and the key lengths they imply.

use super::dh::DhGroup;
use super::prf::Prf;
use super::CryptoError;

/// Encryption algorithm (transform type 1) supported for the SK payload and for ESP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encr {
    /// ENCR_AES_CBC (12), RFC 3602: 16-byte IV, needs an integrity algorithm.
    AesCbc,
    /// ENCR_AES_GCM_16 (20), RFC 5282 / RFC 4106: 8-byte IV, 4-byte salt, 16-byte ICV.
    AesGcm16,
}

impl Encr {
    /// IKEv2 transform ID.
    pub const fn id(self) -> u16 {
        match self {
            Encr::AesCbc => 12,
            Encr::AesGcm16 => 20,
        }
    }

    /// The algorithm for a transform ID, if supported.
    pub const fn from_id(id: u16) -> Option<Self> {
        match id {
            12 => Some(Encr::AesCbc),
            20 => Some(Encr::AesGcm16),
            _ => None,
        }
    }

    /// Whether this is a combined-mode (AEAD) cipher: then no integrity transform is used.
    pub const fn is_aead(self) -> bool {
        matches!(self, Encr::AesGcm16)
    }

    /// Whether `bits` is an acceptable Key Length attribute (128, 192 or 256).
    pub const fn valid_key_bits(self, bits: u16) -> bool {
        matches!(bits, 128 | 192 | 256)
    }

    /// Bytes of keying material taken from `prf+` for this cipher: the AES key, plus the
    /// 4-byte salt for AES-GCM (RFC 5282 §7.1, RFC 4106 §8.1).
    pub const fn keymat_len(self, key_bits: u16) -> usize {
        let key = key_bits as usize / 8;
        match self {
            Encr::AesCbc => key,
            Encr::AesGcm16 => key + 4,
        }
    }

    /// Length of the explicit IV carried in each message (16 for CBC, 8 for GCM).
    pub const fn iv_len(self) -> usize {
        match self {
            Encr::AesCbc => 16,
            Encr::AesGcm16 => 8,
        }
    }
}

/// Integrity algorithm (transform type 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Integ {
    /// AUTH_HMAC_SHA1_96 (2), RFC 2404.
    HmacSha1_96,
    /// AUTH_HMAC_SHA2_256_128 (12), RFC 4868.
    HmacSha256_128,
    /// AUTH_HMAC_SHA2_384_192 (13), RFC 4868.
    HmacSha384_192,
    /// AUTH_HMAC_SHA2_512_256 (14), RFC 4868.
    HmacSha512_256,
}

impl Integ {
    /// IKEv2 transform ID.
    pub const fn id(self) -> u16 {
        match self {
            Integ::HmacSha1_96 => 2,
            Integ::HmacSha256_128 => 12,
            Integ::HmacSha384_192 => 13,
            Integ::HmacSha512_256 => 14,
        }
    }

    /// The algorithm for a transform ID, if supported.
    pub const fn from_id(id: u16) -> Option<Self> {
        match id {
            2 => Some(Integ::HmacSha1_96),
            12 => Some(Integ::HmacSha256_128),
            13 => Some(Integ::HmacSha384_192),
            14 => Some(Integ::HmacSha512_256),
            _ => None,
        }
    }

    /// Key length in bytes (the hash output length, RFC 2404 §3, RFC 4868 §2.1.1).
    pub const fn key_len(self) -> usize {
        match self {
            Integ::HmacSha1_96 => 20,
            Integ::HmacSha256_128 => 32,
            Integ::HmacSha384_192 => 48,
            Integ::HmacSha512_256 => 64,
        }
    }

    /// Length of the truncated ICV on the wire.
    pub const fn icv_len(self) -> usize {
        match self {
            Integ::HmacSha1_96 => 12,
            Integ::HmacSha256_128 => 16,
            Integ::HmacSha384_192 => 24,
            Integ::HmacSha512_256 => 32,
        }
    }

    /// The HMAC algorithm behind it.
    pub(crate) fn hmac_algorithm(self) -> aws_lc_rs::hmac::Algorithm {
        use aws_lc_rs::hmac;
        match self {
            Integ::HmacSha1_96 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Integ::HmacSha256_128 => hmac::HMAC_SHA256,
            Integ::HmacSha384_192 => hmac::HMAC_SHA384,
            Integ::HmacSha512_256 => hmac::HMAC_SHA512,
        }
    }
}

/// Checks an encryption/integrity combination: AEAD without integrity, CBC with one,
/// key length 128/192/256.
pub fn check_cipher(encr: Encr, key_bits: u16, integ: Option<Integ>) -> Result<(), CryptoError> {
    if !encr.valid_key_bits(key_bits) {
        return Err(CryptoError::Unsupported("AES key length"));
    }
    match (encr.is_aead(), integ) {
        (true, Some(_)) => Err(CryptoError::Unsupported(
            "integrity transform with a combined-mode cipher",
        )),
        (false, None) => Err(CryptoError::Unsupported(
            "AES-CBC without integrity transform",
        )),
        _ => Ok(()),
    }
}

/// The negotiated IKE SA suite (one transform of each type from the chosen proposal).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IkeSuite {
    /// Encryption transform.
    pub encr: Encr,
    /// Key Length attribute of the encryption transform, in bits.
    pub key_bits: u16,
    /// Integrity transform; `None` with AES-GCM.
    pub integ: Option<Integ>,
    /// Pseudo-random function.
    pub prf: Prf,
    /// Diffie-Hellman group.
    pub dh: DhGroup,
}

impl IkeSuite {
    /// Checks the combination (see [`check_cipher`]).
    pub fn validate(&self) -> Result<(), CryptoError> {
        check_cipher(self.encr, self.key_bits, self.integ)
    }

    /// Length of SK_ei / SK_er in bytes (including the GCM salt).
    pub fn encr_key_len(&self) -> usize {
        self.encr.keymat_len(self.key_bits)
    }

    /// Length of SK_ai / SK_ar in bytes (0 with AES-GCM).
    pub fn integ_key_len(&self) -> usize {
        self.integ.map_or(0, Integ::key_len)
    }

    /// Length of SK_d, SK_pi and SK_pr: the PRF's preferred key length (RFC 7296 §2.14).
    pub fn prf_key_len(&self) -> usize {
        self.prf.key_len()
    }
}

/// The negotiated Child SA (ESP) suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChildSuite {
    /// Encryption transform.
    pub encr: Encr,
    /// Key Length attribute, bits.
    pub key_bits: u16,
    /// Integrity transform; `None` with AES-GCM.
    pub integ: Option<Integ>,
    /// PFS group for CREATE_CHILD_SA, if any.
    pub dh: Option<DhGroup>,
}

impl ChildSuite {
    /// Checks the combination (see [`check_cipher`]).
    pub fn validate(&self) -> Result<(), CryptoError> {
        check_cipher(self.encr, self.key_bits, self.integ)
    }

    /// Encryption key bytes per direction (including the GCM salt).
    pub fn encr_key_len(&self) -> usize {
        self.encr.keymat_len(self.key_bits)
    }

    /// Integrity key bytes per direction (0 with AES-GCM).
    pub fn integ_key_len(&self) -> usize {
        self.integ.map_or(0, Integ::key_len)
    }
}
