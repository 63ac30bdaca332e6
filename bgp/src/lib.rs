//! causeway-bgp: a sans-IO BGP-4 speaker (RFC 4271) for peering with cloud VPN gateways.
//!
//! * [`wire`]: message codec (view/`Repr`), typed errors carrying the NOTIFICATION to send,
//!   RFC 7606 error handling.
//! * [`session`]: the per-neighbor FSM (RFC 4271 §8); bytes in, bytes/events/timers out.
//! * [`rib`]: Adj-RIB-In, Loc-RIB, best path (RFC 4271 §9.1) with ECMP.
//! * [`speaker`]: several sessions + the RIB + per-neighbor [`policy`], Adj-RIB-Out with
//!   UPDATE packing; emits FIB changes (start with the [`speaker`] module docs).
//!
//! No sockets, no clocks: the caller passes `now` and moves the bytes.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod policy;
pub mod prefix;
pub mod rib;
pub mod session;
pub mod speaker;
pub mod wire;

pub use policy::{MaxPrefix, MaxPrefixAction, Policy};
pub use prefix::{parse_prefix_filter, Afi, Prefix, PrefixList, PrefixListEntry, PrefixParseError};
pub use rib::{LocChange, LocEntry, NeighborId, Route};
pub use session::{
    Dir, DownReason, Negotiated, Session, SessionConfig, SessionEvent, SessionState, Transmit,
};
pub use speaker::{FibView, NeighborConfig, NeighborStatus, Speaker, SpeakerConfig, SpeakerEvent};
