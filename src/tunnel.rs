//! One tunnel at run time: its dataplane handle, its IKE task and its observable state.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dataplane::{Dataplane, DropReason, InboundSa, OutboundSa};
use ipnet::IpNet;
use tokio::sync::{mpsc, oneshot};

use crate::api::{ChildSaStatus, Counters, IkeDos, IkeSaStatus, TunnelStatus};
use crate::daemon::{lock, Shared};

/// An IKE message received for a tunnel (non-ESP marker already stripped).
#[derive(Debug)]
pub struct IkeIn {
    /// Our address it arrived on.
    pub local: SocketAddr,
    /// The sender.
    pub peer: SocketAddr,
    /// The IKE message.
    pub msg: Vec<u8>,
}

/// Something for a tunnel's task to do.
pub enum TunnelCmd {
    /// An IKE message from the peer.
    Datagram(IkeIn),
    /// Bring the tunnel up.
    Initiate,
    /// Tear it down.
    Terminate,
    /// Rekey the Child SA, or the IKE SA.
    Rekey {
        /// IKE SA instead of Child SA.
        ike: bool,
    },
    /// An operator action with its answer channel.
    Action(Box<TunnelCmd>, oneshot::Sender<Result<String, String>>),
    /// Daemon shutdown: send Deletes and stop.
    Shutdown,
}

/// An installed Child SA (both directions).
pub struct InstalledChild {
    /// Inbound ESP SA (our SPI).
    pub inbound: Arc<esp::Sa>,
    /// Outbound ESP SA (peer's SPI).
    pub outbound: Arc<esp::Sa>,
    /// `aes256gcm16` etc.
    pub algorithms: String,
    /// UDP encapsulated.
    pub udp: bool,
    /// Negotiated selectors.
    pub local_ts: Vec<String>,
    /// Negotiated selectors.
    pub remote_ts: Vec<String>,
    /// When installed.
    pub installed: Instant,
    /// When the daemon plans to rekey.
    pub rekey_at: Option<Instant>,
    /// Where its ESP goes (follows a NATed peer's address changes).
    pub peer: SocketAddr,
    /// A peer-initiated rekey's new SA: not sent on until the peer confirms it has it
    /// installed ([`ikev2::Event::ChildSaConfirmed`], or ESP arriving on it).
    pub deferred: bool,
    /// We sent a Delete for it: never sent on again.
    pub deleting: bool,
    /// esp reported a soft byte/packet limit and the IKE engine was told (once).
    pub soft_reported: bool,
    /// esp reported a hard limit and the IKE engine was told (once).
    pub hard_reported: bool,
}

/// The IKE SA as last reported.
#[derive(Clone)]
pub struct IkeInfo {
    /// Initiator SPI.
    pub spi_i: u64,
    /// Responder SPI.
    pub spi_r: u64,
    /// Whether we initiated.
    pub initiator: bool,
    /// Algorithms.
    pub algorithms: String,
    /// When established.
    pub established: Instant,
    /// When the daemon plans to rekey.
    pub rekey_at: Option<Instant>,
}

/// Mutable, observable state of a tunnel.
#[derive(Default)]
pub struct TunnelInfo {
    /// `down`, `connecting`, `established`, `unavailable`.
    pub state: String,
    /// The IKE SA.
    pub ike: Option<IkeInfo>,
    /// Child SAs, newest last.
    pub children: Vec<InstalledChild>,
    /// Last error.
    pub last_error: Option<String>,
    /// A half-open IKE SA being set up: (initiator SPI, responder SPI, we initiated).
    pub pending_ike: Option<(u64, u64, bool)>,
    /// Inbound SPIs of deleted Child SAs that still decrypt until the given time: ESP the
    /// peer sealed just before the Delete may still be in flight or queued on the socket.
    pub retiring: Vec<(u32, Instant)>,
    /// The IKE responder's DoS counters (copied from the endpoint after every input).
    pub ike_dos: IkeDos,
}

/// How long a deleted Child SA's inbound half keeps decrypting (strongSwan's
/// `delete_rekeyed_delay` is 5 s for the same reason).
const INBOUND_LINGER: Duration = Duration::from_secs(5);

/// A tunnel at run time.
pub struct TunnelRt {
    /// Its config.
    pub cfg: config::Tunnel,
    /// The PSK (zeroized on drop, never printed).
    pub psk: config::Psk,
    /// Dataplane handle (TUN device, TX worker, outbound slot, counters).
    pub dp: dataplane::Tunnel,
    /// Observable state.
    pub info: Mutex<TunnelInfo>,
    /// Commands for the tunnel's task.
    pub cmd: mpsc::Sender<TunnelCmd>,
}

fn hex32(v: u32) -> String {
    format!("{v:08x}")
}

fn hex64(v: u64) -> String {
    format!("{v:016x}")
}

fn ts_strings(ts: &[IpNet]) -> Vec<String> {
    ts.iter().map(|n| n.to_string()).collect()
}

