//! Property and behaviour tests of `Sa::seal` / `Sa::open` through the public API.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use esp::{
    Direction, Expiry, Lifetime, LifetimeEvent, Limits, OpenError, Sa, SaParams, SealError, Suite,
    MAX_HEADER_LEN, MAX_TRAILER_LEN,
};
use proptest::prelude::*;

const SPI: u32 = 0xC0FF_EE01;

fn suites() -> Vec<Suite> {
    Suite::all().collect()
}

fn keymat(suite: Suite, seed: u8) -> Vec<u8> {
    let n = suite.encryption_keymat_len() + suite.integrity_keymat_len();
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
}

fn pair(suite: Suite, esn: bool, out_start: u64, in_start: u64) -> (Sa, Sa) {
    let k = keymat(suite, 0xA5);
    let out = Sa::from_keymat(
        SaParams::new(SPI, Direction::Outbound, suite)
            .with_esn(esn)
            .with_start_seq(out_start),
        &k,
    )
    .expect("outbound");
    let inb = Sa::from_keymat(
        SaParams::new(SPI, Direction::Inbound, suite)
            .with_esn(esn)
            .with_start_seq(in_start),
        &k,
    )
    .expect("inbound");
    (out, inb)
}

/// An outbound/inbound pair keyed from `seed`, the inbound SA with a `window`-packet
/// replay window.
fn windowed_pair(suite: Suite, esn: bool, seed: u8, window: u64) -> (Sa, Sa) {
    let k = keymat(suite, seed);
    let out = Sa::from_keymat(
        SaParams::new(SPI, Direction::Outbound, suite).with_esn(esn),
        &k,
    )
    .expect("outbound");
    let inb = Sa::from_keymat(
        SaParams::new(SPI, Direction::Inbound, suite)
            .with_esn(esn)
            .with_replay_window(window as u32),
        &k,
    )
    .expect("inbound");
    (out, inb)
}

/// Seals `inner` and returns the ESP packet bytes.
fn seal(sa: &Sa, inner: &[u8], nh: u8) -> (Vec<u8>, u64) {
    let mut buf = vec![0u8; MAX_HEADER_LEN + inner.len() + MAX_TRAILER_LEN];
    let p = MAX_HEADER_LEN..MAX_HEADER_LEN + inner.len();
    buf[p.clone()].copy_from_slice(inner);
    let s = sa.seal(&mut buf, p, nh).expect("seal");
    (buf[s.packet].to_vec(), s.seq)
}

fn open(sa: &Sa, pkt: &[u8]) -> Result<(Vec<u8>, u8, u64), OpenError> {
    let mut buf = pkt.to_vec();
    let len = buf.len();
    let o = sa.open(&mut buf, 0..len)?;
    Ok((buf[o.payload].to_vec(), o.next_header, o.seq))
}

