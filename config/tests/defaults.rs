//! Defaults, the azure profile, and the shipped example configs.

use std::net::IpAddr;
use std::time::Duration;

use config::{
    azure, Config, DpdAction, Encap, Identity, LogLevel, MaxPrefixesAction, Profile, PskSource,
    StartAction,
};

fn ok(text: &str) -> Config {
    match Config::from_str(text, "t.toml") {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

fn strings(p: &[ikev2::proposal::Proposal]) -> Vec<String> {
    p.iter().map(|p| p.to_string()).collect()
}

fn canon_ike(list: &[&str]) -> Vec<String> {
    list.iter()
        .map(|s| ikev2::proposal::parse_ike_proposal(s).unwrap().to_string())
        .collect()
}

const MIN: &str = r#"
[[tunnel]]
name = "t1"
local_addrs = "192.0.2.1"
remote_addrs = "198.51.100.7"
psk_env = "PSK"

[bgp]
asn = 65010
router_id = "10.1.255.1"

[[bgp.neighbor]]
address = "10.2.255.254"
remote_asn = 65020
"#;

#[test]
fn generic_defaults() {
    let c = ok(MIN);
    assert_eq!(
        c.daemon.control_socket.to_str(),
        Some("/run/causeway/causeway.sock")
    );
    assert_eq!(c.daemon.metrics, None);
    assert_eq!(c.daemon.log_level, LogLevel::Info);
    let t = &c.tunnels[0];
    assert_eq!(t.name, "t1");
    assert_eq!(t.interface, "cw-t1");
    assert_eq!(t.local_addrs, ["192.0.2.1".parse::<IpAddr>().unwrap()]);
    assert_eq!((t.local_port, t.remote_port), (500, 500));
    assert_eq!(t.psk, PskSource::Env("PSK".into()));
    assert_eq!(t.local_id, Identity::Addr("192.0.2.1".parse().unwrap()));
    assert_eq!(t.remote_id, Identity::Addr("198.51.100.7".parse().unwrap()));
    assert_eq!(
        strings(&t.ike_proposals),
        canon_ike(config::defaults::IKE_PROPOSALS)
    );
    assert_eq!(strings(&t.esp_proposals), ["aes256gcm16"]);
    assert_eq!(t.local_ts, ["0.0.0.0/0".parse::<ipnet::IpNet>().unwrap()]);
    assert_eq!(t.remote_ts, t.local_ts);
    assert_eq!(t.ike_lifetime, Duration::from_secs(8 * 3600));
    assert_eq!(t.child_lifetime, Duration::from_secs(3600));
    assert_eq!(t.child_life_bytes, None);
    assert_eq!(t.ike_rekey_margin, Duration::from_secs(8 * 360));
    assert_eq!(t.child_rekey_margin, Duration::from_secs(360));
    assert_eq!(t.rekey_fuzz, 100);
    assert_eq!(t.child_rekey_latest(), Duration::from_secs(3240));
    assert_eq!(t.child_rekey_earliest(), Duration::from_secs(2880));
    assert_eq!(t.dpd_delay, Duration::from_secs(30));
    assert_eq!(t.dpd_action, DpdAction::Restart);
    assert_eq!(t.encap, Encap::Auto);
    assert_eq!(t.mtu, 1400);
    assert_eq!(t.mss_clamp, None);
    assert_eq!(t.start_action, StartAction::Start);
    assert_eq!(t.profile, Profile::Generic);
    let b = c.bgp.as_ref().unwrap();
    assert_eq!((b.asn, b.table, b.proto), (65010, 254, 249));
    let n = &b.neighbors[0];
    assert_eq!(n.tunnel, "t1"); // the only tunnel
    assert_eq!(n.remote_asn, 65020);
    assert_eq!(n.multihop, None);
    assert_eq!(n.hold_time, Duration::from_secs(180));
    assert_eq!(n.keepalive, Duration::from_secs(60));
    assert_eq!(n.import, None);
    assert_eq!(n.export, None);
    assert!(n.announce.is_empty());
    assert_eq!(n.prepend, 0);
    assert_eq!(n.max_prefixes, None);
    assert_eq!(n.max_prefixes_action, MaxPrefixesAction::Teardown);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn azure_profile_fills_in() {
    let text = MIN
        .replace("psk_env", "profile = \"azure\"\npsk_env")
        .replace("remote_asn = 65020\n", "");
    let c = ok(&text);
    let t = &c.tunnels[0];
    assert_eq!(t.profile, Profile::Azure);
    assert_eq!(strings(&t.ike_proposals), canon_ike(azure::IKE_PROPOSALS));
    assert_eq!(
        strings(&t.ike_proposals),
        [
            "aes256-sha1-prfsha1-modp1024",
            "aes256-sha256-prfsha256-modp1024",
            "aes128-sha1-prfsha1-modp1024",
            "aes256-sha256-prfsha256-modp2048"
        ]
    );
    assert_eq!(strings(&t.esp_proposals), ["aes256gcm16"]);
    assert!(t.esp_proposals[0].dh.is_empty(), "no PFS");
    assert_eq!(t.ike_lifetime, Duration::from_secs(28_800));
    assert_eq!(t.child_lifetime, Duration::from_secs(27_000));
    assert_eq!(t.child_life_bytes, Some(102_400_000 * 1024));
    assert_eq!(t.dpd_delay, Duration::from_secs(45));
    assert_eq!(t.mss_clamp, Some(1350));
    assert_eq!(t.mtu, 1400);
    let n = &c.bgp.as_ref().unwrap().neighbors[0];
    assert_eq!(n.remote_asn, 65515);
    assert_eq!(n.multihop, Some(64));
    assert_eq!(n.hold_time, Duration::from_secs(180));
    assert_eq!(n.keepalive, Duration::from_secs(60));
}

#[test]
fn explicit_keys_override_the_profile() {
    let text = MIN.replace(
        "psk_env",
        "profile = \"azure\"\nike_proposals = [\"aes256-sha256-ecp384\"]\nike_lifetime = \"1h\"\ndpd_delay = \"0s\"\nmss_clamp = 1300\nchild_life_bytes = \"1G\"\npsk_env",
    ).replace("remote_asn = 65020\n", "remote_asn = 65020\nmultihop = 3\n");
    let c = ok(&text);
    let t = &c.tunnels[0];
    assert_eq!(
        strings(&t.ike_proposals),
        ["aes256-sha256-prfsha256-ecp384"]
    );
    assert_eq!(t.ike_lifetime, Duration::from_secs(3600));
    assert_eq!(t.ike_rekey_margin, Duration::from_secs(360));
    assert_eq!(t.dpd_delay, Duration::ZERO);
    assert_eq!(t.mss_clamp, Some(1300));
    assert_eq!(t.child_life_bytes, Some(1 << 30));
    let n = &c.bgp.as_ref().unwrap().neighbors[0];
    assert_eq!((n.remote_asn, n.multihop), (65020, Some(3)));
}

#[test]
fn azure_esp_pfs_is_a_warning() {
    let text = MIN.replace(
        "psk_env",
        "profile = \"azure\"\nesp_proposals = \"aes256gcm16-modp2048s256\"\npsk_env",
    );
    let c = ok(&text);
    assert_eq!(
        c.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
        ["t.toml:7:18: warning: ESP proposal `aes256gcm16-modp2048s256` requires PFS: Azure VPN Gateway offers Child SAs without PFS by default, so Azure-initiated rekeys would fail"]
    );
}

#[test]
fn lists_as_strings_and_arrays() {
    let text = MIN.replace(
        "local_addrs = \"192.0.2.1\"",
        "local_addrs = \"192.0.2.1, 2001:db8::1\"\nlocal_ts = [\"10.1.0.0/16\", \"10.9.0.0/24\"]",
    );
    let c = ok(&text);
    assert_eq!(c.tunnels[0].local_addrs.len(), 2);
    assert_eq!(c.tunnels[0].local_ts.len(), 2);
}

fn example(name: &str) -> String {
    let path = format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn example_azure_parses() {
    // The example names /etc/causeway/azure.psk; point it at a private temporary file.
    let dir = tempfile::tempdir().unwrap();
    let psk = dir.path().join("azure.psk");
    std::fs::write(&psk, "example-key\n").unwrap();
    std::fs::set_permissions(&psk, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let text = example("azure.toml").replace("/etc/causeway/azure.psk", psk.to_str().unwrap());
    assert_ne!(text, example("azure.toml"));
    let c = Config::from_str(&text, "azure.toml").unwrap_or_else(|e| panic!("{e}"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.daemon.metrics, Some("127.0.0.1:9474".parse().unwrap()));
    let t = c.tunnel("azure").unwrap();
    assert_eq!(t.profile, Profile::Azure);
    assert_eq!(t.interface, "cw-azure");
    assert_eq!(t.psk, PskSource::File(psk.clone()));
    assert_eq!(t.load_psk().unwrap().expose_secret(), b"example-key");
    assert_eq!(t.child_lifetime, azure::CHILD_LIFETIME);
    let b = c.bgp.unwrap();
    assert_eq!(b.asn, 65010);
    let n = &b.neighbors[0];
    assert_eq!(
        (n.remote_asn, n.multihop, n.tunnel.as_str()),
        (65515, Some(64), "azure")
    );
    assert_eq!(n.max_prefixes_action, MaxPrefixesAction::Warn);
    assert_eq!(
        n.import.as_ref().unwrap()[0].to_string(),
        "10.2.0.0/16 le 24"
    );
}

#[test]
fn example_azure_without_psk_file_names_the_problem() {
    // As shipped, /etc/causeway/azure.psk does not exist on a build machine.
    if std::path::Path::new("/etc/causeway/azure.psk").exists() {
        eprintln!("skipping: /etc/causeway/azure.psk exists on this machine");
        return;
    }
    let e = Config::from_str(&example("azure.toml"), "azure.toml").unwrap_err();
    assert_eq!(
        e.to_string(),
        "azure.toml:19:12: cannot read psk_file `/etc/causeway/azure.psk`: No such file or directory (os error 2)"
    );
}

#[test]
fn example_lab_site_a_parses() {
    let c = Config::from_str(&example("lab-site-a.toml"), "lab-site-a.toml")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(c.daemon.log_level, LogLevel::Debug);
    let t = &c.tunnels[0];
    assert_eq!(t.name, "site-b");
    assert_eq!(t.local_id, Identity::Fqdn("site-a.lab.example".into()));
    assert_eq!(t.encap, Encap::Udp);
    assert_eq!(t.esp_proposals.len(), 2);
    assert_eq!(t.ike_rekey_margin, Duration::from_secs(900));
    assert_eq!(t.mss_clamp, Some(1360));
    let n = &c.bgp.as_ref().unwrap().neighbors[0];
    assert_eq!(n.hold_time, Duration::from_secs(90));
    assert_eq!(n.keepalive, Duration::from_secs(30));
    assert_eq!(n.local_address, Some("10.1.255.1".parse().unwrap()));
    assert_eq!(n.export.as_ref().unwrap()[0].to_string(), "10.1.0.0/16");
}

#[test]
fn from_path_reports_io_and_utf8_problems() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let e = Config::from_path(&missing).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}: cannot read config: No such file or directory (os error 2)",
            missing.display()
        )
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, b"[daemon]\nlog_level = \"\xff\"\n").unwrap();
    let e = Config::from_path(&bad).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{}:2:14: the file is not valid UTF-8", bad.display())
    );
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[daemon]\nlog_level = \"warn\"\n").unwrap();
    assert_eq!(
        Config::from_path(&good).unwrap().daemon.log_level,
        LogLevel::Warn
    );
}