impl TunnelRt {
    /// A tunnel in state `down`.
    pub fn new(
        cfg: config::Tunnel,
        psk: config::Psk,
        dp: dataplane::Tunnel,
        cmd: mpsc::Sender<TunnelCmd>,
    ) -> Self {
        TunnelRt {
            cfg,
            psk,
            dp,
            info: Mutex::new(TunnelInfo {
                state: "down".into(),
                ..TunnelInfo::default()
            }),
            cmd,
        }
    }

    /// Record an error (shown by `causeway status`).
    pub fn set_error(&self, e: String) {
        lock(&self.info).last_error = Some(e);
    }

    /// The last error.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.info).last_error.clone()
    }

    /// Whether a Child SA is installed.
    pub fn is_established(&self) -> bool {
        lock(&self.info).state == "established"
    }

    /// Status for the control socket.
    pub fn status(&self) -> TunnelStatus {
        let info = lock(&self.info);
        let now = Instant::now();
        let c = self.dp.counters();
        let mut drops = BTreeMap::new();
        for r in DropReason::ALL {
            drops.insert(r.name().to_string(), c.dropped(r));
        }
        let children = info
            .children
            .iter()
            .map(|ch| {
                let (i, o) = (ch.inbound.counters(), ch.outbound.counters());
                ChildSaStatus {
                    spi_in: hex32(ch.inbound.spi()),
                    spi_out: hex32(ch.outbound.spi()),
                    algorithms: ch.algorithms.clone(),
                    encap: if ch.udp { "udp" } else { "esp" }.into(),
                    local_ts: ch.local_ts.clone(),
                    remote_ts: ch.remote_ts.clone(),
                    age_secs: now.duration_since(ch.installed).as_secs(),
                    rekey_in_secs: ch
                        .rekey_at
                        .map(|r| r.saturating_duration_since(now).as_secs()),
                    counters: Counters {
                        bytes_in: i.bytes,
                        packets_in: i.packets,
                        bytes_out: o.bytes,
                        packets_out: o.packets,
                    },
                }
            })
            .collect();
        TunnelStatus {
            name: self.cfg.name.clone(),
            interface: self.cfg.interface.clone(),
            local_addr: self
                .cfg
                .local_addrs
                .first()
                .map(|a| a.to_string())
                .unwrap_or_default(),
            remote_addr: self
                .cfg
                .remote_addrs
                .first()
                .map(|a| a.to_string())
                .unwrap_or_default(),
            state: info.state.clone(),
            ike_sa: match (&info.ike, info.pending_ike) {
                (Some(ike), _) => Some(IkeSaStatus {
                    state: "established".into(),
                    initiator: ike.initiator,
                    spi_i: hex64(ike.spi_i),
                    spi_r: hex64(ike.spi_r),
                    algorithms: ike.algorithms.clone(),
                    age_secs: now.duration_since(ike.established).as_secs(),
                    rekey_in_secs: ike
                        .rekey_at
                        .map(|r| r.saturating_duration_since(now).as_secs()),
                }),
                (None, Some((spi_i, spi_r, initiator))) => Some(IkeSaStatus {
                    state: "connecting".into(),
                    initiator,
                    spi_i: hex64(spi_i),
                    spi_r: hex64(spi_r),
                    ..IkeSaStatus::default()
                }),
                (None, None) => None,
            },
            child_sas: children,
            counters: Counters {
                bytes_in: c.bytes_in,
                bytes_out: c.bytes_out,
                packets_in: c.packets_in,
                packets_out: c.packets_out,
            },
            drops,
            last_error: info.last_error.clone(),
            ike_dos: info.ike_dos,
        }
    }

    /// Install a Child SA: the new inbound SA first, then switch the outbound slot
    /// (make-before-break). The previous Child SAs stay installed inbound until deleted.
    #[allow(clippy::too_many_arguments)]
    pub fn install_child(
        &self,
        dp: &Dataplane,
        inbound: esp::Sa,
        outbound: esp::Sa,
        local_ts: Vec<IpNet>,
        remote_ts: Vec<IpNet>,
        peer: SocketAddr,
        udp: bool,
        algorithms: String,
        rekey_at: Option<Instant>,
        deferred: bool,
    ) -> std::io::Result<()> {
        let inbound = Arc::new(inbound);
        let outbound = Arc::new(outbound);
        dp.install_inbound(
            &self.dp,
            InboundSa {
                esp: inbound.clone(),
                local_ts: local_ts.clone(),
                remote_ts: remote_ts.clone(),
            },
        );
        // Make-before-break: the new inbound SA is live; the outbound slot switches now,
        // or, for a peer-initiated rekey, once the peer confirms it has the new SA.
        let mut info = lock(&self.info);
        let sends_now = !deferred || self.dp.outbound_spi().is_none();
        if sends_now {
            if let Err(e) = self
                .dp
                .set_outbound(Some(outbound_sa(&outbound, peer, udp)))
            {
                dp.remove_inbound(inbound.spi());
                return Err(e);
            }
        }
        tracing::info!(
            tunnel = %self.cfg.name,
            spi_in = %hex32(inbound.spi()),
            spi_out = %hex32(outbound.spi()),
            %algorithms,
            encap = if udp { "udp" } else { "esp" },
            "Child SA installed"
        );
        info.children.push(InstalledChild {
            inbound,
            outbound,
            algorithms,
            udp,
            local_ts: ts_strings(&local_ts),
            remote_ts: ts_strings(&remote_ts),
            installed: Instant::now(),
            rekey_at,
            peer,
            deferred: deferred && !sends_now,
            deleting: false,
            soft_reported: false,
            hard_reported: false,
        });
        info.state = "established".into();
        Ok(())
    }

    /// Remove the Child SA whose inbound SPI is `local_spi`; clears the outbound slot if
    /// it was the current one (switching to the newest remaining SA).
    pub fn remove_child(&self, _dp: &Dataplane, local_spi: u32) {
        let mut info = lock(&self.info);
        // The inbound half goes after INBOUND_LINGER (see `reap_retired`), so packets
        // sealed before the peer's Delete are not lost.
        info.retiring
            .push((local_spi, Instant::now() + INBOUND_LINGER));
        let Some(pos) = info
            .children
            .iter()
            .position(|c| c.inbound.spi() == local_spi)
        else {
            return;
        };
        let removed = info.children.remove(pos);
        tracing::info!(tunnel = %self.cfg.name, spi_in = %hex32(local_spi), spi_out = %hex32(removed.outbound.spi()), "Child SA removed");
        if self.dp.outbound_spi() == Some(removed.outbound.spi()) {
            self.select_outbound(&info);
        }
        if info.children.is_empty() && info.state == "established" {
            info.state = if info.ike.is_some() {
                "connecting".into()
            } else {
                "down".into()
            };
        }
    }

    /// Point the outbound slot at the Child SA to send on: the newest one that is neither
    /// being deleted nor waiting for the peer's confirmation; failing that the newest one
    /// not being deleted; failing that none.
    fn select_outbound(&self, info: &TunnelInfo) {
        let live = info.children.iter().rev().filter(|c| !c.deleting);
        let best = live
            .clone()
            .find(|c| !c.deferred)
            .or_else(|| live.clone().next());
        let current = self.dp.outbound_spi();
        match best {
            Some(c) if current == Some(c.outbound.spi()) => {}
            Some(c) => {
                tracing::debug!(tunnel = %self.cfg.name, spi_out = %hex32(c.outbound.spi()), "outbound switched");
                if let Err(e) = self
                    .dp
                    .set_outbound(Some(outbound_sa(&c.outbound, c.peer, c.udp)))
                {
                    tracing::error!(tunnel = %self.cfg.name, error = %e, "switching the outbound SA failed");
                }
            }
            None => {
                let _ = self.dp.set_outbound(None);
            }
        }
    }

    /// Apply `f` to the Child SA whose inbound SPI is `local_spi`, then re-select the
    /// outbound SA.
    fn update_child(&self, local_spi: u32, f: impl FnOnce(&mut InstalledChild)) {
        let mut info = lock(&self.info);
        if let Some(c) = info
            .children
            .iter_mut()
            .find(|c| c.inbound.spi() == local_spi)
        {
            f(c);
        }
        self.select_outbound(&info);
    }

    /// Remove the inbound halves of deleted Child SAs whose linger time is over.
    pub fn reap_retired(&self, dp: &Dataplane, now: Instant) {
        let mut info = lock(&self.info);
        info.retiring.retain(|&(spi, until)| {
            let keep = until > now;
            if !keep {
                dp.remove_inbound(spi);
            }
            keep
        });
    }

    /// Remove every Child SA (shutdown, IKE SA gone).
    pub fn remove_all_sas(&self, dp: &Dataplane) {
        let _ = self.dp.set_outbound(None);
        let mut info = lock(&self.info);
        for c in info.children.drain(..) {
            dp.remove_inbound(c.inbound.spi());
        }
        for (spi, _) in info.retiring.drain(..) {
            dp.remove_inbound(spi);
        }
        info.ike = None;
        if info.state != "unavailable" {
            info.state = "down".into();
        }
    }
}

