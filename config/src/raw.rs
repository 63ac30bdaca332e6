//! The raw serde layer: every key optional, every value spanned, unknown keys refused.
//! Values are checked and defaults applied in `validate`.

use core::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use toml::Spanned;

/// An optional spanned value.
pub(crate) type S<T> = Option<Spanned<T>>;
/// A list of spanned strings (a single string is turned into a list before decoding).
pub(crate) type List = Vec<Spanned<String>>;

/// Keys of `[daemon]`.
pub(crate) const DAEMON_KEYS: &[&str] = &["control_socket", "metrics", "log_level"];

/// `[daemon]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDaemon {
    pub control_socket: S<String>,
    pub metrics: S<String>,
    pub log_level: S<String>,
}

/// Keys of `[[tunnel]]`.
pub(crate) const TUNNEL_KEYS: &[&str] = &[
    "name",
    "interface",
    "local_addrs",
    "remote_addrs",
    "local_port",
    "remote_port",
    "psk_file",
    "psk_env",
    "local_id",
    "remote_id",
    "ike_proposals",
    "esp_proposals",
    "local_ts",
    "remote_ts",
    "ike_lifetime",
    "child_lifetime",
    "child_life_bytes",
    "ike_rekey_margin",
    "child_rekey_margin",
    "rekey_fuzz",
    "dpd_delay",
    "dpd_timeout",
    "dpd_action",
    "retransmit_timeout",
    "retransmit_tries",
    "encap",
    "mtu",
    "mss_clamp",
    "start_action",
    "profile",
];

/// `[[tunnel]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTunnel {
    pub name: S<String>,
    pub interface: S<String>,
    pub local_addrs: S<List>,
    pub remote_addrs: S<List>,
    pub local_port: S<i64>,
    pub remote_port: S<i64>,
    pub psk_file: S<String>,
    pub psk_env: S<String>,
    pub local_id: S<String>,
    pub remote_id: S<String>,
    pub ike_proposals: S<List>,
    pub esp_proposals: S<List>,
    pub local_ts: S<List>,
    pub remote_ts: S<List>,
    pub ike_lifetime: S<IntOrStr>,
    pub child_lifetime: S<IntOrStr>,
    pub child_life_bytes: S<IntOrStr>,
    pub ike_rekey_margin: S<IntOrStr>,
    pub child_rekey_margin: S<IntOrStr>,
    pub rekey_fuzz: S<i64>,
    pub dpd_delay: S<IntOrStr>,
    pub dpd_timeout: S<IntOrStr>,
    pub dpd_action: S<String>,
    pub retransmit_timeout: S<IntOrStr>,
    pub retransmit_tries: S<i64>,
    pub encap: S<String>,
    pub mtu: S<i64>,
    pub mss_clamp: S<i64>,
    pub start_action: S<String>,
    pub profile: S<String>,
}

/// Keys of `[bgp]` (`neighbor` is decoded separately).
pub(crate) const BGP_KEYS: &[&str] = &["asn", "router_id", "table", "proto", "neighbor"];

/// `[bgp]` without `neighbor`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBgp {
    pub asn: S<i64>,
    pub router_id: S<String>,
    pub table: S<i64>,
    pub proto: S<i64>,
}

/// Keys of `[[bgp.neighbor]]`.
pub(crate) const NEIGHBOR_KEYS: &[&str] = &[
    "address",
    "remote_asn",
    "tunnel",
    "local_address",
    "multihop",
    "hold_time",
    "keepalive",
    "announce",
    "import",
    "export",
    "prepend",
    "max_prefixes",
    "max_prefixes_action",
];

/// `[[bgp.neighbor]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNeighbor {
    pub address: S<String>,
    pub remote_asn: S<i64>,
    pub tunnel: S<String>,
    pub local_address: S<String>,
    pub multihop: S<i64>,
    pub hold_time: S<IntOrStr>,
    pub keepalive: S<IntOrStr>,
    pub announce: S<List>,
    pub import: S<List>,
    pub export: S<List>,
    pub prepend: S<i64>,
    pub max_prefixes: S<i64>,
    pub max_prefixes_action: S<String>,
}

/// Keys whose value may be a list or a single (comma-separated) string.
pub(crate) const LIST_KEYS: &[&str] = &[
    "local_addrs",
    "remote_addrs",
    "ike_proposals",
    "esp_proposals",
    "local_ts",
    "remote_ts",
    "announce",
    "import",
    "export",
];

/// A value given as an integer or a string (durations: seconds or `"7.5h"`; sizes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum IntOrStr {
    Int(i64),
    Str(String),
}

impl<'de> Deserialize<'de> for IntOrStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = IntOrStr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrStr, E> {
                Ok(IntOrStr::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrStr, E> {
                i64::try_from(v)
                    .map(IntOrStr::Int)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrStr, E> {
                Ok(IntOrStr::Str(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys serde knows for `T`, read from its "unknown field" error.
    fn serde_keys<T: serde::de::DeserializeOwned>() -> Vec<String> {
        let err = match toml::from_str::<T>("zzz_not_a_key = 1\n") {
            Ok(_) => panic!("unknown key accepted"),
            Err(e) => e.message().to_string(),
        };
        let list = err
            .split_once("expected one of ")
            .map(|(_, l)| l)
            .unwrap_or_else(|| err.split_once("expected ").map(|(_, l)| l).unwrap_or(""));
        let mut keys: Vec<String> = list
            .split(", ")
            .map(|k| k.trim_matches('`').to_string())
            .collect();
        keys.sort();
        keys
    }

    fn sorted(keys: &[&str], drop: &str) -> Vec<String> {
        let mut k: Vec<String> = keys
            .iter()
            .filter(|k| **k != drop)
            .map(|k| k.to_string())
            .collect();
        k.sort();
        k
    }

    #[test]
    fn key_lists_match_the_structs() {
        assert_eq!(serde_keys::<RawDaemon>(), sorted(DAEMON_KEYS, ""));
        assert_eq!(serde_keys::<RawTunnel>(), sorted(TUNNEL_KEYS, ""));
        assert_eq!(serde_keys::<RawBgp>(), sorted(BGP_KEYS, "neighbor"));
        assert_eq!(serde_keys::<RawNeighbor>(), sorted(NEIGHBOR_KEYS, ""));
        for k in LIST_KEYS {
            assert!(TUNNEL_KEYS.contains(k) || NEIGHBOR_KEYS.contains(k), "{k}");
        }
    }

    #[test]
    fn every_key_is_documented_in_the_crate_docs() {
        let docs = include_str!("lib.rs");
        for k in DAEMON_KEYS
            .iter()
            .chain(TUNNEL_KEYS)
            .chain(BGP_KEYS)
            .chain(NEIGHBOR_KEYS)
            .filter(|k| **k != "neighbor")
        {
            assert!(
                docs.contains(&format!("//! | `{k}` |")),
                "`{k}` is not in the key tables of lib.rs"
            );
        }
    }
}
