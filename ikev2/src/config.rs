//! Configuration of one IKEv2 connection (one tunnel to one peer).

use core::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use zeroize::Zeroizing;

use crate::proposal::Proposal;
use crate::ts::TrafficSelector;

/// An IKE identity (RFC 7296 §3.5).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identity {
    /// ID_IPV4_ADDR / ID_IPV6_ADDR.
    Addr(IpAddr),
    /// ID_FQDN, e.g. `vpn.example.com`.
    Fqdn(String),
    /// ID_RFC822_ADDR, e.g. `gw@example.com`.
    Email(String),
    /// ID_KEY_ID: opaque bytes.
    KeyId(Vec<u8>),
}

impl Identity {
    /// Parses strongSwan-style identities: an IP address, `@fqdn` or a bare FQDN,
    /// `user@domain` (RFC 822), or `@#hex` (KEY_ID).
    pub fn parse(s: &str) -> Identity {
        let s = s.trim();
        if let Ok(a) = s.parse::<IpAddr>() {
            return Identity::Addr(a);
        }
        if let Some(hex) = s.strip_prefix("@#") {
            if let Some(bytes) = decode_hex(hex) {
                return Identity::KeyId(bytes);
            }
        }
        if let Some(f) = s.strip_prefix('@') {
            return Identity::Fqdn(f.to_string());
        }
        if s.contains('@') {
            return Identity::Email(s.to_string());
        }
        Identity::Fqdn(s.to_string())
    }

    /// The ID Type on the wire (RFC 7296 §3.5).
    pub fn id_type(&self) -> u8 {
        match self {
            Identity::Addr(IpAddr::V4(_)) => 1,
            Identity::Fqdn(_) => 2,
            Identity::Email(_) => 3,
            Identity::Addr(IpAddr::V6(_)) => 5,
            Identity::KeyId(_) => 11,
        }
    }

    /// The Identification Data on the wire.
    pub fn data(&self) -> Vec<u8> {
        match self {
            Identity::Addr(IpAddr::V4(a)) => a.octets().to_vec(),
            Identity::Addr(IpAddr::V6(a)) => a.octets().to_vec(),
            Identity::Fqdn(s) | Identity::Email(s) => s.as_bytes().to_vec(),
            Identity::KeyId(b) => b.clone(),
        }
    }

