//! Causeway's configuration: the TOML schema, defaults, the `azure` profile and
//! validation.
//!
//! ```no_run
//! let cfg = config::Config::from_path(std::path::Path::new("/etc/causeway/causeway.toml"))
//!     .unwrap_or_else(|errors| {
//!         eprintln!("{errors}"); // FILE:LINE:COL: message, one per line
//!         std::process::exit(1)
//!     });
//! for w in &cfg.warnings {
//!     eprintln!("{w}"); // FILE:LINE:COL: warning: message
//! }
//! for t in &cfg.tunnels {
//!     let psk = t.load_psk(); // zeroized, Debug prints <redacted>
//! #   let _ = psk;
//! }
//! ```
//!
//! [`Config::from_path`] / [`Config::from_str`] return a fully validated [`Config`] with
//! every default applied, or [`Errors`]: every problem found (syntax errors, unknown
//! keys, ill-typed and invalid values, broken cross-references), each printed as
//! `FILE:LINE:COL: message`. Warnings of a valid config are in [`Config::warnings`].
//! The PSK is not read by validation (only the file's existence and permissions are
//! checked); [`load_psk`] reads it.
//!
//! Keys follow strongSwan's swanctl vocabulary where one exists. Unknown keys are errors.
//! Durations are strings `"30s"`, `"90m"`, `"8h"`, `"7.5h"`, `"1d"` (or an integer
//! number of seconds), at most 365 days. Lists of addresses, prefixes and proposals may
//! also be written as one comma-separated string (`local_addrs = "192.0.2.1"`).
//! See `config/examples/azure.toml` and `config/examples/lab-site-a.toml`.
//!
//! # `[daemon]` (optional)
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `control_socket` | absolute path | `/run/causeway/causeway.sock` | control Unix socket (root-only) |
//! | `metrics` | `"IP:PORT"` | none (disabled) | Prometheus text endpoint |
//! | `log_level` | `error`\|`warn`\|`info`\|`debug`\|`trace` | `info` | log verbosity |
//!
//! # `[[tunnel]]` (one per peer)
//!
//! | key | type | default (generic) | `profile = "azure"` | meaning |
//! |---|---|---|---|---|
//! | `name` | 1–11 of `[A-Za-z0-9_-]` | required | | unique; TUN device `cw-<name>` |
//! | `interface` | interface name (≤ 15 bytes) | `cw-<name>` | | TUN device name, unique |
//! | `local_addrs` | IP list | required | | our outer (WAN) addresses; `0.0.0.0` = any (then set `local_id`) |
//! | `remote_addrs` | IP list | required | | the peer's outer addresses |
//! | `local_port` | 1..=65535 | 500 | | our IKE port (NAT-T floats to 4500) |
//! | `remote_port` | 1..=65535 | 500 | | the peer's IKE port |
//! | `psk_file` | path | one of `psk_file`/`psk_env` required | | file with the PSK, mode must deny group/others (`chmod 600`); relative to the config file's directory; one trailing newline is stripped |
//! | `psk_env` | env var name | | | environment variable holding the PSK |
//! | `local_id` | IP \| FQDN (`@` optional) \| `keyid:TEXT` \| `keyid:#HEX` | first `local_addrs` | | our IKE identity |
//! | `remote_id` | same | first `remote_addrs` | | the identity the peer must present |
//! | `ike_proposals` | strongSwan proposal strings | `aes256gcm16-prfsha256-x25519`, `aes256-sha256-modp2048` | [`azure::IKE_PROPOSALS`] | IKE SA algorithms, in preference order |
//! | `esp_proposals` | strongSwan proposal strings | `aes256gcm16` | `aes256gcm16` (no PFS) | Child SA algorithms; a DH group (`-modp2048s256`) adds PFS |
//! | `local_ts` | prefix list | `0.0.0.0/0` | | our traffic selectors (route-based: any) |
//! | `remote_ts` | prefix list | `0.0.0.0/0` | | the peer's traffic selectors |
//! | `ike_lifetime` | duration | `8h` | `28800s` | hard IKE SA lifetime |
//! | `child_lifetime` | duration | `1h` | `27000s` | hard Child SA lifetime |
//! | `child_life_bytes` | bytes, or string with unit `K`/`M`/`G`/`T` (×1024) | unlimited | `102400000KB` | Child SA byte limit |
//! | `ike_rekey_margin` | duration | 10% of `ike_lifetime` | | rekey this long before the lifetime ends |
//! | `child_rekey_margin` | duration | 10% of `child_lifetime` | | same for the Child SA |
//! | `rekey_fuzz` | percent 0..=100 | 100 | | random extra margin: rekey at `lifetime - margin - rand(0..=margin*fuzz/100)`; margin × (1 + fuzz) must be below the lifetime |
//! | `dpd_delay` | duration, `0s` = off | `30s` | `45s` | liveness check interval |
//! | `dpd_timeout` | duration | the retransmission schedule's length (165 s with the defaults) | `45s` | a peer that answers no liveness check (or other IKE request) for this long is dead: when the schedule below is longer, its first timeout is scaled down so the last retransmission times out by `dpd_timeout` (so detection takes at most `dpd_delay + dpd_timeout`) |
//! | `dpd_action` | `clear`\|`restart`\|`trap` | `restart` | | on a dead peer: delete the SAs (BGP routes through the tunnel leave the FIB), then wait for the peer / initiate again / initiate on the next packet |
//! | `retransmit_timeout` | duration | `4s` | | first retransmission timeout of an IKE request; then × 1.8 each time (strongSwan's `charon.retransmit_*`) |
//! | `retransmit_tries` | 0..=10 | 5 | | retransmissions before the peer is declared unreachable |
//! | `encap` | `auto`\|`udp`\|`esp` | `auto` | | ESP-in-UDP when NAT is seen / always / never |
//! | `mtu` | 576..=9000 | 1400 | | TUN MTU |
//! | `mss_clamp` | 536..=`mtu`-40 | off | 1350 | clamp TCP MSS through the tunnel |
//! | `start_action` | `start`\|`trap`\|`none` | `start` | | initiate at start / on traffic / wait for the peer |
//! | `profile` | `generic`\|`azure` | `generic` | | fill in Azure VPN Gateway's expectations |
//!
//! # `[bgp]` (optional)
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `asn` | 1..=4294967294, not 23456 | required | our AS. Azure-reserved ASNs (8074, 8075, 12076, 65515–65520) are an error when a tunnel has `profile = "azure"` or a neighbor has `remote_asn = 65515`, a warning otherwise |
//! | `router_id` | IPv4 address | required | BGP identifier |
//! | `table` | kernel table id, not 253/255 | 254 (main) | where learned routes are installed |
//! | `proto` | 5..=255 | 249 | route protocol id of installed routes (unused by other daemons; ids 0–4 belong to the kernel); Causeway removes routes with this id at start-up |
//!
//! # `[[bgp.neighbor]]`
//!
//! | key | type | default | meaning |
//! |---|---|---|---|
//! | `address` | IP | required | the peer's address, unique; must be inside the tunnel's `remote_ts` |
//! | `remote_asn` | ASN | required; 65515 on an azure tunnel | the peer's AS |
//! | `tunnel` | tunnel name | the only tunnel, if there is one | the tunnel the session runs through |
//! | `local_address` | IP | kernel's choice | TCP source address; must be inside the tunnel's `local_ts` |
//! | `multihop` | TTL 1..=255 | off (TTL 1); 64 on an azure tunnel | eBGP multihop |
//! | `hold_time` | duration, 0 or 3–65535 s | `180s` | proposed hold time |
//! | `keepalive` | duration | `hold_time / 3` | keepalive interval |
//! | `announce` | prefix list | none | prefixes we originate |
//! | `import` | prefix filters `"P [ge N] [le N]"` (syntax of `bgp::parse_prefix_filter`) | accept all but our own `announce` prefixes | accepted routes |
//! | `export` | prefix filters | exactly `announce` | advertised routes |
//! | `prepend` | 0..=16 | 0 | extra prepends of our ASN on export |
//! | `max_prefixes` | 1..=4294967295 | unlimited | limit on accepted prefixes |
//! | `max_prefixes_action` | `warn`\|`teardown`\|`restart` | `teardown` | when the limit is exceeded |
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod diag;
mod psk;
mod raw;
mod types;
mod validate;
pub mod value;

