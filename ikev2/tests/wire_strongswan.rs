//! Real strongSwan 5.9.8 messages (two charon-systemd instances in network namespaces,
//! PSK, captured with tcpdump; non-ESP marker removed): IKE_SA_INIT request/response,
//! IKE_AUTH request/response and an INFORMATIONAL exchange. Every message must parse, hold
//! the payloads strongSwan logged, and re-emit byte for byte. The SK payloads are verified
//! and decrypted with the keys charon logged (AES-256-CBC + HMAC-SHA2-256-128) and their
//! inner chains parsed and re-emitted.

use aws_lc_rs::cipher::{DecryptingKey, DecryptionContext, UnboundCipherKey, AES_256};
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;
use ikev2::wire::{
    dh, emit_chain, emit_encrypted_prefix, encr, integ, parse_chain, prf, raw_body, AddrRange,
    AuthMethod, ExchangeType, IdType, Message, NotifyType, Payload, PayloadSlice, PayloadType,
    ProtocolId, TrafficSelector, TransformType, ENCRYPTED_BODY_OFFSET,
};

// Keys from charon's log (ike = 4) for this IKE SA.
const SK_AI: &str = "931f18dc98500df5d292a5f888f7c589aea08010b0ab97fe3bb82730167a5e07";
const SK_AR: &str = "840c10d9fe3d3f0c2d47c6dc823bf49a44f54f94d954d081d6bb7e42a30dacd4";
const SK_EI: &str = "fa131949fff42b7ec9fe3021a2f69ee4d7ffe334986a8ab9b8a5d62631a18158";
const SK_ER: &str = "429326b7db2e36540fdc9ee357e91547bf2cdd9faeacafed64fe35e5a60aae5a";

const SPI_I: u64 = 0x77f99d4f269de0f3;
const SPI_R: u64 = 0x609b330177c8466b;

