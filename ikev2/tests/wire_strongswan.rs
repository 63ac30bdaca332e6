//! Real strongSwan 5.9.8 messages (two charon-systemd instances in network namespaces,
//! PSK, captured with tcpdump; non-ESP marker removed): IKE_SA_INIT, IKE_AUTH, a
//! CREATE_CHILD_SA for a Child SA (refused), an IKE SA rekey, and two Delete exchanges. Every message must parse, hold
//! the payloads strongSwan logged, and re-emit byte for byte. The SK payloads are verified
//! and decrypted with the keys charon logged (AES-256-CBC + HMAC-SHA2-256-128) and their
//! inner chains parsed and re-emitted.

mod common;

use common::sk::{bytes, open_cbc_sha256};
use ikev2::wire::{
    dh, emit_chain, emit_encrypted_prefix, encr, integ, parse_chain, prf, raw_body, AddrRange,
    AuthMethod, ExchangeType, IdType, Message, NotifyType, Payload, PayloadSlice, PayloadType,
    ProtocolId, TrafficSelector, TransformType, ENCRYPTED_BODY_OFFSET,
};

// Keys from charon's log (ike = 4): the first IKE SA, then the one that rekeyed it.
const SK_AI: &str = "2c55afd6019ed8fc5b1b2f9d8bdae9362f2e543ed3fb09dc3044e437a2763c38";
const SK_AR: &str = "9d213439de2597752691b3ca0145222d457d8816a7c0aa2cfb0db4be469897d9";
const SK_EI: &str = "688a01d9bae9a48a55be71ed7139053868afd3da2911a94fe29c6c300a649184";
const SK_ER: &str = "b8bf680e6f9da903092299757397585f0e9a8cc312feb90eaaccad9514cc7994";
const SK_AI2: &str = "3528c8c7d303180aa7f29282a4b5a571abf67e21f26cb687cdec6203ebdb619f";
const SK_AR2: &str = "cad1951bc332b435fce67f04af2bf57fbf25d71ab4ccdca22956a4b5bf9275f1";
const SK_EI2: &str = "807a3c9ffe8fffa8bb454e3768ab4109a032cc211a2fe38c7359bf7be1276d29";
const SK_ER2: &str = "2ad84377aa72d239473d2ef1084a00e548f9b1acd3e39725f0a3d9bda2f47aa8";

const SPI_I: u64 = 0x4e7518306bc9723f;
const SPI_R: u64 = 0x876e1c43c8f273e0;
const SPI_I2: u64 = 0x638b664a07d96555;
const SPI_R2: u64 = 0xfae13cfd932eab55;

