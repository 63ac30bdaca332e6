//! A BGP speaker: several neighbor [`Session`]s, the [`Rib`], per-neighbor [`Policy`], and the
//! FIB view (best routes with ECMP next hops) the daemon programs into the kernel.
//!
//! Driving loop (everything keyed by the caller-chosen [`NeighborId`]):
//! 1. [`Speaker::start`].
//! 2. [`Speaker::poll_connect`] → connect to [`NeighborConfig::address`] port 179 with TTL
//!    [`NeighborConfig::ttl`], then [`Speaker::tcp_connected`] / [`Speaker::tcp_failed`].
//!    Accepted connections: look the peer up with [`Speaker::neighbor_by_address`], then
//!    `tcp_connected(now, id, Dir::Inbound)`; tell the speaker the socket's local address with
//!    [`Speaker::set_local_address`] (used as NEXT_HOP self).
//! 3. [`Speaker::handle_bytes`] / [`Speaker::tcp_closed`]; [`Speaker::neighbor_down`] when the
//!    tunnel carrying a neighbor goes down (routes are withdrawn at once).
//! 4. After each call drain [`Speaker::poll_transmit`], then [`Speaker::poll_event`]
//!    ([`SpeakerEvent::Close`]: close that socket; [`SpeakerEvent::FibChange`] /
//!    [`SpeakerEvent::FibRemove`]: program the kernel), then wait for
//!    [`Speaker::poll_timeout`] and call [`Speaker::handle_timeout`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::policy::{MaxPrefixAction, Policy};
use crate::prefix::{Afi, Prefix};
use crate::rib::{NeighborId, PeerInfo, Rib, Route};
use crate::session::{
    Dir, DownReason, Negotiated, Session, SessionConfig, SessionEvent, SessionState, Transmit,
};
use crate::wire::{
    code, AsPath, AsSegment, Ctx, Message, MpReach, MpUnreach, NotificationRepr, Origin,
    PathAttributes, RouteRefreshRepr, UpdateRepr, AS_TRANS, HEADER_LEN, MAX_MESSAGE_LEN,
    SAFI_UNICAST,
};

/// How long stale routes wait for End-of-RIB after the peer came back (RFC 4724 §4.2
/// "stale routes timer"; BIRD and FRR use 360 s).
const STALE_TIMER: Duration = Duration::from_secs(360);

/// Configuration of one neighbor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighborConfig {
    /// Caller-chosen id, unique within the speaker.
    pub id: NeighborId,
    /// The neighbor's address (TCP peer).
    pub address: IpAddr,
    /// The neighbor's AS.
    pub remote_as: u32,
    /// Proposed hold time, seconds.
    pub hold_time: u16,
    /// Only accept connections.
    pub passive: bool,
    /// TTL for the TCP socket (255 for multihop, as Azure needs).
    pub ttl: u8,
    /// Advertise 4-octet AS support (RFC 6793); see [`SessionConfig::four_octet_as`].
    pub four_octet_as: bool,
    /// Families to negotiate.
    pub families: Vec<Afi>,
    /// Graceful restart helper: advertise the capability with this restart time.
    pub graceful_restart: Option<u16>,
    /// First connect-retry delay (doubles per failure).
    pub connect_retry_min: Duration,
    /// Largest connect-retry delay.
    pub connect_retry_max: Duration,
    /// NEXT_HOP for IPv4 routes we send (default: the TCP local address, else the router id).
    pub next_hop_v4: Option<Ipv4Addr>,
    /// Next hop for IPv6 routes we send (default: the TCP local address if IPv6, else the
    /// IPv4-mapped IPv4 next hop).
    pub next_hop_v6: Option<Ipv6Addr>,
    /// Routing policy.
    pub policy: Policy,
}

impl NeighborConfig {
    /// Defaults matching Azure VPN Gateway peering: hold 180, active, multihop TTL 255,
    /// IPv4+IPv6, graceful restart helper 120 s, retry 1 s doubling to 120 s.
    pub fn new(id: NeighborId, address: IpAddr, remote_as: u32) -> NeighborConfig {
        NeighborConfig {
            id,
            address,
            remote_as,
            hold_time: 180,
            passive: false,
            ttl: 255,
            four_octet_as: true,
            families: vec![Afi::Ipv4, Afi::Ipv6],
            graceful_restart: Some(120),
            connect_retry_min: Duration::from_secs(1),
            connect_retry_max: Duration::from_secs(120),
            next_hop_v4: None,
            next_hop_v6: None,
            policy: Policy::default(),
        }
    }
}

/// Speaker configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpeakerConfig {
    /// Our AS.
    pub local_as: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// The neighbors.
    pub neighbors: Vec<NeighborConfig>,
}

