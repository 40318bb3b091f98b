//! The thread-local sampling decision.
//!
//! Each thread keeps a countdown of calls to skip. The common, unsampled
//! call decrements it and returns: one thread-local load, a decrement, a
//! store and a branch, with no shared memory touched. When the countdown is
//! exhausted the call is sampled, and the next skip is drawn from the
//! geometric distribution with the rate then in force, `G = ⌊ln U / ln(1−p)⌋`,
//! which makes every call an independent Bernoulli(p) trial. The sample
//! carries the `p` its skip was drawn with, which is what keeps the
//! Horvitz–Thompson correction unbiased across rate changes.
//!
//! The state is a `const`-initialised thread-local of `Cell`s with no
//! destructor, so there is no lazy-init branch on the fast path and nothing to
//! clean up when a thread exits.

use std::cell::Cell;

use crate::rate::{RateCell, RateWord};

/// How many calls a thread skips before it checks again for an engine when
/// none is installed.
const NO_ENGINE_RECHECK: u64 = 1023;

/// One thread's sampling state.
#[derive(Debug)]
pub struct Sampler {
    /// Calls still to skip before the next sampled one.
    countdown: Cell<u64>,
    /// Rate the current skip was drawn with; 0 when no skip is scheduled
    /// (fresh thread, or no engine), so the next decision is a fresh trial.
    prob: Cell<f32>,
    /// wyrand state (via `fastrand::Rng`); 0 until seeded.
    rng: Cell<u64>,
    /// Last rate word seen, and `1 / ln(1 − p)` for it (a multiply per
    /// draw instead of a divide).
    rate_word: Cell<u64>,
    inv_ln_keep: Cell<f64>,
    /// Ring shard this thread pushes to; `u32::MAX` until assigned.
    shard: Cell<u32>,
}

impl Default for Sampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Sampler {
    /// A sampler with nothing scheduled.
    pub const fn new() -> Self {
        Self {
            countdown: Cell::new(0),
            prob: Cell::new(0.0),
            rng: Cell::new(0),
            rate_word: Cell::new(u64::MAX),
            inv_ln_keep: Cell::new(0.0),
            shard: Cell::new(u32::MAX),
        }
    }

    /// A sampler whose random stream starts from `seed` (tests, loom).
    pub fn with_seed(seed: u64) -> Self {
        let sampler = Self::new();
        sampler.rng.set(seed | 1);
        sampler
    }

    /// The per-call check: `true` means skip this call.
    #[inline(always)]
    pub fn skip(&self) -> bool {
        let left = self.countdown.get();
        self.countdown.set(left.wrapping_sub(1));
        left != 0
    }

    /// Decides the call whose countdown ran out: `Some(p)` if it is sampled,
    /// with the probability it was sampled with.
    #[cold]
    #[inline(never)]
    pub fn decide(&self, rate: &RateCell) -> Option<f32> {
        let held = self.prob.get();
        if held > 0.0 {
            // The scheduled success: this call is the sample its skip led to.
            self.schedule(rate);
            return Some(held);
        }
        // Nothing scheduled: this call is a fresh Bernoulli(p) trial; draw the
        // number of failures before the first success, counting this call.
        let p = self.refresh(rate.load());
        let failures = self.draw(p);
        if failures == 0 {
            self.schedule(rate);
            Some(p)
        } else {
            self.countdown.set(failures - 1);
            self.prob.set(p);
            None
        }
    }

    /// With no engine installed: skip a while, then check again with a fresh
    /// trial (nothing scheduled carries over).
    #[cold]
    #[inline(never)]
    pub fn park(&self) {
        self.countdown.set(NO_ENGINE_RECHECK);
        self.prob.set(0.0);
    }

    /// The ring shard for this thread, assigned on first use by `assign`.
    #[inline]
    pub fn shard(&self, shards: usize, assign: impl FnOnce() -> usize) -> usize {
        let mut shard = self.shard.get();
        if shard == u32::MAX {
            shard = assign() as u32;
            self.shard.set(shard);
        }
        shard as usize % shards.max(1)
    }

    /// Draws the skip after a sampled call.
    fn schedule(&self, rate: &RateCell) {
        let p = self.refresh(rate.load());
        self.countdown.set(self.draw(p));
        self.prob.set(p);
    }

