//! The dataplane: worker threads moving packets between TUN devices and sockets.
//!
//! Threads (plain OS threads, blocking I/O with a 100 ms poll so they notice shutdown),
//! with N = [`DataplaneOptions::workers`] (default 1; 0: one per core):
//! * N TX threads per tunnel, one per TUN queue (`IFF_MULTI_QUEUE`): TUN → MSS clamp →
//!   outbound SA `seal` → UDP 4500 (or raw ESP) to the peer. The kernel hands each flow to
//!   one queue, so a flow is sealed by one thread, in order;
//! * N RX threads per UDP endpoint (local address, port 4500), each with its own socket
//!   bound with `SO_REUSEPORT`: demultiplexes IKE (to the daemon's `ike_sink`), NAT
//!   keepalives (ignored) and ESP: SPI lookup → `open` → source check (NAT rebinding,
//!   [`Tunnel::take_peer_move`]; one load and compare per packet) → traffic-selector
//!   check → MSS clamp → write to the SA's tunnel's TUN, into the queue picked by the inner flow's
//!   hash ([`packet::flow_hash`]; the kernel then reads the flow's outbound packets from
//!   that queue). The kernel picks the socket by the peer's address and port, so one
//!   peer's ESP (one tunnel) is received and opened by one thread: no reordering, but a
//!   single tunnel's inbound decryption uses one core;
//! * one RX thread per raw ESP socket (when a tunnel uses `encap = esp`; a raw socket gets
//!   a copy of every ESP packet, so there is only one).
//!
//! Sequence numbers of one outbound SA are taken by all TX threads of its tunnel. By
//! default ([`DataplaneOptions::ordered_tx`]) a TX thread seals and sends its batch under
//! a per-tunnel lock, so they leave in order and any replay window works (strongSwan's
//! default `replay_window` is 32); reading and splitting the TUN's super-packets stay
//! parallel, and different tunnels never wait for each other. Without it, packets of
//! different flows sealed at the same time leave out of sequence order by up to one TX
//! batch (256 packets): fine for Causeway's 4096-packet window, not for small ones.
//!
//! Everything is created in the network namespace of the thread that calls
//! [`Dataplane::new`] / [`Dataplane::add_tunnel`].

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use socket2::Socket;

use crate::batch::{enable_udp_gro, send_batch, send_gso, RecvBatch, BATCH};

pub use crate::counters::{CountersSnapshot, DropReason, TunnelCounters};
use crate::packet::{self, inbound_allowed, NEXT_HEADER_NONE};
pub use crate::sa::Encap;
use crate::sa::{InboundSa, InboundTable, OutboundSa, SaError};
use crate::tun::{poll_readable, GroTable, Tun, TunConfig, MAX_SEGMENTS, VNET_HDR_LEN};
use crate::udp::{self, Natt};

/// Bytes reserved in front of a packet read from the TUN (ESP header + IV ≤ 24).
const HEADROOM: usize = 64;
/// Bytes reserved behind it (padding + trailer + ICV ≤ 49).
const TAILROOM: usize = 128;
/// Largest packet handled.
const MAX_PACKET: usize = 65535;
/// Receive slot: a whole UDP datagram (IKE messages can be large).
const RX_SLOT: usize = 65536;
/// How often blocked workers look at the stop flag.
const POLL: Duration = Duration::from_millis(100);

/// Performance switches of a [`Dataplane`] (all on by default; each falls back by itself
/// when the kernel refuses it). [`DataplaneOptions::from_env`] reads
/// `CAUSEWAY_DP_TUN_OFFLOAD`, `CAUSEWAY_DP_UDP_GSO` and `CAUSEWAY_DP_UDP_GRO` (`0` turns one
/// off), which is what [`Dataplane::new`] uses: A/B measurements of the whole daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataplaneOptions {
    /// TUN with `IFF_VNET_HDR` + TSO/USO: read 64 KiB super-packets and split them, write
    /// coalesced (GRO) super-packets.
    pub tun_offload: bool,
    /// Send runs of equal-sized ESP-in-UDP datagrams with one `sendmsg` (`UDP_SEGMENT`).
    pub udp_gso: bool,
    /// Receive coalesced ESP-in-UDP datagrams (`UDP_GRO`) and split them.
    pub udp_gro: bool,
    /// Coalesce with tun-rs's GRO table instead of [`crate::gro`] (for comparison: it
    /// copies and allocates per packet; writes go through the first TUN queue only).
    pub tun_rs_gro: bool,
    /// Worker threads per tunnel (TUN queues) and per UDP endpoint (`SO_REUSEPORT`
    /// sockets); 0: one per core ([`std::thread::available_parallelism`]). 1 (the
    /// default, [`DEFAULT_WORKERS`]) is the single-queue dataplane.
    pub workers: usize,
    /// With several workers: seal and send one batch at a time per tunnel, so that ESP
    /// sequence numbers leave in order (a peer with a small replay window, e.g.
    /// strongSwan's default of 32 packets, drops packets that arrive more than a window
    /// late). Off: the TX workers of a tunnel seal in parallel and the numbers of packets
    /// sealed at the same time interleave (by up to one batch, 256 packets).
    pub ordered_tx: bool,
}

impl Default for DataplaneOptions {
    fn default() -> Self {
        DataplaneOptions {
            tun_offload: true,
            udp_gso: true,
            udp_gro: true,
            tun_rs_gro: false,
            workers: DEFAULT_WORKERS,
            ordered_tx: true,
        }
    }
}

/// [`DataplaneOptions::workers`] by default: one. Measured on the 2-core benchmark machine
/// (`benches/tunnel/run.sh`, `cw-cw-1w` vs `cw-cw-nw`, same run, median of 7): one worker
/// per core was faster for 64-byte UDP (66 vs 42 kpps) but not for TCP (1 stream 2.61 vs
/// 3.42 Gbit/s, 4 streams 2.34 vs 2.65; very noisy), so several workers are an option
/// (`CAUSEWAY_DP_WORKERS=0` or `=n`), not the default.
pub const DEFAULT_WORKERS: usize = 1;

