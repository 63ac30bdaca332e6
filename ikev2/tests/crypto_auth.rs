//! PSK authentication (RFC 7296 §2.15).

mod common;

use common::vectors::hex_blocks;
use ikev2::crypto::{
    ct_eq, psk_auth, signed_octets, verify_psk_auth, DhGroup, DhPrivateKey, Encr, IkeKeys,
    IkeSuite, Prf, Secret, TestRng, KEY_PAD,
};

#[test]
fn key_pad_is_the_rfc_string_without_terminator() {
    assert_eq!(KEY_PAD, b"Key Pad for IKEv2");
    assert_eq!(KEY_PAD.len(), 17);
}

#[test]
fn python_cross_check_vectors() {
    let mut n = 0;
    for (name, m) in hex_blocks(include_str!("vectors/psk_auth_python_crosscheck.txt")) {
        let prf = match name {
            "sha1" => Prf::HmacSha1,
            "sha256" => Prf::HmacSha256,
            "sha384" => Prf::HmacSha384,
            "sha512" => Prf::HmacSha512,
            other => panic!("{other}"),
        };
        let octets = signed_octets(
            prf,
            &m["msg"],
            &m["nonce"],
            &Secret::new(&m["sk_p"]),
            &m["id_body"],
        );
        assert_eq!(octets, m["octets"], "{name}");
        let auth = psk_auth(prf, &m["psk"], &octets);
        assert_eq!(auth, m["auth"], "{name}");
        assert_eq!(auth.len(), prf.output_len());
        assert!(verify_psk_auth(prf, &m["psk"], &octets, &m["auth"]));
        n += 1;
    }
    assert_eq!(n, 4);
}

#[test]
fn both_sides_authenticate_each_other_and_wrong_inputs_fail() {
    // A miniature exchange: keys from a real DH, then AUTH in both directions.
    let suite = IkeSuite {
        encr: Encr::AesGcm16,
        key_bits: 256,
        integ: None,
        prf: Prf::HmacSha256,
        dh: DhGroup::Ecp256,
    };
    let mut rng = TestRng::new(99);
    let i = DhPrivateKey::generate(suite.dh, &mut rng).unwrap();
    let r = DhPrivateKey::generate(suite.dh, &mut rng).unwrap();
    let (ni, nr) = ([0x11u8; 32], [0x22u8; 32]);
    let (spi_i, spi_r) = ([1u8; 8], [2u8; 8]);
    let gi = i.shared_secret(&r.public_value()).unwrap();
    let gr = r.shared_secret(&i.public_value()).unwrap();
    let ki = IkeKeys::initial(&suite, &gi, &ni, &nr, &spi_i, &spi_r).unwrap();
    let kr = IkeKeys::initial(&suite, &gr, &ni, &nr, &spi_i, &spi_r).unwrap();
    let psk = b"shared secret";
    let init_msg = b"IKE_SA_INIT request bytes";
    let resp_msg = b"IKE_SA_INIT response bytes";
    let id_i = [1u8, 0, 0, 0, 192, 0, 2, 1];
    let id_r = [1u8, 0, 0, 0, 198, 51, 100, 7];

    // Initiator's AUTH: its own message, the responder's nonce, SK_pi.
    let oi = signed_octets(suite.prf, init_msg, &nr, ki.sk_p(true), &id_i);
    let auth_i = psk_auth(suite.prf, psk, &oi);
    // Responder recomputes with its keys.
    let oi_r = signed_octets(suite.prf, init_msg, &nr, &kr.sk_pi, &id_i);
    assert!(verify_psk_auth(suite.prf, psk, &oi_r, &auth_i));
    // Responder's AUTH.
    let or = signed_octets(suite.prf, resp_msg, &ni, kr.sk_p(false), &id_r);
    let auth_r = psk_auth(suite.prf, psk, &or);
    let or_i = signed_octets(suite.prf, resp_msg, &ni, &ki.sk_pr, &id_r);
    assert!(verify_psk_auth(suite.prf, psk, &or_i, &auth_r));
    assert_ne!(auth_i, auth_r);

    // Wrong PSK, wrong ID, wrong nonce, wrong message, wrong SK_p, truncated AUTH.
    assert!(!verify_psk_auth(
        suite.prf,
        b"shared secreT",
        &oi_r,
        &auth_i
    ));
    let bad = signed_octets(suite.prf, init_msg, &nr, &kr.sk_pi, &id_r);
    assert!(!verify_psk_auth(suite.prf, psk, &bad, &auth_i));
    let bad = signed_octets(suite.prf, init_msg, &ni, &kr.sk_pi, &id_i);
    assert!(!verify_psk_auth(suite.prf, psk, &bad, &auth_i));
    let bad = signed_octets(suite.prf, resp_msg, &nr, &kr.sk_pi, &id_i);
    assert!(!verify_psk_auth(suite.prf, psk, &bad, &auth_i));
    let bad = signed_octets(suite.prf, init_msg, &nr, &kr.sk_pr, &id_i);
    assert!(!verify_psk_auth(suite.prf, psk, &bad, &auth_i));
    assert!(!verify_psk_auth(suite.prf, psk, &oi_r, &auth_i[..31]));
    assert!(!verify_psk_auth(suite.prf, psk, &oi_r, &[]));
}

#[test]
fn ct_eq_semantics() {
    assert!(ct_eq(b"", b""));
    assert!(ct_eq(b"abc", b"abc"));
    assert!(!ct_eq(b"abc", b"abd"));
    assert!(!ct_eq(b"abc", b"ab"));
}
