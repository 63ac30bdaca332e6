//! The validated configuration handed to the daemon. Every field has its default or
//! profile value applied; see the crate documentation for the keys.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ikev2::proposal::Proposal;
use ipnet::IpNet;

use crate::diag::Diagnostic;
use crate::psk::PskSource;
use crate::value::Identity;

/// A whole validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `[daemon]`.
    pub daemon: Daemon,
    /// `[[tunnel]]`, in file order; names and interfaces are unique.
    pub tunnels: Vec<Tunnel>,
    /// `[bgp]`, if present.
    pub bgp: Option<Bgp>,
    /// Warnings found while validating (the config is usable; `causeway check` prints them).
    pub warnings: Vec<Diagnostic>,
}

impl Config {
    /// The tunnel called `name`.
    pub fn tunnel(&self, name: &str) -> Option<&Tunnel> {
        self.tunnels.iter().find(|t| t.name == name)
    }
}

/// `[daemon]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Daemon {
    /// `control_socket`: path of the control Unix socket (absolute).
    pub control_socket: PathBuf,
    /// `metrics`: address of the Prometheus endpoint, `None` = disabled.
    pub metrics: Option<SocketAddr>,
    /// `log_level`.
    pub log_level: LogLevel,
}

/// `log_level` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// `error`
    Error,
    /// `warn`
    Warn,
    /// `info` (default)
    Info,
    /// `debug`
    Debug,
    /// `trace`
    Trace,
}

impl LogLevel {
    /// The keyword (also a valid `tracing` filter directive).
    pub const fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// `profile` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Profile {
    /// No profile (`profile` absent or `"generic"`): plain defaults.
    Generic,
    /// `"azure"`: Azure VPN Gateway defaults (proposals, lifetimes, DPD, MSS, BGP peer).
    Azure,
}

/// `encap` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encap {
    /// `auto`: ESP-in-UDP on port 4500 when NAT is detected, raw ESP otherwise (default).
    Auto,
    /// `udp`: always ESP-in-UDP (RFC 3948), even without NAT.
    Udp,
    /// `esp`: always raw ESP (IP protocol 50); fails behind NAT.
    Esp,
}

/// `start_action` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StartAction {
    /// `start`: initiate at daemon start (default).
    Start,
    /// `trap`: initiate when the first packet is routed into the tunnel.
    Trap,
    /// `none`: wait for the peer to initiate.
    None,
}

/// `dpd_action` values: what to do when the peer stops answering liveness checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DpdAction {
    /// `clear`: delete the SAs and wait.
    Clear,
    /// `restart`: delete the SAs and initiate again (default).
    Restart,
    /// `trap`: delete the SAs and initiate on the next packet.
    Trap,
}

/// `max_prefixes_action` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MaxPrefixesAction {
    /// `warn`: log and keep the session and routes.
    Warn,
    /// `teardown`: send a Cease NOTIFICATION and stay down until restarted (default).
    Teardown,
    /// `restart`: send a Cease NOTIFICATION and reconnect after a back-off.
    Restart,
}

