//! BGP sessions through the tunnels (TCP, driven by the sans-IO `bgp::Speaker`), best
//! routes into the kernel with Causeway's protocol id, removed on withdraw, session loss,
//! tunnel down and shutdown.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bgp::{Dir, NeighborId, Prefix, Speaker, SpeakerEvent};
use dataplane::netlink::Route;
use ipnet::IpNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::api::{NeighborStatus, RouteStatus};
use crate::daemon::{lock, Shared};

/// Observable BGP state, refreshed by the BGP task.
pub struct BgpShared {
    neighbors: Mutex<Vec<NeighborStatus>>,
    routes: Mutex<BTreeMap<Prefix, (Route, RouteStatus)>>,
}

impl BgpShared {
    /// One `Idle` entry per configured neighbor.
    pub fn new(cfg: &config::Config) -> Self {
        let neighbors = cfg
            .bgp
            .iter()
            .flat_map(|b| b.neighbors.iter())
            .map(|n| NeighborStatus {
                address: n.address.to_string(),
                remote_asn: n.remote_asn,
                tunnel: n.tunnel.clone(),
                state: "Idle".into(),
                ..NeighborStatus::default()
            })
            .collect();
        BgpShared {
            neighbors: Mutex::new(neighbors),
            routes: Mutex::new(BTreeMap::new()),
        }
    }

    /// Neighbor states.
    pub fn neighbors(&self) -> Vec<NeighborStatus> {
        lock(&self.neighbors).clone()
    }