/// The dataplane's outbound slot for an SA.
fn outbound_sa(esp: &Arc<esp::Sa>, peer: SocketAddr, udp: bool) -> OutboundSa {
    OutboundSa {
        esp: esp.clone(),
        peer,
        encap: if udp {
            dataplane::Encap::Udp
        } else {
            dataplane::Encap::Esp
        },
    }
}

fn ike_identity(id: &config::Identity) -> ikev2::Identity {
    match id {
        config::Identity::Addr(a) => ikev2::Identity::Addr(*a),
        config::Identity::Fqdn(f) => ikev2::Identity::Fqdn(f.clone()),
        config::Identity::KeyId(k) => ikev2::Identity::KeyId(k.clone()),
    }
}

fn selectors(nets: &[IpNet]) -> Vec<ikev2::TrafficSelector> {
    nets.iter()
        .filter_map(|n| ikev2::TrafficSelector::from_cidr(n.addr(), n.prefix_len()))
        .collect()
}

fn nets(ts: &[ikev2::TrafficSelector]) -> Vec<IpNet> {
    ts.iter()
        .flat_map(|t| t.to_cidrs())
        .filter_map(|(a, l)| IpNet::new(a, l).ok())
        .collect()
}

/// The IKE engine's configuration for a tunnel.
pub fn ike_config(t: &config::Tunnel, psk: &config::Psk) -> ikev2::Config {
    let any = std::net::IpAddr::from([0u8; 4]);
    let local = SocketAddr::new(t.local_addrs.first().copied().unwrap_or(any), t.local_port);
    let remote = SocketAddr::new(
        t.remote_addrs.first().copied().unwrap_or(any),
        t.remote_port,
    );
    let mut c = ikev2::Config::new(local, remote, ikev2::Psk::new(psk.expose_secret().to_vec()));
    c.local_id = ike_identity(&t.local_id);
    c.remote_id = Some(ike_identity(&t.remote_id));
    c.ike_proposals = t.ike_proposals.clone();
    c.esp_proposals = t.esp_proposals.clone();
    c.local_ts = selectors(&t.local_ts);
    c.remote_ts = selectors(&t.remote_ts);
    c.ike_lifetime = t.ike_lifetime;
    c.child_lifetime = t.child_lifetime;
    // Rekey between the earliest and the latest time the config allows (random jitter
    // so both ends, and many tunnels, do not rekey at once).
    // Rekey at the latest time the config allows minus a fresh random jitter per SA (the
    // IKE engine draws it), so both ends, and many tunnels, do not rekey at once.
    let (lo, hi) = (t.child_rekey_earliest(), t.child_rekey_latest());
    c.child_rekey_time = Some(hi);
    c.child_rekey_jitter = hi.saturating_sub(lo);
    let (lo, hi) = (t.ike_rekey_earliest(), t.ike_rekey_latest());
    c.ike_rekey_time = Some(hi);
    c.ike_rekey_jitter = hi.saturating_sub(lo);
    c.child_life_bytes = t.child_life_bytes;
    // Azure rekeys its Child SAs without PFS even when the policy has a PFS group.
    c.accept_rekey_without_pfs = t.profile == config::Profile::Azure;
    c.dpd_delay = (!t.dpd_delay.is_zero()).then_some(t.dpd_delay);
    // Retransmissions `first × 1.8^n`, n = 0..=tries, shortened to fit `dpd_timeout`: an
    // unanswered liveness check ends in DeadPeer at most `dpd_delay + dpd_timeout` after
    // the peer was last heard. `dpd_action` is the daemon's (see `Event::DeadPeer`), so
    // the engine's stays `Clear`.
    c.retransmit_timeout = t.retransmit_first();
    c.retransmit_base = config::RETRANSMIT_BASE;
    c.retransmit_tries = t.retransmit_tries;
    c.encap = match t.encap {
        config::Encap::Udp => ikev2::Encap::Force,
        config::Encap::Auto | config::Encap::Esp => ikev2::Encap::Auto,
    };
    c
}

