//! Real strongSwan 5.9.8 IKE fragments (RFC 7383; `fragment_size = 200` in strongswan.conf):
//! the IKE_AUTH request split into 3 SKF payloads and an IKE SA rekey response split into 4.
//! Each fragment must parse and re-emit byte for byte, its ICV verify with the keys charon
//! logged, and the decrypted contents, put back together by [`Reassembly`] in any order,
//! must parse as the payloads strongSwan logged.

mod common;

use common::sk::{bytes, open_cbc_sha256};
use ikev2::wire::{
    emit_chain, emit_fragment_prefix, parse_chain, IdType, Message, NotifyType, Payload,
    PayloadSlice, PayloadType, ProtocolId, Reassembly, FRAGMENT_BODY_OFFSET,
};

// Keys from charon's log (ike = 4): the first IKE SA (requests I->R use SK_ei/SK_ai,
// responses R->I SK_er/SK_ar).
const SK_AI: &str = "b94c7b0cb123b83aac9cacde3eb8cab0b39afeb222eb928e2715a64c29caeb65";
const SK_AR: &str = "eb50df6b21896ec97cc4b6451da8b7d757d8bbebdcc2b0e6d6e688097ab07d9c";
const SK_EI: &str = "46429fbae615cc3020c12da27894f6100f4b2b5d9c773c51bb74cffe671cbaf6";
const SK_ER: &str = "f8d889df41b3a53bbf4170478fcf682b1eda653766d983e5147940eb36ed0843";

const AUTH_REQ_FRAGS: [&str; 3] = [
    concat!(
        "65c968a129c1bdb2ff37e57303500da63520230800000001000000a42300008800010003bcf0abb65483db45",
        "05cecb422a8c0bb6f07485514c496a7422f4299fb99bdf41a97c868ef18febb7e4b36c1212f3a8a263efde9a",
        "a78aa8849c7f8fbf7c44507a26fb698f70a1514efcf724cbff072e4c4f602195b4b2861fffc63985da202bab",
        "4253b75182cb30dab050123b47547dfbc2d905c99ea035bc79abf6390b253a0e",
    ),
    concat!(
        "65c968a129c1bdb2ff37e57303500da63520230800000001000000a40000008800020003860fd49c671a14ec",
        "0fea214b8a299661b56895ba6302ebcafbe84218717aaf1c211dc0958cbf2058e987b40c3a599cd5265bb90f",
        "068852dbf3f7d97eb21f1cf747db76e7d772f17405675e710cc13c154edfa9320b00739f37937382a93754f9",
        "f95d97cb5f1d417e0b72ca54cdac513a493fcc01643c8d063119a8262b6bd240",
    ),
    concat!(
        "65c968a129c1bdb2ff37e57303500da63520230800000001000000a400000088000300035e66a244bb905809",
        "91811d9e223b0ebbc8cbf1d953e7cebab482ef8a85e06909f86bc7a27c357bfcbe3b798e0f58268eab4981cd",
        "7bd10416428ff94e8bb6b6427e5c644cbc6495091ffa4fa5dad1ccc8d0d3cfc8422d6d6b71852fd5fc71e9cd",
        "76de4e9e11993385b18b99b43c10bb992d43983719f2b580e3cbd3cf08f39981",
    ),
];
const REKEY_RESP_FRAGS: [&str; 4] = [
    concat!(
        "65c968a129c1bdb2ff37e57303500da63520242000000004000000a42100008800010004fdf3028f447267a2",
        "4a4330fff5fb79611cd02bf906c91d0711880cb1547d2c077080ca350ef0025d1ef877aadebcc7a4fddfbe19",
        "9903d167c8575858b54af46755b6e79978f9b41fe7ed2388c908c5582b50d62b5d9a2b61f9d7e1bd695f838b",
        "8c125d869bb3064a3e952e2e63146957220f29a3b48f0d6716bfa03a134ded41",
    ),
    concat!(
        "65c968a129c1bdb2ff37e57303500da63520242000000004000000a400000088000200040d712fd8ed05fe13",
        "7a177203e9ed38b27cd212b56ac25cb67e7bc0edc951b958819e70eada04e0df98b71b159d6726345cf32045",
        "6af2e65b2ced68ccd0f4a1c0bbbbc9282edbdf027a08a07b623d963ab9c215deb53fa9c04766293744d06e58",
        "f88440d2c79d3759879c15ef54662f7385f830eca28a9da40a2564ce01f442db",
    ),
    concat!(
        "65c968a129c1bdb2ff37e57303500da63520242000000004000000a4000000880003000457d79e90d106c035",
        "b7944e29c611ee50b199de571d171e26e3cb693133e5f1299c417a935f8047fa32fa61f8167e4bd1ba2968f5",
        "76c844663a36390adb192bdae342e27b1ba652e62b87724a2a5dccc0ab57e118aadae352eb417ab9f7d39bc1",
        "f21ece1a8d830055d363af14aa43ebe7ab36b8f7256217d62d4b3272577ed74c",
    ),
    concat!(
        "65c968a129c1bdb2ff37e57303500da63520242000000004000000940000007800040004475efd033a198390",
        "581ea25e453e64450ca8a537f3c721415cba3a6f1356259ea25efb648baf3f744c40799b094b92b6b4e9b45f",
        "22b097525326db0de74ca6f1f30d41713f825589ccecd6d82978c510671884266e566ed2f348278130dadde8",
        "f029bc32475fcab5a820abe28e282752",
    ),
];

