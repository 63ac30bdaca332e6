//! End-to-end dataplane: two namespaces joined by a veth, a Causeway TUN in each,
//! hand-made SA pairs with fixed keys, ping through ESP-in-UDP (and raw ESP). Root only.

mod common;

use common::{Cmd, Lab};
use dataplane::counters::DropReason;
use dataplane::netns::{skip_reason, NetNs};

use dataplane::sa::Encap;

fn ping(ns: &NetNs, from: &str, to: &str, count: &str) -> bool {
    let interval = if count.parse::<u32>().unwrap_or(0) > 20 {
        "0.002"
    } else {
        "0.2"
    };
    let out = ns
        .exec(
            "ping",
            &["-c", count, "-i", interval, "-W", "1", "-I", from, to],
        )
        .unwrap();
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    }
    out.status.success()
}

fn tcp_maxseg(s: &std::net::TcpStream) -> u32 {
    use std::os::fd::AsRawFd;
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: valid fd, pointer/len of a live c_int.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MAXSEG,
            &mut v as *mut libc::c_int as *mut libc::c_void,
            &mut len,
        )
    };
    assert_eq!(rc, 0);
    v as u32
}

fn e2e(encap: Encap) {
    if let Some(why) = skip_reason() {
        eprintln!("SKIP: {why}");
        return;
    }
    let lab = Lab::start(encap);
    let (a, b) = (&lab.a, &lab.b);
    let (sa, sb) = (&lab.sa, &lab.sb);
    let (ike_a, ike_b) = (lab.ike_a.clone(), lab.ike_b.clone());

    let ok = ping(a, "10.0.0.1", "10.0.0.2", "5");
    let ok_back = ping(b, "10.0.0.2", "10.0.0.1", "3");

    // TCP through the tunnel: SYN and SYN-ACK MSS clamped to 1300 (TUN MTU 1400 → 1360).
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let server = b
        .spawn(move || {
            let l = std::net::TcpListener::bind("10.0.0.2:0")?;
            port_tx.send(l.local_addr()?.port()).ok();
            let (mut s, _) = l.accept()?;
            let mut got = Vec::new();
            std::io::Read::read_to_end(&mut s, &mut got)?;
            Ok((got.len(), tcp_maxseg(&s)))
        })
        .unwrap();
    let port = port_rx.recv().unwrap();
    let client = a
        .spawn(move || {
            let to = std::net::SocketAddr::from(([10, 0, 0, 2], port));
            let mut s =
                std::net::TcpStream::connect_timeout(&to, std::time::Duration::from_secs(3))?;
            std::io::Write::write_all(&mut s, &vec![0x5a; 200_000])?;
            Ok(tcp_maxseg(&s))
        })
        .unwrap();
    let client_mss = client.join().unwrap();
    let server_res = server.join().unwrap();

    // IKE over port 4500 reaches the other side's sink, marker stripped.
    let mut ike = vec![0xAB; 60];
    ike[0] = 0x42;
    sa.cmd.send(Cmd::SendIke(ike.clone())).unwrap();
    let t0 = std::time::Instant::now();
    while ike_b.lock().unwrap().is_empty() && t0.elapsed().as_secs() < 3 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    // ESP with an unknown SPI and a too-short datagram: counted on B's endpoint.
    a.run(|| {
        let s = std::net::UdpSocket::bind("192.0.2.1:0")?;
        s.send_to(
            &[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1, 9, 9, 9, 9],
            "192.0.2.2:4500",
        )?;
        s.send_to(&[1, 2, 3], "192.0.2.2:4500")?;
        Ok(())
    })
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));

    // Policy: B no longer accepts A's inner source.
    sb.cmd.send(Cmd::BreakPolicy).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    let blocked = !ping(a, "10.0.0.1", "10.0.0.2", "2");

    let [ca, ga, cb, gb] = lab.stop();
    eprintln!("{encap:?} A: {ca:?}\nB: {cb:?}");

    let client_mss = client_mss.expect("TCP connect through the tunnel");
    let (received, server_mss) = server_res.expect("TCP accept through the tunnel");
    assert_eq!(received, 200_000);
    assert!(client_mss <= 1300, "client MSS {client_mss}");
    assert!(server_mss <= 1300, "server MSS {server_mss}");
    assert!(ca.mss_clamped >= 1, "{ca:?}");
    assert!(cb.mss_clamped >= 1, "{cb:?}");
    assert!(ok, "ping A -> B through ESP ({encap:?})");
    assert!(ok_back, "ping B -> A through ESP ({encap:?})");
    assert_eq!(
        ike_b.lock().unwrap().as_slice(),
        &[ike],
        "IKE on 4500 delivered"
    );
    assert!(ike_a.lock().unwrap().is_empty());
    assert!(blocked, "policy drop stops the ping");
    // A sent 5 + 3 replies + 2 blocked requests; B answered 5 and sent 3.
    assert!(ca.packets_out >= 10, "{ca:?}");
    assert!(ca.packets_in >= 8, "{ca:?}");
    assert!(cb.packets_in >= 8, "{cb:?}");
    assert!(cb.packets_out >= 8, "{cb:?}");
    assert!(ca.bytes_out >= 10 * 84, "{ca:?}");
    assert!(cb.dropped(DropReason::Policy) >= 2, "{cb:?}");
    assert_eq!(ca.total_drops(), 0, "{ca:?}");
    assert_eq!(cb.dropped(DropReason::AuthFailed), 0);
    if encap == Encap::Udp {
        assert_eq!(gb.dropped(DropReason::UnknownSpi), 1, "{gb:?}");
        assert_eq!(gb.dropped(DropReason::Malformed), 1, "{gb:?}");
    }
    assert_eq!(ga.total_drops(), 0, "{ga:?}");
}