const SA_INIT_REQ: &str = concat!(
    "77f99d4f269de0f3000000000000000021202208000000000000021e220000800200002c010100040300000c",
    "0100000c800e0100030000080300000c0300000802000005000000080400000e02000024020100030300000c",
    "01000014800e0080030000080200000500000008040000130000002c030100040300000c0100000c800e0100",
    "03000008030000020300000802000002000000080400000228000108000e00009a456b886a0957dad61cea02",
    "d3a9602d481a2047a55b6076f1c55ab6f789e9375b4419e58d5f01bc064cab9b2cafafba0f5cda1ac3e5b54a",
    "756e9cc4d268f8b26cb59718829f829d5f6585a018d103e913a1dd7a10f3bb476584fa73e3016628c27e04f2",
    "84ae959f38d16d0e7eb0c5535343a24fd04f982b427b6a31ccf8522fd2eb6b86f6b199f976c7333a3ace08fe",
    "cf710b561cb34b138902b91672fcc56de2f3f1c73cb16b1fcc385a4e24b06b5175439bb4438a91c46a2abad5",
    "7fd54a725b9d36d8dd2744259c8a4fd163e9a68dd3782b85651efea491c893f4c0fc7728cb1ea9b57e199cab",
    "dce6fc04ce1478527f423bc79bc42eeda1f9673b7eb0ba0d29000024d553d44c1ec6582611843c83abb71821",
    "c22f373ac056e449be18d7deea0e93ce2900001c00004004f5024f18b6761d79b7374701f701d1a31fa45e0a",
    "2900001c00004005cca794add8d7611a235c0a9d2968c9400c8e6c57290000080000402e2900000e0000402f",
    "0002000300040000000800004016",
);
const SA_INIT_RESP: &str = concat!(
    "77f99d4f269de0f3609b330177c8466b2120222000000000000001d6220000300000002c010100040300000c",
    "0100000c800e0100030000080300000c0300000802000005000000080400000e28000108000e0000fb3264fc",
    "f51e5b6a9382dbbb8a36bfba5cd389589b4c7154238b1fbf17875ec662f07caeeb80ef59bf55f83c322e2155",
    "33e251895964b948226f29009463bb9d2ff8ab37ac68d9bab281b3872769fb3608057a4752be311e0ed27fa9",
    "63fe7c550989749bc764ee4598f8f70a7956971e72fa7acaedc5faa879b294b1cb539c713a616d850aa2a298",
    "16be800e85dd8d3984bc9c406e819e2326900f2d9aa69bb23284dfbf1f62b64898c53a9023242100ae10aa5f",
    "af1390f6aabe567144c299a45253f3273406b5073702db2825ab42f4ea18173bbe5e7d9df7b56c20e6cfc38b",
    "e112070b62c3cf5880154a461cae344c6cbcf12c9ae71feceafef834effee5c729000024ce527f5286f18935",
    "8181ea4348296a46b60b7f9fe963b32e782bf024264fbb612900001c00004004f5a0948c579d22295d855384",
    "3667b979e17c1d002900001c000040056f1c2ea9c23b399ae1b9702748cd4c9d2834692f290000080000402e",
    "2900000e0000402f00020003000429000008000040220000000800004014",
);
const AUTH_REQ: &str = concat!(
    "77f99d4f269de0f3609b330177c8466b2e202308000000010000016023000144d9ee36287da8be042821cc78",
    "6e6ffae2866be45779c2e8514f4fae2ed7bba311cde014d5e303d188bb87567b511abbc64cf675d1fd4fa1fd",
    "ef32e0054aec49a756ec1ef7846c64741e01e59fef405a428db5dd7c43e92222d3e42584d247d87b8af9f9af",
    "dba15c71bbe1e45ad2acced19c6c3b8c92e0ef7494052eb554286ba5bad6b9357514995a1cfc8dd1a7c101b4",
    "d3ca24d428cccce899727f72e6c3ec3279ed89902b3ed7d619253485992ca2a81c5da5cf538f5ff35d92c123",
    "f320c826924e304e423924370ce96a6b78d197e823965b585ac51dd23ae93104dc8b4ecbb4b18472bc6b3b86",
    "2562c5ea4214e3c2529f7fc008cb9735c8e03845f59d07af12892cb6fabdf1ca817a6eb0ac16aa06138100d3",
    "c66e7c9acbcb7eac2f3f8ef2afd39a6c923d2d6ce51b26e5ca4242078022819ad5f663cbe347f1a247758668",
);
const AUTH_RESP: &str = concat!(
    "77f99d4f269de0f3609b330177c8466b2e202320000000010000009024000074c05dc240d9dfd5aa327d61a1",
    "01020e6239b30ad4a73a9fe605e7265a6736dee80f7ccaa8e562802c2ca155b7970428b764bd702f51947c4d",
    "8223b5f588da393169715b1c5c5fa8480106c3ff1f8a0799578354f7ecb9077342ff879bf88d1776dada6905",
    "5e401b93bb763b36bc822fa7",
);
const INFO_REQ: &str = concat!(
    "77f99d4f269de0f3609b330177c8466b2e2025000000000000000050290000346ff9ff012c5f6bb3bca7d2d8",
    "1244ac78c52265fd2e49328cbeea45199c59215f2a77b86501a34df94e84c4eb88f96520",
);
const INFO_RESP: &str = concat!(
    "77f99d4f269de0f3609b330177c8466b2e2025280000000000000050000000345307ac271d7519b1fd6550f2",
    "7c0d6243be5227595b84d1d283620bbe53f2b4caa811a8f5c3d2bb54f50a8ed8fe0d956c",
);

fn bytes(h: &str) -> Vec<u8> {
    hex::decode(h).unwrap()
}

/// Parses, checks the re-emission is byte-identical, returns the message.
fn parse_exact(h: &str) -> Message {
    let b = bytes(h);
    let m = Message::parse(&b).unwrap();
    assert_eq!(m.emit().unwrap(), b, "re-emission differs");
    assert_eq!(m.buffer_len(), b.len());
    m
}

