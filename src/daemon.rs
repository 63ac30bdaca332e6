//! `causeway run`: the daemon. Wires config → dataplane (TUN, sockets, SA tables, routes)
//! → one IKE task per tunnel → control socket, metrics and systemd notification.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use dataplane::netlink::{Netlink, NextHop, Route};
use dataplane::tun::TunConfig;
use dataplane::{Dataplane, IkeDatagram, TunnelConfig};
use ipnet::IpNet;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::api::{Request, Response, RouteNextHop, RouteStatus, Snapshot};
use crate::control::{Call, ControlSocket};
use crate::notify::notify;
use crate::tunnel::{self, IkeIn, TunnelCmd, TunnelRt};

/// Default protocol id of Causeway's kernel routes when there is no `[bgp]` section.
pub const DEFAULT_PROTO: u8 = 249;
/// The main routing table.
pub const MAIN_TABLE: u32 = 254;

/// Lock a std mutex, ignoring poisoning (the data stays usable).
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// State shared by the daemon's tasks.
pub struct Shared {
    /// When the daemon started.
    pub started: Instant,
    /// The dataplane (sockets, SA tables, workers).
    pub dp: Dataplane,
    /// Netlink socket for routes and addresses.
    pub nl: Mutex<Netlink>,
    /// Protocol id of our kernel routes.
    pub proto: u8,
    /// Routing table of our kernel routes.
    pub table: u32,
    /// The tunnels, in config order.
    pub tunnels: Vec<Arc<TunnelRt>>,
    /// Routes for the remote traffic selectors (and underlay protection).
    pub static_routes: Mutex<StaticRoutes>,
    /// Bumped whenever a tunnel becomes usable or stops being usable (see
    /// [`tunnel_usable`]): the BGP task and the selector routes follow at once.
    pub tunnel_events: tokio::sync::watch::Sender<u64>,
    /// Per tunnel (config order): usable at the last [`Shared::tunnel_changed`].
    tunnel_usable: Vec<AtomicBool>,
    /// BGP state (neighbors and learned routes).
    pub bgp: crate::bgpd::BgpShared,
    /// Port-500 sockets by local IP (unspecified address = any).
    pub ike_sockets: HashMap<IpAddr, Arc<UdpSocket>>,
    /// IKE datagrams from an address that is no tunnel's peer (dropped before any
    /// parsing: a spoofed IKE_SA_INIT flood from other addresses costs nothing more).
    pub ike_unknown_peer: AtomicU64,
    /// IKE datagrams dropped because the tunnel's task was behind (its queue was full).
    pub ike_backlog: AtomicU64,
}

impl Shared {
    /// Everything the control socket reports.
    pub fn snapshot(&self) -> Snapshot {
        let names: Vec<(String, String)> = self
            .tunnels
            .iter()
            .map(|t| (t.cfg.name.clone(), t.cfg.interface.clone()))
            .collect();
        let mut routes = lock(&self.static_routes).status(&names);
        routes.extend(self.bgp.routes());
        Snapshot {
            routes,
            ..self.snapshot_without_routes()
        }
    }

    /// Routes installed in the kernel (selector routes and BGP routes), counted without
    /// building the route list.
    pub fn routes_installed(&self) -> usize {
        lock(&self.static_routes).installed() + self.bgp.route_counts().1
    }

    /// The snapshot with an empty `routes` list: for views that don't show routes and for
    /// the metrics endpoint, so that neither copies a full table (a million routes).
    pub fn snapshot_without_routes(&self) -> Snapshot {
        Snapshot {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            uptime_secs: self.started.elapsed().as_secs(),
            tunnels: self.tunnels.iter().map(|t| t.status()).collect(),
            bgp: self.bgp.neighbors(),
            routes: Vec::new(),
            dataplane_drops: {
                let c = self.dp.global_counters();
                dataplane::DropReason::ALL
                    .into_iter()
                    .map(|r| (r.name().to_string(), c.dropped(r)))
                    .chain([
                        (
                            "ike_unknown_peer".to_string(),
                            self.ike_unknown_peer.load(Ordering::Relaxed),
                        ),
                        (
                            "ike_backlog".to_string(),
                            self.ike_backlog.load(Ordering::Relaxed),
                        ),
                    ])
                    .filter(|(_, n)| *n > 0)
                    .collect()
            },
        }
    }

