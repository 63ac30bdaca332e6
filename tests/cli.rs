//! The `causeway` command line: `check` on good and bad configs, `--help`, and the
//! client commands against a missing daemon.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn causeway(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_causeway"))
        .args(args)
        .output()
        .expect("run causeway")
}

/// A fresh directory under the temp dir, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("cw-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        let psk = p.join("azure.psk");
        std::fs::write(&psk, "correct horse battery staple\n").unwrap();
        std::fs::set_permissions(&psk, std::fs::Permissions::from_mode(0o600)).unwrap();
        Dir(p)
    }
    fn write(&self, name: &str, text: &str) -> String {
        let f = self.0.join(name);
        std::fs::write(&f, text).unwrap();
        f.to_string_lossy().into_owned()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const GOOD: &str = r#"[daemon]
control_socket = "/run/causeway/test.sock"

[[tunnel]]
name = "azure"
local_addrs = "192.0.2.1"
remote_addrs = "198.51.100.7"
psk_file = "azure.psk"
local_ts = ["10.1.0.0/16"]
remote_ts = ["10.2.0.0/16"]
mtu = 1400

[bgp]
asn = 65010
router_id = "10.1.255.1"

[[bgp.neighbor]]
address = "10.2.255.254"
remote_asn = 65515
tunnel = "azure"
multihop = 8
announce = ["10.1.0.0/16"]
"#;

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn check_accepts_a_good_config() {
    let d = Dir::new("good");
    let f = d.write("good.toml", GOOD);
    let o = causeway(&["check", "-c", &f]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "stdout: {out}\nstderr: {err}");
    assert!(out.starts_with(&format!("{f}: ok")), "{out}");
}

#[test]
fn check_reports_file_line_col_and_exits_1() {
    let d = Dir::new("bad");
    // Line 11, column 1: a misspelled key.
    let bad = GOOD.replace("mtu = 1400", "mtuu = 1400");
    let f = d.write("bad.toml", &bad);
    let o = causeway(&["check", "-c", &f]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "stdout: {out}\nstderr: {err}");
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("{f}:11:1: ")),
        "want {f}:11:1: ..., got {first:?}"
    );
    assert!(first.contains("mtuu"), "{first}");
    assert!(!out.contains(": ok"), "{out}");
}

#[test]
fn check_reports_bad_value_position() {
    let d = Dir::new("value");
    // Line 15, column 13: the value of an invalid router id.
    let bad = GOOD.replace("router_id = \"10.1.255.1\"", "router_id = \"10.1.255\"");
    let f = d.write("value.toml", &bad);
    let o = causeway(&["check", "-c", &f]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("{f}:15:13: ")),
        "want {f}:15:13: ..., got {first:?}"
    );
    assert!(first.contains("router_id"), "{first}");
    assert!(out.is_empty(), "{out}");
}

#[test]
fn check_missing_file_exits_1() {
    let o = causeway(&["check", "-c", "/nonexistent/causeway.toml"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.starts_with("/nonexistent/causeway.toml: "), "{err}");
}

#[test]
fn help_lists_every_subcommand() {
    let o = causeway(&["--help"]);
    let (out, _) = text(&o);
    assert!(o.status.success());
    for cmd in [
        "run",
        "check",
        "status",
        "sa",
        "bgp",
        "routes",
        "initiate",
        "terminate",
        "rekey",
        "lab",
    ] {
        assert!(
            out.lines()
                .any(|l| l.split_whitespace().next() == Some(cmd)),
            "--help does not list `{cmd}`:\n{out}"
        );
    }
    assert!(out.contains("--socket"), "{out}");
    let o = causeway(&["rekey", "--help"]);
    assert!(text(&o).0.contains("--ike"));
    let o = causeway(&["status", "--help"]);
    assert!(text(&o).0.contains("--json"));
}

#[test]
fn client_without_daemon_fails_clearly() {
    let d = Dir::new("client");
    let sock = d.0.join("none.sock");
    let s = sock.to_string_lossy().into_owned();
    let o = causeway(&["--socket", &s, "status"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains("cannot connect to the control socket"),
        "{err}"
    );
    assert!(err.contains(Path::new(&s).to_str().unwrap()), "{err}");
}

#[test]
fn run_refuses_a_bad_config_with_its_position() {
    let d = Dir::new("run");
    let bad = GOOD.replace("mtu = 1400", "mtuu = 1400");
    let f = d.write("bad.toml", &bad);
    let o = causeway(&["run", "-c", &f]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.starts_with(&format!("{f}:11:1: ")), "{err}");
}
