//! Pre-shared-key authentication (RFC 7296 §2.15).

use subtle::ConstantTimeEq;

use super::{Prf, Secret};

/// The pad string mixed into the PSK (RFC 7296 §2.15), 17 ASCII bytes, no terminator.
pub const KEY_PAD: &[u8] = b"Key Pad for IKEv2";

/// `<SignedOctets> = RealMessage | NonceData(peer) | prf(SK_p, RestOfIDPayload)`.
///
/// * `real_message`: our whole first message (IKE_SA_INIT request for the initiator,
///   IKE_SA_INIT response for the responder), from the IKE header on, exactly as sent.
/// * `peer_nonce`: the other side's Nonce Data (no payload header).
/// * `sk_p`: SK_pi for the initiator's octets, SK_pr for the responder's.
/// * `rest_of_id_payload`: our IDi/IDr payload body after the 4-byte generic header:
///   ID Type, 3 RESERVED bytes, Identification Data.
pub fn signed_octets(
    prf: Prf,
    real_message: &[u8],
    peer_nonce: &[u8],
    sk_p: &Secret,
    rest_of_id_payload: &[u8],
) -> Vec<u8> {
    let maced_id = prf.prf(sk_p.as_bytes(), rest_of_id_payload);
    let mut out = Vec::with_capacity(real_message.len() + peer_nonce.len() + maced_id.len());
    out.extend_from_slice(real_message);
    out.extend_from_slice(peer_nonce);
    out.extend_from_slice(maced_id.as_bytes());
    out
}

/// `AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>)`, the
/// Authentication Data for auth method 2 (Shared Key Message Integrity Code).
pub fn psk_auth(prf: Prf, psk: &[u8], signed_octets: &[u8]) -> Vec<u8> {
    let k = prf.prf(psk, KEY_PAD);
    prf.prf(k.as_bytes(), signed_octets).as_bytes().to_vec()
}

/// Constant-time equality of two byte strings (length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// Checks a received PSK AUTH value in constant time.
pub fn verify_psk_auth(prf: Prf, psk: &[u8], signed_octets: &[u8], received: &[u8]) -> bool {
    ct_eq(&psk_auth(prf, psk, signed_octets), received)
}
