//! BGP sessions through the tunnels (TCP, driven by the sans-IO `bgp::Speaker`), best
//! routes into the kernel with Causeway's protocol id, removed on withdraw, session loss,
//! tunnel down and shutdown.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bgp::{Dir, NeighborId, Prefix, Speaker, SpeakerEvent};
use dataplane::netlink::{NextHop, Route, RouteOp};
use ipnet::IpNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::api::{NeighborStatus, RouteNextHop, RouteStatus};
use crate::daemon::{lock, Shared};

/// Kernel route operations sent in one `apply_routes` call (one netlink datagram per
/// ~32 KiB inside it); FIB changes are flushed when this many are pending.
const FIB_BATCH: usize = 2048;
/// Input messages handled per loop turn before the FIB is programmed.
const INPUT_BATCH: usize = 32;
/// Batches handed to the FIB thread and not yet done. While this many are out and a
/// full batch is pending, the task reads no input (timers and keepalives keep running).
const FIB_INFLIGHT: usize = 3;

/// Observable BGP state. Routes are not copied here: `causeway routes` is built on
/// demand from the speaker's RIB, plus the few prefixes the kernel did not take.
pub struct BgpShared {
    neighbors: Mutex<Vec<NeighborStatus>>,
    /// The speaker while the BGP task runs.
    speaker: Mutex<Option<Arc<Mutex<Speaker>>>>,
    /// Kernel state where it differs from "every selected prefix is installed".
    fib: Mutex<FibState>,
    /// Neighbor id → (tunnel name, TUN device).
    nb_tunnels: Vec<(String, String)>,
}

/// What the BGP task knows about the kernel beyond the RIB.
#[derive(Debug, Default)]
struct FibState {
    /// Selected prefixes that are not in the kernel: refused by it (error logged and
    /// counted), overlapping the tunnel's local_ts, or without a usable tunnel.
    not_installed: HashSet<Prefix>,
    /// Route operations the kernel refused since start.
    errors: u64,
}

impl BgpShared {
    /// One `Idle` entry per configured neighbor.
    pub fn new(cfg: &config::Config) -> Self {
        let nbs: Vec<&config::Neighbor> = cfg.bgp.iter().flat_map(|b| b.neighbors.iter()).collect();
        let neighbors = nbs
            .iter()
            .map(|n| NeighborStatus {
                address: n.address.to_string(),
                remote_asn: n.remote_asn,
                tunnel: n.tunnel.clone(),
                state: "Idle".into(),
                ..NeighborStatus::default()
            })
            .collect();
        let nb_tunnels = nbs
            .iter()
            .map(|n| {
                let iface = cfg
                    .tunnels
                    .iter()
                    .find(|t| t.name == n.tunnel)
                    .map(|t| t.interface.clone())
                    .unwrap_or_default();
                (n.tunnel.clone(), iface)
            })
            .collect();
        BgpShared {
            neighbors: Mutex::new(neighbors),
            speaker: Mutex::new(None),
            fib: Mutex::new(FibState::default()),
            nb_tunnels,
        }
    }

    /// Neighbor states.
    pub fn neighbors(&self) -> Vec<NeighborStatus> {
        lock(&self.neighbors).clone()
    }

    fn speaker(&self) -> Option<Arc<Mutex<Speaker>>> {
        lock(&self.speaker).clone()
    }

    /// Learned routes (the Loc-RIB), built now from the RIB.
    pub fn routes(&self) -> Vec<RouteStatus> {
        let Some(sp) = self.speaker() else {
            return Vec::new();
        };
        let sp = lock(&sp);
        let fib = lock(&self.fib);
        let rib = sp.rib();
        let mut out = Vec::with_capacity(rib.len());
        for (prefix, e) in rib.loc_iter() {
            let (best_nb, best) = e.best();
            let hop = |(nh, nb): (IpAddr, NeighborId)| {
                let (tunnel, interface) = self
                    .nb_tunnels
                    .get(nb as usize)
                    .cloned()
                    .unwrap_or_default();
                RouteNextHop {
                    tunnel,
                    interface,
                    address: Some(nh.to_string()),
                }
            };
            // Every ECMP next hop (IPv6: the first, as in the kernel).
            let mut next_hops: Vec<RouteNextHop> = e.next_hops().map(hop).collect();
            if next_hops.is_empty() {
                next_hops.push(hop((best.next_hop, best_nb)));
            }
            // One path per tunnel, as the kernel route has them.
            let mut seen = HashSet::new();
            next_hops.retain(|h| seen.insert(h.tunnel.clone()));
            if prefix.addr().is_ipv6() {
                next_hops.truncate(1);
            }
            let first = next_hops.first().cloned().unwrap_or_default();
            let as_path = best
                .attrs
                .as_path
                .as_ref()
                .map(|p| {
                    p.segments
                        .iter()
                        .flat_map(|s| s.asns().iter().copied())
                        .collect()
                })
                .unwrap_or_default();
            out.push(RouteStatus {
                prefix: prefix.to_string(),
                source: "bgp".into(),
                tunnel: first.tunnel,
                interface: first.interface,
                next_hop: first.address,
                as_path,
                installed: !fib.not_installed.contains(&prefix),
                next_hops,
            });
        }
        out
    }

