//! The IKEv2 key schedule: SKEYSEED and the seven SK_* keys (RFC 7296 §2.14), IKE SA
//! rekeying (§2.18) and Child SA KEYMAT (§2.17).

use core::fmt;

use super::sk::SkCipher;
use super::suite::{ChildSuite, IkeSuite};
use super::{CryptoError, Prf, Secret};

/// `SKEYSEED = prf(Ni | Nr, g^ir)` (RFC 7296 §2.14). The nonces are the full Nonce
/// Data of each side.
pub fn skeyseed(prf: Prf, ni: &[u8], nr: &[u8], g_ir: &Secret) -> Secret {
    let mut key = zeroize::Zeroizing::new(Vec::with_capacity(ni.len() + nr.len()));
    key.extend_from_slice(ni);
    key.extend_from_slice(nr);
    prf.prf(&key, g_ir.as_bytes())
}

/// SKEYSEED for a rekeyed IKE SA: `prf(SK_d (old), g^ir (new) | Ni | Nr)` (RFC 7296
/// §2.18). `prf` is the PRF of the *old* IKE SA; Ni/Nr are the CREATE_CHILD_SA nonces.
pub fn skeyseed_rekey(prf: Prf, old_sk_d: &Secret, g_ir: &Secret, ni: &[u8], nr: &[u8]) -> Secret {
    prf.prf_parts(old_sk_d.as_bytes(), &[g_ir.as_bytes(), ni, nr])
}

/// The seven IKE SA keys. `Debug` prints lengths only.
#[derive(Clone)]
pub struct IkeKeys {
    /// The suite these keys are for.
    pub suite: IkeSuite,
    /// SK_d: keys Child SAs and IKE rekeys.
    pub sk_d: Secret,
    /// SK_ai: integrity key initiator→responder (empty with AES-GCM).
    pub sk_ai: Secret,
    /// SK_ar: integrity key responder→initiator (empty with AES-GCM).
    pub sk_ar: Secret,
    /// SK_ei: encryption key initiator→responder (AES key, then the 4-byte salt for GCM).
    pub sk_ei: Secret,
    /// SK_er: encryption key responder→initiator.
    pub sk_er: Secret,
    /// SK_pi: the initiator's AUTH key.
    pub sk_pi: Secret,
    /// SK_pr: the responder's AUTH key.
    pub sk_pr: Secret,
}

impl fmt::Debug for IkeKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IkeKeys")
            .field("suite", &self.suite)
            .field("keys", &"<redacted>")
            .finish()
    }
}

impl IkeKeys {
    /// `{SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} =
    /// prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)` (RFC 7296 §2.14).
    pub fn derive(
        suite: &IkeSuite,
        skeyseed: &Secret,
        ni: &[u8],
        nr: &[u8],
        spi_i: &[u8; 8],
        spi_r: &[u8; 8],
    ) -> Result<IkeKeys, CryptoError> {
        suite.validate()?;
        let d = suite.prf_key_len();
        let a = suite.integ_key_len();
        let e = suite.encr_key_len();
        let total = 3 * d + 2 * a + 2 * e;
        let km = suite.prf.prf_plus_parts(
            skeyseed.as_bytes(),
            &[ni, nr, &spi_i[..], &spi_r[..]],
            total,
        )?;
        let mut rest = km.as_bytes();
        let mut take = |n: usize| {
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Secret::new(head)
        };
        Ok(IkeKeys {
            suite: *suite,
            sk_d: take(d),
            sk_ai: take(a),
            sk_ar: take(a),
            sk_ei: take(e),
            sk_er: take(e),
            sk_pi: take(d),
            sk_pr: take(d),
        })
    }

    /// Initial IKE SA: `derive(skeyseed(prf, Ni, Nr, g^ir), ...)` in one call.
    pub fn initial(
        suite: &IkeSuite,
        g_ir: &Secret,
        ni: &[u8],
        nr: &[u8],
        spi_i: &[u8; 8],
        spi_r: &[u8; 8],
    ) -> Result<IkeKeys, CryptoError> {
        let seed = skeyseed(suite.prf, ni, nr, g_ir);
        Self::derive(suite, &seed, ni, nr, spi_i, spi_r)
    }