/// One `[[tunnel]]`: an IKE SA with one Child SA, carried on TUN device `interface`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tunnel {
    /// `name`: 1..=11 characters `[A-Za-z0-9_-]`, unique.
    pub name: String,
    /// `interface`: TUN device name; default `cw-<name>`. Unique.
    pub interface: String,
    /// `local_addrs`: our outer (WAN) addresses; at least one. `0.0.0.0`/`::` = any.
    pub local_addrs: Vec<IpAddr>,
    /// `remote_addrs`: the peer's outer addresses; at least one, not unspecified.
    pub remote_addrs: Vec<IpAddr>,
    /// `local_port`: our IKE port (default 500; NAT-T uses 4500).
    pub local_port: u16,
    /// `remote_port`: the peer's IKE port (default 500).
    pub remote_port: u16,
    /// `psk_file` / `psk_env`; load it with [`crate::load_psk`] or [`Tunnel::load_psk`].
    pub psk: PskSource,
    /// `local_id`: default the first local address.
    pub local_id: Identity,
    /// `remote_id`: default the first remote address.
    pub remote_id: Identity,
    /// `ike_proposals`, parsed by `ikev2::proposal::parse_ike_proposal`, in order.
    pub ike_proposals: Vec<Proposal>,
    /// `esp_proposals`, parsed by `ikev2::proposal::parse_esp_proposal`, in order.
    pub esp_proposals: Vec<Proposal>,
    /// `local_ts`: our traffic selectors (default `0.0.0.0/0`).
    pub local_ts: Vec<IpNet>,
    /// `remote_ts`: the peer's traffic selectors (default `0.0.0.0/0`).
    pub remote_ts: Vec<IpNet>,
    /// `ike_lifetime`: hard lifetime of the IKE SA.
    pub ike_lifetime: Duration,
    /// `child_lifetime`: hard lifetime of the Child SA.
    pub child_lifetime: Duration,
    /// `child_life_bytes`: hard byte limit of the Child SA, `None` = unlimited.
    pub child_life_bytes: Option<u64>,
    /// `ike_rekey_margin`: rekey the IKE SA this long before `ike_lifetime` (default 10%).
    pub ike_rekey_margin: Duration,
    /// `child_rekey_margin`: rekey the Child SA this long before `child_lifetime` (default 10%).
    pub child_rekey_margin: Duration,
    /// `rekey_fuzz`: percent of the margin added at random (0..=100, default 100): the
    /// rekey happens at `lifetime - margin - random(0..=margin * fuzz / 100)`.
    pub rekey_fuzz: u8,
    /// `dpd_delay`: liveness check interval when idle; zero = DPD disabled.
    pub dpd_delay: Duration,
    /// `dpd_timeout`: a peer that answers no liveness check (or other IKE request) for
    /// this long is dead; the retransmission schedule is shortened to fit (see
    /// [`Tunnel::retransmit_first`]). `None`: the schedule's own length.
    pub dpd_timeout: Option<Duration>,
    /// `dpd_action`.
    pub dpd_action: DpdAction,
    /// `retransmit_timeout`: first retransmission timeout of an IKE request (default 4 s).
    pub retransmit_timeout: Duration,
    /// `retransmit_tries`: retransmissions of an IKE request before the peer is declared
    /// unreachable (default 5).
    pub retransmit_tries: u32,
    /// `encap`.
    pub encap: Encap,
    /// `mtu`: TUN device MTU, 576..=9000 (default 1400).
    pub mtu: u16,
    /// `mss_clamp`: clamp TCP MSS of SYNs through the tunnel, `None` = off.
    pub mss_clamp: Option<u16>,
    /// `start_action`.
    pub start_action: StartAction,
    /// `profile`.
    pub profile: Profile,
}

impl Tunnel {
    /// Loads this tunnel's PSK (see [`crate::load_psk`]).
    pub fn load_psk(&self) -> Result<crate::Psk, crate::PskError> {
        crate::load_psk(&self.psk)
    }

    /// The first retransmission timeout to use: `retransmit_timeout`, or, when the
    /// schedule `t × 1.8^n` (n = 0..=`retransmit_tries`) would last longer than
    /// `dpd_timeout`, the `t` (whole milliseconds, at least 1) that makes it fit. An IKE
    /// request is retransmitted after `t`, `t × 1.8`, ... and given up
    /// [`Tunnel::request_timeout`] after its first send.
    pub fn retransmit_first(&self) -> Duration {
        let sum = schedule_factor(self.retransmit_tries);
        match self.dpd_timeout {
            Some(limit) if self.retransmit_timeout.as_secs_f64() * sum > limit.as_secs_f64() => {
                let ms = (limit.as_secs_f64() * 1000.0 / sum).floor().max(1.0);
                Duration::from_millis(ms as u64)
            }
            _ => self.retransmit_timeout,
        }
    }

