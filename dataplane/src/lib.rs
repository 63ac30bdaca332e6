//! causeway-dataplane: all OS I/O for packets and routes, no protocol logic.
//!
//! * [`tun`]: one TUN device per tunnel (`cw-<name>`), MTU, address, up.
//! * [`udp`]: UDP sockets for IKE/ESP (ports 500 and 4500), the RFC 3948 demultiplexer
//!   for port 4500, raw ESP (IP protocol 50) sockets.
//! * [`sa`]: the SA tables: inbound SPI → SA, per-tunnel outbound SA slot, swapped
//!   atomically (lock-free reads on the hot path, make-before-break on rekey).
//! * [`counters`]: per-tunnel packet/byte counters and drops by reason (atomics).
//! * [`packet`]: inner-packet helpers: addresses, traffic-selector check, TCP MSS
//!   clamping, ICMP "fragmentation needed" / ICMPv6 "packet too big".
//! * [`worker`]: the [`Dataplane`]: worker threads moving packets TUN ⇄ ESP ⇄ socket.
//! * [`batch`]: `recvmmsg`/`sendmmsg`, UDP GSO sends (`UDP_SEGMENT`) and UDP GRO receives.
//! * [`gro`]: coalescing of opened TCP/UDP packets into super-packets for an offload TUN.
//!
//! Performance (issue 8; [`DataplaneOptions`], all on by default, each falling back by
//! itself when the kernel refuses it): the TUN is opened with `IFF_VNET_HDR` + TSO/USO, so
//! one read yields a 64 KiB TCP super-packet that is split into MTU-sized packets, sealed
//! in place and sent as one UDP GSO `sendmsg` (runs of equal-sized ESP datagrams); the
//! receive socket has `UDP_GRO` (one buffer of many ESP datagrams, split by the segment
//! size) and opened packets of one flow are coalesced ([`gro`]: one copy, no allocation)
//! into super-packets before one TUN write. `CAUSEWAY_DP_TUN_OFFLOAD=0`, `CAUSEWAY_DP_UDP_GSO=0`, `CAUSEWAY_DP_UDP_GRO=0`
//! turn the switches off for A/B runs (`benches/tunnel/run.sh`, config `cw-cw-base`).
//!
//! Cores ([`DataplaneOptions::workers`], `CAUSEWAY_DP_WORKERS`: default 1, 0 = one per core):
//! each tunnel's TUN has one queue per worker (`IFF_MULTI_QUEUE`) read by its own TX
//! thread, each endpoint one `SO_REUSEPORT` socket per worker read by its own RX thread;
//! flows stay on one worker (see [`worker`]). An inner packet longer than the tunnel MTU
//! with DF set (or any IPv6 one) is answered with ICMP "fragmentation needed" / "packet
//! too big" written back into the TUN (counted in `icmp_too_big` and as a `too_big` drop).
//! * [`netlink`]: synchronous rtnetlink: routes (batched, by protocol id), addresses,
//!   link state, route lookups, underlay protection for forced tunneling.
//! * [`netns`]: network namespace helpers for tests and `causeway lab`.
//!
//! How the daemon drives it (everything blocking; call from a thread or
//! `spawn_blocking`; all objects belong to the network namespace they were created in):
//! 1. Start-up: `Netlink::new()?.flush_routes(proto)` (stale sweep of our protocol id).
//! 2. `let dp = Dataplane::new(ike_sink)`; `dp.open_endpoint("192.0.2.1:4500".parse()?)?`
//!    per local address (UDP 500 for IKE: the daemon binds it itself, e.g. with
//!    [`udp::bind_udp`] or tokio).
//! 3. Per tunnel: `let t = dp.add_tunnel(TunnelConfig { tun, local, mss_clamp })?` → a
//!    [`Tunnel`] (TUN created, MTU/addresses set, up, TX worker running).
//! 4. `ChildSaEstablished`: `dp.install_inbound(&t, InboundSa { esp: Arc::new(sa_in),
//!    local_ts, remote_ts })`, then `t.set_outbound(Some(OutboundSa { esp:
//!    Arc::new(sa_out), peer, encap }))?`. Rekey = the same with the new SAs (new inbound
//!    first, then outbound switch), then `dp.remove_inbound(old_spi)` a little later.
//!    `esp::Sa` implements [`EspInbound`]/[`EspOutbound`]; keep a clone of the `Arc` to
//!    read its counters and `expiry()`.
//! 5. IKE arriving on port 4500 reaches `ike_sink` (non-ESP marker stripped); send IKE on
//!    4500 with `dp.send_ike(local_ip, peer, msg)`, keepalives with `dp.send_keepalive`.
//! 6. Routes: [`netlink::tunnel_prefixes`] (splits a default route into two /1s) →
//!    `Route::dev(prefix, t.ifindex(), proto, table)` → `Netlink::apply_routes` (batched)
//!    or `replace_route`/`delete_route`. Forced tunneling: `nl.protect_peer(peer_ip,
//!    proto, table)?` BEFORE installing the /1s; delete the returned route at shutdown.
//! 7. Counters: `t.counters()` ([`counters::CountersSnapshot`], drops by
//!    [`DropReason`]), `dp.global_counters()` (unknown SPIs, malformed datagrams).
//! 8. NAT rebinding: ESP-in-UDP that authenticates, passes the replay check and is the
//!    newest of its SA but comes from another address/port than the outbound SA's peer
//!    is recorded once: `t.take_peer_move()` → `Some((inbound_spi, from))` (optionally
//!    signalled by `t.set_peer_move_hook`); hand it to `ikev2::Endpoint::esp_from`, and
//!    on its `PeerAddressChanged` call `set_outbound` with the new peer.
//! 9. Shutdown: drop the [`Tunnel`]s (TUN devices go away), `dp.shutdown()`, then
//!    `flush_routes(proto)`.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod batch;
pub mod counters;
pub mod gro;
pub mod netlink;
pub mod netns;
pub mod packet;
pub mod sa;
pub mod tun;
pub mod udp;
pub mod worker;

pub use counters::{DropReason, TunnelCounters};
pub use netlink::{Netlink, Route, RouteOp};
pub use sa::{EspInbound, EspOutbound, InboundSa, OutboundSa};
pub use tun::{Tun, TunConfig};
pub use worker::{
    AcquireHook, AcquireInfo, Dataplane, DataplaneOptions, Encap, IkeDatagram, IkeSink,
    PeerMoveHook, Tunnel, TunnelConfig,
};