#[test]
fn ping_through_esp_in_udp() {
    e2e(Encap::Udp);
}

#[test]
fn ping_and_tcp_without_offloads() {
    // The plain paths: TUN without IFF_VNET_HDR, sendmmsg, no UDP GRO.
    common::DP_OPTS.set(Some(dataplane::worker::DataplaneOptions {
        tun_offload: false,
        udp_gso: false,
        udp_gro: false,
        tun_rs_gro: false,
        workers: 1,
        ordered_tx: true,
    }));
    e2e(Encap::Udp);
}

#[test]
fn ping_and_tcp_with_tun_rs_gro() {
    common::DP_OPTS.set(Some(dataplane::worker::DataplaneOptions {
        tun_rs_gro: true,
        ..Default::default()
    }));
    e2e(Encap::Udp);
}

#[test]
fn ping_through_raw_esp() {
    e2e(Encap::Esp);
}

/// Make-before-break rekey under a steady ping: new inbound SAs on both sides, then the
/// outbound switch, then the old inbound SAs go. Not one packet may be lost or refused.
#[test]
fn rekey_under_traffic_loses_nothing() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIP: {why}");
        return;
    }
    let lab = Lab::start(Encap::Udp);
    let pinger = lab.a.name().to_owned();
    let ping = std::thread::spawn(move || {
        std::process::Command::new("ip")
            .args([
                "netns", "exec", &pinger, "ping", "-c", "150", "-i", "0.01", "-W", "1",
            ])
            .args(["-I", "10.0.0.1", "10.0.0.2"])
            .output()
    });
    std::thread::sleep(std::time::Duration::from_millis(400));
    let (new_ab, new_ba) = (0x0000_3000u32, 0x0000_4000u32);
    let (key_ab, key_ba) = ([0x33u8; 36], [0x44u8; 36]);
    let (ack_tx, ack_rx) = std::sync::mpsc::channel();
    // 1. New inbound SAs on both sides.
    lab.sb
        .cmd
        .send(Cmd::InstallInbound(new_ab, key_ab, ack_tx.clone()))
        .unwrap();
    lab.sa
        .cmd
        .send(Cmd::InstallInbound(new_ba, key_ba, ack_tx.clone()))
        .unwrap();
    ack_rx.recv().unwrap();
    ack_rx.recv().unwrap();
    // 2. Switch outbound.
    lab.sa
        .cmd
        .send(Cmd::SwitchOutbound(new_ab, key_ab, ack_tx.clone()))
        .unwrap();
    lab.sb
        .cmd
        .send(Cmd::SwitchOutbound(new_ba, key_ba, ack_tx.clone()))
        .unwrap();
    ack_rx.recv().unwrap();
    ack_rx.recv().unwrap();
    // 3. Old inbound SAs go after a grace period.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let (rm_tx, rm_rx) = std::sync::mpsc::channel();
    lab.sb
        .cmd
        .send(Cmd::RemoveInbound(common::SPI_AB, rm_tx.clone()))
        .unwrap();
    lab.sa
        .cmd
        .send(Cmd::RemoveInbound(common::SPI_BA, rm_tx))
        .unwrap();
    let removed = [rm_rx.recv().unwrap(), rm_rx.recv().unwrap()];
    let out = ping.join().unwrap().unwrap();
    let [ca, ga, cb, gb] = lab.stop();
    let text = String::from_utf8_lossy(&out.stdout);
    let summary = text
        .lines()
        .find(|l| l.contains("packet loss"))
        .unwrap_or("");
    eprintln!("{summary}\nA: {ca:?}\nB: {cb:?}");
    assert_eq!(removed, [true, true]);
    assert!(out.status.success(), "{text}");
    assert!(summary.contains(" 0% packet loss"), "{summary}");
    assert_eq!(ca.packets_out, 150, "{ca:?}");
    assert_eq!(cb.packets_in, 150, "{cb:?}");
    for c in [ca, ga, cb, gb] {
        assert_eq!(c.total_drops(), 0, "{c:?}");
    }
}