use std::path::Path;

/// Re-exported: the prefix-list entry type of `import` / `export`.
pub use bgp::PrefixListEntry;
pub use diag::{line_col, Diagnostic, Errors, Severity};
pub use psk::{check_psk_file, load_psk, Psk, PskError, PskSource, MAX_PSK_LEN};
pub use types::*;
pub use value::Identity;

/// Largest config file accepted (1 MiB).
pub const MAX_FILE_LEN: u64 = 1 << 20;

/// What the `azure` profile fills in (see `/work/shared/INTEROP.md`, "Azure VPN Gateway facts").
pub mod azure {
    use std::time::Duration;

    /// Default IKE proposals, in Azure's order: AES256/SHA1/DH2, AES256/SHA256/DH2,
    /// AES128/SHA1/DH2, AES256/SHA256/DH14.
    pub const IKE_PROPOSALS: &[&str] = &[
        "aes256-sha1-modp1024",
        "aes256-sha256-modp1024",
        "aes128-sha1-modp1024",
        "aes256-sha256-modp2048",
    ];
    /// Default ESP proposals: GCM-AES256 without PFS.
    pub const ESP_PROPOSALS: &[&str] = &["aes256gcm16"];
    /// IKE SA lifetime, 28,800 s.
    pub const IKE_LIFETIME: Duration = Duration::from_secs(28_800);
    /// Child SA lifetime, 27,000 s.
    pub const CHILD_LIFETIME: Duration = Duration::from_secs(27_000);
    /// Child SA byte limit, 102,400,000 KB.
    pub const CHILD_LIFE_BYTES: u64 = 102_400_000 * 1024;
    /// DPD interval (Azure's DPD timeout default is 45 s).
    pub const DPD_DELAY: Duration = Duration::from_secs(45);
    /// DPD timeout: Azure declares a silent peer dead after 45 s; do the same, so a dead
    /// Azure instance is noticed within `dpd_delay + dpd_timeout` = 90 s.
    pub const DPD_TIMEOUT: Duration = Duration::from_secs(45);
    /// TCP MSS clamp.
    pub const MSS_CLAMP: u16 = 1350;
    /// Azure VPN Gateway's ASN: the default `remote_asn` of a neighbor on an azure tunnel.
    pub const ASN: u32 = 65515;
    /// Default `multihop` TTL of a neighbor on an azure tunnel (the peer sits in the
    /// GatewaySubnet, not on the tunnel link).
    pub const MULTIHOP: u8 = 64;
    /// ASNs reserved by Azure that cannot be used on-premises.
    pub const RESERVED_ASNS: &[u32] =
        &[8074, 8075, 12076, 65515, 65516, 65517, 65518, 65519, 65520];
    /// At most this many prefixes are accepted from a site.
    pub const MAX_SITE_PREFIXES: usize = 4000;
}

