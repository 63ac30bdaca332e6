//! Diffie-Hellman groups (transform type 4): MODP groups 2, 14, 15, 24 (crypto-bigint,
//! constant-time exponentiation), ECP groups 19, 20 and Curve25519 (aws-lc).
//!
//! Public values use the IKEv2 encodings: MODP values left-padded to the prime's length
//! (RFC 7296 §3.4), ECP values `x || y` without the SEC1 `0x04` prefix (RFC 5903 §7),
//! X25519 the 32-byte u-coordinate (RFC 8031 §3). Shared secrets keep their leading
//! zeros (full group length, RFC 7296 §2.14, RFC 5903 §7).

use core::fmt;
use std::sync::OnceLock;

use aws_lc_rs::agreement;
use crypto_bigint::modular::{FixedMontyForm, FixedMontyParams};
use crypto_bigint::{Odd, Uint, U1024, U2048, U256, U3072, U512};
use zeroize::{Zeroize, Zeroizing};

use super::modp_params::*;
use super::{Rng, Secret};

/// A Diffie-Hellman group, by IANA "Transform Type 4" ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DhGroup {
    /// 2: 1024-bit MODP (RFC 2409 §6.2). Weak: accept only for legacy peers.
    Modp1024,
    /// 14: 2048-bit MODP (RFC 3526 §3).
    Modp2048,
    /// 15: 3072-bit MODP (RFC 3526 §4).
    Modp3072,
    /// 24: 2048-bit MODP with a 256-bit prime-order subgroup (RFC 5114 §2.3).
    Modp2048s256,
    /// 19: 256-bit random ECP group, NIST P-256 (RFC 5903).
    Ecp256,
    /// 20: 384-bit random ECP group, NIST P-384 (RFC 5903).
    Ecp384,
    /// 31: Curve25519 (RFC 8031).
    Curve25519,
}

impl DhGroup {
    /// Every supported group.
    pub const ALL: [DhGroup; 7] = [
        DhGroup::Modp1024,
        DhGroup::Modp2048,
        DhGroup::Modp3072,
        DhGroup::Modp2048s256,
        DhGroup::Ecp256,
        DhGroup::Ecp384,
        DhGroup::Curve25519,
    ];

    /// IANA transform ID.
    pub const fn id(self) -> u16 {
        match self {
            DhGroup::Modp1024 => 2,
            DhGroup::Modp2048 => 14,
            DhGroup::Modp3072 => 15,
            DhGroup::Modp2048s256 => 24,
            DhGroup::Ecp256 => 19,
            DhGroup::Ecp384 => 20,
            DhGroup::Curve25519 => 31,
        }
    }

    /// The group for a transform ID, if supported.
    pub const fn from_id(id: u16) -> Option<Self> {
        match id {
            2 => Some(DhGroup::Modp1024),
            14 => Some(DhGroup::Modp2048),
            15 => Some(DhGroup::Modp3072),
            24 => Some(DhGroup::Modp2048s256),
            19 => Some(DhGroup::Ecp256),
            20 => Some(DhGroup::Ecp384),
            31 => Some(DhGroup::Curve25519),
            _ => None,
        }
    }

    /// Length of the Key Exchange Data (public value) in bytes.
    pub const fn public_len(self) -> usize {
        match self {
            DhGroup::Modp1024 => 128,
            DhGroup::Modp2048 | DhGroup::Modp2048s256 => 256,
            DhGroup::Modp3072 => 384,
            DhGroup::Ecp256 => 64,
            DhGroup::Ecp384 => 96,
            DhGroup::Curve25519 => 32,
        }
    }

    /// Length of the shared secret g^ir in bytes.
    pub const fn shared_len(self) -> usize {
        match self {
            DhGroup::Ecp256 => 32,
            DhGroup::Ecp384 => 48,
            other => other.public_len(),
        }
    }

    /// Whether this is a finite-field (MODP) group.
    pub const fn is_modp(self) -> bool {
        matches!(
            self,
            DhGroup::Modp1024 | DhGroup::Modp2048 | DhGroup::Modp3072 | DhGroup::Modp2048s256
        )
    }

