//! PRF / integrity HMAC known answers (RFC 2202, RFC 4868 §2.7) and the IKEv2 key
//! schedule (RFC 7296 §2.13/§2.14/§2.17/§2.18) against an SP 800-135-style vector.

use std::collections::HashMap;

use ikev2::crypto::{
    skeyseed, skeyseed_rekey, ChildKeys, ChildSuite, CryptoError, DhGroup, Encr, IkeKeys, IkeSuite,
    Integ, Prf, Secret, SkCipher, TestRng,
};

fn prf_for(alg: &str) -> Prf {
    match alg {
        "sha1" => Prf::HmacSha1,
        "sha256" => Prf::HmacSha256,
        "sha384" => Prf::HmacSha384,
        "sha512" => Prf::HmacSha512,
        _ => panic!("unknown alg {alg}"),
    }
}

fn integ_for(alg: &str) -> Integ {
    match alg {
        "sha1" => Integ::HmacSha1_96,
        "sha256" => Integ::HmacSha256_128,
        "sha384" => Integ::HmacSha384_192,
        "sha512" => Integ::HmacSha512_256,
        _ => panic!("unknown alg {alg}"),
    }
}

#[test]
fn hmac_known_answers() {
    let mut prf_cases = 0;
    let mut integ_cases = 0;
    for line in include_str!("vectors/hmac.txt").lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let (name, kind, alg) = (f[0], f[1], f[2]);
        let key = hex::decode(f[3]).unwrap();
        let data = hex::decode(f[4]).unwrap();
        let expected = hex::decode(f[5]).unwrap();
        match kind {
            "prf" => {
                let prf = prf_for(alg);
                let out = prf.prf(&key, &data);
                assert_eq!(out.as_bytes(), &expected[..], "{name} {alg}");
                assert_eq!(out.len(), prf.output_len());
                // prf_parts over a split of the data gives the same result.
                let (a, b) = data.split_at(data.len() / 2);
                assert_eq!(prf.prf_parts(&key, &[a, b]).as_bytes(), &expected[..]);
                prf_cases += 1;
            }
            "integ" => {
                // The SK/ESP ICV is the truncated HMAC over the data, which is what the
                // CBC SkCipher computes; check lengths and truncation here.
                let integ = integ_for(alg);
                assert_eq!(expected.len(), integ.icv_len(), "{name} {alg}");
                let full = prf_for(alg).prf(&key, &data);
                assert_eq!(&full.as_bytes()[..integ.icv_len()], &expected[..], "{name}");
                integ_cases += 1;
            }
            other => panic!("unknown kind {other}"),
        }
    }
    assert!(
        prf_cases >= 20 && integ_cases >= 10,
        "{prf_cases} {integ_cases}"
    );
}

fn kdf_vector() -> HashMap<String, Vec<u8>> {
    include_str!("vectors/ikev2_kdf_sha1.txt")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(" = "))
        .filter(|(k, _)| *k != "prf")
        .map(|(k, v)| (k.to_string(), hex::decode(v).unwrap()))
        .collect()
}

