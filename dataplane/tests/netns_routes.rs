//! Netlink, TUN and route tests inside throw-away network namespaces (root only).

use std::net::IpAddr;

use dataplane::netlink::{link_index, Netlink, Route, RouteOp, TABLE_MAIN};
use dataplane::netns::{skip_reason, NetNs};
use dataplane::tun::{Tun, TunConfig};
use ipnet::IpNet;

const PROTO: u8 = 252;

macro_rules! skip_unless_root {
    () => {
        if let Some(why) = skip_reason() {
            eprintln!("SKIP: {why}");
            return;
        }
    };
}

fn routes_shown(ns: &NetNs, args: &[&str]) -> Vec<String> {
    let out = ns.ip(args).expect("ip route show");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn tun_up_with_mtu_and_addresses() {
    skip_unless_root!();
    let ns = NetNs::create("cw-tun").unwrap();
    let (name, ifindex) = ns
        .run(|| {
            let tun = Tun::create(&TunConfig {
                name: "cw-test0".into(),
                mtu: 1400,
                addrs: vec![
                    "10.99.0.1/24".parse().unwrap(),
                    "fd00:99::1/64".parse().unwrap(),
                ],
            })?;
            assert_eq!(link_index("cw-test0")?, tun.ifindex());
            Ok((tun.name().to_owned(), tun.ifindex()))
        })
        .unwrap();
    assert_eq!(name, "cw-test0");
    assert!(ifindex > 1);
    // The device is gone with the Tun (dropped at the end of the closure); the kernel
    // unregisters it asynchronously, so give it a moment under load.
    let mut gone = false;
    for _ in 0..40 {
        let out = ns.ip(&["link", "show"]).unwrap();
        if !String::from_utf8_lossy(&out.stdout).contains("cw-test0") {
            gone = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(gone, "cw-test0 still there 2 s after the Tun was dropped");

    // Keep it alive this time and check what `ip` sees.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let h = ns
        .spawn(move || {
            let _tun = Tun::create(&TunConfig {
                name: "cw-test1".into(),
                mtu: 1380,
                addrs: vec!["10.99.1.1/24".parse().unwrap()],
            })?;
            ready_tx.send(()).ok();
            rx.recv().ok();
            Ok(())
        })
        .unwrap();
    ready_rx.recv().unwrap();
    let link = String::from_utf8_lossy(&ns.ip(&["-d", "link", "show", "cw-test1"]).unwrap().stdout)
        .into_owned();
    let addr =
        String::from_utf8_lossy(&ns.ip(&["addr", "show", "cw-test1"]).unwrap().stdout).into_owned();
    tx.send(()).unwrap();
    h.join().unwrap().unwrap();
    assert!(link.contains("mtu 1380"), "{link}");
    assert!(link.contains(",UP"), "{link}");
    assert!(link.contains("addrgenmode none"), "{link}");
    assert!(addr.contains("10.99.1.1/24"), "{addr}");
}

fn add_list_flush(count: usize) {
    let ns = NetNs::create("cw-rt").unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<u32>();
    let h = ns
        .spawn(move || {
            let tun = Tun::create(&TunConfig {
                name: "cw-rt0".into(),
                mtu: 1400,
                addrs: vec![],
            })?;
            let mut nl = Netlink::new()?;
            let ops: Vec<RouteOp> = (0..count)
                .map(|i| {
                    let dst: IpNet = format!("10.{}.{}.0/24", 100 + i / 256, i % 256)
                        .parse()
                        .unwrap();
                    RouteOp::Replace(Route::dev(dst, tun.ifindex(), PROTO, TABLE_MAIN))
                })
                .collect();
            let failures = nl.apply_routes(&ops)?;
            assert!(failures.is_empty(), "{failures:?}");
            // Replacing again is idempotent.
            assert!(nl.apply_routes(&ops)?.is_empty());
            let listed = nl.list_routes(Some(PROTO))?;
            assert_eq!(listed.len(), count);
            assert!(listed.iter().all(|r| r.oif == Some(tun.ifindex())));
            ready_tx.send(tun.ifindex()).ok();
            rx.recv().ok();
            let flushed = nl.flush_routes(PROTO)?;
            assert_eq!(flushed, count);
            assert!(nl.list_routes(Some(PROTO))?.is_empty());
            // Deleting a route that is gone reports ESRCH for exactly that op.
            let f = nl.apply_routes(&ops[..3])?;
            assert!(f.is_empty());
            let missing = RouteOp::Delete(Route::dev(
                "10.250.0.0/24".parse().unwrap(),
                tun.ifindex(),
                PROTO,
                TABLE_MAIN,
            ));
            let mut del: Vec<RouteOp> = ops[..3]
                .iter()
                .map(|o| match o {
                    RouteOp::Replace(r) => RouteOp::Delete(r.clone()),
                    other => other.clone(),
                })
                .collect();
            // A failure in the middle of a batch and one at its end (the ACKed message).
            del.insert(1, missing.clone());
            del.push(missing);
            let f = nl.apply_routes(&del)?;
            assert_eq!(f.len(), 2, "{f:?}");
            assert_eq!((f[0].0, f[1].0), (1, 4));
            assert!(nl.list_routes(Some(PROTO))?.is_empty());
            assert!(f.iter().all(|(_, e)| e.raw_os_error() == Some(libc::ESRCH)));
            Ok(())
        })
        .unwrap();
    let _ifindex = ready_rx.recv().unwrap();
    let shown = routes_shown(&ns, &["route", "show", "proto", &PROTO.to_string()]);
    tx.send(()).unwrap();
    let res = h.join();
    assert_eq!(shown.len(), count, "ip route show proto {PROTO}");
    assert!(shown.iter().all(|l| l.contains("dev cw-rt0")), "{shown:?}");
    assert!(shown.iter().any(|l| l.starts_with("10.100.0.0/24")));
    res.unwrap().unwrap();
    let left = routes_shown(&ns, &["route", "show", "proto", &PROTO.to_string()]);
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn hundred_routes_add_list_flush() {
    skip_unless_root!();
    add_list_flush(100);
}

#[test]
fn five_thousand_routes_batched() {
    skip_unless_root!();
    let t = std::time::Instant::now();
    add_list_flush(5000);
    eprintln!("5000 routes add x2 + list + flush: {:?}", t.elapsed());
}

#[test]
fn ipv6_via_and_custom_table_routes() {
    skip_unless_root!();
    let ns = NetNs::create("cw-r6").unwrap();
    ns.ip(&[
        "link", "add", "lan0", "type", "veth", "peer", "name", "lan0p",
    ])
    .unwrap();
    ns.ip(&["link", "set", "lan0p", "up"]).unwrap();
    ns.ip(&["link", "set", "lan0", "up"]).unwrap();
    ns.ip(&["addr", "add", "fd00:1::1/64", "dev", "lan0", "nodad"])
        .unwrap();
    ns.ip(&["addr", "add", "10.7.0.1/24", "dev", "lan0"])
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let h = ns
        .spawn(move || {
            let lan = link_index("lan0")?;
            let mut nl = Netlink::new()?;
            let ops = vec![
                RouteOp::Replace(Route::via(
                    "fd00:99::/48".parse().unwrap(),
                    "fd00:1::2".parse().unwrap(),
                    Some(lan),
                    PROTO,
                    TABLE_MAIN,
                )),
                RouteOp::Replace(Route::via(
                    "10.99.0.0/16".parse().unwrap(),
                    "10.7.0.254".parse().unwrap(),
                    None,
                    PROTO,
                    1000,
                )),
                RouteOp::Replace(Route::dev(
                    "fd00:98::/64".parse().unwrap(),
                    lan,
                    PROTO,
                    1000,
                )),
            ];
            let f = nl.apply_routes(&ops)?;
            assert!(f.is_empty(), "{f:?}");
            let mut listed = nl.list_routes(Some(PROTO))?;
            listed.sort_by_key(|r| r.dst.to_string());
            assert_eq!(listed.len(), 3, "{listed:?}");
            let v4 = listed.iter().find(|r| r.dst.addr().is_ipv4()).unwrap();
            assert_eq!(v4.table, 1000);
            assert_eq!(v4.gateway, Some("10.7.0.254".parse().unwrap()));
            ready_tx.send(()).ok();
            rx.recv().ok();
            assert_eq!(nl.flush_routes(PROTO)?, 3);
            assert!(nl.list_routes(Some(PROTO))?.is_empty());
            Ok(())
        })
        .unwrap();
    ready_rx.recv().unwrap();
    let v6 = routes_shown(&ns, &["-6", "route", "show", "proto", "252"]);
    let t1000 = routes_shown(&ns, &["route", "show", "table", "1000", "proto", "252"]);
    let t1000v6 = routes_shown(
        &ns,
        &["-6", "route", "show", "table", "1000", "proto", "252"],
    );
    tx.send(()).unwrap();
    let res = h.join();
    assert!(
        v6.iter()
            .any(|l| l.starts_with("fd00:99::/48 via fd00:1::2 dev lan0")),
        "{v6:?}"
    );
    assert!(
        t1000
            .iter()
            .any(|l| l.starts_with("10.99.0.0/16 via 10.7.0.254 dev lan0")),
        "{t1000:?}"
    );
    assert!(
        t1000v6
            .iter()
            .any(|l| l.starts_with("fd00:98::/64 dev lan0")),
        "{t1000v6:?}"
    );
    res.unwrap().unwrap();
}

#[test]
fn underlay_protection_pins_peer_route() {
    skip_unless_root!();
    let ns = NetNs::create("cw-ul").unwrap();
    // No dummy module on this kernel: a veth pair with both ends in the namespace.
    ns.ip(&[
        "link", "add", "wan0", "type", "veth", "peer", "name", "wan0p",
    ])
    .unwrap();
    ns.ip(&["link", "set", "wan0p", "up"]).unwrap();
    ns.ip(&["addr", "add", "198.51.100.1/24", "dev", "wan0"])
        .unwrap();
    ns.ip(&["link", "set", "wan0", "up"]).unwrap();
    ns.ip(&["route", "add", "default", "via", "198.51.100.254"])
        .unwrap();
    let peer: IpAddr = "203.0.113.7".parse().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let h = ns
        .spawn(move || {
            let tun = Tun::create(&TunConfig {
                name: "cw-ul0".into(),
                mtu: 1400,
                addrs: vec![],
            })?;
            let mut nl = Netlink::new()?;
            let wan = link_index("wan0")?;
            let before = nl.route_get(peer)?;
            assert_eq!(before.gateway, Some("198.51.100.254".parse().unwrap()));
            assert_eq!(before.oif, Some(wan));
            let pinned = nl.protect_peer(peer, PROTO, TABLE_MAIN)?;
            // Forced tunneling: default route into the TUN (two /1s, like OpenVPN, so the
            // test leaves the original default in place).
            let ops: Vec<RouteOp> = ["0.0.0.0/1", "128.0.0.0/1"]
                .iter()
                .map(|d| {
                    RouteOp::Replace(Route::dev(
                        d.parse().unwrap(),
                        tun.ifindex(),
                        PROTO,
                        TABLE_MAIN,
                    ))
                })
                .collect();
            assert!(nl.apply_routes(&ops)?.is_empty());
            let other = nl.route_get("203.0.113.8".parse().unwrap())?;
            assert_eq!(other.oif, Some(tun.ifindex()), "others go into the tunnel");
            let after = nl.route_get(peer)?;
            assert_eq!(after.oif, Some(wan), "the peer stays on the underlay");
            assert_eq!(after.gateway, before.gateway);
            ready_tx.send(()).ok();
            rx.recv().ok();
            nl.delete_route(&pinned)?;
            let gone = nl.route_get(peer)?;
            assert_eq!(gone.oif, Some(tun.ifindex()));
            nl.flush_routes(PROTO)?;
            Ok(())
        })
        .unwrap();
    ready_rx.recv().unwrap();
    let shown = routes_shown(&ns, &["route", "show", "proto", "252"]);
    tx.send(()).unwrap();
    let res = h.join();
    assert!(
        shown
            .iter()
            .any(|l| l.starts_with("203.0.113.7 via 198.51.100.254 dev wan0")),
        "{shown:?}"
    );
    res.unwrap().unwrap();
}
