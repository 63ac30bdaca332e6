//! RSS per route of the RIB alone: N IPv4 /24s from one neighbor, all sharing one
//! attribute set (as a feeder's table does), then all withdrawn.
//!
//! ```text
//! cargo run --release -p causeway-bgp --example rib_mem -- [N]     (default 1000000)
//! ```
//!
//! Prints VmRSS before, after learning and after withdrawing, in bytes per route (Linux).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use bgp::rib::{PeerInfo, Rib};
use bgp::wire::{AsPath, Origin, PathAttributes};
use bgp::{Prefix, Route};

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let route = Arc::new(Route {
        attrs: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence(vec![65002])),
            local_pref: Some(100),
            ..PathAttributes::default()
        },
        next_hop: IpAddr::V4(Ipv4Addr::new(10, 99, 0, 2)),
    });
    let mut rib = Rib::new();
    rib.set_peer(
        1,
        PeerInfo {
            address: IpAddr::V4(Ipv4Addr::new(10, 99, 0, 2)),
            router_id: Ipv4Addr::new(10, 99, 0, 2),
            ebgp: true,
        },
    );
    let prefixes = (0..n).filter_map(|i| {
        Prefix::new(
            IpAddr::V4(Ipv4Addr::from(0x1000_0000u32.wrapping_add(i << 8))),
            24,
        )
    });
    let base = rss_kb();
    let t = std::time::Instant::now();
    for p in prefixes.clone() {
        rib.set(1, p, Some(route.clone()));
        if rib.len() % 16384 == 0 {
            rib.take_changes();
        }
    }
    rib.take_changes();
    let learned = rss_kb();
    let t_learn = t.elapsed();
    let t = std::time::Instant::now();
    for p in prefixes {
        rib.set(1, p, None);
        if rib.len() % 16384 == 0 {
            rib.take_changes();
        }
    }
    rib.take_changes();
    let t_wd = t.elapsed();
    let per = |kb: u64| (kb.saturating_sub(base) * 1024) as f64 / f64::from(n.max(1));
    println!(
        "{n} routes: learn {t_learn:.2?}, withdraw {t_wd:.2?}, RSS {:.1} B/route after learn, {} kB base",
        per(learned),
        base
    );
}
