//! Shared two-namespace harness (tests and the iperf bench).
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use dataplane::counters::CountersSnapshot;
use dataplane::netns::NetNs;
use dataplane::sa::{Encap, InboundSa, OutboundSa};
use dataplane::tun::TunConfig;
use dataplane::worker::{Dataplane, DataplaneOptions, IkeSink, TunnelConfig};
use esp::{Direction, Sa, SaParams, Suite};
use ipnet::IpNet;

pub const SPI_AB: u32 = 0x0000_1000;
pub const SPI_BA: u32 = 0x0000_2000;
pub const KEY_AB: [u8; 36] = [0x11; 36];
pub const KEY_BA: [u8; 36] = [0x22; 36];

/// Commands to a side's dataplane thread.
pub enum Cmd {
    /// Replace the inbound SA with one whose remote TS excludes the peer.
    BreakPolicy,
    /// Send an IKE message to the peer over port 4500.
    SendIke(Vec<u8>),
    /// Install an inbound SA (SPI, key) for the peer's selector; ack when done.
    InstallInbound(u32, [u8; 36], mpsc::Sender<()>),
    /// Switch the outbound SA to (SPI, key); ack when done.
    SwitchOutbound(u32, [u8; 36], mpsc::Sender<()>),
    /// Remove an inbound SPI; ack with whether it was there.
    RemoveInbound(u32, mpsc::Sender<bool>),
    /// Re-install the inbound SA with selectors 0.0.0.0/0 and ::/0 on both ends.
    AllowAll(mpsc::Sender<()>),
    /// Report the packets sent by each TX worker (TUN queue).
    QueueStats(mpsc::Sender<Vec<u64>>),
    /// Report the tunnel's pending peer move (taken), the peer-move hook's calls so far
    /// (taken) and the counters.
    PeerMove(mpsc::Sender<PeerMoveReport>),
    /// Re-install the current outbound SA towards another peer address/port (what the
    /// daemon does when it follows a peer move); ack when done.
    SetPeer(SocketAddr, mpsc::Sender<()>),
    /// Report counters and stop.
    Stop,
}

/// Answer to [`Cmd::PeerMove`].
pub struct PeerMoveReport {
    /// `Tunnel::take_peer_move`.
    pub taken: Option<(u32, SocketAddr)>,
    /// Calls of the peer-move hook since the last report.
    pub hook_calls: Vec<(u32, SocketAddr)>,
    /// The tunnel's counters.
    pub counters: CountersSnapshot,
}

thread_local! {
    /// Options for the dataplanes of the next [`Lab`]s started on this thread (`None`:
    /// [`DataplaneOptions::from_env`]).
    pub static DP_OPTS: std::cell::Cell<Option<DataplaneOptions>> =
        const { std::cell::Cell::new(None) };
}

pub struct Side {
    pub cmd: mpsc::Sender<Cmd>,
    pub done: std::thread::JoinHandle<std::io::Result<(CountersSnapshot, CountersSnapshot)>>,
}

pub fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