/// Default values (generic profile, and per-profile where they differ).
pub mod defaults {
    use std::path::PathBuf;
    use std::time::Duration;

    use ikev2::proposal::{parse_esp_proposal, parse_ike_proposal, Proposal};
    use ipnet::IpNet;

    use crate::types::{Daemon, LogLevel, Profile};

    /// Default `control_socket`.
    pub const CONTROL_SOCKET: &str = "/run/causeway/causeway.sock";
    /// Default IKE proposals (generic profile).
    pub const IKE_PROPOSALS: &[&str] = &["aes256gcm16-prfsha256-x25519", "aes256-sha256-modp2048"];
    /// Default ESP proposals (generic profile).
    pub const ESP_PROPOSALS: &[&str] = &["aes256gcm16"];
    /// Default `ike_lifetime` (generic).
    pub const IKE_LIFETIME: Duration = Duration::from_secs(8 * 3600);
    /// Default `child_lifetime` (generic).
    pub const CHILD_LIFETIME: Duration = Duration::from_secs(3600);
    /// Default `dpd_delay` (generic).
    pub const DPD_DELAY: Duration = Duration::from_secs(30);
    /// Default `retransmit_timeout` (strongSwan's).
    pub const RETRANSMIT_TIMEOUT: Duration = Duration::from_secs(4);
    /// Default `retransmit_tries` (strongSwan's).
    pub const RETRANSMIT_TRIES: u32 = 5;
    /// Default `mtu`.
    pub const MTU: u16 = 1400;
    /// Default `[bgp] table` (main).
    pub const TABLE: u32 = 254;
    /// Default `[bgp] proto`: not used by any daemon listed in iproute2's `rt_protos`.
    pub const PROTO: u8 = 249;
    /// Default neighbor `hold_time`, seconds.
    pub const HOLD_TIME: u64 = 180;

    /// `[daemon]` with every default.
    pub fn daemon() -> Daemon {
        Daemon {
            control_socket: PathBuf::from(CONTROL_SOCKET),
            metrics: None,
            log_level: LogLevel::Info,
        }
    }