    /// How long an unanswered IKE request (e.g. a liveness check after `dpd_delay`) takes
    /// to be given up: the sum of the retransmission schedule (at most `dpd_timeout`).
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs_f64(
            self.retransmit_first().as_secs_f64() * schedule_factor(self.retransmit_tries),
        )
    }

    /// Earliest IKE SA rekey time after establishment (`ike_lifetime - margin * (1 + fuzz/100)`).
    pub fn ike_rekey_earliest(&self) -> Duration {
        rekey_earliest(self.ike_lifetime, self.ike_rekey_margin, self.rekey_fuzz)
    }

    /// Latest IKE SA rekey time after establishment (`ike_lifetime - margin`).
    pub fn ike_rekey_latest(&self) -> Duration {
        self.ike_lifetime.saturating_sub(self.ike_rekey_margin)
    }

    /// Earliest Child SA rekey time after establishment.
    pub fn child_rekey_earliest(&self) -> Duration {
        rekey_earliest(
            self.child_lifetime,
            self.child_rekey_margin,
            self.rekey_fuzz,
        )
    }

    /// Latest Child SA rekey time after establishment (`child_lifetime - margin`).
    pub fn child_rekey_latest(&self) -> Duration {
        self.child_lifetime.saturating_sub(self.child_rekey_margin)
    }
}

fn rekey_earliest(life: Duration, margin: Duration, fuzz: u8) -> Duration {
    let extra = margin.mul_f64(f64::from(fuzz) / 100.0);
    life.saturating_sub(margin).saturating_sub(extra)
}

/// `[bgp]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bgp {
    /// `asn`: our AS number (1..=4294967294, not 23456).
    pub asn: u32,
    /// `router_id`: BGP identifier.
    pub router_id: Ipv4Addr,
    /// `table`: kernel routing table for learned routes (default 254, main).
    pub table: u32,
    /// `proto`: route protocol id on installed routes (default 249), used to find and
    /// remove exactly Causeway's routes.
    pub proto: u8,
    /// `[[bgp.neighbor]]`, in file order; addresses are unique.
    pub neighbors: Vec<Neighbor>,
}

/// One `[[bgp.neighbor]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbor {
    /// `address`: the peer's BGP address.
    pub address: IpAddr,
    /// `remote_asn`: the peer's AS (default 65515 on an azure tunnel).
    pub remote_asn: u32,
    /// `tunnel`: name of the tunnel the session runs through (always one of
    /// [`Config::tunnels`]).
    pub tunnel: String,
    /// `local_address`: source address of the TCP session, `None` = chosen by the kernel.
    pub local_address: Option<IpAddr>,
    /// `multihop`: TTL of the session's packets, `None` = 1 (directly connected);
    /// default 64 on an azure tunnel.
    pub multihop: Option<u8>,
    /// `hold_time`: proposed hold time (0 or 3..=65535, default 180).
    pub hold_time: Duration,
    /// `keepalive`: keepalive interval (default hold_time / 3; 0 when hold_time is 0).
    pub keepalive: Duration,
    /// `announce`: prefixes we originate to this neighbor.
    pub announce: Vec<IpNet>,
    /// `import`: accepted routes (`"10.2.0.0/16 le 24"`, parsed by
    /// `bgp::parse_prefix_filter`); `None` = not configured: accept everything except our
    /// own `announce` prefixes (`bgp::PrefixList::default()` in `bgp::Policy`).
    pub import: Option<Vec<bgp::PrefixListEntry>>,
    /// `export`: which routes we may advertise; `None` = not configured: exactly
    /// `announce` (no re-advertising of learned routes).
    pub export: Option<Vec<bgp::PrefixListEntry>>,
    /// `prepend`: how many extra times our ASN is prepended on export (0..=16, default 0).
    pub prepend: u8,
    /// `max_prefixes`: limit on accepted prefixes, `None` = unlimited.
    pub max_prefixes: Option<u32>,
    /// `max_prefixes_action`.
    pub max_prefixes_action: MaxPrefixesAction,
}