    /// (selected routes, of which installed in the kernel, kernel errors since start),
    /// without building the route list.
    pub fn route_counts(&self) -> (usize, usize, u64) {
        let total = self.speaker().map_or(0, |sp| lock(&sp).rib().len());
        let fib = lock(&self.fib);
        (
            total,
            total.saturating_sub(fib.not_installed.len()),
            fib.errors,
        )
    }
}

/// Input to the BGP task from the socket tasks and the daemon.
enum BgpIn {
    Connected {
        id: NeighborId,
        dir: Dir,
        stream: TcpStream,
    },
    ConnectFailed {
        id: NeighborId,
        error: String,
    },
    Bytes {
        id: NeighborId,
        dir: Dir,
        data: Vec<u8>,
        generation: u64,
    },
    Closed {
        id: NeighborId,
        dir: Dir,
        generation: u64,
    },
    Stop,
    /// New neighbor settings from a reload (same session parameters, new policy).
    SetNeighbor {
        id: NeighborId,
        cfg: Box<config::Neighbor>,
    },
}

/// Handle of the running BGP task.
pub struct BgpTask {
    tx: mpsc::Sender<BgpIn>,
    join: tokio::task::JoinHandle<()>,
}

/// Per neighbor: what the daemon needs besides the speaker.
struct Nb {
    cfg: config::Neighbor,
    tunnel: usize,
    /// Connect requested while the tunnel was down.
    pending_connect: bool,
    /// Tunnel established at the last check.
    tunnel_up: bool,
}

fn policy(n: &config::Neighbor) -> bgp::Policy {
    let prefix = |net: &IpNet| Prefix::new(net.addr(), net.prefix_len());
    let list = |f: &Option<Vec<bgp::PrefixListEntry>>| bgp::PrefixList {
        entries: f.clone().unwrap_or_default(),
    };
    bgp::Policy {
        announce: n.announce.iter().filter_map(prefix).collect(),
        import: list(&n.import),
        export: list(&n.export),
        prepend: n.prepend,
        max_prefixes: n.max_prefixes.map(|limit| bgp::MaxPrefix {
            limit: limit as usize,
            action: match n.max_prefixes_action {
                config::MaxPrefixesAction::Warn => bgp::MaxPrefixAction::Warn,
                config::MaxPrefixesAction::Teardown => bgp::MaxPrefixAction::Teardown,
                config::MaxPrefixesAction::Restart => {
                    bgp::MaxPrefixAction::RestartAfter(Duration::from_secs(60))
                }
            },
        }),
        ..bgp::Policy::default()
    }
}

impl BgpTask {
    /// Apply a neighbor's new announce/import/export/prepend/max_prefixes (reload).
    pub fn set_neighbor(&self, index: usize, cfg: config::Neighbor) {
        let Ok(id) = NeighborId::try_from(index) else {
            return;
        };
        let _ = self.tx.try_send(BgpIn::SetNeighbor {
            id,
            cfg: Box::new(cfg),
        });
    }
}

/// Start the BGP task (nothing without a `[bgp]` section).
pub fn start(cfg: &config::Config, shared: Arc<Shared>) -> Option<BgpTask> {
    let b = cfg.bgp.as_ref()?;
    if b.neighbors.is_empty() {
        return None;
    }
    let mut nbs = HashMap::new();
    let mut ncfgs = Vec::new();
    for (i, n) in b.neighbors.iter().enumerate() {
        let id = i as NeighborId;
        let tunnel = shared.tunnels.iter().position(|t| t.cfg.name == n.tunnel)?;
        let mut nc = bgp::NeighborConfig::new(id, n.address, n.remote_asn);
        nc.hold_time = u16::try_from(n.hold_time.as_secs()).unwrap_or(u16::MAX);
        nc.ttl = n.multihop.unwrap_or(1);
        // Both families on every session (IPv6 routes over an IPv4 session and the other
        // way round, RFC 4760); what the peer does not support is not negotiated.
        nc.families = vec![bgp::Afi::Ipv4, bgp::Afi::Ipv6];
        nc.connect_retry_max = Duration::from_secs(30);
        match n.local_address {
            Some(IpAddr::V4(a)) => nc.next_hop_v4 = Some(a),
            Some(IpAddr::V6(a)) => nc.next_hop_v6 = Some(a),
            None => {}
        }
        nc.policy = policy(n);
        ncfgs.push(nc);
        nbs.insert(
            id,
            Nb {
                cfg: n.clone(),
                tunnel,
                pending_connect: false,
                tunnel_up: false,
            },
        );
    }
    let speaker = Speaker::new(bgp::SpeakerConfig {
        local_as: b.asn,
        router_id: b.router_id,
        neighbors: ncfgs,
    });
    let (tx, rx) = mpsc::channel(1024);
    // Listeners on port 179: one per distinct local address (wildcard if none is set).
    let mut addrs: HashSet<IpAddr> = b.neighbors.iter().filter_map(|n| n.local_address).collect();
    if b.neighbors.iter().any(|n| n.local_address.is_none()) {
        addrs.insert(IpAddr::from([0u8; 4]));
    }
    for a in addrs {
        let tx = tx.clone();
        let shared = Arc::clone(&shared);
        tokio::spawn(listen(SocketAddr::new(a, 179), tx, shared));
    }
    let join = tokio::spawn(run(speaker, nbs, shared, rx, tx.clone()));
    Some(BgpTask { tx, join })
}