const SA_INIT_REQ: &str = concat!(
    "4e7518306bc9723f000000000000000021202208000000000000021e220000800200002c010100040300000c",
    "0100000c800e0100030000080300000c0300000802000005000000080400000e02000024020100030300000c",
    "01000014800e0080030000080200000500000008040000130000002c030100040300000c0100000c800e0100",
    "03000008030000020300000802000002000000080400000228000108000e0000504d22fc2ca8a0305a9d7f42",
    "58d890acdc28e75b07cc327623db38e1c696f62e34e3c671020de8cecb8aa513e7283de9d30700ca3fb162c1",
    "cc8c447161e82015c346627df9f0fcdf91d32f37ca349969d941dcac26594657b44766f84c73f6c19522fa79",
    "b481bfceaac30727a251a674c4f246531c526e7a236a952e8fd611ff40fd699f6c9fbbf4e43b19b65988e25c",
    "742769cfa507c1b9757dcf1833e893aff85c7addbd81085af156ddf66a95273cc4f6a87199096134801cb3a4",
    "70438a8d0dabfae3f6230ce6c22d3d24b1f9624b9d63f0458a330c87670adf75d53df126a5396fa11a7b29ed",
    "f1d3b94594c9a52f227e3741713da93d428e206a1995259a29000024b1eafa0454052e0f34794056e36127da",
    "f0bc8038ee93394feb57692c3207fddc2900001c00004004f858e461c7581c755cedf138ddb95d1a074bdbb8",
    "2900001c000040050c4228d6a61791a492a3e8fd6534188eff7aad5f290000080000402e2900000e0000402f",
    "0002000300040000000800004016",
);
const SA_INIT_RESP: &str = concat!(
    "4e7518306bc9723f876e1c43c8f273e02120222000000000000001d6220000300000002c010100040300000c",
    "0100000c800e0100030000080300000c0300000802000005000000080400000e28000108000e00005dabc076",
    "a15ae03ab203d9d990b1444b9d830384957800545b683b49612543ba98be499f32985ca942e5a0f2a580ee34",
    "e25c8843e91489ca98fb90d41476b4d5e8ef2551038f701dda63a84282ae5a0675bd8b0f052e98ed6251dd92",
    "a901f62ec1aa305412cf56c4fa1cb48216900df5a60c66f4e01b575993d244b6fe1d116b3d5d3d02d23361b3",
    "e3418af6338e032ff060a9d100a610eb1cfe6981ea0472b90c768ccb7e3be5b83e3acec387acf4f5c550a64d",
    "bc43155a338ff95806da9b243c6b9e4439c6c0d23ae4b9840d1da95147f292d0044991627753adcd67ac5eeb",
    "7fbba214eaad6508fd964576bb7928169f2cf809a3170f67638d68df3370f34a290000241b509963844ef39d",
    "cf82f1faf9750e941c4f4a606e80658ca2dca9e78bd3807b2900001c00004004034da28e1af61bd1347ef1fd",
    "3058af3c36e411eb2900001c000040059931e18f1cc2964ad51938f049b7dbdae1bcbd26290000080000402e",
    "2900000e0000402f00020003000429000008000040220000000800004014",
);
const AUTH_REQ: &str = concat!(
    "4e7518306bc9723f876e1c43c8f273e02e202308000000010000016023000144f6a12b7a9572acea10a68ffc",
    "79c877d623a53a8201b298c38a2d14068c0be496557e50c75dc4fa9c8c42cd6651ec292baed834ca99904dd2",
    "66c737f7b4d1847f115faa2fa1b29f480b1b2fdaf342367e66199fdefd1f0362b36a0613c2f90ce751382fed",
    "6a89eee09e82376fabf7d7cfc526dc9a372213fc89bbab459f8e71228f12ca8a729e27faf4ad050383518f0e",
    "1669b12f48995acdfd63b45e5c07e8564644be0f8d2cdf1c8631242c736009181b2625b4773047e705e50b30",
    "91efb3505fb0ad474d06435181ff2696869cb55bc3c7934eee8f9b23e8646aff6c53df8c3d999cc41c76ed7e",
    "94cbcb3b88dd314bde6445f366281cb042762755ab43fd30a0f27fd1a8b44b8fda3897b4348060801c73f381",
    "e2e749142e64b23d1d15dced110ef9b317d4a35a6a0190ed2d354d2e83682dc5d09a1728fe685a4abca6cc3b",
);
const AUTH_RESP: &str = concat!(
    "4e7518306bc9723f876e1c43c8f273e02e2023200000000100000090240000746e3da0bf9008afce1c7e6616",
    "f6d6dc21028b3d7416439bfb883fcc245436b951ed4a2d441b7d69175f148ba82ddc2a2111e17b57a45316a8",
    "bc1906b7172b0f578e4bb643bb28c2ce74f3258e092fa2761945252a2b528e9d1a9e2f399c015abaf70a0aa0",
    "42b27869673fcaf1e543d1f6",
);
const CHILD_REQ: &str = concat!(
    "4e7518306bc9723f876e1c43c8f273e02e20240800000002000002302100021490e99aa0afca4ebb74134deb",
    "1150442eb6b3636ac5ac424b8bf0dfb05819c685558f24835d11bf22a27f5cdef8c033241ce557f908e881a3",
    "7409c7e09056c7b975780ee8848f584b617dac9771e6f12344c6a6636a6ce06efe2fd6dd70bbe46e269925b0",
    "21ec29a81371de28046b4009b23ceabc5e7ca78b9585de8e4972cdbaa4ae18409652c3dc6532a1da71a7b7bc",
    "186330687625a667d850370ed96c09117e846f75616fd92503942480dfd05b535036583a247541777da3f4c0",
    "6d27641c05f2ca5dd92b2deae16b1728adf484e4001b9f23036168903e5b9bca90e635b089588651cb28a792",
    "23ffe2015a3b68d08afaaf445b2fe5d0662edb8f5e753f513025a1b2d3db238e05fca88766159ea3cbdc6889",
    "402de314382d8917eba2439659988347a03952eb605c24e9ecadb401dd4f6c4a56e964f97ef7ee227fb81d9b",
    "cc9fc907aac11f6eaeb73208a1a158c94881f80785fa68f455954dfae6f159fad946d2563de4c149653cb9a1",
    "d0c7fcf6796cc8ac7dcc84a79ac3cdf672d254413ad5f06dc6aad61afd46733525cab14d61e669443c4ca5a1",
    "3f7ec18c6ce6f2ea5d8c2492d1767da3b7e6f80b464ed0992e33f26558c5293d1df53203271982f6e76e96b0",
    "8f0ebb4e73493bdeed05dd302433e07d2dbe34631e2dda5c6b93f16f204093f4f64e9730bd2f53dae9d9cfbc",
    "460225df63e2c1f73ca9f107186d7d02c197d84ba4f0bac98af859c1b01a5ca4",
);
const CHILD_RESP: &str = concat!(
    "4e7518306bc9723f876e1c43c8f273e02e2024200000000200000050290000343bfaed951469c4f2c60e3c48",
    "f264f8e2771183b7658b6187755d40d3ad4529a7d160026eb94ccfb49fae29bc9259bc8c",
);
const REKEY_REQ: &str = concat!(
    "4e7518306bc9723f876e1c43c8f273e02e2024080000000300000210210001f46920702387e5c0cd08aff9f7",
    "9259deb19ada6b76836ff4d96d5c14a230fc60b6ef6c61adaf3fd22fc9cd957c2f6971bc38fe46380b70c111",
    "9cb1a749aa7fa211f771f386ee4d7cb2e48607b9b5690c01740ddd393e1480e54fd9e35de6bf4083bb712403",
    "e8cb85c1ad411fe8ffa2c708ec55496cecd0ccce4cd738e554b6ab9cf187bcb7aff7d58bcf78360c8dcdbf9f",
    "6be63c1ca0179f6bb3df7c0fba422034f69355c966ae128862113bf7b0b2e26e97e030632f77b208aa07fdd6",
    "db5984bd5b846b65b4ed44f1e97f3a8ee5bce569c948e049276d5203451ecd044d774fbd4b90b1d608d0c39c",
    "5b80792cdd6a7cbc4442eeb35faadf6a787a1a1645ecf0266998a9f5b3c5229346507f880997ca2b93811866",
    "3a8b27df4c0f281bbb773b4759526d089a63c8a2be12a6b4c64baac8bb2a8dd1a2ddac245231fe6985b9b2c7",
    "9f2dacb7e6c3264b24d9c1802fcb615f17cdc21ae953d0cf72765854b85298994e77402c50908adf4b884181",
    "91c769979350851a56a14cb13c18432054b705ead8e95d58b6bce915fd72b3534e311cc149c957bb7e669032",
    "260ae1da26f328fb51325d1eb26150b1341cb2360c65937daaf9ac6f800f8942a0ae62ee6d7a3aba9868cb67",
    "511e730432221cc77ca30817dc770ebd00a0168e573a6514b5816f80a04a9f86188e9acfcdd15d9411297965",
);
const REKEY_RESP: &str = concat!(
    "4e7518306bc9723f876e1c43c8f273e02e20242000000003000001b021000194267bf79699e3a7458b7a2fd5",
    "ee733f8adab9f8fc64deec73f958986960250c7949cfa173b82986172458f3587b41603733cbd19ed66be72c",
    "1870cb2dde2cf94c452e245df4b2f87b009d7a23fa9993b54a83d083148684e19112e75ec6f6f8825f363bd4",
    "5b1882ede7d3f057e9a814f0d05b109f7b00f6c626d938c7440c24633941551bbd085601e2c9b21d14502390",
    "0596ab90b6f660df8979514486020f6cd8e4282fc2657bede2477364dd8340b80b07453164689be58a964520",
    "f45b89ec1f7aaa9eca6b104f2d00f1b68f1f8739e73f932726495f5a316805b0e8fa3bc7ea2e3e39fbabee48",
    "3f9d7005f8b8b8b44979277dc4bc53ca4157704ef64668cf32fa85d7937578787d29b049df83ab4b585330d1",
    "070863c658a4af79b87180bfc17e411c5d078e7ebbb89a732940c89676db5288a5fe8f46bd2133112dfc0b34",
    "2ce8406174b64dacc01355aa003f3a01680055369fcf32eb297cf00f770000d3cfa3509f539da6d4a382ce36",
    "486a1d04223fb584d9d0bb3025f78e98357af1d4787894af05ef4d5dc34d4cb08a2b3b89",
);
const DELETE_REQ: &str = concat!(
    "4e7518306bc9723f876e1c43c8f273e02e20250800000004000000502a0000349610faeb4146098b8d87b30c",
    "7ae380f9e6adce5fad67a3eccc18f63df707382649bc07253bf456ed30979f6d1caf4beb",
);
const DELETE_RESP: &str = concat!(
    "4e7518306bc9723f876e1c43c8f273e02e20252000000004000000500000003458a9cf7307f1bc1626024ef0",
    "6c18383764ccdd738ef9f1b26d6213474a6457e703d2d30aa9b7f4d90d0044edc5a951b8",
);
const DELETE2_REQ: &str = concat!(
    "638b664a07d96555fae13cfd932eab552e20250800000000000000502a000034ea1db4f8c453769d09553725",
    "d821a279940f9b84d75171745e915a4c7d194573c2b3844c0179f2aeed1915101cc825a9",
);
const DELETE2_RESP: &str = concat!(
    "638b664a07d96555fae13cfd932eab552e202520000000000000005000000034df6159e4d16e0ce530b60575",
    "37e9bbbecf9191ad31881031aa303f2c7a845ecbda35fef216420bbb03fc10f136c0728b",
);