    /// Called by a tunnel's task after it handled an IKE event: when the tunnel became
    /// usable or stopped being usable, wake the tasks that route into it.
    pub fn tunnel_changed(&self, t: &TunnelRt) {
        let Some(i) = self.tunnels.iter().position(|x| std::ptr::eq(&**x, t)) else {
            return;
        };
        let now = tunnel_usable(t);
        let changed = self
            .tunnel_usable
            .get(i)
            .is_some_and(|u| u.swap(now, Ordering::AcqRel) != now);
        if changed {
            tracing::debug!(tunnel = %t.cfg.name, usable = now, "tunnel usability changed");
            self.tunnel_events.send_modify(|g| *g = g.wrapping_add(1));
        }
    }

    /// The port-500 socket for `local` (or the wildcard one).
    pub fn ike_socket(&self, local: IpAddr) -> Option<&Arc<UdpSocket>> {
        self.ike_sockets.get(&local).or_else(|| {
            let any = if local.is_ipv4() {
                IpAddr::from([0u8; 4])
            } else {
                IpAddr::from([0u16; 8])
            };
            self.ike_sockets.get(&any)
        })
    }

    /// Send an IKE message: from port 4500 through the dataplane endpoint (with the
    /// non-ESP marker), else from the port-500 socket.
    pub async fn send_ike(&self, src: SocketAddr, dst: SocketAddr, msg: &[u8]) {
        let res = if src.port() == 4500 || dst.port() == 4500 {
            self.dp.send_ike(src.ip(), dst, msg)
        } else {
            match self.ike_socket(src.ip()) {
                Some(s) => s.send_to(msg, dst).await.map(|_| ()),
                None => Err(std::io::Error::other(format!("no IKE socket for {src}"))),
            }
        };
        if let Err(e) = res {
            tracing::warn!(%src, %dst, error = %e, "sending IKE message failed");
        }
    }
}