/// Stop the sessions (Cease to the peers) and remove their routes.
pub async fn stop(task: Option<BgpTask>, shared: &Shared) {
    if let Some(t) = task {
        let _ = t.tx.send(BgpIn::Stop).await;
        let _ = tokio::time::timeout(Duration::from_secs(3), t.join).await;
    }
    remove_all_routes(shared);
}

/// Deletes the kernel routes of whatever is still in the RIB (normally nothing: the
/// task withdrew everything when it stopped the sessions).
fn remove_all_routes(shared: &Shared) {
    let Some(sp) = lock(&shared.bgp.speaker).take() else {
        return;
    };
    let ops: Vec<RouteOp> = lock(&sp)
        .rib()
        .loc_iter()
        .filter_map(|(p, _)| prefix_net(p))
        .map(|dst| RouteOp::Delete(Route::delete_key(dst, shared.proto, shared.table)))
        .collect();
    if ops.is_empty() {
        return;
    }
    match lock(&shared.nl).apply_routes(&ops) {
        Ok(f) => {
            let real = f
                .iter()
                .filter(|(_, e)| e.raw_os_error() != Some(libc::ESRCH))
                .count();
            tracing::debug!(
                n = ops.len(),
                failed = real,
                "removed the remaining BGP routes"
            );
        }
        Err(e) => tracing::warn!(error = %e, "removing BGP routes failed"),
    }
}

fn prefix_net(p: Prefix) -> Option<IpNet> {
    IpNet::new(p.addr(), p.len()).ok()
}

async fn listen(addr: SocketAddr, tx: mpsc::Sender<BgpIn>, shared: Arc<Shared>) {
    // The address lives on a TUN device that exists by now; retry briefly anyway.
    let mut tries = 0;
    let listener = loop {
        match TcpListener::bind(addr).await {
            Ok(l) => break l,
            Err(e) if tries < 20 => {
                tries += 1;
                tracing::debug!(%addr, error = %e, "BGP listen failed, retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => {
                tracing::error!(%addr, error = %e, "cannot listen for BGP");
                return;
            }
        }
    };
    tracing::info!(%addr, "BGP listening");
    let _ = &shared;
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                // The speaker looks the neighbor up by address in the BGP task.
                let _ = tx
                    .send(BgpIn::Connected {
                        id: NeighborId::MAX,
                        dir: Dir::Inbound,
                        stream,
                    })
                    .await;
                tracing::debug!(%peer, "BGP connection accepted");
            }
            Err(e) => {
                tracing::debug!(error = %e, "BGP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connect(
    id: NeighborId,
    peer: IpAddr,
    local: Option<IpAddr>,
    ttl: u8,
) -> Result<TcpStream, String> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if peer.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP)).map_err(|e| e.to_string())?;
    if peer.is_ipv4() {
        s.set_ttl_v4(u32::from(ttl)).map_err(|e| e.to_string())?;
    } else {
        s.set_unicast_hops_v6(u32::from(ttl))
            .map_err(|e| e.to_string())?;
    }
    if let Some(l) = local {
        s.bind(&SocketAddr::new(l, 0).into())
            .map_err(|e| format!("bind {l}: {e}"))?;
    }
    s.set_nonblocking(true).map_err(|e| e.to_string())?;
    let sock = tokio::net::TcpSocket::from_std_stream(std::net::TcpStream::from(s));
    let _ = id;
    match tokio::time::timeout(
        Duration::from_secs(10),
        sock.connect(SocketAddr::new(peer, 179)),
    )
    .await
    {
        Ok(Ok(stream)) => Ok(stream),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("connect timed out".into()),
    }
}

/// A live TCP connection of a neighbor: the writer channel and its generation (so
/// stale reads from a replaced connection are ignored).
struct Conn {
    writer: mpsc::UnboundedSender<Vec<u8>>,
    generation: u64,
}