fn payload(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_add(seed)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(384))]

    #[test]
    fn seal_open_round_trip(si in 0usize..15, esn: bool, len in prop_oneof![0usize..64, 0usize..=9000], seed: u8, nh: u8) {
        let suite = suites()[si];
        let (out, inb) = pair(suite, esn, 0, 0);
        let inner = payload(len, seed);
        let (pkt, seq) = seal(&out, &inner, nh);
        prop_assert_eq!(seq, 1);
        prop_assert_eq!(pkt.len(), suite.header_len() + len + suite.trailer_len(len));
        prop_assert!(pkt.len() <= MAX_HEADER_LEN + len + MAX_TRAILER_LEN);
        // The plaintext does not appear in clear (for payloads long enough to tell).
        if len >= 16 {
            prop_assert!(!pkt.windows(16).any(|w| w == &inner[..16]));
        }
        let (got, got_nh, got_seq) = open(&inb, &pkt).expect("open");
        prop_assert_eq!(got, inner);
        prop_assert_eq!(got_nh, nh);
        prop_assert_eq!(got_seq, 1);
        prop_assert_eq!(open(&inb, &pkt), Err(OpenError::Replayed));
    }

    #[test]
    fn any_single_bit_flip_fails(si in 0usize..15, esn: bool, len in 0usize..300, bit in any::<prop::sample::Index>()) {
        let suite = suites()[si];
        let (out, inb) = pair(suite, esn, 0, 0);
        let (pkt, _) = seal(&out, &payload(len, 3), 4);
        let mut bad = pkt.clone();
        let b = bit.index(bad.len() * 8);
        bad[b / 8] ^= 1 << (b % 8);
        prop_assert!(open(&inb, &bad).is_err());
        // The failure did not touch the window: the genuine packet still opens.
        prop_assert!(open(&inb, &pkt).is_ok());
    }

    #[test]
    fn open_never_panics_on_random_bytes(si in 0usize..15, esn: bool, bytes in prop::collection::vec(any::<u8>(), 0..200), keep_spi: bool, start in 0usize..8, end in 0usize..220) {
        let suite = suites()[si];
        let (_, inb) = pair(suite, esn, 0, 0);
        let mut bytes = bytes;
        if keep_spi && bytes.len() >= 4 {
            bytes[..4].copy_from_slice(&SPI.to_be_bytes());
        }
        let len = bytes.len();
        prop_assert!(inb.open(&mut bytes.clone(), 0..len).is_err());
        // Arbitrary (also inverted or out-of-bounds) ranges.
        #[allow(clippy::reversed_empty_ranges)]
        let r = inb.open(&mut bytes, start..end);
        prop_assert!(r.is_err());
    }

    /// Packets delivered in any order, with duplicates, are accepted exactly when a
    /// simple model of the RFC 4303 window says so.
    #[test]
    fn replay_window_matches_model(order in prop::collection::vec(0usize..300, 1..400), esn: bool) {
        let suite = Suite::AES128_GCM16;
        let window = 64u64;
        let (out, inb) = windowed_pair(suite, esn, 1, window);
        let pkts: Vec<Vec<u8>> = (0..300).map(|i| seal(&out, &payload(i % 50, 0), 4).0).collect();
        let mut seen = HashSet::new();
        let mut top = 0u64;
        for i in order {
            let seq = i as u64 + 1;
            let expect = if seq + window <= top {
                // With ESN, RFC 4303 A2.2 guesses the next 2^32 subspace for numbers
                // left of the window, and the ICV then fails.
                Err(if esn { OpenError::Auth } else { OpenError::TooOld })
            } else if seen.contains(&seq) {
                Err(OpenError::Replayed)
            } else {
                Ok(seq)
            };
            let got = open(&inb, &pkts[i]).map(|(_, _, s)| s);
            prop_assert_eq!(got, expect, "seq {}", seq);
            if got.is_ok() {
                seen.insert(seq);
                top = top.max(seq);
            }
        }
    }
}

#[test]
fn esn_crosses_the_32_bit_boundary_out_of_order() {
    for suite in [Suite::AES256_GCM16, suites()[7]] {
        let (out, inb) = pair(suite, true, (1 << 32) - 8, (1 << 32) - 9);
        let pkts: Vec<(Vec<u8>, u64)> = (0..16).map(|i| seal(&out, &payload(40, i), 4)).collect();
        assert_eq!(pkts[0].1, (1 << 32) - 7);
        assert_eq!(pkts[15].1, (1 << 32) + 8);
        // The wire carries only the low 32 bits.
        assert_eq!(&pkts[15].0[4..8], &8u32.to_be_bytes());
        // Deliver out of order across the boundary: 10.., then the ones before it.
        let order = [10, 3, 11, 0, 15, 7, 6, 8, 1, 2, 4, 5, 9, 12, 14, 13];
        for &i in &order {
            let (_, _, seq) = open(&inb, &pkts[i].0).expect("open");
            assert_eq!(seq, pkts[i].1, "{suite} packet {i}");
        }
        for (p, _) in &pkts {
            assert_eq!(open(&inb, p), Err(OpenError::Replayed));
        }
        assert_eq!(inb.seq(), (1 << 32) + 8);
    }
}