/// Verifies the ICV (HMAC-SHA2-256-128 over header..ciphertext), decrypts AES-256-CBC and
/// strips the padding: returns the inner payload chain bytes.
fn open_sk(msg: &[u8], sk_e: &str, sk_a: &str) -> Vec<u8> {
    let (authed, icv) = msg.split_at(msg.len() - 16);
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &bytes(sk_a)), authed);
    assert_eq!(&tag.as_ref()[..16], icv, "ICV");
    let body = &authed[ENCRYPTED_BODY_OFFSET..];
    let (iv, ct) = body.split_at(16);
    let key = DecryptingKey::cbc(UnboundCipherKey::new(&AES_256, &bytes(sk_e)).unwrap()).unwrap();
    let mut buf = ct.to_vec();
    let iv: [u8; 16] = iv.try_into().unwrap();
    let pt = key
        .decrypt(&mut buf, DecryptionContext::Iv128(FixedLength::from(iv)))
        .unwrap();
    let pad = *pt.last().unwrap() as usize;
    pt[..pt.len() - 1 - pad].to_vec()
}

/// Opens the SK payload of `m`, parses the inner chain and checks it re-emits exactly.
fn inner(h: &str, m: &Message, sk_e: &str, sk_a: &str) -> Vec<Payload> {
    let b = bytes(h);
    let sk = m.payloads.encrypted().unwrap();
    // The prefix helper reproduces header + SK generic header exactly.
    let mut prefix = Vec::new();
    let off =
        emit_encrypted_prefix(&mut prefix, &m.header, sk.next_payload, sk.body.len()).unwrap();
    assert_eq!(off, ENCRYPTED_BODY_OFFSET);
    assert_eq!(prefix, b[..ENCRYPTED_BODY_OFFSET]);
    assert_eq!(&b[ENCRYPTED_BODY_OFFSET..], sk.body.as_slice());
    let plain = open_sk(&b, sk_e, sk_a);
    let payloads = parse_chain(sk.next_payload, &plain).unwrap();
    let (first, again) = emit_chain(&payloads).unwrap();
    assert_eq!(first, sk.next_payload);
    assert_eq!(again, plain);
    payloads
}

fn notify_types(p: &[Payload]) -> Vec<NotifyType> {
    p.notifies().map(|n| n.notify_type).collect()
}

fn types(p: &[Payload]) -> Vec<PayloadType> {
    p.iter().map(Payload::payload_type).collect()
}

#[test]
fn ike_sa_init_request() {
    let m = parse_exact(SA_INIT_REQ);
    assert_eq!(m.header.spi_i, SPI_I);
    assert_eq!(m.header.spi_r, 0);
    assert_eq!(m.header.exchange_type, ExchangeType::IKE_SA_INIT);
    assert!(m.header.flags.initiator && !m.header.flags.response);
    assert_eq!(m.header.message_id, 0);
    // [ SA KE No N(NATD_S_IP) N(NATD_D_IP) N(FRAG_SUP) N(HASH_ALG) N(REDIR_SUP) ]
    use PayloadType as P;
    assert_eq!(
        types(&m.payloads),
        [
            P::SA,
            P::KE,
            P::NONCE,
            P::NOTIFY,
            P::NOTIFY,
            P::NOTIFY,
            P::NOTIFY,
            P::NOTIFY
        ]
    );
    assert_eq!(
        notify_types(&m.payloads),
        [
            NotifyType::NAT_DETECTION_SOURCE_IP,
            NotifyType::NAT_DETECTION_DESTINATION_IP,
            NotifyType::IKEV2_FRAGMENTATION_SUPPORTED,
            NotifyType::SIGNATURE_HASH_ALGORITHMS,
            NotifyType(16406), // REDIRECT_SUPPORTED (RFC 5685), not named here
        ]
    );
    let nat = m
        .payloads
        .notify(NotifyType::NAT_DETECTION_SOURCE_IP)
        .unwrap();
    assert_eq!(nat.data.len(), 20);
    assert_eq!(nat.protocol, ProtocolId::NONE);
    // proposals = aes256-sha256-modp2048, aes128gcm16-prfsha256-ecp256, aes256-sha1-modp1024
    let sa = m.payloads.sa().unwrap();
    assert_eq!(sa.len(), 3);
    assert!(sa
        .iter()
        .all(|p| p.protocol == ProtocolId::IKE && p.spi.is_empty()));
    assert_eq!(sa.iter().map(|p| p.number).collect::<Vec<_>>(), [1, 2, 3]);
    let ids =
        |i: usize, t: TransformType| -> Vec<u16> { sa[i].transforms_of(t).map(|t| t.id).collect() };
    assert_eq!(ids(0, TransformType::ENCR), [encr::AES_CBC]);
    assert_eq!(sa[0].transforms[0].key_length(), Some(256));
    assert_eq!(ids(0, TransformType::INTEG), [integ::HMAC_SHA2_256_128]);
    assert_eq!(ids(0, TransformType::PRF), [prf::HMAC_SHA2_256]);
    assert_eq!(ids(0, TransformType::DH), [dh::MODP_2048]);
    assert_eq!(ids(1, TransformType::ENCR), [encr::AES_GCM_16]);
    assert_eq!(sa[1].transforms[0].key_length(), Some(128));
    assert!(ids(1, TransformType::INTEG).is_empty());
    assert_eq!(ids(1, TransformType::DH), [dh::ECP_256]);
    assert_eq!(ids(2, TransformType::PRF), [prf::HMAC_SHA1]);
    assert_eq!(ids(2, TransformType::DH), [dh::MODP_1024]);
    let ke = m.payloads.ke().unwrap();
    assert_eq!(ke.group, dh::MODP_2048);
    assert_eq!(ke.data.len(), 256);
    assert_eq!(m.payloads.nonce().unwrap().len(), 32);
}

