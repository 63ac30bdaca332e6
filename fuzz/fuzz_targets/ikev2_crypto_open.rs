//! SK payload decryption and DH peer-value validation on arbitrary input: must never panic.
#![no_main]

use ikev2::crypto::{DhGroup, DhPrivateKey, Encr, Integ, SkCipher, TestRng};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let (aad_len, rest) = match rest.split_first() {
        Some((&n, r)) => ((n as usize).min(r.len()), r),
        None => return,
    };
    let (aad, body) = rest.split_at(aad_len);
    let (encr, bits, integ) = match sel % 6 {
        0 => (Encr::AesGcm16, 128, None),
        1 => (Encr::AesGcm16, 256, None),
        2 => (Encr::AesCbc, 128, Some(Integ::HmacSha1_96)),
        3 => (Encr::AesCbc, 256, Some(Integ::HmacSha256_128)),
        4 => (Encr::AesCbc, 192, Some(Integ::HmacSha384_192)),
        _ => (Encr::AesCbc, 256, Some(Integ::HmacSha512_256)),
    };
    let ek = vec![0x42u8; encr.keymat_len(bits)];
    let ak = vec![0x24u8; integ.map_or(0, |i| i.key_len())];
    if let Ok(c) = SkCipher::new(encr, bits, integ, &ek, &ak) {
        let _ = c.decrypt(aad, body);
    }
    // Peer public values: every group, the raw body as Key Exchange Data.
    let g = DhGroup::ALL[(sel as usize / 6) % DhGroup::ALL.len()];
    if !g.is_modp() || body.len() == g.public_len() {
        if let Ok(k) = DhPrivateKey::generate(g, &mut TestRng::new(sel as u64)) {
            let _ = k.shared_secret(body);
        }
    }
});
