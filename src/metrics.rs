//! Prometheus text exposition (format 0.0.4) of a [`Snapshot`], served over plain HTTP.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::api::Snapshot;

/// Escape a label value.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Render the metrics text. `routes_installed` is counted by the caller: a scrape must not
/// build the list of a full table (a million routes) just to count it.
pub fn render(s: &Snapshot, routes_installed: usize) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "causeway_uptime_seconds",
        "gauge",
        "Seconds since the daemon started.",
    );
    let _ = writeln!(out, "causeway_uptime_seconds {}", s.uptime_secs);

    type Get = fn(&crate::api::Counters) -> u64;
    let counters: [(&str, &str, Get); 4] = [
        (
            "causeway_tunnel_rx_bytes_total",
            "Bytes received through the tunnel (decrypted).",
            |c| c.bytes_in,
        ),
        (
            "causeway_tunnel_tx_bytes_total",
            "Bytes sent through the tunnel (before encryption).",
            |c| c.bytes_out,
        ),
        (
            "causeway_tunnel_rx_packets_total",
            "Packets received through the tunnel.",
            |c| c.packets_in,
        ),
        (
            "causeway_tunnel_tx_packets_total",
            "Packets sent through the tunnel.",
            |c| c.packets_out,
        ),
    ];
    for (name, help, get) in counters {
        family(&mut out, name, "counter", help);
        for t in &s.tunnels {
            let _ = writeln!(
                out,
                "{name}{{tunnel=\"{}\"}} {}",
                esc(&t.name),
                get(&t.counters)
            );
        }
    }
    family(
        &mut out,
        "causeway_tunnel_drops_total",
        "counter",
        "Packets dropped, by reason.",
    );
    for t in &s.tunnels {
        for (reason, n) in &t.drops {
            let _ = writeln!(
                out,
                "causeway_tunnel_drops_total{{tunnel=\"{}\",reason=\"{}\"}} {n}",
                esc(&t.name),
                esc(reason)
            );
        }
    }
    family(
        &mut out,
        "causeway_dataplane_drops_total",
        "counter",
        "Packets dropped that belong to no tunnel (unknown SPI, malformed, IKE from an unknown peer, IKE backlog), by reason.",
    );
    for (reason, n) in &s.dataplane_drops {
        let _ = writeln!(
            out,
            "causeway_dataplane_drops_total{{reason=\"{}\"}} {n}",
            esc(reason)
        );
    }
    type GetDos = fn(&crate::api::IkeDos) -> u64;
    let dos: [(&str, &str, &str, GetDos); 4] = [
        (
            "causeway_ike_cookies_sent_total",
            "counter",
            "IKE_SA_INIT requests answered with a COOKIE (too many half-open IKE SAs).",
            |d| d.cookies_sent,
        ),
        (
            "causeway_ike_rate_limited_total",
            "counter",
            "IKE_SA_INIT requests dropped by the per-source rate limit.",
            |d| d.rate_limited,
        ),
        (
            "causeway_ike_half_open_full_total",
            "counter",
            "IKE_SA_INIT requests dropped: half-open table (or the source's share) full.",
            |d| d.half_open_full,
        ),
        (
            "causeway_ike_half_open",
            "gauge",
            "IKE SAs half-open now (responder, waiting for IKE_AUTH).",
            |d| d.half_open,
        ),
    ];
    for (name, kind, help, get) in dos {
        family(&mut out, name, kind, help);
        for t in &s.tunnels {
            let _ = writeln!(
                out,
                "{name}{{tunnel=\"{}\"}} {}",
                esc(&t.name),
                get(&t.ike_dos)
            );
        }
    }
    family(
        &mut out,
        "causeway_tunnel_up",
        "gauge",
        "1 when the tunnel has an established IKE SA and a Child SA.",
    );
    for t in &s.tunnels {
        let up = u8::from(t.state == "established");
        let _ = writeln!(
            out,
            "causeway_tunnel_up{{tunnel=\"{}\"}} {up}",
            esc(&t.name)
        );
    }
    family(
        &mut out,
        "causeway_child_sas",
        "gauge",
        "Installed Child SAs.",
    );
    for t in &s.tunnels {
        let _ = writeln!(
            out,
            "causeway_child_sas{{tunnel=\"{}\"}} {}",
            esc(&t.name),
            t.child_sas.len()
        );
    }
    family(
        &mut out,
        "causeway_bgp_established",
        "gauge",
        "1 when the BGP session is Established.",
    );
    for n in &s.bgp {
        let up = u8::from(n.state == "Established");
        let _ = writeln!(
            out,
            "causeway_bgp_established{{neighbor=\"{}\"}} {up}",
            esc(&n.address)
        );
    }
    family(
        &mut out,
        "causeway_bgp_prefixes_received",
        "gauge",
        "Prefixes received from the neighbor.",
    );
    for n in &s.bgp {
        let _ = writeln!(
            out,
            "causeway_bgp_prefixes_received{{neighbor=\"{}\"}} {}",
            esc(&n.address),
            n.prefixes_received
        );
    }
    family(
        &mut out,
        "causeway_bgp_prefixes_accepted",
        "gauge",
        "Prefixes accepted by import policy.",
    );
    for n in &s.bgp {
        let _ = writeln!(
            out,
            "causeway_bgp_prefixes_accepted{{neighbor=\"{}\"}} {}",
            esc(&n.address),
            n.prefixes_accepted
        );
    }
    family(
        &mut out,
        "causeway_bgp_prefixes_advertised",
        "gauge",
        "Prefixes advertised to the neighbor.",
    );
    for n in &s.bgp {
        let _ = writeln!(
            out,
            "causeway_bgp_prefixes_advertised{{neighbor=\"{}\"}} {}",
            esc(&n.address),
            n.prefixes_advertised
        );
    }
    family(
        &mut out,
        "causeway_routes_installed",
        "gauge",
        "Routes installed in the kernel.",
    );
    let _ = writeln!(out, "causeway_routes_installed {routes_installed}");
    out
}