impl DataplaneOptions {
    /// Defaults, with `CAUSEWAY_DP_<SWITCH>=0` turning a switch off
    /// (`CAUSEWAY_DP_TUN_RS_GRO=1` turns [`DataplaneOptions::tun_rs_gro`] on) and
    /// `CAUSEWAY_DP_WORKERS=<n>` setting [`DataplaneOptions::workers`] (0: one per core;
    /// `CAUSEWAY_DP_TX_ORDERED=0` turns [`DataplaneOptions::ordered_tx`] off).
    pub fn from_env() -> Self {
        let on = |k: &str| std::env::var(k).map_or(true, |v| v.trim() != "0");
        DataplaneOptions {
            tun_offload: on("CAUSEWAY_DP_TUN_OFFLOAD"),
            udp_gso: on("CAUSEWAY_DP_UDP_GSO"),
            udp_gro: on("CAUSEWAY_DP_UDP_GRO"),
            tun_rs_gro: std::env::var("CAUSEWAY_DP_TUN_RS_GRO").is_ok_and(|v| v.trim() == "1"),
            workers: std::env::var("CAUSEWAY_DP_WORKERS")
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(DEFAULT_WORKERS),
            ordered_tx: on("CAUSEWAY_DP_TX_ORDERED"),
        }
    }

    /// The number of workers these options give on this machine (at least 1, at most
    /// [`crate::tun::MAX_QUEUES`]).
    pub fn worker_count(&self) -> usize {
        let n = if self.workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.workers
        };
        n.clamp(1, crate::tun::MAX_QUEUES)
    }
}

/// An IKE message received on a port-4500 endpoint (non-ESP marker already stripped).
#[derive(Clone, Copy, Debug)]
pub struct IkeDatagram<'a> {
    /// Our address/port it arrived on.
    pub local: SocketAddr,
    /// The sender.
    pub peer: SocketAddr,
    /// The IKE message (starts with the IKE header).
    pub msg: &'a [u8],
}

/// Callback for IKE messages on port 4500. Called on a worker thread: must not block
/// (e.g. copy into a `tokio::sync::mpsc` channel with `try_send`/`send`).
pub type IkeSink = Arc<dyn Fn(IkeDatagram<'_>) + Send + Sync>;

/// How to set up a tunnel's dataplane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelConfig {
    /// The TUN device (name, MTU, addresses).
    pub tun: TunConfig,
    /// Our outer address: the endpoint ([`Dataplane::open_endpoint`]) bound to it (or to
    /// the unspecified address of its family) sends this tunnel's ESP.
    pub local: IpAddr,
    /// Clamp the MSS of TCP SYNs in both directions to this value.
    pub mss_clamp: Option<u16>,
}

struct OutboundEntry {
    sa: OutboundSa,
    /// The endpoint's sockets (TX worker `q` sends on `udp[q % len]`); empty for raw ESP.
    udp: Vec<Arc<UdpSocket>>,
    raw: Option<Arc<Socket>>,
}

struct TunnelShared {
    /// The TUN device's queues (at least one); TX worker `q` reads `queues[q]`.
    queues: Vec<Tun>,
    /// The tunnel MTU: longer inner packets get an ICMP error ([`packet::icmp_too_big`]).
    mtu: usize,
    /// Packets sent by each TX worker (one atomic addition per batch).
    queue_packets_out: Vec<AtomicU64>,
    /// With several TX workers and [`DataplaneOptions::ordered_tx`]: held while a worker
    /// seals and sends a batch, so the outbound SA's sequence numbers leave in order
    /// (reading and splitting the TUN's packets stay parallel).
    tx_order: Option<Mutex<()>>,
    local: IpAddr,
    mss_clamp: Option<u16>,
    counters: TunnelCounters,
    outbound: ArcSwapOption<OutboundEntry>,
    stop: AtomicBool,
    /// UDP GSO still to be tried (cleared when the kernel refuses it).
    gso: AtomicBool,
    acquire: ArcSwapOption<AcquireHook>,
    /// Milliseconds after `created` of the last acquire call (0: never).
    last_acquire_ms: AtomicU64,
    created: Instant,
    /// Generation of `outbound` (unique across all tunnels, [`next_peer_gen`]), bumped by
    /// every [`Tunnel::set_outbound`]: an RX worker that found a source address needing no
    /// action under one generation skips the check until it changes ([`KnownSource`]).
    peer_gen: AtomicU64,
    /// NAT rebinding seen by the RX workers (touched only when a packet's source differs
    /// from the outbound SA's peer, never per packet otherwise).
    peer_move: Mutex<PeerMove>,
    peer_move_hook: ArcSwapOption<PeerMoveHook>,
}

/// A tunnel's record of the peer's latest move.
#[derive(Default)]
struct PeerMove {
    /// Not yet taken by [`Tunnel::take_peer_move`]: (our inbound SPI, the new source).
    pending: Option<(u32, SocketAddr)>,
    /// The last move recorded, with the outbound generation it was seen under: reported
    /// once, also when several RX workers see it.
    reported: Option<(u64, SocketAddr)>,
}

/// Called (on an RX worker thread, rarely) when authenticated ESP shows that the peer
/// moved ([`Tunnel::take_peer_move`] has the move, once): our inbound SPI and the new
/// source address. Must not block (e.g. `tokio::sync::Notify::notify_one`).
pub type PeerMoveHook = Box<dyn Fn(u32, SocketAddr) + Send + Sync>;

/// Source of [`TunnelShared::peer_gen`] values (0 is never handed out: "none").
static PEER_GEN: AtomicU64 = AtomicU64::new(1);

fn next_peer_gen() -> u64 {
    PEER_GEN.fetch_add(1, Ordering::Relaxed)
}

/// Per RX worker: the last (outbound generation, ESP source) found to need nothing (it is
/// the peer's address, or its move was already reported). The per-packet check is one
/// relaxed load and a comparison.
type KnownSource = Option<(u64, SocketAddr)>;

/// Called (on the tunnel's TX thread) when a packet needs an outbound SA and there is
/// none: the daemon starts IKE (`start_action = trap`). At most once per
/// [`ACQUIRE_INTERVAL`]; must not block.
pub type AcquireHook = Box<dyn Fn(AcquireInfo) + Send + Sync>;