    /// From the wire ID Type and data; `None` for types Causeway does not handle.
    pub fn from_wire(id_type: u8, data: &[u8]) -> Option<Identity> {
        match id_type {
            1 => <[u8; 4]>::try_from(data)
                .ok()
                .map(|b| Identity::Addr(IpAddr::from(b))),
            5 => <[u8; 16]>::try_from(data)
                .ok()
                .map(|b| Identity::Addr(IpAddr::from(b))),
            2 => core::str::from_utf8(data)
                .ok()
                .map(|s| Identity::Fqdn(s.to_string())),
            3 => core::str::from_utf8(data)
                .ok()
                .map(|s| Identity::Email(s.to_string())),
            11 => Some(Identity::KeyId(data.to_vec())),
            _ => None,
        }
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Addr(a) => write!(f, "{a}"),
            Identity::Fqdn(s) => write!(f, "@{s}"),
            Identity::Email(s) => write!(f, "{s}"),
            Identity::KeyId(b) => {
                f.write_str("@#")?;
                for x in b {
                    write!(f, "{x:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// A pre-shared key: zeroized on drop, never printed.
#[derive(Clone)]
pub struct Psk(Zeroizing<Vec<u8>>);

impl Psk {
    /// Wraps the key bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Psk {
        Psk(Zeroizing::new(bytes.into()))
    }
    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Psk(<redacted>)")
    }
}

/// What to do when the peer is found dead (an established IKE SA's request, e.g. a
/// liveness check after [`Config::dpd_delay`], is not answered after all
/// retransmissions). In every case the IKE SA and its Child SAs are deleted first
/// ([`crate::Event::DeadPeer`], the deletions, then `Failed(PeerUnreachable)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DpdAction {
    /// Nothing more (strongSwan `clear`).
    #[default]
    Clear,
    /// Re-initiate at once (strongSwan `restart`). Only when the daemon does not
    /// re-initiate by itself after a failure.
    Restart,
    /// Nothing more here: the daemon initiates again when traffic for the tunnel
    /// arrives (strongSwan `trap`).
    Trap,
}

/// When ESP (and IKE) switch to UDP encapsulation on port 4500.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Encap {
    /// Only when NAT_DETECTION shows a NAT between the peers (RFC 7296 §2.23).
    #[default]
    Auto,
    /// Always: the Child SAs are UDP-encapsulated and IKE moves to port 4500 after
    /// IKE_SA_INIT (strongSwan `encap = yes`, needed with kernel-libipsec peers).
    /// Implemented by faking the NAT_DETECTION_SOURCE_IP hash, as strongSwan does.
    Force,
}

/// Configuration of one connection.
#[derive(Clone, Debug)]
pub struct Config {
    /// Our outer address and IKE port (usually port 500).
    pub local_addr: SocketAddr,
    /// The peer's outer address and IKE port (usually port 500). As a responder,
    /// requests are accepted from this IP on any port (NAT may change it).
    pub remote_addr: SocketAddr,
    /// Our identity (IDi / IDr).
    pub local_id: Identity,
    /// The identity the peer must authenticate as; `None` accepts any identity (the PSK
    /// still has to match).
    pub remote_id: Option<Identity>,
    /// The pre-shared key.
    pub psk: Psk,
    /// IKE proposals, in preference order (e.g. from [`crate::proposal::parse_ike_proposal`]).
    pub ike_proposals: Vec<Proposal>,
    /// ESP proposals, in preference order.
    pub esp_proposals: Vec<Proposal>,
    /// Our side's traffic selectors (TSi as initiator, TSr as responder).
    pub local_ts: Vec<TrafficSelector>,
    /// The peer's traffic selectors.
    pub remote_ts: Vec<TrafficSelector>,
    /// Hard IKE SA lifetime: an IKE SA not rekeyed by then is deleted
    /// ([`crate::Event::IkeSaExpired`]). Bounds [`Config::ike_rekey_time`]. Default
    /// 28,800 s (Azure).
    pub ike_lifetime: Duration,
    /// Hard Child SA lifetime: a Child SA not replaced by then is deleted
    /// ([`crate::Event::ChildSaExpired`]); also reported in [`crate::ChildSa::lifetime`].
    /// Bounds [`Config::child_rekey_time`]. Default 27,000 s (Azure).
    pub child_lifetime: Duration,
    /// First retransmission timeout (strongSwan: 4 s).
    pub retransmit_timeout: Duration,
    /// Backoff base (strongSwan: 1.8).
    pub retransmit_base: f64,
    /// Retransmissions before giving up (strongSwan: 5).
    pub retransmit_tries: u32,
    /// UDP encapsulation policy.
    pub encap: Encap,
    /// Send INITIAL_CONTACT in IKE_AUTH (as initiator).
    pub initial_contact: bool,
    /// Send a liveness check (empty INFORMATIONAL) after this long without hearing from
    /// the peer; `None` disables it. An unanswered check ends in
    /// [`crate::FailReason::PeerUnreachable`] after the retransmissions.
    pub dpd_delay: Option<Duration>,
    /// Send a NAT keepalive (one 0xFF byte on port 4500, RFC 3948 §2.3; see
    /// [`crate::Transmit::is_nat_keepalive`]) this often while we are behind a NAT (or
    /// encapsulation is forced); `None` disables. Default 20 s (strongSwan's).
    pub nat_keepalive: Option<Duration>,
    /// What to do when the peer is found dead (default [`DpdAction::Clear`]).
    pub dpd_action: DpdAction,
    /// Accept the peer's CREATE_CHILD_SA without a KE payload (no PFS) even when our ESP
    /// proposals carry a DH group (Azure rekeys without PFS; `profile = "azure"`). Our
    /// own rekeys still use PFS. Default false.
    pub accept_rekey_without_pfs: bool,
    /// Offer and accept IKE fragmentation (RFC 7383, IKEV2_FRAGMENTATION_SUPPORTED).
    /// Default true.
    pub fragmentation: bool,
    /// Largest IP datagram (IP + UDP header + IKE message) we send before fragmenting a
    /// protected message (IKE_AUTH and later), when both sides support fragmentation.
    /// Default 1,280 (strongSwan's `fragment_size`).
    pub fragment_size: usize,
    /// Rekey each Child SA (CREATE_CHILD_SA, make-before-break) this long after it was
    /// created; `None` never rekeys. Default 24,300 s; never later than 90 % of
    /// `child_lifetime`. As IKE responder Causeway waits 5 % longer, so that normally the
    /// IKE initiator rekeys.
    pub child_rekey_time: Option<Duration>,
    /// Rekey the IKE SA (CREATE_CHILD_SA) this long after it was created; `None` never
    /// rekeys. Default 25,920 s; never later than 90 % of `ike_lifetime`; the IKE
    /// responder waits 5 % longer.
    pub ike_rekey_time: Option<Duration>,
    /// How long a responder keeps an IKE SA whose IKE_AUTH never arrives.
    pub half_open_timeout: Duration,
    /// Random jitter subtracted from each Child SA's rekey time (a fresh draw in
    /// `0..=jitter` per Child SA, like strongSwan's `rand_time`), so that the two peers and
    /// many tunnels do not all rekey at once. Default 0 (the daemon may jitter
    /// `child_rekey_time` itself instead).
    pub child_rekey_jitter: Duration,
    /// The same for the IKE SA's rekey time. Default 0.
    pub ike_rekey_jitter: Duration,
    /// Hard Child SA limit in (inner) bytes, per direction: reported in
    /// [`crate::ChildSa::esp_lifetime`] for the dataplane; when it is reached the daemon
    /// calls [`crate::Endpoint::child_sa_hard_expired`]. `None`: unlimited. Azure:
    /// 102,400,000 KB (`Some(102_400_000 * 1024)`).
    pub child_life_bytes: Option<u64>,
    /// Hard Child SA limit in packets, per direction (like `child_life_bytes`).
    pub child_life_packets: Option<u64>,
    /// Soft Child SA limits (bytes, packets) at which the daemon calls
    /// [`crate::Endpoint::child_sa_soft_expired`] to rekey; `None` means 90 % of the hard
    /// limit.
    pub child_rekey_bytes: Option<u64>,
    /// Soft Child SA packet limit (see `child_rekey_bytes`).
    pub child_rekey_packets: Option<u64>,
    /// Responder: once this many IKE SAs are half-open, IKE_SA_INIT requests must carry
    /// a valid COOKIE (RFC 7296 §2.6; stateless, secret rotated every 60 s). 0: always.
    /// Default 10 (strongSwan's `cookie_threshold`).
    pub cookie_threshold: usize,
    /// Responder: never more than this many half-open IKE SAs (further IKE_SA_INIT
    /// requests are dropped, even with a valid cookie). Default 1,000.
    pub half_open_limit: usize,
    /// Responder: at most this many IKE_SA_INIT requests per second from one source
    /// address (more are dropped). Default 10. IKE_SA_INIT is accepted from any source
    /// when `remote_addr` is unspecified (0.0.0.0 / ::, a dynamic peer), otherwise only
    /// from `remote_addr`'s IP.
    pub init_rate_limit: u32,
}

impl Config {
    /// A configuration with strongSwan's timers, the Azure default proposals and
    /// any-to-any IPv4 selectors; fill in the rest.
    pub fn new(local_addr: SocketAddr, remote_addr: SocketAddr, psk: Psk) -> Config {
        use crate::proposal::{
            parse_esp_proposals, parse_ike_proposals, AZURE_ESP_DEFAULTS, AZURE_IKE_DEFAULTS,
        };
        Config {
            local_addr,
            remote_addr,
            local_id: Identity::Addr(local_addr.ip()),
            remote_id: None,
            psk,
            ike_proposals: parse_ike_proposals(AZURE_IKE_DEFAULTS).unwrap_or_default(),
            esp_proposals: parse_esp_proposals(AZURE_ESP_DEFAULTS).unwrap_or_default(),
            local_ts: vec![TrafficSelector::ANY_V4],
            remote_ts: vec![TrafficSelector::ANY_V4],
            ike_lifetime: Duration::from_secs(28_800),
            child_lifetime: Duration::from_secs(27_000),
            retransmit_timeout: Duration::from_secs(4),
            retransmit_base: 1.8,
            retransmit_tries: 5,
            encap: Encap::Auto,
            initial_contact: true,
            dpd_delay: None,
            nat_keepalive: Some(Duration::from_secs(20)),
            dpd_action: DpdAction::Clear,
            accept_rekey_without_pfs: false,
            fragmentation: true,
            fragment_size: 1280,
            child_rekey_time: Some(Duration::from_secs(27_000 * 9 / 10)),
            ike_rekey_time: Some(Duration::from_secs(28_800 * 9 / 10)),
            half_open_timeout: Duration::from_secs(30),
            child_rekey_jitter: Duration::ZERO,
            ike_rekey_jitter: Duration::ZERO,
            child_life_bytes: None,
            child_life_packets: None,
            child_rekey_bytes: None,
            child_rekey_packets: None,
            cookie_threshold: 10,
            half_open_limit: 1000,
            init_rate_limit: 10,
        }
    }

