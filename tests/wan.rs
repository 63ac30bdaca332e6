//! A hostile WAN between two `causeway run` gateways (issue 6, Tests), in network
//! namespaces with a router (or a NAT) between the gateways (see `common::net`).
//!
//! * `ike_sa_init_flood_cookies_bounded_memory_real_peer_connects`: from the router, a
//!   raw socket sends IKE_SA_INIT requests with spoofed sources to gw-b: half claim other
//!   addresses on gw-a's WAN subnet, half claim gw-a's own address with random ports and
//!   SPIs. gw-b must answer the latter with cookies (counted on the wire), hold only a few
//!   half-open IKE SAs, keep its RSS bounded, count the others as `ike_unknown_peer`, and
//!   gw-a (the real peer) must get its tunnel up during the flood.
//! * `five_percent_loss_tunnel_establishes_and_survives_rekeys`: nftables `numgen random`
//!   drops 5 % of everything the router forwards, both ways; the tunnel comes up, carries
//!   pings and stays up across a Child SA rekey initiated by each side.
//! * `nat_port_change_and_keepalives_causeway_peer` / `..._strongswan_peer`: gw-a behind
//!   a masquerading NAT: IKE and ESP on UDP 4500; with UDP conntrack timeouts of 24 s and
//!   nothing else crossing for 26 s, NAT keepalives keep the mapping; then the NAT
//!   forgets it and maps to another port range, and traffic resumes through the new port
//!   once gw-a's liveness check (an authenticated IKE message) tells gw-b where it is.
//!
//! Needs root, `ip`, `ping`, `python3`, `nft` and /dev/net/tun (strongSwan for its
//! variant); skips with a message otherwise. The tests run one at a time (they measure
//! time and memory on a shared machine). Every namespace and process is removed by Drop
//! guards, also when an assertion fails. Traffic never leaves the test's namespaces: the
//! spoofed sources are addresses of the test's own WAN subnets.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::can_run;
use common::net::{
    child_count, first_child, nat_rules, ping, ping_counts, ping_counts_in, ping_soon, random_psk,
    start_a, start_b, start_pair_with, state, topology_with, wait_for, wait_up, Daemon, Netns, Wan,
    HOST_A, HOST_B, TUNNEL, WAN_A, WAN_A_PRIVATE, WAN_B,
};
use common::swan::{Swan, CHARON, SWANCTL};

/// The tests measure time and memory: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

// ===== flood =====

/// Runs in the router: sends IKE_SA_INIT requests (aes256-sha256-x25519, fresh SPI per
/// packet) to gw-b for `argv[1]` seconds at `argv[2]` packets/s, through a raw socket with
/// spoofed sources: even packets from gw-a's address (`argv[3]`) with a random port
/// (never 500/4500), odd ones from a random other address of gw-a's /24. A thread
/// watches what gw-b sends back towards gw-a's side (interface `wa`) and counts
/// IKE_SA_INIT responses to the spoofed ports: COOKIE notifies and full responses (each
/// one a half-open IKE SA), and the same for the real peer (ports 500/4500). Prints one
/// JSON line.
const FLOOD_PY: &str = r#"
import json, os, random, socket, struct, sys, threading, time
secs, rate, peer, target = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
net = peer.rsplit(".", 1)[0]
def tr(last, ttype, tid, attr=b""):
    return struct.pack("!BBHBBH", last, 0, 8 + len(attr), ttype, 0, tid) + attr
trans = tr(3, 1, 12, struct.pack("!HH", 0x800E, 256)) + tr(3, 2, 5) + tr(3, 3, 12) + tr(0, 4, 31)
prop = struct.pack("!BBHBBBB", 0, 0, 8 + len(trans), 1, 1, 0, 4) + trans
sa = struct.pack("!BBH", 34, 0, 4 + len(prop)) + prop
def ike(spi):
    ke = struct.pack("!BBHHH", 40, 0, 8 + 32, 31, 0) + os.urandom(32)
    nonce = struct.pack("!BBH", 0, 0, 4 + 32) + os.urandom(32)
    body = sa + ke + nonce
    return struct.pack("!QQBBBBII", spi, 0, 33, 0x20, 34, 0x08, 0, 28 + len(body)) + body