/// The packet that triggered an acquire (for choosing narrowed traffic selectors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcquireInfo {
    /// Inner source address.
    pub src: IpAddr,
    /// Inner destination address.
    pub dst: IpAddr,
}

/// Least time between two acquire calls of one tunnel.
pub const ACQUIRE_INTERVAL: Duration = Duration::from_secs(1);

struct InboundEntry {
    sa: InboundSa,
    tunnel: Arc<TunnelShared>,
}

struct Endpoint {
    /// One `SO_REUSEPORT` socket per RX worker (at least one), all bound to `local`.
    socks: Vec<Arc<UdpSocket>>,
    local: SocketAddr,
}

struct Inner {
    inbound: InboundTable<InboundEntry>,
    endpoints: Mutex<Vec<Endpoint>>,
    raw: Mutex<HashMap<IpAddr, Arc<Socket>>>,
    ike_sink: IkeSink,
    /// Drops that belong to no tunnel (unknown SPI, malformed datagrams).
    counters: TunnelCounters,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    opts: DataplaneOptions,
}

/// The running dataplane. Dropping it (or [`Dataplane::shutdown`]) stops the endpoint
/// threads; tunnels stop when their [`Tunnel`] handle is dropped.
pub struct Dataplane {
    inner: Arc<Inner>,
}

/// A tunnel's dataplane: its TUN device, TX workers, outbound SA slot and counters.
/// Dropping it stops the workers, removes its inbound SAs and deletes the TUN device.
pub struct Tunnel {
    shared: Arc<TunnelShared>,
    inner: Arc<Inner>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Dataplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataplane")
            .field("inbound", &self.inner.inbound)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnel")
            .field("tun", self.shared.tun())
            .field("queues", &self.shared.queues.len())
            .field("local", &self.shared.local)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Dataplane {
    /// A dataplane with no endpoints and no tunnels. IKE messages arriving on port 4500
    /// go to `ike_sink`.
    pub fn new(ike_sink: IkeSink) -> Self {
        Self::with_options(ike_sink, DataplaneOptions::from_env())
    }

    /// Like [`Dataplane::new`] with explicit performance switches.
    pub fn with_options(ike_sink: IkeSink, opts: DataplaneOptions) -> Self {
        Dataplane {
            inner: Arc::new(Inner {
                inbound: InboundTable::default(),
                endpoints: Mutex::new(Vec::new()),
                raw: Mutex::new(HashMap::new()),
                ike_sink,
                counters: TunnelCounters::default(),
                stop: Arc::new(AtomicBool::new(false)),
                threads: Mutex::new(Vec::new()),
                opts,
            }),
        }
    }

    /// Binds UDP sockets for ESP-in-UDP and IKE on `local` (normally port 4500; port 0
    /// picks one, for tests): one per worker, with `SO_REUSEPORT` when there are several
    /// ([`udp::bind_udp_reuseport`]), and starts their receive workers. Returns the bound
    /// address.
    pub fn open_endpoint(&self, local: SocketAddr) -> io::Result<SocketAddr> {
        let n = self.inner.opts.worker_count();
        let first = if n > 1 {
            udp::bind_udp_reuseport(local)?
        } else {
            udp::bind_udp(local)?
        };
        let bound = first.local_addr()?;
        let mut socks = vec![Arc::new(first)];
        while socks.len() < n {
            match udp::bind_udp_reuseport(bound) {
                Ok(s) => socks.push(Arc::new(s)),
                Err(e) => {
                    tracing::warn!(%bound, "SO_REUSEPORT socket refused ({e}); {} RX workers", socks.len());
                    break;
                }
            }
        }
        lock(&self.inner.endpoints).push(Endpoint {
            socks: socks.clone(),
            local: bound,
        });
        for (i, sock) in socks.into_iter().enumerate() {
            let gro = self.inner.opts.udp_gro && enable_udp_gro(sock.as_raw_fd()).is_ok();
            let inner = Arc::clone(&self.inner);
            let h = std::thread::Builder::new()
                .name(format!("cw-rx{i}-{}", bound.port()))
                .spawn(move || udp_rx_loop(&inner, &sock, bound, gro))?;
            lock(&self.inner.threads).push(h);
        }
        Ok(bound)
    }

    /// Workers per tunnel and per endpoint ([`DataplaneOptions::worker_count`]).
    pub fn workers(&self) -> usize {
        self.inner.opts.worker_count()
    }

    /// Sends an IKE message on the endpoint bound to `local`'s address (or the
    /// unspecified address), with the non-ESP marker in front (RFC 3948 §2.2).
    pub fn send_ike(&self, local: IpAddr, peer: SocketAddr, msg: &[u8]) -> io::Result<()> {
        let sock = self.inner.endpoint_for(local)?;
        let mut d = Vec::with_capacity(4 + msg.len());
        d.extend_from_slice(&udp::NON_ESP_MARKER);
        d.extend_from_slice(msg);
        sock.send_to(&d, peer)?;
        Ok(())
    }

    /// Sends a NAT-keepalive (one 0xFF byte, RFC 3948 §2.3) from the endpoint of `local`.
    pub fn send_keepalive(&self, local: IpAddr, peer: SocketAddr) -> io::Result<()> {
        self.inner.endpoint_for(local)?.send_to(&[0xff], peer)?;
        Ok(())
    }

    /// Creates the tunnel's TUN device (MTU, addresses, up; one queue per worker) and
    /// starts its TX workers. Packets routed into the TUN are dropped (counted
    /// `no_outbound_sa`) until [`Tunnel::set_outbound`] installs an SA.
    pub fn add_tunnel(&self, cfg: TunnelConfig) -> io::Result<Tunnel> {
        let queues = Tun::create_queues(
            &cfg.tun,
            self.inner.opts.tun_offload,
            self.inner.opts.worker_count(),
        )?;
        for q in &queues {
            q.set_nonblocking(true)?;
        }
        let shared = Arc::new(TunnelShared {
            queue_packets_out: queues.iter().map(|_| AtomicU64::new(0)).collect(),
            tx_order: (queues.len() > 1 && self.inner.opts.ordered_tx).then(|| Mutex::new(())),
            queues,
            mtu: cfg.tun.mtu as usize,
            local: cfg.local,
            mss_clamp: cfg.mss_clamp,
            counters: TunnelCounters::default(),
            outbound: ArcSwapOption::empty(),
            stop: AtomicBool::new(false),
            gso: AtomicBool::new(self.inner.opts.udp_gso),
            acquire: ArcSwapOption::empty(),
            last_acquire_ms: AtomicU64::new(0),
            created: Instant::now(),
            peer_gen: AtomicU64::new(next_peer_gen()),
            peer_move: Mutex::new(PeerMove::default()),
            peer_move_hook: ArcSwapOption::empty(),
        });
        let mut tunnel = Tunnel {
            shared,
            inner: Arc::clone(&self.inner),
            threads: Vec::new(),
        };
        for q in 0..tunnel.shared.queues.len() {
            let (s, stop) = (Arc::clone(&tunnel.shared), Arc::clone(&self.inner.stop));
            // On failure, dropping `tunnel` stops the threads already running.
            let h = std::thread::Builder::new()
                .name(format!("cw-tx{q}-{}", cfg.tun.name))
                .spawn(move || {
                    if s.queues[q].offload() {
                        tun_tx_loop_offload(&s, q, &stop)
                    } else {
                        tun_tx_loop(&s, q, &stop)
                    }
                })?;
            tunnel.threads.push(h);
        }
        Ok(tunnel)
    }

    /// Installs (or replaces) an inbound SA for `tunnel`, keyed by its SPI. Install the
    /// new inbound SA before switching the outbound one (make-before-break).
    pub fn install_inbound(&self, tunnel: &Tunnel, sa: InboundSa) {
        let spi = sa.esp.spi();
        self.inner.inbound.insert(
            spi,
            Arc::new(InboundEntry {
                sa,
                tunnel: Arc::clone(&tunnel.shared),
            }),
        );
    }

    /// Removes an inbound SA; returns whether it was installed.
    pub fn remove_inbound(&self, spi: u32) -> bool {
        self.inner.inbound.remove(spi)
    }

    /// Number of installed inbound SAs.
    pub fn inbound_count(&self) -> usize {
        self.inner.inbound.len()
    }

    /// Drops that belong to no tunnel: unknown SPIs, malformed datagrams.
    pub fn global_counters(&self) -> CountersSnapshot {
        self.inner.counters.snapshot()
    }

    /// Stops and joins the endpoint/raw-ESP workers (tunnels' TX workers stop too).
    pub fn shutdown(&self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        let threads: Vec<_> = lock(&self.inner.threads).drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Inner {
    /// The first socket of the endpoint for `local` (IKE, keepalives).
    fn endpoint_for(&self, local: IpAddr) -> io::Result<Arc<UdpSocket>> {
        let socks = self.endpoint_socks(local)?;
        socks
            .into_iter()
            .next()
            .ok_or_else(|| io::Error::other("endpoint without a socket"))
    }

    /// All sockets of the endpoint for `local` (one per RX worker).
    fn endpoint_socks(&self, local: IpAddr) -> io::Result<Vec<Arc<UdpSocket>>> {
        let eps = lock(&self.endpoints);
        eps.iter()
            .find(|e| e.local.ip() == local)
            .or_else(|| {
                eps.iter()
                    .find(|e| e.local.ip().is_unspecified() && e.local.is_ipv4() == local.is_ipv4())
            })
            .filter(|e| !e.socks.is_empty())
            .map(|e| e.socks.clone())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no UDP endpoint open for {local}"),
                )
            })
    }