/// Backoff base of IKE retransmissions (strongSwan's `retransmit_base`).
pub const RETRANSMIT_BASE: f64 = 1.8;

/// `Σ RETRANSMIT_BASE^n` for n = 0..=tries: the schedule's length in first timeouts.
fn schedule_factor(tries: u32) -> f64 {
    (0..=tries.min(30) as i32)
        .map(|n| RETRANSMIT_BASE.powi(n))
        .sum()
}

#[cfg(test)]
mod tests {
    use crate::Config;
    use std::time::Duration;

    fn tunnel(extra: &str) -> Result<crate::Tunnel, String> {
        let text = format!(
            "[[tunnel]]\nname = \"t\"\nlocal_addrs = \"192.0.2.1\"\nremote_addrs = \"198.51.100.7\"\npsk_env = \"X\"\n{extra}\n"
        );
        Config::from_str(&text, "t.toml")
            .map(|c| c.tunnels[0].clone())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn retransmit_defaults_are_strongswans() {
        let t = tunnel("").unwrap();
        assert_eq!(t.dpd_timeout, None);
        assert_eq!(t.retransmit_timeout, Duration::from_secs(4));
        assert_eq!(t.retransmit_tries, 5);
        assert_eq!(t.retransmit_first(), Duration::from_secs(4));
        // 4 × (1 + 1.8 + … + 1.8^5) ≈ 165.4 s
        let total = t.request_timeout().as_secs_f64();
        assert!((165.0..166.0).contains(&total), "{total}");
    }

    #[test]
    fn azure_profile_gives_up_on_a_silent_peer_after_45s() {
        let t = tunnel("profile = \"azure\"").unwrap();
        assert_eq!(t.dpd_timeout, Some(Duration::from_secs(45)));
        assert!(t.request_timeout() <= Duration::from_secs(45));
        let t = tunnel("profile = \"azure\"\ndpd_timeout = \"20s\"").unwrap();
        assert_eq!(t.dpd_timeout, Some(Duration::from_secs(20)));
    }

    #[test]
    fn dpd_timeout_bounds_the_schedule() {
        for (extra, limit) in [
            ("dpd_timeout = \"45s\"", 45.0),
            ("dpd_timeout = \"6s\"", 6.0),
            ("dpd_timeout = \"10s\"\nretransmit_tries = 2", 10.0),
            (
                "dpd_timeout = \"30s\"\nretransmit_timeout = \"1s\"\nretransmit_tries = 3",
                30.0,
            ),
        ] {
            let t = tunnel(extra).unwrap();
            let total = t.request_timeout().as_secs_f64();
            assert!(total <= limit, "{extra}: {total} > {limit}");
            assert!(total > limit * 0.9 || t.retransmit_first() == t.retransmit_timeout);
        }
        // Longer than the schedule: the schedule is kept.
        let t = tunnel("dpd_timeout = \"300s\"").unwrap();
        assert_eq!(t.retransmit_first(), Duration::from_secs(4));
        let t = tunnel("dpd_timeout = \"30s\"\nretransmit_timeout = \"1s\"\nretransmit_tries = 3")
            .unwrap();
        assert_eq!(t.retransmit_first(), Duration::from_secs(1));
    }

    #[test]
    fn retransmit_keys_are_checked() {
        let e = tunnel("dpd_timeout = \"1s\"").unwrap_err();
        assert!(e.contains("`dpd_timeout` is too short"), "{e}");
        let e = tunnel("retransmit_tries = 11").unwrap_err();
        assert!(
            e.contains("`retransmit_tries` must be between 0 and 10"),
            "{e}"
        );
        let e = tunnel("retransmit_timeout = \"0s\"").unwrap_err();
        assert!(
            e.contains("`retransmit_timeout` must be greater than zero"),
            "{e}"
        );
        let e = tunnel("dpd_timeout = 0").unwrap_err();
        assert!(e.contains("`dpd_timeout` must be greater than zero"), "{e}");
        assert!(tunnel("dpd_timeout = \"1s\"\nretransmit_tries = 1").is_ok());
    }
}