/// Events for the daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpeakerEvent {
    /// A session reached Established.
    SessionUp {
        /// Which neighbor.
        neighbor: NeighborId,
        /// What was negotiated.
        negotiated: Negotiated,
    },
    /// An established session went down.
    SessionDown {
        /// Which neighbor.
        neighbor: NeighborId,
        /// Why.
        reason: DownReason,
    },
    /// Install or replace the kernel route for `prefix` with these ECMP next hops.
    FibChange {
        /// The destination.
        prefix: Prefix,
        /// (next hop, neighbor) pairs, sorted; never empty.
        next_hops: Vec<(IpAddr, NeighborId)>,
    },
    /// Remove the kernel route for `prefix`.
    FibRemove {
        /// The destination.
        prefix: Prefix,
    },
    /// The neighbor exceeded its maximum-prefix limit.
    MaxPrefixExceeded {
        /// Which neighbor.
        neighbor: NeighborId,
        /// Accepted prefixes now.
        count: usize,
        /// The limit.
        limit: usize,
        /// What was done.
        action: MaxPrefixAction,
    },
    /// The neighbor finished its initial table (End-of-RIB).
    EndOfRib {
        /// Which neighbor.
        neighbor: NeighborId,
        /// For which family.
        afi: Afi,
    },
    /// Close this TCP connection after writing what was queued for it.
    Close {
        /// Which neighbor.
        neighbor: NeighborId,
        /// Which connection.
        dir: Dir,
    },
}

/// Shares one `Arc<Route>` among all paths with equal attributes and next hop (a full
/// table has far fewer distinct attribute sets than prefixes, and peers spread equal
/// attributes over many UPDATEs).
#[derive(Debug, Default)]
struct Interner {
    set: HashSet<Arc<Route>>,
    /// Size at which unused entries are dropped next.
    gc_at: usize,
}

impl Interner {
    fn intern(&mut self, r: Route) -> Arc<Route> {
        if let Some(a) = self.set.get(&r) {
            return a.clone();
        }
        if self.set.len() >= self.gc_at {
            // Drop the ones only this set still holds.
            self.set.retain(|a| Arc::strong_count(a) > 1);
            self.gc_at = (self.set.len() * 2).max(1024);
        }
        let a = Arc::new(r);
        self.set.insert(a.clone());
        a
    }
}

/// The FIB as the speaker wants it: every Loc-RIB prefix with its ECMP next hops. A view
/// over the RIB (no copy); see [`Speaker::fib`].
#[derive(Clone, Copy)]
pub struct FibView<'a> {
    rib: &'a Rib,
}

impl FibView<'_> {
    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.rib.len()
    }

    /// True when there is no route.
    pub fn is_empty(&self) -> bool {
        self.rib.is_empty()
    }

    /// True when `prefix` has a route.
    pub fn contains_key(&self, prefix: &Prefix) -> bool {
        self.rib.loc(prefix).is_some()
    }

    /// The ECMP next hops of `prefix` (sorted), if it has a route.
    pub fn get(&self, prefix: &Prefix) -> Option<Vec<(IpAddr, NeighborId)>> {
        self.rib.next_hops(prefix)
    }

    /// The prefixes, in order (IPv4 first).
    pub fn keys(&self) -> impl Iterator<Item = Prefix> + '_ {
        self.rib.loc_iter().map(|(p, _)| p)
    }

    /// (prefix, ECMP next hops) in prefix order.
    pub fn iter(&self) -> impl Iterator<Item = (Prefix, Vec<(IpAddr, NeighborId)>)> + '_ {
        self.rib.loc_iter().map(|(p, e)| (p, e.next_hops_vec()))
    }
}

impl std::fmt::Debug for FibView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// A snapshot of one neighbor for status output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighborStatus {
    /// Id.
    pub id: NeighborId,
    /// Address.
    pub address: IpAddr,
    /// Configured remote AS.
    pub remote_as: u32,
    /// FSM state.
    pub state: SessionState,
    /// When the session came up (if Established).
    pub up_since: Option<Instant>,
    /// Prefixes received and accepted (Adj-RIB-In after policy).
    pub accepted: usize,
    /// Prefixes rejected by policy or loop prevention since the session came up.
    pub rejected: u64,
    /// Prefixes advertised (Adj-RIB-Out).
    pub advertised: usize,
    /// Why the session last went down.
    pub last_error: Option<String>,
}

#[derive(Debug)]
struct Neighbor {
    cfg: NeighborConfig,
    session: Session,
    up: Option<(Negotiated, Instant)>,
    adj_out: BTreeMap<Prefix, Arc<Route>>,
    local_addr: Option<IpAddr>,
    max_warned: bool,
    rejected: u64,
    gr_deadline: Option<Instant>,
    flush_on_down: bool,
    last_error: Option<String>,
    /// `cfg.policy.announce` as a set (lookups per prefix).
    announce: BTreeSet<Prefix>,
}

/// The speaker. See the module docs for the driving loop.
#[derive(Debug)]
pub struct Speaker {
    local_as: u32,
    router_id: Ipv4Addr,
    neighbors: BTreeMap<NeighborId, Neighbor>,
    rib: Rib,
    interner: Interner,
    events: VecDeque<SpeakerEvent>,
}

