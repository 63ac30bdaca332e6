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
//! Not implemented: simultaneous-rekey collision resolution (RFC 7296 §2.8.1: both new
//! SAs survive), responder COOKIEs, IKE fragmentation, EAP/certificates, MOBIKE.
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
//!         Event::ChildSaDeleted { local_spi, .. } => { /* remove both SAs of local_spi */ }
//!         Event::Failed(reason) => eprintln!("{reason}"),
//!         _ => {} // IkeSaEstablished, IkeSaRekeyed, IkeSaDeleted: status only
//!     }
//! }
//! ```
#![forbid(unsafe_code)]

pub mod config;
pub mod crypto;
mod endpoint;
pub mod event;
mod ike_sa;
pub mod proposal;
pub mod ts;
pub mod wire;

pub use config::{Config, Encap, Identity, Psk};
pub use endpoint::{Endpoint, IkeSaInfo, Stats};
pub use event::{ChildSa, EspKeys, Event, FailReason, Transmit};
pub use proposal::{
    parse_esp_proposal, parse_ike_proposal, ChildSuite, IkeSuite, Proposal, ProposalError,
};
pub use ts::TrafficSelector;