/// IPv6 underlay (outer), IPv4 inner, both encapsulations.
#[test]
fn ping_over_ipv6_underlay() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIP: {why}");
        return;
    }
    for encap in [Encap::Udp, Encap::Esp] {
        let lab = Lab::start_v6(encap);
        let ok = ping(&lab.a, "10.0.0.1", "10.0.0.2", "3");
        let [ca, ga, cb, gb] = lab.stop();
        assert!(ok, "ping over IPv6 outer ({encap:?})");
        assert_eq!((ca.packets_out, cb.packets_in), (3, 3), "{ca:?} {cb:?}");
        assert_eq!((cb.packets_out, ca.packets_in), (3, 3), "{ca:?} {cb:?}");
        for c in [ca, ga, cb, gb] {
            assert_eq!(c.total_drops(), 0, "{encap:?} {c:?}");
        }
    }
}

/// Packets dropped inside a TX batch (here link-scoped multicast, never tunneled) must
/// not disturb the packets sealed around them in the same batch.
#[test]
fn dropped_packets_inside_a_batch_do_not_corrupt_others() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIP: {why}");
        return;
    }
    let lab = Lab::start(Encap::Udp);
    let ns = lab.a.name().to_owned();
    let noise = std::thread::spawn(move || {
        std::process::Command::new("ip")
            .args([
                "netns", "exec", &ns, "ping", "-c", "300", "-i", "0.002", "-W", "1",
            ])
            .args(["-I", "cw-e2e", "224.0.0.1"])
            .output()
    });
    let ok = ping(&lab.a, "10.0.0.1", "10.0.0.2", "100");
    let _ = noise.join();
    let [ca, ga, cb, gb] = lab.stop();
    eprintln!("A: {ca:?}\nB: {cb:?}");
    assert!(ok);
    assert_eq!(cb.packets_in, 100, "{cb:?}");
    for c in [ca, ga, cb, gb] {
        assert_eq!(c.total_drops(), 0, "{c:?}");
    }
}