    /// Keys of a rekeyed IKE SA (RFC 7296 §2.18): SKEYSEED from this (old) SA's SK_d
    /// and PRF, the seven keys with the `new_suite` and the new SPIs.
    #[allow(clippy::too_many_arguments)]
    pub fn rekey(
        &self,
        new_suite: &IkeSuite,
        g_ir: &Secret,
        ni: &[u8],
        nr: &[u8],
        spi_i: &[u8; 8],
        spi_r: &[u8; 8],
    ) -> Result<IkeKeys, CryptoError> {
        let seed = skeyseed_rekey(self.suite.prf, &self.sk_d, g_ir, ni, nr);
        Self::derive(new_suite, &seed, ni, nr, spi_i, spi_r)
    }

    /// SK payload protection initiator→responder (SK_ei, SK_ai).
    pub fn cipher_i2r(&self) -> Result<SkCipher, CryptoError> {
        SkCipher::new(
            self.suite.encr,
            self.suite.key_bits,
            self.suite.integ,
            self.sk_ei.as_bytes(),
            self.sk_ai.as_bytes(),
        )
    }

    /// SK payload protection responder→initiator (SK_er, SK_ar).
    pub fn cipher_r2i(&self) -> Result<SkCipher, CryptoError> {
        SkCipher::new(
            self.suite.encr,
            self.suite.key_bits,
            self.suite.integ,
            self.sk_er.as_bytes(),
            self.sk_ar.as_bytes(),
        )
    }

    /// `(outbound, inbound)` ciphers for our role.
    pub fn ciphers(&self, we_are_initiator: bool) -> Result<(SkCipher, SkCipher), CryptoError> {
        let (i2r, r2i) = (self.cipher_i2r()?, self.cipher_r2i()?);
        Ok(if we_are_initiator {
            (i2r, r2i)
        } else {
            (r2i, i2r)
        })
    }

    /// Our AUTH key (SK_pi if we are the initiator, else SK_pr).
    pub fn sk_p(&self, initiator: bool) -> &Secret {
        if initiator {
            &self.sk_pi
        } else {
            &self.sk_pr
        }
    }
}

/// Keys of one Child SA (ESP), both directions. `Debug` prints lengths only.
#[derive(Clone)]
pub struct ChildKeys {
    /// Encryption key initiator→responder (AES key, then the 4-byte salt for GCM).
    pub encr_i2r: Secret,
    /// Integrity key initiator→responder (empty with AES-GCM).
    pub integ_i2r: Secret,
    /// Encryption key responder→initiator.
    pub encr_r2i: Secret,
    /// Integrity key responder→initiator.
    pub integ_r2i: Secret,
}

impl fmt::Debug for ChildKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ChildKeys(<redacted>, encr {} + integ {} bytes per direction)",
            self.encr_i2r.len(),
            self.integ_i2r.len()
        )
    }
}

impl ChildKeys {
    /// `KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr)` (RFC 7296 §2.17), split as
    /// initiator→responder encryption, integrity, then responder→initiator encryption,
    /// integrity (RFC 7296 §2.17, RFC 4106 §8.1 / RFC 5282 for the GCM salt).
    ///
    /// `ni`/`nr`: the IKE_AUTH case uses the IKE_SA_INIT nonces, CREATE_CHILD_SA its own.
    pub fn derive(
        prf: Prf,
        sk_d: &Secret,
        g_ir: Option<&Secret>,
        ni: &[u8],
        nr: &[u8],
        encr_len: usize,
        integ_len: usize,
    ) -> Result<ChildKeys, CryptoError> {
        let total = 2 * (encr_len + integ_len);
        let km = match g_ir {
            Some(g) => prf.prf_plus_parts(sk_d.as_bytes(), &[g.as_bytes(), ni, nr], total)?,
            None => prf.prf_plus_parts(sk_d.as_bytes(), &[ni, nr], total)?,
        };
        let mut rest = km.as_bytes();
        let mut take = |n: usize| {
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Secret::new(head)
        };
        Ok(ChildKeys {
            encr_i2r: take(encr_len),
            integ_i2r: take(integ_len),
            encr_r2i: take(encr_len),
            integ_r2i: take(integ_len),
        })
    }

    /// [`ChildKeys::derive`] with lengths from a [`ChildSuite`].
    pub fn for_suite(
        prf: Prf,
        suite: &ChildSuite,
        sk_d: &Secret,
        g_ir: Option<&Secret>,
        ni: &[u8],
        nr: &[u8],
    ) -> Result<ChildKeys, CryptoError> {
        suite.validate()?;
        Self::derive(
            prf,
            sk_d,
            g_ir,
            ni,
            nr,
            suite.encr_key_len(),
            suite.integ_key_len(),
        )
    }
}