/// Run the daemon until SIGTERM/SIGINT. Exit 0 after a clean shutdown.
pub fn run(config_path: &Path, socket: Option<PathBuf>) -> ExitCode {
    let cfg = match config::Config::from_path(config_path) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    init_tracing(cfg.daemon.log_level.as_str());
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("causeway")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(daemon_main(cfg, config_path.to_path_buf(), socket));
    rt.shutdown_timeout(Duration::from_secs(2));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            notify(&format!("STATUS=failed: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let under_systemd = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    // journald adds its own timestamps.
    if under_systemd {
        builder.without_time().init();
    } else {
        builder.init();
    }
}

/// Unique local outer addresses of all tunnels.
fn local_addrs(cfg: &config::Config) -> Vec<IpAddr> {
    let mut seen = HashSet::new();
    cfg.tunnels
        .iter()
        .flat_map(|t| t.local_addrs.iter().copied())
        .filter(|a| seen.insert(*a))
        .collect()
}

async fn daemon_main(
    cfg: config::Config,
    config_path: PathBuf,
    socket: Option<PathBuf>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    tracing::info!(config = %config_path.display(), tunnels = cfg.tunnels.len(), "causeway starting");
    let proto = cfg.bgp.as_ref().map_or(DEFAULT_PROTO, |b| b.proto);
    let table = cfg.bgp.as_ref().map_or(MAIN_TABLE, |b| b.table);

    // PSKs first: a missing or unreadable PSK is a start-up error (never printed).
    let mut psks = Vec::new();
    for t in &cfg.tunnels {
        let psk = t
            .load_psk()
            .with_context(|| format!("tunnel {}: loading the PSK", t.name))?;
        psks.push(psk);
    }

    let mut nl = Netlink::new().context("opening netlink")?;
    match nl.flush_routes(proto) {
        Ok(0) => {}
        Ok(n) => tracing::info!(n, proto, "removed stale routes from an earlier run"),
        Err(e) => tracing::warn!(error = %e, "flushing stale routes failed"),
    }

    let control_path = socket.unwrap_or_else(|| cfg.daemon.control_socket.clone());
    let control = ControlSocket::bind(&control_path)?;

    // IKE messages from every socket go through one channel to a dispatcher.
    let (ike_tx, mut ike_rx) = mpsc::channel::<IkeIn>(1024);
    let sink_tx = ike_tx.clone();
    let sink: dataplane::worker::IkeSink = Arc::new(move |d: IkeDatagram<'_>| {
        let _ = sink_tx.try_send(IkeIn {
            local: d.local,
            peer: d.peer,
            msg: d.msg.to_vec(),
        });
    });
    let dp = Dataplane::new(sink);

    let mut ike_sockets = HashMap::new();
    for addr in local_addrs(&cfg) {
        let bound = dp
            .open_endpoint(SocketAddr::new(addr, 4500))
            .with_context(|| format!("binding UDP {addr}:4500"))?;
        tracing::info!(%bound, "ESP-in-UDP/IKE endpoint open");
        let ports: HashSet<u16> = cfg
            .tunnels
            .iter()
            .filter(|t| t.local_addrs.contains(&addr))
            .map(|t| t.local_port)
            .filter(|p| *p != 4500)
            .collect();
        for port in ports {
            let sa = SocketAddr::new(addr, port);
            let s = UdpSocket::bind(sa).await.with_context(|| {
                format!("binding UDP {sa} (ports below 1024 need root or CAP_NET_BIND_SERVICE)")
            })?;
            tracing::info!(bound = %sa, "IKE socket open");
            ike_sockets.insert(addr, Arc::new(s));
        }
    }

    // Tunnels: TUN device, command channel.
    let mut tunnels = Vec::new();
    let mut receivers = Vec::new();
    for (t, psk) in cfg.tunnels.iter().zip(psks) {
        let addrs: Vec<IpNet> = cfg
            .bgp
            .iter()
            .flat_map(|b| b.neighbors.iter())
            .filter(|n| n.tunnel == t.name)
            .filter_map(|n| n.local_address)
            .map(IpNet::from)
            .collect();
        let dpt = dp
            .add_tunnel(TunnelConfig {
                tun: TunConfig {
                    name: t.interface.clone(),
                    mtu: u32::from(t.mtu),
                    addrs,
                },
                local: t
                    .local_addrs
                    .first()
                    .copied()
                    .unwrap_or(IpAddr::from([0u8; 4])),
                mss_clamp: t.mss_clamp,
            })
            .with_context(|| {
                format!(
                    "tunnel {}: creating TUN device {} (needs root or CAP_NET_ADMIN)",
                    t.name, t.interface
                )
            })?;
        tracing::info!(tunnel = %t.name, dev = %t.interface, ifindex = dpt.ifindex(), "TUN device up");
        let (tx, rx) = mpsc::channel(256);
        tunnels.push(Arc::new(TunnelRt::new(t.clone(), psk, dpt, tx)));
        receivers.push(rx);
    }

    let tunnel_usable = tunnels.iter().map(|_| AtomicBool::new(false)).collect();
    let shared = Arc::new(Shared {
        started,
        dp,
        nl: Mutex::new(nl),
        proto,
        table,
        tunnels,
        static_routes: Mutex::new(StaticRoutes::default()),
        tunnel_events: tokio::sync::watch::Sender::new(0),
        tunnel_usable,
        bgp: crate::bgpd::BgpShared::new(&cfg),
        ike_sockets,
        ike_unknown_peer: AtomicU64::new(0),
        ike_backlog: AtomicU64::new(0),
    });

    install_static_routes(&shared);
    let static_task = tokio::spawn(follow_tunnels(Arc::clone(&shared)));

    // Port-500 receive loops.
    for (addr, sock) in &shared.ike_sockets {
        let sock = Arc::clone(sock);
        let tx = ike_tx.clone();
        let local = sock.local_addr().unwrap_or(SocketAddr::new(*addr, 500));
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            loop {
                match sock.recv_from(&mut buf).await {
                    Ok((n, peer)) => {
                        let msg = buf.get(..n).unwrap_or_default().to_vec();
                        let _ = tx.send(IkeIn { local, peer, msg }).await;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "IKE socket receive error");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        });
    }

    // Dispatcher: IKE datagrams to the tunnel whose peer sent them.
    {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            while let Some(d) = ike_rx.recv().await {
                let peer = d.peer.ip();
                let t = shared
                    .tunnels
                    .iter()
                    .find(|t| t.cfg.remote_addrs.contains(&peer));
                match t {
                    Some(t) => {
                        if t.cmd.try_send(TunnelCmd::Datagram(d)).is_err() {
                            shared.ike_backlog.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    None => {
                        // Counted, not logged: a flood must not turn into a log flood.
                        shared.ike_unknown_peer.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }

    // One IKE task per tunnel.
    let mut tasks = Vec::new();
    for (t, rx) in shared.tunnels.iter().zip(receivers) {
        tasks.push(tokio::spawn(tunnel::run(
            Arc::clone(t),
            Arc::clone(&shared),
            rx,
        )));
    }

    // BGP.
    let bgp_task = crate::bgpd::start(&cfg, Arc::clone(&shared));

    // Control socket.
    let (ctl_tx, mut ctl_rx) = mpsc::channel::<Call>(64);
    tokio::spawn(control.serve(ctl_tx));
    {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            while let Some((req, answer)) = ctl_rx.recv().await {
                let resp = handle_request(&shared, req).await;
                let _ = answer.send(resp);
            }
        });
    }

    // Metrics.
    if let Some(addr) = cfg.daemon.metrics {
        let s = Arc::clone(&shared);
        let f: crate::metrics::SnapshotFn =
            Arc::new(move || (s.snapshot_without_routes(), s.routes_installed()));
        tokio::spawn(async move {
            if let Err(e) = crate::metrics::serve(addr, f).await {
                tracing::error!(%addr, error = %e, "metrics endpoint failed");
            }
        });
    }

    // systemd STATUS= line: tunnels and BGP sessions up, refreshed every 5 s.
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        let s = Arc::clone(&shared);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            let mut last = String::new();
            loop {
                tick.tick().await;
                // Counts only: no per-route status list (a full table has a million).
                let up = s.tunnels.iter().filter(|t| t.is_established()).count();
                let nbs = s.bgp.neighbors();
                let est = nbs.iter().filter(|n| n.state == "Established").count();
                let line = format!(
                    "STATUS={up}/{} tunnels up, {est}/{} BGP sessions Established, {} routes",
                    s.tunnels.len(),
                    nbs.len(),
                    s.routes_installed()
                );
                if line != last {
                    notify(&line);
                    last = line;
                }
            }
        });
    }

    // Watchdog.
    if let Some(interval) = crate::notify::watchdog_interval() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval / 2);
            loop {
                tick.tick().await;
                notify("WATCHDOG=1");
            }
        });
    }

    let status = format!(
        "{} tunnel(s), control socket {}",
        shared.tunnels.len(),
        control_path.display()
    );
    notify(&format!("READY=1\nSTATUS={status}"));
    tracing::info!("{status}: ready");

    let mut running = cfg;
    wait_for_stop(&config_path, |new| {
        reload(&mut running, new, bgp_task.as_ref())
    })
    .await;

    // Shutdown: delete SAs (Deletes to the peers), stop BGP, remove routes and TUNs.
    notify("STOPPING=1\nSTATUS=shutting down");
    tracing::info!("shutting down");
    // BGP first (Cease through the still-working tunnel), then the IKE SAs.
    crate::bgpd::stop(bgp_task, &shared).await;
    for t in &shared.tunnels {
        let _ = t.cmd.try_send(TunnelCmd::Shutdown);
    }
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(3), task).await;
    }
    static_task.abort();
    remove_static_routes(&shared);
    for t in &shared.tunnels {
        t.remove_all_sas(&shared.dp);
    }
    match Arc::try_unwrap(shared) {
        Ok(s) => {
            s.dp.shutdown();
            drop(s); // TUN devices go with their Tunnel handles
        }
        Err(s) => {
            // Some task still holds a reference: the TUNs are removed at exit anyway
            // (the kernel deletes a non-persistent TUN when its fd closes).
            s.dp.shutdown();
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// Wait for SIGTERM or SIGINT. SIGHUP re-validates the config file and logs the result.
/// SIGHUP: apply what can change at run time (BGP announcements and filters), and say
/// which changes need a restart.
fn reload(running: &mut config::Config, new: config::Config, bgp: Option<&crate::bgpd::BgpTask>) {
    let plan = reload_plan(running, &new);
    let mut applied = 0;
    if let Some(task) = bgp {
        for (i, n) in &plan.neighbors {
            task.set_neighbor(*i, n.clone());
            applied += 1;
        }
    }
    if plan.bgp_applies {
        running.bgp = new.bgp.clone();
    }
    tracing::info!(
        neighbors_updated = applied,
        "SIGHUP: configuration reloaded (BGP announce/import/export/prepend/max_prefixes apply at once)"
    );
    if !plan.restart.is_empty() {
        tracing::warn!(
            "SIGHUP: changes to {} need a restart (systemctl restart causeway) and were not applied",
            plan.restart.join(", ")
        );
    }
}

/// What a reload can apply, and what needs a restart.
#[derive(Debug, Default)]
struct ReloadPlan {
    /// Neighbors (by index) whose policy changed.
    neighbors: Vec<(usize, config::Neighbor)>,
    /// The `[bgp]` sessions are unchanged, so policy changes apply.
    bgp_applies: bool,
    /// Sections whose changes need a restart.
    restart: Vec<&'static str>,
}

fn reload_plan(running: &config::Config, new: &config::Config) -> ReloadPlan {
    let mut plan = ReloadPlan::default();
    if running.daemon != new.daemon {
        plan.restart.push("[daemon]");
    }
    if running.tunnels != new.tunnels {
        plan.restart.push("[[tunnel]]");
    }
    match (&running.bgp, &new.bgp) {
        (None, None) => {}
        (Some(a), Some(b))
            if a.asn == b.asn
                && a.router_id == b.router_id
                && a.table == b.table
                && a.proto == b.proto
                && a.neighbors.len() == b.neighbors.len()
                && a.neighbors.iter().zip(&b.neighbors).all(|(x, y)| {
                    x.address == y.address
                        && x.remote_asn == y.remote_asn
                        && x.tunnel == y.tunnel
                        && x.local_address == y.local_address
                        && x.multihop == y.multihop
                        && x.hold_time == y.hold_time
                        && x.keepalive == y.keepalive
                }) =>
        {
            plan.bgp_applies = true;
            for (i, (x, y)) in a.neighbors.iter().zip(&b.neighbors).enumerate() {
                if x != y {
                    plan.neighbors.push((i, y.clone()));
                }
            }
        }
        _ => plan.restart.push("[bgp] sessions"),
    }
    plan
}

async fn wait_for_stop(config_path: &Path, mut on_reload: impl FnMut(config::Config)) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        std::future::pending::<()>().await;
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM"); return; }
            _ = int.recv() => { tracing::info!("SIGINT"); return; }
            _ = hup.recv() => {
                notify("RELOADING=1");
                match config::Config::from_path(config_path) {
                    Ok(new) => on_reload(new),
                    Err(e) => tracing::error!("SIGHUP: config has errors, keeping the running one:\n{e}"),
                }
                notify("READY=1");
            }
        }
    }
}

