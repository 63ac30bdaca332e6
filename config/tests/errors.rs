//! Every error kind gives the right `FILE:LINE:COL: message` (exact strings on small
//! inline configs), and several problems are reported together.

use config::Config;

/// A valid minimal tunnel (lines 1-5); tests append lines from line 6 on.
const BASE: &str = r#"[[tunnel]]
name = "a"
local_addrs = "192.0.2.1"
remote_addrs = "198.51.100.7"
psk_env = "PSK"
"#;

fn errs(text: &str) -> String {
    match Config::from_str(text, "t.toml") {
        Ok(c) => panic!("expected errors, got a config: {c:#?}"),
        Err(e) => e.to_string(),
    }
}

fn with(extra: &str) -> String {
    errs(&format!("{BASE}{extra}"))
}

fn ok(text: &str) -> Config {
    match Config::from_str(text, "t.toml") {
        Ok(c) => c,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

#[test]
fn base_is_valid() {
    let c = ok(BASE);
    assert_eq!(c.tunnels.len(), 1);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn syntax_error() {
    assert_eq!(
        errs("[daemon]\nlog_level = \n"),
        "t.toml:2:13: string values must be quoted, expected literal string"
    );
    // Independent syntax errors on several lines are all reported.
    assert_eq!(
        errs("[daemon]\nlog_level = \nmetrics = 127.0.0.1:9474\n[[tunnel]\nname = \"a\"\n"),
        "t.toml:2:13: string values must be quoted, expected literal string\n\
         t.toml:3:16: invalid float, expected nothing\n\
         t.toml:4:10: unclosed array table, expected `]`"
    );
    assert_eq!(
        errs("[[tunnel]]\nname = \"a\"\nname = \"b\"\n"),
        "t.toml:3:1: duplicate key"
    );
}

#[test]
fn unknown_keys_all_reported_with_hints() {
    assert_eq!(
        with("mtus = 1400\nfoo = 1\n"),
        "t.toml:6:1: unknown key `mtus` in [[tunnel]]; did you mean `mtu`?\n\
         t.toml:7:1: unknown key `foo` in [[tunnel]]"
    );
    assert_eq!(
        errs("[demon]\n"),
        "t.toml:1:2: unknown section `demon`; did you mean `daemon`?"
    );
    assert_eq!(
        errs("[daemon]\nmetric = \"127.0.0.1:9474\"\n"),
        "t.toml:2:1: unknown key `metric` in [daemon]; did you mean `metrics`?"
    );
    assert_eq!(
        with("[bgp]\nasn = 65001\nrouter_id = \"10.0.0.1\"\nrouterid = 1\n"),
        "t.toml:9:1: unknown key `routerid` in [bgp]; did you mean `router_id`?"
    );
    assert_eq!(
        with("[bgp]\nasn = 65001\nrouter_id = \"10.0.0.1\"\n[[bgp.neighbor]]\naddress = \"10.0.0.2\"\nremote_as = 65002\n"),
        "t.toml:11:1: unknown key `remote_as` in [[bgp.neighbor]]; did you mean `remote_asn`?"
    );
}

#[test]
fn wrong_table_shapes() {
    assert_eq!(
        errs("[tunnel]\nname = \"a\"\n"),
        "t.toml:1:1: `tunnel` must be an array of tables: write [[tunnel]], not [tunnel]"
    );
    assert_eq!(
        errs("daemon = 5\n"),
        "t.toml:1:10: `daemon` must be a table ([daemon]), found integer"
    );
}

#[test]
fn type_errors_every_one_reported() {
    assert_eq!(
        with("mtu = \"1400\"\nlocal_port = \"500\"\nencap = 1\n"),
        "t.toml:6:7: `mtu`: invalid type: string \"1400\", expected an integer\n\
         t.toml:7:14: `local_port`: invalid type: string \"500\", expected an integer\n\
         t.toml:8:9: `encap`: invalid type: integer `1`, expected a string"
    );
    // A required key with a bad type is not also reported as missing.
    assert_eq!(
        errs("[[tunnel]]\nname = 5\nlocal_addrs = \"192.0.2.1\"\nremote_addrs = \"198.51.100.7\"\npsk_env = \"P\"\n"),
        "t.toml:2:8: `name`: invalid type: integer `5`, expected a string"
    );
}

#[test]
fn missing_keys() {
    assert_eq!(
        errs("[[tunnel]]\nname = \"a\"\n"),
        "t.toml:1:1: missing key `local_addrs` in [[tunnel]]\n\
         t.toml:1:1: missing key `remote_addrs` in [[tunnel]]\n\
         t.toml:1:1: missing key `psk_file` or `psk_env` in [[tunnel]] (the pre-shared key is never written inline)"
    );
    assert_eq!(
        with("[bgp]\nasn = 65001\n"),
        "t.toml:6:1: missing key `router_id` in [bgp]"
    );
}

#[test]
fn bad_ip_addresses() {
    assert_eq!(
        errs("[[tunnel]]\nname = \"a\"\nlocal_addrs = \"192.0.2.1, 192.0.2.300\"\nremote_addrs = [\"198.51.100.7\", \"x\"]\npsk_env = \"P\"\n"),
        "t.toml:3:27: invalid IP address `192.0.2.300`\n\
         t.toml:4:33: invalid IP address `x`"
    );
    assert_eq!(
        errs("[[tunnel]]\nname = \"a\"\nlocal_addrs = \"192.0.2.1\"\nremote_addrs = \"0.0.0.0\"\npsk_env = \"P\"\n"),
        "t.toml:4:17: `remote_addrs`: `0.0.0.0` is not a unicast address"
    );
    assert_eq!(
        errs("[[tunnel]]\nname = \"a\"\nlocal_addrs = \"192.0.2.1\"\nremote_addrs = \"2001:db8::1\"\npsk_env = \"P\"\n"),
        "t.toml:4:16: `local_addrs` and `remote_addrs` have no address family in common"
    );
    assert_eq!(
        with("local_id = \"1.2.3\"\n"),
        "t.toml:6:12: invalid identity `1.2.3`: expected an IP address, a domain name or `keyid:...`"
    );
}

#[test]
fn bad_prefixes() {
    assert_eq!(
        with("local_ts = [\"10.1.0.1/16\"]\nremote_ts = [\"10.2.0.0/33\"]\n"),
        "t.toml:6:13: prefix `10.1.0.1/16` has host bits set; did you mean `10.1.0.0/16`?\n\
         t.toml:7:14: invalid prefix `10.2.0.0/33`: expected ADDRESS/LENGTH (e.g. \"10.2.0.0/16\")"
    );
    assert_eq!(
        with("remote_ts = []\n"),
        "t.toml:6:13: `remote_ts` must not be empty"
    );
}

#[test]
fn durations() {
    assert_eq!(
        with("ike_lifetime = \"7.5x\"\nchild_lifetime = \"30\"\ndpd_delay = -5\n"),
        "t.toml:6:16: `ike_lifetime`: invalid duration `7.5x`: expected a number and a unit s, m, h or d (e.g. \"30s\", \"7.5h\")\n\
         t.toml:7:18: `child_lifetime`: invalid duration `30`: expected a number and a unit s, m, h or d (e.g. \"30s\", \"7.5h\")\n\
         t.toml:8:13: `dpd_delay` must not be negative, found -5"
    );
    assert_eq!(
        with("ike_lifetime = \"0s\"\n"),
        "t.toml:6:16: `ike_lifetime` must be greater than zero"
    );
    assert_eq!(
        with("ike_lifetime = \"400d\"\n"),
        "t.toml:6:16: `ike_lifetime` must be at most 365d"
    );
    let c = ok(&format!(
        "{BASE}ike_lifetime = \"8h\"\nchild_lifetime = \"7.5h\"\ndpd_delay = \"30s\"\nike_rekey_margin = \"90m\"\nchild_rekey_margin = 60\n"
    ));
    let t = &c.tunnels[0];
    assert_eq!(t.ike_lifetime.as_secs(), 28_800);
    assert_eq!(t.child_lifetime.as_secs(), 27_000);
    assert_eq!(t.dpd_delay.as_secs(), 30);
    assert_eq!(t.ike_rekey_margin.as_secs(), 5400);
    assert_eq!(t.child_rekey_margin.as_secs(), 60);
}

#[test]
fn rekey_margin_must_fit_lifetime() {
    assert_eq!(
        with("child_lifetime = \"1h\"\nchild_rekey_margin = \"30m\"\n"),
        "t.toml:7:22: `child_rekey_margin` 30m (plus rekey_fuzz 100%) must be shorter than `child_lifetime` 1h"
    );
    let c = ok(&format!(
        "{BASE}child_lifetime = \"1h\"\nchild_rekey_margin = \"30m\"\nrekey_fuzz = 0\n"
    ));
    assert_eq!(c.tunnels[0].child_rekey_latest().as_secs(), 1800);
}

#[test]
fn bad_ports() {
    assert_eq!(
        with("local_port = 0\nremote_port = 65536\n"),
        "t.toml:6:14: `local_port` must be between 1 and 65535, found 0\n\
         t.toml:7:15: `remote_port` must be between 1 and 65535, found 65536"
    );
}

#[test]
fn keywords() {
    assert_eq!(
        with("encap = \"nat\"\nstart_action = \"go\"\ndpd_action = \"hold\"\nprofile = \"aws\"\n"),
        "t.toml:6:9: `encap` must be one of auto, udp, esp; found `nat`\n\
         t.toml:7:16: `start_action` must be one of start, trap, none; found `go`\n\
         t.toml:8:14: `dpd_action` must be one of clear, restart, trap; found `hold`\n\
         t.toml:9:11: `profile` must be one of generic, azure; found `aws`"
    );
    assert_eq!(
        errs("[daemon]\nlog_level = \"verbose\"\n"),
        "t.toml:2:13: `log_level` must be one of error, warn, info, debug, trace; found `verbose`"
    );
}

#[test]
fn mtu_and_mss() {
    assert_eq!(
        with("mtu = 575\n"),
        "t.toml:6:7: `mtu` must be between 576 and 9000, found 575"
    );
    assert_eq!(
        with("mtu = 9001\n"),
        "t.toml:6:7: `mtu` must be between 576 and 9000, found 9001"
    );
    assert_eq!(ok(&format!("{BASE}mtu = 576\n")).tunnels[0].mtu, 576);
    assert_eq!(ok(&format!("{BASE}mtu = 9000\n")).tunnels[0].mtu, 9000);
    assert_eq!(
        with("mtu = 1400\nmss_clamp = 1361\n"),
        "t.toml:7:13: `mss_clamp` must be between 536 and 1360, found 1361"
    );
    assert_eq!(
        with("profile = \"azure\"\nmtu = 1380\n"),
        "t.toml:7:7: `mtu` 1380 is too small for the profile's mss_clamp 1350 (needs at least 1390)"
    );
}

#[test]
fn proposals_checked_by_ikev2_parser() {
    assert_eq!(
        with("ike_proposals = [\"aes256-sha256-modp2048\", \"aes256-sha265-modp2048\"]\nesp_proposals = \"aes256gcm16-prfsha256\"\n"),
        "t.toml:6:44: unknown algorithm keyword `sha265` in IKE proposal `aes256-sha265-modp2048`\n\
         t.toml:7:18: unknown algorithm keyword `prfsha256` in ESP proposal `aes256gcm16-prfsha256`"
    );
    assert_eq!(
        with("ike_proposals = [\"aes256-sha256\"]\n"),
        "t.toml:6:18: IKE proposal `aes256-sha256` has no DH group"
    );
    let c = ok(&format!(
        "{BASE}ike_proposals = \"aes128-sha1-modp2048, aes256gcm16-prfsha384-ecp384\"\n"
    ));
    let p: Vec<String> = c.tunnels[0]
        .ike_proposals
        .iter()
        .map(|p| p.to_string())
        .collect();
    assert_eq!(
        p,
        [
            "aes128-sha1-prfsha1-modp2048",
            "aes256gcm16-prfsha384-ecp384"
        ]
    );
}

#[test]
fn tunnel_names() {
    assert_eq!(
        errs("[[tunnel]]\nname = \"abcdefghijkl\"\nlocal_addrs = \"192.0.2.1\"\nremote_addrs = \"198.51.100.7\"\npsk_env = \"P\"\n"),
        "t.toml:2:8: tunnel name `abcdefghijkl` must be 1 to 11 characters (the interface is `cw-<name>`, at most 15)"
    );
    assert_eq!(
        errs(&format!("{BASE}{BASE}")),
        "t.toml:7:8: duplicate tunnel name `a` (first defined at 2:8)"
    );
    let two = format!(
        "{BASE}interface = \"wan-b\"\n{}",
        BASE.replace("\"a\"", "\"b\"") + "interface = \"wan-b\"\n"
    );
    assert_eq!(
        errs(&two),
        "t.toml:8:8: tunnel `b` uses interface `wan-b`, already used by tunnel `a`"
    );
    assert_eq!(
        with("interface = \"a/b\"\n"),
        "t.toml:6:13: invalid interface name `a/b`: 1 to 15 printable ASCII characters without `/`, `:` or spaces"
    );
}

const BGP: &str = "[bgp]\nasn = 65001\nrouter_id = \"10.1.255.1\"\n";

#[test]
fn asn_range() {
    let e = errs(&format!(
        "{BASE}[bgp]\nasn = 4294967296\nrouter_id = \"10.1.255.1\"\n"
    ));
    assert_eq!(
        e,
        "t.toml:7:7: `asn`: must be between 1 and 4294967294, found 4294967296"
    );
    let e = errs(&format!(
        "{BASE}[bgp]\nasn = 0\nrouter_id = \"10.1.255.1\"\n"
    ));
    assert_eq!(e, "t.toml:7:7: `asn`: AS 0 is reserved");
    let e = errs(&format!(
        "{BASE}[bgp]\nasn = 23456\nrouter_id = \"10.1.255.1\"\n"
    ));
    assert_eq!(e, "t.toml:7:7: `asn`: AS 23456 (AS_TRANS) cannot be used");
    let e = errs(&format!(
        "{BASE}{BGP}[[bgp.neighbor]]\naddress = \"10.2.0.1\"\nremote_asn = -1\n"
    ));
    assert_eq!(
        e,
        "t.toml:11:14: `remote_asn`: must be between 1 and 4294967294, found -1"
    );
    assert_eq!(
        ok(&format!(
            "{BASE}[bgp]\nasn = 4200000000\nrouter_id = \"10.1.255.1\"\n"
        ))
        .bgp
        .unwrap()
        .asn,
        4_200_000_000
    );
}

#[test]
fn azure_reserved_asn() {
    // Error with an azure tunnel.
    let azure = BASE.replace("psk_env", "profile = \"azure\"\npsk_env");
    assert_eq!(
        errs(&format!("{azure}[bgp]\nasn = 65515\nrouter_id = \"10.1.255.1\"\n")),
        "t.toml:8:7: `asn` 65515 is reserved by Azure (8074, 8075, 12076, 65515-65520) and cannot be used on-premises"
    );
    // Error with a neighbor whose remote_asn is 65515.
    assert_eq!(
        with("[bgp]\nasn = 8075\nrouter_id = \"10.1.255.1\"\n[[bgp.neighbor]]\naddress = \"10.2.0.1\"\nremote_asn = 65515\n"),
        "t.toml:7:7: `asn` 8075 is reserved by Azure (8074, 8075, 12076, 65515-65520) and cannot be used on-premises"
    );
    // Otherwise a warning.
    let c = ok(&format!(
        "{BASE}[bgp]\nasn = 65520\nrouter_id = \"10.1.255.1\"\n"
    ));
    assert_eq!(
        c.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
        ["t.toml:7:7: warning: `asn` 65520 is reserved by Azure (8074, 8075, 12076, 65515-65520) and cannot be used on-premises"]
    );
}

#[test]
fn bgp_table_and_proto() {
    assert_eq!(
        with("[bgp]\nasn = 65001\nrouter_id = \"0.0.0.0\"\ntable = 255\nproto = 3\n"),
        "t.toml:8:13: invalid `router_id` `0.0.0.0`: expected a non-zero IPv4 address\n\
         t.toml:9:9: `table` must be a routing table id 1..=4294967295 other than 253 (default) and 255 (local), found 255\n\
         t.toml:10:9: `proto` 3 is reserved for the kernel (0-4: unspec, redirect, kernel, boot, static)"
    );
    let c = ok(&format!("{BASE}{BGP}proto = 12\n"));
    assert_eq!(
        c.warnings[0].to_string(),
        "t.toml:9:9: warning: `proto` 12 is also used by bird: Causeway removes routes with this id at start-up"
    );
}

#[test]
fn neighbor_cross_references() {
    // Tunnel naming no tunnel, with a hint.
    assert_eq!(
        with(&format!(
            "{BGP}[[bgp.neighbor]]\naddress = \"10.2.0.1\"\nremote_asn = 65002\ntunnel = \"b\"\n"
        )),
        "t.toml:12:10: no tunnel named `b`"
    );
    let two = format!("{BASE}{}", BASE.replace("\"a\"", "\"azure\""));
    assert_eq!(
        errs(&format!("{two}{BGP}[[bgp.neighbor]]\naddress = \"10.2.0.1\"\nremote_asn = 65002\ntunnel = \"azur\"\n")),
        "t.toml:17:10: no tunnel named `azur`; did you mean `azure`?"
    );
    // With two tunnels, `tunnel` is required.
    assert_eq!(
        errs(&format!("{two}{BGP}[[bgp.neighbor]]\naddress = \"10.2.0.1\"\nremote_asn = 65002\n")),
        "t.toml:14:1: missing key `tunnel` in [[bgp.neighbor]] (required when there is not exactly one tunnel)"
    );
    // Duplicate neighbor addresses.
    assert_eq!(
        with(&format!("{BGP}[[bgp.neighbor]]\naddress = \"10.2.0.1\"\nremote_asn = 65002\n[[bgp.neighbor]]\naddress = \"10.2.0.1\"\nremote_asn = 65003\n")),
        "t.toml:13:11: duplicate neighbor address 10.2.0.1 (first defined at 10:11)"
    );
    // The neighbor must be inside the tunnel's remote_ts.
    assert_eq!(
        with(&format!("remote_ts = \"10.2.0.0/16\"\n{BGP}[[bgp.neighbor]]\naddress = \"10.3.0.1\"\nremote_asn = 65002\n")),
        "t.toml:11:11: neighbor address 10.3.0.1 is not inside `remote_ts` of tunnel `a`: BGP packets would not match the tunnel's traffic selectors"
    );
    assert_eq!(
        with(&format!("local_ts = \"10.1.0.0/16\"\n{BGP}[[bgp.neighbor]]\naddress = \"10.2.0.1\"\nremote_asn = 65002\nlocal_address = \"10.9.0.1\"\n")),
        "t.toml:13:17: `local_address` 10.9.0.1 is not inside `local_ts` of tunnel `a`"
    );
}

#[test]
fn neighbor_values() {
    assert_eq!(
        with(&format!(
            "{BGP}[[bgp.neighbor]]\naddress = \"10.2.0.1\"\nremote_asn = 65002\nmultihop = 0\nhold_time = \"2s\"\nkeepalive = \"200s\"\nprepend = 17\nmax_prefixes = 0\nmax_prefixes_action = \"drop\"\nannounce = [\"10.1.0.0/15\"]\n"
        )),
        "t.toml:12:12: `multihop` must be between 1 and 255, found 0\n\
         t.toml:13:13: `hold_time` must be 0 or 3 to 65535 whole seconds\n\
         t.toml:14:13: `keepalive` must be whole seconds, greater than zero and shorter than `hold_time` 3m (0 only when hold_time is 0)\n\
         t.toml:15:11: `prepend` must be between 0 and 16, found 17\n\
         t.toml:16:16: `max_prefixes` must be between 1 and 4294967295, found 0\n\
         t.toml:17:23: `max_prefixes_action` must be one of warn, teardown, restart; found `drop`\n\
         t.toml:18:13: prefix `10.1.0.0/15` has host bits set; did you mean `10.0.0.0/15`?"
    );
}

#[test]
fn prefix_filter_syntax() {
    assert_eq!(
        with(&format!(
            "{BGP}[[bgp.neighbor]]\naddress = \"10.2.0.1\"\nremote_asn = 65002\nimport = [\"10.2.0.0/16 le 8\", \"10.2.0.0/16 ge 24 le 20\", \"10.2.0.0/16 lt 24\"]\nexport = \"10.1.0.0/16 le 33\"\n"
        )),
        "t.toml:12:11: invalid prefix filter `10.2.0.0/16 le 8`: le 8 must be at least the prefix length and ge\n\
         t.toml:12:31: invalid prefix filter `10.2.0.0/16 ge 24 le 20`: le 20 must be at least the prefix length and ge\n\
         t.toml:12:58: invalid prefix filter `10.2.0.0/16 lt 24`: expected `PREFIX [ge N] [le N]`, found `lt`\n\
         t.toml:13:11: invalid prefix filter `10.1.0.0/16 le 33`: `le` needs a length 0..=32"
    );
    // The syntax is the bgp crate's (`bgp::parse_prefix_filter`): lower-case keywords,
    // always ADDR/LEN.
    assert_eq!(
        with(&format!(
            "{BGP}[[bgp.neighbor]]\naddress = \"10.2.0.1\"\nremote_asn = 65002\nimport = [\"10.2.0.0/16 GE 20\", \"10.2.0.1\"]\n"
        )),
        "t.toml:12:11: invalid prefix filter `10.2.0.0/16 GE 20`: expected `ge N` or `le N`\n\
         t.toml:12:32: invalid prefix filter `10.2.0.1`: expected ADDR/LEN"
    );
    let c = ok(&format!(
        "{BASE}{BGP}[[bgp.neighbor]]\naddress = \"10.2.0.1\"\nremote_asn = 65002\nimport = [\"10.2.0.0/16 le 24\", \"10.0.0.0/8 ge 16 le 24\"]\n"
    ));
    let n = &c.bgp.unwrap().neighbors[0];
    let import = n.import.as_ref().unwrap();
    assert_eq!(import[0].prefix.to_string(), "10.2.0.0/16");
    assert_eq!((import[0].ge, import[0].le), (16, 24));
    assert_eq!((import[1].ge, import[1].le), (16, 24));
    assert!(import[0].matches(&"10.2.3.0/24".parse().unwrap()));
    assert!(!import[0].matches(&"10.2.3.0/25".parse().unwrap()));
}

#[test]
fn psk_exactly_one_source() {
    assert_eq!(
        with("psk_file = \"/etc/x.psk\"\n"),
        "t.toml:5:11: set only one of `psk_file` and `psk_env`"
    );
    assert_eq!(
        errs(&BASE.replace("psk_env = \"PSK\"", "psk_env = \"1BAD\"")),
        "t.toml:5:11: `psk_env`: invalid environment variable name `1BAD`"
    );
}

#[test]
fn many_problems_in_file_order() {
    let text = "[daemon]\ncontrol_socket = \"relative.sock\"\nmetrics = \"127.0.0.1\"\n\n[[tunnel]]\nname = \"a\"\nlocal_addrs = \"192.0.2.1\"\nremote_addrs = \"198.51.100.7\"\npsk_env = \"P\"\nmtu = 10\nencap = \"x\"\n";
    let e = Config::from_str(text, "t.toml").unwrap_err();
    assert_eq!(e.error_count(), 4);
    assert_eq!(
        e.to_string(),
        "t.toml:2:18: `control_socket` must be an absolute path, found `relative.sock`\n\
         t.toml:3:11: invalid `metrics` address `127.0.0.1`: expected IP:PORT (e.g. \"127.0.0.1:9474\")\n\
         t.toml:10:7: `mtu` must be between 576 and 9000, found 10\n\
         t.toml:11:9: `encap` must be one of auto, udp, esp; found `x`"
    );
    let d = &e.diagnostics()[2];
    assert_eq!(
        (d.line, d.col, d.file.as_str()),
        (Some(10), Some(7), "t.toml")
    );
}

#[test]
fn columns_count_characters() {
    // A two-byte character before the error: the column counts it once.
    assert_eq!(
        with("local_id = \"@é\"\n")
            .split(':')
            .take(3)
            .collect::<Vec<_>>()
            .join(":"),
        "t.toml:6:12"
    );
    assert_eq!(
        errs("# é\n[daemon]\nlog_level = \"é\"\n"),
        "t.toml:3:13: `log_level` must be one of error, warn, info, debug, trace; found `é`"
    );
}

#[test]
fn empty_config_warns() {
    let c = ok("");
    assert!(c.tunnels.is_empty());
    assert_eq!(
        c.warnings[0].to_string(),
        "t.toml:1:1: warning: no [[tunnel]] defined: nothing to do"
    );
}