    /// The byte and packet limits of a new Child SA for the dataplane (`esp`): hard from
    /// `child_life_*`, soft from `child_rekey_*` or 90 % of the hard limit. Time limits
    /// are left out: the IKE engine rekeys and expires Child SAs by time itself.
    pub fn esp_lifetime(&self) -> esp::Lifetime {
        let soft = |s: Option<u64>, h: Option<u64>| {
            s.or(h.map(|h| h / 10 * 9 + h % 10 * 9 / 10))
                .map(|s| h.map_or(s, |h| s.min(h)))
        };
        esp::Lifetime {
            soft: esp::Limits {
                bytes: soft(self.child_rekey_bytes, self.child_life_bytes),
                packets: soft(self.child_rekey_packets, self.child_life_packets),
                time: None,
            },
            hard: esp::Limits {
                bytes: self.child_life_bytes,
                packets: self.child_life_packets,
                time: None,
            },
        }
    }

    /// Delay before retransmission number `n` (0 = first send): `timeout × base^n`.
    pub fn retransmit_delay(&self, n: u32) -> Duration {
        let f = self.retransmit_base.max(1.0).powi(n.min(30) as i32);
        // Saturating: never panics on odd configured values.
        Duration::try_from_secs_f64(self.retransmit_timeout.as_secs_f64() * f.min(1e6))
            .unwrap_or(Duration::from_secs(86_400))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities() {
        assert_eq!(
            Identity::parse("192.0.2.1"),
            Identity::Addr("192.0.2.1".parse().unwrap())
        );
        assert_eq!(
            Identity::parse("@vpn.example"),
            Identity::Fqdn("vpn.example".into())
        );
        assert_eq!(Identity::parse("@#0a0B"), Identity::KeyId(vec![10, 11]));
        assert_eq!(Identity::parse("a@b.c"), Identity::Email("a@b.c".into()));
        for s in [
            "192.0.2.1",
            "@vpn.example",
            "@#0a0b",
            "a@b.c",
            "2001:db8::1",
        ] {
            let id = Identity::parse(s);
            assert_eq!(
                Identity::from_wire(id.id_type(), &id.data()),
                Some(id.clone())
            );
            assert_eq!(Identity::parse(&id.to_string()), id);
        }
    }

    #[test]
    fn psk_is_redacted_and_backoff_grows() {
        let c = Config::new(
            "192.0.2.1:500".parse().unwrap(),
            "198.51.100.7:500".parse().unwrap(),
            Psk::new(b"hunter2".to_vec()),
        );
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"));
        assert!(dbg.contains("<redacted>"));
        assert_eq!(c.retransmit_delay(0), Duration::from_secs(4));
        assert_eq!(c.retransmit_delay(1), Duration::from_millis(7200));
        assert!(c.retransmit_delay(4) > Duration::from_secs(41));
    }
}
