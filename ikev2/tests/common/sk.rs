//! Opening strongSwan's captured SK / SKF payloads (AES-256-CBC + HMAC-SHA2-256-128) with
//! the keys charon logged, for the wire_strongswan tests.

use aws_lc_rs::cipher::{DecryptingKey, DecryptionContext, UnboundCipherKey, AES_256};
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;

/// Hex to bytes.
pub fn bytes(h: &str) -> Vec<u8> {
    hex::decode(h).unwrap()
}

/// Verifies the ICV of `msg` (HMAC-SHA2-256-128 over everything before it), decrypts the
/// AES-256-CBC body that starts (with its IV) at `body_offset` and strips the padding:
/// returns the plaintext.
pub fn open_cbc_sha256(msg: &[u8], body_offset: usize, sk_e: &str, sk_a: &str) -> Vec<u8> {
    let (authed, icv) = msg.split_at(msg.len() - 16);
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &bytes(sk_a)), authed);
    assert_eq!(&tag.as_ref()[..16], icv, "ICV");
    let (iv, ct) = authed[body_offset..].split_at(16);
    let key = DecryptingKey::cbc(UnboundCipherKey::new(&AES_256, &bytes(sk_e)).unwrap()).unwrap();
    let mut buf = ct.to_vec();
    let iv: [u8; 16] = iv.try_into().unwrap();
    let pt = key
        .decrypt(&mut buf, DecryptionContext::Iv128(FixedLength::from(iv)))
        .unwrap();
    let pad = *pt.last().unwrap() as usize;
    pt[..pt.len() - 1 - pad].to_vec()
}