#[test]
fn esn_high_bits_are_authenticated() {
    // A receiver whose window sits in another 2^32 subspace infers other high bits: the
    // ICV (GCM AAD / HMAC input) must then fail.
    for suite in [Suite::AES128_GCM16, suites()[3]] {
        // Sent as 2^32 * 0 + 21; the receiver (top 3 * 2^32 + 10) infers 3 * 2^32 + 21.
        let (out, _) = pair(suite, true, 20, 0);
        let (pkt, _) = seal(&out, &payload(20, 0), 4);
        let (_, inb) = pair(suite, true, 0, (3 << 32) + 10);
        assert_eq!(open(&inb, &pkt), Err(OpenError::Auth), "{suite}");
    }
}

#[test]
fn sequence_number_never_wraps() {
    let (out, _) = pair(Suite::AES256_GCM16, false, u64::from(u32::MAX) - 2, 0);
    assert_eq!(seal(&out, b"a", 4).1, u64::from(u32::MAX) - 1);
    assert_eq!(seal(&out, b"b", 4).1, u64::from(u32::MAX));
    let mut buf = vec![0u8; 128];
    for _ in 0..3 {
        assert_eq!(
            out.seal(&mut buf, 24..40, 4),
            Err(SealError::SequenceExhausted)
        );
    }
    assert_eq!(out.counters().refused(SealError::SequenceExhausted), 3);
    assert_eq!(out.expiry(Duration::ZERO), Expiry::Hard);

    let (out, _) = pair(Suite::AES256_GCM16, true, esp::ESN_SEQ_LIMIT - 1, 0);
    assert_eq!(seal(&out, b"a", 4).1, esp::ESN_SEQ_LIMIT);
    assert_eq!(
        out.seal(&mut buf, 24..40, 4),
        Err(SealError::SequenceExhausted)
    );
}

#[test]
fn soft_event_before_sequence_exhaustion() {
    let soft = u64::from(u32::MAX) - esp::SEQ_SOFT_MARGIN;
    let (out, _) = pair(Suite::AES128_GCM16, false, soft - 2, 0);
    let mut buf = vec![0u8; 128];
    let events: Vec<LifetimeEvent> = (0..4)
        .map(|_| out.seal(&mut buf, 24..40, 4).expect("seal").lifetime)
        .collect();
    assert_eq!(
        events,
        [
            LifetimeEvent::None,
            LifetimeEvent::Soft,
            LifetimeEvent::None,
            LifetimeEvent::None
        ]
    );
    assert_eq!(out.expiry(Duration::ZERO), Expiry::Soft);
}

#[test]
fn seal_checks_room_and_direction() {
    for suite in suites() {
        let (out, inb) = pair(suite, false, 0, 0);
        let mut buf = vec![0u8; 200];
        let hl = suite.header_len();
        assert_eq!(
            out.seal(&mut buf, hl - 1..hl + 10, 4),
            Err(SealError::NoHeadroom)
        );
        let tl = suite.trailer_len(10);
        assert_eq!(
            out.seal(&mut buf[..hl + 10 + tl - 1], hl..hl + 10, 4),
            Err(SealError::NoTailroom)
        );
        assert!(out.seal(&mut buf[..hl + 10 + tl], hl..hl + 10, 4).is_ok());
        #[allow(clippy::reversed_empty_ranges)]
        let r = out.seal(&mut buf, 50..40, 4);
        assert_eq!(r, Err(SealError::BadRange));
        assert_eq!(out.seal(&mut buf, 30..300, 4), Err(SealError::BadRange));
        assert_eq!(
            inb.seal(&mut buf, hl..hl + 10, 4),
            Err(SealError::WrongDirection)
        );
        let mut pkt = seal(&out, b"xyz", 4).0;
        let len = pkt.len();
        assert_eq!(out.open(&mut pkt, 0..len), Err(OpenError::WrongDirection));
        let c = out.counters();
        assert_eq!(c.refused(SealError::NoHeadroom), 1);
        assert_eq!(c.refused(SealError::NoTailroom), 1);
        assert_eq!(c.refused(SealError::BadRange), 2);
        assert_eq!(c.packets, 2);
        assert_eq!(c.bytes, 13);
    }
}