dst = socket.inet_aton(target)
def packet(src, sport, payload):
    ulen = 8 + len(payload)
    udp = struct.pack("!HHHH", sport, 500, ulen, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, 0, 0x4000, 64, 17, 0,
                     socket.inet_aton(src), dst)
    return bytearray(ip + udp)
# Templates; each send patches a fresh SPI (IP header 20 + UDP 8 = offset 28).
tmpl = []
for i in range(256):
    if i % 2 == 0:
        src, port = peer, random.randrange(1024, 65000)
        if port == 4500: port = 4501
    else:
        src, port = "%s.%d" % (net, random.randrange(2, 254)), random.randrange(1024, 65000)
    tmpl.append(packet(src, port, ike(0)))
stats = dict(cookies=0, half_open=0, peer_cookies=0, peer_responses=0, other=0)
stop = False
def sniff():
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    s.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)  # SO_RCVBUFFORCE: keep up with the flood
    s.bind(("wa", 0))
    s.settimeout(0.5)
    while not stop:
        try:
            f, addr = s.recvfrom(65535)
        except socket.timeout:
            continue
        if addr[2] != socket.PACKET_OUTGOING or f[12:14] != b"\x08\x00":
            continue
        ip = f[14:]
        ihl = (ip[0] & 15) * 4
        if ip[9] != 17 or ip[12:16] != dst:
            continue
        sport, dport = struct.unpack("!HH", ip[ihl:ihl + 4])
        m = ip[ihl + 8:]
        if dport == 4500 or sport == 4500:
            if m[:4] != b"\0\0\0\0":
                continue
            m = m[4:]
        if len(m) < 36 or m[18] != 34 or not (m[19] & 0x20):
            continue
        cookie = m[16] == 41 and struct.unpack("!H", m[34:36])[0] == 16390
        full = m[16] == 33
        real = dport in (500, 4500)
        key = ("peer_cookies" if cookie else "peer_responses" if full else "other") if real \
            else ("cookies" if cookie else "half_open" if full else "other")
        stats[key] += 1
th = threading.Thread(target=sniff, daemon=True)
th.start()
time.sleep(0.3)
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
sent = sent_peer = 0
t0 = time.monotonic()
tick = 0.01
per_tick = max(1, int(rate * tick))
spi = random.getrandbits(48) << 8
while True:
    now = time.monotonic() - t0
    if now >= secs:
        break
    for _ in range(per_tick):
        p = tmpl[sent & 255]
        spi += 1
        struct.pack_into("!Q", p, 28, spi)
        try:
            r.sendto(p, (target, 0))
        except OSError:
            continue
        if sent % 2 == 0:
            sent_peer += 1
        sent += 1
    ahead = (sent / rate) - (time.monotonic() - t0)
    if ahead > 0:
        time.sleep(ahead)
elapsed = time.monotonic() - t0
time.sleep(1.0)
stop = True
th.join()
stats.update(sent=sent, sent_peer=sent_peer, secs=round(elapsed, 2), pps=round(sent / elapsed))
print(json.dumps(stats))
"#;

/// Flood rate (`CW_FLOOD_PPS` overrides it) and duration.
const FLOOD_PPS: u32 = 3000;
const FLOOD_SECS: u32 = 20;

/// gw-b's `cookie_threshold` (the default): half-open IKE SAs before cookies are asked for.
const COOKIE_THRESHOLD: u64 = 10;

/// The daemon's own flood counters: `ike_dos` of the tunnel's entry in
/// `causeway status --json` (cookies_sent, rate_limited, half_open_full, half_open).
#[derive(Default, Clone, Copy)]
struct IkeDos {
    cookies_sent: u64,
    rate_limited: u64,
    half_open_full: u64,
    half_open: u64,
}