    fn raw_for(self: &Arc<Self>, local: IpAddr) -> io::Result<Arc<Socket>> {
        let mut raws = lock(&self.raw);
        if let Some(s) = raws.get(&local) {
            return Ok(Arc::clone(s));
        }
        let sock = Arc::new(udp::raw_esp_socket(local)?);
        raws.insert(local, Arc::clone(&sock));
        let (inner, s) = (Arc::clone(self), Arc::clone(&sock));
        let h = std::thread::Builder::new()
            .name("cw-esp-rx".into())
            .spawn(move || raw_rx_loop(&inner, &s, local))?;
        lock(&self.threads).push(h);
        Ok(sock)
    }

    /// Opens one ESP packet at `buf[range]`, received from `from` (ESP in UDP; `None`
    /// for raw ESP), and delivers it (through `w`).
    fn handle_esp(
        &self,
        buf: &mut [u8],
        range: std::ops::Range<usize>,
        from: Option<SocketAddr>,
        known: &mut KnownSource,
        w: &mut TunWriter,
    ) {
        let Some(spi) = buf.get(range.clone()).and_then(udp::esp_spi) else {
            self.counters.drop(DropReason::Malformed);
            return;
        };
        let Some(entry) = self.inbound.get(spi) else {
            self.counters.drop(DropReason::UnknownSpi);
            return;
        };
        let t = &entry.tunnel;
        let opened = match entry.sa.esp.open(buf, range) {
            Ok(o) => o,
            Err(SaError::Replay) => return t.counters.drop(DropReason::Replay),
            Err(SaError::Malformed) => return t.counters.drop(DropReason::Malformed),
            Err(_) => return t.counters.drop(DropReason::AuthFailed),
        };
        // Authenticated and not a replay: a new source may be the peer's NAT rebinding.
        if let Some(from) = from {
            let gen = t.peer_gen.load(Ordering::Acquire);
            if *known != Some((gen, from))
                && t.check_source(gen, from, spi, opened.seq, &*entry.sa.esp)
            {
                *known = Some((gen, from));
            }
        }
        if opened.next_header == NEXT_HEADER_NONE {
            return; // dummy packet (TFC), RFC 4303 §2.6
        }
        let Some(inner_pkt) = buf.get_mut(opened.payload) else {
            return t.counters.drop(DropReason::Malformed);
        };
        if !inbound_allowed(
            inner_pkt,
            opened.next_header,
            &entry.sa.local_ts,
            &entry.sa.remote_ts,
        ) {
            return t.counters.drop(DropReason::Policy);
        }
        if let Some(mss) = t.mss_clamp {
            if packet::clamp_mss(inner_pkt, mss) {
                t.counters.mss_clamped.fetch_add(1, Ordering::Relaxed);
            }
        }
        w.push(t, inner_pkt);
    }
}