#[test]
fn open_reasons_are_typed_and_counted() {
    let suite = suites()[5]; // an AES-CBC suite
    let (out, inb) = pair(suite, false, 0, 0);
    let (pkt, _) = seal(&out, &payload(100, 0), 4);

    let mut other = pkt.clone();
    other[3] ^= 1;
    assert_eq!(open(&inb, &other), Err(OpenError::WrongSpi));
    assert_eq!(open(&inb, &pkt[..20]), Err(OpenError::Truncated));
    let mut mis = pkt.clone();
    mis.insert(30, 0);
    assert_eq!(open(&inb, &mis), Err(OpenError::Misaligned));
    let mut zero = pkt.clone();
    zero[4..8].copy_from_slice(&[0; 4]);
    assert_eq!(open(&inb, &zero), Err(OpenError::InvalidSequence));
    let mut icv = pkt.clone();
    let n = icv.len();
    icv[n - 1] ^= 0x80;
    assert_eq!(open(&inb, &icv), Err(OpenError::Auth));
    assert!(open(&inb, &pkt).is_ok());
    assert_eq!(open(&inb, &pkt), Err(OpenError::Replayed));

    let c = inb.counters();
    for (reason, n) in [
        (OpenError::WrongSpi, 1),
        (OpenError::Truncated, 1),
        (OpenError::Misaligned, 1),
        (OpenError::InvalidSequence, 1),
        (OpenError::Auth, 1),
        (OpenError::Replayed, 1),
        (OpenError::Padding, 0),
    ] {
        assert_eq!(c.dropped(reason), n, "{}", reason.name());
    }
    assert_eq!(c.packets, 1);
    assert_eq!(c.bytes, 100);
}

/// Builds an ESP packet by hand (through the backend) from a plaintext that already
/// carries its trailer, so that the trailer can be wrong while the ICV is right.
fn handmade(suite: Suite, keymat: &[u8], seq: u32, plaintext: &[u8]) -> Vec<u8> {
    use esp::backend::{AeadKey, AwsLc, Backend, CbcKey, MacKey};
    let (encr, integ) = keymat.split_at(suite.encryption_keymat_len());
    let mut pkt = Vec::new();
    pkt.extend_from_slice(&SPI.to_be_bytes());
    pkt.extend_from_slice(&seq.to_be_bytes());
    if suite.is_aead() {
        let (k, salt) = encr.split_at(suite.aes_key_len());
        let iv = [7u8; 8];
        let mut nonce = [0u8; 12];
        nonce[..4].copy_from_slice(salt);
        nonce[4..].copy_from_slice(&iv);
        let key = AwsLc::aead_key(k).expect("key");
        let aad = pkt.clone();
        let mut ct = plaintext.to_vec();
        let mut tag = [0u8; 16];
        key.seal_in_place(&nonce, &aad, &mut ct, &mut tag)
            .expect("seal");
        pkt.extend_from_slice(&iv);
        pkt.extend_from_slice(&ct);
        pkt.extend_from_slice(&tag);
    } else {
        let iv = [9u8; 16];
        let key = AwsLc::cbc_key(encr).expect("key");
        let mut ct = plaintext.to_vec();
        key.encrypt_in_place(&iv, &mut ct).expect("enc");
        pkt.extend_from_slice(&iv);
        pkt.extend_from_slice(&ct);
        let alg = suite.integrity().expect("integ");
        let mac = AwsLc::mac_key(alg, integ).expect("mac");
        let mut full = [0u8; 64];
        mac.sign(&[&pkt], &mut full).expect("sign");
        pkt.extend_from_slice(&full[..alg.icv_len()]);
    }
    pkt
}

