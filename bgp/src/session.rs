//! The per-neighbor session FSM (RFC 4271 §8), sans-IO.
//!
//! The caller owns the TCP sockets and the clock. A [`Session`] can hold two TCP
//! connections at once (one it initiated, [`Dir::Outbound`], and one the peer initiated,
//! [`Dir::Inbound`]) and resolves the collision by BGP identifier (RFC 4271 §6.8).
//!
//! The driving loop, for each neighbor:
//! 1. [`Session::start`] once.
//! 2. When [`Session::poll_connect`] returns true, open a TCP connection to the peer
//!    (port 179, TTL [`SessionConfig::ttl`]) and report [`Session::tcp_connected`] or
//!    [`Session::tcp_failed`]. Accepted connections from the peer: `tcp_connected(now, Inbound)`.
//! 3. Feed received bytes to [`Session::handle_bytes`]; report EOF/errors with
//!    [`Session::tcp_closed`].
//! 4. After every call: drain [`Session::poll_transmit`] (write the bytes to that connection),
//!    then [`Session::poll_event`] (a [`SessionEvent::Close`] means: close that socket after
//!    writing what was queued for it), then sleep until [`Session::poll_timeout`] and call
//!    [`Session::handle_timeout`].

use std::collections::VecDeque;
use std::fmt;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::prefix::Afi;
use crate::wire::{
    code, frame_len, Capability, Ctx, GracefulRestartCap, Message, NotificationRepr, NotifyError,
    OpenRepr, RouteRefreshRepr, UpdateRepr, AS_TRANS, SAFI_UNICAST,
};

/// Session configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// Our AS number.
    pub local_as: u32,
    /// The AS number the peer must have.
    pub remote_as: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// Hold time we propose, seconds (0 or ≥ 3). Azure uses 180.
    pub hold_time: u16,
    /// Never initiate connections; only accept them.
    pub passive: bool,
    /// Address families to negotiate (multiprotocol capability).
    pub families: Vec<Afi>,
    /// First connect-retry delay; doubles after each failure up to `connect_retry_max`.
    pub connect_retry_min: Duration,
    /// Largest connect-retry delay.
    pub connect_retry_max: Duration,
    /// Advertise the graceful restart capability (helper mode) with this restart time.
    pub graceful_restart: Option<u16>,
    /// IP TTL the caller sets on the TCP socket (1 = directly connected, >1 = multihop).
    pub ttl: u8,
    /// Advertise (and use) 4-octet AS numbers (RFC 6793). Off only to emulate an old
    /// 2-byte speaker; then `local_as` must fit 16 bits and a 4-byte peer is `AS_TRANS`.
    pub four_octet_as: bool,
}

impl SessionConfig {
    /// A configuration with the defaults: hold 180 s, active, IPv4+IPv6, retry 1 s..120 s,
    /// graceful restart helper with 120 s, TTL 255 (multihop).
    pub fn new(local_as: u32, remote_as: u32, router_id: Ipv4Addr) -> SessionConfig {
        SessionConfig {
            local_as,
            remote_as,
            router_id,
            hold_time: 180,
            passive: false,
            families: vec![Afi::Ipv4, Afi::Ipv6],
            connect_retry_min: Duration::from_secs(1),
            connect_retry_max: Duration::from_secs(120),
            graceful_restart: Some(120),
            ttl: 255,
            four_octet_as: true,
        }
    }

    /// True when the peer is in another AS.
    pub fn is_ebgp(&self) -> bool {
        self.local_as != self.remote_as
    }
}

/// Which TCP connection: the one we opened or the one the peer opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// We initiated it (connect to the peer's port 179).
    Outbound,
    /// The peer initiated it (accepted on our port 179).
    Inbound,
}

impl Dir {
    fn idx(self) -> usize {
        match self {
            Dir::Outbound => 0,
            Dir::Inbound => 1,
        }
    }
    fn other(self) -> Dir {
        match self {
            Dir::Outbound => Dir::Inbound,
            Dir::Inbound => Dir::Outbound,
        }
    }
}