/// Most packets a [`TunWriter`] collects before writing them.
const WRITE_BATCH: usize = MAX_SEGMENTS;

/// Writes opened packets to their tunnel's TUN: directly on a plain device; collected and
/// coalesced (GRO, [`crate::gro`]) into super-packets on an offload device, written at
/// [`TunWriter::flush`].
struct TunWriter {
    coalescer: crate::gro::Coalescer,
    /// The tun-rs alternative ([`DataplaneOptions::tun_rs_gro`]): packet copies at
    /// `VNET_HDR_LEN..`, capacity for a whole super-packet up front (tun-rs does not
    /// coalesce into a buffer that would have to grow).
    bufs: Vec<Vec<u8>>,
    used: usize,
    gro: GroTable,
    /// The tunnel the collected packets belong to.
    tunnel: Option<Arc<TunnelShared>>,
    /// Packets and inner bytes collected (counted at the flush).
    pkts: u64,
    bytes: u64,
}

impl TunWriter {
    fn new(tun_rs_gro: bool) -> Self {
        let n = if tun_rs_gro { WRITE_BATCH } else { 0 };
        TunWriter {
            coalescer: crate::gro::Coalescer::new(if tun_rs_gro { 1 } else { WRITE_BATCH }),
            bufs: (0..n)
                .map(|_| Vec::with_capacity(2 * VNET_HDR_LEN + MAX_PACKET + 1))
                .collect(),
            used: 0,
            gro: GroTable::default(),
            tunnel: None,
            pkts: 0,
            bytes: 0,
        }
    }

    fn push(&mut self, t: &Arc<TunnelShared>, pkt: &[u8]) {
        if !t.tun().offload() {
            match t.queue_for(pkt).send(pkt) {
                Ok(_) => t.counters.count_in(pkt.len()),
                Err(_) => t.counters.drop(DropReason::IoError),
            }
            return;
        }
        let full = if self.bufs.is_empty() {
            self.coalescer.is_full()
        } else {
            self.used == self.bufs.len()
        };
        if full || self.tunnel.as_ref().is_some_and(|c| !Arc::ptr_eq(c, t)) {
            self.flush();
        }
        if self.tunnel.is_none() {
            self.tunnel = Some(Arc::clone(t));
        }
        if self.bufs.is_empty() {
            self.coalescer.set_udp(t.tun().udp_offload());
            self.coalescer.push(pkt);
        } else {
            let b = &mut self.bufs[self.used];
            b.clear();
            b.resize(VNET_HDR_LEN, 0);
            b.extend_from_slice(pkt);
            self.used += 1;
        }
        self.pkts += 1;
        self.bytes += pkt.len() as u64;
    }

    fn flush(&mut self) {
        let Some(t) = self.tunnel.take() else {
            return;
        };
        t.counters.count_in_batch(self.pkts, self.bytes);
        (self.pkts, self.bytes) = (0, 0);
        if self.bufs.is_empty() {
            // Each frame is one flow (or one packet): into the queue of its flow.
            let failed = self
                .coalescer
                .flush(|f| t.queue_for(f.get(VNET_HDR_LEN..).unwrap_or(&[])).send(f));
            for _ in 0..failed {
                t.counters.drop(DropReason::IoError);
            }
            return;
        }
        let n = std::mem::take(&mut self.used);
        if t.tun()
            .send_multiple(&mut self.gro, &mut self.bufs[..n], VNET_HDR_LEN)
            .is_err()
        {
            t.counters.drop(DropReason::IoError);
        }
    }
}

fn udp_rx_loop(inner: &Inner, sock: &UdpSocket, local: SocketAddr, gro: bool) {
    let mut rb = if gro {
        RecvBatch::with_gro(BATCH, RX_SLOT)
    } else {
        RecvBatch::new(BATCH, RX_SLOT)
    };
    let mut w = TunWriter::new(inner.opts.tun_rs_gro);
    let mut known: KnownSource = None;
    let mut busy = false;
    while !inner.stop.load(Ordering::Relaxed) {
        // Under load the socket is read again right away; poll only when it was drained.
        if !busy {
            match poll_readable(sock.as_raw_fd(), POLL) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(_) => {
                    std::thread::sleep(POLL);
                    continue;
                }
            }
        }
        let count = match rb.recv(sock.as_raw_fd()) {
            Ok(n) => n,
            Err(_) => {
                busy = false;
                continue;
            }
        };
        busy = count == BATCH;
        for i in 0..count {
            let seg = rb.segment_size(i);
            let Some((buf, n, from, truncated)) = rb.get(i) else {
                continue;
            };
            let Some(peer) = from else {
                continue;
            };
            if truncated {
                inner.counters.drop(DropReason::Malformed);
                continue;
            }
            // A GRO buffer holds datagrams of `seg` bytes (the last one shorter).
            let seg = seg.unwrap_or(n).max(1);
            let mut start = 0;
            while start < n {
                let end = n.min(start + seg);
                match udp::classify_natt(&buf[start..end]) {
                    Natt::Ike(msg) => (inner.ike_sink)(IkeDatagram { local, peer, msg }),
                    Natt::Keepalive => {}
                    Natt::Invalid => inner.counters.drop(DropReason::Malformed),
                    Natt::Esp(_) => {
                        inner.handle_esp(buf, start..end, Some(peer), &mut known, &mut w)
                    }
                }
                start = end;
            }
        }
        w.flush();
    }
}