/// Why the tunnel is being brought down (decides whether to come back up).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Intent {
    /// Keep it up (start_action = start, or after `initiate`).
    Up,
    /// Answer the peer only.
    Passive,
    /// Initiate when traffic is routed into the tunnel (start_action/dpd_action = trap).
    Trap,
    /// Operator said terminate: stay down until `initiate` or the peer comes.
    Down,
}

/// Delay before re-initiating after a failure or the loss of the IKE SA.
const RETRY: Duration = Duration::from_secs(5);

struct Driver {
    t: Arc<TunnelRt>,
    shared: Arc<Shared>,
    ep: ikev2::Endpoint,
    intent: Intent,
    retry_at: Option<Instant>,
    /// When the IKE engine rekeys the IKE SA after its establishment.
    ike_rekey: Option<Duration>,
    /// When the IKE engine rekeys a Child SA after its installation.
    child_rekey: Option<Duration>,
    /// DeadPeer was reported and its `Failed(PeerUnreachable)` has not come yet.
    dead_peer: bool,
}

impl Driver {
    /// ESP (authenticated, newest of its SA) arrived from a new peer address/port (NAT
    /// rebinding, seen by the dataplane): the IKE engine follows it when the peer is behind
    /// a NAT (`PeerAddressChanged`, handled in `event` during the next flush).
    fn follow_peer_move(&mut self) {
        if let Some((spi, from)) = self.t.dp.take_peer_move() {
            let moved = self.ep.esp_from(Instant::now(), spi, from);
            tracing::debug!(tunnel = %self.t.cfg.name, spi_in = %hex32(spi), %from, moved, "ESP from a new peer address");
        }
    }

