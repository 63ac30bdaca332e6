//! A minimal IKEv2 peer: drives the sans-IO [`ikev2::Endpoint`] over real UDP sockets
//! (ports 500 and 4500 on `--local`) and prints events as JSON lines on stdout.
//!
//! ```text
//! ike_peer --local 192.0.2.1 --remote 192.0.2.2 --psk secret \
//!     [--initiate] [--ike aes256-sha1-modp1024] [--esp aes256gcm16] \
//!     [--local-ts 10.1.0.0/16] [--remote-ts 10.2.0.0/16] [--local-id ID] [--remote-id ID] \
//!     [--encap auto|force] [--hold SECONDS] [--timeout SECONDS]
//!     [--rekey-after SECONDS] [--rekey-ike-after SECONDS] [--fragment-size BYTES]
//!     [--nat-keepalive SECONDS] [--dpd SECONDS] [--retransmit-tries N]
//!     [--retransmit-timeout SECONDS]
//! ```
//!
//! Before exiting it prints `{"event":"stats","fragments_sent":N,"fragments_received":M}`
//! (IKE fragments, RFC 7383).
//!
//! Exits 0 after a Child SA came up, was held for `--hold` seconds and the IKE SA was
//! deleted (`--hold` < 0: keep running until the peer deletes it); exits 1 on failure or
//! after `--timeout` seconds.

use std::io::Write;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ikev2::crypto::SystemRng;
use ikev2::proposal::{parse_esp_proposals, parse_ike_proposals};
use ikev2::ts::parse_ts_list;
use ikev2::{Config, Encap, Endpoint, Event, Identity, Psk, Transmit};