fn raw_rx_loop(inner: &Inner, sock: &Socket, local: IpAddr) {
    let mut rb = RecvBatch::new(BATCH, RX_SLOT);
    let mut w = TunWriter::new(inner.opts.tun_rs_gro);
    let mut known: KnownSource = None;
    let mut busy = false;
    while !inner.stop.load(Ordering::Relaxed) {
        // Under load the socket is read again right away; poll only when it was drained.
        if !busy {
            match poll_readable(sock.as_raw_fd(), POLL) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(_) => {
                    std::thread::sleep(POLL);
                    continue;
                }
            }
        }
        let count = match rb.recv(sock.as_raw_fd()) {
            Ok(n) => n,
            Err(_) => {
                busy = false;
                continue;
            }
        };
        busy = count == BATCH;
        for i in 0..count {
            let Some((buf, n, _from, truncated)) = rb.get(i) else {
                continue;
            };
            if truncated {
                inner.counters.drop(DropReason::Malformed);
                continue;
            }
            let start = if local.is_ipv4() {
                match udp::strip_ipv4_header(&buf[..n]) {
                    Some(rest) => n - rest.len(),
                    None => {
                        inner.counters.drop(DropReason::Malformed);
                        continue;
                    }
                }
            } else {
                0
            };
            inner.handle_esp(buf, start..n, None, &mut known, &mut w);
        }
        w.flush();
    }
}

fn tun_tx_loop(t: &TunnelShared, q: usize, global_stop: &AtomicBool) {
    let Some(tun) = t.queues.get(q) else {
        return;
    };
    let mut icmp = IcmpLimiter::default();
    let mut slots: Vec<Vec<u8>> = (0..BATCH)
        .map(|_| vec![0u8; HEADROOM + MAX_PACKET + TAILROOM])
        .collect();
    // For each packet ready to send: its slot, the ESP packet's range, the inner length.
    let mut sealed: [(usize, Range<usize>, usize); BATCH] = std::array::from_fn(|_| (0, 0..0, 0));
    let mut busy = false;
    while !t.stop.load(Ordering::Relaxed) && !global_stop.load(Ordering::Relaxed) {
        // Under load the TUN is read again right away; poll only when it was drained.
        if !busy {
            match tun.wait_readable(POLL) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(_) => {
                    std::thread::sleep(POLL);
                    continue;
                }
            }
        }
        let guard = t.outbound.load();
        let _order = t.tx_order.as_ref().map(lock);
        // Read and seal up to BATCH packets (the TUN is non-blocking).
        let mut ready = 0;
        let mut read = 0;
        for (i, slot) in slots.iter_mut().enumerate() {
            let n = match tun.recv(&mut slot[HEADROOM..HEADROOM + MAX_PACKET]) {
                Ok(n) => n,
                Err(_) => break,
            };
            read += 1;
            if let Some(r) = seal_one(t, tun, &mut icmp, guard.as_deref(), slot, n) {
                sealed[ready] = (i, r, n);
                ready += 1;
            }
        }
        busy = read == BATCH;
        if let Some(out) = guard.as_deref() {
            send_sealed(t, q, out, &slots, &sealed[..ready]);
        }
    }
}

/// Packet slots of the offload TX loop: room for two full splits.
const TX_SLOTS: usize = 2 * MAX_SEGMENTS;

/// The TX loop of an offload TUN: one read yields a whole TCP/UDP super-packet, split
/// into MTU-sized packets; up to [`MAX_SEGMENTS`] reads (or until the slots are nearly
/// full) are sealed and sent together (UDP GSO where it applies). Slots hold packets of
/// up to `max(mtu, 1500)` bytes (the MTU the tunnel was created with); larger ones are
/// dropped.
fn tun_tx_loop_offload(t: &TunnelShared, q: usize, global_stop: &AtomicBool) {
    let Some(tun) = t.queues.get(q) else {
        return;
    };
    let mut icmp = IcmpLimiter::default();
    let mut scratch = vec![0u8; VNET_HDR_LEN + MAX_PACKET];
    let slot_len = HEADROOM + t.mtu.max(1500) + TAILROOM;
    let mut slots: Vec<Vec<u8>> = (0..TX_SLOTS).map(|_| vec![0u8; slot_len]).collect();
    let mut sizes = vec![0usize; TX_SLOTS];
    let mut sealed: Vec<(usize, Range<usize>, usize)> = vec![(0, 0..0, 0); TX_SLOTS];
    let mut busy = false;
    while !t.stop.load(Ordering::Relaxed) && !global_stop.load(Ordering::Relaxed) {
        if !busy {
            match tun.wait_readable(POLL) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(_) => {
                    std::thread::sleep(POLL);
                    continue;
                }
            }
        }
        let guard = t.outbound.load();
        let (mut filled, mut reads, mut drained) = (0, 0, false);
        while TX_SLOTS - filled >= MAX_SEGMENTS && reads < MAX_SEGMENTS {
            reads += 1;
            match tun.recv_multiple(
                &mut scratch,
                &mut slots[filled..],
                &mut sizes[filled..],
                HEADROOM,
            ) {
                Ok(k) => filled += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    drained = true;
                    break;
                }
                // Too big for a slot, or a malformed offload header: that frame is gone.
                Err(_) => t.counters.drop(DropReason::Malformed),
            }
        }
        busy = !drained;
        // Seal and send in sequence-number order across the TX workers (see `tx_order`).
        let _order = t.tx_order.as_ref().map(lock);
        let mut ready = 0;
        for (i, slot) in slots[..filled].iter_mut().enumerate() {
            if let Some(r) = seal_one(t, tun, &mut icmp, guard.as_deref(), slot, sizes[i]) {
                sealed[ready] = (i, r, sizes[i]);
                ready += 1;
            }
        }
        if let Some(out) = guard.as_deref() {
            send_sealed(t, q, out, &slots, &sealed[..ready]);
        }
    }
}

