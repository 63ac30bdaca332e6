//! What the state machine hands to the daemon: datagrams to send and events.

use core::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::proposal::{ChildSuite, IkeSuite};
use crate::ts::TrafficSelector;

/// A datagram to send: an IKE message, or a NAT keepalive
/// ([`Transmit::is_nat_keepalive`]).
///
/// `payload` is the IKE message only. When `dst` (and `src`) use port 4500 the daemon
/// must prepend the 4-byte non-ESP marker (RFC 3948 §2.2) when sending, and strip it
/// from received datagrams on port 4500 before calling `handle_datagram` (datagrams
/// starting with a non-zero SPI there are ESP, not IKE).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Our address/port to send from.
    pub src: SocketAddr,
    /// The peer's address/port.
    pub dst: SocketAddr,
    /// The IKE message (without the non-ESP marker).
    pub payload: Vec<u8>,
}

impl Transmit {
    /// Whether this datagram goes to port 4500 and needs the non-ESP marker (never for
    /// a NAT keepalive).
    pub fn needs_non_esp_marker(&self) -> bool {
        (self.src.port() == 4500 || self.dst.port() == 4500) && !self.is_nat_keepalive()
    }

    /// Whether this is a NAT keepalive (RFC 3948 §2.3): `payload` is the single byte
    /// 0xFF, to be sent as it is (no non-ESP marker) from `src` to `dst` on port 4500.
    /// No IKE message is one byte long.
    pub fn is_nat_keepalive(&self) -> bool {
        self.payload == [0xff]
    }
}

/// Key material for one direction of a Child SA, in RFC 7296 §2.17 order: the
/// encryption key (for AES-GCM followed by its 4-byte salt), then the integrity key.
/// Zeroized on drop; `Debug` prints only lengths.
#[derive(Clone, PartialEq, Eq)]
pub struct EspKeys {
    keymat: Zeroizing<Vec<u8>>,
    encr_len: usize,
}

impl EspKeys {
    pub(crate) fn new(keymat: &[u8], encr_len: usize) -> EspKeys {
        EspKeys {
            keymat: Zeroizing::new(keymat.to_vec()),
            encr_len: encr_len.min(keymat.len()),
        }
    }
    /// Encryption key and, for AES-GCM, the salt (last 4 bytes).
    pub fn encryption(&self) -> &[u8] {
        self.keymat.get(..self.encr_len).unwrap_or(&[])
    }
    /// Integrity key (empty for AES-GCM).
    pub fn integrity(&self) -> &[u8] {
        self.keymat.get(self.encr_len..).unwrap_or(&[])
    }
    /// Encryption key followed by the integrity key (what `esp` takes as one buffer).
    pub fn keymat(&self) -> &[u8] {
        &self.keymat
    }
}

impl fmt::Debug for EspKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "EspKeys(<redacted>, {}+{} bytes)",
            self.encr_len,
            self.keymat.len() - self.encr_len
        )
    }
}