    /// Send everything queued and act on every event.
    async fn flush(&mut self) {
        // Events first: a CREATE_CHILD_SA response must leave only after the new inbound
        // SA it announces is installed, or the initiator's first ESP on it is lost.
        while let Some(ev) = self.ep.poll_event() {
            self.event(ev);
        }
        self.transmit().await;
        // Transmitting cannot queue events, but events may have queued more transmits.
        while let Some(ev) = self.ep.poll_event() {
            self.event(ev);
        }
        self.transmit().await;
        let sas = self.ep.ike_sas();
        let (stats, sizes) = (self.ep.stats(), self.ep.table_sizes());
        let mut info = lock(&self.t.info);
        info.ike_dos = IkeDos {
            cookies_sent: stats.cookies_sent,
            rate_limited: stats.rate_limited,
            half_open_full: stats.half_open_full,
            half_open: sizes.half_open as u64,
        };
        info.pending_ike = sas
            .iter()
            .find(|s| !s.established)
            .map(|s| (s.spi_i, s.spi_r, s.initiator));
        if info.children.is_empty() && info.state != "unavailable" {
            let half_open = info.pending_ike.is_some();
            info.state = if half_open || info.ike.is_some() {
                "connecting".into()
            } else {
                "down".into()
            };
        }
    }

    /// Send what the IKE engine queued: IKE messages, and NAT keepalives (one 0xFF byte
    /// on port 4500, RFC 3948 §2.3, without the non-ESP marker).
    async fn transmit(&mut self) {
        while let Some(tx) = self.ep.poll_transmit() {
            if tx.is_nat_keepalive() {
                if let Err(e) = self.shared.dp.send_keepalive(tx.src.ip(), tx.dst) {
                    tracing::debug!(tunnel = %self.t.cfg.name, error = %e, "NAT keepalive not sent");
                }
            } else {
                self.shared.send_ike(tx.src, tx.dst, &tx.payload).await;
            }
        }
    }

    /// Once a second: deferred Child SAs that received ESP become the outbound SA; tell
    /// the IKE engine about Child SAs whose byte/packet/sequence limits esp reached:
    /// soft → rekey, hard → delete (once each).
    fn check_esp_lifetimes(&mut self, now: Instant) {
        let mut soft = Vec::new();
        let mut hard = Vec::new();
        {
            let mut info = lock(&self.t.info);
            // ESP arriving on a deferred SA proves the peer has it installed.
            let mut confirmed = false;
            for c in info.children.iter_mut().filter(|c| c.deferred) {
                if c.inbound.counters().packets > 0 {
                    c.deferred = false;
                    confirmed = true;
                }
            }
            if confirmed {
                self.t.select_outbound(&info);
            }
            for c in info.children.iter_mut().filter(|c| !c.deleting) {
                let age = now.saturating_duration_since(c.installed);
                let worst = [c.inbound.expiry(age), c.outbound.expiry(age)];
                let spi = c.inbound.spi();
                if worst.contains(&esp::Expiry::Hard) && !c.hard_reported {
                    c.hard_reported = true;
                    hard.push(spi);
                } else if worst.contains(&esp::Expiry::Soft) && !c.soft_reported {
                    c.soft_reported = true;
                    soft.push(spi);
                }
            }
        }
        for spi in soft {
            tracing::info!(tunnel = %self.t.cfg.name, spi_in = %hex32(spi), "Child SA reached its soft byte/packet limit: rekeying");
            self.ep.child_sa_soft_expired(now, spi);
        }
        for spi in hard {
            tracing::warn!(tunnel = %self.t.cfg.name, spi_in = %hex32(spi), "Child SA reached its hard byte/packet limit: deleting");
            self.ep.child_sa_hard_expired(now, spi);
        }
    }