/// RFC 4271 §8.2.2 states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SessionState {
    /// Not started, stopped, or waiting out a restart delay.
    Idle,
    /// Waiting for an outbound TCP connection.
    Connect,
    /// Waiting for the connect-retry timer or an inbound connection.
    Active,
    /// OPEN sent, waiting for the peer's OPEN.
    OpenSent,
    /// OPENs exchanged, waiting for KEEPALIVE.
    OpenConfirm,
    /// Up.
    Established,
}

/// What both sides agreed on in the OPEN exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The peer's AS.
    pub peer_as: u32,
    /// The peer's BGP identifier.
    pub peer_id: Ipv4Addr,
    /// Negotiated hold time (minimum of both), seconds; 0 = no keepalives.
    pub hold_time: u16,
    /// Keepalive interval (hold time / 3), seconds.
    pub keepalive: u16,
    /// Address families both sides support.
    pub families: Vec<Afi>,
    /// Codec context (4-octet AS numbers in use).
    pub ctx: Ctx,
    /// Peer supports route refresh.
    pub route_refresh: bool,
    /// Peer supports enhanced route refresh.
    pub enhanced_route_refresh: bool,
    /// The peer's graceful restart capability.
    pub peer_graceful_restart: Option<GracefulRestartCap>,
    /// The TCP connection the session runs on.
    pub dir: Dir,
}

/// Why an established session (or a connection) ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DownReason {
    /// The peer sent this NOTIFICATION.
    NotificationReceived(NotificationRepr),
    /// We sent this NOTIFICATION (protocol error, hold timer, collision, cease...).
    NotificationSent(NotificationRepr),
    /// The TCP connection closed or failed.
    TcpClosed,
    /// Stopped by the caller ([`Session::stop`]).
    Stopped,
}

impl fmt::Display for DownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DownReason::NotificationReceived(n) => {
                write!(f, "received NOTIFICATION: {}", n.describe())
            }
            DownReason::NotificationSent(n) => write!(f, "sent NOTIFICATION: {}", n.describe()),
            DownReason::TcpClosed => write!(f, "TCP connection closed"),
            DownReason::Stopped => write!(f, "stopped"),
        }
    }
}

/// Events for the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum SessionEvent {
    /// The session reached Established.
    Up(Negotiated),
    /// The established session went down; every route from the peer is gone
    /// (unless graceful restart keeps them, which the RIB decides).
    Down {
        /// Why.
        reason: DownReason,
    },
    /// An UPDATE arrived (RFC 7606 treat-as-withdraw already applied: the announced
    /// prefixes were moved to the withdrawn lists).
    Update(UpdateRepr),
    /// ROUTE-REFRESH from the peer: subtype 0 asks for our routes again (RFC 2918);
    /// 1/2 are the RFC 7313 begin/end markers of the peer's own refresh.
    RouteRefresh(RouteRefreshRepr),
    /// Close this TCP connection once the bytes queued for it are written.
    Close {
        /// Which connection.
        dir: Dir,
        /// Why.
        reason: DownReason,
    },
}

/// Bytes to write to one TCP connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Which connection.
    pub dir: Dir,
    /// The bytes (one or more whole BGP messages).
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnState {
    OpenSent,
    OpenConfirm,
    Established,
}

#[derive(Debug)]
struct Conn {
    state: ConnState,
    rx: Vec<u8>,
    neg: Option<Negotiated>,
    hold: Option<Instant>,
    keepalive: Option<Instant>,
}

/// Hold timer while waiting for the peer's OPEN (RFC 4271 §8: "a large value", 4 minutes).
const OPEN_HOLD: Duration = Duration::from_secs(240);
/// One BGP neighbor session. See the module docs for the driving loop.
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    conns: [Option<Conn>; 2],
    base: SessionState,
    tx: VecDeque<Transmit>,
    events: VecDeque<SessionEvent>,
    retry_at: Option<Instant>,
    backoff: Duration,
    connect_pending: bool,
    connecting: bool,
    restart_at: Option<Instant>,
}

