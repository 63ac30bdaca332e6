//! Interop with BIRD 2: BIRD runs in one network namespace, our Speaker talks to it over a
//! real TCP connection from a socket created inside the other namespace.
//!
//! Skips (with a message) when not root or when `bird`/`birdc` are missing.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bgp::{Dir, NeighborConfig, Policy, Prefix, Speaker, SpeakerConfig, SpeakerEvent};

const BIRD_AS: u32 = 65515;
const OUR_AS: u32 = 4_200_000_010;

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("run ip");
    assert!(st.success(), "ip {args:?} failed");
}

/// Namespaces, BIRD process and temp dir; removed on drop, also when the test fails.
struct Lab {
    ns_bird: String,
    ns_us: String,
    dir: PathBuf,
    bird: Option<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut c) = self.bird.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.ns_bird, &self.ns_us] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Lab {
    fn sock(&self) -> String {
        self.dir.join("bird.ctl").display().to_string()
    }

    fn birdc(&self, cmd: &str) -> String {
        let out = Command::new("birdc")
            .args(["-s", &self.sock()])
            .args(cmd.split_whitespace())
            .output()
            .expect("run birdc");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn setup(tag: &str) -> Lab {
    let pid = std::process::id();
    let lab = Lab {
        ns_bird: format!("cw-bgpb{tag}-{pid}"),
        ns_us: format!("cw-bgpu{tag}-{pid}"),
        dir: std::env::temp_dir().join(format!("cw-bgp-bird{tag}-{pid}")),
        bird: None,
    };
    let _ = fs::remove_dir_all(&lab.dir);
    fs::create_dir_all(&lab.dir).expect("temp dir");
    ip(&["netns", "add", &lab.ns_bird]);
    ip(&["netns", "add", &lab.ns_us]);
    ip(&[
        "-n",
        &lab.ns_bird,
        "link",
        "add",
        "vb",
        "type",
        "veth",
        "peer",
        "name",
        "vu",
        "netns",
        &lab.ns_us,
    ]);
    for (ns, dev, v4, v6) in [
        (&lab.ns_bird, "vb", "192.0.2.1/24", "2001:db8::1/64"),
        (&lab.ns_us, "vu", "192.0.2.2/24", "2001:db8::2/64"),
    ] {
        ip(&["-n", ns, "addr", "add", v4, "dev", dev]);
        ip(&["-n", ns, "addr", "add", v6, "dev", dev, "nodad"]);
        ip(&["-n", ns, "link", "set", dev, "up"]);
        ip(&["-n", ns, "link", "set", "lo", "up"]);
    }
    lab
}

const BIRD_CONF: &str = r#"
log stderr all;
router id 192.0.2.1;
protocol device {}
protocol static s4 { ipv4; route 10.2.0.0/16 unreachable; route 10.2.1.0/24 unreachable; }
protocol static s6 { ipv6; route 2001:db8:2::/48 unreachable; }
protocol bgp causeway {
  local 192.0.2.1 as 65515;
  neighbor 192.0.2.2 as 4200000010;
  PASSIVE
  hold time 180;
  keepalive time 60;
  ipv4 { import all; export all; };
  ipv6 { import all; export all; next hop address 2001:db8::1; };
}
"#;

/// Runs `f` in a thread that entered namespace `ns` (setns affects only the calling thread;
/// sockets stay in the namespace they were created in).
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = fs::File::open(&path).expect("open netns");
        // SAFETY: setns on a valid namespace fd, for the calling thread only.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns failed");
        f()
    })
    .join()
    .expect("netns thread")
}

fn idx(d: Dir) -> usize {
    match d {
        Dir::Outbound => 0,
        Dir::Inbound => 1,
    }
}

/// Drives a Speaker with one neighbor (id 1) over real sockets in namespace `ns`.
struct Driver {
    sp: Speaker,
    ns: String,
    peer: SocketAddr,
    conns: [Option<TcpStream>; 2],
    listener: Option<TcpListener>,
    events: Vec<SpeakerEvent>,
    /// Hold outbound connects this long (to make both sides' connections meet).
    connect_delay: Duration,
    connect_at: Option<Instant>,
}

