//! The UDP/4500 demux (RFC 3948): `esp::udp::classify` on arbitrary payloads must never
//! panic and must agree with the RFC's rules, checked independently here:
//!
//! * exactly `[0xFF]` is a NAT-keepalive;
//! * a payload starting with the 4-byte non-ESP marker (zeros) is IKE when an IKE
//!   header (28 bytes) follows, the IKE range being everything after the marker, and
//!   invalid otherwise (an ESP SPI is never 0);
//! * anything else of at least 8 bytes (SPI + sequence number) is ESP with the first
//!   four bytes as SPI, which `esp_spi` reports too;
//! * everything else is invalid.
//!
//! It also writes a marker in front of the input (as IKE message) and checks that the
//! result classifies back as the same IKE message.
#![no_main]

use esp::udp::{classify, esp_spi, write_non_esp_marker, Datagram, NON_ESP_MARKER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let got = classify(data);
    let expect = if data == [0xFF] {
        Datagram::Keepalive
    } else if data.len() >= 4 && data[..4] == [0, 0, 0, 0] {
        if data.len() >= 4 + 28 {
            Datagram::Ike(4..data.len())
        } else {
            Datagram::Invalid
        }
    } else if data.len() >= 8 {
        Datagram::Esp {
            spi: u32::from_be_bytes([data[0], data[1], data[2], data[3]]),
        }
    } else {
        Datagram::Invalid
    };
    assert_eq!(got, expect, "classify({data:02x?})");
    match got {
        Datagram::Esp { spi } => {
            assert_ne!(spi, 0);
            assert_eq!(esp_spi(data), Some(spi));
        }
        Datagram::Ike(r) => assert_eq!(&data[r], &data[4..]),
        Datagram::Keepalive | Datagram::Invalid => {}
    }
    assert_eq!(esp_spi(data).is_some(), data.len() >= 8);

    // Marker framing round trip: [marker | data] is IKE exactly when data is long
    // enough for an IKE header.
    let mut buf = vec![0xA5u8; NON_ESP_MARKER_LEN + data.len()];
    buf[NON_ESP_MARKER_LEN..].copy_from_slice(data);
    let total = buf.len();
    let framed = write_non_esp_marker(&mut buf, NON_ESP_MARKER_LEN..total);
    assert_eq!(framed, Some(0..total));
    match classify(&buf) {
        Datagram::Ike(r) => {
            assert!(data.len() >= 28);
            assert_eq!(&buf[r], data);
        }
        Datagram::Invalid => assert!(data.len() < 28),
        other => panic!("marker-framed payload classified as {other:?}"),
    }
    // No headroom: refused, nothing written.
    let mut short = data.to_vec();
    let len = short.len();
    if len > 0 {
        assert_eq!(write_non_esp_marker(&mut short, 0..len), None);
        assert_eq!(short, data);
    }
});
