//! Randomness for the sans-IO core: everything random is drawn through [`Rng`].

use aws_lc_rs::digest;
use zeroize::Zeroize;

/// A source of random bytes. The protocol core never draws randomness by itself:
/// the daemon passes [`SystemRng`], tests pass [`TestRng`].
pub trait Rng {
    /// Fills `buf` entirely with random bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

impl<R: Rng + ?Sized> Rng for &mut R {
    fn fill(&mut self, buf: &mut [u8]) {
        (**self).fill(buf)
    }
}

/// The operating system's CSPRNG, through aws-lc (`aws_lc_rs::rand::fill`).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemRng;

impl Rng for SystemRng {
    /// # Panics
    /// If the system CSPRNG fails (aws-lc aborts in that case anyway): continuing
    /// without randomness would be worse than stopping.
    fn fill(&mut self, buf: &mut [u8]) {
        #[allow(clippy::expect_used)]
        aws_lc_rs::rand::fill(buf).expect("system random number generator failed");
    }
}

/// A deterministic generator for reproducible tests: block `i` of the stream is
/// `SHA-256(seed || i as u64 big-endian)`.
///
/// **Not for production**: anyone who knows the seed knows every output.
#[derive(Clone)]
pub struct TestRng {
    seed: [u8; 32],
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl TestRng {
    /// A generator whose whole output is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&seed.to_be_bytes());
        Self::from_seed(s)
    }

    /// A generator whose whole output is determined by a 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        TestRng {
            seed,
            counter: 0,
            block: [0; 32],
            used: 32,
        }
    }

    fn refill(&mut self) {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(&self.seed);
        ctx.update(&self.counter.to_be_bytes());
        self.block.copy_from_slice(ctx.finish().as_ref());
        self.counter = self.counter.wrapping_add(1);
        self.used = 0;
    }
}

impl Rng for TestRng {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf.iter_mut() {
            if self.used == self.block.len() {
                self.refill();
            }
            *b = self.block[self.used];
            self.used += 1;
        }
    }
}

impl core::fmt::Debug for TestRng {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("TestRng(<seeded>)")
    }
}

impl Drop for TestRng {
    fn drop(&mut self) {
        self.seed.zeroize();
        self.block.zeroize();
    }
}