impl std::fmt::Display for IkeDos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cookies_sent {} rate_limited {} half_open_full {} half_open {}",
            self.cookies_sent, self.rate_limited, self.half_open_full, self.half_open
        )
    }
}

impl IkeDos {
    fn of(tunnel: &Value) -> Option<IkeDos> {
        let d = tunnel.get("ike_dos")?;
        let n = |k: &str| d.get(k).and_then(Value::as_u64);
        Some(IkeDos {
            cookies_sent: n("cookies_sent")?,
            rate_limited: n("rate_limited")?,
            half_open_full: n("half_open_full")?,
            half_open: n("half_open")?,
        })
    }
}

fn flood_pps() -> u32 {
    std::env::var("CW_FLOOD_PPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(FLOOD_PPS)
}

#[test]
fn ike_sa_init_flood_cookies_bounded_memory_real_peer_connects() {
    if !can_run(&["ip", "ping", "python3", "cat"]) {
        return;
    }
    let _serial = serial();
    let t_test = Instant::now();
    let net = topology_with("flood", Wan::Routed);
    let psk = random_psk();
    // x25519: the flood's requests carry a key share gw-b accepts (the flood gets as far
    // as a real initiator could without answering a cookie).
    let extra = "ike_proposals = [\"aes256-sha256-x25519\"]\n";
    // Info level: at debug level the flood would mostly measure the logging.
    let b = start_b(&net, &psk, extra, "info");
    std::thread::sleep(Duration::from_millis(500));
    let rss0 = b.rss_kib().expect("gw-b RSS");
    let flood = Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.router().name,
            "python3",
            "-c",
            FLOOD_PY,
        ])
        .args([
            &FLOOD_SECS.to_string(),
            &flood_pps().to_string(),
            WAN_A,
            WAN_B,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the flood");
    let mut flood = common::net::Proc(Some(flood));
    let t_flood = Instant::now();
    let mut rss_peak = rss0;
    // The daemon's counters during the flood (read at most every 300 ms: each read is a
    // `causeway status --json` on a busy machine): how many reads, the most half-open
    // IKE SAs seen, the last counters.
    let mut dos_reads = 0u32;
    let mut dos_half_open_max = 0u64;
    let mut dos_during = IkeDos::default();
    let mut dos_at = Instant::now() - Duration::from_secs(1);
    let mut sample = |b: &Daemon| {
        if let Some(r) = b.rss_kib() {
            rss_peak = rss_peak.max(r);
        }
        if dos_at.elapsed() >= Duration::from_millis(300) {
            dos_at = Instant::now();
            if let Some(d) = b.tunnel().as_ref().and_then(IkeDos::of) {
                dos_reads += 1;
                dos_half_open_max = dos_half_open_max.max(d.half_open);
                dos_during = d;
            }
        }
    };
    // Let the flood engage the cookies, then start the real peer.
    while t_flood.elapsed() < Duration::from_secs(3) {
        sample(&b);
        std::thread::sleep(Duration::from_millis(100));
    }
    let a = start_a(&net, &psk, extra);
    let t_a = Instant::now();
    let up = wait_for(Duration::from_secs(25), || {
        sample(&b);
        let (ta, tb) = (a.tunnel()?, b.tunnel()?);
        (state(&ta) == "established" && child_count(&ta) >= 1 && child_count(&tb) >= 1)
            .then(|| t_a.elapsed())
    });
    let connect = up.unwrap_or_else(|| {
        panic!(
            "the real peer did not connect during the flood\n--- gw-a:\n{}\n--- gw-b:\n{}",
            a.log_tail(30),
            b.log_tail(30)
        )
    });
    assert!(
        t_flood.elapsed() < Duration::from_secs(u64::from(FLOOD_SECS)),
        "the tunnel came up only after the flood ({:?})",
        t_flood.elapsed()
    );
    // Traffic through the tunnel while the flood goes on.
    let (tx, rx) = ping_counts(&net.host_a, HOST_B, 10, "0.2");
    let in_flood = t_flood.elapsed() < Duration::from_secs(u64::from(FLOOD_SECS));
    assert!(rx >= 8, "pings during the flood: {rx}/{tx}");
    let mut last_status = None;
    while t_flood.elapsed() < Duration::from_secs(u64::from(FLOOD_SECS)) {
        sample(&b);
        std::thread::sleep(Duration::from_millis(200));
    }
    if let Some(s) = b.status() {
        last_status = Some(s);
    }
    let child = flood.0.take().expect("flood process");
    let out = child.wait_with_output().expect("flood output");
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "flood output ({e}): {text} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let n = |k: &str| f.get(k).and_then(Value::as_u64).unwrap_or(0);
    // The daemon's counters once the flood is over (the flood process exits a second
    // after its last packet): what an operator sees in `causeway status`.
    let tb_after = b.tunnel().expect("gw-b status after the flood");
    let dos = IkeDos::of(&tb_after).unwrap_or_else(|| panic!("no ike_dos in {tb_after}"));
    let status_text = b
        .cli(&["status"])
        .unwrap_or_else(|e| panic!("causeway status: {e}"));
    let rcvbuf_errors = net.gw_b.udp_rcvbuf_errors();
    let drops = last_status
        .as_ref()
        .and_then(|s| s.get("dataplane_drops").cloned())
        .unwrap_or(Value::Null);
    let unknown = drops
        .get("ike_unknown_peer")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let backlog = drops
        .get("ike_backlog")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    eprintln!(
        "flood: {} packets in {} s ({} pps; {} claiming the peer's address); gw-b answered \
         {} cookies and {} full responses (half-open SAs) to spoofed ports; the real peer: \
         {} cookie(s), {} response(s), connected {:.2} s after its start; gw-b counted \
         {unknown} ike_unknown_peer, {backlog} ike_backlog, the kernel {rcvbuf_errors} UDP \
         receive buffer drops; RSS {} KiB before, {} KiB peak; \
         pings during the flood {rx}/{tx} (in flood: {in_flood}); gw-b's ike_dos: \
         {dos_reads} reads during the flood (last: {dos_during}; half_open max \
         {dos_half_open_max}), after it: {dos}; test {:.1} s",
        n("sent"),
        f.get("secs").cloned().unwrap_or(Value::Null),
        n("pps"),
        n("sent_peer"),
        n("cookies"),
        n("half_open"),
        n("peer_cookies"),
        n("peer_responses"),
        connect.as_secs_f64(),
        rss0,
        rss_peak,
        t_test.elapsed().as_secs_f64()
    );
    assert!(
        n("pps") >= u64::from(flood_pps()) / 2,
        "the flood was too slow to mean anything: {f}"
    );
    // Cookies engaged and stayed engaged: of the requests claiming the peer's address,
    // all that got an answer (besides the first 10) got a cookie. How many got one at
    // all depends on how many gw-b read: on a busy machine the kernel drops many at its
    // socket (`UDP receive buffer drops` above), so only a tenth is required.
    assert!(
        n("cookies") >= n("sent_peer") / 10,
        "cookies: {f}\n--- gw-b:\n{}",
        b.log_tail(20)
    );
    // At most cookie_threshold (10) half-open SAs came from the flood, plus a few that
    // were in flight when the threshold was reached.
    assert!(n("half_open") <= 12, "half-open SAs from the flood: {f}");
    // The real peer came while cookies were asked for (10 flood SAs stay half-open for
    // 30 s, longer than the flood), so it got in with a cookie; `peer_cookies` shows it
    // on the wire unless the capture missed it under the load.
    // Requests from other addresses were dropped before the IKE engine (what the
    // daemon read of them; the kernel drops more when the socket buffer is full).
    assert!(unknown > 0, "ike_unknown_peer {unknown}, drops {drops}");
    // The daemon's own counters say the same: it sent cookies (at least as many as the
    // capture saw leave, to spoofed ports and to the real peer), and it never held more
    // half-open IKE SAs than the cookie threshold, plus the real peer's own between its
    // IKE_SA_INIT and IKE_AUTH.
    assert!(
        dos_reads > 0,
        "no `causeway status --json` read during the flood"
    );
    assert!(
        dos_during.cookies_sent > 0,
        "gw-b counted no cookies during the flood: {dos_during}"
    );
    assert!(
        dos.cookies_sent >= n("cookies") + n("peer_cookies"),
        "gw-b counted {} cookies sent, the capture saw {} + {}",
        dos.cookies_sent,
        n("cookies"),
        n("peer_cookies")
    );
    assert!(
        dos_half_open_max <= COOKIE_THRESHOLD + 1,
        "gw-b held {dos_half_open_max} half-open IKE SAs during the flood"
    );
    assert!(
        dos.half_open <= COOKIE_THRESHOLD,
        "gw-b holds {} half-open IKE SAs after the flood",
        dos.half_open
    );
    // And `causeway status` shows it to the operator.
    assert!(
        status_text.contains(&format!("IKE DoS: {} cookies sent", dos.cookies_sent)),
        "`causeway status` without the IKE DoS line:\n{status_text}"
    );
    // Memory stays bounded: the flood may cost a few MiB (buffers, the rate table), not
    // more.
    assert!(
        rss_peak < rss0 + 32 * 1024,
        "gw-b RSS grew from {rss0} KiB to {rss_peak} KiB"
    );
    let tb = b.tunnel().expect("gw-b status");
    assert_eq!(state(&tb), "established", "gw-b after the flood: {tb}");
    ping(&net.host_a, HOST_B, 3).unwrap_or_else(|e| panic!("ping after the flood: {e}"));
    drop(a);
    drop(b);
    drop(net);
}

// ===== loss =====

/// Inbound SPIs of the tunnel's Child SAs.
fn spis_in(d: &Daemon) -> Vec<String> {
    d.tunnel()
        .and_then(|t| {
            t.get("child_sas")?
                .as_array()?
                .iter()
                .map(|c| c.get("spi_in")?.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `causeway rekey` on `d`, then waits until the Child SAs of both sides are all new.
fn rekey_and_wait(who: &Daemon, a: &Daemon, b: &Daemon) -> Duration {
    let t0 = Instant::now();
    let (old_a, old_b) = (spis_in(a), spis_in(b));
    who.cli(&["rekey", TUNNEL])
        .unwrap_or_else(|e| panic!("causeway rekey: {e}"));
    let done = wait_for(Duration::from_secs(30), || {
        let (na, nb) = (spis_in(a), spis_in(b));
        let fresh = |new: &[String], old: &[String]| {
            !new.is_empty() && new.iter().all(|s| !old.contains(s))
        };
        (fresh(&na, &old_a) && fresh(&nb, &old_b)).then_some(())
    });
    assert!(
        done.is_some(),
        "Child SA rekey not done within 30 s (a: {old_a:?} -> {:?}, b: {old_b:?} -> {:?})\n--- gw-a:\n{}\n--- gw-b:\n{}",
        spis_in(a),
        spis_in(b),
        a.log_tail(30),
        b.log_tail(30)
    );
    t0.elapsed()
}

#[test]
fn five_percent_loss_tunnel_establishes_and_survives_rekeys() {
    if !can_run(&["ip", "ping", "nft"]) {
        return;
    }
    let _serial = serial();
    let t_test = Instant::now();
    let net = topology_with("loss", Wan::Routed);
    let r = net.router();
    r.nft(
        "table inet cwloss {
  chain xfer {
    type filter hook forward priority 0;
    numgen random mod 100 < 5 counter drop comment \"lost\"
    counter comment \"passed\"
  }
}
",
    )
    .unwrap_or_else(|e| panic!("loss rule: {e}"));
    let psk = random_psk();
    let (a, b) = start_pair_with(&net, &psk, &psk, "", "");
    let setup = wait_up(&a, &b, Duration::from_secs(40));
    // Pings across both rekeys (one initiated by each side).
    let pinger = {
        let name = net.host_a.name.clone();
        std::thread::spawn(move || ping_counts_in(&name, HOST_B, 150, "0.1"))
    };
    // Three Child SA rekeys initiated by each side, alternating, while the pings run.
    let mut rekeys = Vec::new();
    for i in 0..6 {
        std::thread::sleep(Duration::from_secs(2));
        let who = if i % 2 == 0 { &a } else { &b };
        rekeys.push(rekey_and_wait(who, &a, &b));
    }
    let (tx, rx) = pinger.join().expect("pinger");
    // The newest Child SAs carry traffic.
    let (tx2, rx2) = ping_counts(&net.host_a, HOST_B, 20, "0.1");
    let lost = r.nft_counter("inet cwloss", "lost").unwrap_or(0);
    let passed = r.nft_counter("inet cwloss", "passed").unwrap_or(0);
    let (ta, tb) = (
        a.tunnel().expect("gw-a status"),
        b.tunnel().expect("gw-b status"),
    );
    eprintln!(
        "5 % loss: tunnel up after {:.2} s; 6 Child SA rekeys (a, b, a, ...) took {:?}; \
         pings {rx}/{tx} received across them, {rx2}/{tx2} after; the router dropped \
         {lost} and passed {passed} packets ({:.1} %); test {:.1} s",
        setup.as_secs_f64(),
        rekeys,
        100.0 * lost as f64 / (lost + passed).max(1) as f64,
        t_test.elapsed().as_secs_f64()
    );
    assert!(lost > 0, "the loss rule dropped nothing");
    assert!(tx >= 100, "ping sent {tx}");
    // Each ping crosses the lossy router twice (~9.75 % lost); allow twice that.
    assert!(
        rx * 100 >= tx * 80,
        "pings through the lossy WAN: {rx}/{tx}"
    );
    for (who, t) in [("gw-a", &ta), ("gw-b", &tb)] {
        assert_eq!(state(t), "established", "{who}: {t}");
        assert_eq!(child_count(t), 1, "{who} after the rekeys: {t}");
    }
    drop(a);
    drop(b);
    drop(net);
}

// ===== NAT =====

/// Runs in gw-a: one NAT keepalive (a 0xFF byte on UDP 4500 → 4500) from `argv[1]` to
/// `argv[2]`, through a raw socket (the daemon holds port 4500).
const KEEPALIVE_PY: &str = r#"
import socket, struct, sys
src, dst = socket.inet_aton(sys.argv[1]), socket.inet_aton(sys.argv[2])
udp = struct.pack("!HHHH", 4500, 4500, 9, 0) + b"\xff"
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 29, 0, 0x4000, 64, 17, 0, src, dst)
socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW).sendto(ip + udp, (sys.argv[2], 0))
"#;

/// UDP conntrack timeout in the NAT during the keepalive phase: longer than the 20 s
/// keepalive interval, shorter than the quiet period.
const NAT_UDP_TIMEOUT: &str = "24";
/// How long nothing but keepalives may cross the NAT.
const QUIET: Duration = Duration::from_secs(26);

/// The NAT's mapping of gw-a's UDP 4500: (public port, seconds left), from the router's
/// /proc/net/nf_conntrack.
fn natt_mapping(r: &Netns) -> Option<(u16, u64)> {
    let text = r.exec("cat", &["/proc/net/nf_conntrack"]).ok()?;
    text.lines()
        .filter(|l| l.contains(" udp ") && l.contains(&format!("src={WAN_A_PRIVATE} ")))
        .find_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            let sports: Vec<&str> = w.iter().filter_map(|x| x.strip_prefix("sport=")).collect();
            let dports: Vec<&str> = w.iter().filter_map(|x| x.strip_prefix("dport=")).collect();
            if sports.first() != Some(&"4500") {
                return None;
            }
            let port = dports.get(1)?.parse().ok()?;
            let left = w.get(4)?.parse().ok()?;
            Some((port, left))
        })
}