/// Sends sealed ESP packets (`slots[i][range]`, inner length for the counters) to the
/// outbound SA's peer from TX worker `q`'s socket: UDP GSO runs when enabled, `sendmmsg`
/// otherwise.
fn send_sealed(
    t: &TunnelShared,
    q: usize,
    out: &OutboundEntry,
    slots: &[Vec<u8>],
    sealed: &[(usize, Range<usize>, usize)],
) {
    if sealed.is_empty() {
        return;
    }
    let mut refs: [&[u8]; TX_SLOTS] = [&[]; TX_SLOTS];
    let ready = sealed.len().min(TX_SLOTS);
    for (p, (i, r, _)) in refs.iter_mut().zip(&sealed[..ready]) {
        *p = slots.get(*i).and_then(|s| s.get(r.clone())).unwrap_or(&[]);
    }
    let pkts = &refs[..ready];
    let (fd, to) = match (out.sa.encap, &out.udp, &out.raw) {
        (Encap::Udp, udp, _) if !udp.is_empty() => (udp[q % udp.len()].as_raw_fd(), out.sa.peer),
        (Encap::Esp, _, Some(s)) => (s.as_raw_fd(), SocketAddr::new(out.sa.peer.ip(), 0)),
        _ => {
            for _ in 0..ready {
                t.counters.drop(DropReason::IoError);
            }
            return;
        }
    };
    let (sent, err) = if out.sa.encap == Encap::Udp && t.gso.load(Ordering::Relaxed) {
        match send_gso(fd, pkts, to) {
            (n, Some(e)) if gso_refused(&e) => {
                // The kernel (or the route's device) cannot do UDP GSO: stop trying.
                t.gso.store(false, Ordering::Relaxed);
                tracing::debug!("UDP GSO refused ({e}); using sendmmsg");
                let (m, e2) = send_batch(fd, &pkts[n..], to);
                (n + m, e2)
            }
            r => r,
        }
    } else {
        send_batch(fd, pkts, to)
    };
    let bytes: usize = sealed[..sent].iter().map(|(_, _, n)| n).sum();
    t.counters.count_out_batch(sent as u64, bytes as u64);
    if let Some(c) = t.queue_packets_out.get(q) {
        c.fetch_add(sent as u64, Ordering::Relaxed);
    }
    if let Some(e) = err {
        // The failed packet is dropped; the rest of the batch too (rare: the socket
        // buffer is large and blocking).
        let reason = if e.raw_os_error() == Some(libc::EMSGSIZE) {
            DropReason::TooBig
        } else {
            DropReason::IoError
        };
        for _ in sent..ready {
            t.counters.drop(reason);
        }
    }
}

/// Errors by which the kernel says it cannot do UDP GSO here.
fn gso_refused(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::EIO | libc::ENOPROTOOPT | libc::EOPNOTSUPP)
    )
}

/// Checks, clamps and seals the packet at `slot[HEADROOM..HEADROOM + n]` read from the
/// TUN queue `tun`; returns the ESP packet's range, or `None` (counted) when it is
/// dropped. A packet longer than the tunnel MTU that may not be fragmented is answered
/// with an ICMP error written back into `tun` ([`answer_too_big`]).
fn seal_one(
    t: &TunnelShared,
    tun: &Tun,
    icmp: &mut IcmpLimiter,
    out: Option<&OutboundEntry>,
    slot: &mut [u8],
    n: usize,
) -> Option<Range<usize>> {
    let payload = HEADROOM..HEADROOM + n;
    let Some(info) = slot.get(payload.clone()).and_then(packet::ip_info) else {
        t.counters.drop(DropReason::Malformed);
        return None;
    };
    if packet::is_link_scoped(&info) {
        // Router solicitations, MLD, ...: never tunneled, not worth a counter.
        return None;
    }
    if n > t.mtu && packet::needs_too_big(&slot[payload.clone()]) {
        t.counters.drop(DropReason::TooBig);
        answer_too_big(t, tun, icmp, &info, &slot[payload]);
        return None;
    }
    if let Some(mss) = t.mss_clamp {
        if packet::clamp_mss(&mut slot[payload.clone()], mss) {
            t.counters.mss_clamped.fetch_add(1, Ordering::Relaxed);
        }
    }
    let Some(out) = out else {
        t.counters.drop(DropReason::NoOutboundSa);
        t.acquire(&info);
        return None;
    };
    match out.sa.esp.seal(slot, payload, info.next_header) {
        Ok(r) => Some(r),
        Err(_) => {
            t.counters.drop(DropReason::SealFailed);
            None
        }
    }
}

/// ICMP errors one TX worker may write per [`ICMP_WINDOW`] (a flood of oversize packets
/// must not turn into a flood of TUN writes; the sender reacts to the first ones).
const ICMP_PER_WINDOW: u32 = 100;
/// See [`ICMP_PER_WINDOW`].
const ICMP_WINDOW: Duration = Duration::from_millis(100);

/// Rate limit of [`answer_too_big`], one per TX worker.
#[derive(Default)]
struct IcmpLimiter {
    start: Option<Instant>,
    sent: u32,
}

impl IcmpLimiter {
    fn allow(&mut self) -> bool {
        let now = Instant::now();
        if self
            .start
            .is_none_or(|s| now.duration_since(s) >= ICMP_WINDOW)
        {
            self.start = Some(now);
            self.sent = 0;
        }
        self.sent += 1;
        self.sent <= ICMP_PER_WINDOW
    }
}

/// Writes an ICMP "fragmentation needed" (IPv4) / ICMPv6 "packet too big" answer to
/// `pkt` into the TUN queue it came from, announcing the tunnel MTU (path MTU discovery
/// for the hosts behind the gateway and for the gateway itself). Its source is the
/// packet's destination, as if the path towards it had answered: an address of the
/// gateway itself would be a martian when it comes back in through the TUN.
fn answer_too_big(
    t: &TunnelShared,
    tun: &Tun,
    icmp: &mut IcmpLimiter,
    info: &packet::IpInfo,
    pkt: &[u8],
) {
    if info.dst.is_multicast() || !icmp.allow() {
        return;
    }
    // The longest answer is IPv6's (1280 bytes); on the stack, no allocation.
    let mut frame = [0u8; VNET_HDR_LEN + 1280];
    // An offload device takes a virtio-net header (all zero: no GSO, checksum done).
    let off = if tun.offload() { VNET_HDR_LEN } else { 0 };
    let mtu = u16::try_from(t.mtu).unwrap_or(u16::MAX);
    let Some(n) = packet::icmp_too_big(pkt, mtu, info.dst, &mut frame[off..]) else {
        return;
    };
    if tun.send(&frame[..off + n]).is_ok() {
        t.counters.icmp_too_big.fetch_add(1, Ordering::Relaxed);
    }
}

impl TunnelShared {
    /// Queue 0 of the TUN device (name, ifindex, offload flags).
    fn tun(&self) -> &Tun {
        &self.queues[0]
    }