impl Speaker {
    /// A speaker with all sessions Idle.
    pub fn new(cfg: SpeakerConfig) -> Speaker {
        let mut neighbors = BTreeMap::new();
        for n in cfg.neighbors {
            let sc = SessionConfig {
                local_as: cfg.local_as,
                remote_as: n.remote_as,
                router_id: cfg.router_id,
                hold_time: n.hold_time,
                passive: n.passive,
                families: n.families.clone(),
                connect_retry_min: n.connect_retry_min,
                connect_retry_max: n.connect_retry_max,
                graceful_restart: n.graceful_restart,
                ttl: n.ttl,
                four_octet_as: n.four_octet_as,
            };
            let announce = n.policy.announce.iter().copied().collect();
            neighbors.insert(
                n.id,
                Neighbor {
                    session: Session::new(sc),
                    cfg: n,
                    up: None,
                    adj_out: BTreeMap::new(),
                    local_addr: None,
                    max_warned: false,
                    rejected: 0,
                    gr_deadline: None,
                    flush_on_down: false,
                    last_error: None,
                    announce,
                },
            );
        }
        Speaker {
            local_as: cfg.local_as,
            router_id: cfg.router_id,
            neighbors,
            rib: Rib::new(),
            interner: Interner::default(),
            events: VecDeque::new(),
        }
    }

    /// Starts every session.
    pub fn start(&mut self, now: Instant) {
        for n in self.neighbors.values_mut() {
            n.session.start(now);
        }
    }

    /// Starts one session (after [`Speaker::stop_neighbor`] or a max-prefix teardown).
    pub fn start_neighbor(&mut self, now: Instant, id: NeighborId) {
        if let Some(n) = self.neighbors.get_mut(&id) {
            n.session.start(now);
        }
    }

    /// Stops every session with Cease/administrative shutdown and `message` (RFC 9003).
    pub fn stop(&mut self, now: Instant, message: &str) {
        let ids: Vec<NeighborId> = self.neighbors.keys().copied().collect();
        for id in ids {
            self.stop_neighbor(now, id, message);
        }
    }

    /// Stops one session with Cease/administrative shutdown.
    pub fn stop_neighbor(&mut self, now: Instant, id: NeighborId, message: &str) {
        if let Some(n) = self.neighbors.get_mut(&id) {
            n.flush_on_down = true;
            n.session.stop(now, message);
        }
        self.drain(now, id);
    }

    /// Replaces a neighbor's policy at run time: announcements and export changes are sent
    /// at once; an import change asks the peer for a route refresh (when it supports it).
    pub fn set_policy(&mut self, id: NeighborId, policy: Policy) {
        let Some(n) = self.neighbors.get_mut(&id) else {
            return;
        };
        let old = std::mem::replace(&mut n.cfg.policy, policy);
        n.announce = n.cfg.policy.announce.iter().copied().collect();
        if old.import != n.cfg.policy.import {
            let fams =
                n.up.as_ref()
                    .map(|u| u.0.families.clone())
                    .unwrap_or_default();
            for afi in fams {
                n.session.request_refresh(afi);
            }
        }
        let mut all = self.all_exportable();
        all.extend(old.announce.iter().copied());
        if let Some(n) = self.neighbors.get(&id) {
            all.extend(n.adj_out.keys().copied());
        }
        self.sync_out(id, all.into_iter());
    }

    /// A neighbor's configuration.
    pub fn neighbor_config(&self, id: NeighborId) -> Option<&NeighborConfig> {
        self.neighbors.get(&id).map(|n| &n.cfg)
    }

    /// The neighbor with this address (for accepted connections).
    pub fn neighbor_by_address(&self, addr: IpAddr) -> Option<NeighborId> {
        self.neighbors
            .values()
            .find(|n| n.cfg.address == addr)
            .map(|n| n.cfg.id)
    }

    /// The local address of the neighbor's TCP connection (NEXT_HOP self).
    pub fn set_local_address(&mut self, id: NeighborId, addr: IpAddr) {
        if let Some(n) = self.neighbors.get_mut(&id) {
            n.local_addr = Some(addr);
        }
    }

    /// The next neighbor to open an outbound TCP connection to, if any.
    #[must_use]
    pub fn poll_connect(&mut self) -> Option<NeighborId> {
        self.neighbors
            .values_mut()
            .find_map(|n| n.session.poll_connect().then_some(n.cfg.id))
    }

    /// An outbound connection to the neighbor failed.
    pub fn tcp_failed(&mut self, now: Instant, id: NeighborId) {
        if let Some(n) = self.neighbors.get_mut(&id) {
            n.session.tcp_failed(now);
        }
        self.drain(now, id);
    }

    /// A TCP connection to/from the neighbor is up.
    pub fn tcp_connected(&mut self, now: Instant, id: NeighborId, dir: Dir) {
        if let Some(n) = self.neighbors.get_mut(&id) {
            n.session.tcp_connected(now, dir);
        }
        self.drain(now, id);
    }

