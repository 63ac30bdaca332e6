//! `Config::from_str` never panics, on random text and on random mutations of a valid
//! config, and every diagnostic it returns points inside the text.

use config::{Config, Diagnostic};
use proptest::prelude::*;

const VALID: &str = r#"[daemon]
metrics = "127.0.0.1:9474"
log_level = "info"

[[tunnel]]
name = "azure"
profile = "azure"
local_addrs = "192.0.2.1, 2001:db8::1"
remote_addrs = ["198.51.100.7"]
psk_env = "AZURE_PSK"
local_id = "@site.example"
ike_proposals = ["aes256-sha256-modp2048", "aes256gcm16-prfsha384-ecp384"]
esp_proposals = "aes256gcm16"
local_ts = ["10.1.0.0/16"]
remote_ts = ["10.2.0.0/16"]
ike_lifetime = "8h"
child_lifetime = "7.5h"
child_life_bytes = "102400000KB"
dpd_delay = "30s"
encap = "auto"
mtu = 1400
mss_clamp = 1350
start_action = "start"

[bgp]
asn = 65010
router_id = "10.1.255.1"

[[bgp.neighbor]]
address = "10.2.255.254"
tunnel = "azure"
multihop = 8
announce = ["10.1.0.0/16"]
import = ["10.2.0.0/16 le 24"]
max_prefixes = 10000
"#;

/// Fragments that make mutations hit interesting syntax.
const TOKENS: &[&str] = &[
    "\"",
    "'",
    "[",
    "]",
    "[[",
    "]]",
    "=",
    ",",
    "\n",
    "#",
    ".",
    "{",
    "}",
    "\\",
    "\"\"\"",
    "é",
    "0",
    "-1",
    "4294967296",
    "9999999999999999999999",
    "1.5",
    "le",
    "ge",
    "/",
    "/33",
    "::",
    "h",
    "7.5h",
    "tunnel",
    "neighbor",
    "name",
    "bgp.neighbor",
    "true",
    "1979-05-27",
    "inf",
    "nan",
];

fn check(text: &str) -> Result<(), TestCaseError> {
    let r = Config::from_str(text, "p.toml");
    let diags: Vec<Diagnostic> = match &r {
        Ok(c) => c.warnings.clone(),
        Err(e) => {
            prop_assert!(e.error_count() >= 1);
            e.diagnostics().to_vec()
        }
    };
    let lines = text.split('\n').count();
    for d in &diags {
        let line = d.line.unwrap_or(1);
        prop_assert!(line >= 1 && line <= lines, "{d} (text has {lines} lines)");
        if let Some(span) = &d.span {
            prop_assert!(span.start <= text.len(), "{d}: span {span:?}");
        }
        let shown = d.to_string();
        prop_assert!(shown.starts_with("p.toml"), "{shown}");
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, String),
    Replace(usize, usize, String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let text = prop_oneof![
        prop::sample::select(TOKENS).prop_map(str::to_string),
        "[ -~]{0,8}",
        any::<char>().prop_map(|c| c.to_string()),
    ];
    prop_oneof![
        (any::<usize>(), 1usize..20).prop_map(|(p, n)| Mutation::Delete(p, n)),
        (any::<usize>(), text.clone()).prop_map(|(p, s)| Mutation::Insert(p, s)),
        (any::<usize>(), 1usize..12, text).prop_map(|(p, n, s)| Mutation::Replace(p, n, s)),
    ]
}

fn apply(text: &str, m: &Mutation) -> String {
    // Positions on char boundaries, so the result is valid UTF-8 like any &str.
    let bounds: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect();
    let at = |p: usize| bounds[p % bounds.len()];
    let mut s = text.to_string();
    match m {
        Mutation::Delete(p, n) => {
            let a = at(*p);
            let b = bounds
                .iter()
                .copied()
                .find(|b| *b >= a + n)
                .unwrap_or(text.len());
            s.replace_range(a..b, "");
        }
        Mutation::Insert(p, t) => s.insert_str(at(*p), t),
        Mutation::Replace(p, n, t) => {
            let a = at(*p);
            let b = bounds
                .iter()
                .copied()
                .find(|b| *b >= a + n)
                .unwrap_or(text.len());
            s.replace_range(a..b, t);
        }
    }
    s
}

#[test]
fn the_seed_is_valid() {
    let c = Config::from_str(VALID, "p.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.tunnels.len(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn random_text_never_panics(text in "\\PC{0,400}") {
        check(&text)?;
    }

    #[test]
    fn random_tomlish_text_never_panics(parts in prop::collection::vec(prop::sample::select(TOKENS), 0..60)) {
        check(&parts.concat())?;
    }

    #[test]
    fn mutations_of_a_valid_config_never_panic(ms in prop::collection::vec(mutation(), 1..6)) {
        let mut text = VALID.to_string();
        for m in &ms {
            text = apply(&text, m);
        }
        check(&text)?;
    }
}