impl Driver {
    fn write(&mut self, dir: Dir, mut bytes: &[u8]) {
        let Some(s) = self.conns[idx(dir)].as_mut() else {
            return;
        };
        while !bytes.is_empty() {
            match s.write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(_) => return,
            }
        }
    }

    /// Runs the speaker for up to `max`, until `done` holds.
    fn run_until(
        &mut self,
        max: Duration,
        mut done: impl FnMut(&Speaker, &[SpeakerEvent]) -> bool,
    ) -> bool {
        let end = Instant::now() + max;
        let mut buf = [0u8; 8192];
        while Instant::now() < end {
            let now = Instant::now();
            if let Some(l) = &self.listener {
                if let Ok((s, _)) = l.accept() {
                    s.set_nonblocking(true).expect("nonblocking");
                    self.conns[1] = Some(s);
                    self.sp.tcp_connected(now, 1, Dir::Inbound);
                }
            }
            if self.sp.poll_connect().is_some() {
                self.connect_at = Some(now + self.connect_delay);
            }
            if self.connect_at.is_some_and(|t| t <= now) {
                self.connect_at = None;
                let peer = self.peer;
                let r = in_ns(&self.ns, move || {
                    TcpStream::connect_timeout(&peer, Duration::from_secs(1))
                });
                match r {
                    Ok(s) => {
                        s.set_nonblocking(true).expect("nonblocking");
                        self.sp
                            .set_local_address(1, s.local_addr().expect("local").ip());
                        self.conns[0] = Some(s);
                        self.sp.tcp_connected(Instant::now(), 1, Dir::Outbound);
                    }
                    Err(_) => self.sp.tcp_failed(Instant::now(), 1),
                }
            }
            if self.sp.poll_timeout().is_some_and(|t| t <= now) {
                self.sp.handle_timeout(now);
            }
            while let Some((_, t)) = self.sp.poll_transmit() {
                self.write(t.dir, &t.bytes);
            }
            while let Some(e) = self.sp.poll_event() {
                if let SpeakerEvent::Close { dir, .. } = &e {
                    self.conns[idx(*dir)] = None;
                }
                self.events.push(e);
            }
            if done(&self.sp, &self.events) {
                return true;
            }
            let mut idle = true;
            for dir in [Dir::Outbound, Dir::Inbound] {
                let Some(s) = self.conns[idx(dir)].as_mut() else {
                    continue;
                };
                match s.read(&mut buf) {
                    Ok(0) => {
                        self.conns[idx(dir)] = None;
                        self.sp.tcp_closed(Instant::now(), 1, dir);
                        idle = false;
                    }
                    Ok(n) => {
                        self.sp.handle_bytes(Instant::now(), 1, dir, &buf[..n]);
                        idle = false;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(_) => {
                        self.conns[idx(dir)] = None;
                        self.sp.tcp_closed(Instant::now(), 1, dir);
                    }
                }
            }
            if idle {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        false
    }
}

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

/// Sets up namespaces, starts BIRD (passive or active) and a Speaker driver; `None` = skip.
fn start(tag: &str, bird_passive: bool, as4: bool) -> Option<(Lab, Driver)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP interop_with_bird: needs root (network namespaces)");
        return None;
    }
    if !have("bird") || !have("birdc") {
        eprintln!("SKIP interop_with_bird: bird/birdc not installed (apt install bird2)");
        return None;
    }
    let mut lab = setup(tag);
    let conf = lab.dir.join("bird.conf");
    let passive = if bird_passive {
        "passive on;"
    } else {
        "connect delay time 1;"
    };
    let mut text = BIRD_CONF.replace("PASSIVE", passive);
    if !as4 {
        // We act as an old 2-byte speaker (AS 65010); BIRD has a 4-byte AS, which it must
        // send to us as AS_TRANS plus AS4_PATH (RFC 6793).
        text = text.replace("as 4200000010;", "as 65010;").replace(
            "local 192.0.2.1 as 65515;",
            "local 192.0.2.1 as 4200000020;",
        );
    }
    fs::write(&conf, text).expect("write bird.conf");
    let log = fs::File::create(lab.dir.join("bird.log")).expect("log");
    lab.bird = Some(
        Command::new("ip")
            .args(["netns", "exec", &lab.ns_bird, "bird", "-f", "-c"])
            .arg(&conf)
            .args(["-s", &lab.sock()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start bird"),
    );
    let mut n = NeighborConfig::new(1, "192.0.2.1".parse().unwrap(), BIRD_AS);
    n.hold_time = 240;
    n.next_hop_v4 = Some("192.0.2.2".parse().unwrap());
    n.next_hop_v6 = Some("2001:db8::2".parse().unwrap());
    n.policy.announce = vec![p("10.1.0.0/16"), p("2001:db8:1::/48")];
    if !as4 {
        n.remote_as = 23456;
        n.four_octet_as = false;
    }
    let mut sp = Speaker::new(SpeakerConfig {
        local_as: if as4 { OUR_AS } else { 65010 },
        router_id: "192.0.2.2".parse().unwrap(),
        neighbors: vec![n],
    });
    sp.start(Instant::now());
    let listener = (!bird_passive).then(|| {
        in_ns(&lab.ns_us, || {
            let l = TcpListener::bind("192.0.2.2:179").expect("listen on 179");
            l.set_nonblocking(true).expect("nonblocking");
            l
        })
    });
    let d = Driver {
        sp,
        ns: lab.ns_us.clone(),
        peer: "192.0.2.1:179".parse().unwrap(),
        conns: [None, None],
        listener,
        events: vec![],
        connect_delay: Duration::ZERO,
        connect_at: None,
    };
    Some((lab, d))
}

fn wait_up(lab: &Lab, d: &mut Driver) {
    wait_up_as4(lab, d, true);
}

fn wait_up_as4(lab: &Lab, d: &mut Driver, as4: bool) {
    let up = d.run_until(Duration::from_secs(30), |_, ev| {
        ev.iter()
            .any(|e| matches!(e, SpeakerEvent::SessionUp { .. }))
    });
    let log = fs::read_to_string(lab.dir.join("bird.log")).unwrap_or_default();
    assert!(
        up,
        "session did not come up; events {:?}\nbird log:\n{log}",
        d.events
    );
    let neg = d.sp.session(1).unwrap().negotiated().unwrap().clone();
    let peer_as = if as4 { BIRD_AS } else { 23456 };
    assert_eq!(
        (neg.peer_as, neg.hold_time, neg.keepalive),
        (peer_as, 180, 60)
    );
    assert_eq!(neg.ctx.four_octet_as, as4);
    eprintln!("established: {neg:?}");
}

#[test]
fn interop_with_bird() {
    let Some((lab, mut d)) = start("p", true, true) else {
        return;
    };
    // 1. Established with 4-byte ASNs and BIRD's 180 s hold time.
    wait_up(&lab, &mut d);

    // 2. BIRD's routes arrive (IPv4 + IPv6) with BIRD's next hops.
    let want = [p("10.2.0.0/16"), p("10.2.1.0/24"), p("2001:db8:2::/48")];
    let got = d.run_until(Duration::from_secs(10), |sp, _| {
        want.iter().all(|w| sp.fib().contains_key(w))
    });
    assert!(got, "routes from BIRD missing: {:?}", d.sp.fib());
    let v4: IpAddr = "192.0.2.1".parse().unwrap();
    assert_eq!(d.sp.fib().get(&p("10.2.0.0/16")), Some(vec![(v4, 1)]));
    let nh6 = d.sp.fib().get(&p("2001:db8:2::/48")).unwrap_or_default()[0].0;
    assert!(nh6.is_ipv6(), "{nh6}");
    eprintln!("FIB from BIRD: {:?}", d.sp.fib());

    // 3. Our routes show in BIRD.
    let mut shown = String::new();
    let ok = d.run_until(Duration::from_secs(10), |_, _| {
        shown = lab.birdc("show route protocol causeway all");
        shown.contains("10.1.0.0/16") && shown.contains("2001:db8:1::/48")
    });
    assert!(ok, "BIRD does not show our routes:\n{shown}");
    assert!(
        shown.contains("4200000010"),
        "AS path lacks our 4-byte AS:\n{shown}"
    );
    eprintln!("birdc show route:\n{shown}");

    // 4. Withdraw the IPv6 prefix.
    d.sp.set_policy(
        1,
        Policy {
            announce: vec![p("10.1.0.0/16")],
            ..Policy::default()
        },
    );
    let ok = d.run_until(Duration::from_secs(10), |_, _| {
        shown = lab.birdc("show route protocol causeway");
        shown.contains("10.1.0.0/16") && !shown.contains("2001:db8:1::/48")
    });
    assert!(ok, "withdraw not seen by BIRD:\n{shown}");

    // 5. Shutdown communication reaches BIRD.
    d.sp.stop(Instant::now(), "causeway interop test done");
    let _ = d.run_until(Duration::from_millis(300), |_, _| false);
    let proto = lab.birdc("show protocols all causeway");
    eprintln!("birdc show protocols:\n{proto}");
    assert!(proto.contains("causeway interop test done"), "{proto}");
}

#[test]
fn interop_with_bird_both_active() {
    // Both sides connect (as Azure does): collision resolution must leave one session.
    let Some((lab, mut d)) = start("a", false, true) else {
        return;
    };
    // BIRD connects after 1 s; our connect goes out after 2 s, onto a session that BIRD's
    // connection already brought up or is bringing up.
    d.connect_delay = Duration::from_secs(2);
    wait_up(&lab, &mut d);
    let _ = d.run_until(Duration::from_secs(3), |_, _| false);
    let closes = d
        .events
        .iter()
        .filter(|e| matches!(e, SpeakerEvent::Close { .. }))
        .count();
    assert!(closes >= 1, "no collision happened: {:?}", d.events);
    let ok = d.run_until(Duration::from_secs(10), |sp, _| {
        sp.fib().contains_key(&p("10.2.0.0/16"))
    });
    assert!(ok, "no routes from BIRD: {:?}", d.sp.fib());
    // Stay up a few seconds: no flapping after the collision.
    let flapped = d.run_until(Duration::from_secs(3), |_, ev| {
        ev.iter()
            .any(|e| matches!(e, SpeakerEvent::SessionDown { .. }))
    });
    assert!(!flapped, "session went down: {:?}", d.events);
    let proto = lab.birdc("show protocols causeway");
    assert!(proto.contains("Established"), "{proto}");
    let open = d.conns.iter().filter(|c| c.is_some()).count();
    assert_eq!(open, 1, "exactly one TCP connection survives");
    let dir = d.sp.session(1).unwrap().negotiated().unwrap().dir;
    eprintln!("both active: session on {dir:?}; events {:?}", d.events);
}

#[test]
fn interop_with_bird_two_byte_asn_peer() {
    // A 2-byte session: BIRD's 4-byte AS reaches us as AS_TRANS plus AS4_PATH (RFC 6793).
    let Some((lab, mut d)) = start("2", true, false) else {
        return;
    };
    wait_up_as4(&lab, &mut d, false);
    let ok = d.run_until(Duration::from_secs(10), |sp, _| {
        sp.fib().contains_key(&p("10.2.0.0/16"))
    });
    assert!(ok, "no routes from BIRD: {:?}", d.sp.fib());
    let sel = d.sp.rib().selected(&p("10.2.0.0/16")).unwrap();
    // AS_PATH [23456] + AS4_PATH [4200000020], merged back into the real path.
    assert_eq!(
        sel.best.1.attrs.as_path,
        Some(bgp::wire::AsPath::sequence(vec![4_200_000_020]))
    );
    let mut shown = String::new();
    let ok = d.run_until(Duration::from_secs(10), |_, _| {
        shown = lab.birdc("show route protocol causeway all");
        shown.contains("10.1.0.0/16")
    });
    assert!(ok, "BIRD does not show our routes:\n{shown}");
    assert!(shown.contains("BGP.as_path: 65010"), "{shown}");
    eprintln!("2-byte peer sees:\n{shown}");
}
