//! Criterion benchmarks of the dataplane's per-packet work, without I/O:
//! * `seal_batch_32x1420` / `open_batch_32x1420`: AES-256-GCM ESP seal/open of a batch of 32
//!   packets of 1420 bytes in place, through the `EspOutbound`/`EspInbound` trait objects
//!   as the workers call them (headroom/tailroom as in the TX slots);
//! * `tso_split_64k`: splitting a 64 KiB TCP super-packet from an offload TUN into
//!   MSS-1360 packets (`tun_rs::gso_split`, what `Tun::recv_multiple` does), checksums
//!   included;
//! * `gro_coalesce_48`: coalescing those 48 packets back into one super-packet
//!   (`dataplane::gro::Coalescer`, what the RX workers do before writing to the TUN).
//!
//! A counting allocator counts the allocations of warmed-up rounds of seal + open + split +
//! coalesce ([`dataplane::gro`]): any allocation fails the run. (`gro_coalesce_48_tun_rs`
//! is tun-rs 2.8's GRO table for comparison: it copies each packet into a fresh `Vec`.)
//! Run: `cargo bench -p causeway-dataplane --bench hotpath`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use dataplane::sa::{EspInbound, EspOutbound};
use esp::{Direction, Sa, SaParams, Suite};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const HEADROOM: usize = 64;
const TAILROOM: usize = 128;
const PKT: usize = 1420;
const N: usize = 32;
const MSS: usize = 1360;
const VNET: usize = tun_rs::VIRTIO_NET_HDR_LEN;

fn sas() -> (Arc<dyn EspOutbound>, Arc<dyn EspInbound>) {
    let key = [0x42u8; 36];
    let out = Sa::from_keymat(
        SaParams::new(7, Direction::Outbound, Suite::AES256_GCM16),
        &key,
    )
    .expect("sa");
    let inb = Sa::from_keymat(
        SaParams::new(7, Direction::Inbound, Suite::AES256_GCM16),
        &key,
    )
    .expect("sa");
    (Arc::new(out), Arc::new(inb))
}

fn slots() -> Vec<Vec<u8>> {
    (0..N)
        .map(|i| {
            let mut s = vec![0u8; HEADROOM + PKT + TAILROOM];
            s[HEADROOM] = 0x45;
            s[HEADROOM + 1..HEADROOM + PKT].fill(i as u8);
            s
        })
        .collect()
}

fn seal_all(out: &dyn EspOutbound, slots: &mut [Vec<u8>], ranges: &mut [std::ops::Range<usize>]) {
    for (s, r) in slots.iter_mut().zip(ranges.iter_mut()) {
        s[HEADROOM] = 0x45;
        *r = out.seal(s, HEADROOM..HEADROOM + PKT, 4).expect("seal");
    }
}

/// An IPv4/TCP super-packet as an offload TUN hands it over (checksum left to us).
fn super_packet(payload: usize) -> (Vec<u8>, tun_rs::VirtioNetHdr) {
    let mut p = vec![0u8; 40 + payload];
    let total = p.len() as u16;
    p[0] = 0x45;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&[10, 1, 0, 2]);
    p[16..20].copy_from_slice(&[10, 2, 0, 2]);
    p[20..22].copy_from_slice(&40000u16.to_be_bytes());
    p[22..24].copy_from_slice(&5201u16.to_be_bytes());
    p[24..28].copy_from_slice(&1000u32.to_be_bytes());
    p[32] = 5 << 4; // data offset
    p[33] = 0x10; // ACK
    p[34..36].copy_from_slice(&512u16.to_be_bytes());
    for (i, b) in p[40..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let hdr = tun_rs::VirtioNetHdr {
        flags: 1,    // NEEDS_CSUM
        gso_type: 1, // TCPV4
        hdr_len: 40,
        gso_size: MSS as u16,
        csum_start: 20,
        csum_offset: 16,
    };
    (p, hdr)
}

fn split(
    sp: &[u8],
    hdr: tun_rs::VirtioNetHdr,
    work: &mut Vec<u8>,
    out: &mut [Vec<u8>],
    sizes: &mut [usize],
) -> usize {
    work.clear();
    work.extend_from_slice(sp);
    tun_rs::gso_split(work, hdr, out, sizes, HEADROOM, false).expect("gso_split")
}

fn coalesce(gro: &mut tun_rs::GROTable, segs: &[Vec<u8>], sizes: &[usize], wbufs: &mut [Vec<u8>]) {
    for ((w, s), n) in wbufs.iter_mut().zip(segs).zip(sizes) {
        w.clear();
        w.resize(VNET, 0);
        w.extend_from_slice(&s[HEADROOM..HEADROOM + n]);
    }
    gro.apply_gro(wbufs, VNET, false).expect("gro");
}

/// Our coalescer ([`dataplane::gro`]); the frame is "written" by summing its length.
fn coalesce_own(co: &mut dataplane::gro::Coalescer, segs: &[Vec<u8>], sizes: &[usize]) -> usize {
    for (s, n) in segs.iter().zip(sizes) {
        co.push(&s[HEADROOM..HEADROOM + n]);
    }
    let mut total = 0;
    co.flush(|f| {
        total += black_box(f).len();
        Ok(f.len())
    });
    total
}