struct Args {
    local: IpAddr,
    remote: IpAddr,
    psk: String,
    initiate: bool,
    ike: Vec<String>,
    esp: Vec<String>,
    local_ts: Vec<String>,
    remote_ts: Vec<String>,
    local_id: Option<String>,
    remote_id: Option<String>,
    encap: Encap,
    hold: f64,
    timeout: f64,
    rekey_after: Option<f64>,
    rekey_ike_after: Option<f64>,
    fragment_size: Option<usize>,
    nat_keepalive: Option<f64>,
    dpd: Option<f64>,
    retransmit_tries: Option<u32>,
    retransmit_timeout: Option<f64>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        local: IpAddr::from([0, 0, 0, 0]),
        remote: IpAddr::from([0, 0, 0, 0]),
        psk: String::new(),
        initiate: false,
        ike: Vec::new(),
        esp: Vec::new(),
        local_ts: Vec::new(),
        remote_ts: Vec::new(),
        local_id: None,
        remote_id: None,
        encap: Encap::Auto,
        hold: 0.0,
        timeout: 60.0,
        rekey_after: None,
        rekey_ike_after: None,
        fragment_size: None,
        nat_keepalive: None,
        dpd: None,
        retransmit_tries: None,
        retransmit_timeout: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        if k == "--initiate" {
            a.initiate = true;
            continue;
        }
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{k} {v}: {e}");
        match k.as_str() {
            "--local" => a.local = v.parse().map_err(|e| bad(&e))?,
            "--remote" => a.remote = v.parse().map_err(|e| bad(&e))?,
            "--psk" => a.psk = v,
            "--ike" => a.ike.push(v),
            "--esp" => a.esp.push(v),
            "--local-ts" => a.local_ts.push(v),
            "--remote-ts" => a.remote_ts.push(v),
            "--local-id" => a.local_id = Some(v),
            "--remote-id" => a.remote_id = Some(v),
            "--encap" => {
                a.encap = match v.as_str() {
                    "auto" => Encap::Auto,
                    "force" => Encap::Force,
                    _ => return Err(bad(&"auto or force")),
                }
            }
            "--hold" => a.hold = v.parse().map_err(|e| bad(&e))?,
            "--timeout" => a.timeout = v.parse().map_err(|e| bad(&e))?,
            "--rekey-after" => a.rekey_after = Some(v.parse().map_err(|e| bad(&e))?),
            "--rekey-ike-after" => a.rekey_ike_after = Some(v.parse().map_err(|e| bad(&e))?),
            "--fragment-size" => a.fragment_size = Some(v.parse().map_err(|e| bad(&e))?),
            "--nat-keepalive" => a.nat_keepalive = Some(v.parse().map_err(|e| bad(&e))?),
            "--dpd" => a.dpd = Some(v.parse().map_err(|e| bad(&e))?),
            "--retransmit-tries" => a.retransmit_tries = Some(v.parse().map_err(|e| bad(&e))?),
            "--retransmit-timeout" => a.retransmit_timeout = Some(v.parse().map_err(|e| bad(&e))?),
            _ => return Err(format!("unknown option {k}")),
        }
    }
    Ok(a)
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn print(line: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn event_json(e: &Event) -> String {
    match e {
        Event::IkeSaEstablished {
            spi_i,
            spi_r,
            initiator,
            suite,
            peer_id,
            nat,
            remote_addr,
        } => format!(
            "{{\"event\":\"ike_sa_established\",\"spi_i\":\"{spi_i:016x}\",\"spi_r\":\"{spi_r:016x}\",\"initiator\":{initiator},\"suite\":{},\"peer_id\":{},\"nat\":{nat},\"remote\":\"{remote_addr}\"}}",
            json_str(&suite.to_string()),
            json_str(peer_id)
        ),
        Event::ChildSaEstablished(c) => {
            let ts = |v: &[ikev2::TrafficSelector]| {
                v.iter().map(|t| json_str(&t.to_string())).collect::<Vec<_>>().join(",")
            };
            format!(
                "{{\"event\":\"child_sa_established\",\"local_spi\":\"{:08x}\",\"remote_spi\":\"{:08x}\",\"suite\":{},\"udp_encap\":{},\"local_ts\":[{}],\"remote_ts\":[{}],\"keymat_len\":{}}}",
                c.local_spi,
                c.remote_spi,
                json_str(&c.child_suite.to_string()),
                c.udp_encap,
                ts(&c.local_ts),
                ts(&c.remote_ts),
                c.keys_in.keymat().len()
            )
        }
        Event::ChildSaDeleted {
            local_spi,
            remote_spi,
        } => format!(
            "{{\"event\":\"child_sa_deleted\",\"local_spi\":\"{local_spi:08x}\",\"remote_spi\":\"{remote_spi:08x}\"}}"
        ),
        Event::IkeSaDeleted { spi_i, spi_r } => format!(
            "{{\"event\":\"ike_sa_deleted\",\"spi_i\":\"{spi_i:016x}\",\"spi_r\":\"{spi_r:016x}\"}}"
        ),
        Event::IkeSaRekeyed {
            old_spi_i,
            old_spi_r,
            spi_i,
            spi_r,
            suite,
        } => format!(
            "{{\"event\":\"ike_sa_rekeyed\",\"old_spi_i\":\"{old_spi_i:016x}\",\"old_spi_r\":\"{old_spi_r:016x}\",\"spi_i\":\"{spi_i:016x}\",\"spi_r\":\"{spi_r:016x}\",\"suite\":{}}}",
            json_str(&suite.to_string())
        ),
        Event::Failed(r) => format!(
            "{{\"event\":\"failed\",\"reason\":{},\"debug\":{}}}",
            json_str(&r.to_string()),
            json_str(&format!("{r:?}"))
        ),
        Event::DeadPeer {
            silent_for, action, ..
        } => format!(
            "{{\"event\":\"dead_peer\",\"silent_for\":{:.3},\"action\":{}}}",
            silent_for.as_secs_f64(),
            json_str(&format!("{action:?}"))
        ),
        other => format!("{{\"event\":\"other\",\"debug\":{}}}", json_str(&format!("{other:?}"))),
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// SKF (53) as the first payload: an IKE fragment.
fn is_fragment(ike: &[u8]) -> bool {
    ike.get(16) == Some(&53)
}

fn send(sockets: &[(u16, UdpSocket)], t: &Transmit) {
    let Some((_, s)) = sockets.iter().find(|(p, _)| *p == t.src.port()) else {
        return;
    };
    let mut buf = Vec::with_capacity(t.payload.len() + 4);
    if t.needs_non_esp_marker() {
        buf.extend_from_slice(&[0; 4]);
    }
    buf.extend_from_slice(&t.payload);
    let _ = s.send_to(&buf, t.dst);
}

fn main() {
    let a = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ike_peer: {e}");
            std::process::exit(2);
        }
    };
    let mut cfg = Config::new(
        SocketAddr::new(a.local, 500),
        SocketAddr::new(a.remote, 500),
        Psk::new(a.psk.as_bytes().to_vec()),
    );
    let or_exit = |e: String| -> ! {
        eprintln!("ike_peer: {e}");
        std::process::exit(2)
    };
    if !a.ike.is_empty() {
        cfg.ike_proposals =
            parse_ike_proposals(&strs(&a.ike)).unwrap_or_else(|e| or_exit(e.to_string()));
    }
    if !a.esp.is_empty() {
        cfg.esp_proposals =
            parse_esp_proposals(&strs(&a.esp)).unwrap_or_else(|e| or_exit(e.to_string()));
    }
    if !a.local_ts.is_empty() {
        cfg.local_ts = parse_ts_list(&a.local_ts).unwrap_or_else(|e| or_exit(e.to_string()));
    }
    if !a.remote_ts.is_empty() {
        cfg.remote_ts = parse_ts_list(&a.remote_ts).unwrap_or_else(|e| or_exit(e.to_string()));
    }
    if let Some(id) = &a.local_id {
        cfg.local_id = Identity::parse(id);
    }
    cfg.remote_id = a.remote_id.as_deref().map(Identity::parse);
    cfg.encap = a.encap;
    if let Some(n) = a.fragment_size {
        cfg.fragment_size = n;
    }
    if let Some(s) = a.nat_keepalive {
        cfg.nat_keepalive = Some(Duration::from_secs_f64(s.max(0.0)));
    }
    if let Some(s) = a.dpd {
        cfg.dpd_delay = Some(Duration::from_secs_f64(s.max(0.0)));
    }
    if let Some(n) = a.retransmit_tries {
        cfg.retransmit_tries = n;
    }
    if let Some(s) = a.retransmit_timeout {
        cfg.retransmit_timeout = Duration::from_secs_f64(s.max(0.0));
    }

    // Sockets on 500 and 4500; one reader thread each feeds a channel.
    let (tx, rx) = mpsc::channel::<(SocketAddr, SocketAddr, Vec<u8>)>();
    let mut sockets = Vec::new();
    for port in [500u16, 4500] {
        let local = SocketAddr::new(a.local, port);
        let s = UdpSocket::bind(local).unwrap_or_else(|e| or_exit(format!("bind {local}: {e}")));
        let r = s
            .try_clone()
            .unwrap_or_else(|e| or_exit(format!("clone socket: {e}")));
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = r.recv_from(&mut buf) {
                let mut d = &buf[..n];
                if port == 4500 {
                    // Non-ESP marker: IKE; otherwise ESP or a NAT keepalive (ignored here).
                    if d.len() < 4 || d[..4] != [0; 4] {
                        continue;
                    }
                    d = &d[4..];
                }
                if tx.send((from, local, d.to_vec())).is_err() {
                    break;
                }
            }
        });
        sockets.push((port, s));
    }

    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(a.timeout.max(0.0));
    let mut ep = Endpoint::new(cfg, Box::new(SystemRng));
    if a.initiate {
        ep.initiate(Instant::now());
    }
    let mut hold_until: Option<Instant> = None;
    // (when, our inbound SPI of the first Child SA) for `--rekey-after`.
    let mut rekey: Option<(Instant, u32)> = None;
    let mut rekey_ike: Option<Instant> = None;
    let mut terminated = false;
    let mut code = 1;
    let (mut frags_out, mut frags_in) = (0u64, 0u64);
    loop {
        while let Some(t) = ep.poll_transmit() {
            frags_out += u64::from(is_fragment(&t.payload));
            send(&sockets, &t);
        }
        let mut done = false;
        while let Some(e) = ep.poll_event() {
            print(event_json(&e));
            match e {
                Event::ChildSaEstablished(c) if hold_until.is_none() => {
                    code = 0;
                    if let Some(s) = a.rekey_ike_after {
                        rekey_ike = Some(Instant::now() + Duration::from_secs_f64(s));
                    }
                    if let Some(s) = a.rekey_after {
                        rekey = Some((Instant::now() + Duration::from_secs_f64(s), c.local_spi));
                    }
                    hold_until = Some(if a.hold < 0.0 {
                        deadline
                    } else {
                        Instant::now() + Duration::from_secs_f64(a.hold)
                    });
                }
                Event::Failed(_) => {
                    code = 1;
                    done = true;
                }
                Event::IkeSaDeleted { .. } => done = true,
                _ => {}
            }
        }
        if done || (terminated && ep.ike_sas().is_empty()) {
            break;
        }
        let now = Instant::now();
        if now >= deadline && !terminated {
            print("{\"event\":\"timeout\"}".into());
            if hold_until.is_none() || a.hold >= 0.0 {
                code = 1;
            }
            break;
        }
        if let Some((t, spi)) = rekey {
            if now >= t {
                rekey = None;
                ep.rekey_child(now, spi);
                continue;
            }
        }
        if rekey_ike.is_some_and(|t| now >= t) {
            rekey_ike = None;
            ep.rekey_ike(now);
            continue;
        }
        if let Some(h) = hold_until {
            if now >= h && !terminated {
                terminated = true;
                ep.terminate(now);
                continue;
            }
        }
        let mut wake = deadline;
        if let Some(t) = ep.poll_timeout() {
            wake = wake.min(t);
        }
        if let Some(h) = hold_until.filter(|_| !terminated) {
            wake = wake.min(h);
        }
        if let Some((t, _)) = rekey {
            wake = wake.min(t);
        }
        if let Some(t) = rekey_ike {
            wake = wake.min(t);
        }
        let wait = wake.saturating_duration_since(now);
        match rx.recv_timeout(wait) {
            Ok((from, to, d)) => {
                frags_in += u64::from(is_fragment(&d));
                ep.handle_datagram(Instant::now(), from, to, &d)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => ep.handle_timeout(Instant::now()),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    print(format!(
        "{{\"event\":\"stats\",\"fragments_sent\":{frags_out},\"fragments_received\":{frags_in}}}"
    ));
    std::process::exit(code);
}
