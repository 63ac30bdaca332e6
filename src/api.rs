//! The control protocol: one JSON request line in, one JSON response line out.
//!
//! These types are the stable `--json` output of `causeway status|sa|bgp|routes`. Fields are
//! only ever added, never renamed or removed. Times are seconds; counters are totals since the
//! daemon (or the SA) started; SPIs are lowercase hex (8 digits for ESP, 16 for IKE).
//!
//! * `causeway status --json`: a [`Snapshot`] object (`version`, `pid`, `uptime_secs`,
//!   `tunnels`, `bgp`, `routes`).
//! * `causeway sa --json`: the `tunnels` array ([`TunnelStatus`]: `name`, `interface`,
//!   `local_addr`, `remote_addr`, `state` = `down`|`connecting`|`established`,
//!   `ike_sa` ([`IkeSaStatus`] or null), `child_sas` ([`ChildSaStatus`]), `counters`
//!   ([`Counters`]: `bytes_in`, `bytes_out`, `packets_in`, `packets_out`), `drops`
//!   (reason → count: `no_outbound_sa`, `unknown_spi`, `auth_failed`, `replay`, `policy`,
//!   `malformed`, `too_big`, `seal_failed`, `io_error`), `last_error`, `ike_dos`
//!   ([`IkeDos`], the responder's IKE_SA_INIT flood protection: `cookies_sent`,
//!   `rate_limited`, `half_open_full` (counters), `half_open` (IKE SAs half-open now))).
//! * `dataplane_drops` in `causeway status --json` (reason → count, only non-zero ones):
//!   the data-plane reasons above for packets that belong to no tunnel, plus
//!   `ike_unknown_peer` (IKE datagrams from an address that is no tunnel's peer, dropped
//!   unparsed) and `ike_backlog` (IKE datagrams dropped because the tunnel's task was
//!   behind, i.e. its queue was full).
//! * `causeway bgp --json`: the `bgp` array ([`NeighborStatus`]: `address`, `remote_asn`,
//!   `tunnel`, `state` = `Idle`|`Connect`|`Active`|`OpenSent`|`OpenConfirm`|`Established`,
//!   `uptime_secs`, `prefixes_received`, `prefixes_accepted`, `prefixes_advertised`,
//!   `last_error`).
//! * `causeway routes --json`: the `routes` array ([`RouteStatus`]: `prefix`, `source` =
//!   `static` (a remote traffic selector) | `bgp` | `underlay` (host route pinning the peer
//!   for forced tunneling), `tunnel`, `interface`, `next_hop`, `as_path`, `installed`,
//!   `next_hops`). `tunnel`/`interface`/`next_hop` name the first path; `next_hops` lists
//!   every path of the kernel route ([`RouteNextHop`]: `tunnel`, `interface`, `address` =
//!   the BGP next hop, null for a selector route): a BGP route learned over several
//!   tunnels is ECMP over them, and a selector prefix that several tunnels carry is one
//!   route over those of them that are up (over all of them while none is). IPv6 routes
//!   have one path (the kernel's IPv6 multipath needs gateways). Empty for `underlay`.
//!
//! The wire protocol of the control socket is one JSON object per line each way:
//! `{"cmd":"status"}` (also `sa`, `bgp`, `routes`), `{"cmd":"initiate","tunnel":"azure"}`,
//! `{"cmd":"terminate","tunnel":"azure"}`, `{"cmd":"rekey","tunnel":"azure","ike":false}`;
//! the answer is `{"ok":true,"status":{...}}`, `{"ok":true,"message":"..."}` or
//! `{"ok":false,"error":"..."}`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Default path of the control socket.
pub const DEFAULT_SOCKET: &str = "/run/causeway/causeway.sock";

/// A request sent by the CLI to the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// Everything: tunnels, SAs, BGP neighbors, routes.
    Status,
    /// Tunnels with their IKE and Child SAs.
    Sa,
    /// BGP neighbors.
    Bgp,
    /// Routes learned and installed.
    Routes,
    /// Start (or restart) the IKE SA of a tunnel.
    Initiate {
        /// Tunnel name.
        tunnel: String,
    },
    /// Delete the IKE SA (and its Child SAs) of a tunnel.
    Terminate {
        /// Tunnel name.
        tunnel: String,
    },
    /// Rekey the Child SA (or the IKE SA with `ike`).
    Rekey {
        /// Tunnel name.
        tunnel: String,
        /// Rekey the IKE SA instead of the Child SA.
        #[serde(default)]
        ike: bool,
    },
}