#[test]
fn ikev2_kdf_known_answer_sha1() {
    let v = kdf_vector();
    let prf = Prf::HmacSha1;
    let g_ir = Secret::new(&v["g_ir"]);
    let g_ir_new = Secret::new(&v["g_ir_new"]);
    let (ni, nr) = (&v["ni"], &v["nr"]);
    let spi_i: [u8; 8] = v["spi_i"].clone().try_into().unwrap();
    let spi_r: [u8; 8] = v["spi_r"].clone().try_into().unwrap();

    let seed = skeyseed(prf, ni, nr, &g_ir);
    assert_eq!(seed.as_bytes(), &v["skeyseed"][..]);

    let dkm = prf
        .prf_plus_parts(seed.as_bytes(), &[ni, nr, &spi_i, &spi_r], 132)
        .unwrap();
    assert_eq!(dkm.as_bytes(), &v["dkm"][..]);

    // IkeKeys::derive splits the same stream: SK_d is its first prf-length bytes.
    let suite = IkeSuite {
        encr: Encr::AesCbc,
        key_bits: 128,
        integ: Some(Integ::HmacSha1_96),
        prf,
        dh: DhGroup::Modp2048,
    };
    let keys = IkeKeys::derive(&suite, &seed, ni, nr, &spi_i, &spi_r).unwrap();
    let mut concat = Vec::new();
    for k in [
        &keys.sk_d,
        &keys.sk_ai,
        &keys.sk_ar,
        &keys.sk_ei,
        &keys.sk_er,
        &keys.sk_pi,
        &keys.sk_pr,
    ] {
        concat.extend_from_slice(k.as_bytes());
    }
    // 3*20 + 2*20 + 2*16 = 132 bytes: exactly the vector's DKM length.
    assert_eq!(concat, v["dkm"]);
    assert_eq!(keys.sk_d.as_bytes(), &v["dkm"][..20]);

    // Child SA KEYMAT without and with PFS (ChildKeys::derive with 66 + 0 bytes per
    // direction requests 132 bytes).
    let sk_d = &keys.sk_d;
    let child = ChildKeys::derive(prf, sk_d, None, ni, nr, 66, 0).unwrap();
    let mut c = child.encr_i2r.as_bytes().to_vec();
    c.extend_from_slice(child.encr_r2i.as_bytes());
    assert_eq!(c, v["dkm_child"]);
    let child = ChildKeys::derive(prf, sk_d, Some(&g_ir_new), ni, nr, 66, 0).unwrap();
    let mut c = child.encr_i2r.as_bytes().to_vec();
    c.extend_from_slice(child.encr_r2i.as_bytes());
    assert_eq!(c, v["dkm_child_dh"]);

    // IKE SA rekey SKEYSEED.
    let re = skeyseed_rekey(prf, sk_d, &g_ir_new, ni, nr);
    assert_eq!(re.as_bytes(), &v["skeyseed_rekey"][..]);
}

#[test]
fn prf_plus_prefix_property_and_limit() {
    // prf+ output for a shorter length is a prefix of a longer one, T1 = prf(K, S | 0x01).
    for prf in [
        Prf::HmacSha1,
        Prf::HmacSha256,
        Prf::HmacSha384,
        Prf::HmacSha512,
    ] {
        let long = prf.prf_plus(b"key", b"seed", 500).unwrap();
        let short = prf.prf_plus(b"key", b"seed", 37).unwrap();
        assert_eq!(&long.as_bytes()[..37], short.as_bytes());
        assert_eq!(
            &long.as_bytes()[..prf.output_len()],
            prf.prf(b"key", b"seed\x01").as_bytes()
        );
        assert_eq!(prf.prf_plus(b"k", b"s", 0).unwrap().len(), 0);
        assert!(prf.prf_plus(b"k", b"s", prf.prf_plus_max()).is_ok());
        assert_eq!(
            prf.prf_plus(b"k", b"s", prf.prf_plus_max() + 1)
                .unwrap_err(),
            CryptoError::PrfPlusTooLong
        );
        assert_eq!(Prf::from_id(prf.id()), Some(prf));
    }
    assert_eq!(Prf::from_id(5), Some(Prf::HmacSha256));
    assert_eq!(Prf::from_id(4), None);
}

#[test]
fn ike_key_lengths_follow_the_suite() {
    let v = kdf_vector();
    let seed = Secret::new(&v["skeyseed"]);
    let gcm = IkeSuite {
        encr: Encr::AesGcm16,
        key_bits: 256,
        integ: None,
        prf: Prf::HmacSha384,
        dh: DhGroup::Ecp384,
    };
    let k = IkeKeys::derive(&gcm, &seed, b"ni", b"nr", &[1; 8], &[2; 8]).unwrap();
    assert_eq!(k.sk_d.len(), 48);
    assert_eq!(k.sk_ai.len(), 0);
    assert_eq!(k.sk_ei.len(), 36, "AES-256 key + 4-byte salt");
    assert_eq!(k.sk_pr.len(), 48);
    assert_ne!(k.sk_ei, k.sk_er);
    assert_ne!(k.sk_pi, k.sk_pr);
    let cbc = IkeSuite {
        encr: Encr::AesCbc,
        key_bits: 128,
        integ: Some(Integ::HmacSha512_256),
        prf: Prf::HmacSha256,
        dh: DhGroup::Modp2048s256,
    };
    let k = IkeKeys::derive(&cbc, &seed, b"ni", b"nr", &[1; 8], &[2; 8]).unwrap();
    assert_eq!((k.sk_d.len(), k.sk_ai.len(), k.sk_ei.len()), (32, 64, 16));
    // Invalid combinations are refused.
    let bad = IkeSuite { integ: None, ..cbc };
    assert!(IkeKeys::derive(&bad, &seed, b"n", b"n", &[0; 8], &[0; 8]).is_err());
    let bad = IkeSuite {
        key_bits: 100,
        ..cbc
    };
    assert!(IkeKeys::derive(&bad, &seed, b"n", b"n", &[0; 8], &[0; 8]).is_err());
    let bad = IkeSuite {
        integ: Some(Integ::HmacSha256_128),
        ..gcm
    };
    assert!(IkeKeys::derive(&bad, &seed, b"n", b"n", &[0; 8], &[0; 8]).is_err());
}