    fn parse_all(
        list: &[&str],
        f: fn(&str) -> Result<Proposal, ikev2::proposal::ProposalError>,
    ) -> Vec<Proposal> {
        // The constants are tested to parse; a failure would drop the entry, never panic.
        list.iter().filter_map(|s| f(s).ok()).collect()
    }

    /// Default IKE proposals for a profile.
    pub fn ike_proposals(p: Profile) -> Vec<Proposal> {
        match p {
            Profile::Generic => parse_all(IKE_PROPOSALS, parse_ike_proposal),
            Profile::Azure => parse_all(crate::azure::IKE_PROPOSALS, parse_ike_proposal),
        }
    }

    /// Default ESP proposals for a profile.
    pub fn esp_proposals(p: Profile) -> Vec<Proposal> {
        match p {
            Profile::Generic => parse_all(ESP_PROPOSALS, parse_esp_proposal),
            Profile::Azure => parse_all(crate::azure::ESP_PROPOSALS, parse_esp_proposal),
        }
    }

    /// Default `ike_lifetime` for a profile.
    pub fn ike_lifetime(p: Profile) -> Duration {
        match p {
            Profile::Generic => IKE_LIFETIME,
            Profile::Azure => crate::azure::IKE_LIFETIME,
        }
    }

    /// Default `child_lifetime` for a profile.
    pub fn child_lifetime(p: Profile) -> Duration {
        match p {
            Profile::Generic => CHILD_LIFETIME,
            Profile::Azure => crate::azure::CHILD_LIFETIME,
        }
    }

    /// Default `child_life_bytes` for a profile.
    pub fn child_life_bytes(p: Profile) -> Option<u64> {
        match p {
            Profile::Generic => None,
            Profile::Azure => Some(crate::azure::CHILD_LIFE_BYTES),
        }
    }

    /// Default `dpd_delay` for a profile.
    pub fn dpd_delay(p: Profile) -> Duration {
        match p {
            Profile::Generic => DPD_DELAY,
            Profile::Azure => crate::azure::DPD_DELAY,
        }
    }

    /// Default `dpd_timeout` for a profile (`None`: the whole retransmission schedule).
    pub fn dpd_timeout(p: Profile) -> Option<Duration> {
        match p {
            Profile::Generic => None,
            Profile::Azure => Some(crate::azure::DPD_TIMEOUT),
        }
    }

    /// Default `mss_clamp` for a profile.
    pub fn mss_clamp(p: Profile) -> Option<u16> {
        match p {
            Profile::Generic => None,
            Profile::Azure => Some(crate::azure::MSS_CLAMP),
        }
    }

    /// Default `local_ts` / `remote_ts`: `0.0.0.0/0`.
    pub fn traffic_selectors() -> Vec<IpNet> {
        vec![IpNet::V4(ipnet::Ipv4Net::default())]
    }
}

impl Config {
    /// Reads and validates a config file. Errors name the file as given.
    pub fn from_path(path: &Path) -> Result<Config, Errors> {
        let name = path.display().to_string();
        let fail = |message: String| {
            Errors::new(vec![Diagnostic {
                severity: Severity::Error,
                file: name.clone(),
                line: None,
                col: None,
                span: None,
                message,
            }])
        };
        let bytes = read_limited(path).map_err(|e| fail(format!("cannot read config: {e}")))?;
        match String::from_utf8(bytes) {
            Ok(text) => Config::from_str(&text, &name),
            Err(e) => {
                let pos = e.utf8_error().valid_up_to();
                let text = String::from_utf8_lossy(e.as_bytes());
                let (line, col) = line_col(&text, pos);
                Err(Errors::new(vec![Diagnostic {
                    severity: Severity::Error,
                    file: name.clone(),
                    line: Some(line),
                    col: Some(col),
                    span: Some(pos..pos + 1),
                    message: "the file is not valid UTF-8".to_string(),
                }]))
            }
        }
    }

    /// Validates config text. `file_name` is used in messages and to resolve relative
    /// `psk_file` paths (against its directory).
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str, file_name: &str) -> Result<Config, Errors> {
        validate::parse(text, file_name)
    }
}

fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let mut buf = Vec::new();
    f.take(MAX_FILE_LEN + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_FILE_LEN {
        return Err(std::io::Error::other(format!(
            "larger than {MAX_FILE_LEN} bytes"
        )));
    }
    Ok(buf)
}
