//! Anti-replay window (RFC 4303 §3.4.3 and Appendix A) with ESN inference (§A2.2).
//!
//! The window is a ring of `size` bits (a power of two, at least 64) indexed by
//! `seq mod size`, plus `top`, the highest authenticated 64-bit sequence number. A number
//! `s` is new if `s > top`, inside the window if `top - size < s <= top` (then the bit
//! tells whether it was seen), and too old otherwise. Sequence number 0 is never valid
//! (the first packet of an SA carries 1).
//!
//! The window is only updated ([`ReplayWindow::accept`]) after the ICV of a packet was
//! verified; [`ReplayWindow::check`] is the cheap test done before.

/// Default window size in packets. Large enough for the reordering multi-queue senders
/// and receive-side batching cause at 10 Gbit/s.
pub const DEFAULT_WINDOW: u32 = 4096;
/// Smallest window (one bitmap word).
pub const MIN_WINDOW: u32 = 64;
/// Largest window (a 8 KiB bitmap).
pub const MAX_WINDOW: u32 = 1 << 16;

/// Why a sequence number was refused by the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayError {
    /// Already received.
    Replayed,
    /// Left of the window.
    TooOld,
    /// Zero, or no 64-bit number fits the 32 bits received (ESN).
    Invalid,
}

/// Sliding anti-replay window.
#[derive(Clone)]
pub struct ReplayWindow {
    bits: Box<[u64]>,
    size: u64,
    top: u64,
}

impl core::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("size", &self.size)
            .field("top", &self.top)
            .finish_non_exhaustive()
    }
}

impl ReplayWindow {
    /// A window of `size` packets (rounded up to a power of two in
    /// [`MIN_WINDOW`]..=[`MAX_WINDOW`]) that has seen nothing.
    pub fn new(size: u32) -> Self {
        Self::with_top(size, 0)
    }

    /// A window whose highest received number is `top`, and which treats every number
    /// inside the window below `top` as received too (restoring state, e.g. after an
    /// HA failover, when the exact bitmap is unknown: refusing is the safe side).
    pub fn with_top(size: u32, top: u64) -> Self {
        let size = size.clamp(MIN_WINDOW, MAX_WINDOW).next_power_of_two();
        let words = (size / 64) as usize;
        let fill = if top == 0 { 0 } else { u64::MAX };
        ReplayWindow {
            bits: vec![fill; words].into_boxed_slice(),
            size: u64::from(size),
            top,
        }
    }

    /// Window size in packets.
    pub fn size(&self) -> u32 {
        // size <= MAX_WINDOW by construction.
        self.size as u32
    }

    /// Highest authenticated sequence number (0: none yet).
    pub fn top(&self) -> u64 {
        self.top
    }

    /// The full 64-bit sequence number for the low 32 bits received, RFC 4303 §A2.2.
    /// Without ESN the number is the 32 bits themselves.
    pub fn infer(&self, seq_lo: u32, esn: bool) -> Result<u64, ReplayError> {
        infer_at(self.size, self.top, seq_lo, esn)
    }

    #[inline]
    fn bit(&self, seq: u64) -> (usize, u64) {
        let idx = seq & (self.size - 1);
        ((idx / 64) as usize, 1u64 << (idx % 64))
    }

    /// Would `seq` be accepted? Does not change the window.
    pub fn check(&self, seq: u64) -> Result<(), ReplayError> {
        if seq == 0 {
            return Err(ReplayError::Invalid);
        }
        if seq > self.top {
            return Ok(());
        }
        if self.top - seq >= self.size {
            return Err(ReplayError::TooOld);
        }
        let (w, m) = self.bit(seq);
        match self.bits.get(w) {
            Some(word) if word & m == 0 => Ok(()),
            _ => Err(ReplayError::Replayed),
        }
    }

    /// Marks `seq` received (call only after its ICV was verified). Checks again, so
    /// that of two threads racing with the same number only one wins.
    pub fn accept(&mut self, seq: u64) -> Result<(), ReplayError> {
        self.check(seq)?;
        if seq > self.top {
            let diff = seq - self.top;
            if diff >= self.size {
                self.bits.fill(0);
            } else {
                self.clear(self.top + 1, diff);
            }
            self.top = seq;
        }
        let (w, m) = self.bit(seq);
        if let Some(word) = self.bits.get_mut(w) {
            *word |= m;
        }
        Ok(())
    }

