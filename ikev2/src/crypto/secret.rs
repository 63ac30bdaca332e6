//! [`Secret`]: owned key material that is zeroized on drop and never printed.

use core::fmt;
use zeroize::Zeroizing;

/// Owned secret bytes (a shared secret, SKEYSEED, a derived key, a PSK).
///
/// The bytes are zeroized when the value is dropped, and `Debug` prints
/// `Secret(<redacted>, N bytes)` only.
///
/// Equality is constant-time in the contents (the length is not secret).
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Copies `bytes` into a new secret.
    pub fn new(bytes: &[u8]) -> Self {
        Secret(Zeroizing::new(bytes.to_vec()))
    }

    /// Takes ownership of `bytes` (no copy is left behind).
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        Secret(Zeroizing::new(bytes))
    }

    /// The secret bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl AsRef<[u8]> for Secret {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for Secret {
    fn from(v: Vec<u8>) -> Self {
        Secret::from_vec(v)
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        super::ct_eq(&self.0, &other.0)
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<redacted>, {} bytes)", self.0.len())
    }
}
