//! The `[name]` + `key = hex` block format of the cross-check vectors in tests/vectors/.

use std::collections::HashMap;

/// The blocks of `text`: each `[name]` header with the `key = hex` lines below it.
pub fn hex_blocks(text: &str) -> Vec<(&str, HashMap<&str, Vec<u8>>)> {
    text.split('[')
        .skip(1)
        .map(|block| {
            let (name, rest) = block.split_once(']').unwrap();
            let m = rest
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.trim(), hex::decode(v.trim()).unwrap()))
                .collect();
            (name, m)
        })
        .collect()
}