/// Whether a tunnel can carry traffic now: a Child SA is installed and the data path has
/// an outbound SA for it (none while the last one is being deleted).
pub fn tunnel_usable(t: &TunnelRt) -> bool {
    t.is_established() && t.dp.outbound_spi().is_some()
}

/// Causeway's routes for the tunnels' remote traffic selectors.
///
/// A selector prefix is ONE kernel route whatever the number of tunnels that carry it
/// (two tunnels to an active-active gateway both carry `10.2.0.0/16`, or both forced
/// tunneling's `0.0.0.0/1` + `128.0.0.0/1`): a multipath route over the TUN devices of
/// those tunnels that are usable, updated when one comes up or goes down. While none of
/// them is usable the route stays over all of them (traffic is dropped, or brings up a
/// `start_action = trap` tunnel; it never leaves unencrypted by a less specific route).
/// IPv6 takes no device-only multipath (the kernel needs gateways for IPv6 ECMP): an
/// IPv6 selector route goes through the first usable tunnel in config order instead.
#[derive(Debug, Default)]
pub struct StaticRoutes {
    /// Underlay host routes pinning the peers (forced tunneling).
    pins: Vec<(Route, RouteStatus)>,
    /// One per selector prefix.
    routes: Vec<SelectorRoute>,
    /// Shutdown: the routes are gone and stay gone.
    stopped: bool,
}