#[test]
fn ike_sa_init_response() {
    let m = parse_exact(SA_INIT_RESP);
    assert_eq!((m.header.spi_i, m.header.spi_r), (SPI_I, SPI_R));
    assert!(!m.header.flags.initiator && m.header.flags.response);
    let sa = m.payloads.sa().unwrap();
    assert_eq!(sa.len(), 1);
    assert_eq!(sa[0].number, 1);
    assert_eq!(sa[0].transforms.len(), 4);
    assert_eq!(m.payloads.ke().unwrap().data.len(), 256);
    assert!(m
        .payloads
        .notify(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED)
        .is_some());
    assert!(m.payloads.error_notify().is_none());
}

#[test]
fn ike_auth_request() {
    let m = parse_exact(AUTH_REQ);
    assert_eq!(m.header.exchange_type, ExchangeType::IKE_AUTH);
    assert_eq!(m.header.message_id, 1);
    assert_eq!(types(&m.payloads), [PayloadType::SK]);
    let sk = m.payloads.encrypted().unwrap();
    assert_eq!(sk.next_payload, PayloadType::IDI);
    let p = inner(AUTH_REQ, &m, SK_EI, SK_AI);
    // [ IDi N(INIT_CONTACT) IDr AUTH SA TSi TSr N(MOBIKE_SUP) N(NO_ADD_ADDR) N(MULT_AUTH)
    //   N(EAP_ONLY) N(MSG_ID_SYN_SUP) ]
    use PayloadType as P;
    assert_eq!(
        types(&p)[..7],
        [P::IDI, P::NOTIFY, P::IDR, P::AUTH, P::SA, P::TSI, P::TSR]
    );
    assert_eq!(p.len(), 12);
    let idi = p.id_i().unwrap();
    assert_eq!(idi.id_type, IdType::IPV4_ADDR);
    assert_eq!(idi.ip(), Some("192.0.2.1".parse().unwrap()));
    assert_eq!(p.id_r().unwrap().ip(), Some("192.0.2.2".parse().unwrap()));
    let auth = p.auth().unwrap();
    assert_eq!(auth.method, AuthMethod::SHARED_KEY_MIC);
    assert_eq!(auth.data.len(), 32);
    assert!(p.notify(NotifyType::INITIAL_CONTACT).is_some());
    assert!(p.notify(NotifyType::MOBIKE_SUPPORTED).is_some());
    // esp_proposals = aes128-sha256-modp2048, aes256-sha1: ESP with a 4-octet SPI.
    let sa = p.sa().unwrap();
    assert_eq!(sa.len(), 2);
    assert!(sa.iter().all(|x| x.protocol == ProtocolId::ESP));
    assert!(sa[0].spi_u32().is_some());
    assert_eq!(sa[0].spi, sa[1].spi);
    assert_eq!(sa[0].transforms_of(TransformType::ESN).count(), 1);
    // local_ts = 10.1.0.0/16, remote_ts = 10.2.0.0/16, 2001:db8:2::/48
    let tsi = p.ts_i().unwrap();
    assert_eq!(tsi.len(), 1);
    assert_eq!(tsi[0].as_prefix(), Some(("10.1.0.0".parse().unwrap(), 16)));
    assert!(tsi[0].is_any_port());
    let tsr = p.ts_r().unwrap();
    assert_eq!(
        tsr.iter()
            .map(TrafficSelector::as_prefix)
            .collect::<Vec<_>>(),
        [
            Some(("10.2.0.0".parse().unwrap(), 16)),
            Some(("2001:db8:2::".parse().unwrap(), 48))
        ]
    );
    assert!(matches!(tsr[1].range, AddrRange::V6(..)));
    // The raw IDi body (for the AUTH octets) is the ID payload body as sent.
    let plain = open_sk(&bytes(AUTH_REQ), SK_EI, SK_AI);
    assert_eq!(
        raw_body(PayloadType::IDI, &plain, PayloadType::IDI).unwrap(),
        idi.to_bytes()
    );
}