/// Traffic into a tunnel without an outbound SA calls the acquire hook (rate limited)
/// and is dropped as `no_outbound_sa`.
#[test]
fn acquire_hook_fires_without_outbound_sa() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIP: {why}");
        return;
    }
    let ns = NetNs::create("cw-acq").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let h = ns
        .spawn(move || {
            let dp = dataplane::Dataplane::new(std::sync::Arc::new(|_| {}));
            let t = dp.add_tunnel(dataplane::TunnelConfig {
                tun: dataplane::TunConfig {
                    name: "cw-acq0".into(),
                    mtu: 1400,
                    addrs: vec!["10.5.0.1/24".parse().unwrap()],
                },
                local: "127.0.0.1".parse().unwrap(),
                mss_clamp: None,
            })?;
            let tx = std::sync::Mutex::new(tx);
            t.set_acquire_hook(Some(Box::new(move |a| {
                tx.lock().unwrap().send(a).ok();
            })));
            ready_tx.send(()).ok();
            go_rx.recv().ok();
            Ok(t.counters())
        })
        .unwrap();
    ready_rx.recv().unwrap();
    let ok = ping(&ns, "10.5.0.1", "10.5.0.9", "3");
    go_tx.send(()).unwrap();
    let c = h.join().unwrap().unwrap();
    let calls: Vec<_> = rx.try_iter().collect();
    assert!(!ok);
    assert_eq!(c.dropped(DropReason::NoOutboundSa), 3, "{c:?}");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        calls[0].src,
        "10.5.0.1".parse::<std::net::IpAddr>().unwrap()
    );
    assert_eq!(
        calls[0].dst,
        "10.5.0.9".parse::<std::net::IpAddr>().unwrap()
    );
}

/// IPv6 inner packets (next header 41) through an IPv4 underlay.
#[test]
fn ipv6_inner_traffic() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIP: {why}");
        return;
    }
    let lab = Lab::start(Encap::Udp);
    lab.a
        .ip(&["addr", "add", "fd00:10::1/64", "dev", "cw-e2e", "nodad"])
        .unwrap();
    lab.b
        .ip(&["addr", "add", "fd00:10::2/64", "dev", "cw-e2e", "nodad"])
        .unwrap();
    // With the /32 IPv4 selectors, IPv6 is refused by policy.
    let refused = !ping(&lab.a, "fd00:10::1", "fd00:10::2", "1");
    let (ack_tx, ack_rx) = std::sync::mpsc::channel();
    lab.sa.cmd.send(Cmd::AllowAll(ack_tx.clone())).unwrap();
    lab.sb.cmd.send(Cmd::AllowAll(ack_tx)).unwrap();
    ack_rx.recv().unwrap();
    ack_rx.recv().unwrap();
    let ok = ping(&lab.a, "fd00:10::1", "fd00:10::2", "3");
    let [ca, _ga, cb, _gb] = lab.stop();
    eprintln!("A: {ca:?}\nB: {cb:?}");
    assert!(refused, "IPv6 outside the selectors must be dropped");
    assert_eq!(cb.dropped(DropReason::Policy), 1, "{cb:?}");
    assert!(ok, "ping6 through the tunnel");
    assert_eq!((cb.packets_in, ca.packets_in), (3, 3), "{ca:?} {cb:?}");
}

