//! Human-readable output of the control queries.

use std::fmt::Write as _;

use crate::api::{ChildSaStatus, Counters, NeighborStatus, RouteStatus, Snapshot, TunnelStatus};

/// `1h02m`, `3m05s`, `12s`.
pub fn age(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m > 0 {
        format!("{m}m{s:02}s")
    } else {
        format!("{s}s")
    }
}

/// `1.2 MiB`, `512 B`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

fn counters(c: &Counters) -> String {
    format!(
        "in {} ({} pkts), out {} ({} pkts)",
        bytes(c.bytes_in),
        c.packets_in,
        bytes(c.bytes_out),
        c.packets_out
    )
}

fn child(out: &mut String, c: &ChildSaStatus) {
    let rekey = c
        .rekey_in_secs
        .map(|r| format!(", rekey in {}", age(r)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "    child SA  {} in {} / out {}  {}  age {}{}",
        c.algorithms,
        c.spi_in,
        c.spi_out,
        c.encap,
        age(c.age_secs),
        rekey
    );
    let _ = writeln!(
        out,
        "              {} === {}",
        c.local_ts.join(","),
        c.remote_ts.join(",")
    );
    let _ = writeln!(out, "              {}", counters(&c.counters));
}

fn tunnel(out: &mut String, t: &TunnelStatus, with_sas: bool) {
    let _ = writeln!(
        out,
        "tunnel {}  {}  {} -> {}  dev {}",
        t.name, t.state, t.local_addr, t.remote_addr, t.interface
    );
    match &t.ike_sa {
        Some(ike) if ike.state != "established" => {
            let _ = writeln!(
                out,
                "    IKE SA    {}  {}  spi {}_i {}_r",
                ike.state,
                if ike.initiator {
                    "initiator"
                } else {
                    "responder"
                },
                ike.spi_i,
                ike.spi_r
            );
        }
        Some(ike) => {
            let rekey = ike
                .rekey_in_secs
                .map(|r| format!(", rekey in {}", age(r)))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "    IKE SA    {}  {}  {}  spi {}_i {}_r  age {}{}",
                ike.state,
                if ike.initiator {
                    "initiator"
                } else {
                    "responder"
                },
                ike.algorithms,
                ike.spi_i,
                ike.spi_r,
                age(ike.age_secs),
                rekey
            );
        }
        None => {
            let _ = writeln!(out, "    IKE SA    none");
        }
    }
    if with_sas || t.child_sas.len() <= 2 {
        for c in &t.child_sas {
            child(out, c);
        }
    } else {
        let _ = writeln!(out, "    {} child SAs", t.child_sas.len());
    }
    let _ = writeln!(out, "    traffic   {}", counters(&t.counters));
    let total: u64 = t.drops.values().sum();
    if total > 0 {
        let list: Vec<String> = t
            .drops
            .iter()
            .filter(|(_, v)| **v > 0)
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(out, "    drops     {total} ({})", list.join(", "));
    } else {
        let _ = writeln!(out, "    drops     0");
    }
    // Only once the protection acted: a half-open IKE SA alone is a normal handshake.
    if t.ike_dos.engaged() {
        let d = &t.ike_dos;
        let _ = writeln!(
            out,
            "    IKE DoS: {} cookies sent, {} rate-limited, {} dropped (half-open full), {} half-open",
            d.cookies_sent, d.rate_limited, d.half_open_full, d.half_open
        );
    }
    if let Some(e) = &t.last_error {
        let _ = writeln!(out, "    last error: {e}");
    }
}

fn neighbor(out: &mut String, n: &NeighborStatus) {
    let up = n
        .uptime_secs
        .map(|u| format!(" for {}", age(u)))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "neighbor {} AS{} via {}  {}{}  prefixes rcvd {} accepted {} advertised {}",
        n.address,
        n.remote_asn,
        n.tunnel,
        n.state,
        up,
        n.prefixes_received,
        n.prefixes_accepted,
        n.prefixes_advertised
    );
    // An old error of a session that is up again is history, not news (it stays in --json).
    if n.state != "Established" {
        if let Some(e) = &n.last_error {
            let _ = writeln!(out, "    last error: {e}");
        }
    }
}