#[test]
fn bad_padding_with_valid_icv_is_refused() {
    for suite in [Suite::AES256_GCM16, suites()[4], suites()[14]] {
        let k = keymat(suite, 0xA5);
        let (_, inb) = pair(suite, false, 0, 0);
        let mut plain = payload(14, 1); // 14 + 2 = 16: no padding needed
                                        // Positive control: correct trailer (pad length 0).
        plain.extend_from_slice(&[0, 4]);
        let (got, nh, _) = open(&inb, &handmade(suite, &k, 1, &plain)).expect("control");
        assert_eq!((got.len(), nh), (14, 4));
        // Pad bytes not 1, 2, 3: claim pad length 3 over bytes 0x0d 0x0e 0x0f.
        let mut bad = payload(14, 1);
        bad.extend_from_slice(&[3, 4]);
        assert_eq!(
            open(&inb, &handmade(suite, &k, 2, &bad)),
            Err(OpenError::Padding),
            "{suite}"
        );
        // Pad length beyond the ciphertext.
        let mut bad = payload(14, 1);
        bad.extend_from_slice(&[200, 4]);
        assert_eq!(
            open(&inb, &handmade(suite, &k, 3, &bad)),
            Err(OpenError::Padding),
            "{suite}"
        );
        // Correct monotonic padding 1, 2, 3 is accepted.
        let mut good = payload(11, 1);
        good.extend_from_slice(&[1, 2, 3, 3, 41]);
        let (got, nh, _) = open(&inb, &handmade(suite, &k, 4, &good)).expect("padded");
        assert_eq!((got, nh), (payload(11, 1), 41));
        assert_eq!(inb.counters().dropped(OpenError::Padding), 2);
    }
}

#[test]
fn ipv4_and_ipv6_next_header() {
    let (out, inb) = pair(Suite::AES256_GCM16, false, 0, 0);
    for (first, nh) in [(0x45u8, 4u8), (0x60, 41), (0x10, 59)] {
        let inner = [first, 0, 0, 20, 1, 2, 3, 4];
        let mut buf = vec![0u8; 100];
        buf[24..32].copy_from_slice(&inner);
        let s = out.seal_ip(&mut buf, 24..32).expect("seal");
        let len = s.packet.len();
        let mut pkt = buf[s.packet].to_vec();
        let o = inb.open(&mut pkt, 0..len).expect("open");
        assert_eq!(o.next_header, nh);
        assert_eq!(&pkt[o.payload], &inner);
    }
}

#[test]
fn open_in_a_larger_buffer_returns_buffer_ranges() {
    let (out, inb) = pair(suites()[10], true, 0, 0);
    let (pkt, _) = seal(&out, b"hello, tunnel", 41);
    let mut frame = vec![0xEEu8; 28];
    frame.extend_from_slice(&pkt);
    frame.extend_from_slice(&[0xEE; 5]);
    let o = inb.open(&mut frame, 28..28 + pkt.len()).expect("open");
    assert_eq!(&frame[o.payload.clone()], b"hello, tunnel");
    assert!(o.payload.start >= 28 && o.payload.end <= 28 + pkt.len());
    assert_eq!(o.next_header, 41);
}