    fn event(&mut self, ev: ikev2::Event) {
        let now = Instant::now();
        let name = self.t.cfg.name.clone();
        match ev {
            ikev2::Event::IkeSaEstablished {
                spi_i,
                spi_r,
                initiator,
                suite,
                peer_id,
                nat,
                remote_addr,
            } => {
                let algorithms = suite.to_proposal().to_string();
                tracing::info!(tunnel = %name, spi_i = %hex64(spi_i), spi_r = %hex64(spi_r), initiator, %algorithms, %peer_id, nat, %remote_addr, "IKE SA established");
                // The IKE engine rekeys the IKE SA and the Child SAs (CREATE_CHILD_SA)
                // and runs DPD by itself; this is for `causeway status`.
                let rekey_at = self.ike_rekey.map(|d| now + d);
                let mut info = lock(&self.t.info);
                info.ike = Some(IkeInfo {
                    spi_i,
                    spi_r,
                    initiator,
                    algorithms,
                    established: now,
                    rekey_at,
                });
                info.last_error = None;
            }
            ikev2::Event::ChildSaEstablished(child) => {
                if let Err(e) = self.install(&child) {
                    tracing::error!(tunnel = %name, error = %e, "installing the Child SA failed");
                    self.t
                        .set_error(format!("installing the Child SA failed: {e}"));
                    let _ = self.ep.delete_child(now, child.local_spi);
                }
            }
            ikev2::Event::ChildSaDeleted { local_spi, .. } => {
                self.t.remove_child(&self.shared.dp, local_spi);
            }
            ikev2::Event::ChildSaConfirmed { local_spi, .. } => {
                self.t.update_child(local_spi, |c| c.deferred = false);
            }
            ikev2::Event::ChildSaDeleting { local_spi, .. } => {
                self.t.update_child(local_spi, |c| c.deleting = true);
            }
            ikev2::Event::ChildSaExpired { local_spi, .. } => {
                tracing::warn!(tunnel = %name, spi_in = %hex32(local_spi), "Child SA reached its hard lifetime before a rekey replaced it");
            }
            ikev2::Event::IkeSaExpired { spi_i, spi_r } => {
                tracing::warn!(tunnel = %name, spi_i = %hex64(spi_i), spi_r = %hex64(spi_r), "IKE SA reached its hard lifetime before a rekey replaced it");
            }
            ikev2::Event::PeerAddressChanged {
                remote_addr,
                children,
                ..
            } => {
                tracing::info!(tunnel = %name, %remote_addr, "peer moved (NAT rebinding): ESP follows");
                let mut info = lock(&self.t.info);
                for c in info
                    .children
                    .iter_mut()
                    .filter(|c| children.iter().any(|(l, _)| *l == c.inbound.spi()))
                {
                    c.peer = remote_addr;
                }
                // Re-point the current outbound SA at the new address.
                let _ = self.t.dp.set_outbound(None);
                self.t.select_outbound(&info);
            }
            ikev2::Event::DeadPeer {
                silent_for, action, ..
            } => {
                let dpd_action = self.t.cfg.dpd_action;
                tracing::warn!(tunnel = %name, silent_for = ?silent_for, engine_action = ?action, ?dpd_action, "peer is dead (no answer to liveness checks)");
                self.t.set_error(format!(
                    "dead peer: nothing heard for {}s",
                    silent_for.as_secs()
                ));
                // dpd_action decides what comes next (the SAs are being deleted now,
                // which takes the tunnel's BGP routes out of the FIB): initiate again,
                // initiate on the next packet, or wait for the peer. An operator's
                // `terminate` stays in force.
                if self.intent != Intent::Down {
                    self.intent = match dpd_action {
                        config::DpdAction::Restart => Intent::Up,
                        config::DpdAction::Trap => Intent::Trap,
                        config::DpdAction::Clear => Intent::Passive,
                    };
                }
                self.dead_peer = true;
            }
            ikev2::Event::IkeSaDeleted { spi_i, spi_r } => {
                tracing::info!(tunnel = %name, spi_i = %hex64(spi_i), spi_r = %hex64(spi_r), "IKE SA deleted");
                let mut info = lock(&self.t.info);
                if info
                    .ike
                    .as_ref()
                    .is_some_and(|i| i.spi_i == spi_i && i.spi_r == spi_r)
                {
                    info.ike = None;
                    drop(info);
                    if self.intent == Intent::Up && !self.ep.is_established() {
                        self.retry_at = Some(now + RETRY);
                    }
                }
            }
            ikev2::Event::IkeSaRekeyed {
                old_spi_i,
                old_spi_r,
                spi_i,
                spi_r,
                suite,
            } => {
                let algorithms = suite.to_proposal().to_string();
                tracing::info!(tunnel = %name, old_spi_i = %hex64(old_spi_i), old_spi_r = %hex64(old_spi_r), spi_i = %hex64(spi_i), spi_r = %hex64(spi_r), %algorithms, "IKE SA rekeyed");
                let mut info = lock(&self.t.info);
                if let Some(ike) = info.ike.as_mut() {
                    ike.spi_i = spi_i;
                    ike.spi_r = spi_r;
                    ike.algorithms = algorithms;
                    ike.established = now;
                    ike.rekey_at = self.ike_rekey.map(|d| now + d);
                }
            }
            ikev2::Event::Failed(reason) => {
                tracing::warn!(tunnel = %name, "{reason}");
                self.t.set_error(reason.to_string());
                // After a dead peer (DeadPeer came first and set the intent from
                // dpd_action), `restart` initiates at once; other failures wait RETRY.
                let dead_peer = std::mem::take(&mut self.dead_peer);
                if self.intent == Intent::Up && !self.ep.is_established() {
                    self.retry_at = Some(if dead_peer { now } else { now + RETRY });
                }
            }
            other => tracing::debug!(tunnel = %name, event = ?other, "IKE event"),
        }
        // Routes follow the Child SAs at once (wakes BGP and the selector routes).
        self.shared.tunnel_changed(&self.t);
    }

    fn install(&self, c: &ikev2::ChildSa) -> Result<(), String> {
        use esp::{Direction, SaParams};
        // Byte/packet limits go to esp, which reports them (polled on the tick); the
        // IKE engine handles the time limits itself.
        let mut pin =
            SaParams::new(c.local_spi, Direction::Inbound, c.suite).with_lifetime(c.esp_lifetime);
        pin.esn = c.esn;
        let mut pout =
            SaParams::new(c.remote_spi, Direction::Outbound, c.suite).with_lifetime(c.esp_lifetime);
        pout.esn = c.esn;
        let inbound = esp::Sa::from_keymat(pin, c.keys_in.keymat())
            .map_err(|e| format!("inbound SA: {e}"))?;
        let outbound = esp::Sa::from_keymat(pout, c.keys_out.keymat())
            .map_err(|e| format!("outbound SA: {e}"))?;
        let rekey_at = self.child_rekey.map(|d| Instant::now() + d);
        self.t
            .install_child(
                &self.shared.dp,
                inbound,
                outbound,
                nets(&c.local_ts),
                nets(&c.remote_ts),
                c.remote_addr,
                c.udp_encap,
                c.child_suite.to_proposal().to_string(),
                rekey_at,
                c.defer_outbound,
            )
            .map_err(|e| e.to_string())
    }

