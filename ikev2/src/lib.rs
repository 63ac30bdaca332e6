//! Sans-IO IKEv2 (RFC 7296) with pre-shared keys: initiator and responder.
//!
//! Nothing in this crate opens a socket, reads a clock or draws randomness by itself:
//! time (`now: Instant`) and randomness ([`crypto::Rng`]) are passed in by the caller.
//!
//! # Modules
//!
//! * [`Endpoint`] (one configured connection to one peer) with [`Config`]; it produces
//!   [`Transmit`]s (datagrams to send) and [`Event`]s ([`Event::ChildSaEstablished`] with
//!   a [`ChildSa`]: SPIs, `esp::suite::Suite`, keys, selectors, NAT-T flag).
//! * [`proposal`]: strongSwan proposal strings ([`parse_ike_proposal`],
//!   [`parse_esp_proposal`]), selection (RFC 7296 §2.7), Azure's default proposals.
//! * [`ts`]: traffic selectors, CIDR conversion, narrowing (RFC 7296 §2.9).
//! * [`wire`]: the message codec (view + `Repr`, never panics on any input).
//! * [`crypto`]: Diffie-Hellman groups, PRFs, `prf+`, the key schedule and the SK payload.
//!
//! # Exchanges
//!
//! IKE_SA_INIT (SA, KE, Nonce, NAT_DETECTION_*; COOKIE and INVALID_KE_PAYLOAD retries as
//! initiator; NO_PROPOSAL_CHOSEN / INVALID_KE_PAYLOAD answers as responder), IKE_AUTH with
//! PSK and the first Child SA (INITIAL_CONTACT; AUTHENTICATION_FAILED, NO_PROPOSAL_CHOSEN,
//! TS_UNACCEPTABLE), INFORMATIONAL (Delete of Child/IKE SAs, empty liveness checks).
//! CREATE_CHILD_SA: Child SA rekeys in both roles (with or without PFS, make-before-break:
//! the new Child SA is reported before the old one is deleted), IKE SA rekeys in both roles
//! ([`Event::IkeSaRekeyed`]: the Child SAs move to the new IKE SA), by time
//! ([`Config::child_rekey_time`], [`Config::ike_rekey_time`]) or on demand
//! ([`Endpoint::rekey_child`], [`Endpoint::rekey_ike`]). Liveness checks on demand
//! ([`Endpoint::check_liveness`]) or after silence ([`Config::dpd_delay`]; call
//! [`Endpoint::peer_alive`] when ESP arrives). Counters: [`Endpoint::stats`].
//! Message IDs with window size 1, retransmission with strongSwan's backoff (4 s × 1.8ⁿ,
//! 5 retransmissions), cached responses for retransmitted requests.
//!
//! Simultaneous rekeys (RFC 7296 §2.8.1, §2.8.2): of two Child SAs or IKE SAs made at
//! once, the one whose exchange had the lowest nonce is deleted by its initiator; Child SA
//! changes and IKE SA rekeys exclude each other (TEMPORARY_FAILURE, §2.25.2) and are
//! retried after a random delay.
//!
//! No packet lost across a rekey (make-before-break, both directions): the rekey's
//! initiator switches outbound traffic to the new Child SA at once; its responder installs
//! the inbound half at once but keeps sending on the old one until the peer confirms the
//! new one ([`ChildSa::defer_outbound`], [`Event::ChildSaConfirmed`]); a Child SA we send
//! a Delete for is announced ([`Event::ChildSaDeleting`]: stop sending on it) before the
//! peer drops it.
//!
//! # Lifetimes
//!
//! Soft (rekey) by time: [`Config::child_rekey_time`] / [`Config::ike_rekey_time`] minus a
//! random [`Config::child_rekey_jitter`] / [`Config::ike_rekey_jitter`] drawn per SA. Hard
//! by time: a Child SA still there at [`Config::child_lifetime`], or an IKE SA not
//! rekeyed by [`Config::ike_lifetime`], is deleted ([`Event::ChildSaExpired`],
//! [`Event::IkeSaExpired`]). Bytes, packets and sequence numbers are counted by the
//! dataplane: each [`ChildSa`] carries `esp_lifetime` (from [`Config::child_life_bytes`]
//! etc.) and the daemon reports crossings with [`Endpoint::child_sa_soft_expired`]
//! (rekey) and [`Endpoint::child_sa_hard_expired`] (delete). Azure: `child_lifetime`
//! 27,000 s, `child_life_bytes` 102,400,000 KB, `ike_lifetime` 28,800 s.
//!
//! # Staying up
//!
//! * Dead peers: after [`Config::dpd_delay`] of silence a liveness check; unanswered, an
//!   [`Event::DeadPeer`] then the deletions, and [`Config::dpd_action`] (clear, restart,
//!   trap).
//! * INITIAL_CONTACT is sent (when we hold no other IKE SA) and honoured: the other IKE
//!   SAs of that peer identity are dropped silently, with their deletion events.
//! * NAT: keepalives every [`Config::nat_keepalive`] while behind a NAT
//!   ([`Transmit::is_nat_keepalive`]: one 0xFF byte on port 4500, no marker); a peer
//!   behind a NAT whose address or port changes is followed from its authenticated
//!   messages ([`Event::PeerAddressChanged`]: move the ESP destination).
//! * DoS (responder): stateless COOKIEs once [`Config::cookie_threshold`] IKE SAs are
//!   half-open (RFC 7296 §2.6, secret rotated every 60 s), a per-source rate limit
//!   ([`Config::init_rate_limit`]), a bound on half-open SAs ([`Config::half_open_limit`]);
//!   IKE_SA_INIT from any address only when `remote_addr` is unspecified.
//!   [`Endpoint::table_sizes`] and [`Endpoint::stats`] show it working.
//! * Fragmentation (RFC 7383): negotiated in IKE_SA_INIT ([`Config::fragmentation`]);
//!   protected messages above [`Config::fragment_size`] go out as SKF fragments, received
//!   fragments are verified one by one and reassembled.
//!
//! Not implemented: EAP/certificates, MOBIKE, reauthentication.
//!
//! # Driving it
//!
//! After every input (`initiate`, `handle_datagram`, `handle_timeout`, `terminate`, ...)
//! drain [`Endpoint::poll_transmit`] and [`Endpoint::poll_event`] and re-arm one timer at
//! [`Endpoint::poll_timeout`].
//!
//! NAT-T: a [`Transmit`] whose `src` or `dst` port is 4500 must be sent with the 4-byte
//! non-ESP marker prepended; `payload` never contains it. On port 4500, strip the marker
//! from received IKE datagrams before [`Endpoint::handle_datagram`] (a datagram whose first
//! 4 bytes are not zero there is ESP). After a NAT is detected (or with [`Encap::Force`]),
//! IKE moves to port 4500 and [`ChildSa::udp_encap`] is true.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use ikev2::{crypto::SystemRng, Config, Endpoint, Event, Psk};
//!
//! let mut cfg = Config::new(
//!     "192.0.2.1:500".parse().unwrap(),     // our WAN address
//!     "198.51.100.7:500".parse().unwrap(),  // the peer (e.g. Azure VPN Gateway)
//!     Psk::new(b"from psk_file".to_vec()),
//! );
//! cfg.ike_proposals = vec![ikev2::parse_ike_proposal("aes256-sha256-modp2048s256").unwrap()];
//! cfg.esp_proposals = vec![ikev2::parse_esp_proposal("aes256gcm16").unwrap()];
//! cfg.remote_ts = ikev2::ts::parse_ts_list(&["10.2.0.0/16"]).unwrap();
//!
//! let mut ep = Endpoint::new(cfg, Box::new(SystemRng));
//! let now = Instant::now();
//! ep.initiate(now);
//! while let Some(t) = ep.poll_transmit() {
//!     // socket(t.src).send_to(&t.payload, t.dst) (prepend [0; 4] when a port is 4500)
//!     assert_eq!(t.dst.port(), 500);
//! }
//! // On a datagram: ep.handle_datagram(now, from, to, &bytes);
//! // On the timer:  ep.handle_timeout(now);
//! assert!(ep.poll_timeout().unwrap() <= now + Duration::from_secs(4));
//! while let Some(ev) = ep.poll_event() {
//!     match ev {
//!         Event::ChildSaEstablished(child) => { /* install child.keys_in first, then out */ }
//!         Event::ChildSaDeleting { .. } | Event::ChildSaConfirmed { .. } => {
//!             /* re-pick the outbound Child SA (see ChildSa::defer_outbound) */
//!         }
//!         Event::ChildSaDeleted { local_spi, .. } => { /* remove both SAs of local_spi */ }
//!         Event::Failed(reason) => eprintln!("{reason}"),
//!         _ => {} // IkeSaEstablished, IkeSaRekeyed, IkeSaDeleted: status only
//!     }
//! }
//! ```
#![forbid(unsafe_code)]

pub mod config;
pub mod crypto;
mod dos;
mod endpoint;
pub mod event;
mod ike_sa;
pub mod proposal;
pub mod ts;
pub mod wire;

pub use config::{Config, DpdAction, Encap, Identity, Psk};
pub use endpoint::{ChildTimes, Endpoint, IkeSaInfo, Stats, TableSizes};
pub use event::{ChildSa, EspKeys, Event, FailReason, Transmit};
pub use proposal::{
    parse_esp_proposal, parse_ike_proposal, ChildSuite, IkeSuite, Proposal, ProposalError,
};
pub use ts::TrafficSelector;