#[test]
fn packet_and_byte_lifetimes() {
    let suite = Suite::AES128_GCM16;
    let k = keymat(suite, 9);
    let lifetime = Lifetime {
        soft: Limits {
            packets: Some(3),
            bytes: None,
            time: Some(Duration::from_secs(100)),
        },
        hard: Limits {
            packets: Some(5),
            bytes: None,
            time: Some(Duration::from_secs(200)),
        },
    };
    let out = Sa::from_keymat(
        SaParams::new(SPI, Direction::Outbound, suite).with_lifetime(lifetime),
        &k,
    )
    .expect("sa");
    let inb = Sa::from_keymat(
        SaParams::new(SPI, Direction::Inbound, suite).with_lifetime(lifetime),
        &k,
    )
    .expect("sa");
    let mut buf = vec![0u8; 100];
    let mut out_events = Vec::new();
    let mut in_events = Vec::new();
    let mut pkts = Vec::new();
    for _ in 0..6 {
        match out.seal(&mut buf, 24..40, 4) {
            Ok(s) => {
                out_events.push(s.lifetime);
                pkts.push(buf[s.packet].to_vec());
            }
            Err(e) => assert_eq!(e, SealError::Expired),
        }
    }
    use LifetimeEvent::{Hard, Soft};
    let none = LifetimeEvent::None;
    assert_eq!(out_events, [none, none, Soft, none, Hard]);
    assert_eq!(out.counters().refused(SealError::Expired), 1);
    for p in &pkts {
        let len = p.len();
        let o = inb.open(&mut p.clone(), 0..len).expect("open");
        in_events.push(o.lifetime);
    }
    assert_eq!(in_events, [none, none, Soft, none, Hard]);
    assert_eq!(inb.expiry(Duration::ZERO), Expiry::Hard);

    // Bytes, and time through `expiry(age)`.
    let lifetime = Lifetime {
        soft: Limits {
            bytes: Some(40),
            ..Limits::default()
        },
        hard: Limits {
            bytes: Some(64),
            time: Some(Duration::from_secs(60)),
            ..Limits::default()
        },
    };
    let out = Sa::from_keymat(
        SaParams::new(SPI, Direction::Outbound, suite).with_lifetime(lifetime),
        &k,
    )
    .expect("sa");
    assert_eq!(out.expiry(Duration::from_secs(59)), Expiry::Alive);
    assert_eq!(out.expiry(Duration::from_secs(60)), Expiry::Hard);
    let ev: Vec<_> = (0..4)
        .map(|_| out.seal(&mut buf, 24..40, 4).map(|s| s.lifetime))
        .collect();
    assert_eq!(
        ev,
        [Ok(none), Ok(none), Ok(Soft), Ok(Hard)] // 16, 32, 48 (>= 40), 64 (>= 64)
    );
    assert_eq!(out.seal(&mut buf, 24..40, 4), Err(SealError::Expired));
}