/// One selector prefix and the tunnels that carry it.
#[derive(Debug)]
struct SelectorRoute {
    dst: IpNet,
    /// Tunnels (indices into [`Shared::tunnels`], config order) whose remote_ts has it.
    tunnels: Vec<usize>,
    /// The tunnels the kernel route goes through now (empty: not installed).
    kernel: Vec<usize>,
}

impl StaticRoutes {
    /// The tunnels `r` should go through, given which tunnels are usable.
    fn wanted(r: &SelectorRoute, usable: &[bool]) -> Vec<usize> {
        let up: Vec<usize> = r
            .tunnels
            .iter()
            .copied()
            .filter(|i| usable.get(*i).copied().unwrap_or(false))
            .collect();
        let mut want = if up.is_empty() { r.tunnels.clone() } else { up };
        if r.dst.addr().is_ipv6() {
            want.truncate(1);
        }
        want
    }

    /// Status lines: the pins, then one per selector prefix with its next hops as the
    /// kernel has them. `names`: (tunnel, TUN device) per tunnel, config order.
    fn status(&self, names: &[(String, String)]) -> Vec<RouteStatus> {
        let name = |i: usize| names.get(i).cloned().unwrap_or_default();
        let mut out: Vec<RouteStatus> = self.pins.iter().map(|(_, s)| s.clone()).collect();
        for r in &self.routes {
            let first = r.kernel.first().or(r.tunnels.first()).copied();
            let (tunnel, interface) = first.map(name).unwrap_or_default();
            out.push(RouteStatus {
                prefix: r.dst.to_string(),
                source: "static".into(),
                tunnel,
                interface,
                next_hop: None,
                as_path: vec![],
                installed: !r.kernel.is_empty(),
                next_hops: r
                    .kernel
                    .iter()
                    .map(|i| {
                        let (tunnel, interface) = name(*i);
                        RouteNextHop {
                            tunnel,
                            interface,
                            address: None,
                        }
                    })
                    .collect(),
            });
        }
        out
    }