fn set_udp_timeouts(r: &Netns, secs: &str) {
    r.sysctl(&[
        ("net.netfilter.nf_conntrack_udp_timeout", secs),
        ("net.netfilter.nf_conntrack_udp_timeout_stream", secs),
    ]);
}

/// The peer in gw-b for the NAT test.
enum PeerB {
    Causeway(Daemon),
    Swan(Swan),
}

impl PeerB {
    fn log(&self) -> String {
        match self {
            PeerB::Causeway(d) => d.log_tail(30),
            PeerB::Swan(s) => s.log(),
        }
    }
}

fn nat_test(swan: bool) {
    let t_test = Instant::now();
    let net = topology_with(if swan { "nats" } else { "natc" }, Wan::Nat);
    let r = net.router();
    set_udp_timeouts(r, NAT_UDP_TIMEOUT);
    let psk = random_psk();
    // gw-a's liveness check after 35 s without traffic from gw-b: not during the quiet
    // phase (so only keepalives cross), soon after the NAT's port change.
    let extra_a = if swan {
        "dpd_delay = \"35s\"\nike_proposals = [\"aes256-sha256-modp2048s256\"]\nesp_proposals = [\"aes256gcm16\"]\n"
    } else {
        "dpd_delay = \"35s\"\n"
    };
    let peer = if swan {
        PeerB::Swan(Swan::start(&net.gw_b, &net.dir.0, &psk))
    } else {
        PeerB::Causeway(start_b(&net, &psk, "dpd_delay = \"120s\"\n", "debug"))
    };
    let a = start_a(&net, &psk, extra_a);
    let up = wait_for(Duration::from_secs(20), || {
        let t = a.tunnel()?;
        (state(&t) == "established" && child_count(&t) >= 1).then_some(t)
    });
    let ta = up.unwrap_or_else(|| {
        panic!(
            "no tunnel through the NAT\n--- gw-a:\n{}\n--- gw-b:\n{}",
            a.log_tail(30),
            peer.log()
        )
    });
    assert_eq!(
        first_child(&ta, "encap").as_deref(),
        Some("udp"),
        "Child SA through the NAT: {ta}"
    );
    assert!(
        ping_soon(&net.host_a, HOST_B),
        "no ping through the NAT\n--- gw-a:\n{}\n--- gw-b:\n{}",
        a.log_tail(20),
        peer.log()
    );
    ping(&net.host_b, HOST_A, 2).unwrap_or_else(|e| panic!("ping host-b -> host-a: {e}"));
    let t_last = Instant::now();
    let (p1, _) = natt_mapping(r).expect("a NAT mapping for UDP 4500");
    assert!((30000..=30099).contains(&p1), "mapped port {p1}");
    // Quiet phase: only keepalives may cross, and the mapping must live on.
    let counter = |name: &str| r.nft_counter("ip cwnat", name).unwrap_or(0);
    let (ka0, out0, in0) = (counter("ka_out"), counter("natt_out"), counter("natt_in"));
    let mut lefts = Vec::new();
    while t_last.elapsed() < QUIET {
        std::thread::sleep(Duration::from_secs(1));
        let m = natt_mapping(r);
        match m {
            Some((p, left)) if p == p1 => lefts.push(left),
            _ => panic!(
                "the NAT mapping {p1} went away after {:?} of quiet: {m:?}\n--- gw-a:\n{}",
                t_last.elapsed(),
                a.log_tail(20)
            ),
        }
    }
    let (ka1, out1, in1) = (counter("ka_out"), counter("natt_out"), counter("natt_in"));
    eprintln!(
        "NAT quiet {QUIET:?}: keepalives {}, other UDP 4500 out {}, in {}; mapping :{p1} \
         seconds left per second: {lefts:?}",
        ka1 - ka0,
        out1 - out0,
        in1 - in0
    );
    assert!(ka1 > ka0, "no NAT keepalive crossed in {QUIET:?}");
    assert_eq!(
        (out1 - out0, in1 - in0),
        (0, 0),
        "traffic other than keepalives crossed the NAT in the quiet phase"
    );
    // The NAT forgets the mapping and maps to other ports from now on.
    let t_change = Instant::now();
    r.nft("delete table ip cwnat\n")
        .unwrap_or_else(|e| panic!("{e}"));
    r.nft(&nat_rules("31000-31099"))
        .unwrap_or_else(|e| panic!("{e}"));
    set_udp_timeouts(r, "1");
    // A timeout change applies from an entry's next packet on: one more keepalive (as
    // gw-a would send it) makes the old mapping expire a second later.
    net.gw_a
        .exec("python3", &["-c", KEEPALIVE_PY, WAN_A_PRIVATE, WAN_B])
        .unwrap_or_else(|e| panic!("keepalive injection: {e}"));
    let gone = wait_for(Duration::from_secs(5), || {
        natt_mapping(r).is_none_or(|(p, _)| p != p1).then_some(())
    });
    set_udp_timeouts(r, NAT_UDP_TIMEOUT);
    assert!(gone.is_some(), "the NAT mapping :{p1} did not expire");
    // Traffic from behind the NAT resumes once gw-b follows the new port.
    let resumed = wait_for(Duration::from_secs(30), || {
        net.host_a
            .exec("ping", &["-c", "1", "-W", "1", "-q", HOST_B])
            .ok()
    });
    let resume = t_change.elapsed();
    let p2 = natt_mapping(r).map(|(p, _)| p);
    eprintln!(
        "NAT port change :{p1} -> :{p2:?}; traffic resumed {:.1} s after the change ({:?}); \
         test {:.1} s",
        resume.as_secs_f64(),
        resumed.is_some(),
        t_test.elapsed().as_secs_f64()
    );
    assert!(
        resumed.is_some(),
        "traffic did not resume through the new NAT port\n--- gw-a:\n{}\n--- gw-b:\n{}",
        a.log_tail(30),
        peer.log()
    );
    let p2 = p2.expect("a new NAT mapping");
    assert!((31000..=31099).contains(&p2), "new mapped port {p2}");
    ping(&net.host_a, HOST_B, 3).unwrap_or_else(|e| panic!("ping after the change: {e}"));
    ping(&net.host_b, HOST_A, 3).unwrap_or_else(|e| panic!("ping host-b -> host-a: {e}"));
    if let PeerB::Causeway(b) = &peer {
        // Causeway follows on the first authenticated ESP from the new port (not at gw-a's
        // next liveness check, `dpd_delay` 35 s): the change is over in a couple of seconds.
        assert!(
            resume < Duration::from_secs(5),
            "gw-b took {resume:?} to follow the new NAT port"
        );
        assert!(
            b.log_text().contains("NAT rebinding"),
            "gw-b did not log following the peer:\n{}",
            b.log_tail(30)
        );
    }
    drop(a);
    drop(peer);
    drop(net);
}

#[test]
fn nat_port_change_and_keepalives_causeway_peer() {
    if !can_run(&["ip", "ping", "nft", "cat", "python3"]) {
        return;
    }
    let _serial = serial();
    nat_test(false);
}

#[test]
fn nat_port_change_and_keepalives_strongswan_peer() {
    if !can_run(&["ip", "ping", "nft", "cat", "python3"]) {
        return;
    }
    if !Path::new(CHARON).exists() || !Path::new(SWANCTL).exists() {
        eprintln!("skipping: strongSwan (charon-systemd, swanctl) missing");
        return;
    }
    let _serial = serial();
    nat_test(true);
}
