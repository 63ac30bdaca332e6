//! Opens arbitrary bytes with fixed-key SAs of every suite (with and without ESN), and
//! classifies them as UDP/4500 payloads. `open` must never panic and must only accept
//! what a matching outbound SA sealed.
//!
//! Input: byte 0 picks the suite (low 4 bits) and ESN (bit 4); bit 5 stamps the SA's
//! SPI on the packet (to get past the SPI check); bit 6 seals the rest of the input
//! with the outbound twin first and then flips byte `input[1]` of the packet by
//! `input[2]` (0 = no change, which must open); bytes 3..11 are the window's start.
#![no_main]

use esp::{Direction, Sa, SaParams, Suite};
use libfuzzer_sys::fuzz_target;

const SPI: u32 = 0x0102_0304;

fn keymat(suite: Suite) -> Vec<u8> {
    (0..suite.encryption_keymat_len() + suite.integrity_keymat_len())
        .map(|i| (i as u8).wrapping_mul(7))
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let _ = esp::udp::classify(data);
    let _ = esp::udp::esp_spi(data);
    let _ = esp::ip_next_header(data);
    if data.len() < 11 {
        return;
    }
    let ctl = data[0];
    let suites: Vec<Suite> = Suite::all().collect();
    let suite = suites[usize::from(ctl & 0x0F) % suites.len()];
    let esn = ctl & 0x10 != 0;
    let start = u64::from_be_bytes(data[3..11].try_into().unwrap_or_default()) >> (data[1] % 64);
    let km = keymat(suite);
    let Ok(inb) = Sa::from_keymat(
        SaParams::new(SPI, Direction::Inbound, suite)
            .with_esn(esn)
            .with_replay_window(u32::from(data[2]) * 64)
            .with_start_seq(start),
        &km,
    ) else {
        return;
    };
    let body = &data[11..];
    if ctl & 0x40 == 0 {
        let mut buf = body.to_vec();
        if ctl & 0x20 != 0 && buf.len() >= 4 {
            buf[..4].copy_from_slice(&SPI.to_be_bytes());
        }
        let len = buf.len();
        if let Ok(o) = inb.open(&mut buf, 0..len) {
            panic!("forged packet accepted: {o:?}");
        }
        let _ = inb.open(&mut buf, usize::from(data[1])..usize::from(data[2]));
    } else {
        let Ok(out) = Sa::from_keymat(
            SaParams::new(SPI, Direction::Outbound, suite)
                .with_esn(esn)
                .with_start_seq(start),
            &km,
        ) else {
            return;
        };
        let hl = esp::MAX_HEADER_LEN;
        let mut buf = vec![0u8; hl + body.len() + esp::MAX_TRAILER_LEN];
        buf[hl..hl + body.len()].copy_from_slice(body);
        let Ok(s) = out.seal_ip(&mut buf, hl..hl + body.len()) else {
            return;
        };
        let pkt = &mut buf[s.packet.clone()];
        let at = usize::from(data[1]) % pkt.len();
        pkt[at] ^= data[2];
        let len = pkt.len();
        let r = inb.open(pkt, 0..len);
        if data[2] == 0 {
            // Unmodified: opens unless the inbound window already covers the number
            // (start > 0 marks numbers below `start` as received) or, with ESN, the
            // receiver's inferred high bits differ (impossible here: same start).
            if s.seq > start {
                let o = r.expect("genuine packet must open");
                assert_eq!(&pkt[o.payload], body);
            }
        } else {
            assert!(r.is_err(), "modified packet accepted");
        }
    }
});