/// A pending kernel change, in event order.
enum FibOp {
    /// Install or replace the route with these ECMP next hops.
    Set(Prefix, Vec<(IpAddr, NeighborId)>),
    /// Remove the route.
    Del(Prefix),
}

/// Kernel operations for the FIB thread, with the prefix of each and the prefixes that
/// were not ours to route (book-kept when the batch is done, in order).
struct FibBatch {
    ops: Vec<RouteOp>,
    keys: Vec<Prefix>,
    skipped: Vec<(Prefix, String)>,
}

/// A batch the FIB thread applied: per-operation failures (index into `ops`), or the
/// error that failed the whole batch.
struct FibDone {
    batch: FibBatch,
    result: std::io::Result<Vec<(usize, std::io::Error)>>,
}

/// The FIB thread: applies batches in order with `apply_routes` (blocking netlink),
/// so a large table change never stalls the BGP task (keepalives, hold timers of the
/// other sessions). Ends when the task drops its sender, after the queued batches.
fn spawn_fib_thread(
    shared: Arc<Shared>,
) -> std::io::Result<(mpsc::Sender<FibBatch>, mpsc::UnboundedReceiver<FibDone>)> {
    let (tx, mut rx) = mpsc::channel::<FibBatch>(FIB_INFLIGHT);
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("causeway-fib".into())
        .spawn(move || {
            while let Some(batch) = rx.blocking_recv() {
                let result = lock(&shared.nl).apply_routes(&batch.ops);
                // Applied even when nobody reads the result any more (shutdown).
                let _ = done_tx.send(FibDone { batch, result });
            }
        })?;
    Ok((tx, done_rx))
}

struct Task {
    /// Shared with [`BgpShared`] (status output reads the RIB). Locked only for single
    /// calls or to drain output, never across an await or while programming the kernel.
    speaker: Arc<Mutex<Speaker>>,
    nbs: HashMap<NeighborId, Nb>,
    /// FIB changes not yet handed to the FIB thread.
    pending: Vec<FibOp>,
    /// To the FIB thread (kernel programming blocks; it must not stall the sessions).
    fib_tx: mpsc::Sender<FibBatch>,
    /// Batches out at the FIB thread.
    inflight: usize,
    /// Empty batches for reuse.
    pool: Vec<FibBatch>,
    shared: Arc<Shared>,
    tx: mpsc::Sender<BgpIn>,
    conns: HashMap<(NeighborId, bool), Conn>,
    generation: u64,
    /// Neighbor id → last error from our side (connect failures).
    errors: HashMap<NeighborId, String>,
}

fn dir_key(d: Dir) -> bool {
    matches!(d, Dir::Inbound)
}

