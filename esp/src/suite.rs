//! Cipher suites an ESP SA can use, with their wire sizes.
//!
//! Only the combinations Azure VPN Gateway and strongSwan negotiate are offered:
//! AES-GCM with a 16-byte ICV (RFC 4106) and AES-CBC with an HMAC (RFC 3602, RFC 2404,
//! RFC 4868). A combined-mode cipher never has a separate integrity algorithm and a
//! CBC cipher always has one: ESP without integrity is not offered.

use core::fmt;

/// Encryption algorithm of an SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encryption {
    /// AES-GCM with a 16-byte ICV (RFC 4106, IKEv2 transform ENCR_AES_GCM_16 = 20).
    AesGcm16 {
        /// Key length in bits: 128, 192 or 256.
        key_bits: u16,
    },
    /// AES-CBC (RFC 3602, IKEv2 transform ENCR_AES_CBC = 12).
    AesCbc {
        /// Key length in bits: 128, 192 or 256.
        key_bits: u16,
    },
}

/// Integrity algorithm of an SA (only with AES-CBC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Integrity {
    /// HMAC-SHA1-96 (RFC 2404, AUTH_HMAC_SHA1_96 = 2).
    HmacSha1_96,
    /// HMAC-SHA-256-128 (RFC 4868, AUTH_HMAC_SHA2_256_128 = 12).
    HmacSha256_128,
    /// HMAC-SHA-384-192 (RFC 4868, AUTH_HMAC_SHA2_384_192 = 13).
    HmacSha384_192,
    /// HMAC-SHA-512-256 (RFC 4868, AUTH_HMAC_SHA2_512_256 = 14).
    HmacSha512_256,
}

impl Integrity {
    /// Length of the truncated ICV on the wire.
    pub const fn icv_len(self) -> usize {
        match self {
            Integrity::HmacSha1_96 => 12,
            Integrity::HmacSha256_128 => 16,
            Integrity::HmacSha384_192 => 24,
            Integrity::HmacSha512_256 => 32,
        }
    }

    /// Key length in bytes (the full hash output, RFC 2404 §3 and RFC 4868 §2.1.1).
    pub const fn key_len(self) -> usize {
        match self {
            Integrity::HmacSha1_96 => 20,
            Integrity::HmacSha256_128 => 32,
            Integrity::HmacSha384_192 => 48,
            Integrity::HmacSha512_256 => 64,
        }
    }

    /// IKEv2 transform ID (RFC 7296 §3.3.2, IANA "Transform Type 3").
    pub const fn transform_id(self) -> u16 {
        match self {
            Integrity::HmacSha1_96 => 2,
            Integrity::HmacSha256_128 => 12,
            Integrity::HmacSha384_192 => 13,
            Integrity::HmacSha512_256 => 14,
        }
    }

    /// The integrity algorithm for an IKEv2 transform ID, if ESP supports it.
    pub const fn from_transform_id(id: u16) -> Option<Self> {
        Some(match id {
            2 => Integrity::HmacSha1_96,
            12 => Integrity::HmacSha256_128,
            13 => Integrity::HmacSha384_192,
            14 => Integrity::HmacSha512_256,
            _ => return None,
        })
    }
}

/// A complete, valid ESP cipher suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Suite {
    encryption: Encryption,
    integrity: Option<Integrity>,
}

/// Why a suite or its keys were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SuiteError {
    /// AES key lengths are 128, 192 or 256 bits.
    #[error("unsupported AES key length {0} bits")]
    KeyBits(u16),
    /// AES-GCM carries its own ICV: a separate integrity algorithm is not allowed.
    #[error("AES-GCM must not be combined with an integrity algorithm")]
    AeadWithIntegrity,
    /// AES-CBC without integrity is not offered (RFC 8221 §5).
    #[error("AES-CBC needs an integrity algorithm")]
    CbcWithoutIntegrity,
    /// The key material does not have the length the suite needs.
    #[error("key material is {got} bytes, the suite needs {want}")]
    KeyLength {
        /// Bytes given.
        got: usize,
        /// Bytes the suite needs.
        want: usize,
    },
    /// The crypto backend refused the key.
    #[error("the crypto backend refused the key")]
    Backend,
}

impl Suite {
    /// Validates and builds a suite.
    pub const fn new(
        encryption: Encryption,
        integrity: Option<Integrity>,
    ) -> Result<Self, SuiteError> {
        let bits = match encryption {
            Encryption::AesGcm16 { key_bits } | Encryption::AesCbc { key_bits } => key_bits,
        };
        if !matches!(bits, 128 | 192 | 256) {
            return Err(SuiteError::KeyBits(bits));
        }
        match (encryption, integrity) {
            (Encryption::AesGcm16 { .. }, Some(_)) => Err(SuiteError::AeadWithIntegrity),
            (Encryption::AesCbc { .. }, None) => Err(SuiteError::CbcWithoutIntegrity),
            _ => Ok(Suite {
                encryption,
                integrity,
            }),
        }
    }

    /// AES-128-GCM, 16-byte ICV.
    pub const AES128_GCM16: Suite = Suite {
        encryption: Encryption::AesGcm16 { key_bits: 128 },
        integrity: None,
    };
    /// AES-256-GCM, 16-byte ICV (Azure's default Child SA suite).
    pub const AES256_GCM16: Suite = Suite {
        encryption: Encryption::AesGcm16 { key_bits: 256 },
        integrity: None,
    };