#[test]
fn concurrent_seal_and_open_on_shared_sas() {
    let (out, inb) = pair(Suite::AES256_GCM16, true, 0, 0);
    let (out, inb) = (Arc::new(out), Arc::new(inb));
    let threads = 4;
    let per = 500;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let out = Arc::clone(&out);
            std::thread::spawn(move || {
                (0..per)
                    .map(|i| seal(&out, &payload(64 + i % 7, t as u8), 4))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let all: Vec<(Vec<u8>, u64)> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("thread"))
        .collect();
    let seqs: HashSet<u64> = all.iter().map(|(_, s)| *s).collect();
    assert_eq!(seqs.len(), threads * per, "sequence numbers are unique");
    assert_eq!(seqs.iter().max(), Some(&((threads * per) as u64)));
    // Open everything (twice) from several threads: each packet opens exactly once.
    let all = Arc::new(all);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let inb = Arc::clone(&inb);
            let all = Arc::clone(&all);
            std::thread::spawn(move || {
                let mut ok = 0;
                for (i, (p, _)) in all.iter().enumerate() {
                    if (i + t) % 2 == 0 && open(&inb, p).is_ok() {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let ok: usize = handles.into_iter().map(|h| h.join().expect("thread")).sum();
    assert_eq!(ok, threads * per);
    let c = inb.counters();
    assert_eq!(c.packets as usize, threads * per);
    assert_eq!(
        (c.dropped(OpenError::Replayed) + c.dropped(OpenError::TooOld)) as usize,
        threads * per
    );
}

#[test]
fn debug_never_shows_keys() {
    for suite in suites() {
        let k = keymat(suite, 0x77);
        let sa = Sa::from_keymat(SaParams::new(SPI, Direction::Inbound, suite), &k).expect("sa");
        let d = format!("{sa:?}");
        assert!(d.contains("redacted"), "{d}");
        assert!(!d.contains(&hex::encode(&k[..4])), "{d}");
        assert!(!d.contains(&format!("{:?}", &k[..4])), "{d}");
    }
}

#[test]
fn wrong_key_lengths_are_refused() {
    let s = Suite::AES256_GCM16;
    let p = SaParams::new(SPI, Direction::Outbound, s);
    assert!(matches!(
        Sa::new(p, &[0; 32], &[]),
        Err(esp::SuiteError::KeyLength { got: 32, want: 36 })
    ));
    assert!(Sa::new(p, &[0; 36], &[1]).is_err());
    assert!(Sa::from_keymat(p, &[0; 35]).is_err());
    let cbc = suites()[4];
    assert!(Sa::new(
        SaParams::new(SPI, Direction::Outbound, cbc),
        &[0; 16],
        &[0; 5]
    )
    .is_err());
}

#[test]
fn ivs_are_unique_and_cbc_ivs_unpredictable_looking() {
    for suite in suites() {
        let (out, _) = pair(suite, true, 0, 0);
        let ivs: Vec<Vec<u8>> = (0..64)
            .map(|_| seal(&out, b"same payload", 4).0[8..suite.header_len()].to_vec())
            .collect();
        let distinct: HashSet<&Vec<u8>> = ivs.iter().collect();
        assert_eq!(distinct.len(), ivs.len(), "{suite}: IV reuse");
        if suite.is_aead() {
            // RFC 4106: the explicit IV is the 64-bit sequence number.
            assert_eq!(ivs[4], 5u64.to_be_bytes());
        } else {
            // Not the counter in clear, and different keys give different IVs.
            assert!(!ivs.iter().any(|iv| iv[..8] == 5u64.to_be_bytes()));
            let k2 = keymat(suite, 0x11);
            let out2 =
                Sa::from_keymat(SaParams::new(SPI, Direction::Outbound, suite), &k2).expect("sa");
            assert_ne!(seal(&out2, b"x", 4).0[8..24], ivs[0][..]);
        }
    }
}

/// The reason `open` must give for a packet whose 32-bit sequence field reads `seq_lo`
/// on a receiver (window `w`, highest received `top`, first subspace, `top >= w - 1`)
/// that has received `got`, when the ICV covers a different sequence number: an
/// independent model of RFC 4303 §3.4.3 and Appendix A2.2.
fn expected_for_seq(seq_lo: u32, esn: bool, w: u64, top: u64, got: &HashSet<u64>) -> OpenError {
    let seq = u64::from(seq_lo);
    if esn && seq + w <= top {
        // Left of the window: A2.2 places it in the next 2^32 subspace, where the ICV
        // (which covers the high bits) fails.
        return OpenError::Auth;
    }
    if seq == 0 {
        OpenError::InvalidSequence
    } else if seq > top {
        OpenError::Auth
    } else if top - seq >= w {
        OpenError::TooOld
    } else if got.contains(&seq) {
        OpenError::Replayed
    } else {
        OpenError::Auth
    }
}

/// Every single-bit flip of a sealed packet, for every suite with and without ESN,
/// fails with the right reason: SPI bits → `WrongSpi`; sequence-number bits → what the
/// replay window says (`Replayed`, `TooOld`, `InvalidSequence`) or else `Auth`; IV,
/// ciphertext and ICV bits → `Auth`. The receiver has a window with gaps, and the
/// flipped packets leave it untouched: the genuine packet opens afterwards, once.
#[test]
fn every_bit_flip_fails_with_the_right_reason() {
    const W: u64 = 64;
    for suite in suites() {
        for esn in [false, true] {
            let (out, inb) = windowed_pair(suite, esn, 0x3C, W);
            let pkts: Vec<Vec<u8>> = (1..=201u64)
                .map(|i| seal(&out, &payload(37, i as u8), 4).0)
                .collect();
            // Received: 100..=200 without the multiples of 3 from 138 on (gaps inside
            // the window 137..=200).
            let mut got = HashSet::new();
            for seq in 100..=200u64 {
                if seq >= 138 && seq % 3 == 0 {
                    continue;
                }
                open(&inb, &pkts[seq as usize - 1]).expect("open");
                got.insert(seq);
            }
            assert_eq!(inb.seq(), 200);
            // Targets: a gap inside the window, and the next packet ahead of it.
            for target in [150u64, 201] {
                let pkt = &pkts[target as usize - 1];
                let hdr = suite.header_len();
                let icv_start = pkt.len() - suite.icv_len();
                for bit in 0..pkt.len() * 8 {
                    let byte = bit / 8;
                    let mut bad = pkt.clone();
                    bad[byte] ^= 0x80 >> (bit % 8);
                    let expect = match byte {
                        0..=3 => OpenError::WrongSpi,
                        4..=7 => {
                            let lo = u32::from_be_bytes([bad[4], bad[5], bad[6], bad[7]]);
                            expected_for_seq(lo, esn, W, 200, &got)
                        }
                        _ => OpenError::Auth,
                    };
                    let region = match byte {
                        0..=3 => "spi",
                        4..=7 => "seq",
                        b if b < hdr => "iv",
                        b if b < icv_start => "ciphertext",
                        _ => "icv",
                    };
                    assert_eq!(
                        open(&inb, &bad).map(|(_, _, s)| s),
                        Err(expect),
                        "{suite} esn={esn} target={target} bit {bit} ({region})"
                    );
                }
                let before = inb.counters();
                assert_eq!(open(&inb, pkt).map(|(_, _, s)| s), Ok(target));
                assert_eq!(open(&inb, pkt), Err(OpenError::Replayed));
                assert_eq!(
                    inb.counters().dropped(OpenError::Replayed),
                    before.dropped(OpenError::Replayed) + 1
                );
                got.insert(target);
            }
        }
    }
}

/// Every suite, a 1024-packet window: packets delivered reordered (reversed in blocks
/// of 250, all inside the window) are each accepted exactly once, duplicates are
/// `Replayed`, the oldest number still inside the window is accepted, and one just
/// left of it is `TooOld` (`Auth` with ESN, A2.2).
#[test]
fn reordering_within_the_window_is_accepted_exactly_once() {
    let w = 1024u64;
    for suite in suites() {
        for esn in [false, true] {
            let (out, inb) = windowed_pair(suite, esn, 0x77, w);
            let n = w + 600;
            let pkts: Vec<Vec<u8>> = (0..n).map(|_| seal(&out, &[], 59).0).collect();
            let open_seq = |seq: u64| open(&inb, &pkts[seq as usize - 1]).map(|(_, _, s)| s);
            // 1..=500 (inside the window), reversed in blocks of 250.
            let mut order: Vec<u64> = Vec::new();
            for block in (1..=500u64).collect::<Vec<_>>().chunks(250) {
                order.extend(block.iter().rev());
            }
            for &seq in &order {
                assert_eq!(open_seq(seq), Ok(seq), "{suite} esn={esn}");
                assert_eq!(open_seq(seq), Err(OpenError::Replayed), "{suite} esn={esn}");
            }
            // Jump to the end, leaving 501..n-1 unreceived; top = n.
            assert_eq!(open_seq(n), Ok(n));
            let oldest_in = n - w + 1;
            assert!(oldest_in > 500);
            assert_eq!(open_seq(oldest_in), Ok(oldest_in), "{suite} esn={esn}");
            assert_eq!(open_seq(oldest_in), Err(OpenError::Replayed));
            let too_old = if esn {
                OpenError::Auth
            } else {
                OpenError::TooOld
            };
            for seq in [n - w, n - w - 1, 1, 500] {
                assert_eq!(open_seq(seq), Err(too_old), "{suite} esn={esn} seq {seq}");
            }
            assert_eq!(inb.counters().packets, 502);
        }
    }
}