/// An established Child SA (a pair of ESP SAs).
#[derive(Clone, Debug)]
pub struct ChildSa {
    /// Our SPI: the peer sends ESP to us with it (inbound SA).
    pub local_spi: u32,
    /// The peer's SPI: we send ESP with it (outbound SA).
    pub remote_spi: u32,
    /// The ESP suite for the dataplane.
    pub suite: esp::suite::Suite,
    /// The negotiated algorithms (with ESN and the PFS group for rekeys).
    pub child_suite: ChildSuite,
    /// Keys to open inbound packets with.
    pub keys_in: EspKeys,
    /// Keys to seal outbound packets with.
    pub keys_out: EspKeys,
    /// Our traffic selectors (after narrowing).
    pub local_ts: Vec<TrafficSelector>,
    /// The peer's traffic selectors (after narrowing).
    pub remote_ts: Vec<TrafficSelector>,
    /// Lifetime (hard; the daemon should rekey or renegotiate before it).
    pub lifetime: Duration,
    /// ESP goes in UDP on port 4500 (NAT detected or forced).
    pub udp_encap: bool,
    /// Our outer address (and port 4500 when `udp_encap`).
    pub local_addr: SocketAddr,
    /// The peer's outer address (and its NAT-T port when `udp_encap`).
    pub remote_addr: SocketAddr,
    /// Whether extended sequence numbers were negotiated.
    pub esn: bool,
    /// Byte and packet limits for both ESP SAs ([`crate::Config::esp_lifetime`]): install
    /// them with `esp::SaParams::with_lifetime`; when `esp` reports the soft one (or a
    /// sequence number near its end) call [`crate::Endpoint::child_sa_soft_expired`],
    /// the hard one [`crate::Endpoint::child_sa_hard_expired`].
    pub esp_lifetime: esp::Lifetime,
    /// For a rekey: our inbound SPI of the Child SA this one replaces (it is reported
    /// deleted shortly after; switch outbound traffic to the new one now, or, with
    /// `defer_outbound`, when the replaced one is deleted).
    pub replaces: Option<u32>,
    /// We answered the peer's rekey (`replaces` is set): the peer installs the new Child
    /// SA only when our answer arrives. For no loss, install the inbound half now but
    /// keep sending on older Child SAs until [`Event::ChildSaConfirmed`] for this one
    /// (the peer deleted the one it replaces, RFC 7296 §2.8) or ESP arrives on it. False
    /// when we initiated the rekey: switch outbound traffic at once.
    ///
    /// The daemon's outbound choice, for no loss: the newest Child SA that is not being
    /// deleted ([`Event::ChildSaDeleting`]) and not deferred-unconfirmed; if there is
    /// none, the newest one not being deleted.
    pub defer_outbound: bool,
}

/// Why an IKE SA or Child SA could not be set up, or died. Each variant says what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FailReason {
    /// The peer rejected our AUTH, or our check of its AUTH failed: the PSKs differ
    /// (or the identities do not match what the peer expects).
    #[error("authentication failed: check that both sides use the same PSK and identities")]
    AuthenticationFailed,
    /// The peer's identity is not the configured `remote_id`.
    #[error("peer identity {got} is not the configured remote id {want}")]
    WrongPeerId {
        /// What the peer sent.
        got: String,
        /// What was configured.
        want: String,
    },
    /// No common IKE or ESP proposal.
    #[error("no proposal chosen ({what}): the peers share no algorithm combination")]
    NoProposalChosen {
        /// `IKE` or `ESP`.
        what: &'static str,
    },
    /// The traffic selectors do not overlap.
    #[error("traffic selectors unacceptable: local_ts/remote_ts do not match the peer's")]
    TsUnacceptable,
    /// No answer after all retransmissions.
    #[error("peer unreachable: no answer after {tries} retransmissions")]
    PeerUnreachable {
        /// Retransmissions sent.
        tries: u32,
    },
    /// The peer sent a message we could not use (malformed, bad integrity, ...).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The peer answered with an error notify we do not map further.
    #[error("peer sent error notify {0}")]
    PeerError(u16),
    /// Key exchange failed (bad public value, unsupported group).
    #[error("key exchange failed: {0}")]
    KeyExchange(String),
}