/// Parses one fragment message, checks re-emission and the prefix helper, verifies the
/// ICV, decrypts; returns (number, total, next payload, decrypted content).
fn open_fragment(h: &str, sk_e: &str, sk_a: &str) -> (u16, u16, PayloadType, Vec<u8>) {
    let msg = bytes(h);
    let m = Message::parse(&msg).unwrap();
    assert_eq!(m.emit().unwrap(), msg);
    let f = m.payloads.fragment().unwrap();
    let mut prefix = Vec::new();
    let off = emit_fragment_prefix(
        &mut prefix,
        &m.header,
        f.next_payload,
        f.number,
        f.total,
        f.body.len(),
    )
    .unwrap();
    assert_eq!(off, FRAGMENT_BODY_OFFSET);
    assert_eq!(prefix, msg[..FRAGMENT_BODY_OFFSET]);

    let plain = open_cbc_sha256(&msg, FRAGMENT_BODY_OFFSET, sk_e, sk_a);
    (f.number, f.total, f.next_payload, plain)
}

/// Reassembles the fragments in the given order; returns the inner payloads.
fn reassemble(frags: &[&str], order: &[usize], sk_e: &str, sk_a: &str) -> Vec<Payload> {
    let mut r = Reassembly::new();
    let mut done = None;
    for (k, &i) in order.iter().enumerate() {
        let (number, total, next, plain) = open_fragment(frags[i], sk_e, sk_a);
        assert_eq!(number as usize, i + 1);
        assert_eq!(total as usize, frags.len());
        assert_eq!(next == PayloadType::NONE, number != 1);
        let out = r.add(number, total, next, &plain).unwrap();
        assert_eq!(out.is_some(), k + 1 == order.len());
        done = out;
    }
    let (first, chain) = done.unwrap();
    let payloads = parse_chain(first, &chain).unwrap();
    assert_eq!(emit_chain(&payloads).unwrap(), (first, chain));
    payloads
}

#[test]
fn ike_auth_request_fragments() {
    for order in [[0, 1, 2], [2, 0, 1], [1, 2, 0]] {
        let p = reassemble(&AUTH_REQ_FRAGS, &order, SK_EI, SK_AI);
        // [ IDi N(INIT_CONTACT) IDr AUTH SA TSi TSr N(MOBIKE_SUP) N(NO_ADD_ADDR) N(MULT_AUTH)
        //   N(EAP_ONLY) N(MSG_ID_SYN_SUP) ]
        assert_eq!(p.len(), 12);
        assert_eq!(p[0].payload_type(), PayloadType::IDI);
        assert_eq!(p.id_i().unwrap().id_type, IdType::IPV4_ADDR);
        assert!(p.notify(NotifyType::INITIAL_CONTACT).is_some());
        assert_eq!(p.ts_r().unwrap().len(), 2);
    }
}

#[test]
fn rekey_response_fragments() {
    let p = reassemble(&REKEY_RESP_FRAGS, &[3, 1, 0, 2], SK_ER, SK_AR);
    // [ SA No KE ] for the new IKE SA.
    assert_eq!(
        p.iter().map(Payload::payload_type).collect::<Vec<_>>(),
        [PayloadType::SA, PayloadType::NONCE, PayloadType::KE]
    );
    let sa = p.sa().unwrap();
    assert_eq!(sa[0].protocol, ProtocolId::IKE);
    assert!(sa[0].spi_u64().is_some());
    assert_eq!(p.ke().unwrap().data.len(), 256);
}
