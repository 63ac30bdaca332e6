//! BGP route feeder for `benches/bgp/run.sh`: one eBGP session (driven by the sans-IO
//! [`bgp::Session`] over a blocking `std::net::TcpStream`) that announces N IPv4 /24
//! prefixes, packed ~1000 per UPDATE, and withdraws them all on command.
//!
//! ```text
//! feeder --connect 10.99.0.1[:179] | --listen 0.0.0.0:179
//!        --local-as 65002 --peer-as 65001 --router-id 10.99.0.2 --next-hop 10.99.0.2
//!        --count 100000 [--base 16.0.0.0]
//! ```
//!
//! Commands, one per line on stdin: `announce`, `withdraw`, `quit` (EOF = quit).
//! Progress lines on stdout, each with a Unix timestamp in seconds:
//! `ESTABLISHED <t>`, `ANNOUNCED <n> <t>` (last byte written), `WITHDRAWN <n> <t>`, `DOWN <why>`.
//! Keepalives keep going while waiting for commands.

use std::io::{BufRead, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bgp::wire::{AsPath, Origin, PathAttributes, UpdateRepr};
use bgp::{Afi, Dir, Prefix, Session, SessionConfig, SessionEvent};

/// Prefixes per UPDATE: a /24 NLRI is 4 bytes, attributes ~25, so 1000 fits 4096.
const PER_UPDATE: usize = 1000;

enum Input {
    Bytes(Vec<u8>),
    Closed,
    Cmd(String),
}

struct Args {
    connect: Option<SocketAddr>,
    listen: Option<SocketAddr>,
    local_as: u32,
    peer_as: u32,
    router_id: Ipv4Addr,
    next_hop: Option<Ipv4Addr>,
    count: usize,
    base: Ipv4Addr,
}

fn usage(msg: &str) -> ! {
    eprintln!("feeder: {msg}");
    eprintln!(
        "usage: feeder (--connect ADDR[:PORT] | --listen ADDR:PORT) --local-as N --peer-as N \
         --router-id IP [--next-hop IP] --count N [--base IP]"
    );
    std::process::exit(2)
}

fn sock_addr(s: &str) -> SocketAddr {
    s.parse::<SocketAddr>()
        .or_else(|_| s.parse::<IpAddr>().map(|a| SocketAddr::new(a, 179)))
        .unwrap_or_else(|_| usage(&format!("bad address {s}")))
}

fn val<T: std::str::FromStr>(k: &str, v: &str) -> T {
    v.parse()
        .unwrap_or_else(|_| usage(&format!("bad value for {k}: {v}")))
}

fn parse_args() -> Args {
    let mut a = Args {
        connect: None,
        listen: None,
        local_as: 65002,
        peer_as: 65001,
        router_id: Ipv4Addr::new(10, 99, 0, 2),
        next_hop: None,
        count: 10_000,
        base: Ipv4Addr::new(16, 0, 0, 0),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it
            .next()
            .unwrap_or_else(|| usage(&format!("{k} needs a value")));
        match k.as_str() {
            "--connect" => a.connect = Some(sock_addr(&v)),
            "--listen" => a.listen = Some(sock_addr(&v)),
            "--local-as" => a.local_as = val(&k, &v),
            "--peer-as" => a.peer_as = val(&k, &v),
            "--router-id" => a.router_id = val(&k, &v),
            "--next-hop" => a.next_hop = Some(val(&k, &v)),
            "--count" => a.count = val(&k, &v),
            "--base" => a.base = val(&k, &v),
            _ => usage(&format!("unknown option {k}")),
        }
    }
    if a.connect.is_some() == a.listen.is_some() {
        usage("give exactly one of --connect / --listen");
    }
    // /24s from `base`: at most 2^24 of them, staying below 224.0.0.0.
    let room = (224u64 << 24).saturating_sub(u64::from(u32::from(a.base))) >> 8;
    if a.count as u64 > room {
        usage("--count too large for --base");
    }
    a
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn prefixes(base: Ipv4Addr, count: usize) -> Vec<Prefix> {
    let b = u32::from(base) & 0xffff_ff00;
    (0..count as u32)
        .filter_map(|i| Prefix::new(IpAddr::V4(Ipv4Addr::from(b + (i << 8))), 24))
        .collect()
}

fn tcp(args: &Args) -> std::io::Result<TcpStream> {
    if let Some(addr) = args.connect {
        // The DUT may still be starting: retry for up to 30 s.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                Ok(s) => return Ok(s),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
    let addr = args.listen.unwrap_or_else(|| usage("no address"));
    let l = TcpListener::bind(addr)?;
    let (s, _) = l.accept()?;
    Ok(s)
}

struct Feeder {
    session: Session,
    dir: Dir,
    out: TcpStream,
    attrs: PathAttributes,
    down: bool,
}

impl Feeder {
    /// Writes what the session queued; handles its events.
    fn flush(&mut self) -> std::io::Result<()> {
        while let Some(t) = self.session.poll_transmit() {
            self.out.write_all(&t.bytes)?;
        }
        while let Some(ev) = self.session.poll_event() {
            match ev {
                SessionEvent::Up(n) => {
                    println!("ESTABLISHED {:.6} peer_as={}", unix_now(), n.peer_as);
                }
                SessionEvent::Down { reason } => {
                    println!("DOWN {reason}");
                    self.down = true;
                }
                SessionEvent::Close { .. } => self.down = true,
                SessionEvent::Update(_) | SessionEvent::RouteRefresh(_) => {}
            }
        }
        Ok(())
    }

    fn send(&mut self, u: &UpdateRepr) -> std::io::Result<()> {
        if !self.session.send_update(u) {
            return Err(std::io::Error::other("UPDATE not sent (not Established?)"));
        }
        // Write as we go so memory stays flat and the DUT starts early.
        self.flush()
    }

    fn announce(&mut self, all: &[Prefix]) -> std::io::Result<()> {
        for chunk in all.chunks(PER_UPDATE) {
            let u = UpdateRepr {
                attrs: self.attrs.clone(),
                nlri: chunk.to_vec(),
                ..UpdateRepr::default()
            };
            self.send(&u)?;
        }
        self.send(&UpdateRepr::end_of_rib(Afi::Ipv4))?;
        self.out.flush()?;
        println!("ANNOUNCED {} {:.6}", all.len(), unix_now());
        Ok(())
    }

    fn withdraw(&mut self, all: &[Prefix]) -> std::io::Result<()> {
        for chunk in all.chunks(PER_UPDATE) {
            let u = UpdateRepr {
                withdrawn: chunk.to_vec(),
                ..UpdateRepr::default()
            };
            self.send(&u)?;
        }
        self.out.flush()?;
        println!("WITHDRAWN {} {:.6}", all.len(), unix_now());
        Ok(())
    }
}

fn main() {
    let args = parse_args();
    let all = prefixes(args.base, args.count);
    let stream = tcp(&args).unwrap_or_else(|e| {
        eprintln!("feeder: TCP: {e}");
        std::process::exit(1)
    });
    let _ = stream.set_nodelay(true);
    let next_hop = args.next_hop.unwrap_or_else(|| match stream.local_addr() {
        Ok(SocketAddr::V4(a)) => *a.ip(),
        _ => args.router_id,
    });
    let mut cfg = SessionConfig::new(args.local_as, args.peer_as, args.router_id);
    cfg.families = vec![Afi::Ipv4];
    cfg.graceful_restart = None;
    cfg.passive = args.listen.is_some();
    let dir = if args.listen.is_some() {
        Dir::Inbound
    } else {
        Dir::Outbound
    };
    let mut session = Session::new(cfg);
    let now = Instant::now();
    session.start(now);
    let _ = session.poll_connect();
    session.tcp_connected(now, dir);

    let (tx, rx) = mpsc::channel::<Input>();
    let mut rd = stream.try_clone().unwrap_or_else(|e| {
        eprintln!("feeder: {e}");
        std::process::exit(1)
    });
    let txr = tx.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        loop {
            match rd.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = txr.send(Input::Closed);
                    return;
                }
                Ok(n) => {
                    if txr.send(Input::Bytes(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    });
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(Input::Cmd(line.trim().to_string())).is_err() {
                return;
            }
        }
        let _ = tx.send(Input::Cmd("quit".into()));
    });

    let mut f = Feeder {
        session,
        dir,
        out: stream,
        attrs: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence(vec![args.local_as])),
            next_hop: Some(next_hop),
            ..PathAttributes::default()
        },
        down: false,
    };
    let result = (|| -> std::io::Result<()> {
        f.flush()?;
        loop {
            let wait = f
                .session
                .poll_timeout()
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_secs(1));
            match rx.recv_timeout(wait) {
                Ok(Input::Bytes(b)) => f.session.handle_bytes(Instant::now(), f.dir, &b),
                Ok(Input::Closed) => {
                    f.session.tcp_closed(Instant::now(), f.dir);
                    f.flush()?;
                    return Err(std::io::Error::other("peer closed the connection"));
                }
                Ok(Input::Cmd(c)) => match c.as_str() {
                    "announce" => f.announce(&all)?,
                    "withdraw" => f.withdraw(&all)?,
                    "quit" => {
                        f.session.stop(Instant::now(), "feeder done");
                        f.flush()?;
                        return Ok(());
                    }
                    "" => {}
                    other => eprintln!("feeder: unknown command {other:?}"),
                },
                Err(mpsc::RecvTimeoutError::Timeout) => f.session.handle_timeout(Instant::now()),
                Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
            }
            f.flush()?;
            if f.down {
                return Err(std::io::Error::other("session down"));
            }
        }
    })();
    if let Err(e) = result {
        eprintln!("feeder: {e}");
        std::process::exit(1);
    }
}
