//! PSK sources: permission checks at validation and load time, redaction, zeroizing type.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use config::{load_psk, Config, Psk, PskError, PskSource};

const SECRET: &str = "correct-horse-battery-staple";

fn write_psk(dir: &Path, name: &str, mode: u32) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("{SECRET}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

fn tunnel_with(psk_line: &str) -> String {
    format!("[[tunnel]]\nname = \"a\"\nlocal_addrs = \"192.0.2.1\"\nremote_addrs = \"198.51.100.7\"\n{psk_line}\n")
}

#[test]
fn psk_file_permissions_checked_by_validation() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_psk(dir.path(), "good.psk", 0o600);
    let c = Config::from_str(
        &tunnel_with(&format!("psk_file = \"{}\"", good.display())),
        "t.toml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.tunnels[0].psk, PskSource::File(good.clone()));

    for (mode, shown) in [
        (0o644, "0644"),
        (0o640, "0640"),
        (0o604, "0604"),
        (0o610, "0610"),
    ] {
        let p = write_psk(dir.path(), &format!("m{mode:o}.psk"), mode);
        let e = Config::from_str(
            &tunnel_with(&format!("psk_file = \"{}\"", p.display())),
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            format!(
                "t.toml:5:12: psk_file `{}` has mode {shown}: group and others must have no access (chmod 600)",
                p.display()
            )
        );
        assert!(!e.contains(SECRET));
    }
    // 0400 is fine too.
    let ro = write_psk(dir.path(), "ro.psk", 0o400);
    assert!(Config::from_str(
        &tunnel_with(&format!("psk_file = \"{}\"", ro.display())),
        "t.toml"
    )
    .is_ok());
}

#[test]
fn psk_file_missing_or_not_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = Config::from_str(
        &tunnel_with(&format!("psk_file = \"{}\"", dir.path().display())),
        "t.toml",
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        format!(
            "t.toml:5:12: psk_file `{}` is not a regular file",
            dir.path().display()
        )
    );
    let e = Config::from_str(&tunnel_with("psk_file = \"/nonexistent/cw.psk\""), "t.toml")
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "t.toml:5:12: cannot read psk_file `/nonexistent/cw.psk`: No such file or directory (os error 2)"
    );
}

#[test]
fn relative_psk_file_is_resolved_against_the_config_directory() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_psk(dir.path(), "site.psk", 0o600);
    let cfg = dir.path().join("causeway.toml");
    std::fs::write(&cfg, tunnel_with("psk_file = \"site.psk\"")).unwrap();
    let c = Config::from_path(&cfg).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.tunnels[0].psk, PskSource::File(p));
    assert_eq!(
        c.tunnels[0].load_psk().unwrap().expose_secret(),
        SECRET.as_bytes()
    );
}

#[test]
fn load_psk_strips_one_newline_and_rechecks_mode() {
    let dir = tempfile::tempdir().unwrap();
    let p = write_psk(dir.path(), "k.psk", 0o600);
    let k = load_psk(&PskSource::File(p.clone())).unwrap();
    assert_eq!(k.expose_secret(), SECRET.as_bytes());
    assert_eq!(k.len(), SECRET.len());
    // CRLF, and only one newline removed.
    std::fs::write(&p, "abc\r\n\n").unwrap();
    assert_eq!(
        load_psk(&PskSource::File(p.clone()))
            .unwrap()
            .expose_secret(),
        b"abc\r\n"
    );
    std::fs::write(&p, "x\r\n").unwrap();
    assert_eq!(
        load_psk(&PskSource::File(p.clone()))
            .unwrap()
            .expose_secret(),
        b"x"
    );
    // Permissions changed after validation: refused at load time.
    std::fs::write(&p, format!("{SECRET}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = load_psk(&PskSource::File(p.clone())).unwrap_err();
    assert!(
        matches!(e, PskError::Permissions { mode: 0o644, .. }),
        "{e:?}"
    );
    assert!(!e.to_string().contains(SECRET) && !format!("{e:?}").contains(SECRET));
    // Empty and oversized files.
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&p, "\n").unwrap();
    assert!(matches!(
        load_psk(&PskSource::File(p.clone())),
        Err(PskError::Empty { .. })
    ));
    std::fs::write(&p, vec![b'a'; config::MAX_PSK_LEN + 1]).unwrap();
    assert!(matches!(
        load_psk(&PskSource::File(p.clone())),
        Err(PskError::TooLarge { .. })
    ));
    std::fs::write(&p, vec![b'a'; config::MAX_PSK_LEN]).unwrap();
    assert_eq!(
        load_psk(&PskSource::File(p)).unwrap().len(),
        config::MAX_PSK_LEN
    );
}

#[test]
fn load_psk_from_env() {
    // A variable name unique to this test; no other test reads or writes it.
    let name = format!("CW_CONFIG_TEST_PSK_{}", std::process::id());
    assert_eq!(
        load_psk(&PskSource::Env(name.clone())).unwrap_err(),
        PskError::EnvMissing { name: name.clone() }
    );
    // SAFETY-free in edition 2021; the variable is unique to this test.
    std::env::set_var(&name, SECRET);
    let k = load_psk(&PskSource::Env(name.clone())).unwrap();
    assert_eq!(k.expose_secret(), SECRET.as_bytes());
    std::env::remove_var(&name);
}

#[test]
fn debug_never_shows_the_secret() {
    let k = Psk::new(SECRET.as_bytes().to_vec());
    assert_eq!(format!("{k:?}"), "<redacted>");
    assert_eq!(format!("{k:#?}"), "<redacted>");
    let wrapped = Some(k.clone());
    assert_eq!(format!("{wrapped:?}"), "Some(<redacted>)");
    // A loaded config's Debug has only the source, never the key.
    let dir = tempfile::tempdir().unwrap();
    let p = write_psk(dir.path(), "k.psk", 0o600);
    let c = Config::from_str(
        &tunnel_with(&format!("psk_file = \"{}\"", p.display())),
        "t.toml",
    )
    .unwrap();
    let loaded = c.tunnels[0].load_psk().unwrap();
    assert!(!format!("{c:?}").contains(SECRET));
    assert_eq!(format!("{loaded:?}"), "<redacted>");
}
