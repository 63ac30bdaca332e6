//! Reassembly of IKE fragments (RFC 7383 §2.6). The caller checks the ICV of each SKF
//! payload and decrypts it first (every fragment is protected on its own), then hands the
//! decrypted content to [`Reassembly::add`]; when all fragments are present it returns the
//! inner payload chain (first payload type + bytes) for [`super::parse_chain`].

use super::{Error, PayloadType};

/// Collects the decrypted fragments of one message (one message ID, one direction).
#[derive(Debug, Clone, Default)]
pub struct Reassembly {
    total: u16,
    first_payload: PayloadType,
    parts: Vec<Option<Vec<u8>>>,
    received: u16,
    bytes: usize,
}

impl Reassembly {
    /// Most fragments accepted for one message.
    pub const MAX_FRAGMENTS: u16 = 64;
    /// Most decrypted octets accepted for one message.
    pub const MAX_BYTES: usize = 64 * 1024;

    /// An empty reassembly.
    pub fn new() -> Reassembly {
        Reassembly::default()
    }

    /// Number of distinct fragments held.
    pub fn received(&self) -> u16 {
        self.received
    }

    /// Adds fragment `number` of `total` (from the SKF payload, `next_payload` from its
    /// generic header) whose verified, decrypted content is `plain`. Returns the whole inner
    /// chain once every fragment is present (and resets itself).
    ///
    /// Following RFC 7383 §2.6.2: duplicates are ignored; a fragment with a larger total
    /// than the ones held restarts the reassembly, one with a smaller total is ignored.
    /// Errors ([`Error::InvalidValue`]): number 0 or above total, total above
    /// [`Reassembly::MAX_FRAGMENTS`], or more than [`Reassembly::MAX_BYTES`] in all.
    pub fn add(
        &mut self,
        number: u16,
        total: u16,
        next_payload: PayloadType,
        plain: &[u8],
    ) -> Result<Option<(PayloadType, Vec<u8>)>, Error> {
        if total == 0 || total > Self::MAX_FRAGMENTS {
            return Err(Error::InvalidValue("fragment total"));
        }
        if number == 0 || number > total {
            return Err(Error::InvalidValue("fragment number"));
        }
        if total < self.total {
            return Ok(None);
        }
        if total > self.total {
            *self = Reassembly {
                total,
                parts: vec![None; total as usize],
                ..Reassembly::default()
            };
        }
        let Some(slot) = self.parts.get_mut(number as usize - 1) else {
            return Err(Error::InvalidValue("fragment number"));
        };
        if slot.is_some() {
            return Ok(None);
        }
        if self.bytes + plain.len() > Self::MAX_BYTES {
            return Err(Error::TooLong("reassembled message"));
        }
        *slot = Some(plain.to_vec());
        self.bytes += plain.len();
        self.received += 1;
        if number == 1 {
            self.first_payload = next_payload;
        }
        if self.received < self.total {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(self.bytes);
        for p in self.parts.iter().flatten() {
            out.extend_from_slice(p);
        }
        let first = self.first_payload;
        *self = Reassembly::default();
        Ok(Some((first, out)))
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn in_any_order() {
        let mut r = Reassembly::new();
        assert_eq!(r.add(3, 3, PayloadType::NONE, b"ef").unwrap(), None);
        assert_eq!(r.add(1, 3, PayloadType::IDI, b"ab").unwrap(), None);
        assert_eq!(r.add(1, 3, PayloadType::IDI, b"xx").unwrap(), None); // duplicate
        assert_eq!(r.received(), 2);
        assert_eq!(
            r.add(2, 3, PayloadType::NONE, b"cd").unwrap(),
            Some((PayloadType::IDI, b"abcdef".to_vec()))
        );
        assert_eq!(r.received(), 0);
    }

    #[test]
    fn total_changes() {
        let mut r = Reassembly::new();
        r.add(1, 2, PayloadType::IDI, b"old").unwrap();
        // Larger total: restart with the new fragmentation.
        assert_eq!(r.add(2, 3, PayloadType::NONE, b"b").unwrap(), None);
        assert_eq!(r.received(), 1);
        // Smaller total: ignored.
        assert_eq!(r.add(1, 2, PayloadType::IDI, b"x").unwrap(), None);
        assert_eq!(r.received(), 1);
        r.add(1, 3, PayloadType::SA, b"a").unwrap();
        assert_eq!(
            r.add(3, 3, PayloadType::NONE, b"c").unwrap(),
            Some((PayloadType::SA, b"abc".to_vec()))
        );
    }

    #[test]
    fn bad_numbers_and_limits() {
        let mut r = Reassembly::new();
        assert!(r.add(0, 2, PayloadType::IDI, b"").is_err());
        assert!(r.add(3, 2, PayloadType::IDI, b"").is_err());
        assert!(r.add(1, 0, PayloadType::IDI, b"").is_err());
        assert!(r.add(1, 65, PayloadType::IDI, b"").is_err());
        let big = vec![0u8; Reassembly::MAX_BYTES];
        r.add(1, 2, PayloadType::IDI, &big).unwrap();
        assert_eq!(
            r.add(2, 2, PayloadType::NONE, b"x"),
            Err(Error::TooLong("reassembled message"))
        );
    }

    #[test]
    fn single_fragment() {
        let mut r = Reassembly::new();
        assert_eq!(
            r.add(1, 1, PayloadType::NOTIFY, b"n").unwrap(),
            Some((PayloadType::NOTIFY, b"n".to_vec()))
        );
    }
}