    /// All suites this crate implements (useful for tests and benchmarks).
    pub fn all() -> impl Iterator<Item = Suite> {
        let gcm = [128u16, 192, 256].into_iter().map(|key_bits| Suite {
            encryption: Encryption::AesGcm16 { key_bits },
            integrity: None,
        });
        let cbc = [128u16, 192, 256].into_iter().flat_map(|key_bits| {
            [
                Integrity::HmacSha1_96,
                Integrity::HmacSha256_128,
                Integrity::HmacSha384_192,
                Integrity::HmacSha512_256,
            ]
            .into_iter()
            .map(move |i| Suite {
                encryption: Encryption::AesCbc { key_bits },
                integrity: Some(i),
            })
        });
        gcm.chain(cbc)
    }

    /// The encryption algorithm.
    pub const fn encryption(&self) -> Encryption {
        self.encryption
    }

    /// The integrity algorithm (`None` for AES-GCM).
    pub const fn integrity(&self) -> Option<Integrity> {
        self.integrity
    }

    /// True for AES-GCM.
    pub const fn is_aead(&self) -> bool {
        matches!(self.encryption, Encryption::AesGcm16 { .. })
    }

    /// AES key length in bytes.
    pub const fn aes_key_len(&self) -> usize {
        match self.encryption {
            Encryption::AesGcm16 { key_bits } | Encryption::AesCbc { key_bits } => {
                key_bits as usize / 8
            }
        }
    }

    /// Length of the encryption key material: the AES key, plus the 4-byte salt for
    /// AES-GCM (RFC 4106 §8.1: the salt is the last four octets of the keying material).
    pub const fn encryption_keymat_len(&self) -> usize {
        match self.encryption {
            Encryption::AesGcm16 { .. } => self.aes_key_len() + 4,
            Encryption::AesCbc { .. } => self.aes_key_len(),
        }
    }

    /// Length of the integrity key material (0 for AES-GCM).
    pub const fn integrity_keymat_len(&self) -> usize {
        match self.integrity {
            Some(i) => i.key_len(),
            None => 0,
        }
    }

    /// Length of the IV that follows the ESP header: 8 for GCM (RFC 4106 §3.1), 16 for
    /// CBC (RFC 3602 §3).
    pub const fn iv_len(&self) -> usize {
        match self.encryption {
            Encryption::AesGcm16 { .. } => 8,
            Encryption::AesCbc { .. } => 16,
        }
    }

    /// Length of the ICV at the end of the packet.
    pub const fn icv_len(&self) -> usize {
        match self.integrity {
            Some(i) => i.icv_len(),
            None => 16,
        }
    }

    /// The payload + padding + 2 trailer bytes must be a multiple of this (RFC 4303 §2.4:
    /// the cipher's block size, and at least 4 for the alignment of the ICV).
    pub const fn pad_align(&self) -> usize {
        match self.encryption {
            Encryption::AesGcm16 { .. } => 4,
            Encryption::AesCbc { .. } => 16,
        }
    }

    /// Bytes in front of the payload: SPI, sequence number and IV.
    pub const fn header_len(&self) -> usize {
        crate::ESP_HEADER_LEN + self.iv_len()
    }

    /// Bytes of padding for a payload of `payload_len` bytes.
    pub const fn pad_len(&self, payload_len: usize) -> usize {
        let align = self.pad_align();
        (align - (payload_len + 2) % align) % align
    }

    /// Bytes behind the payload: padding, pad length, next header and ICV.
    pub const fn trailer_len(&self, payload_len: usize) -> usize {
        self.pad_len(payload_len) + 2 + self.icv_len()
    }

    /// The most trailer bytes any payload can need (size buffers' tailroom with this).
    pub const fn max_trailer_len(&self) -> usize {
        self.pad_align() - 1 + 2 + self.icv_len()
    }

    /// Total ESP overhead for a payload of `payload_len` bytes.
    pub const fn overhead(&self, payload_len: usize) -> usize {
        self.header_len() + self.trailer_len(payload_len)
    }
}

impl fmt::Display for Suite {
    /// strongSwan's proposal keyword, e.g. `aes256gcm16` or `aes128-sha256`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.encryption {
            Encryption::AesGcm16 { key_bits } => write!(f, "aes{key_bits}gcm16")?,
            Encryption::AesCbc { key_bits } => write!(f, "aes{key_bits}")?,
        }
        match self.integrity {
            None => Ok(()),
            Some(Integrity::HmacSha1_96) => f.write_str("-sha1"),
            Some(Integrity::HmacSha256_128) => f.write_str("-sha256"),
            Some(Integrity::HmacSha384_192) => f.write_str("-sha384"),
            Some(Integrity::HmacSha512_256) => f.write_str("-sha512"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_aligns_payload_and_trailer() {
        for suite in Suite::all() {
            for len in 0..100 {
                let total = len + suite.pad_len(len) + 2;
                assert_eq!(total % suite.pad_align(), 0, "{suite} len {len}");
                assert!(suite.pad_len(len) < suite.pad_align());
                assert!(suite.trailer_len(len) <= suite.max_trailer_len());
            }
        }
    }

    #[test]
    fn invalid_suites_are_refused() {
        assert_eq!(
            Suite::new(
                Encryption::AesGcm16 { key_bits: 256 },
                Some(Integrity::HmacSha1_96)
            ),
            Err(SuiteError::AeadWithIntegrity)
        );
        assert_eq!(
            Suite::new(Encryption::AesCbc { key_bits: 128 }, None),
            Err(SuiteError::CbcWithoutIntegrity)
        );
        assert_eq!(
            Suite::new(
                Encryption::AesCbc { key_bits: 100 },
                Some(Integrity::HmacSha1_96)
            ),
            Err(SuiteError::KeyBits(100))
        );
        assert_eq!(Suite::all().count(), 15);
        assert_eq!(Suite::AES256_GCM16.to_string(), "aes256gcm16");
    }
}