impl Task {
    fn sp(&self) -> MutexGuard<'_, Speaker> {
        lock(&self.speaker)
    }

    fn tunnel_established(&self, id: NeighborId) -> bool {
        self.nbs.get(&id).is_some_and(|n| {
            self.shared
                .tunnels
                .get(n.tunnel)
                .is_some_and(|t| crate::daemon::tunnel_usable(t))
        })
    }

    fn tunnel_traps(&self, id: NeighborId) -> bool {
        self.nbs.get(&id).is_some_and(|n| {
            self.shared
                .tunnels
                .get(n.tunnel)
                .is_some_and(|t| t.cfg.start_action == config::StartAction::Trap)
        })
    }

    fn spawn_connect(&mut self, id: NeighborId) {
        let Some(nb) = self.nbs.get(&id) else { return };
        let (peer, local, ttl) = (
            nb.cfg.address,
            nb.cfg.local_address,
            nb.cfg.multihop.unwrap_or(1),
        );
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let msg = match connect(id, peer, local, ttl).await {
                Ok(stream) => BgpIn::Connected {
                    id,
                    dir: Dir::Outbound,
                    stream,
                },
                Err(error) => BgpIn::ConnectFailed { id, error },
            };
            let _ = tx.send(msg).await;
        });
    }

    fn attach(&mut self, id: NeighborId, dir: Dir, stream: TcpStream) {
        let now = Instant::now();
        let ttl = self.nbs.get(&id).and_then(|n| n.cfg.multihop).unwrap_or(1);
        let _ = stream.set_ttl(u32::from(ttl));
        let _ = stream.set_nodelay(true);
        if let Ok(local) = stream.local_addr() {
            self.sp().set_local_address(id, local.ip());
        }
        self.generation += 1;
        let generation = self.generation;
        let (mut rd, mut wr) = stream.into_split();
        let (wtx, mut wrx) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            while let Some(buf) = wrx.recv().await {
                if wr.write_all(&buf).await.is_err() {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        });
        let tx = self.tx.clone();
        tokio::spawn(async move {
            // 16 KiB per read: one read's UPDATEs (~4000 prefixes) become the speaker's
            // event queue before the BGP task drains it, so this bounds that queue.
            let mut buf = vec![0u8; 16384];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let data = buf.get(..n).unwrap_or_default().to_vec();
                        if tx
                            .send(BgpIn::Bytes {
                                id,
                                dir,
                                data,
                                generation,
                            })
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
            let _ = tx
                .send(BgpIn::Closed {
                    id,
                    dir,
                    generation,
                })
                .await;
        });
        self.conns.insert(
            (id, dir_key(dir)),
            Conn {
                writer: wtx,
                generation,
            },
        );
        self.sp().tcp_connected(now, id, dir);
    }

    fn input(&mut self, m: BgpIn) -> bool {
        let now = Instant::now();
        match m {
            BgpIn::Connected { id, dir, stream } => {
                let id = if dir == Dir::Inbound {
                    let Ok(peer) = stream.peer_addr() else {
                        return true;
                    };
                    match self.sp().neighbor_by_address(peer.ip()) {
                        Some(id) => id,
                        None => {
                            tracing::info!(%peer, "BGP connection from an unknown address refused");
                            return true;
                        }
                    }
                } else {
                    id
                };
                tracing::debug!(neighbor = id, ?dir, "BGP TCP connected");
                self.errors.remove(&id);
                self.attach(id, dir, stream);
            }
            BgpIn::ConnectFailed { id, error } => {
                tracing::debug!(neighbor = id, %error, "BGP connect failed");
                self.errors.insert(id, format!("connect: {error}"));
                self.sp().tcp_failed(now, id);
            }
            BgpIn::Bytes {
                id,
                dir,
                data,
                generation,
            } => {
                if self
                    .conns
                    .get(&(id, dir_key(dir)))
                    .is_some_and(|c| c.generation == generation)
                {
                    self.sp().handle_bytes(now, id, dir, &data);
                }
            }
            BgpIn::Closed {
                id,
                dir,
                generation,
            } => {
                let key = (id, dir_key(dir));
                if self
                    .conns
                    .get(&key)
                    .is_some_and(|c| c.generation == generation)
                {
                    self.conns.remove(&key);
                    self.sp().tcp_closed(now, id, dir);
                }
            }
            BgpIn::Stop => return false,
            BgpIn::SetNeighbor { id, cfg } => {
                tracing::info!(neighbor = %cfg.address, "BGP policy updated");
                self.sp().set_policy(id, policy(&cfg));
                if let Some(n) = self.nbs.get_mut(&id) {
                    n.cfg = *cfg;
                }
            }
        }
        true
    }

    /// Drain transmits, events and connect requests, hand the FIB changes of this turn
    /// to the FIB thread and publish the neighbor states.
    fn flush(&mut self) {
        loop {
            self.drain();
            let out = self.inflight;
            self.submit_fib(true);
            // A batch went out: the speaker may hold more events (the drain stops at a
            // full batch). Take them now, or its queue grows while input goes on.
            if self.inflight == out || self.fib_backlogged() {
                break;
            }
        }
        self.publish();
    }

    /// Whether the FIB thread is behind: a full batch waits and [`FIB_INFLIGHT`] are out
    /// (the speaker may hold more events). Input waits then; timers do not.
    fn fib_backlogged(&self) -> bool {
        self.pending.len() >= FIB_BATCH
    }

    /// Drain transmits, events and connect requests. FIB changes are queued and handed
    /// to the FIB thread in batches of [`FIB_BATCH`]; while it is behind, events stay
    /// in the speaker (so neither the event queue nor the batches grow with the table).
    fn drain(&mut self) {
        loop {
            let (transmits, events, connects) = {
                let mut sp = self.sp();
                let t: Vec<_> = std::iter::from_fn(|| sp.poll_transmit()).collect();
                let room = FIB_BATCH.saturating_sub(self.pending.len());
                let e: Vec<_> = std::iter::from_fn(|| sp.poll_event()).take(room).collect();
                let c: Vec<_> = std::iter::from_fn(|| sp.poll_connect()).collect();
                (t, e, c)
            };
            if transmits.is_empty() && events.is_empty() && connects.is_empty() {
                break;
            }
            for (id, t) in transmits {
                if let Some(c) = self.conns.get(&(id, dir_key(t.dir))) {
                    let _ = c.writer.send(t.bytes);
                }
            }
            for ev in events {
                self.event(ev);
            }
            self.submit_fib(false);
            for id in connects {
                // With start_action = trap the SYN itself brings the tunnel up.
                if self.tunnel_established(id) || self.tunnel_traps(id) {
                    self.spawn_connect(id);
                } else if let Some(n) = self.nbs.get_mut(&id) {
                    n.pending_connect = true;
                }
            }
        }
    }

    fn event(&mut self, ev: SpeakerEvent) {
        match ev {
            SpeakerEvent::SessionUp { neighbor, .. } => {
                let addr = self.nbs.get(&neighbor).map(|n| n.cfg.address);
                tracing::info!(neighbor = ?addr, "BGP session Established");
            }
            SpeakerEvent::SessionDown { neighbor, reason } => {
                let addr = self.nbs.get(&neighbor).map(|n| n.cfg.address);
                tracing::warn!(neighbor = ?addr, %reason, "BGP session down");
            }
            SpeakerEvent::Close { neighbor, dir } => {
                // Dropping the writer closes the socket after the queued bytes.
                self.conns.remove(&(neighbor, dir_key(dir)));
            }
            SpeakerEvent::FibChange { prefix, next_hops } => {
                self.pending.push(FibOp::Set(prefix, next_hops))
            }
            SpeakerEvent::FibRemove { prefix } => self.pending.push(FibOp::Del(prefix)),
            SpeakerEvent::MaxPrefixExceeded {
                neighbor,
                count,
                limit,
                action,
            } => {
                let addr = self.nbs.get(&neighbor).map(|n| n.cfg.address);
                tracing::warn!(neighbor = ?addr, count, limit, ?action, "maximum prefixes exceeded");
            }
            SpeakerEvent::EndOfRib { .. } => {}
        }
    }

    /// The kernel route for a prefix with these ECMP next hops: one path per distinct
    /// tunnel (TUN device) that does not overlap the prefix with its local_ts. `Err` with
    /// the reason when no tunnel is usable.
    fn kernel_route(
        &self,
        prefix: Prefix,
        next_hops: &[(IpAddr, NeighborId)],
    ) -> Result<Route, String> {
        let dst = prefix_net(prefix).ok_or("invalid prefix")?;
        let mut hops: Vec<NextHop> = Vec::with_capacity(next_hops.len());
        let mut why = String::from("no tunnel for the next hop");
        for (_, nid) in next_hops {
            let Some(t) = self
                .nbs
                .get(nid)
                .and_then(|nb| self.shared.tunnels.get(nb.tunnel))
            else {
                continue;
            };
            // Never route our own networks into the tunnel.
            if t.cfg
                .local_ts
                .iter()
                .any(|l| l.prefix_len() > 0 && (l.contains(&dst) || dst.contains(l)))
            {
                why = format!("overlaps the local_ts of tunnel {}", t.cfg.name);
                continue;
            }
            let oif = t.dp.ifindex();
            if !hops.iter().any(|h| h.oif == oif) {
                hops.push(NextHop {
                    gateway: None,
                    oif,
                    weight: 1,
                });
            }
        }
        // IPv6 takes no device-only multipath (ECMP needs gateways there): first tunnel.
        if dst.addr().is_ipv6() {
            hops.truncate(1);
        }
        if hops.is_empty() {
            return Err(why);
        }
        Ok(Route::multipath(
            dst,
            hops,
            self.shared.proto,
            self.shared.table,
        ))
    }

    /// Hands pending FIB changes to the FIB thread as kernel operations, full batches
    /// only unless `partial`, while fewer than [`FIB_INFLIGHT`] batches are out. The
    /// thread applies them in order; [`Task::fib_done`] does the book-keeping.
    fn submit_fib(&mut self, partial: bool) {
        let (proto, table) = (self.shared.proto, self.shared.table);
        while self.inflight < FIB_INFLIGHT
            && (self.pending.len() >= FIB_BATCH || (partial && !self.pending.is_empty()))
        {
            let n = self.pending.len().min(FIB_BATCH);
            // Batches are reused (no allocation churn per batch).
            let mut b = self.pool.pop().unwrap_or_else(|| FibBatch {
                ops: Vec::with_capacity(FIB_BATCH),
                keys: Vec::with_capacity(FIB_BATCH),
                skipped: Vec::new(),
            });
            let mut pending = std::mem::take(&mut self.pending);
            for op in pending.drain(..n) {
                match op {
                    FibOp::Set(prefix, nh) => match self.kernel_route(prefix, &nh) {
                        Ok(r) => {
                            b.ops.push(RouteOp::Replace(r));
                            b.keys.push(prefix);
                        }
                        Err(why) => {
                            // Not ours to route: make sure no older version stays.
                            if let Some(dst) = prefix_net(prefix) {
                                b.ops
                                    .push(RouteOp::Delete(Route::delete_key(dst, proto, table)));
                                b.keys.push(prefix);
                            }
                            b.skipped.push((prefix, why));
                        }
                    },
                    FibOp::Del(prefix) => {
                        if let Some(dst) = prefix_net(prefix) {
                            b.ops
                                .push(RouteOp::Delete(Route::delete_key(dst, proto, table)));
                            b.keys.push(prefix);
                        }
                    }
                }
            }
            self.pending = pending;
            match self.fib_tx.try_send(b) {
                Ok(()) => self.inflight += 1,
                Err(e) => {
                    // Only if the FIB thread is gone (it never is while the task runs).
                    tracing::error!("the FIB thread is not running: {e}");
                    return;
                }
            }
        }
    }

    /// Book-keeping of a batch the FIB thread applied. A refused route is logged,
    /// counted and shown as not installed; the RIB keeps it.
    fn fib_done(&mut self, done: FibDone) {
        self.inflight = self.inflight.saturating_sub(1);
        let FibDone { mut batch, result } = done;
        let mut bad = vec![false; batch.ops.len()];
        let mut failed: Vec<(Prefix, std::io::Error)> = Vec::new();
        match result {
            Ok(failures) => {
                for (i, e) in failures {
                    let Some(b) = bad.get_mut(i) else { continue };
                    *b = true;
                    let is_delete = matches!(batch.ops.get(i), Some(RouteOp::Delete(_)));
                    // Deleting a route that is not there (never installed, or gone
                    // with its device) is fine.
                    if is_delete && e.raw_os_error() == Some(libc::ESRCH) {
                        continue;
                    }
                    if let Some(p) = batch.keys.get(i) {
                        failed.push((*p, e));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, n = batch.ops.len(), "netlink batch failed");
                bad.iter_mut().for_each(|b| *b = true);
                for (i, p) in batch.keys.iter().enumerate() {
                    if matches!(batch.ops.get(i), Some(RouteOp::Replace(_))) {
                        failed.push((*p, std::io::Error::other(e.to_string())));
                    }
                }
            }
        }
        let (mut installed, mut removed) = (0usize, 0usize);
        // Book-keeping: only the exceptions are stored per prefix. Lock order as in
        // `BgpShared::routes`: speaker, then fib.
        let sp = self.sp();
        let mut fib = lock(&self.shared.bgp.fib);
        for (i, op) in batch.ops.iter().enumerate() {
            let Some(p) = batch.keys.get(i) else { continue };
            let done = match op {
                RouteOp::Replace(_) if !bad[i] => {
                    installed += 1;
                    true
                }
                RouteOp::Replace(_) => false,
                RouteOp::Delete(_) => {
                    removed += 1;
                    true
                }
            };
            if done && !fib.not_installed.is_empty() {
                fib.not_installed.remove(p);
            }
        }
        for (p, why) in &batch.skipped {
            tracing::info!(prefix = %p, reason = %why, "learned route not installed");
            fib.not_installed.insert(*p);
        }
        let n_failed = failed.len();
        for (i, (p, e)) in failed.iter().enumerate() {
            if i < 10 {
                tracing::warn!(prefix = %p, error = %e, "kernel refused a BGP route");
            }
            fib.not_installed.insert(*p);
        }
        if n_failed > 10 {
            tracing::warn!(n = n_failed, "kernel refused BGP routes (first 10 logged)");
        }
        fib.errors += n_failed as u64;
        // A prefix removed from the RIB is no exception any more.
        if !fib.not_installed.is_empty() && removed > 0 {
            fib.not_installed.retain(|p| sp.rib().loc(p).is_some());
        }
        drop(fib);
        drop(sp);
        if installed > 0 || removed > 0 {
            tracing::debug!(
                installed,
                removed,
                failed = n_failed,
                "BGP routes programmed"
            );
        }
        batch.ops.clear();
        batch.keys.clear();
        batch.skipped.clear();
        if self.pool.len() <= FIB_INFLIGHT {
            self.pool.push(batch);
        }
    }

    /// Tunnel up/down transitions: connect when the tunnel comes up, withdraw the
    /// neighbor's routes at once when it goes down.
    fn check_tunnels(&mut self) {
        let now = Instant::now();
        let ids: Vec<NeighborId> = self.nbs.keys().copied().collect();
        for id in ids {
            let up = self.tunnel_established(id);
            let Some(n) = self.nbs.get_mut(&id) else {
                continue;
            };
            let was = std::mem::replace(&mut n.tunnel_up, up);
            if up && n.pending_connect {
                n.pending_connect = false;
                self.spawn_connect(id);
            } else if up && !was {
                // Connect now rather than after the connect-retry backoff.
                self.sp().neighbor_up(now, id);
            } else if was && !up {
                tracing::info!(neighbor = %n.cfg.address, "tunnel down: BGP routes withdrawn");
                self.conns.remove(&(id, false));
                self.conns.remove(&(id, true));
                self.sp().neighbor_down(now, id);
            }
        }
    }

    fn publish(&self) {
        let now = Instant::now();
        let neighbors = self.sp().neighbors();
        let list: Vec<NeighborStatus> = neighbors
            .into_iter()
            .map(|s| {
                let nb = self.nbs.get(&s.id);
                NeighborStatus {
                    address: s.address.to_string(),
                    remote_asn: s.remote_as,
                    tunnel: nb.map(|n| n.cfg.tunnel.clone()).unwrap_or_default(),
                    state: format!("{:?}", s.state),
                    uptime_secs: s.up_since.map(|u| now.duration_since(u).as_secs()),
                    prefixes_received: s.accepted as u64 + s.rejected,
                    prefixes_accepted: s.accepted as u64,
                    prefixes_advertised: s.advertised as u64,
                    last_error: s.last_error.or_else(|| self.errors.get(&s.id).cloned()),
                }
            })
            .collect();
        *lock(&self.shared.bgp.neighbors) = list;
    }
}