    /// strongSwan proposal keyword (`modp2048`, `ecp256`, `curve25519`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            DhGroup::Modp1024 => "modp1024",
            DhGroup::Modp2048 => "modp2048",
            DhGroup::Modp3072 => "modp3072",
            DhGroup::Modp2048s256 => "modp2048s256",
            DhGroup::Ecp256 => "ecp256",
            DhGroup::Ecp384 => "ecp384",
            DhGroup::Curve25519 => "curve25519",
        }
    }

    /// The MODP prime p, big-endian, exactly [`DhGroup::public_len`] bytes (public
    /// parameter; `None` for ECP and Curve25519).
    pub fn modp_prime(self) -> Option<Vec<u8>> {
        match self {
            DhGroup::Modp1024 => Some(P1024.to_be_bytes().as_slice().to_vec()),
            DhGroup::Modp2048 => Some(P2048.to_be_bytes().as_slice().to_vec()),
            DhGroup::Modp3072 => Some(P3072.to_be_bytes().as_slice().to_vec()),
            DhGroup::Modp2048s256 => Some(P24.to_be_bytes().as_slice().to_vec()),
            _ => None,
        }
    }

    /// Bits of the random private exponent for MODP groups: 256 for group 2,
    /// 384 for 14 and 15 (twice the estimated strength, like strongSwan), and for group 24
    /// a uniform value in [1, q-1] (256 bits).
    const fn exponent_bits(self) -> u32 {
        match self {
            DhGroup::Modp2048 | DhGroup::Modp3072 => 384,
            _ => 256,
        }
    }

    fn ecdh_algorithm(self) -> Option<&'static agreement::Algorithm> {
        match self {
            DhGroup::Ecp256 => Some(&agreement::ECDH_P256),
            DhGroup::Ecp384 => Some(&agreement::ECDH_P384),
            DhGroup::Curve25519 => Some(&agreement::X25519),
            _ => None,
        }
    }
}

impl fmt::Display for DhGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a key exchange failed. Carries no secret material.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DhError {
    /// The peer's Key Exchange Data does not have the group's length.
    #[error("key exchange data has {got} bytes, group needs {expected}")]
    WrongLength {
        /// Length the group requires.
        expected: usize,
        /// Length received.
        got: usize,
    },
    /// The peer's public value is not a valid group element (RFC 6989: MODP value not in
    /// (1, p-1) or not in the subgroup; ECP point not on the curve).
    #[error("invalid public value")]
    InvalidPublicValue,
    /// X25519 produced the all-zero output (low-order peer point, RFC 8031 §2.3).
    #[error("all-zero shared secret")]
    ZeroSharedSecret,
    /// The private key could not be created (randomness or backend failure), or the
    /// supplied private key bytes are out of range.
    #[error("private key generation failed")]
    KeyGeneration,
}

// ---- MODP ----

const P1024: U1024 = U1024::from_be_hex(MODP_1024_P);
const P2048: U2048 = U2048::from_be_hex(MODP_2048_P);
const P3072: U3072 = U3072::from_be_hex(MODP_3072_P);
const P24: U2048 = U2048::from_be_hex(MODP_2048_256_P);
const G24: U2048 = U2048::from_be_hex(MODP_2048_256_G);
const Q24: U256 = U256::from_be_hex(MODP_2048_256_Q);

/// Largest private exponent: 512 bits (64 bytes).
const MAX_EXP_BYTES: usize = 64;

// Montgomery parameters, computed once per process (public values).
static PARAMS_1024: OnceLock<FixedMontyParams<{ U1024::LIMBS }>> = OnceLock::new();
static PARAMS_2048: OnceLock<FixedMontyParams<{ U2048::LIMBS }>> = OnceLock::new();
static PARAMS_3072: OnceLock<FixedMontyParams<{ U3072::LIMBS }>> = OnceLock::new();
static PARAMS_24: OnceLock<FixedMontyParams<{ U2048::LIMBS }>> = OnceLock::new();