/// An inner packet longer than the tunnel MTU with DF set (and any IPv6 one) is answered
/// with ICMP "fragmentation needed" / "packet too big" written into the TUN. The kernel
/// already refuses such packets for the TUN's own MTU, so the device MTU is raised above
/// the tunnel MTU (1400) here: the oversize packets then reach the dataplane.
#[test]
fn oversize_packets_get_icmp_too_big() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIP: {why}");
        return;
    }
    let lab = Lab::start(Encap::Udp);
    lab.a.ip(&["link", "set", "cw-e2e", "mtu", "1500"]).unwrap();
    lab.a
        .ip(&["addr", "add", "fd00:10::1/64", "dev", "cw-e2e", "nodad"])
        .unwrap();
    let ping_big = |args: &[&str]| {
        let out = lab.a.exec("ping", args).unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let v4 = ping_big(&[
        "-c", "2", "-i", "0.2", "-W", "1", "-M", "do", "-s", "1450", "-I", "10.0.0.1", "10.0.0.2",
    ]);
    let v6 = ping_big(&[
        "-6",
        "-c",
        "2",
        "-i",
        "0.2",
        "-W",
        "1",
        "-M",
        "do",
        "-s",
        "1450",
        "fd00:10::2",
    ]);
    // Without DF, an oversize IPv4 packet still goes through (the outer is fragmented).
    let no_df = ping_big(&[
        "-c", "1", "-W", "2", "-M", "dont", "-s", "1420", "-I", "10.0.0.1", "10.0.0.2",
    ]);
    let ok = ping(&lab.a, "10.0.0.1", "10.0.0.2", "2");
    let [ca, ga, cb, gb] = lab.stop();
    eprintln!("{v4}\n{v6}\n{no_df}\nA: {ca:?}\nB: {cb:?}");
    // ping prints the ICMP error ("Frag needed and DF set (mtu = 1400)"), or, once the
    // kernel has learned the path MTU, "message too long, mtu=1400".
    let says_1400 = |t: &str| t.contains("mtu = 1400") || t.contains("mtu=1400");
    assert!(says_1400(&v4), "{v4}");
    assert!(says_1400(&v6), "{v6}");
    assert!(no_df.contains(" 0% packet loss"), "{no_df}");
    assert!(ok, "normal pings still pass");
    assert!(ca.icmp_too_big >= 2, "{ca:?}");
    assert_eq!(ca.icmp_too_big, ca.dropped(DropReason::TooBig), "{ca:?}");
    assert_eq!(ca.total_drops(), ca.dropped(DropReason::TooBig), "{ca:?}");
    for c in [ga, cb, gb] {
        assert_eq!(c.total_drops(), 0, "{c:?}");
    }
}

/// With two workers, flows are spread over both TX workers (TUN queues), and several TCP
/// streams at once arrive complete and in order.
#[test]
fn flows_spread_over_workers() {
    flows_spread(true);
}

/// The same with the TX workers sealing in parallel (sequence numbers interleaved).
#[test]
fn flows_spread_over_workers_unordered() {
    flows_spread(false);
}

fn flows_spread(ordered_tx: bool) {
    if let Some(why) = skip_reason() {
        eprintln!("SKIP: {why}");
        return;
    }
    common::DP_OPTS.set(Some(dataplane::worker::DataplaneOptions {
        workers: 2,
        ordered_tx,
        ..Default::default()
    }));
    let lab = Lab::start(Encap::Udp);
    // 16 UDP flows (source ports) without answers: the kernel's hash picks the queue.
    lab.a
        .run(|| {
            for _ in 0..16 {
                let s = std::net::UdpSocket::bind("10.0.0.1:0")?;
                for _ in 0..5 {
                    s.send_to(&[7u8; 100], "10.0.0.2:9")?;
                }
            }
            Ok(())
        })
        .unwrap();
    // 8 TCP streams: a counting pattern each, checked on arrival.
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let server = lab
        .b
        .spawn(move || {
            let l = std::net::TcpListener::bind("10.0.0.2:0")?;
            port_tx.send(l.local_addr()?.port()).ok();
            let mut readers = Vec::new();
            for _ in 0..8 {
                let (mut s, _) = l.accept()?;
                readers.push(std::thread::spawn(move || -> std::io::Result<bool> {
                    let mut got = Vec::new();
                    std::io::Read::read_to_end(&mut s, &mut got)?;
                    Ok(got.len() == 400_000
                        && got.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8))
                }));
            }
            let mut all = true;
            for r in readers {
                all &= r.join().map_err(|_| std::io::Error::other("reader"))??;
            }
            Ok(all)
        })
        .unwrap();
    let port = port_rx.recv().unwrap();
    let client = lab
        .a
        .spawn(move || {
            let data: Vec<u8> = (0..400_000).map(|i| (i % 251) as u8).collect();
            let data = std::sync::Arc::new(data);
            let mut writers = Vec::new();
            for _ in 0..8 {
                let data = std::sync::Arc::clone(&data);
                let to = std::net::SocketAddr::from(([10, 0, 0, 2], port));
                let mut s =
                    std::net::TcpStream::connect_timeout(&to, std::time::Duration::from_secs(3))?;
                writers.push(std::thread::spawn(move || {
                    std::io::Write::write_all(&mut s, &data)
                }));
            }
            for w in writers {
                w.join().map_err(|_| std::io::Error::other("writer"))??;
            }
            Ok(())
        })
        .unwrap();
    let client_res = client.join().unwrap();
    let server_res = server.join().unwrap();
    // Per-queue counts once the last packets (final ACKs) are out: compared with the
    // tunnel's counters, read at the stop.
    let queue_stats = || {
        let (q_tx, q_rx) = std::sync::mpsc::channel();
        lab.sa.cmd.send(Cmd::QueueStats(q_tx)).unwrap();
        q_rx.recv().unwrap()
    };
    let mut per_queue = queue_stats();
    for _ in 0..15 {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let now = queue_stats();
        if now == per_queue {
            break;
        }
        per_queue = now;
    }
    let [ca, ga, cb, gb] = lab.stop();
    eprintln!("A per TX worker: {per_queue:?}\nA: {ca:?}\nB: {cb:?}");
    client_res.expect("TCP streams sent");
    assert!(
        server_res.expect("TCP streams received"),
        "a stream arrived damaged"
    );
    assert_eq!(per_queue.len(), 2, "two TUN queues");
    assert!(per_queue.iter().all(|&n| n > 0), "{per_queue:?}");
    assert_eq!(
        per_queue.iter().sum::<u64>(),
        ca.packets_out,
        "{per_queue:?}"
    );
    for c in [ca, ga, cb, gb] {
        assert_eq!(c.total_drops(), 0, "{c:?}");
    }
}