/// The daemon's answer to one [`Request`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request succeeded.
    pub ok: bool,
    /// Error text when `ok` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Human-readable note for operator actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The data for query requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Snapshot>,
}

impl Response {
    /// A successful answer carrying a snapshot.
    pub fn with_status(s: Snapshot) -> Self {
        Response {
            ok: true,
            error: None,
            message: None,
            status: Some(s),
        }
    }
    /// A successful answer with a note.
    pub fn message(m: impl Into<String>) -> Self {
        Response {
            ok: true,
            error: None,
            message: Some(m.into()),
            status: None,
        }
    }
    /// A failed answer.
    pub fn error(e: impl Into<String>) -> Self {
        Response {
            ok: false,
            error: Some(e.into()),
            message: None,
            status: None,
        }
    }
}

/// The whole observable state of the daemon.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// Causeway version.
    pub version: String,
    /// Process id of the daemon.
    pub pid: u32,
    /// Seconds since the daemon started.
    pub uptime_secs: u64,
    /// One entry per `[[tunnel]]`.
    pub tunnels: Vec<TunnelStatus>,
    /// One entry per `[[bgp.neighbor]]`.
    pub bgp: Vec<NeighborStatus>,
    /// Routes learned (BGP) or configured (remote traffic selectors).
    pub routes: Vec<RouteStatus>,
    /// Drops that belong to no tunnel, by reason (e.g. `unknown_spi`: ESP for an SPI
    /// no tunnel has installed; `malformed`: runt or unparsable datagrams).
    #[serde(default)]
    pub dataplane_drops: BTreeMap<String, u64>,
}

/// State of one tunnel.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TunnelStatus {
    /// Tunnel name from the config.
    pub name: String,
    /// TUN device name.
    pub interface: String,
    /// Outer local address.
    pub local_addr: String,
    /// Outer remote address.
    pub remote_addr: String,
    /// `down`, `connecting`, `established` or `unavailable`.
    pub state: String,
    /// The IKE SA, if any.
    pub ike_sa: Option<IkeSaStatus>,
    /// Installed Child SAs.
    pub child_sas: Vec<ChildSaStatus>,
    /// Data-plane counters of the tunnel.
    pub counters: Counters,
    /// Dropped packets by reason (e.g. `replay`, `auth`, `no_sa`, `policy`).
    pub drops: BTreeMap<String, u64>,
    /// The last error seen on this tunnel.
    pub last_error: Option<String>,
    /// IKE_SA_INIT flood protection of the tunnel's IKE responder.
    #[serde(default)]
    pub ike_dos: IkeDos,
}

/// What the IKE responder's DoS protection (RFC 7296 §2.6) did, since the daemon started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IkeDos {
    /// IKE_SA_INIT requests answered with a COOKIE (too many half-open IKE SAs).
    #[serde(default)]
    pub cookies_sent: u64,
    /// IKE_SA_INIT requests dropped by the per-source rate limit.
    #[serde(default)]
    pub rate_limited: u64,
    /// IKE_SA_INIT requests dropped because the half-open table was full, or the source
    /// address had too many half-open IKE SAs.
    #[serde(default)]
    pub half_open_full: u64,
    /// IKE SAs half-open now (responder, waiting for IKE_AUTH): a gauge.
    #[serde(default)]
    pub half_open: u64,
}

impl IkeDos {
    /// Whether the protection ever acted: a cookie sent or a request dropped (a
    /// half-open IKE SA alone is any responder's normal handshake).
    pub fn engaged(&self) -> bool {
        self.cookies_sent > 0 || self.rate_limited > 0 || self.half_open_full > 0
    }
}

/// Packets and bytes in both directions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// Bytes received (decrypted payload written to the TUN).
    pub bytes_in: u64,
    /// Bytes sent (plaintext read from the TUN and sealed).
    pub bytes_out: u64,
    /// Packets received.
    pub packets_in: u64,
    /// Packets sent.
    pub packets_out: u64,
}