async fn sleep_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
        None => std::future::pending().await,
    }
}

async fn run(
    speaker: Speaker,
    nbs: HashMap<NeighborId, Nb>,
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<BgpIn>,
    tx: mpsc::Sender<BgpIn>,
) {
    let (fib_tx, mut fib_done) = match spawn_fib_thread(Arc::clone(&shared)) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the FIB thread: BGP not started");
            return;
        }
    };
    let mut tunnel_events = shared.tunnel_events.subscribe();
    let speaker = Arc::new(Mutex::new(speaker));
    *lock(&shared.bgp.speaker) = Some(Arc::clone(&speaker));
    let mut t = Task {
        speaker,
        nbs,
        pending: Vec::new(),
        fib_tx,
        inflight: 0,
        pool: Vec::new(),
        shared,
        tx,
        conns: HashMap::new(),
        generation: 0,
        errors: HashMap::new(),
    };
    t.check_tunnels();
    t.sp().start(Instant::now());
    t.flush();
    // Tunnel up/down comes as an event (the tunnel tasks signal Child SA changes); the
    // tick is the fallback.
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        let timer = t.sp().poll_timeout();
        let input = !t.fib_backlogged();
        tokio::select! {
            m = rx.recv(), if input => {
                let Some(m) = m else { break };
                if !t.input(m) { break; }
                // Take what else is queued (up to a bound), so the kernel gets large
                // batches; the speaker's output is drained after each message.
                let mut more = true;
                for _ in 1..INPUT_BATCH {
                    t.drain();
                    // The FIB thread is behind: the speaker keeps the events of what was
                    // read; read no more until a batch is done (bounds that queue).
                    if t.fib_backlogged() {
                        break;
                    }
                    match rx.try_recv() {
                        Ok(m) => {
                            if !t.input(m) {
                                more = false;
                                break;
                            }
                        }
                        Err(_) => break,
                    }
                }
                if !more { break; }
            }
            _ = sleep_opt(timer) => t.sp().handle_timeout(Instant::now()),
            Some(d) = fib_done.recv() => t.fib_done(d),
            r = tunnel_events.changed() => {
                if r.is_ok() {
                    t.check_tunnels();
                }
            }
            _ = tick.tick() => t.check_tunnels(),
        }
        t.flush();
    }
    // Shutdown: Cease to every neighbor, give the writers a moment, and wait for the
    // FIB thread to withdraw the routes (`stop` bounds the wait).
    t.sp().stop(Instant::now(), "causeway shutting down");
    t.flush();
    t.conns.clear();
    let linger = tokio::time::sleep(Duration::from_millis(200));
    tokio::pin!(linger);
    let mut lingered = false;
    while !lingered || t.inflight > 0 || !t.pending.is_empty() {
        tokio::select! {
            _ = &mut linger, if !lingered => lingered = true,
            d = fib_done.recv() => match d {
                Some(d) => t.fib_done(d),
                None => break,
            },
        }
        t.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbor_policy_from_config() {
        let text = r#"
[[tunnel]]
name = "azure"
local_addrs = "192.0.2.1"
remote_addrs = "198.51.100.7"
psk_env = "CW_TEST_PSK"
local_ts = ["10.1.0.0/16"]
remote_ts = ["10.2.0.0/16"]

[bgp]
asn = 65010
router_id = "10.1.255.1"

[[bgp.neighbor]]
address = "10.2.255.254"
remote_asn = 65515
tunnel = "azure"
announce = ["10.1.0.0/24", "10.1.1.0/24"]
import = ["10.2.0.0/16 le 24"]
prepend = 2
max_prefixes = 100
max_prefixes_action = "warn"
"#;
        let cfg = config::Config::from_str(text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
        let n = &cfg.bgp.as_ref().unwrap().neighbors[0];
        let p = policy(n);
        assert_eq!(p.announce.len(), 2);
        assert_eq!(p.prepend, 2);
        assert_eq!(
            p.max_prefixes,
            Some(bgp::MaxPrefix {
                limit: 100,
                action: bgp::MaxPrefixAction::Warn
            })
        );
        let yes: Prefix = "10.2.3.0/24".parse().unwrap();
        let too_long: Prefix = "10.2.3.0/25".parse().unwrap();
        let outside: Prefix = "10.9.0.0/16".parse().unwrap();
        let own: Prefix = "10.1.0.0/24".parse().unwrap();
        assert!(p.accepts(&yes));
        assert!(!p.accepts(&too_long));
        assert!(!p.accepts(&outside));
        assert!(!p.accepts(&own));
        // No export list: exactly the announcements go out.
        assert!(p.export.entries.is_empty());
    }
}