    /// A TCP connection closed.
    pub fn tcp_closed(&mut self, now: Instant, id: NeighborId, dir: Dir) {
        if let Some(n) = self.neighbors.get_mut(&id) {
            n.session.tcp_closed(now, dir);
        }
        self.drain(now, id);
    }

    /// Bytes from a neighbor's connection.
    pub fn handle_bytes(&mut self, now: Instant, id: NeighborId, dir: Dir, data: &[u8]) {
        if let Some(n) = self.neighbors.get_mut(&id) {
            n.session.handle_bytes(now, dir, data);
        }
        self.drain(now, id);
    }

    /// The tunnel carrying this neighbor is down: withdraw all its routes now (no hold
    /// timer, no graceful restart) and drop its connections. The session keeps retrying.
    pub fn neighbor_down(&mut self, now: Instant, id: NeighborId) {
        if let Some(n) = self.neighbors.get_mut(&id) {
            n.flush_on_down = true;
            n.gr_deadline = None;
            n.session.tcp_closed(now, Dir::Outbound);
            n.session.tcp_closed(now, Dir::Inbound);
        }
        self.drain(now, id);
        self.rib.remove_neighbor(id);
        self.process_changes();
    }

    /// The tunnel carrying this neighbor is up (again): connect now instead of waiting for
    /// the connect-retry backoff.
    pub fn neighbor_up(&mut self, now: Instant, id: NeighborId) {
        if let Some(n) = self.neighbors.get_mut(&id) {
            n.session.connect_now(now);
        }
        self.drain(now, id);
    }