#[test]
fn rekeyed_ike_sa_keys_differ_and_both_sides_agree() {
    let suite = IkeSuite {
        encr: Encr::AesGcm16,
        key_bits: 128,
        integ: None,
        prf: Prf::HmacSha256,
        dh: DhGroup::Curve25519,
    };
    let g = Secret::new(&[7u8; 32]);
    let old = IkeKeys::initial(&suite, &g, b"ni-0", b"nr-0", &[1; 8], &[2; 8]).unwrap();
    let g2 = Secret::new(&[8u8; 32]);
    let new_i = old
        .rekey(&suite, &g2, b"ni-1", b"nr-1", &[3; 8], &[4; 8])
        .unwrap();
    let new_r = old
        .rekey(&suite, &g2, b"ni-1", b"nr-1", &[3; 8], &[4; 8])
        .unwrap();
    assert_eq!(new_i.sk_d, new_r.sk_d);
    assert_ne!(new_i.sk_d, old.sk_d);
    // The rekeyed SA's SK_e* work as SkCipher keys.
    let (out, _) = new_i.ciphers(true).unwrap();
    let (_, inb) = new_r.ciphers(false).unwrap();
    let body = out
        .encrypt_to_vec(b"hdr", b"payloads", &mut TestRng::new(1))
        .unwrap();
    assert_eq!(inb.decrypt(b"hdr", &body).unwrap(), b"payloads");
}

#[test]
fn child_keys_for_suite() {
    let sk_d = Secret::new(&[5u8; 32]);
    let gcm = ChildSuite {
        encr: Encr::AesGcm16,
        key_bits: 256,
        integ: None,
        dh: None,
    };
    let k = ChildKeys::for_suite(Prf::HmacSha256, &gcm, &sk_d, None, b"ni", b"nr").unwrap();
    assert_eq!((k.encr_i2r.len(), k.integ_i2r.len()), (36, 0));
    assert_ne!(k.encr_i2r, k.encr_r2i);
    // The split is i->r encr | i->r integ | r->i encr | r->i integ over one prf+ stream.
    let cbc = ChildSuite {
        encr: Encr::AesCbc,
        key_bits: 128,
        integ: Some(Integ::HmacSha256_128),
        dh: Some(DhGroup::Ecp256),
    };
    let g = Secret::new(&[9u8; 32]);
    let k = ChildKeys::for_suite(Prf::HmacSha256, &cbc, &sk_d, Some(&g), b"ni", b"nr").unwrap();
    let stream = Prf::HmacSha256
        .prf_plus_parts(
            sk_d.as_bytes(),
            &[g.as_bytes(), b"ni", b"nr"],
            2 * (16 + 32),
        )
        .unwrap();
    let s = stream.as_bytes();
    assert_eq!(k.encr_i2r.as_bytes(), &s[..16]);
    assert_eq!(k.integ_i2r.as_bytes(), &s[16..48]);
    assert_eq!(k.encr_r2i.as_bytes(), &s[48..64]);
    assert_eq!(k.integ_r2i.as_bytes(), &s[64..96]);
    let dbg = format!("{k:?} {sk_d:?}");
    assert!(dbg.contains("redacted") && !dbg.contains("05, 05"), "{dbg}");
    // SkCipher accepts child-sized keys too (same algorithms).
    assert!(SkCipher::new(
        Encr::AesCbc,
        128,
        Some(Integ::HmacSha256_128),
        k.encr_i2r.as_bytes(),
        k.integ_i2r.as_bytes()
    )
    .is_ok());
}