fn route(out: &mut String, r: &RouteStatus) {
    let nh = r
        .next_hop
        .as_deref()
        .map(|n| format!(" via {n}"))
        .unwrap_or_default();
    let path = if r.as_path.is_empty() {
        String::new()
    } else {
        let p: Vec<String> = r.as_path.iter().map(|a| a.to_string()).collect();
        format!("  as-path {}", p.join(" "))
    };
    let _ = writeln!(
        out,
        "{:<20} {:<6} dev {}{}{}  {}",
        r.prefix,
        r.source,
        r.interface,
        nh,
        path,
        if r.installed {
            "installed"
        } else {
            "not installed"
        }
    );
    // ECMP: every path on its own line (the first one is the line above).
    if r.next_hops.len() > 1 {
        for h in &r.next_hops {
            let via = h
                .address
                .as_deref()
                .map(|a| format!(" via {a}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{:<20} nexthop dev {}{via} (tunnel {})",
                "", h.interface, h.tunnel
            );
        }
    }
}

/// `causeway status`.
pub fn status(s: &Snapshot) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "causeway {} (pid {}), up {}",
        s.version,
        s.pid,
        age(s.uptime_secs)
    );
    if s.tunnels.is_empty() {
        let _ = writeln!(out, "no tunnels");
    }
    for t in &s.tunnels {
        tunnel(&mut out, t, false);
    }
    for n in &s.bgp {
        neighbor(&mut out, n);
    }
    let installed = s.routes.iter().filter(|r| r.installed).count();
    let _ = writeln!(
        out,
        "routes: {} known, {} installed",
        s.routes.len(),
        installed
    );
    if !s.dataplane_drops.is_empty() {
        let list: Vec<String> = s
            .dataplane_drops
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        let _ = writeln!(out, "dropped, no tunnel: {}", list.join(", "));
    }
    out
}

/// `causeway sa`.
pub fn sa(s: &Snapshot) -> String {
    let mut out = String::new();
    if s.tunnels.is_empty() {
        let _ = writeln!(out, "no tunnels");
    }
    for t in &s.tunnels {
        tunnel(&mut out, t, true);
    }
    out
}

/// `causeway bgp`.
pub fn bgp(s: &Snapshot) -> String {
    let mut out = String::new();
    if s.bgp.is_empty() {
        let _ = writeln!(out, "no BGP neighbors");
    }
    for n in &s.bgp {
        neighbor(&mut out, n);
    }
    out
}

/// `causeway routes`.
pub fn routes(s: &Snapshot) -> String {
    let mut out = String::new();
    if s.routes.is_empty() {
        let _ = writeln!(out, "no routes");
    }
    for r in &s.routes {
        route(&mut out, r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_sizes() {
        assert_eq!(age(5), "5s");
        assert_eq!(age(65), "1m05s");
        assert_eq!(age(3720), "1h02m");
        assert_eq!(age(90_000), "1d01h");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
    }

    #[test]
    fn ecmp_routes_list_every_next_hop() {
        let hop = |t: &str, a: &str| crate::api::RouteNextHop {
            tunnel: t.into(),
            interface: format!("cw-{t}"),
            address: Some(a.into()),
        };
        let s = Snapshot {
            routes: vec![RouteStatus {
                prefix: "10.2.0.0/24".into(),
                source: "bgp".into(),
                tunnel: "az1".into(),
                interface: "cw-az1".into(),
                next_hop: Some("10.2.255.4".into()),
                installed: true,
                next_hops: vec![hop("az1", "10.2.255.4"), hop("az2", "10.2.255.5")],
                ..RouteStatus::default()
            }],
            ..Snapshot::default()
        };
        let text = routes(&s);
        assert!(text.starts_with("10.2.0.0/24"), "{text}");
        assert!(
            text.contains("nexthop dev cw-az2 via 10.2.255.5 (tunnel az2)"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 3, "{text}");
    }

    #[test]
    fn status_shows_drops_and_errors() {
        let mut t = TunnelStatus {
            name: "azure".into(),
            state: "established".into(),
            ..Default::default()
        };
        t.drops.insert("replay".into(), 3);
        t.drops.insert("auth".into(), 1);
        t.last_error = Some("AUTHENTICATION_FAILED".into());
        let s = Snapshot {
            tunnels: vec![t],
            ..Default::default()
        };
        let text = status(&s);
        assert!(text.contains("tunnel azure  established"), "{text}");
        assert!(text.contains("drops     4 (auth 1, replay 3)"), "{text}");
        assert!(text.contains("last error: AUTHENTICATION_FAILED"), "{text}");
        assert!(!text.contains("IKE DoS"), "no line while all zero: {text}");
    }

    #[test]
    fn status_shows_ike_dos_only_when_nonzero() {
        let mut t = TunnelStatus {
            name: "azure".into(),
            state: "established".into(),
            ..Default::default()
        };
        t.ike_dos.cookies_sent = 1234;
        t.ike_dos.rate_limited = 5;
        t.ike_dos.half_open = 10;
        let s = Snapshot {
            tunnels: vec![t],
            ..Default::default()
        };
        let text = status(&s);
        assert!(
            text.contains(
                "    IKE DoS: 1234 cookies sent, 5 rate-limited, 0 dropped (half-open full), 10 half-open\n"
            ),
            "{text}"
        );
        // Also in `causeway sa`.
        assert!(sa(&s).contains("IKE DoS: 1234 cookies sent"));
        // A handshake in progress (one half-open IKE SA) is no DoS news.
        let mut t = s.tunnels[0].clone();
        t.ike_dos = crate::api::IkeDos {
            half_open: 1,
            ..Default::default()
        };
        let text = status(&Snapshot {
            tunnels: vec![t],
            ..Default::default()
        });
        assert!(!text.contains("IKE DoS"), "{text}");
    }
}