    /// Learned routes.
    pub fn routes(&self) -> Vec<RouteStatus> {
        lock(&self.routes)
            .values()
            .map(|(_, s)| s.clone())
            .collect()
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
        nc.families = vec![if n.address.is_ipv4() {
            bgp::Afi::Ipv4
        } else {
            bgp::Afi::Ipv6
        }];
        nc.connect_retry_max = Duration::from_secs(30);
        if let Some(IpAddr::V4(a)) = n.local_address {
            nc.next_hop_v4 = Some(a);
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

fn remove_all_routes(shared: &Shared) {
    let mut routes = lock(&shared.bgp.routes);
    let mut nl = lock(&shared.nl);
    for (_, (r, _)) in std::mem::take(&mut *routes) {
        if let Err(e) = nl.delete_route(&r) {
            tracing::debug!(dst = %r.dst, error = %e, "removing BGP route failed");
        }
    }
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

struct Task {
    speaker: Speaker,
    nbs: HashMap<NeighborId, Nb>,
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
    fn tunnel_established(&self, id: NeighborId) -> bool {
        self.nbs.get(&id).is_some_and(|n| {
            self.shared
                .tunnels
                .get(n.tunnel)
                .is_some_and(|t| t.is_established())
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
            self.speaker.set_local_address(id, local.ip());
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
            let mut buf = vec![0u8; 65536];
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
        self.speaker.tcp_connected(now, id, dir);
    }

    fn input(&mut self, m: BgpIn) -> bool {
        let now = Instant::now();
        match m {
            BgpIn::Connected { id, dir, stream } => {
                let id = if dir == Dir::Inbound {
                    let Ok(peer) = stream.peer_addr() else {
                        return true;
                    };
                    match self.speaker.neighbor_by_address(peer.ip()) {
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
                self.speaker.tcp_failed(now, id);
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
                    self.speaker.handle_bytes(now, id, dir, &data);
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
                    self.speaker.tcp_closed(now, id, dir);
                }
            }
            BgpIn::Stop => return false,
            BgpIn::SetNeighbor { id, cfg } => {
                tracing::info!(neighbor = %cfg.address, "BGP policy updated");
                self.speaker.set_policy(id, policy(&cfg));
                if let Some(n) = self.nbs.get_mut(&id) {
                    n.cfg = *cfg;
                }
            }
        }
        true
    }

    /// Drain transmits, events and connect requests; program the kernel.
    fn flush(&mut self) {
        let now = Instant::now();
        loop {
            let mut progress = false;
            while let Some((id, t)) = self.speaker.poll_transmit() {
                progress = true;
                if let Some(c) = self.conns.get(&(id, dir_key(t.dir))) {
                    let _ = c.writer.send(t.bytes);
                }
            }
            while let Some(ev) = self.speaker.poll_event() {
                progress = true;
                self.event(ev);
            }
            while let Some(id) = self.speaker.poll_connect() {
                progress = true;
                // With start_action = trap the SYN itself brings the tunnel up.
                if self.tunnel_established(id) || self.tunnel_traps(id) {
                    self.spawn_connect(id);
                } else if let Some(n) = self.nbs.get_mut(&id) {
                    n.pending_connect = true;
                }
            }
            if !progress {
                break;
            }
        }
        let _ = now;
        self.publish();
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
            SpeakerEvent::FibChange { prefix, next_hops } => self.fib_change(prefix, &next_hops),
            SpeakerEvent::FibRemove { prefix } => self.fib_remove(prefix),
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

    fn fib_change(&mut self, prefix: Prefix, next_hops: &[(IpAddr, NeighborId)]) {
        let Some(&(nh, nid)) = next_hops.first() else {
            return self.fib_remove(prefix);
        };
        let Some(nb) = self.nbs.get(&nid) else { return };
        let Some(t) = self.shared.tunnels.get(nb.tunnel) else {
            return;
        };
        let Ok(dst) = IpNet::new(prefix.addr(), prefix.len()) else {
            return;
        };
        // Never route our own networks into the tunnel.
        if t.cfg
            .local_ts
            .iter()
            .any(|l| l.prefix_len() > 0 && (l.contains(&dst) || dst.contains(l)))
        {
            tracing::info!(%dst, tunnel = %t.cfg.name, "learned route overlaps our local_ts: not installed");
            return;
        }
        let route = Route::dev(dst, t.dp.ifindex(), self.shared.proto, self.shared.table);
        let installed = match lock(&self.shared.nl).replace_route(&route) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(%dst, error = %e, "installing BGP route failed");
                false
            }
        };
        let as_path = self
            .speaker
            .rib()
            .selected(&prefix)
            .and_then(|s| s.best.1.attrs.as_path.clone())
            .map(|p| {
                p.segments
                    .iter()
                    .flat_map(|s| s.asns().iter().copied())
                    .collect()
            })
            .unwrap_or_default();
        tracing::info!(%dst, via = %nh, dev = %t.cfg.interface, "BGP route installed");
        let status = RouteStatus {
            prefix: dst.to_string(),
            source: "bgp".into(),
            tunnel: t.cfg.name.clone(),
            interface: t.cfg.interface.clone(),
            next_hop: Some(nh.to_string()),
            as_path,
            installed,
        };
        let old = lock(&self.shared.bgp.routes).insert(prefix, (route.clone(), status));
        // A route moved to another device/table: remove the old one.
        if let Some((o, st)) = old {
            if st.installed && (o.oif != route.oif || o.table != route.table) {
                let _ = lock(&self.shared.nl).delete_route(&o);
            }
        }
    }

    fn fib_remove(&mut self, prefix: Prefix) {
        let old = lock(&self.shared.bgp.routes).remove(&prefix);
        if let Some((r, st)) = old {
            tracing::info!(dst = %r.dst, "BGP route removed");
            if st.installed {
                if let Err(e) = lock(&self.shared.nl).delete_route(&r) {
                    tracing::debug!(dst = %r.dst, error = %e, "removing BGP route failed");
                }
            }
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
                self.speaker.neighbor_up(now, id);
            } else if was && !up {
                tracing::info!(neighbor = %n.cfg.address, "tunnel down: BGP routes withdrawn");
                self.conns.remove(&(id, false));
                self.conns.remove(&(id, true));
                self.speaker.neighbor_down(now, id);
            }
        }
    }

    fn publish(&self) {
        let now = Instant::now();
        let list: Vec<NeighborStatus> = self
            .speaker
            .neighbors()
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
    let mut t = Task {
        speaker,
        nbs,
        shared,
        tx,
        conns: HashMap::new(),
        generation: 0,
        errors: HashMap::new(),
    };
    t.check_tunnels();
    t.speaker.start(Instant::now());
    t.flush();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        let timer = t.speaker.poll_timeout();
        tokio::select! {
            m = rx.recv() => {
                let Some(m) = m else { break };
                if !t.input(m) { break; }
            }
            _ = sleep_opt(timer) => t.speaker.handle_timeout(Instant::now()),
            _ = tick.tick() => t.check_tunnels(),
        }
        t.flush();
    }
    // Shutdown: Cease to every neighbor, give the writers a moment.
    t.speaker.stop(Instant::now(), "causeway shutting down");
    t.flush();
    t.conns.clear();
    tokio::time::sleep(Duration::from_millis(200)).await;
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