#[allow(clippy::too_many_arguments)]
pub fn start_side(
    ns: &NetNs,
    name: &'static str,
    outer: IpAddr,
    peer_outer: IpAddr,
    inner: &'static str,
    peer_inner: &'static str,
    (out_spi, out_key): (u32, [u8; 36]),
    (in_spi, in_key): (u32, [u8; 36]),
    encap: Encap,
    ike_seen: Arc<Mutex<Vec<Vec<u8>>>>,
) -> Side {
    let (cmd_tx, cmd_rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::channel();
    let opts = DP_OPTS.get().unwrap_or_else(DataplaneOptions::from_env);
    let done = ns
        .spawn(move || {
            let sink: IkeSink = Arc::new(move |d| {
                ike_seen.lock().unwrap().push(d.msg.to_vec());
            });
            let dp = Dataplane::with_options(sink, opts);
            dp.open_endpoint(SocketAddr::new(outer, 4500))?;
            let tunnel = dp.add_tunnel(TunnelConfig {
                tun: TunConfig {
                    name: name.into(),
                    mtu: 1400,
                    addrs: vec![net(&format!("{inner}/24"))],
                },
                local: outer,
                mss_clamp: Some(1300),
            })?;
            let suite = Suite::AES256_GCM16;
            let inbound_with = |spi: u32, key: &[u8], remote: &str| -> std::io::Result<InboundSa> {
                let sa = Sa::from_keymat(SaParams::new(spi, Direction::Inbound, suite), key)
                    .map_err(std::io::Error::other)?;
                Ok(InboundSa {
                    esp: Arc::new(sa),
                    local_ts: vec![net(&format!("{inner}/32"))],
                    remote_ts: vec![net(remote)],
                })
            };
            let inbound = |remote: &str| inbound_with(in_spi, &in_key, remote);
            let remote_ts = format!("{peer_inner}/32");
            let outbound = |spi: u32, key: &[u8]| -> std::io::Result<OutboundSa> {
                let out = Sa::from_keymat(SaParams::new(spi, Direction::Outbound, suite), key)
                    .map_err(std::io::Error::other)?;
                Ok(OutboundSa {
                    esp: Arc::new(out),
                    peer: SocketAddr::new(peer_outer, 4500),
                    encap,
                })
            };
            dp.install_inbound(&tunnel, inbound(&remote_ts)?);
            // The outbound SA installed last (`SetPeer` keeps its sequence numbers).
            let mut current = outbound(out_spi, &out_key)?;
            tunnel.set_outbound(Some(current.clone()))?;
            let hook_calls = Arc::new(Mutex::new(Vec::new()));
            let calls = Arc::clone(&hook_calls);
            tunnel.set_peer_move_hook(Some(Box::new(move |spi, from| {
                calls.lock().unwrap().push((spi, from));
            })));
            assert_eq!(tunnel.outbound_spi(), Some(out_spi));
            ready_tx.send(()).ok();
            for cmd in cmd_rx {
                match cmd {
                    Cmd::BreakPolicy => dp.install_inbound(&tunnel, inbound("10.9.9.9/32")?),
                    Cmd::SendIke(m) => dp.send_ike(outer, SocketAddr::new(peer_outer, 4500), &m)?,
                    Cmd::InstallInbound(spi, key, ack) => {
                        dp.install_inbound(&tunnel, inbound_with(spi, &key, &remote_ts)?);
                        ack.send(()).ok();
                    }
                    Cmd::SwitchOutbound(spi, key, ack) => {
                        current = outbound(spi, &key)?;
                        tunnel.set_outbound(Some(current.clone()))?;
                        ack.send(()).ok();
                    }
                    Cmd::SetPeer(peer, ack) => {
                        current.peer = peer;
                        tunnel.set_outbound(Some(current.clone()))?;
                        ack.send(()).ok();
                    }
                    Cmd::RemoveInbound(spi, ack) => {
                        ack.send(dp.remove_inbound(spi)).ok();
                    }
                    Cmd::AllowAll(ack) => {
                        let mut sa = inbound_with(in_spi, &in_key, "0.0.0.0/0")?;
                        sa.remote_ts.push(net("::/0"));
                        sa.local_ts = vec![net("0.0.0.0/0"), net("::/0")];
                        dp.install_inbound(&tunnel, sa);
                        ack.send(()).ok();
                    }
                    Cmd::QueueStats(ack) => {
                        ack.send(tunnel.queue_packets_out()).ok();
                    }
                    Cmd::PeerMove(ack) => {
                        let report = PeerMoveReport {
                            taken: tunnel.take_peer_move(),
                            hook_calls: std::mem::take(&mut *hook_calls.lock().unwrap()),
                            counters: tunnel.counters(),
                        };
                        ack.send(report).ok();
                    }
                    Cmd::Stop => break,
                }
            }
            let counters = tunnel.counters();
            drop(tunnel);
            assert_eq!(dp.inbound_count(), 0, "tunnel drop removes its SAs");
            Ok((counters, dp.global_counters()))
        })
        .unwrap();
    if ready_rx.recv().is_err() {
        match done.join() {
            Ok(Err(e)) => panic!("side {outer} failed to start: {e}"),
            Ok(Ok(_)) => panic!("side {outer} ended early"),
            Err(p) => std::panic::resume_unwind(p),
        }
    }
    Side { cmd: cmd_tx, done }
}

/// Waits until `ns` reaches `peer` on the underlay: the veth carrier is up and the
/// neighbour resolved. Without it, the first tunneled packets can go out before the link
/// has carrier and be lost (seen with the IPv6 outer: 3 sealed, 0 received).
fn wait_underlay(ns: &NetNs, peer: IpAddr) {
    let peer = peer.to_string();
    let t0 = std::time::Instant::now();
    loop {
        let ok = ns
            .exec("ping", &["-c", "1", "-W", "1", &peer])
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ok {
            return;
        }
        assert!(
            t0.elapsed().as_secs() < 10,
            "underlay to {peer} never came up"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Two namespaces `a` (192.0.2.1) and `b` (192.0.2.2) joined by a veth, a tunnel
/// `cw-e2e` in each: A's inner address 10.0.0.1, B's 10.0.0.2.
pub struct Lab {
    pub sa: Side,
    pub sb: Side,
    pub ike_a: Arc<Mutex<Vec<Vec<u8>>>>,
    pub ike_b: Arc<Mutex<Vec<Vec<u8>>>>,
    // Namespaces last: dropped after the sides.
    pub b: NetNs,
    pub a: NetNs,
}

impl Lab {
    /// IPv4 outer addresses 192.0.2.1 / 192.0.2.2.
    pub fn start(encap: Encap) -> Lab {
        Self::start_outer(encap, "192.0.2.1/24", "192.0.2.2/24")
    }

    /// IPv6 outer addresses fd00:e2e::1 / fd00:e2e::2 (inner stays IPv4).
    pub fn start_v6(encap: Encap) -> Lab {
        Self::start_outer(encap, "fd00:e2e::1/64", "fd00:e2e::2/64")
    }

    fn start_outer(encap: Encap, outer_a: &str, outer_b: &str) -> Lab {
        let a = NetNs::create("cw-e2a").unwrap();
        let b = NetNs::create("cw-e2b").unwrap();
        a.ip(&[
            "link",
            "add",
            "veth0",
            "type",
            "veth",
            "peer",
            "name",
            "veth1",
            "netns",
            b.name(),
        ])
        .unwrap();
        a.ip(&["addr", "add", outer_a, "dev", "veth0", "nodad"])
            .unwrap();
        b.ip(&["addr", "add", outer_b, "dev", "veth1", "nodad"])
            .unwrap();
        a.ip(&["link", "set", "veth0", "up"]).unwrap();
        b.ip(&["link", "set", "veth1", "up"]).unwrap();
        let (oa, ob): (IpAddr, IpAddr) = (net(outer_a).addr(), net(outer_b).addr());
        wait_underlay(&a, ob);
        let ike_a = Arc::new(Mutex::new(Vec::new()));
        let ike_b = Arc::new(Mutex::new(Vec::new()));
        let sa = start_side(
            &a,
            "cw-e2e",
            oa,
            ob,
            "10.0.0.1",
            "10.0.0.2",
            (SPI_AB, KEY_AB),
            (SPI_BA, KEY_BA),
            encap,
            Arc::clone(&ike_a),
        );
        let sb = start_side(
            &b,
            "cw-e2e",
            ob,
            oa,
            "10.0.0.2",
            "10.0.0.1",
            (SPI_BA, KEY_BA),
            (SPI_AB, KEY_AB),
            encap,
            Arc::clone(&ike_b),
        );
        Lab {
            sa,
            sb,
            ike_a,
            ike_b,
            b,
            a,
        }
    }

    /// Stops both sides; returns (A tunnel, A global, B tunnel, B global) counters.
    pub fn stop(self) -> [CountersSnapshot; 4] {
        self.sa.cmd.send(Cmd::Stop).unwrap();
        self.sb.cmd.send(Cmd::Stop).unwrap();
        let (ca, ga) = self.sa.done.join().unwrap().unwrap();
        let (cb, gb) = self.sb.done.join().unwrap().unwrap();
        [ca, ga, cb, gb]
    }
}
