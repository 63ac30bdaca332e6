//! Fuzz `config::Config::from_str`: never panics on any UTF-8 text, and every
//! diagnostic's position lies inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let diags = match config::Config::from_str(text, "fuzz.toml") {
        Ok(c) => c.warnings,
        Err(e) => {
            assert!(e.error_count() >= 1);
            e.diagnostics().to_vec()
        }
    };
    let lines = text.split('\n').count();
    for d in diags {
        assert!(d.line.unwrap_or(1) <= lines, "{d}");
        let _ = d.to_string();
    }
});
