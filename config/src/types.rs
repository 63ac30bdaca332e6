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
    /// `dpd_action`.
    pub dpd_action: DpdAction,
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