    /// Caches `1 / ln(1 − p)` for a new rate word and returns `p`.
    fn refresh(&self, word: RateWord) -> f32 {
        if word.0 != self.rate_word.get() {
            self.rate_word.set(word.0);
            let ln_keep = (1.0 - f64::from(word.rate())).ln().min(-f64::MIN_POSITIVE);
            self.inv_ln_keep.set(1.0 / ln_keep);
        }
        word.rate()
    }

    /// Failures before the next success at the cached rate.
    fn draw(&self, p: f32) -> u64 {
        if p >= 1.0 {
            return 0;
        }
        let mut seed = self.rng.get();
        if seed == 0 {
            seed = fastrand::u64(..) | 1;
        }
        let mut rng = fastrand::Rng::with_seed(seed);
        // U in (0, 1]: 53 random bits, shifted off zero.
        let uniform = ((rng.u64(..) >> 11) as f64 + 1.0) * (1.0 / (1u64 << 53) as f64);
        self.rng.set(rng.get_seed());
        // ⌊ln U / ln(1−p)⌋ ~ Geometric(p) failures; `as` saturates.
        (uniform.ln() * self.inv_ln_keep.get()) as u64
    }
}

#[cfg(not(loom))]
std::thread_local! {
    /// This thread's sampler: `const` so the fast path has no init check.
    pub(crate) static SAMPLER: Sampler = const { Sampler::new() };
}

#[cfg(loom)]
loom::thread_local! {
    pub(crate) static SAMPLER: Sampler = Sampler::new();
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Runs `calls` decisions through a sampler the way the hot path does.
    fn sampled_calls(sampler: &Sampler, rate: &RateCell, calls: u64) -> (u64, Vec<f32>) {
        let mut sampled = 0;
        let mut probs = Vec::new();
        for _ in 0..calls {
            if sampler.skip() {
                continue;
            }
            if let Some(p) = sampler.decide(rate) {
                sampled += 1;
                probs.push(p);
            }
        }
        (sampled, probs)
    }

    #[test]
    fn the_share_of_sampled_calls_matches_the_rate() {
        for rate in [0.01f32, 0.03, 0.15, 0.5] {
            let cell = RateCell::new(rate);
            let sampler = Sampler::with_seed(42);
            let calls = 2_000_000u64;
            let (sampled, probs) = sampled_calls(&sampler, &cell, calls);
            let expected = calls as f64 * f64::from(rate);
            let sd = (expected * (1.0 - f64::from(rate))).sqrt();
            assert!(
                (sampled as f64 - expected).abs() < 5.0 * sd,
                "rate {rate}: {sampled} sampled, expected {expected}"
            );
            assert!(probs.iter().all(|&p| p == rate));
        }
    }

    #[test]
    fn rate_one_samples_every_call_and_a_rate_change_is_picked_up() {
        let cell = RateCell::new(1.0);
        let sampler = Sampler::with_seed(1);
        assert_eq!(sampled_calls(&sampler, &cell, 1000).0, 1000);
        cell.publish(0.1);
        let (sampled, probs) = sampled_calls(&sampler, &cell, 100_000);
        assert!((8_000..12_000).contains(&sampled), "{sampled}");
        // The first sample after the change was drawn at 1.0, the rest at 0.1.
        assert!(probs.iter().skip(1).all(|&p| p == 0.1));
    }

    #[test]
    fn parking_skips_then_starts_a_fresh_trial() {
        let cell = RateCell::new(1.0);
        let sampler = Sampler::with_seed(3);
        sampler.park();
        let skipped = (0..NO_ENGINE_RECHECK).filter(|_| sampler.skip()).count();
        assert_eq!(skipped as u64, NO_ENGINE_RECHECK);
        assert!(!sampler.skip());
        assert_eq!(sampler.decide(&cell), Some(1.0));
    }

    #[test]
    fn shards_are_assigned_once_per_thread() {
        let sampler = Sampler::new();
        assert_eq!(sampler.shard(4, || 6), 2);
        assert_eq!(sampler.shard(4, || unreachable!("assigned already")), 2);
    }
}

/// Restarts this thread's sampler from `seed`, exactly as
/// [`Sampler::with_seed`] starts a fresh one, so a test can replay the
/// thread's decisions on its own sampler and know which calls were sampled
/// and with which `p`. Test builds only.
#[cfg(all(test, not(loom)))]
pub(crate) fn seed_this_thread(seed: u64) {
    SAMPLER.with(|sampler| {
        sampler.countdown.set(0);
        sampler.prob.set(0.0);
        sampler.rng.set(seed | 1);
        sampler.rate_word.set(u64::MAX);
        sampler.inv_ln_keep.set(0.0);
    });
}