    /// Routes in the kernel now.
    fn installed(&self) -> usize {
        self.pins.len() + self.routes.iter().filter(|r| !r.kernel.is_empty()).count()
    }
}

/// Routes for the tunnels' remote traffic selectors through their TUN devices, plus an
/// underlay host route to the peer when a selector is a default route.
fn install_static_routes(shared: &Shared) {
    let mut st = lock(&shared.static_routes);
    {
        let mut nl = lock(&shared.nl);
        for (ti, t) in shared.tunnels.iter().enumerate() {
            if t.cfg.remote_ts.iter().any(|n| n.prefix_len() == 0) {
                for peer in &t.cfg.remote_addrs {
                    // Pinned once, also when several tunnels go to the same peer.
                    if st.pins.iter().any(|(r, _)| r.dst == IpNet::from(*peer)) {
                        continue;
                    }
                    match nl.protect_peer(*peer, shared.proto, shared.table) {
                        Ok(r) => {
                            tracing::info!(tunnel = %t.cfg.name, %peer, "underlay host route pinned (forced tunneling)");
                            let status = RouteStatus {
                                prefix: IpNet::from(*peer).to_string(),
                                source: "underlay".into(),
                                tunnel: t.cfg.name.clone(),
                                interface: String::new(),
                                next_hop: r.gateway.map(|g| g.to_string()),
                                as_path: vec![],
                                installed: true,
                                next_hops: vec![],
                            };
                            st.pins.push((r, status));
                        }
                        Err(e) => {
                            tracing::error!(tunnel = %t.cfg.name, %peer, error = %e, "cannot pin the underlay route to the peer; not installing the default route");
                            t.set_error(format!("underlay protection failed: {e}"));
                        }
                    }
                }
            }
            // A default-route selector goes in as its two /1 halves: more specific than
            // the system's default route, so it wins without replacing it (a replaced
            // default route would be gone after shutdown).
            for ts in &t.cfg.remote_ts {
                if ts.prefix_len() == 0 && t.last_error().is_some() {
                    continue;
                }
                for net in dataplane::netlink::tunnel_prefixes(*ts) {
                    match st.routes.iter_mut().find(|r| r.dst == net) {
                        Some(r) if !r.tunnels.contains(&ti) => r.tunnels.push(ti),
                        Some(_) => {}
                        None => st.routes.push(SelectorRoute {
                            dst: net,
                            tunnels: vec![ti],
                            kernel: vec![],
                        }),
                    }
                }
            }
        }
    }
    for r in st.routes.iter().filter(|r| r.tunnels.len() > 1) {
        let names: Vec<&str> = r
            .tunnels
            .iter()
            .filter_map(|i| shared.tunnels.get(*i).map(|t| t.cfg.name.as_str()))
            .collect();
        tracing::info!(dst = %r.dst, tunnels = %names.join(","), "selector shared by several tunnels: one multipath route over those that are up");
    }
    drop(st);
    sync_static_routes(shared);
}