impl Session {
    /// A session in Idle. Nothing happens until [`Session::start`].
    pub fn new(mut cfg: SessionConfig) -> Session {
        // Keep timer arithmetic far from `Instant` overflow whatever the config says.
        const DAY: Duration = Duration::from_secs(86_400);
        cfg.connect_retry_max = cfg.connect_retry_max.clamp(Duration::from_millis(10), DAY);
        cfg.connect_retry_min = cfg
            .connect_retry_min
            .clamp(Duration::from_millis(10), cfg.connect_retry_max);
        let backoff = cfg.connect_retry_min;
        Session {
            cfg,
            conns: [None, None],
            base: SessionState::Idle,
            tx: VecDeque::new(),
            events: VecDeque::new(),
            retry_at: None,
            backoff,
            connect_pending: false,
            connecting: false,
            restart_at: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// The current RFC 4271 state (the most advanced of the connections).
    pub fn state(&self) -> SessionState {
        let best = self
            .conns
            .iter()
            .flatten()
            .map(|c| match c.state {
                ConnState::OpenSent => SessionState::OpenSent,
                ConnState::OpenConfirm => SessionState::OpenConfirm,
                ConnState::Established => SessionState::Established,
            })
            .max();
        best.unwrap_or(self.base)
    }

    /// What was negotiated, when Established.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.conns
            .iter()
            .flatten()
            .find(|c| c.state == ConnState::Established)
            .and_then(|c| c.neg.as_ref())
    }

    /// ManualStart (event 1): begin connecting (or listening when passive).
    pub fn start(&mut self, _now: Instant) {
        self.restart_at = None;
        if self.base != SessionState::Idle {
            return;
        }
        self.backoff = self.cfg.connect_retry_min;
        if self.cfg.passive {
            self.base = SessionState::Active;
        } else {
            self.base = SessionState::Connect;
            self.connect_pending = true;
        }
        self.retry_at = None;
    }

    /// ManualStop (event 2): sends Cease/administrative shutdown with an optional RFC 9003
    /// message on every connection and goes Idle until [`Session::start`].
    pub fn stop(&mut self, now: Instant, message: &str) {
        let n = NotificationRepr::shutdown(code::CEASE_ADMIN_SHUTDOWN, message);
        self.shutdown(now, n, DownReason::Stopped, None);
    }

    /// Tears the session down with `notification` and stays Idle; restarts by itself after
    /// `restart_after` if given (used for max-prefix actions).
    pub fn shutdown(
        &mut self,
        now: Instant,
        notification: NotificationRepr,
        reason: DownReason,
        restart_after: Option<Duration>,
    ) {
        for dir in [Dir::Outbound, Dir::Inbound] {
            if self.conns[dir.idx()].is_some() {
                self.close_conn(dir, Some(notification.clone()), reason.clone());
            }
        }
        self.base = SessionState::Idle;
        self.connect_pending = false;
        self.retry_at = None;
        self.restart_at = restart_after.and_then(|d| now.checked_add(d));
    }

    /// Skips the connect-retry wait (e.g. the tunnel to the peer just came up): resets the
    /// backoff and, unless passive or already connecting/connected, asks for a connection now.
    pub fn connect_now(&mut self, _now: Instant) {
        if self.base == SessionState::Idle {
            return;
        }
        self.backoff = self.cfg.connect_retry_min;
        if !self.cfg.passive && !self.connecting && self.conns.iter().all(Option::is_none) {
            self.base = SessionState::Connect;
            self.connect_pending = true;
            self.retry_at = None;
        }
    }

    /// True once each time the caller should open an outbound TCP connection now.
    #[must_use]
    pub fn poll_connect(&mut self) -> bool {
        if self.connect_pending && !self.cfg.passive {
            self.connect_pending = false;
            self.connecting = true;
            true
        } else {
            false
        }
    }

    /// The outbound connection attempt failed (TcpConnectionFails, event 18).
    pub fn tcp_failed(&mut self, now: Instant) {
        self.connecting = false;
        if self.base != SessionState::Idle {
            self.base = SessionState::Active;
            self.arm_retry(now);
        }
    }

    /// A TCP connection is up (events 16/17). Sends our OPEN on it. In Idle the connection is
    /// refused with a [`SessionEvent::Close`]. A connection in a slot that is still in use
    /// replaces the old one.
    pub fn tcp_connected(&mut self, now: Instant, dir: Dir) {
        if dir == Dir::Outbound {
            self.connecting = false;
        }
        if self.base == SessionState::Idle {
            self.events.push_back(SessionEvent::Close {
                dir,
                reason: DownReason::Stopped,
            });
            return;
        }
        // A new connection in an occupied slot replaces the old one (e.g. the peer restarted
        // and reconnected before we noticed); the caller already holds only the new socket,
        // so no Close event is emitted for the old one.
        if let Some(old) = self.conns[dir.idx()].take() {
            if old.state == ConnState::Established {
                self.events.push_back(SessionEvent::Down {
                    reason: DownReason::TcpClosed,
                });
            }
        }
        self.conns[dir.idx()] = Some(Conn {
            state: ConnState::OpenSent,
            rx: Vec::new(),
            neg: None,
            hold: Some(now + OPEN_HOLD),
            keepalive: None,
        });
        let open = self.make_open();
        self.send(dir, &Message::Open(open), &Ctx::default());
    }

    /// The TCP connection closed or failed (event 18).
    pub fn tcp_closed(&mut self, now: Instant, dir: Dir) {
        if self.conns[dir.idx()].is_some() {
            self.drop_conn(dir, DownReason::TcpClosed);
            self.after_close(now);
        }
    }

    /// Bytes received on a connection. Complete messages are processed; partial ones wait.
    pub fn handle_bytes(&mut self, now: Instant, dir: Dir, data: &[u8]) {
        let Some(c) = self.conns[dir.idx()].as_mut() else {
            return;
        };
        c.rx.extend_from_slice(data);
        loop {
            let Some(c) = self.conns[dir.idx()].as_mut() else {
                return;
            };
            let ctx = c.neg.as_ref().map(|n| n.ctx).unwrap_or_default();
            let len = match frame_len(&c.rx) {
                Ok(Some(l)) => l,
                // Complete messages are drained as they arrive, so the buffer never holds
                // more than one partial message (< 4096 bytes).
                Ok(None) => {
                    return;
                }
                Err(e) => {
                    self.protocol_error(now, dir, e);
                    return;
                }
            };
            let msg: Vec<u8> = c.rx.drain(..len).collect();
            match Message::parse(&msg, &ctx) {
                Ok(m) => self.handle_message(now, dir, m),
                Err(e) => {
                    self.protocol_error(now, dir, e);
                    return;
                }
            }
        }
    }

    /// Runs expired timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.restart_at.is_some_and(|t| t <= now) {
            self.restart_at = None;
            self.start(now);
        }
        // ConnectRetryTimer_Expires (event 9): time for the next outbound attempt.
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            let idle_conns = self.conns.iter().all(Option::is_none);
            if idle_conns && self.base != SessionState::Idle && !self.connecting {
                self.base = SessionState::Connect;
                self.connect_pending = true;
            }
        }
        for dir in [Dir::Outbound, Dir::Inbound] {
            let Some(c) = self.conns[dir.idx()].as_mut() else {
                continue;
            };
            if c.hold.is_some_and(|t| t <= now) {
                let e = NotifyError::new(code::HOLD_TIMER_EXPIRED, 0, []);
                self.protocol_error(now, dir, e);
                continue;
            }
            if let Some(t) = c.keepalive.filter(|t| *t <= now) {
                let ka = c.neg.as_ref().map(|n| n.keepalive).unwrap_or(0);
                c.keepalive = (ka > 0).then(|| t.max(now) + Duration::from_secs(ka.into()));
                self.send(dir, &Message::Keepalive, &Ctx::default());
            }
        }
    }

    /// The earliest deadline at which [`Session::handle_timeout`] must be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let conn_timers = self
            .conns
            .iter()
            .flatten()
            .flat_map(|c| [c.hold, c.keepalive]);
        [self.retry_at, self.restart_at]
            .into_iter()
            .chain(conn_timers)
            .flatten()
            .min()
    }

    /// Next bytes to write. Drain before acting on [`SessionEvent::Close`].
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let mut t = self.tx.pop_front()?;
        while let Some(n) = self.tx.front() {
            if n.dir != t.dir || t.bytes.len() + n.bytes.len() > 65536 {
                break;
            }
            if let Some(n) = self.tx.pop_front() {
                t.bytes.extend_from_slice(&n.bytes);
            }
        }
        Some(t)
    }

    /// Next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// Sends an UPDATE on the established connection. Returns false when not Established
    /// or the message does not encode (over 4096 bytes).
    pub fn send_update(&mut self, update: &UpdateRepr) -> bool {
        self.send_established(&Message::Update(update.clone()))
    }

    /// Asks the peer to resend its routes for `afi` (when it supports route refresh).
    pub fn request_refresh(&mut self, afi: Afi) -> bool {
        if !self.negotiated().is_some_and(|n| n.route_refresh) {
            return false;
        }
        let rr = RouteRefreshRepr {
            afi: afi.code(),
            subtype: 0,
            safi: SAFI_UNICAST,
        };
        self.send_established(&Message::RouteRefresh(rr))
    }

    /// Sends a ROUTE-REFRESH message as is (e.g. the RFC 7313 BoRR/EoRR markers).
    pub fn send_route_refresh(&mut self, r: RouteRefreshRepr) -> bool {
        self.send_established(&Message::RouteRefresh(r))
    }

    fn send_established(&mut self, m: &Message) -> bool {
        let Some((dir, ctx)) = self.negotiated().map(|n| (n.dir, n.ctx)) else {
            return false;
        };
        match m.emit(&ctx) {
            Ok(bytes) => {
                self.tx.push_back(Transmit { dir, bytes });
                true
            }
            Err(_) => false,
        }
    }

    // ===== internals =====

    fn make_open(&self) -> OpenRepr {
        let mut capabilities: Vec<Capability> = self
            .cfg
            .families
            .iter()
            .map(|a| Capability::Multiprotocol {
                afi: a.code(),
                safi: SAFI_UNICAST,
            })
            .collect();
        capabilities.push(Capability::RouteRefresh);
        capabilities.push(Capability::EnhancedRouteRefresh);
        if let Some(t) = self.cfg.graceful_restart {
            capabilities.push(Capability::GracefulRestart(GracefulRestartCap {
                flags: 0,
                restart_time: t.min(0x0fff),
                families: vec![],
            }));
        }
        if self.cfg.four_octet_as {
            capabilities.push(Capability::FourOctetAs(self.cfg.local_as));
        }
        OpenRepr {
            my_as: u16::try_from(self.cfg.local_as).unwrap_or(AS_TRANS),
            hold_time: self.cfg.hold_time,
            bgp_id: self.cfg.router_id,
            capabilities,
        }
    }

    fn send(&mut self, dir: Dir, m: &Message, ctx: &Ctx) {
        if let Ok(bytes) = m.emit(ctx) {
            self.tx.push_back(Transmit { dir, bytes });
        }
    }

    /// Waits `backoff` before the next outbound attempt and doubles it (up to the maximum).
    /// Passive sessions just wait for the peer.
    fn arm_retry(&mut self, now: Instant) {
        if self.cfg.passive {
            return;
        }
        self.retry_at = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(self.cfg.connect_retry_max);
    }

    /// Removes a connection, emitting Down if it was established and Close always.
    fn drop_conn(&mut self, dir: Dir, reason: DownReason) {
        if let Some(c) = self.conns[dir.idx()].take() {
            if c.state == ConnState::Established {
                self.events.push_back(SessionEvent::Down {
                    reason: reason.clone(),
                });
            }
            self.events.push_back(SessionEvent::Close { dir, reason });
        }
    }

    fn close_conn(&mut self, dir: Dir, n: Option<NotificationRepr>, reason: DownReason) {
        if let Some(n) = n {
            self.send(dir, &Message::Notification(n), &Ctx::default());
        }
        self.drop_conn(dir, reason);
    }

    /// After a connection closed: if none is left, wait for the retry timer.
    fn after_close(&mut self, now: Instant) {
        if self.conns.iter().all(Option::is_none) && self.base != SessionState::Idle {
            self.base = SessionState::Active;
            if self.retry_at.is_none() {
                self.arm_retry(now);
            }
        }
    }

    fn protocol_error(&mut self, now: Instant, dir: Dir, e: NotifyError) {
        let n = e.to_notification();
        self.close_conn(dir, Some(n.clone()), DownReason::NotificationSent(n));
        self.after_close(now);
    }

    fn handle_message(&mut self, now: Instant, dir: Dir, m: Message) {
        let Some(c) = self.conns[dir.idx()].as_mut() else {
            return;
        };
        let state = c.state;
        // Any message from the peer shows it is alive (restart the hold timer).
        if let Some(neg) = &c.neg {
            if neg.hold_time > 0 {
                c.hold = Some(now + Duration::from_secs(neg.hold_time.into()));
            }
        }
        match (state, m) {
            (_, Message::Notification(n)) => {
                self.drop_conn(dir, DownReason::NotificationReceived(n));
                self.after_close(now);
            }
            (ConnState::OpenSent, Message::Open(o)) => self.handle_open(now, dir, o),
            (ConnState::OpenConfirm, Message::Keepalive) => self.established(dir),
            (ConnState::Established, Message::Keepalive) => {}
            (ConnState::Established, Message::Update(mut u)) => {
                if u.error.as_ref().is_some_and(|e| e.treat_as_withdraw) {
                    // RFC 7606 §2: announced prefixes become withdrawals.
                    let nlri = std::mem::take(&mut u.nlri);
                    u.withdrawn.extend(nlri);
                    if let Some(r) = u.mp_reach.take() {
                        let un = u.mp_unreach.get_or_insert(crate::wire::MpUnreach {
                            afi: r.afi,
                            withdrawn: vec![],
                        });
                        if un.afi == r.afi {
                            un.withdrawn.extend(r.nlri);
                        }
                    }
                }
                self.events.push_back(SessionEvent::Update(u));
            }
            (ConnState::Established, Message::RouteRefresh(r)) => {
                self.events.push_back(SessionEvent::RouteRefresh(r));
            }
            (s, _) => {
                // RFC 6608 subcodes: 1 OpenSent, 2 OpenConfirm, 3 Established.
                let sub = match s {
                    ConnState::OpenSent => 1,
                    ConnState::OpenConfirm => 2,
                    ConnState::Established => 3,
                };
                self.protocol_error(now, dir, NotifyError::new(code::FSM, sub, []));
            }
        }
    }

    /// The peer's AS as we see it (an old 2-byte speaker ignores the 4-octet capability).
    fn peer_asn(&self, o: &OpenRepr) -> u32 {
        if self.cfg.four_octet_as {
            o.asn()
        } else {
            u32::from(o.my_as)
        }
    }

    fn check_open(&self, o: &OpenRepr) -> Result<(), NotifyError> {
        if o.hold_time == 1 || o.hold_time == 2 {
            return Err(NotifyError::new(code::OPEN, code::OPEN_BAD_HOLD_TIME, []));
        }
        if self.peer_asn(o) != self.cfg.remote_as {
            return Err(NotifyError::new(code::OPEN, code::OPEN_BAD_PEER_AS, []));
        }
        let id = o.bgp_id;
        if id.is_unspecified() || (!self.cfg.is_ebgp() && id == self.cfg.router_id) {
            return Err(NotifyError::new(
                code::OPEN,
                code::OPEN_BAD_BGP_ID,
                id.octets(),
            ));
        }
        Ok(())
    }

    fn handle_open(&mut self, now: Instant, dir: Dir, o: OpenRepr) {
        // 1. Validate (RFC 4271 §6.2).
        if let Err(e) = self.check_open(&o) {
            self.protocol_error(now, dir, e);
            return;
        }
        // 2. Collision detection (RFC 4271 §6.8).
        if let Some(other) = self.conns[dir.other().idx()].as_ref() {
            let keep_this = if other.state == ConnState::Established {
                false
            } else {
                // The higher BGP identifier keeps the connection it initiated.
                let local_wins = u32::from(self.cfg.router_id) > u32::from(o.bgp_id);
                (dir == Dir::Outbound) == local_wins
            };
            let n = NotificationRepr {
                code: code::CEASE,
                subcode: code::CEASE_COLLISION,
                data: vec![],
            };
            if keep_this {
                self.close_conn(
                    dir.other(),
                    Some(n.clone()),
                    DownReason::NotificationSent(n),
                );
            } else {
                self.close_conn(dir, Some(n.clone()), DownReason::NotificationSent(n));
                return;
            }
        }
        // 3. Negotiate.
        let hold_time = self.cfg.hold_time.min(o.hold_time);
        let keepalive = hold_time / 3;
        let families = if o.has_any_multiprotocol() {
            self.cfg
                .families
                .iter()
                .copied()
                .filter(|a| o.has_family(a.code()))
                .collect()
        } else {
            self.cfg
                .families
                .iter()
                .copied()
                .filter(|a| *a == Afi::Ipv4)
                .collect()
        };
        let neg = Negotiated {
            peer_as: self.peer_asn(&o),
            peer_id: o.bgp_id,
            hold_time,
            keepalive,
            families,
            ctx: Ctx {
                four_octet_as: self.cfg.four_octet_as && o.four_octet_as().is_some(),
            },
            route_refresh: o.capabilities.contains(&Capability::RouteRefresh),
            enhanced_route_refresh: o.capabilities.contains(&Capability::EnhancedRouteRefresh),
            peer_graceful_restart: o.graceful_restart().cloned(),
            dir,
        };
        // 4. KEEPALIVE, OpenConfirm, timers.
        if let Some(c) = self.conns[dir.idx()].as_mut() {
            c.state = ConnState::OpenConfirm;
            c.neg = Some(neg);
            c.hold = (hold_time > 0).then(|| now + Duration::from_secs(hold_time.into()));
            c.keepalive = (keepalive > 0).then(|| now + Duration::from_secs(keepalive.into()));
        }
        self.send(dir, &Message::Keepalive, &Ctx::default());
    }

    fn established(&mut self, dir: Dir) {
        // The other connection lost (or never finished) collision resolution.
        if self.conns[dir.other().idx()].is_some() {
            let n = NotificationRepr {
                code: code::CEASE,
                subcode: code::CEASE_COLLISION,
                data: vec![],
            };
            self.close_conn(
                dir.other(),
                Some(n.clone()),
                DownReason::NotificationSent(n),
            );
        }
        let Some(c) = self.conns[dir.idx()].as_mut() else {
            return;
        };
        c.state = ConnState::Established;
        self.base = SessionState::Active;
        self.backoff = self.cfg.connect_retry_min;
        self.retry_at = None;
        self.connect_pending = false;
        if let Some(neg) = c.neg.clone() {
            self.events.push_back(SessionEvent::Up(neg));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair_cfg() -> (SessionConfig, SessionConfig) {
        let a = SessionConfig::new(4_200_000_010, 65515, Ipv4Addr::new(10, 1, 255, 1));
        let mut b = SessionConfig::new(65515, 4_200_000_010, Ipv4Addr::new(10, 2, 255, 254));
        b.passive = true;
        (a, b)
    }

    /// Moves bytes between two sessions until quiet; returns events seen on each side.
    fn pump(
        now: Instant,
        a: &mut Session,
        b: &mut Session,
    ) -> (Vec<SessionEvent>, Vec<SessionEvent>) {
        let (mut ea, mut eb) = (vec![], vec![]);
        for _ in 0..100 {
            let mut moved = false;
            while let Some(t) = a.poll_transmit() {
                let d = if t.dir == Dir::Outbound {
                    Dir::Inbound
                } else {
                    Dir::Outbound
                };
                b.handle_bytes(now, d, &t.bytes);
                moved = true;
            }
            while let Some(t) = b.poll_transmit() {
                let d = if t.dir == Dir::Outbound {
                    Dir::Inbound
                } else {
                    Dir::Outbound
                };
                a.handle_bytes(now, d, &t.bytes);
                moved = true;
            }
            ea.extend(std::iter::from_fn(|| a.poll_event()));
            eb.extend(std::iter::from_fn(|| b.poll_event()));
            if !moved {
                break;
            }
        }
        (ea, eb)
    }

    #[test]
    fn establish_and_negotiate() {
        let (ca, cb) = pair_cfg();
        let mut a = Session::new(ca);
        let mut b = Session::new(cb);
        let t0 = Instant::now();
        a.start(t0);
        b.start(t0);
        assert!(a.poll_connect());
        assert!(!a.poll_connect());
        assert!(!b.poll_connect());
        a.tcp_connected(t0, Dir::Outbound);
        b.tcp_connected(t0, Dir::Inbound);
        let (ea, eb) = pump(t0, &mut a, &mut b);
        assert_eq!(a.state(), SessionState::Established);
        assert_eq!(b.state(), SessionState::Established);
        let SessionEvent::Up(n) = &ea[0] else {
            panic!("{ea:?}")
        };
        assert_eq!((n.hold_time, n.keepalive, n.peer_as), (180, 60, 65515));
        assert!(n.ctx.four_octet_as);
        let SessionEvent::Up(n) = &eb[0] else {
            panic!("{eb:?}")
        };
        assert_eq!(n.peer_as, 4_200_000_010);
        // keepalive after 60 s
        assert_eq!(a.poll_timeout(), Some(t0 + Duration::from_secs(60)));
        a.handle_timeout(t0 + Duration::from_secs(60));
        let t = a.poll_transmit().unwrap();
        assert_eq!(t.bytes.len(), 19);
    }

    #[test]
    fn hold_time_below_three_is_refused() {
        let (ca, mut cb) = pair_cfg();
        cb.hold_time = 2;
        let mut a = Session::new(ca);
        let mut b = Session::new(cb);
        let t0 = Instant::now();
        a.start(t0);
        b.start(t0);
        let _ = a.poll_connect();
        a.tcp_connected(t0, Dir::Outbound);
        b.tcp_connected(t0, Dir::Inbound);
        let (ea, eb) = pump(t0, &mut a, &mut b);
        assert!(ea.iter().any(|e| matches!(e, SessionEvent::Close { reason: DownReason::NotificationSent(n), .. } if n.code == 2 && n.subcode == 6)));
        assert!(eb.iter().any(|e| matches!(e, SessionEvent::Close { reason: DownReason::NotificationReceived(n), .. } if n.code == 2 && n.subcode == 6)));
        assert_eq!(a.state(), SessionState::Active);
    }

    fn open_bytes(my_as: u16, hold: u16, id: Ipv4Addr, caps: Vec<Capability>) -> Vec<u8> {
        let o = OpenRepr {
            my_as,
            hold_time: hold,
            bgp_id: id,
            capabilities: caps,
        };
        Message::Open(o).emit(&Ctx::default()).unwrap()
    }

    fn started(now: Instant) -> Session {
        let (ca, _) = pair_cfg();
        let mut s = Session::new(ca);
        s.start(now);
        s.tcp_connected(now, Dir::Inbound);
        while s.poll_transmit().is_some() {}
        s
    }

    #[test]
    fn hold_time_zero_disables_keepalives() {
        let t0 = Instant::now();
        let mut s = started(t0);
        let caps = vec![Capability::FourOctetAs(65515)];
        let mut b = open_bytes(65515, 0, Ipv4Addr::new(10, 2, 255, 4), caps);
        b.extend(Message::Keepalive.emit(&Ctx::default()).unwrap());
        s.handle_bytes(t0, Dir::Inbound, &b);
        assert_eq!(s.state(), SessionState::Established);
        assert_eq!(s.negotiated().unwrap().hold_time, 0);
        // only the (session-level) connect-retry timer may remain: no hold, no keepalive
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn bad_bgp_identifier_and_as_trans() {
        let t0 = Instant::now();
        let mut s = started(t0);
        let caps = vec![Capability::FourOctetAs(65515)];
        s.handle_bytes(
            t0,
            Dir::Inbound,
            &open_bytes(65515, 180, Ipv4Addr::UNSPECIFIED, caps),
        );
        let t = s.poll_transmit().unwrap();
        assert_eq!(&t.bytes[19..21], &[code::OPEN, code::OPEN_BAD_BGP_ID]);
        // AS_TRANS without the 4-octet capability is not AS 65515
        let mut s = started(t0);
        s.handle_bytes(
            t0,
            Dir::Inbound,
            &open_bytes(AS_TRANS, 180, Ipv4Addr::new(1, 1, 1, 1), vec![]),
        );
        let t = s.poll_transmit().unwrap();
        assert_eq!(&t.bytes[19..21], &[code::OPEN, code::OPEN_BAD_PEER_AS]);
    }

    #[test]
    fn connect_retry_backs_off() {
        let (ca, _) = pair_cfg();
        let mut s = Session::new(ca);
        let mut now = Instant::now();
        s.start(now);
        let mut gaps = vec![];
        for _ in 0..9 {
            assert!(s.poll_connect());
            s.tcp_failed(now);
            let next = s.poll_timeout().unwrap();
            gaps.push((next - now).as_secs());
            now = next;
            s.handle_timeout(now);
        }
        assert_eq!(gaps, [1, 2, 4, 8, 16, 32, 64, 120, 120]);
    }
}