/// Parses, checks the re-emission is byte-identical, returns the message.
fn parse_exact(h: &str) -> Message {
    let b = bytes(h);
    let m = Message::parse(&b).unwrap();
    assert_eq!(m.emit().unwrap(), b, "re-emission differs");
    assert_eq!(m.buffer_len(), b.len());
    m
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
    let plain = open_cbc_sha256(&b, ENCRYPTED_BODY_OFFSET, sk_e, sk_a);
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
    let plain = open_cbc_sha256(&bytes(AUTH_REQ), ENCRYPTED_BODY_OFFSET, SK_EI, SK_AI);
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
fn create_child_sa_refused() {
    // [ SA No KE TSi TSr ] -> [ N(TS_UNACCEPT) ]
    let req = parse_exact(CHILD_REQ);
    assert_eq!(req.header.exchange_type, ExchangeType::CREATE_CHILD_SA);
    assert_eq!(req.header.message_id, 2);
    let p = inner(CHILD_REQ, &req, SK_EI, SK_AI);
    use PayloadType as P;
    assert_eq!(types(&p), [P::SA, P::NONCE, P::KE, P::TSI, P::TSR]);
    let sa = p.sa().unwrap();
    assert!(sa
        .iter()
        .all(|x| x.protocol == ProtocolId::ESP && x.spi.len() == 4));
    // aes128-sha256-modp2048 (PFS) first.
    assert_eq!(
        sa[0].transforms_of(TransformType::DH).next().unwrap().id,
        dh::MODP_2048
    );
    assert_eq!(p.ke().unwrap().group, dh::MODP_2048);
    let resp = parse_exact(CHILD_RESP);
    let p = inner(CHILD_RESP, &resp, SK_ER, SK_AR);
    assert_eq!(notify_types(&p), [NotifyType::TS_UNACCEPTABLE]);
}

#[test]
fn ike_sa_rekey() {
    // [ SA No KE ] both ways; the IKE proposal carries the new 8-octet SPI.
    let req = parse_exact(REKEY_REQ);
    let p = inner(REKEY_REQ, &req, SK_EI, SK_AI);
    use PayloadType as P;
    assert_eq!(types(&p), [P::SA, P::NONCE, P::KE]);
    let sa = p.sa().unwrap();
    assert!(sa.iter().all(|x| x.protocol == ProtocolId::IKE));
    assert_eq!(sa[0].spi_u64(), Some(SPI_I2));
    let resp = parse_exact(REKEY_RESP);
    let p = inner(REKEY_RESP, &resp, SK_ER, SK_AR);
    assert_eq!(types(&p), [P::SA, P::NONCE, P::KE]);
    let sa = p.sa().unwrap();
    assert_eq!(sa.len(), 1);
    assert_eq!(sa[0].spi_u64(), Some(SPI_R2));
    assert_eq!(p.ke().unwrap().data.len(), 256);
}

#[test]
fn delete_exchanges() {
    // Old IKE SA deleted after the rekey, then the new one on terminate.
    for (req, resp, spis, keys) in [
        (
            DELETE_REQ,
            DELETE_RESP,
            (SPI_I, SPI_R),
            (SK_EI, SK_AI, SK_ER, SK_AR),
        ),
        (
            DELETE2_REQ,
            DELETE2_RESP,
            (SPI_I2, SPI_R2),
            (SK_EI2, SK_AI2, SK_ER2, SK_AR2),
        ),
    ] {
        let m = parse_exact(req);
        assert_eq!(m.header.exchange_type, ExchangeType::INFORMATIONAL);
        assert_eq!((m.header.spi_i, m.header.spi_r), spis);
        let p = inner(req, &m, keys.0, keys.1);
        let d: Vec<_> = p.deletes().collect();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].protocol, ProtocolId::IKE);
        assert!(d[0].spis.is_empty());
        let r = parse_exact(resp);
        assert!(r.header.flags.response);
        assert_eq!(
            r.payloads.encrypted().unwrap().next_payload,
            PayloadType::NONE
        );
        assert!(inner(resp, &r, keys.2, keys.3).is_empty());
    }
}

#[test]
fn truncations_of_real_messages_fail_cleanly() {
    for h in [
        SA_INIT_REQ,
        SA_INIT_RESP,
        AUTH_REQ,
        AUTH_RESP,
        CHILD_REQ,
        CHILD_RESP,
        REKEY_REQ,
        REKEY_RESP,
        DELETE_REQ,
        DELETE_RESP,
        DELETE2_REQ,
        DELETE2_RESP,
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