    /// The TUN queue for the IP packet `pkt` (by its flow: [`packet::flow_hash`]).
    fn queue_for(&self, pkt: &[u8]) -> &Tun {
        match self.queues.len() {
            1 => &self.queues[0],
            n => &self.queues[packet::flow_hash(pkt) as usize % n],
        }
    }

    /// ESP from `from` passed authentication and the replay check on our inbound SA
    /// `spi` (`sa`, sequence number `seq`), under outbound generation `gen`. When `from`
    /// is not where the outbound SA (UDP) sends to and the packet is the newest the SA has
    /// accepted (an older one, in the window but not seen yet, may be a copy an attacker
    /// held back and resends from elsewhere), records the move for
    /// [`Tunnel::take_peer_move`] (once per source and generation), counts it and calls
    /// the hook. Returns whether `from` needs no more checks under `gen`.
    #[cold]
    #[inline(never)]
    fn check_source(
        &self,
        gen: u64,
        from: SocketAddr,
        spi: u32,
        seq: u64,
        sa: &dyn crate::sa::EspInbound,
    ) -> bool {
        let out = self.outbound.load();
        let Some(out) = out.as_deref() else {
            return true; // nothing to compare with; `set_outbound` changes `gen`
        };
        if out.sa.encap != Encap::Udp
            || (out.sa.peer.ip() == from.ip() && out.sa.peer.port() == from.port())
        {
            return true;
        }
        if sa.highest_seq() != seq {
            return false;
        }
        {
            let mut m = lock(&self.peer_move);
            if m.reported == Some((gen, from)) {
                return true;
            }
            m.reported = Some((gen, from));
            m.pending = Some((spi, from));
        }
        self.counters.peer_moves.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(tunnel = %self.tun().name(), spi = %format_args!("{spi:#010x}"), %from, peer = %out.sa.peer, "ESP from a new peer address");
        if let Some(hook) = self.peer_move_hook.load().as_ref() {
            hook(spi, from);
        }
        true
    }

    fn acquire(&self, info: &packet::IpInfo) {
        let guard = self.acquire.load();
        let Some(hook) = guard.as_ref() else {
            return;
        };
        // +1 so that 0 keeps meaning "never".
        let now = self.created.elapsed().as_millis() as u64 + 1;
        let last = self.last_acquire_ms.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < ACQUIRE_INTERVAL.as_millis() as u64 {
            return;
        }
        // Several TX workers may get here at once: one of them calls the hook.
        if self
            .last_acquire_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        hook(AcquireInfo {
            src: info.src,
            dst: info.dst,
        });
    }
}

impl Tunnel {
    /// Sets (or clears) the hook called when traffic needs an SA that is not there
    /// (on-demand tunnels, `start_action = trap`).
    pub fn set_acquire_hook(&self, hook: Option<AcquireHook>) {
        self.shared.acquire.store(hook.map(Arc::new));
    }

    /// Interface name of the TUN device.
    pub fn name(&self) -> &str {
        self.shared.tun().name()
    }

    /// Number of TUN queues (= TX workers) of this tunnel.
    pub fn queues(&self) -> usize {
        self.shared.queues.len()
    }

    /// Packets sent so far by each TX worker (index = TUN queue): how the kernel spread
    /// the tunnel's flows over the workers.
    pub fn queue_packets_out(&self) -> Vec<u64> {
        self.shared
            .queue_packets_out
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// Interface index of the TUN device (for [`crate::Route::dev`]).
    pub fn ifindex(&self) -> u32 {
        self.shared.tun().ifindex()
    }

    /// Live counters.
    pub fn counters(&self) -> CountersSnapshot {
        self.shared.counters.snapshot()
    }

    /// Switches the outbound SA atomically (`None`: stop sending; packets are dropped
    /// and counted). For [`Encap::Udp`] an endpoint for the tunnel's local address must
    /// be open; for [`Encap::Esp`] a raw ESP socket is opened on first use.
    pub fn set_outbound(&self, sa: Option<OutboundSa>) -> io::Result<()> {
        let Some(sa) = sa else {
            self.shared.outbound.store(None);
            self.shared
                .peer_gen
                .store(next_peer_gen(), Ordering::Release);
            return Ok(());
        };
        let local = self.shared.local;
        if sa.peer.is_ipv4() != local.is_ipv4() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "peer and local address families differ",
            ));
        }
        let (udp, raw) = match sa.encap {
            Encap::Udp => (self.inner.endpoint_socks(local)?, None),
            Encap::Esp => (Vec::new(), Some(self.inner.raw_for(local)?)),
        };
        self.shared
            .outbound
            .store(Some(Arc::new(OutboundEntry { sa, udp, raw })));
        // After the store: a worker that read the old generation re-checks.
        self.shared
            .peer_gen
            .store(next_peer_gen(), Ordering::Release);
        Ok(())
    }

    /// The peer's latest move, once: (our inbound SPI, the new source address) of an
    /// ESP-in-UDP packet that passed authentication and the replay check, carried the
    /// highest sequence number its SA has seen, and came from another address or port
    /// than the outbound SA's peer (NAT rebinding; the kernel's `XFRM_MSG_MAPPING`).
    /// Feed it to `ikev2::Endpoint::esp_from`, which decides whether to follow (and then
    /// the daemon calls [`Tunnel::set_outbound`] with the new peer). A source is reported
    /// once per outbound SA installation; counted in
    /// [`CountersSnapshot::peer_moves`]. Raw ESP (`encap = esp`) is not watched.
    pub fn take_peer_move(&self) -> Option<(u32, SocketAddr)> {
        lock(&self.shared.peer_move).pending.take()
    }

    /// Sets (or clears) the hook called when a peer move is recorded (see
    /// [`PeerMoveHook`]; [`Tunnel::take_peer_move`] still returns it).
    pub fn set_peer_move_hook(&self, hook: Option<PeerMoveHook>) {
        self.shared.peer_move_hook.store(hook.map(Arc::new));
    }

    /// SPI of the current outbound SA, if any.
    pub fn outbound_spi(&self) -> Option<u32> {
        self.shared.outbound.load().as_ref().map(|o| o.sa.esp.spi())
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let me = Arc::as_ptr(&self.shared);
        self.inner
            .inbound
            .remove_where(|e| Arc::as_ptr(&e.tunnel) == me);
    }
}