#[test]
fn ike_auth_response() {
    let m = parse_exact(AUTH_RESP);
    assert!(m.header.flags.response);
    let p = inner(AUTH_RESP, &m, SK_ER, SK_AR);
    // [ IDr AUTH N(MOBIKE_SUP) N(NO_ADD_ADDR) N(TS_UNACCEPT) ]
    use PayloadType as P;
    assert_eq!(
        types(&p),
        [P::IDR, P::AUTH, P::NOTIFY, P::NOTIFY, P::NOTIFY]
    );
    assert_eq!(p.id_r().unwrap().ip(), Some("192.0.2.2".parse().unwrap()));
    assert_eq!(
        p.error_notify().map(|n| n.notify_type),
        Some(NotifyType::TS_UNACCEPTABLE)
    );
}

#[test]
fn informational_exchange() {
    // Request from the responder (I flag clear), response from the initiator (I|R).
    let req = parse_exact(INFO_REQ);
    assert_eq!(req.header.exchange_type, ExchangeType::INFORMATIONAL);
    assert!(!req.header.flags.initiator && !req.header.flags.response);
    let p = inner(INFO_REQ, &req, SK_ER, SK_AR);
    assert_eq!(notify_types(&p), [NotifyType(16399)]); // NO_ADDITIONAL_ADDRESSES (RFC 4555)
    let resp = parse_exact(INFO_RESP);
    assert!(resp.header.flags.initiator && resp.header.flags.response);
    assert_eq!(
        resp.payloads.encrypted().unwrap().next_payload,
        PayloadType::NONE
    );
    assert!(inner(INFO_RESP, &resp, SK_EI, SK_AI).is_empty());
}

#[test]
fn truncations_of_real_messages_fail_cleanly() {
    for h in [
        SA_INIT_REQ,
        SA_INIT_RESP,
        AUTH_REQ,
        AUTH_RESP,
        INFO_REQ,
        INFO_RESP,
    ] {
        let b = bytes(h);
        for n in 0..b.len() {
            assert!(Message::parse(&b[..n]).is_err(), "prefix {n} parsed");
        }
        // Same truncation with the length field fixed up: the payload walker must notice.
        for n in 28..b.len() {
            let mut t = b[..n].to_vec();
            t[24..28].copy_from_slice(&(n as u32).to_be_bytes());
            assert!(Message::parse(&t).is_err(), "fixed-up prefix {n} parsed");
        }
    }
}