/// A minimal IPv4/UDP packet 10.0.0.1:5000 → 10.0.0.2:9 (header checksum set, UDP
/// checksum 0), inside the lab's traffic selectors.
fn inner_udp(tag: u8) -> Vec<u8> {
    let mut p = vec![
        0x45, 0, 0, 36, 0, 0, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, // IPv4
        0x13, 0x88, 0, 9, 0, 16, 0, 0, // UDP, 8 bytes of payload
    ];
    p.extend_from_slice(&[tag; 8]);
    let sum: u32 = p[..20]
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = !((sum & 0xffff) + (sum >> 16)) as u16;
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p
}

/// Peer moves: (inbound SPI, new source).
type Moves = Vec<(u32, std::net::SocketAddr)>;

/// Asks B for its pending peer move, hook calls and counters until `done(counters)`
/// (at most 3 s); returns the moves taken, the hook calls and the last counters.
fn peer_moves(
    lab: &Lab,
    done: impl Fn(&dataplane::counters::CountersSnapshot) -> bool,
) -> (Moves, Moves, dataplane::counters::CountersSnapshot) {
    let (mut taken, mut hooked) = (Vec::new(), Vec::new());
    let t0 = std::time::Instant::now();
    loop {
        let (tx, rx) = std::sync::mpsc::channel();
        lab.sb.cmd.send(Cmd::PeerMove(tx)).unwrap();
        let r = rx.recv().unwrap();
        taken.extend(r.taken);
        hooked.extend(r.hook_calls);
        if done(&r.counters) || t0.elapsed().as_secs() >= 3 {
            // One more look: a move recorded right after the counters were read.
            let (tx, rx) = std::sync::mpsc::channel();
            lab.sb.cmd.send(Cmd::PeerMove(tx)).unwrap();
            let r = rx.recv().unwrap();
            taken.extend(r.taken);
            hooked.extend(r.hook_calls);
            return (taken, hooked, r.counters);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// NAT rebinding: authenticated ESP from a new source port is reported once
/// (`take_peer_move` and the hook); a replayed packet, an older packet held back and a
/// forged one from other ports are not; ESP from the peer's known address never is.
#[test]
fn esp_from_a_new_port_reports_the_peer_move_once() {
    use dataplane::sa::EspOutbound;
    use std::net::SocketAddr;
    if let Some(why) = skip_reason() {
        eprintln!("SKIP: {why}");
        return;
    }
    let lab = Lab::start(Encap::Udp);
    // Ordinary traffic from A's endpoint (192.0.2.1:4500, where B sends): no move.
    assert!(ping(&lab.a, "10.0.0.1", "10.0.0.2", "3"));
    let (moves, hooked, base) = peer_moves(&lab, |c| c.packets_in >= 3);
    assert_eq!((moves.as_slice(), hooked.as_slice()), (&[][..], &[][..]));
    assert_eq!(base.peer_moves, 0, "{base:?}");

    // A second SA into B's tunnel, sealed here so that the test picks each packet's
    // sequence number and source port.
    let (spi, key) = (0x0000_3000u32, [0x33u8; 36]);
    let (ack_tx, ack_rx) = std::sync::mpsc::channel();
    lab.sb
        .cmd
        .send(Cmd::InstallInbound(spi, key, ack_tx))
        .unwrap();
    ack_rx.recv().unwrap();
    let out = esp::Sa::from_keymat(
        esp::SaParams::new(spi, esp::Direction::Outbound, esp::Suite::AES256_GCM16),
        &key,
    )
    .unwrap();
    // Packets with sequence numbers 1..=6.
    let pkts: Vec<Vec<u8>> = (1..=6u8)
        .map(|i| {
            let inner = inner_udp(i);
            let h = EspOutbound::header_len(&out);
            let mut buf = vec![0u8; h + inner.len() + EspOutbound::max_trailer_len(&out)];
            buf[h..h + inner.len()].copy_from_slice(&inner);
            let r = EspOutbound::seal(&out, &mut buf, h..h + inner.len(), 4).unwrap();
            buf[r].to_vec()
        })
        .collect();
    let send = |port: u16, pkt: &[u8]| {
        let pkt = pkt.to_vec();
        lab.a
            .run(move || {
                let s = std::net::UdpSocket::bind(("192.0.2.1", port))?;
                s.send_to(&pkt, "192.0.2.2:4500")?;
                Ok(())
            })
            .unwrap();
    };
    let at = |port: u16| SocketAddr::from(([192, 0, 2, 1], port));
    let n = base.packets_in;

    // 1. The NAT maps A to a new port: the first authenticated packet from there moves B.
    send(31000, &pkts[0]);
    let (moves, hooked, c) = peer_moves(&lab, |c| c.packets_in > n);
    assert_eq!(moves, [(spi, at(31000))], "{c:?}");
    assert_eq!(hooked, [(spi, at(31000))], "{c:?}");
    // 2. More from the new port: already reported.
    send(31000, &pkts[1]);
    send(31000, &pkts[2]);
    let (moves, hooked, c) = peer_moves(&lab, |c| c.packets_in >= n + 3);
    assert_eq!((moves.as_slice(), hooked.as_slice()), (&[][..], &[][..]));
    assert_eq!(c.packets_in, n + 3, "{c:?}");
    // 3. A replay of packet 3 from yet another port: dropped, no move.
    send(32000, &pkts[2]);
    let (moves, _, c) = peer_moves(&lab, |c| c.dropped(DropReason::Replay) >= 1);
    assert_eq!(c.dropped(DropReason::Replay), 1, "{c:?}");
    assert!(moves.is_empty(), "replay moved the peer: {moves:?}");
    // 4. Packet 5, then the held-back packet 4 from another port: 4 passes the replay
    //    window but is not the newest, so it cannot move the tunnel.
    send(31000, &pkts[4]);
    send(33000, &pkts[3]);
    let (moves, _, c) = peer_moves(&lab, |c| c.packets_in >= n + 5);
    assert_eq!(c.packets_in, n + 5, "{c:?}");
    assert!(moves.is_empty(), "old packet moved the peer: {moves:?}");
    // 5. A forged packet 6 (ICV broken) from another port: no move.
    let mut forged = pkts[5].clone();
    *forged.last_mut().unwrap() ^= 1;
    send(34000, &forged);
    let (moves, _, c) = peer_moves(&lab, |c| c.dropped(DropReason::AuthFailed) >= 1);
    assert_eq!(c.dropped(DropReason::AuthFailed), 1, "{c:?}");
    assert!(moves.is_empty(), "forged packet moved the peer: {moves:?}");
    // 6. The real packet 6 from port 33000: a second move.
    send(33000, &pkts[5]);
    let (moves, hooked, c) = peer_moves(&lab, |c| c.packets_in >= n + 6);
    assert_eq!(moves, [(spi, at(33000))], "{c:?}");
    assert_eq!(hooked, [(spi, at(33000))], "{c:?}");

    let [_, _, cb, _] = lab.stop();
    eprintln!("B: {cb:?}");
    assert_eq!(cb.peer_moves, 2, "{cb:?}");
}

/// The peer's own traffic through a port rewrite (nftables, in A's namespace: A's ESP
/// leaves from port 31000 instead of 4500, answers to 31000 come back to 4500, like a NAT
/// that picked a new mapping): B reports the move once; after B follows it (outbound SA
/// towards port 31000), traffic flows both ways and nothing more is reported.
#[test]
fn nat_port_rewrite_of_the_peers_traffic_is_reported_and_followed() {
    if let Some(why) = skip_reason() {
        eprintln!("SKIP: {why}");
        return;
    }
    if !std::process::Command::new("nft")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        eprintln!("SKIP: nft not available");
        return;
    }
    let lab = Lab::start(Encap::Udp);
    assert!(ping(&lab.a, "10.0.0.1", "10.0.0.2", "2"));
    let (moves, _, base) = peer_moves(&lab, |c| c.packets_in >= 2);
    assert!(moves.is_empty(), "{moves:?}");
    // Stateless rewrite before conntrack (priority raw): no NAT state to set up or flush.
    let rules = "table ip cwpm {\n\
        chain out { type filter hook output priority -300; udp sport 4500 udp sport set 31000; }\n\
        chain in { type filter hook prerouting priority -300; udp dport 31000 udp dport set 4500; }\n\
        }\n";
    let mut nft = std::process::Command::new("ip")
        .args(["netns", "exec", lab.a.name(), "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(nft.stdin.as_mut().unwrap(), rules.as_bytes()).unwrap();
    drop(nft.stdin.take());
    assert!(nft.wait().unwrap().success(), "nft rules");
    let new_port = std::net::SocketAddr::from(([192, 0, 2, 1], 31000));

    // Pings still work (B answers to 4500, which A receives directly); B sees the move.
    assert!(ping(&lab.a, "10.0.0.1", "10.0.0.2", "3"));
    let (moves, hooked, c) = peer_moves(&lab, |c| c.packets_in >= base.packets_in + 3);
    assert_eq!(moves, [(common::SPI_AB, new_port)], "{c:?}");
    assert_eq!(hooked, [(common::SPI_AB, new_port)], "{c:?}");
    // B follows: its ESP now goes to port 31000 (rewritten back to 4500 in A).
    let (ack_tx, ack_rx) = std::sync::mpsc::channel();
    lab.sb.cmd.send(Cmd::SetPeer(new_port, ack_tx)).unwrap();
    ack_rx.recv().unwrap();
    assert!(ping(&lab.a, "10.0.0.1", "10.0.0.2", "3"));
    assert!(ping(&lab.b, "10.0.0.2", "10.0.0.1", "3"));
    let (moves, _, c) = peer_moves(&lab, |c| c.packets_in >= base.packets_in + 9);
    assert!(moves.is_empty(), "{moves:?} {c:?}");

    let [ca, ga, cb, gb] = lab.stop();
    eprintln!("A: {ca:?}\nB: {cb:?}");
    assert_eq!(cb.peer_moves, 1, "{cb:?}");
    assert_eq!(ca.peer_moves, 0, "{ca:?}");
    for c in [ca, ga, cb, gb] {
        assert_eq!(c.total_drops(), 0, "{c:?}");
    }
}