fn benches(c: &mut Criterion) {
    let (out, _) = sas();
    let mut g = c.benchmark_group("dataplane");
    g.throughput(Throughput::Bytes((N * PKT) as u64));
    let mut s = slots();
    let mut ranges = vec![0..0; N];
    g.bench_function("seal_batch_32x1420", |b| {
        b.iter(|| seal_all(&*out, black_box(&mut s), &mut ranges))
    });
    // Open needs fresh sequence numbers (replay window): seal in the untimed setup.
    let (out2, inb2) = sas();
    g.bench_function("open_batch_32x1420", |b| {
        b.iter_batched_ref(
            || {
                let mut s = slots();
                let mut r = vec![0..0; N];
                seal_all(&*out2, &mut s, &mut r);
                (s, r)
            },
            |(s, r)| {
                for (s, r) in s.iter_mut().zip(r.iter()) {
                    black_box(inb2.open(s, r.clone()).expect("open"));
                }
            },
            BatchSize::SmallInput,
        )
    });
    let (sp, hdr) = super_packet(48 * MSS);
    let mut work = Vec::with_capacity(sp.len());
    let mut segs: Vec<Vec<u8>> = (0..128)
        .map(|_| vec![0u8; HEADROOM + 1500 + TAILROOM])
        .collect();
    let mut sizes = vec![0usize; 128];
    g.throughput(Throughput::Bytes(sp.len() as u64));
    g.bench_function("tso_split_64k", |b| {
        b.iter(|| split(black_box(&sp), hdr, &mut work, &mut segs, &mut sizes))
    });
    let n = split(&sp, hdr, &mut work, &mut segs, &mut sizes);
    assert_eq!(n, 48, "48 segments of {MSS}");
    let mut gro = tun_rs::GROTable::new();
    let mut wbufs: Vec<Vec<u8>> = (0..n).map(|_| Vec::with_capacity(VNET + 65536)).collect();
    g.bench_function("gro_coalesce_48_tun_rs", |b| {
        b.iter(|| coalesce(&mut gro, &segs, &sizes[..n], black_box(&mut wbufs)))
    });
    let mut co = dataplane::gro::Coalescer::new(128);
    g.bench_function("gro_coalesce_48", |b| {
        b.iter(|| coalesce_own(&mut co, &segs, &sizes[..n]))
    });
    g.finish();

    // No allocation per packet: one warmed-up round of everything, counted.
    let mut s = slots();
    let (o3, i3) = sas();
    let round = |s: &mut Vec<Vec<u8>>,
                 ranges: &mut Vec<std::ops::Range<usize>>,
                 work: &mut Vec<u8>,
                 segs: &mut Vec<Vec<u8>>,
                 sizes: &mut Vec<usize>,
                 co: &mut dataplane::gro::Coalescer| {
        let mut per = [0usize; 5];
        let mut t = ALLOCS.load(Ordering::Relaxed);
        let mut lap = |i: usize| {
            let now = ALLOCS.load(Ordering::Relaxed);
            per[i] = now - t;
            t = now;
        };
        seal_all(&*o3, s, ranges);
        lap(0);
        for (s, r) in s.iter_mut().zip(ranges.iter()) {
            i3.open(s, r.clone()).expect("open");
        }
        lap(1);
        let n = split(&sp, hdr, work, segs, sizes);
        lap(2);
        // Per-packet checks of the workers: TUN queue pick by flow, oversize rule.
        let mut h = 0u32;
        for (s, n) in segs.iter().zip(&sizes[..n]) {
            let pkt = &s[HEADROOM..HEADROOM + n];
            h ^= dataplane::packet::flow_hash(pkt);
            h ^= u32::from(dataplane::packet::needs_too_big(pkt));
        }
        black_box(h);
        lap(4);
        let total = coalesce_own(co, segs, &sizes[..n]);
        assert_eq!(total, VNET + sp.len(), "one frame");
        lap(3);
        per
    };
    round(
        &mut s,
        &mut ranges,
        &mut work,
        &mut segs,
        &mut sizes,
        &mut co,
    );
    let before = ALLOCS.load(Ordering::Relaxed);
    let mut per = [0usize; 5];
    for _ in 0..10 {
        let p = round(
            &mut s,
            &mut ranges,
            &mut work,
            &mut segs,
            &mut sizes,
            &mut co,
        );
        for (a, b) in per.iter_mut().zip(p) {
            *a += b;
        }
    }
    let allocs = ALLOCS.load(Ordering::Relaxed) - before;
    println!(
        "allocations in 10 rounds of seal+open {N} packets, split + coalesce 48 segments: \
         {allocs} (seal {}, open {}, split {}, flow hash {}, coalesce {})",
        per[0], per[1], per[2], per[4], per[3]
    );
    assert_eq!(allocs, 0, "the hot path allocates");
}

criterion_group!(hot, benches);

fn main() {
    hot();
    Criterion::default().configure_from_args().final_summary();
}