    /// Runs expired timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        let ids: Vec<NeighborId> = self.neighbors.keys().copied().collect();
        for id in ids {
            let mut sweep = false;
            if let Some(n) = self.neighbors.get_mut(&id) {
                n.session.handle_timeout(now);
                if n.gr_deadline.is_some_and(|t| t <= now) {
                    n.gr_deadline = None;
                    sweep = true;
                }
            }
            self.drain(now, id);
            if sweep {
                self.rib.sweep_stale(id, None);
                self.process_changes();
            }
        }
    }

    /// The earliest deadline for [`Speaker::handle_timeout`].
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.neighbors
            .values()
            .flat_map(|n| [n.session.poll_timeout(), n.gr_deadline])
            .flatten()
            .min()
    }

    /// Next bytes to write to a neighbor's connection.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<(NeighborId, Transmit)> {
        self.neighbors
            .values_mut()
            .find_map(|n| n.session.poll_transmit().map(|t| (n.cfg.id, t)))
    }

    /// Next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<SpeakerEvent> {
        self.events.pop_front()
    }

    /// The current FIB view: prefix → ECMP next hops (computed from the Loc-RIB).
    pub fn fib(&self) -> FibView<'_> {
        FibView { rib: &self.rib }
    }

    /// The RIB (Adj-RIBs-In and Loc-RIB).
    pub fn rib(&self) -> &Rib {
        &self.rib
    }

    /// What we currently advertise to a neighbor.
    pub fn adj_rib_out(&self, id: NeighborId) -> Option<&BTreeMap<Prefix, Arc<Route>>> {
        self.neighbors.get(&id).map(|n| &n.adj_out)
    }

    /// Status of every neighbor.
    pub fn neighbors(&self) -> Vec<NeighborStatus> {
        self.neighbors
            .values()
            .map(|n| NeighborStatus {
                id: n.cfg.id,
                address: n.cfg.address,
                remote_as: n.cfg.remote_as,
                state: n.session.state(),
                up_since: n.up.as_ref().map(|u| u.1),
                accepted: self.rib.count(n.cfg.id),
                rejected: n.rejected,
                advertised: n.adj_out.len(),
                last_error: n.last_error.clone(),
            })
            .collect()
    }

    /// The session of a neighbor (read-only).
    pub fn session(&self, id: NeighborId) -> Option<&Session> {
        self.neighbors.get(&id).map(|n| &n.session)
    }

    // ===== event processing =====

    fn drain(&mut self, now: Instant, id: NeighborId) {
        loop {
            let Some(ev) = self
                .neighbors
                .get_mut(&id)
                .and_then(|n| n.session.poll_event())
            else {
                return;
            };
            match ev {
                SessionEvent::Up(neg) => self.on_up(now, id, neg),
                SessionEvent::Down { reason } => self.on_down(now, id, reason),
                SessionEvent::Update(u) => self.on_update(now, id, u),
                SessionEvent::RouteRefresh(r) => self.on_route_refresh(id, r),
                SessionEvent::Close { dir, reason } => {
                    if let Some(n) = self.neighbors.get_mut(&id) {
                        if !matches!(reason, DownReason::TcpClosed) {
                            n.last_error = Some(reason.to_string());
                        }
                    }
                    self.events
                        .push_back(SpeakerEvent::Close { neighbor: id, dir })
                }
            }
        }
    }

    fn on_route_refresh(&mut self, id: NeighborId, r: RouteRefreshRepr) {
        let Some(afi) = Afi::from_code(r.afi).filter(|_| r.safi == SAFI_UNICAST) else {
            return;
        };
        match r.subtype {
            // The peer asks for our table: resend it, framed by BoRR/EoRR when enhanced
            // route refresh was negotiated (RFC 7313 §4).
            0 => {
                let Some(n) = self.neighbors.get_mut(&id) else {
                    return;
                };
                let enhanced = n.up.as_ref().is_some_and(|u| u.0.enhanced_route_refresh);
                if enhanced {
                    n.session
                        .send_route_refresh(RouteRefreshRepr { subtype: 1, ..r });
                }
                n.adj_out.retain(|p, _| p.afi() != afi);
                let all = self.all_exportable();
                self.sync_out(id, all.into_iter().filter(|p| p.afi() == afi));
                if enhanced {
                    if let Some(n) = self.neighbors.get_mut(&id) {
                        n.session
                            .send_route_refresh(RouteRefreshRepr { subtype: 2, ..r });
                    }
                }
            }
            // BoRR: the peer's routes of this family become stale until EoRR.
            1 => self.rib.mark_stale_afi(id, afi),
            // EoRR: what was not refreshed is gone.
            2 => {
                self.rib.sweep_stale(id, Some(afi));
                self.process_changes();
            }
            _ => {}
        }
    }

    fn on_up(&mut self, now: Instant, id: NeighborId, neg: Negotiated) {
        let Some(n) = self.neighbors.get_mut(&id) else {
            return;
        };
        self.rib.set_peer(
            id,
            PeerInfo {
                address: n.cfg.address,
                router_id: neg.peer_id,
                ebgp: n.cfg.remote_as != self.local_as,
            },
        );
        n.up = Some((neg.clone(), now));
        n.adj_out.clear();
        n.max_warned = false;
        n.rejected = 0;
        n.flush_on_down = false;
        if self.rib.has_stale(id) {
            // RFC 4724 §4.2: families the restarted peer no longer marks as "forwarding state
            // preserved" lose their stale routes now; the rest wait for End-of-RIB.
            let kept: Vec<Afi> = neg
                .peer_graceful_restart
                .iter()
                .flat_map(|g| g.families.iter())
                .filter(|(_, safi, f)| *safi == SAFI_UNICAST && f & 0x80 != 0)
                .filter_map(|(a, _, _)| Afi::from_code(*a))
                .collect();
            for afi in [Afi::Ipv4, Afi::Ipv6] {
                if !kept.contains(&afi) {
                    self.rib.sweep_stale(id, Some(afi));
                }
            }
            n.gr_deadline = Some(now + STALE_TIMER);
        }
        let families = neg.families.clone();
        self.events.push_back(SpeakerEvent::SessionUp {
            neighbor: id,
            negotiated: neg,
        });
        self.process_changes();
        let all = self.all_exportable();
        self.sync_out(id, all.into_iter());
        for afi in families {
            self.send_eor(id, afi);
        }
    }

    fn on_down(&mut self, now: Instant, id: NeighborId, reason: DownReason) {
        let Some(n) = self.neighbors.get_mut(&id) else {
            return;
        };
        let neg = n.up.take().map(|u| u.0);
        n.adj_out.clear();
        n.last_error = Some(reason.to_string());
        // RFC 4724 helper: keep the routes (stale) when the TCP session just dropped.
        let peer_gr = neg
            .as_ref()
            .and_then(|g| g.peer_graceful_restart.clone())
            .filter(|g| g.restart_time > 0);
        let gr = match peer_gr {
            Some(g)
                if !n.flush_on_down
                    && n.cfg.graceful_restart.is_some()
                    && reason == DownReason::TcpClosed =>
            {
                Some(g)
            }
            _ => None,
        };
        match gr {
            Some(g) => {
                let keep: Vec<Afi> = g
                    .families
                    .iter()
                    .filter(|(_, safi, f)| *safi == 1 && f & 0x80 != 0)
                    .filter_map(|(a, _, _)| Afi::from_code(*a))
                    .collect();
                n.gr_deadline = Some(now + Duration::from_secs(g.restart_time.into()));
                self.rib.mark_stale(id, &keep);
            }
            None => {
                n.gr_deadline = None;
                self.rib.remove_neighbor(id);
            }
        }
        self.events.push_back(SpeakerEvent::SessionDown {
            neighbor: id,
            reason,
        });
        self.process_changes();
    }

    fn on_update(&mut self, now: Instant, id: NeighborId, u: UpdateRepr) {
        if let Some(afi) = u.is_end_of_rib() {
            self.rib.sweep_stale(id, Some(afi));
            if let Some(n) = self.neighbors.get_mut(&id) {
                if !self.rib.has_stale(id) {
                    n.gr_deadline = None;
                }
            }
            self.events
                .push_back(SpeakerEvent::EndOfRib { neighbor: id, afi });
            self.process_changes();
            return;
        }
        let Some(n) = self.neighbors.get_mut(&id) else {
            return;
        };
        let Some((neg, _)) = n.up.as_ref() else {
            return;
        };
        let ebgp = n.cfg.remote_as != self.local_as;
        for p in u.withdrawn_all() {
            self.rib.set(id, *p, None);
        }
        let mut attrs = u.attrs.clone();
        // RFC 7606 §7.5: LOCAL_PREF from an external neighbor is ignored.
        attrs.local_pref = Some(if ebgp {
            n.cfg.policy.local_pref
        } else {
            attrs.local_pref.unwrap_or(100)
        });
        // Loop prevention (RFC 4271 §9.1.2); for eBGP the first AS must be the peer's
        // (RFC 4271 §6.3) and confederation segments are not allowed (RFC 7606 §7.2): those
        // routes are treated as withdrawn.
        let looped = attrs.as_path.as_ref().is_some_and(|p| {
            let first_ok = !ebgp
                || n.cfg.remote_as == u32::from(AS_TRANS)
                || p.first_as() == Some(n.cfg.remote_as);
            let confed = ebgp
                && p.segments
                    .iter()
                    .any(|s| matches!(s, AsSegment::ConfedSequence(_) | AsSegment::ConfedSet(_)));
            p.contains(self.local_as) || !first_ok || confed
        });
        let v4_nh = attrs.next_hop.take().map(IpAddr::V4);
        let attrs = attrs;
        let interner = &mut self.interner;
        let mut add = |prefixes: &[Prefix], nh: Option<IpAddr>, rejected: &mut u64| {
            // Skip the attribute copy when nothing of this UPDATE can be accepted.
            let route = nh
                .filter(|_| !looped && !prefixes.is_empty())
                .map(|next_hop| {
                    interner.intern(Route {
                        attrs: attrs.clone(),
                        next_hop,
                    })
                });
            for p in prefixes {
                let ok = !looped
                    && neg.families.contains(&p.afi())
                    && n.cfg.policy.import.permits(p)
                    && !n.announce.contains(p)
                    && route.is_some();
                if !ok {
                    *rejected += 1;
                }
                let r = if ok { route.clone() } else { None };
                self.rib.set(id, *p, r);
            }
        };
        let mut rejected = 0;
        add(&u.nlri, v4_nh, &mut rejected);
        if let Some(m) = &u.mp_reach {
            add(&m.nlri, m.next_hops.first().copied(), &mut rejected);
        }
        n.rejected += rejected;
        if self.check_max_prefix(now, id) {
            // Torn down: drop the neighbor's routes now, so the FIB sees only removals.
            self.rib.remove_neighbor(id);
        }
        self.process_changes();
    }

    /// Applies the maximum-prefix limit; true when the session was torn down.
    fn check_max_prefix(&mut self, now: Instant, id: NeighborId) -> bool {
        let count = self.rib.count(id);
        let Some(n) = self.neighbors.get_mut(&id) else {
            return false;
        };
        let Some(mp) = n.cfg.policy.max_prefixes else {
            return false;
        };
        if count <= mp.limit {
            n.max_warned = false;
            return false;
        }
        if mp.action == MaxPrefixAction::Warn && n.max_warned {
            return false;
        }
        n.max_warned = true;
        self.events.push_back(SpeakerEvent::MaxPrefixExceeded {
            neighbor: id,
            count,
            limit: mp.limit,
            action: mp.action,
        });
        let restart = match mp.action {
            MaxPrefixAction::Warn => return false,
            MaxPrefixAction::Teardown => None,
            MaxPrefixAction::RestartAfter(d) => Some(d),
        };
        // RFC 4486: data = AFI (2), SAFI (1), limit (4).
        let mut data = vec![0, 1, 1];
        data.extend_from_slice(&(mp.limit.min(u32::MAX as usize) as u32).to_be_bytes());
        let notif = NotificationRepr {
            code: code::CEASE,
            subcode: code::CEASE_MAX_PREFIXES,
            data,
        };
        n.flush_on_down = true;
        n.session.shutdown(
            now,
            notif.clone(),
            DownReason::NotificationSent(notif),
            restart,
        );
        // The Down event is processed by the caller's drain loop.
        true
    }

    /// Takes the RIB's Loc-RIB changes, emits FIB events (one per prefix whose next-hop
    /// set changed) and re-exports.
    fn process_changes(&mut self) {
        let mut ch = self.rib.take_changes();
        if ch.is_empty() {
            return;
        }
        // Group by prefix (stable: the first record of a prefix says whether it was
        // selected before this batch).
        ch.sort_by_key(|c| c.prefix);
        let mut loc_changed = Vec::with_capacity(ch.len());
        let mut i = 0;
        while let Some(first) = ch.get(i).copied() {
            let mut nh = false;
            while let Some(c) = ch.get(i).filter(|c| c.prefix == first.prefix) {
                nh |= c.next_hops_changed;
                i += 1;
            }
            let p = first.prefix;
            loc_changed.push(p);
            if nh {
                match self.rib.next_hops(&p) {
                    Some(next_hops) => self.events.push_back(SpeakerEvent::FibChange {
                        prefix: p,
                        next_hops,
                    }),
                    None if first.was_selected => {
                        self.events.push_back(SpeakerEvent::FibRemove { prefix: p })
                    }
                    None => {}
                }
            }
        }
        drop(ch);
        if loc_changed.is_empty() {
            return;
        }
        let ids: Vec<NeighborId> = self
            .neighbors
            .values()
            .filter(|n| n.up.is_some() && n.cfg.policy.export_learned)
            .map(|n| n.cfg.id)
            .collect();
        for id in ids {
            self.sync_out(id, loc_changed.iter().copied());
        }
    }

    fn all_exportable(&self) -> BTreeSet<Prefix> {
        let mut s: BTreeSet<Prefix> = self.rib.loc_iter().map(|(p, _)| p).collect();
        for n in self.neighbors.values() {
            s.extend(n.announce.iter().copied());
        }
        s
    }

    /// What we should advertise to neighbor `n` for `p` (None = nothing).
    fn export_route(&self, n: &Neighbor, p: &Prefix) -> Option<Arc<Route>> {
        let (neg, _) = n.up.as_ref()?;
        if !neg.families.contains(&p.afi()) || !n.cfg.policy.export.permits(p) {
            return None;
        }
        let ebgp = n.cfg.remote_as != self.local_as;
        let mut attrs = if n.announce.contains(p) {
            PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::default()),
                ..PathAttributes::default()
            }
        } else if n.cfg.policy.export_learned {
            let (best_nb, best) = self.rib.loc(p)?.best();
            let from = self.neighbors.get(&best_nb)?;
            let from_ebgp = from.cfg.remote_as != self.local_as;
            if best_nb == n.cfg.id || (!ebgp && !from_ebgp) {
                return None;
            }
            best.attrs.clone()
        } else {
            return None;
        };
        if ebgp {
            let path = attrs.as_path.take().unwrap_or_default();
            if path.contains(n.cfg.remote_as) {
                return None; // the peer would drop it (sender-side loop check)
            }
            attrs.as_path =
                Some(path.prepended(self.local_as, 1 + usize::from(n.cfg.policy.prepend)));
            attrs.local_pref = None;
            attrs.med = None;
        } else {
            attrs.local_pref = Some(attrs.local_pref.unwrap_or(100));
        }
        attrs.next_hop = None;
        let v4 = n
            .cfg
            .next_hop_v4
            .or(match n.local_addr {
                Some(IpAddr::V4(a)) => Some(a),
                _ => None,
            })
            .unwrap_or(self.router_id);
        let next_hop = if p.is_ipv4() {
            IpAddr::V4(v4)
        } else {
            IpAddr::V6(
                n.cfg
                    .next_hop_v6
                    .or(match n.local_addr {
                        Some(IpAddr::V6(a)) => Some(a),
                        _ => None,
                    })
                    .unwrap_or(v4.to_ipv6_mapped()),
            )
        };
        Some(Arc::new(Route { attrs, next_hop }))
    }

    /// Brings the Adj-RIB-Out of `id` in line for `prefixes` and sends the difference.
    fn sync_out(&mut self, id: NeighborId, prefixes: impl Iterator<Item = Prefix>) {
        let Some(n) = self.neighbors.get(&id) else {
            return;
        };
        let Some(ctx) = n.up.as_ref().map(|u| u.0.ctx) else {
            return;
        };
        let mut withdraw = Vec::new();
        let mut announce: Vec<(Prefix, Arc<Route>)> = Vec::new();
        for p in prefixes {
            let want = self.export_route(n, &p);
            let have = n.adj_out.get(&p);
            match (want, have) {
                (None, Some(_)) => withdraw.push(p),
                (Some(w), h) if h != Some(&w) => announce.push((p, w)),
                _ => {}
            }
        }
        if withdraw.is_empty() && announce.is_empty() {
            return;
        }
        let Some(n) = self.neighbors.get_mut(&id) else {
            return;
        };
        for p in &withdraw {
            n.adj_out.remove(p);
        }
        let mut groups: HashMap<Arc<Route>, Vec<Prefix>> = HashMap::new();
        let mut order: Vec<Arc<Route>> = Vec::new();
        for (p, r) in announce {
            n.adj_out.insert(p, r.clone());
            let g = groups.entry(r.clone()).or_default();
            if g.is_empty() {
                order.push(r);
            }
            g.push(p);
        }
        let grouped: Vec<(Arc<Route>, Vec<Prefix>)> = order
            .into_iter()
            .filter_map(|r| groups.remove(&r).map(|ps| (r, ps)))
            .collect();
        for u in pack_updates(&withdraw, &grouped, &ctx) {
            n.session.send_update(&u);
        }
    }

    fn send_eor(&mut self, id: NeighborId, afi: Afi) {
        if let Some(n) = self.neighbors.get_mut(&id) {
            n.session.send_update(&UpdateRepr::end_of_rib(afi));
        }
    }
}