fn params_1024() -> &'static FixedMontyParams<{ U1024::LIMBS }> {
    PARAMS_1024
        .get_or_init(|| FixedMontyParams::new_vartime(Odd::<U1024>::from_be_hex(MODP_1024_P)))
}

fn params_2048() -> &'static FixedMontyParams<{ U2048::LIMBS }> {
    PARAMS_2048
        .get_or_init(|| FixedMontyParams::new_vartime(Odd::<U2048>::from_be_hex(MODP_2048_P)))
}

fn params_3072() -> &'static FixedMontyParams<{ U3072::LIMBS }> {
    PARAMS_3072
        .get_or_init(|| FixedMontyParams::new_vartime(Odd::<U3072>::from_be_hex(MODP_3072_P)))
}

fn params_24() -> &'static FixedMontyParams<{ U2048::LIMBS }> {
    PARAMS_24
        .get_or_init(|| FixedMontyParams::new_vartime(Odd::<U2048>::from_be_hex(MODP_2048_256_P)))
}

/// `base^exp mod p` with a secret exponent (constant-time in the exponent value;
/// `exp_bits` is public).
fn modpow_secret<const L: usize>(
    params: &FixedMontyParams<L>,
    base: &Uint<L>,
    exp: &U512,
    exp_bits: u32,
) -> Zeroizing<Vec<u8>> {
    let b = FixedMontyForm::new(base, params);
    let mut r = b.pow_bounded_exp(exp, exp_bits).retrieve();
    let mut enc = r.to_be_bytes();
    let out = Zeroizing::new(enc.as_slice().to_vec());
    enc.as_mut_slice().zeroize();
    r.as_mut_words().zeroize();
    out
}

/// Validates a MODP peer value: right length, 1 < y < p-1 (RFC 6989 §2.1), and
/// for a subgroup `q`, y^q = 1 mod p (RFC 6989 §2.2). Variable time: y is public.
fn modp_check_peer<const L: usize>(
    params: &FixedMontyParams<L>,
    q: Option<&U256>,
    peer: &[u8],
) -> Result<Uint<L>, DhError> {
    let expected = Uint::<L>::BYTES;
    if peer.len() != expected {
        return Err(DhError::WrongLength {
            expected,
            got: peer.len(),
        });
    }
    let y = Uint::<L>::from_be_slice(peer);
    let p_minus_1 = params.modulus().as_ref().wrapping_sub(&Uint::ONE);
    if y.cmp_vartime(&Uint::ONE).is_le() || y.cmp_vartime(&p_minus_1).is_ge() {
        return Err(DhError::InvalidPublicValue);
    }
    if let Some(q) = q {
        let r = FixedMontyForm::new(&y, params).pow_vartime(q).retrieve();
        if r.cmp_vartime(&Uint::ONE).is_ne() {
            return Err(DhError::InvalidPublicValue);
        }
    }
    Ok(y)
}

fn u512_from_exp(bytes: &[u8]) -> U512 {
    let mut buf = Zeroizing::new([0u8; MAX_EXP_BYTES]);
    buf[MAX_EXP_BYTES - bytes.len()..].copy_from_slice(bytes);
    U512::from_be_slice(&buf[..])
}

// ---- key pair ----

enum Inner {
    Modp {
        /// Private exponent, big-endian, at most 64 bytes.
        x: Zeroizing<Vec<u8>>,
        public: Vec<u8>,
    },
    Ecdh {
        key: agreement::PrivateKey,
        public: Vec<u8>,
    },
}

/// An ephemeral Diffie-Hellman private key with its public value.
///
/// Create one per exchange with [`DhPrivateKey::generate`]; `Debug` never shows the key.
pub struct DhPrivateKey {
    group: DhGroup,
    inner: Inner,
}

impl fmt::Debug for DhPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DhPrivateKey")
            .field("group", &self.group)
            .field("private", &"<redacted>")
            .finish()
    }
}

