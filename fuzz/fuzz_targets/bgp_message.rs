//! Parse arbitrary bytes as one BGP message; when it parses cleanly, emit it and re-parse:
//! the result must be equal. Also exercises stream framing.
#![no_main]

use bgp::wire::{frame_len, Ctx, Message};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else {
        return;
    };
    let ctx = Ctx {
        four_octet_as: mode & 1 == 1,
    };
    let _ = frame_len(bytes);
    if let Ok(m) = Message::parse(bytes, &ctx) {
        if matches!(&m, Message::Update(u) if u.error.is_some()) {
            return;
        }
        let out = m.emit(&ctx).expect("a parsed message re-emits");
        assert!(out.len() <= 4096);
        assert_eq!(Message::parse(&out, &ctx), Ok(m));
    }
});