/// Splits `prefixes` into runs whose NLRI encoding fits `budget` bytes.
fn chunks(prefixes: &[Prefix], budget: usize) -> Vec<Vec<Prefix>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut size = 0;
    for p in prefixes {
        let l = p.nlri_len();
        if size + l > budget && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
            size = 0;
        }
        size += l;
        cur.push(*p);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn encoded_len(u: &UpdateRepr, ctx: &Ctx) -> usize {
    let mut v = Vec::new();
    match u.emit(&mut v, ctx) {
        Ok(()) => HEADER_LEN + v.len(),
        Err(_) => usize::MAX,
    }
}

/// Packs withdrawals and announcements (grouped by attribute set) into UPDATE messages of at
/// most 4096 bytes.
pub fn pack_updates(
    withdraw: &[Prefix],
    groups: &[(Arc<Route>, Vec<Prefix>)],
    ctx: &Ctx,
) -> Vec<UpdateRepr> {
    let mut out = Vec::new();
    let (w4, w6): (Vec<Prefix>, Vec<Prefix>) = withdraw.iter().partition(|p| p.is_ipv4());
    for c in chunks(&w4, MAX_MESSAGE_LEN - HEADER_LEN - 4) {
        out.push(UpdateRepr {
            withdrawn: c,
            ..UpdateRepr::default()
        });
    }
    let base6 = encoded_len(&UpdateRepr::end_of_rib(Afi::Ipv6), ctx) + 1;
    for c in chunks(&w6, MAX_MESSAGE_LEN.saturating_sub(base6)) {
        out.push(UpdateRepr {
            mp_unreach: Some(MpUnreach {
                afi: Afi::Ipv6,
                withdrawn: c,
            }),
            ..UpdateRepr::default()
        });
    }
    for (route, prefixes) in groups {
        let (p4, p6): (Vec<Prefix>, Vec<Prefix>) = prefixes.iter().partition(|p| p.is_ipv4());
        if !p4.is_empty() {
            let mut attrs = route.attrs.clone();
            if let IpAddr::V4(a) = route.next_hop {
                attrs.next_hop = Some(a);
            }
            let template = UpdateRepr {
                attrs,
                ..UpdateRepr::default()
            };
            let base = encoded_len(&template, ctx);
            if base < MAX_MESSAGE_LEN {
                for c in chunks(&p4, MAX_MESSAGE_LEN - base) {
                    let mut u = template.clone();
                    u.nlri = c;
                    out.push(u);
                }
            }
        }
        if !p6.is_empty() {
            let mut template = UpdateRepr {
                attrs: route.attrs.clone(),
                mp_reach: Some(MpReach {
                    afi: Afi::Ipv6,
                    next_hops: vec![route.next_hop],
                    nlri: vec![],
                }),
                ..UpdateRepr::default()
            };
            template.attrs.next_hop = None;
            let base = encoded_len(&template, ctx).saturating_add(1);
            if base < MAX_MESSAGE_LEN {
                for c in chunks(&p6, MAX_MESSAGE_LEN - base) {
                    let mut u = template.clone();
                    if let Some(m) = u.mp_reach.as_mut() {
                        m.nlri = c;
                    }
                    out.push(u);
                }
            }
        }
    }
    debug_assert!(out
        .iter()
        .all(|u| Message::Update(u.clone()).emit(ctx).is_ok()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_splits_at_4096() {
        let route = Arc::new(Route {
            attrs: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::sequence(vec![65010])),
                ..Default::default()
            },
            next_hop: "192.0.2.1".parse().unwrap(),
        });
        let v4: Vec<Prefix> = (0..2000u32)
            .map(|i| Prefix::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i << 8))), 24).unwrap())
            .collect();
        let ctx = Ctx::default();
        let ups = pack_updates(&v4, &[(route.clone(), v4.clone())], &ctx);
        let mut withdrawn = 0;
        let mut announced = 0;
        for u in &ups {
            let b = Message::Update(u.clone()).emit(&ctx).unwrap();
            assert!(b.len() <= 4096);
            withdrawn += u.withdrawn.len();
            announced += u.nlri.len();
        }
        assert_eq!((withdrawn, announced), (2000, 2000));
        // 2000 /24 = 8000 bytes of NLRI: needs 2 withdraw + 2 announce messages at least
        assert!(ups.len() >= 4 && ups.len() <= 6, "{}", ups.len());
        let v6: Vec<Prefix> = (0..1000u128)
            .map(|i| {
                Prefix::new(
                    IpAddr::V6(Ipv6Addr::from((0x2001_0db8u128 << 96) | (i << 64))),
                    64,
                )
                .unwrap()
            })
            .collect();
        let route6 = Arc::new(Route {
            attrs: route.attrs.clone(),
            next_hop: "2001:db8::1".parse().unwrap(),
        });
        let ups = pack_updates(&v6, &[(route6, v6.clone())], &ctx);
        let mut n = 0;
        for u in &ups {
            let b = Message::Update(u.clone()).emit(&ctx).unwrap();
            assert!(b.len() <= 4096);
            n += u.announced().count() + u.withdrawn_all().count();
        }
        assert_eq!(n, 2000);
    }
}