/// Brings the selector routes in line with the tunnels' state: a kernel call only for a
/// route whose next hops change. Blocking (netlink).
fn sync_static_routes(shared: &Shared) {
    let usable: Vec<bool> = shared.tunnels.iter().map(|t| tunnel_usable(t)).collect();
    let mut st = lock(&shared.static_routes);
    if st.stopped {
        return;
    }
    let changes: Vec<(usize, Vec<usize>)> = st
        .routes
        .iter()
        .enumerate()
        .filter_map(|(k, r)| {
            let want = StaticRoutes::wanted(r, &usable);
            (want != r.kernel).then_some((k, want))
        })
        .collect();
    if changes.is_empty() {
        return;
    }
    let mut nl = lock(&shared.nl);
    for (k, want) in changes {
        let Some(r) = st.routes.get_mut(k) else {
            continue;
        };
        let hops: Vec<NextHop> = want
            .iter()
            .filter_map(|i| shared.tunnels.get(*i))
            .map(|t| NextHop {
                gateway: None,
                oif: t.dp.ifindex(),
                weight: 1,
            })
            .collect();
        let route = Route::multipath(r.dst, hops, shared.proto, shared.table);
        let devs: Vec<&str> = want
            .iter()
            .filter_map(|i| shared.tunnels.get(*i).map(|t| t.cfg.interface.as_str()))
            .collect();
        match nl.replace_route(&route) {
            Ok(()) => {
                tracing::info!(dst = %r.dst, dev = %devs.join("+"), "selector route set");
                r.kernel = want;
            }
            // The kernel keeps the route it had (a replace is atomic).
            Err(e) => {
                tracing::error!(dst = %r.dst, dev = %devs.join("+"), error = %e, "installing the selector route failed")
            }
        }
    }
}

/// Follows tunnel up/down events (and polls once a second as a fallback) and moves the
/// selector routes to the usable tunnels.
async fn follow_tunnels(shared: Arc<Shared>) {
    let mut events = shared.tunnel_events.subscribe();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = events.changed() => if r.is_err() { return },
            _ = tick.tick() => {}
        }
        let s = Arc::clone(&shared);
        // Netlink blocks (and may wait for a BGP batch): off the async workers.
        let _ = tokio::task::spawn_blocking(move || sync_static_routes(&s)).await;
    }
}

fn remove_static_routes(shared: &Shared) {
    let mut st = lock(&shared.static_routes);
    st.stopped = true;
    let mut nl = lock(&shared.nl);
    for (r, _) in st.pins.drain(..) {
        if let Err(e) = nl.delete_route(&r) {
            tracing::debug!(dst = %r.dst, error = %e, "removing route failed");
        }
    }
    for r in st.routes.drain(..) {
        if r.kernel.is_empty() {
            continue;
        }
        let key = Route::delete_key(r.dst, shared.proto, shared.table);
        if let Err(e) = nl.delete_route(&key) {
            tracing::warn!(dst = %r.dst, error = %e, "removing the selector route failed");
        }
    }
}

async fn handle_request(shared: &Arc<Shared>, req: Request) -> Response {
    match req {
        Request::Status | Request::Routes => Response::with_status(shared.snapshot()),
        Request::Sa | Request::Bgp => Response::with_status(shared.snapshot_without_routes()),
        Request::Initiate { tunnel } => tunnel_action(shared, &tunnel, TunnelCmd::Initiate).await,
        Request::Terminate { tunnel } => tunnel_action(shared, &tunnel, TunnelCmd::Terminate).await,
        Request::Rekey { tunnel, ike } => {
            tunnel_action(shared, &tunnel, TunnelCmd::Rekey { ike }).await
        }
    }
}

