//! Rough timings (ignored by default; run with
//! `cargo test -p causeway-ikev2 --profile bench --test crypto_timing -- --ignored --nocapture`).

use std::time::Instant;

use ikev2::crypto::{DhGroup, DhPrivateKey, Encr, Integ, SkCipher, TestRng};

#[test]
#[ignore = "timing only"]
fn print_timings() {
    let mut rng = TestRng::new(1);
    for g in DhGroup::ALL {
        let peer = DhPrivateKey::generate(g, &mut rng).unwrap().public_value();
        let n = if g.is_modp() { 20 } else { 200 };
        let t = Instant::now();
        for _ in 0..n {
            let k = DhPrivateKey::generate(g, &mut rng).unwrap();
            let z = k.shared_secret(&peer).unwrap();
            assert_eq!(z.len(), g.shared_len());
        }
        let us = t.elapsed().as_micros() as f64 / n as f64;
        println!("dh {:>13} keygen+shared: {us:>9.0} us", g.name());
    }
    for (name, encr, bits, integ) in [
        ("aes256gcm16", Encr::AesGcm16, 256, None),
        (
            "aes256-sha256",
            Encr::AesCbc,
            256,
            Some(Integ::HmacSha256_128),
        ),
    ] {
        let ek = vec![1u8; encr.keymat_len(bits)];
        let ak = vec![2u8; integ.map_or(0, |i| i.key_len())];
        let c = SkCipher::new(encr, bits, integ, &ek, &ak).unwrap();
        let inner = vec![0u8; 1200];
        let mut out = vec![0u8; c.body_len(inner.len())];
        let n = 20_000;
        let t = Instant::now();
        for _ in 0..n {
            c.encrypt(&[0u8; 32], &inner, &mut rng, &mut out).unwrap();
        }
        let enc = t.elapsed().as_nanos() as f64 / n as f64;
        let t = Instant::now();
        for _ in 0..n {
            assert_eq!(c.decrypt(&[0u8; 32], &out).unwrap().len(), 1200);
        }
        let dec = t.elapsed().as_nanos() as f64 / n as f64;
        println!("sk {name:>13} 1200 B: encrypt {enc:>6.0} ns, decrypt {dec:>6.0} ns");
    }
}
