//! Parse arbitrary bytes as an IKEv2 message; what parses must re-emit to bytes that parse
//! to the same message, with the emitted length equal to `buffer_len()`. The decrypted-chain
//! parser is exercised too (first octet = first payload type, rest = chain).
#![no_main]

use ikev2::wire::{emit_chain, parse_chain, Message, PayloadType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::parse(data) {
        let bytes = m.emit().expect("a parsed message re-emits");
        assert_eq!(bytes.len(), m.buffer_len());
        let again = Message::parse(&bytes).expect("re-emitted message parses");
        assert_eq!(again, m);
    }
    if let Some((&first, rest)) = data.split_first() {
        if let Ok(c) = parse_chain(PayloadType(first), rest) {
            let (f, bytes) = emit_chain(&c).expect("a parsed chain re-emits");
            assert_eq!(parse_chain(f, &bytes).expect("re-emitted chain parses"), c);
        }
    }
});