impl DhPrivateKey {
    /// Generates a fresh private key from `rng`.
    ///
    /// MODP: a random exponent of [`DhGroup`]'s exponent size (group 24: uniform in
    /// [1, q-1]); ECP: a random scalar (rejection-sampled until aws-lc accepts it);
    /// X25519: 32 random bytes (clamped by aws-lc).
    pub fn generate<R: Rng + ?Sized>(group: DhGroup, rng: &mut R) -> Result<Self, DhError> {
        if group.is_modp() {
            let nbytes = (group.exponent_bits() / 8) as usize;
            let mut x = Zeroizing::new(vec![0u8; nbytes]);
            for _ in 0..128 {
                rng.fill(&mut x);
                if group == DhGroup::Modp2048s256 {
                    let xv = U256::from_be_slice(&x);
                    if xv.cmp_vartime(&U256::ZERO).is_eq() || xv.cmp_vartime(&Q24).is_ge() {
                        continue;
                    }
                } else if x.iter().all(|&b| b == 0) {
                    continue;
                }
                return Self::from_private_bytes(group, &x);
            }
            Err(DhError::KeyGeneration)
        } else {
            let mut k = Zeroizing::new(vec![0u8; alg_private_len(group)]);
            for _ in 0..128 {
                rng.fill(&mut k);
                if let Ok(me) = Self::from_private_bytes(group, &k) {
                    return Ok(me);
                }
            }
            Err(DhError::KeyGeneration)
        }
    }

    /// Builds a key from known private bytes (known-answer tests, deterministic
    /// simulations). MODP: the big-endian exponent (1..=64 bytes, non-zero; group 24:
    /// in [1, q-1]). ECP: the big-endian scalar of the curve's length. X25519: 32 bytes.
    pub fn from_private_bytes(group: DhGroup, private: &[u8]) -> Result<Self, DhError> {
        if group.is_modp() {
            if private.is_empty()
                || private.len() > MAX_EXP_BYTES
                || private.iter().all(|&b| b == 0)
            {
                return Err(DhError::KeyGeneration);
            }
            let mut exp = u512_from_exp(private);
            let bits = (private.len() * 8) as u32;
            let public = match group {
                DhGroup::Modp1024 => modpow_secret(params_1024(), &U1024::from_u8(2), &exp, bits),
                DhGroup::Modp2048 => modpow_secret(params_2048(), &U2048::from_u8(2), &exp, bits),
                DhGroup::Modp3072 => modpow_secret(params_3072(), &U3072::from_u8(2), &exp, bits),
                _ => {
                    if private.len() > 32 {
                        return Err(DhError::KeyGeneration);
                    }
                    let mut b = Zeroizing::new([0u8; 32]);
                    b[32 - private.len()..].copy_from_slice(private);
                    let xv = U256::from_be_slice(&b[..]);
                    if xv.cmp_vartime(&Q24).is_ge() {
                        return Err(DhError::KeyGeneration);
                    }
                    modpow_secret(params_24(), &G24, &exp, bits)
                }
            };
            exp.as_mut_words().zeroize();
            Ok(DhPrivateKey {
                group,
                inner: Inner::Modp {
                    x: Zeroizing::new(private.to_vec()),
                    public: public.to_vec(),
                },
            })
        } else {
            let alg = group.ecdh_algorithm().ok_or(DhError::KeyGeneration)?;
            let key = agreement::PrivateKey::from_private_key(alg, private)
                .map_err(|_| DhError::KeyGeneration)?;
            let pk = key
                .compute_public_key()
                .map_err(|_| DhError::KeyGeneration)?;
            let raw = pk.as_ref();
            let public = if group == DhGroup::Curve25519 {
                raw.to_vec()
            } else {
                // SEC1 uncompressed 0x04 || x || y -> x || y (RFC 5903 §7).
                match raw.split_first() {
                    Some((0x04, xy)) if xy.len() == group.public_len() => xy.to_vec(),
                    _ => return Err(DhError::KeyGeneration),
                }
            };
            Ok(DhPrivateKey {
                group,
                inner: Inner::Ecdh { key, public },
            })
        }
    }

