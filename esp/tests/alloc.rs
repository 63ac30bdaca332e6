//! Proves that sealing and opening a batch allocates nothing: a counting global
//! allocator, SAs and buffers set up first, then a measured batch per suite.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use esp::{Direction, Sa, SaParams, Suite, MAX_HEADER_LEN, MAX_TRAILER_LEN};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Only the test's own thread is counted: libtest's other threads allocate too.
    static COUNT_HERE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn count() {
    if COUNT_HERE.try_with(|c| c.get()).unwrap_or(false) {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards to the system allocator; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const BATCH: usize = 64;
const LEN: usize = 1400;

#[test]
fn seal_and_open_a_batch_allocate_nothing() {
    COUNT_HERE.with(|c| c.set(true));
    // Control: the counter sees allocations.
    let before = ALLOCS.load(Ordering::Relaxed);
    let v = std::hint::black_box(vec![1u8; 10]);
    assert!(ALLOCS.load(Ordering::Relaxed) > before && v.len() == 10);

    for suite in Suite::all() {
        for esn in [false, true] {
            let km: Vec<u8> = (0..suite.encryption_keymat_len() + suite.integrity_keymat_len())
                .map(|i| i as u8)
                .collect();
            let out = Sa::from_keymat(
                SaParams::new(7, Direction::Outbound, suite).with_esn(esn),
                &km,
            )
            .expect("sa");
            let inb = Sa::from_keymat(
                SaParams::new(7, Direction::Inbound, suite).with_esn(esn),
                &km,
            )
            .expect("sa");
            let mut bufs = vec![[0x45u8; MAX_HEADER_LEN + LEN + MAX_TRAILER_LEN]; BATCH];
            let mut packets = vec![0..0; BATCH];
            // Warm up once (lazy CPU-feature detection in the backend etc.).
            {
                let mut b = [0x45u8; MAX_HEADER_LEN + LEN + MAX_TRAILER_LEN];
                let s = out
                    .seal(&mut b, MAX_HEADER_LEN..MAX_HEADER_LEN + LEN, 4)
                    .expect("seal");
                let _ = inb.open(&mut b, s.packet).expect("open");
            }

            let before = ALLOCS.load(Ordering::Relaxed);
            for (b, p) in bufs.iter_mut().zip(packets.iter_mut()) {
                *p = out
                    .seal(b, MAX_HEADER_LEN..MAX_HEADER_LEN + LEN, 4)
                    .expect("seal")
                    .packet;
            }
            let mut opened = 0;
            for (b, p) in bufs.iter_mut().zip(packets.iter()) {
                let o = inb.open(b, p.clone()).expect("open");
                opened += o.payload.len();
                // Replays are dropped without allocating either.
                assert!(inb.open(b, p.clone()).is_err());
            }
            let _ = out.counters();
            let after = ALLOCS.load(Ordering::Relaxed);

            assert_eq!(opened, BATCH * LEN);
            assert_eq!(
                after - before,
                0,
                "{suite} esn={esn}: allocations in the hot path"
            );
        }
    }
}