    /// Clears the bits of the `count` (fewer than `size`) numbers from `from` on.
    fn clear(&mut self, from: u64, count: u64) {
        let mut p = from;
        let mut left = count;
        while left > 0 {
            let idx = p & (self.size - 1);
            let bit = idx % 64;
            let n = (64 - bit).min(left);
            let mask = if n == 64 {
                u64::MAX
            } else {
                ((1u64 << n) - 1) << bit
            };
            if let Some(word) = self.bits.get_mut((idx / 64) as usize) {
                *word &= !mask;
            }
            p = p.wrapping_add(n);
            left -= n;
        }
    }
}

/// [`ReplayWindow::infer`] for a window of `size` packets (a power of two, at most
/// [`MAX_WINDOW`]) whose highest received number is `top`.
#[inline]
pub(crate) fn infer_at(size: u64, top: u64, seq_lo: u32, esn: bool) -> Result<u64, ReplayError> {
    if !esn {
        return Ok(u64::from(seq_lo));
    }
    // size <= 2^16, so it fits a u32 and `w - 1` does not underflow.
    let w = size as u32;
    let tl = top as u32;
    let th = (top >> 32) as u32;
    let hi = if tl >= w - 1 {
        // Case A: the window lies within one 2^32 subspace.
        if seq_lo >= tl - (w - 1) {
            Some(th)
        } else {
            th.checked_add(1)
        }
    } else {
        // Case B: the window spans two subspaces.
        if seq_lo >= tl.wrapping_sub(w - 1) {
            th.checked_sub(1)
        } else {
            Some(th)
        }
    };
    match hi {
        Some(hi) => Ok(u64::from(hi) << 32 | u64::from(seq_lo)),
        None => Err(ReplayError::Invalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_semantics() {
        let mut w = ReplayWindow::new(64);
        assert_eq!(w.check(0), Err(ReplayError::Invalid));
        assert_eq!(w.accept(1), Ok(()));
        assert_eq!(w.accept(1), Err(ReplayError::Replayed));
        assert_eq!(w.accept(3), Ok(()));
        assert_eq!(w.accept(2), Ok(()));
        assert_eq!(w.accept(2), Err(ReplayError::Replayed));
        assert_eq!(w.accept(100), Ok(()));
        assert_eq!(w.check(36), Err(ReplayError::TooOld));
        assert_eq!(w.check(37), Ok(()));
        assert_eq!(w.accept(37), Ok(()));
        assert_eq!(w.check(37), Err(ReplayError::Replayed));
        assert_eq!(w.top(), 100);
    }

    #[test]
    fn sizes_round_up() {
        assert_eq!(ReplayWindow::new(0).size(), 64);
        assert_eq!(ReplayWindow::new(1000).size(), 1024);
        assert_eq!(ReplayWindow::new(u32::MAX).size(), MAX_WINDOW);
    }

    #[test]
    fn esn_inference_rfc4303_a2() {
        // Case A, top well inside subspace 0.
        let w = ReplayWindow::with_top(64, 1000);
        assert_eq!(w.infer(1001, true), Ok(1001));
        assert_eq!(w.infer(990, true), Ok(990));
        // Far below the window: must belong to the next subspace.
        assert_eq!(w.infer(5, true), Ok((1 << 32) | 5));
        // Case B: top just after the 2^32 boundary.
        let w = ReplayWindow::with_top(64, (1 << 32) + 10);
        assert_eq!(w.infer(0xFFFF_FFF0, true), Ok(0xFFFF_FFF0));
        assert_eq!(w.infer(5, true), Ok((1 << 32) + 5));
        assert_eq!(w.infer(20, true), Ok((1 << 32) + 20));
        // Case B in subspace 0: numbers "before" 0 do not exist.
        let w = ReplayWindow::with_top(64, 10);
        assert_eq!(w.infer(0xFFFF_FFF0, true), Err(ReplayError::Invalid));
        assert_eq!(w.infer(0xFFFF_FFF0, false), Ok(0xFFFF_FFF0));
    }

    #[test]
    fn with_top_refuses_window_below_top() {
        let w = ReplayWindow::with_top(64, 1000);
        assert_eq!(w.check(1000), Err(ReplayError::Replayed));
        assert_eq!(w.check(990), Err(ReplayError::Replayed));
        assert_eq!(w.check(900), Err(ReplayError::TooOld));
        assert_eq!(w.check(1001), Ok(()));
    }
}