    /// The group.
    pub fn group(&self) -> DhGroup {
        self.group
    }

    /// The public value (Key Exchange Data), exactly [`DhGroup::public_len`] bytes.
    pub fn public_value(&self) -> Vec<u8> {
        match &self.inner {
            Inner::Modp { public, .. } | Inner::Ecdh { public, .. } => public.clone(),
        }
    }

    /// Computes g^ir from the peer's Key Exchange Data, after validating it.
    /// The result is [`DhGroup::shared_len`] bytes, leading zeros kept.
    pub fn shared_secret(&self, peer: &[u8]) -> Result<Secret, DhError> {
        let expected = self.group.public_len();
        if peer.len() != expected {
            return Err(DhError::WrongLength {
                expected,
                got: peer.len(),
            });
        }
        match &self.inner {
            Inner::Modp { x, .. } => {
                let mut exp = u512_from_exp(x);
                let bits = (x.len() * 8) as u32;
                let z = match self.group {
                    DhGroup::Modp1024 => {
                        let y = modp_check_peer(params_1024(), None, peer)?;
                        modpow_secret(params_1024(), &y, &exp, bits)
                    }
                    DhGroup::Modp2048 => {
                        let y = modp_check_peer(params_2048(), None, peer)?;
                        modpow_secret(params_2048(), &y, &exp, bits)
                    }
                    DhGroup::Modp3072 => {
                        let y = modp_check_peer(params_3072(), None, peer)?;
                        modpow_secret(params_3072(), &y, &exp, bits)
                    }
                    _ => {
                        let y = modp_check_peer(params_24(), Some(&Q24), peer)?;
                        modpow_secret(params_24(), &y, &exp, bits)
                    }
                };
                exp.as_mut_words().zeroize();
                Ok(Secret::new(&z))
            }
            Inner::Ecdh { key, .. } => {
                let alg = key.algorithm();
                let mut encoded = Vec::with_capacity(peer.len() + 1);
                if self.group != DhGroup::Curve25519 {
                    encoded.push(0x04);
                }
                encoded.extend_from_slice(peer);
                let z = agreement::agree(
                    key,
                    agreement::UnparsedPublicKey::new(alg, &encoded),
                    DhError::InvalidPublicValue,
                    |z| Ok(Secret::new(z)),
                )?;
                if z.len() != self.group.shared_len() {
                    return Err(DhError::InvalidPublicValue);
                }
                if z.as_bytes().iter().fold(0u8, |acc, &b| acc | b) == 0 {
                    return Err(DhError::ZeroSharedSecret);
                }
                Ok(z)
            }
        }
    }
}

fn alg_private_len(group: DhGroup) -> usize {
    match group {
        DhGroup::Ecp384 => 48,
        _ => 32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group24_generator_has_order_q() {
        let params = params_24();
        let r = FixedMontyForm::new(&G24, params)
            .pow_vartime(&Q24)
            .retrieve();
        assert_eq!(r, U2048::ONE);
        // and g itself is not 1
        assert_ne!(G24, U2048::ONE);
    }

    #[test]
    fn safe_primes_have_generator_2_of_order_q() {
        // For the RFC 2409/3526 safe primes p = 2q + 1, 2 generates the subgroup of order
        // q = (p-1)/2: 2^((p-1)/2) = 1 mod p (2 is a quadratic residue since p = 7 mod 8).
        fn check<const L: usize>(params: &FixedMontyParams<L>) {
            let q = params
                .modulus()
                .as_ref()
                .wrapping_sub(&Uint::ONE)
                .shr_vartime(1);
            let r = FixedMontyForm::new(&Uint::<L>::from_u8(2), params)
                .pow_vartime(&q)
                .retrieve();
            assert_eq!(r, Uint::<L>::ONE);
        }
        check(params_1024());
        check(params_2048());
        check(params_3072());
    }
}