/// Something the daemon must act on.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// The IKE SA is up (after IKE_AUTH).
    IkeSaEstablished {
        /// Initiator's SPI.
        spi_i: u64,
        /// Responder's SPI.
        spi_r: u64,
        /// Whether we initiated it.
        initiator: bool,
        /// Negotiated algorithms.
        suite: IkeSuite,
        /// The peer's authenticated identity.
        peer_id: String,
        /// Whether a NAT was detected (or UDP encapsulation forced).
        nat: bool,
        /// Where IKE now talks to the peer.
        remote_addr: SocketAddr,
    },
    /// A Child SA is up: install it (inbound first, then outbound).
    ChildSaEstablished(Box<ChildSa>),
    /// A Child SA was deleted (by us or the peer): remove it.
    ChildSaDeleted {
        /// Our (inbound) SPI.
        local_spi: u32,
        /// The peer's (outbound) SPI.
        remote_spi: u32,
    },
    /// A Child SA that came with `defer_outbound` is now known to be installed on the
    /// peer (it deleted the Child SA this one replaces): send on it from now on (if it is
    /// the newest). Receiving ESP on it proves the same.
    ChildSaConfirmed {
        /// Our (inbound) SPI.
        local_spi: u32,
        /// The peer's (outbound) SPI.
        remote_spi: u32,
    },
    /// We sent the peer a Delete for this Child SA (the old one after a rekey, the
    /// redundant one of a collision, ...): stop sending on it now, the peer removes its
    /// inbound half on receipt. Keep our inbound half until [`Event::ChildSaDeleted`].
    ChildSaDeleting {
        /// Our (inbound) SPI.
        local_spi: u32,
        /// The peer's (outbound) SPI.
        remote_spi: u32,
    },
    /// A Child SA reached its hard lifetime (time, or the byte/packet/sequence limit the
    /// daemon reported with [`crate::Endpoint::child_sa_hard_expired`]) before a rekey
    /// replaced it. [`Event::ChildSaDeleted`] follows at once (and a Delete goes to the
    /// peer); traffic stops until a new Child SA comes up.
    ChildSaExpired {
        /// Our (inbound) SPI.
        local_spi: u32,
        /// The peer's (outbound) SPI.
        remote_spi: u32,
    },
    /// The IKE SA reached its hard lifetime ([`crate::Config::ike_lifetime`]) without
    /// being rekeyed: it is deleted with its Child SAs ([`Event::ChildSaDeleted`] and
    /// [`Event::IkeSaDeleted`] follow). Re-initiate if the tunnel should stay up.
    IkeSaExpired {
        /// Initiator's SPI.
        spi_i: u64,
        /// Responder's SPI.
        spi_r: u64,
    },
    /// The peer (behind a NAT) now sends from another address or port (a NAT rebinding,
    /// RFC 7296 §2.23): IKE follows it; send the ESP of these Child SAs to `remote_addr`
    /// from now on.
    PeerAddressChanged {
        /// Initiator's SPI.
        spi_i: u64,
        /// Responder's SPI.
        spi_r: u64,
        /// The peer's new address and port.
        remote_addr: SocketAddr,
        /// The Child SAs of this IKE SA as (our inbound SPI, the peer's SPI).
        children: Vec<(u32, u32)>,
    },
    /// The peer did not answer a request on an established IKE SA (e.g. the liveness
    /// check after [`crate::Config::dpd_delay`] of silence) after all retransmissions: it
    /// is considered dead. The IKE SA and its Child SAs are reported deleted next, then
    /// `Failed(PeerUnreachable)`; `action` ([`crate::Config::dpd_action`]) says what
    /// follows (with `Restart` a new IKE_SA_INIT is already on its way).
    DeadPeer {
        /// Initiator's SPI.
        spi_i: u64,
        /// Responder's SPI.
        spi_r: u64,
        /// How long nothing authenticated (or, via `peer_alive`, no ESP) came from the
        /// peer.
        silent_for: std::time::Duration,
        /// The configured action.
        action: crate::config::DpdAction,
    },
    /// The IKE SA is gone (deleted by either side, or failed after establishment);
    /// its Child SAs were reported deleted just before.
    IkeSaDeleted {
        /// Initiator's SPI.
        spi_i: u64,
        /// Responder's SPI.
        spi_r: u64,
    },
    /// The peer rekeyed the IKE SA (CREATE_CHILD_SA): the new IKE SA carries on with the
    /// same Child SAs; the old one goes away without an [`Event::IkeSaDeleted`].
    IkeSaRekeyed {
        /// Old initiator's SPI.
        old_spi_i: u64,
        /// Old responder's SPI.
        old_spi_r: u64,
        /// New initiator's SPI.
        spi_i: u64,
        /// New responder's SPI.
        spi_r: u64,
        /// Negotiated algorithms of the new IKE SA.
        suite: IkeSuite,
    },
    /// Setting up failed, or an established SA died.
    Failed(FailReason),
}
