//! UDP encapsulation of ESP and IKE on port 4500 (RFC 3948).
//!
//! A UDP/4500 payload is one of: a NAT-keepalive (the single byte 0xFF, §2.3), an IKE
//! message behind the 4-byte non-ESP marker (zeros, §2.2), or an ESP packet (its SPI is
//! never 0, §2.1). [`classify`] tells them apart without copying.

use core::ops::Range;

/// The NAT-T port (RFC 3948 §2).
pub const NAT_T_PORT: u16 = 4500;
/// The non-ESP marker in front of IKE messages on port 4500.
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];
/// Length of the non-ESP marker.
pub const NON_ESP_MARKER_LEN: usize = 4;
/// A NAT-keepalive payload.
pub const NAT_KEEPALIVE: [u8; 1] = [0xFF];
/// Length of the UDP header an encapsulating sender puts in front of ESP.
pub const UDP_HEADER_LEN: usize = 8;

/// What a UDP/4500 payload carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Datagram {
    /// An IKE message at this range of the payload (after the non-ESP marker).
    Ike(Range<usize>),
    /// An ESP packet (the whole payload) with this SPI.
    Esp {
        /// The SPI, for the SA lookup.
        spi: u32,
    },
    /// A NAT-keepalive: ignore it.
    Keepalive,
    /// Anything else (too short for ESP, a marker with no IKE header behind it): drop.
    Invalid,
}

/// Smallest IKE header (RFC 7296 §3.1).
const IKE_HEADER_LEN: usize = 28;

/// Classifies a UDP/4500 payload (RFC 3948 §2.2, §2.3).
pub fn classify(payload: &[u8]) -> Datagram {
    match payload {
        [0xFF] => Datagram::Keepalive,
        [0, 0, 0, 0, rest @ ..] => {
            if rest.len() >= IKE_HEADER_LEN {
                Datagram::Ike(NON_ESP_MARKER_LEN..payload.len())
            } else {
                Datagram::Invalid
            }
        }
        [a, b, c, d, _, _, _, _, ..] => Datagram::Esp {
            spi: u32::from_be_bytes([*a, *b, *c, *d]),
        },
        _ => Datagram::Invalid,
    }
}

/// Writes the non-ESP marker in the 4 bytes before the IKE message at `buf[ike]` and
/// returns the range of the UDP payload (marker + message), or `None` without headroom.
pub fn write_non_esp_marker(buf: &mut [u8], ike: Range<usize>) -> Option<Range<usize>> {
    if ike.start > ike.end || ike.end > buf.len() {
        return None;
    }
    let start = ike.start.checked_sub(NON_ESP_MARKER_LEN)?;
    buf.get_mut(start..ike.start)?
        .copy_from_slice(&NON_ESP_MARKER);
    Some(start..ike.end)
}

/// The SPI of an ESP packet (raw or UDP-encapsulated), if it is long enough to have an
/// ESP header.
pub fn esp_spi(packet: &[u8]) -> Option<u32> {
    match packet {
        [a, b, c, d, _, _, _, _, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_rfc3948_payloads() {
        assert_eq!(classify(&[0xFF]), Datagram::Keepalive);
        let mut ike = vec![0u8; 4 + 28];
        ike[4] = 0x11;
        assert_eq!(classify(&ike), Datagram::Ike(4..32));
        assert_eq!(classify(&[0, 0, 0, 0, 1, 2]), Datagram::Invalid);
        assert_eq!(
            classify(&[0, 0, 0x10, 0x01, 0, 0, 0, 1, 9]),
            Datagram::Esp { spi: 0x1001 }
        );
        assert_eq!(classify(&[1, 2, 3]), Datagram::Invalid);
        assert_eq!(classify(&[]), Datagram::Invalid);
        assert_eq!(classify(&[0xFF, 0xFF]), Datagram::Invalid);
    }

    #[test]
    fn marker_round_trip() {
        let mut buf = vec![0xAAu8; 40];
        let r = write_non_esp_marker(&mut buf, 4..40);
        assert_eq!(r, Some(0..40));
        assert_eq!(classify(&buf), Datagram::Ike(4..40));
        assert_eq!(write_non_esp_marker(&mut buf, 3..40), None);
        assert_eq!(write_non_esp_marker(&mut buf, 10..50), None);
    }
}