    fn initiate(&mut self, now: Instant) {
        tracing::info!(tunnel = %self.t.cfg.name, peer = %self.ep.config().remote_addr, "initiating");
        lock(&self.t.info).state = "connecting".into();
        self.retry_at = None;
        self.ep.initiate(now);
    }

    /// An operator action; returns the answer.
    fn action(&mut self, cmd: TunnelCmd) -> Result<String, String> {
        let now = Instant::now();
        let name = self.t.cfg.name.clone();
        match cmd {
            TunnelCmd::Initiate => {
                self.intent = Intent::Up;
                if self.ep.is_established() {
                    return Ok(format!("tunnel {name} is already established"));
                }
                self.initiate(now);
                Ok(format!("tunnel {name}: initiating (see `causeway status`)"))
            }
            TunnelCmd::Terminate => {
                self.intent = Intent::Down;
                self.retry_at = None;
                self.ep.terminate(now);
                Ok(format!(
                    "tunnel {name}: deleting the IKE SA and its Child SAs"
                ))
            }
            TunnelCmd::Rekey { ike: true } => {
                if !self.ep.is_established() {
                    return Err(format!("tunnel {name}: no established IKE SA to rekey"));
                }
                self.ep.rekey_ike(now);
                Ok(format!(
                    "tunnel {name}: rekeying the IKE SA (CREATE_CHILD_SA; the Child SAs stay)"
                ))
            }
            TunnelCmd::Rekey { ike: false } => {
                let newest = lock(&self.t.info).children.last().map(|c| c.inbound.spi());
                match newest {
                    Some(spi) if self.ep.rekey_child(now, spi) => Ok(format!(
                        "tunnel {name}: rekeying Child SA {spi:08x} (CREATE_CHILD_SA, make-before-break)"
                    )),
                    _ => Err(format!("tunnel {name}: no established Child SA to rekey")),
                }
            }
            _ => Err("unsupported".into()),
        }
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}

/// The tunnel's task: drives the IKE state machine.
pub async fn run(t: Arc<TunnelRt>, shared: Arc<Shared>, mut rx: mpsc::Receiver<TunnelCmd>) {
    let ep = ikev2::Endpoint::new(
        ike_config(&t.cfg, &t.psk),
        Box::new(ikev2::crypto::SystemRng),
    );
    let intent = match t.cfg.start_action {
        config::StartAction::Start => Intent::Up,
        config::StartAction::Trap => Intent::Trap,
        config::StartAction::None => Intent::Passive,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut trap_seen = t.dp.counters().dropped(DropReason::NoOutboundSa);
    let mut esp_seen = t.dp.counters().packets_in;
    let mut last_tick = Instant::now();
    let mut d = Driver {
        t,
        shared,
        ep,
        intent,
        retry_at: None,
        ike_rekey: None,
        child_rekey: None,
        dead_peer: false,
    };
    let peer_moved = Arc::new(tokio::sync::Notify::new());
    {
        let n = Arc::clone(&peer_moved);
        d.t.dp
            .set_peer_move_hook(Some(Box::new(move |_, _| n.notify_one())));
    }
    d.child_rekey = d.ep.config().child_rekey_time;
    d.ike_rekey = d.ep.config().ike_rekey_time;
    if d.intent == Intent::Up {
        d.initiate(Instant::now());
        d.flush().await;
    }
    loop {
        let timer = d.ep.poll_timeout();
        tokio::select! {
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { break };
                match cmd {
                    TunnelCmd::Datagram(m) => {
                        d.ep.handle_datagram(Instant::now(), m.peer, m.local, &m.msg);
                    }
                    TunnelCmd::Action(cmd, answer) => {
                        let r = d.action(*cmd);
                        let _ = answer.send(r);
                    }
                    TunnelCmd::Shutdown => break,
                    other => { let _ = d.action(other); }
                }
            }
            _ = sleep_opt(timer) => d.ep.handle_timeout(Instant::now()),
            _ = peer_moved.notified() => d.follow_peer_move(),
            _ = sleep_opt(d.retry_at) => {
                d.retry_at = None;
                if d.intent == Intent::Up && !d.ep.is_established() {
                    d.initiate(Instant::now());
                }
            }
            _ = tick.tick() => {
                d.follow_peer_move();
                let c = d.t.dp.counters();
                // ESP from the peer proves it alive: no DPD probes while traffic flows.
                // It arrived after the previous tick: counting it from then (not now)
                // keeps "dead within dpd_delay + dpd_timeout of the last packet" exact.
                let tick_now = Instant::now();
                if c.packets_in > esp_seen {
                    d.ep.peer_alive(last_tick);
                }
                esp_seen = c.packets_in;
                last_tick = tick_now;
                d.check_esp_lifetimes(Instant::now());
                d.t.reap_retired(&d.shared.dp, Instant::now());
                // start_action = trap: packets routed into the tunnel without an SA.
                let dropped = c.dropped(DropReason::NoOutboundSa);
                let waiting = dropped > trap_seen;
                trap_seen = dropped;
                if d.intent == Intent::Trap && waiting && d.ep.ike_sas().is_empty() {
                    tracing::info!(tunnel = %d.t.cfg.name, "traffic for the tunnel (trap)");
                    d.initiate(Instant::now());
                }
            }
        }
        d.flush().await;
    }
    // Shutdown: send Deletes, give the peer a moment to answer.
    d.intent = Intent::Down;
    if !d.ep.ike_sas().is_empty() {
        d.ep.terminate(Instant::now());
        d.flush().await;
        let until = tokio::time::Instant::now() + Duration::from_millis(1500);
        while !d.ep.ike_sas().is_empty() {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(TunnelCmd::Datagram(m)) => d.ep.handle_datagram(Instant::now(), m.peer, m.local, &m.msg),
                    Some(TunnelCmd::Action(_, answer)) => { let _ = answer.send(Err("shutting down".into())); }
                    Some(_) => {}
                    None => break,
                },
                _ = tokio::time::sleep_until(until) => break,
            }
            d.flush().await;
        }
    }
    d.t.remove_all_sas(&d.shared.dp);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tunnel(extra: &str) -> config::Tunnel {
        let text = format!(
            r#"
[[tunnel]]
name = "azure"
local_addrs = "192.0.2.1"
remote_addrs = "198.51.100.7"
psk_env = "CW_TEST_PSK"
local_ts = ["10.1.0.0/16"]
remote_ts = ["10.2.0.0/16", "10.3.0.0/24"]
{extra}
"#
        );
        let cfg = config::Config::from_str(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
        cfg.tunnels.into_iter().next().unwrap()
    }

    #[test]
    fn ike_config_follows_the_tunnel() {
        let t = tunnel("encap = \"udp\"\nchild_lifetime = \"1h\"\nlocal_id = \"@site.example\"");
        let psk = config::Psk::new(b"not-printed".to_vec());
        let c = ike_config(&t, &psk);
        assert_eq!(c.local_addr, "192.0.2.1:500".parse().unwrap());
        assert_eq!(c.remote_addr, "198.51.100.7:500".parse().unwrap());
        assert_eq!(c.local_id, ikev2::Identity::Fqdn("site.example".into()));
        assert_eq!(
            c.remote_id,
            Some(ikev2::Identity::Addr("198.51.100.7".parse().unwrap()))
        );
        assert_eq!(c.encap, ikev2::Encap::Force);
        assert_eq!(c.psk.as_bytes(), b"not-printed");
        assert_eq!(nets(&c.local_ts), t.local_ts);
        assert_eq!(nets(&c.remote_ts), t.remote_ts);
        assert_eq!(c.ike_proposals, t.ike_proposals);
        assert_eq!(c.esp_proposals, t.esp_proposals);
        let rekey = c.child_rekey_time.unwrap();
        assert!(rekey >= t.child_rekey_earliest() && rekey <= t.child_rekey_latest());
        assert!(rekey < t.child_lifetime);
        let ike = c.ike_rekey_time.unwrap();
        assert!(ike >= t.ike_rekey_earliest() && ike <= t.ike_rekey_latest());
        assert_eq!(c.dpd_delay, Some(t.dpd_delay));
        assert!(!format!("{c:?}").contains("not-printed"));
    }

    #[test]
    fn dpd_timeout_bounds_the_ike_retransmissions() {
        let psk = config::Psk::new(b"k".to_vec());
        // Defaults: strongSwan's schedule.
        let c = ike_config(&tunnel(""), &psk);
        assert_eq!(c.retransmit_timeout, Duration::from_secs(4));
        assert_eq!(c.retransmit_tries, 5);
        assert_eq!(c.retransmit_delay(1), Duration::from_millis(7200));
        for (extra, limit) in [
            ("dpd_delay = \"2s\"\ndpd_timeout = \"6s\"", 6.0),
            ("dpd_timeout = \"45s\"", 45.0),
            (
                "dpd_timeout = \"20s\"\nretransmit_timeout = \"2s\"\nretransmit_tries = 3",
                20.0,
            ),
        ] {
            let t = tunnel(extra);
            let c = ike_config(&t, &psk);
            assert_eq!(c.retransmit_tries, t.retransmit_tries);
            // What the engine waits in all before giving up on a request.
            let total: f64 = (0..=c.retransmit_tries)
                .map(|n| c.retransmit_delay(n).as_secs_f64())
                .sum();
            assert!(total <= limit && total > limit * 0.95, "{extra}: {total}");
        }
    }

    #[test]
    fn encap_auto_and_esp_let_nat_detection_decide() {
        let psk = config::Psk::new(b"k".to_vec());
        for e in ["auto", "esp"] {
            let c = ike_config(&tunnel(&format!("encap = \"{e}\"")), &psk);
            assert_eq!(c.encap, ikev2::Encap::Auto, "{e}");
        }
    }
}