/// Source of snapshots for the metrics endpoint: the snapshot (its `routes` may be left
/// empty) and the number of routes installed in the kernel.
pub type SnapshotFn = Arc<dyn Fn() -> (Snapshot, usize) + Send + Sync>;

/// Serve `GET /metrics` (any path answers the same) on `addr` until the task is dropped.
pub async fn serve(addr: SocketAddr, snapshot: SnapshotFn) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(%addr, "metrics endpoint listening");
    serve_on(listener, snapshot).await
}

/// Serve the metrics on an already bound listener.
pub async fn serve_on(listener: TcpListener, snapshot: SnapshotFn) -> std::io::Result<()> {
    loop {
        let (mut stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "metrics accept failed");
                continue;
            }
        };
        let snapshot = snapshot.clone();
        tokio::spawn(async move {
            let timeout = std::time::Duration::from_secs(5);
            // Read the whole request head (its content does not matter): closing with
            // unread request bytes would make the kernel answer with a RST, which can
            // destroy the response before the client read it.
            let mut buf = [0u8; 2048];
            let mut head_seen = Vec::with_capacity(64);
            loop {
                match tokio::time::timeout(timeout, stream.read(&mut buf)).await {
                    Ok(Ok(n)) if n > 0 => {
                        head_seen.extend_from_slice(&buf[..n]);
                        if head_seen.windows(4).any(|w| w == b"\r\n\r\n")
                            || head_seen.windows(2).any(|w| w == b"\n\n")
                            || head_seen.len() > 16 * 1024
                        {
                            break;
                        }
                    }
                    _ => return,
                }
            }
            let (snap, routes_installed) = snapshot();
            let body = render(&snap, routes_installed);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
            // FIN, then wait briefly for the client to close its side.
            let _ = stream.shutdown().await;
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
                while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
            })
            .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_http_on_loopback() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let f: SnapshotFn = Arc::new(|| {
            (
                Snapshot {
                    uptime_secs: 42,
                    ..Default::default()
                },
                5,
            )
        });
        tokio::spawn(serve_on(listener, f));
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).await.unwrap();
        assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
        assert!(resp.contains("text/plain; version=0.0.4"), "{resp}");
        assert!(resp.contains("\ncauseway_uptime_seconds 42\n"), "{resp}");
        assert!(resp.contains("\ncauseway_routes_installed 5\n"), "{resp}");
    }
    use crate::api::{Counters, NeighborStatus, TunnelStatus};

    #[test]
    fn renders_per_tunnel_counters_and_drops() {
        let mut t = TunnelStatus {
            name: "azure".into(),
            state: "established".into(),
            counters: Counters {
                bytes_in: 10,
                bytes_out: 20,
                packets_in: 1,
                packets_out: 2,
            },
            ..Default::default()
        };
        t.drops.insert("replay".into(), 7);
        t.ike_dos.cookies_sent = 1234;
        t.ike_dos.half_open = 10;
        let s = Snapshot {
            tunnels: vec![t],
            bgp: vec![NeighborStatus {
                address: "10.2.255.254".into(),
                state: "Established".into(),
                prefixes_received: 3,
                ..Default::default()
            }],
            ..Default::default()
        };
        let text = render(&s, 3);
        assert!(
            text.contains("causeway_tunnel_tx_bytes_total{tunnel=\"azure\"} 20\n"),
            "{text}"
        );
        assert!(
            text.contains("causeway_tunnel_drops_total{tunnel=\"azure\",reason=\"replay\"} 7\n")
        );
        assert!(text.contains("causeway_tunnel_up{tunnel=\"azure\"} 1\n"));
        assert!(text.contains("causeway_bgp_prefixes_received{neighbor=\"10.2.255.254\"} 3\n"));
        assert!(
            text.contains("# TYPE causeway_ike_cookies_sent_total counter\n"),
            "{text}"
        );
        assert!(text.contains("causeway_ike_cookies_sent_total{tunnel=\"azure\"} 1234\n"));
        assert!(text.contains("causeway_ike_rate_limited_total{tunnel=\"azure\"} 0\n"));
        assert!(text.contains("causeway_ike_half_open_full_total{tunnel=\"azure\"} 0\n"));
        assert!(text.contains("# TYPE causeway_ike_half_open gauge\n"));
        assert!(text.contains("causeway_ike_half_open{tunnel=\"azure\"} 10\n"));
    }
}