async fn tunnel_action(shared: &Arc<Shared>, name: &str, cmd: TunnelCmd) -> Response {
    let Some(t) = shared.tunnels.iter().find(|t| t.cfg.name == name) else {
        let names: Vec<&str> = shared.tunnels.iter().map(|t| t.cfg.name.as_str()).collect();
        return Response::error(format!(
            "no tunnel named {name:?} (tunnels: {})",
            names.join(", ")
        ));
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    if t.cmd
        .send(TunnelCmd::Action(Box::new(cmd), tx))
        .await
        .is_err()
    {
        return Response::error("the tunnel task is not running");
    }
    match rx.await {
        Ok(Ok(msg)) => Response::message(msg),
        Ok(Err(e)) => Response::error(e),
        Err(_) => Response::error("the tunnel task did not answer"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
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
announce = ["10.1.0.0/24"]
"#;

    fn cfg(text: &str) -> config::Config {
        config::Config::from_str(text, "test.toml").unwrap_or_else(|e| panic!("{e}"))
    }

    fn sel(dst: &str, tunnels: &[usize]) -> SelectorRoute {
        SelectorRoute {
            dst: dst.parse().unwrap(),
            tunnels: tunnels.to_vec(),
            kernel: vec![],
        }
    }

    #[test]
    fn shared_selector_goes_over_the_usable_tunnels() {
        let r = sel("10.2.0.0/16", &[0, 1]);
        assert_eq!(StaticRoutes::wanted(&r, &[true, true]), vec![0, 1]);
        // One down: traffic leaves it at once.
        assert_eq!(StaticRoutes::wanted(&r, &[false, true]), vec![1]);
        assert_eq!(StaticRoutes::wanted(&r, &[true, false]), vec![0]);
        // None up: the route stays in the tunnels (dropped or trapped, never in clear).
        assert_eq!(StaticRoutes::wanted(&r, &[false, false]), vec![0, 1]);
        // A tunnel that does not carry the prefix never counts.
        let only1 = sel("0.0.0.0/1", &[1]);
        assert_eq!(StaticRoutes::wanted(&only1, &[true, false]), vec![1]);
        // IPv6: no device-only multipath; the first usable tunnel.
        let v6 = sel("2001:db8::/32", &[0, 1]);
        assert_eq!(StaticRoutes::wanted(&v6, &[true, true]), vec![0]);
        assert_eq!(StaticRoutes::wanted(&v6, &[false, true]), vec![1]);
        assert_eq!(StaticRoutes::wanted(&v6, &[false, false]), vec![0]);
    }

    #[test]
    fn selector_status_is_what_the_kernel_has() {
        let names = vec![
            ("az1".to_string(), "cw-az1".to_string()),
            ("az2".to_string(), "cw-az2".to_string()),
        ];
        let mut st = StaticRoutes::default();
        st.routes.push(sel("10.2.0.0/16", &[0, 1]));
        // Not in the kernel yet.
        let s = st.status(&names);
        assert_eq!(s.len(), 1);
        assert!(!s[0].installed);
        assert!(s[0].next_hops.is_empty());
        assert_eq!(st.installed(), 0);
        // Over az2 only (az1 down): one line, az2 first and only.
        st.routes[0].kernel = vec![1];
        let s = st.status(&names);
        assert!(s[0].installed);
        assert_eq!(
            (s[0].tunnel.as_str(), s[0].interface.as_str()),
            ("az2", "cw-az2")
        );
        assert_eq!(s[0].next_hops.len(), 1);
        // Both: one route, two next hops.
        st.routes[0].kernel = vec![0, 1];
        let s = st.status(&names);
        assert_eq!(s.len(), 1);
        let devs: Vec<&str> = s[0]
            .next_hops
            .iter()
            .map(|h| h.interface.as_str())
            .collect();
        assert_eq!(devs, ["cw-az1", "cw-az2"]);
        assert!(s[0].next_hops.iter().all(|h| h.address.is_none()));
        assert_eq!(st.installed(), 1);
    }

    #[test]
    fn reload_applies_bgp_policy_without_restart() {
        let old = cfg(BASE);
        let new = cfg(&BASE.replace(
            r#"announce = ["10.1.0.0/24"]"#,
            r#"announce = ["10.1.0.0/24", "10.1.2.0/24"]"#,
        ));
        let plan = reload_plan(&old, &new);
        assert!(plan.restart.is_empty(), "{plan:?}");
        assert!(plan.bgp_applies);
        assert_eq!(plan.neighbors.len(), 1);
        assert_eq!(plan.neighbors[0].0, 0);
        assert_eq!(plan.neighbors[0].1.announce.len(), 2);
        assert!(reload_plan(&old, &old).neighbors.is_empty());
    }

    #[test]
    fn reload_says_which_changes_need_a_restart() {
        let old = cfg(BASE);
        let tunnel = cfg(&BASE.replace(
            r#"remote_ts = ["10.2.0.0/16"]"#,
            r#"remote_ts = ["10.3.0.0/16", "10.2.0.0/16"]"#,
        ));
        assert_eq!(reload_plan(&old, &tunnel).restart, vec!["[[tunnel]]"]);
        let asn = cfg(&BASE.replace("remote_asn = 65515", "remote_asn = 65020"));
        let plan = reload_plan(&old, &asn);
        assert_eq!(plan.restart, vec!["[bgp] sessions"]);
        assert!(!plan.bgp_applies);
        assert!(plan.neighbors.is_empty());
    }
}