/// An IKE SA.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IkeSaStatus {
    /// IKE SA state.
    pub state: String,
    /// Whether this side initiated it.
    pub initiator: bool,
    /// Initiator SPI (hex).
    pub spi_i: String,
    /// Responder SPI (hex).
    pub spi_r: String,
    /// Negotiated transforms, strongSwan style with the PRF spelled out (`aes256-sha256-prfsha256-modp2048s256`).
    pub algorithms: String,
    /// Seconds since establishment.
    pub age_secs: u64,
    /// Seconds until rekey, if scheduled.
    pub rekey_in_secs: Option<u64>,
}

/// A Child SA pair.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChildSaStatus {
    /// Inbound SPI (hex).
    pub spi_in: String,
    /// Outbound SPI (hex).
    pub spi_out: String,
    /// Negotiated transforms (`aes256gcm16`).
    pub algorithms: String,
    /// `udp` (ESP-in-UDP) or `esp`.
    pub encap: String,
    /// Local traffic selectors.
    pub local_ts: Vec<String>,
    /// Remote traffic selectors.
    pub remote_ts: Vec<String>,
    /// Seconds since installation.
    pub age_secs: u64,
    /// Seconds until rekey, if scheduled.
    pub rekey_in_secs: Option<u64>,
    /// Counters of this SA pair.
    pub counters: Counters,
}

/// A BGP neighbor.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NeighborStatus {
    /// Neighbor address.
    pub address: String,
    /// Neighbor ASN.
    pub remote_asn: u32,
    /// Tunnel the session runs through.
    pub tunnel: String,
    /// FSM state (`Idle`, `Connect`, `Active`, `OpenSent`, `OpenConfirm`, `Established`,
    /// or `unavailable`).
    pub state: String,
    /// Seconds in Established.
    pub uptime_secs: Option<u64>,
    /// Prefixes received.
    pub prefixes_received: u64,
    /// Prefixes accepted by import policy.
    pub prefixes_accepted: u64,
    /// Prefixes advertised.
    pub prefixes_advertised: u64,
    /// The last error (notification or socket error).
    pub last_error: Option<String>,
}

/// A route learned or configured.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RouteStatus {
    /// Destination prefix.
    pub prefix: String,
    /// Where it came from: `bgp` or `static` (remote traffic selector).
    pub source: String,
    /// Tunnel it points into.
    pub tunnel: String,
    /// TUN device.
    pub interface: String,
    /// BGP next hop, if learned by BGP.
    pub next_hop: Option<String>,
    /// BGP AS path, if learned by BGP.
    pub as_path: Vec<u32>,
    /// Whether it is installed in the kernel.
    pub installed: bool,
    /// Every path of the kernel route (ECMP), first one first. Absent from older daemons.
    #[serde(default)]
    pub next_hops: Vec<RouteNextHop>,
}

/// One path of a route.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteNextHop {
    /// Tunnel it points into.
    pub tunnel: String,
    /// TUN device.
    pub interface: String,
    /// BGP next hop; `None` for a selector route.
    pub address: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ike_dos_is_in_the_json_and_optional_on_input() {
        let t = TunnelStatus {
            name: "azure".into(),
            ike_dos: IkeDos {
                cookies_sent: 1234,
                rate_limited: 5,
                half_open_full: 2,
                half_open: 10,
            },
            ..Default::default()
        };
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["ike_dos"]["cookies_sent"], 1234);
        assert_eq!(v["ike_dos"]["rate_limited"], 5);
        assert_eq!(v["ike_dos"]["half_open_full"], 2);
        assert_eq!(v["ike_dos"]["half_open"], 10);
        // Output of an older daemon (no `ike_dos`) still parses.
        let mut old = v.clone();
        old.as_object_mut().unwrap().remove("ike_dos");
        let back: TunnelStatus = serde_json::from_value(old).unwrap();
        assert_eq!(back.ike_dos, IkeDos::default());
        let back: TunnelStatus = serde_json::from_value(v).unwrap();
        assert_eq!(back.ike_dos, t.ike_dos);
    }
}
