//! The thread-local sampling decision.
//!
//! Each thread keeps a countdown of calls to skip. The common, unsampled
//! call takes its callsite's step (1) off it and returns: a thread-local
//! subtract and a branch on the borrow, with no shared memory touched. When
//! the countdown is exhausted the call is sampled, and takes the next skip
//! from the geometric distribution at the rate then in force,
//! `G = ⌊ln U / ln(1−p)⌋`, which makes every call an independent
//! Bernoulli(p) trial. Skips are drawn [`SKIP_BATCH`] at a time so their
//! dependency chains overlap; a batch drawn at an older rate is discarded
//! when the rate word changes. The sample carries the `p` its skip was drawn
//! with, which is what keeps the Horvitz–Thompson correction unbiased across
//! rate changes.
//!
//! The state is `Cell`s with a `const` constructor and no destructor: it
//! lives in the thread's one `const` thread-local (`thread.rs`), so there is
//! no lazy-init branch on the fast path and nothing to clean up when a
//! thread exits.

use super::rate::{RateCell, RateWord};
use crate::sync::Cell;

/// How many calls a thread skips before it checks again for an engine when
/// none is installed.
const NO_ENGINE_RECHECK: u64 = 1023;

/// How many skips a thread draws at once. Each draw is a chain of about a
/// hundred cycles (random bits, logarithm, conversions); drawn one per
/// sampled call, that chain blocks the caller's instruction window. Drawn
/// eight at a time, the chains run side by side and each sampled call only
/// takes the next one.
const SKIP_BATCH: usize = 8;

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
    /// Skips drawn ahead, all at the rate of `rate_word`; the next one used
    /// is `skips[skips_left − 1]`.
    skips: [Cell<u64>; SKIP_BATCH],
    skips_left: Cell<usize>,
    /// The last `(p, step)` whose inclusion probability was computed, and
    /// that probability: a thread's sampled calls mostly repeat a few
    /// series, so the logarithm and exponential are paid once per change.
    memo_prob: Cell<f32>,
    memo_step: Cell<u64>,
    memo_inclusion: Cell<f32>,
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
            skips: [const { Cell::new(0) }; SKIP_BATCH],
            skips_left: Cell::new(0),
            memo_prob: Cell::new(0.0),
            memo_step: Cell::new(1),
            memo_inclusion: Cell::new(0.0),
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
        self.skip_by(1)
    }

    /// The per-call check of a `record!` site: takes `step` off the
    /// countdown; `true` (no borrow) means skip this call. A step of
    /// `u64::MAX` always borrows (countdowns stay below `2^63`), and
    /// [`Sampler::give_back`] then restores the countdown.
    #[inline(always)]
    pub fn skip_by(&self, step: u64) -> bool {
        let (left, borrowed) = self.countdown.get().overflowing_sub(step);
        self.countdown.set(left);
        !borrowed
    }

    /// Undoes a [`Sampler::skip_by`] whose call is not the sampler's to
    /// decide (an exact, disabled or unresolved callsite).
    #[inline]
    pub fn give_back(&self, step: u64) {
        self.countdown.set(self.countdown.get().wrapping_add(step));
    }

    /// Decides the call whose countdown ran out when it took `step` off it:
    /// `Some(π)` if it is sampled, with the probability it was sampled with,
    /// `π = 1 − (1 − p)^step` for the `p` its countdown was drawn at.
    #[inline]
    pub fn decide(&self, rate: &RateCell, step: u64) -> Option<f32> {
        let held = self.prob.get();
        if held > 0.0 {
            // The scheduled success fell within this call's `step` trials:
            // the call is the sample its skip led to.
            self.schedule(rate);
            return Some(self.inclusion_prob(held, step));
        }
        self.fresh_trial(rate, step)
    }

    /// Nothing scheduled (a fresh thread, or one that was parked): this call
    /// is `step` fresh Bernoulli(p) trials; draw the number of failures
    /// before the first success: the call is sampled iff it is below `step`,
    /// and otherwise the rest is the countdown.
    #[cold]
    #[inline(never)]
    fn fresh_trial(&self, rate: &RateCell, step: u64) -> Option<f32> {
        let (failures, p) = self.next_skip(rate);
        if failures < step {
            self.schedule(rate);
            Some(self.inclusion_prob(p, step))
        } else {
            self.countdown.set(failures - step);
            self.prob.set(p);
            None
        }
    }

    /// [`inclusion_prob`], remembered for the last `(p, step)`.
    #[inline]
    fn inclusion_prob(&self, p: f32, step: u64) -> f32 {
        if step == 1 {
            return p;
        }
        if p != self.memo_prob.get() || step != self.memo_step.get() {
            self.memo_prob.set(p);
            self.memo_step.set(step);
            self.memo_inclusion.set(inclusion_prob(p, step));
        }
        self.memo_inclusion.get()
    }

    /// With no engine installed: skip a while, then check again with a fresh
    /// trial (nothing scheduled carries over).
    #[cold]
    #[inline(never)]
    pub fn park(&self) {
        self.countdown.set(NO_ENGINE_RECHECK);
        self.prob.set(0.0);
    }

    /// Schedules the skip after a sampled call.
    #[inline]
    fn schedule(&self, rate: &RateCell) {
        let (skip, p) = self.next_skip(rate);
        self.countdown.set(skip);
        self.prob.set(p);
    }

    /// The next skip drawn ahead and the rate it was drawn at, which is the
    /// rate in force: a new rate word discards what was drawn at the old one
    /// (skips are independent of the calls, so dropping some biases nothing).
    #[inline]
    fn next_skip(&self, rate: &RateCell) -> (u64, f32) {
        let word = rate.load();
        let mut left = self.skips_left.get();
        if left == 0 || word.0 != self.rate_word.get() {
            self.refill(word);
            left = SKIP_BATCH;
        }
        left -= 1;
        self.skips_left.set(left);
        (self.skips[left].get(), word.rate())
    }

    /// Draws a batch of skips at the rate of `word`.
    #[cold]
    #[inline(never)]
    fn refill(&self, word: RateWord) {
        if word.0 != self.rate_word.get() {
            self.rate_word.set(word.0);
            // No special case for p = 1: `ln 0 = −∞` makes the factor `−0.0`,
            // so every skip is 0 (every call is sampled).
            let ln_keep = (1.0 - f64::from(word.rate())).ln().min(-f64::MIN_POSITIVE);
            self.inv_ln_keep.set(1.0 / ln_keep);
        }
        let mut seed = self.rng.get();
        if seed == 0 {
            seed = fresh_seed();
        }
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut bits = [0u64; SKIP_BATCH];
        for slot in &mut bits {
            *slot = rng.u64(..);
        }
        self.rng.set(rng.get_seed());
        // Branch-free and lane by lane, so the compiler evaluates the draws
        // two (or more) at a time in vector registers.
        let inv_ln_keep = self.inv_ln_keep.get();
        let mut draws = [0.0f64; SKIP_BATCH];
        for (draw, bits) in draws.iter_mut().zip(bits) {
            *draw = ln(uniform(bits)) * inv_ln_keep;
        }
        for (skip, draw) in self.skips.iter().zip(draws) {
            // ⌊ln U / ln(1 − p)⌋ ~ Geometric(p) failures. Both factors are
            // ≤ 0, so the draw is ≥ 0; `as i64` truncates, and saturates for
            // the astronomically long skips of a denormal rate (cheaper than
            // the extra range checks of a cast to `u64`).
            skip.set(draw as i64 as u64);
        }
    }
}

/// The probability that a call taking `step` unit trials of probability `p`
/// off the countdown is sampled: `1 − (1 − p)^step`, computed as
/// `−expm1(step · ln1p(−p))` in `f64` so that small probabilities and
/// large steps keep their precision. A step of 1 is `p` itself.
#[inline]
pub fn inclusion_prob(p: f32, step: u64) -> f32 {
    if step == 1 {
        return p;
    }
    let p = f64::from(p);
    (-(step as f64 * (-p).ln_1p()).exp_m1()) as f32
}

/// The smallest step whose probability off base rate `base` reaches
/// `prob`: `⌈ln(1 − prob) / ln(1 − base)⌉`, at least 1.
pub(crate) fn step_for(prob: f64, base: f64) -> u64 {
    if prob <= base {
        return 1;
    }
    let steps = (-prob).ln_1p() / (-base).ln_1p();
    // A hair above a whole number is that number (rounding in the logs).
    let step = (steps - 1e-6).ceil();
    step.clamp(1.0, (1u64 << 62) as f64) as u64
}

/// `1 − (1 − base)^step`.
pub(crate) fn prob_of(base: f64, step: u64) -> f64 {
    -(step as f64 * (-base).ln_1p()).exp_m1()
}

#[cold]
#[inline(never)]
fn fresh_seed() -> u64 {
    fastrand::u64(..) | 1
}

/// `U` uniform on `(0, 1]` (a grid of step `2^-52`) from 52 random bits:
/// `2 − x` for `x` in `[1, 2)` built from the bits, which is exact.
#[inline(always)]
fn uniform(bits: u64) -> f64 {
    const ONE_BITS: u64 = 0x3ff0_0000_0000_0000;
    2.0 - f64::from_bits(ONE_BITS | (bits >> 12))
}

/// Natural logarithm of a positive, normal, finite `x`, to within 2e-10
/// relative error (the skip draw's only transcendental, inlined: the libm
/// call, its special-case checks and its table cost several times more
/// instructions, and every instruction of the sampled path is paid at the
/// sampling rate on the caller's thread).
///
/// `x = 2^k · m` with `m` in `[√½, √2)`, then
/// `ln m = 2 atanh(s) = s (2 + 2s²/3 + 2s⁴/5 + …)` with `s = (m − 1)/(m + 1)`,
/// `|s| ≤ 0.1716`; the series is cut after `s¹⁰`, the first term left out
/// is below `2 · 0.0295⁶ / 13 < 1e-10` of the sum.
///
/// The geometric skip is `⌊ln U / ln(1 − p)⌋`; a relative error `ε` in `ln U`
/// moves the inclusion probability by a relative `O(ε)`, far below anything
/// an estimate can resolve (the test below bounds the error against `f64::ln`).
#[inline(always)]
pub(crate) fn ln(x: f64) -> f64 {
    const SQRT_HALF_BITS: u64 = 0x3fe6_a09e_667f_3bcd;
    const ONE_BITS: u64 = 0x3ff0_0000_0000_0000;
    const MANTISSA: u64 = (1 << 52) - 1;
    const LN_2: f64 = std::f64::consts::LN_2;
    // Shift the exponent so that mantissas at or above √½ count in the next
    // binade; `k` is then the exponent of `x / m`.
    let shifted = x.to_bits().wrapping_add(ONE_BITS - SQRT_HALF_BITS);
    // The biased exponent (0..2048) as a double without an integer
    // conversion (which has no vector form): placed in the mantissa of
    // 2^52, then 2^52 and the bias taken off, exactly.
    const TWO_52_BITS: u64 = 0x4330_0000_0000_0000;
    let k = f64::from_bits(TWO_52_BITS | (shifted >> 52)) - (4_503_599_627_370_496.0 + 1023.0);
    let m = f64::from_bits((shifted & MANTISSA).wrapping_add(SQRT_HALF_BITS));
    let f = m - 1.0;
    let s = f / (2.0 + f);
    let z = s * s;
    // Estrin's scheme (pairs evaluated side by side): a shorter dependency
    // chain than Horner's for the same terms.
    let z2 = z * z;
    let low = 2.0 + z * (2.0 / 3.0);
    let mid = 2.0 / 5.0 + z * (2.0 / 7.0);
    let high = 2.0 / 9.0 + z * (2.0 / 11.0);
    let series = low + z2 * (mid + z2 * high);
    k * LN_2 + s * series
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
            if let Some(p) = sampler.decide(rate, 1) {
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
        assert_eq!(sampler.decide(&cell, 1), Some(1.0));
    }

    #[test]
    fn a_call_taking_a_step_is_sampled_with_the_probability_it_carries() {
        for (rate, step) in [(0.001f32, 50u64), (0.01, 7), (0.0001, 3000), (0.2, 2)] {
            let cell = RateCell::new(rate);
            let sampler = Sampler::with_seed(step * 31);
            let calls = 400_000u64;
            let mut sampled = 0u64;
            let mut carried = None;
            for _ in 0..calls {
                if sampler.skip_by(step) {
                    continue;
                }
                if let Some(prob) = sampler.decide(&cell, step) {
                    sampled += 1;
                    carried = Some(prob);
                }
            }
            let expected_prob = 1.0 - (1.0 - f64::from(rate)).powf(step as f64);
            let carried = f64::from(carried.expect("some call sampled"));
            assert!((carried - expected_prob).abs() < 1e-6 * expected_prob.max(1e-3));
            let expected = calls as f64 * expected_prob;
            let sd = (expected * (1.0 - expected_prob)).sqrt();
            assert!(
                (sampled as f64 - expected).abs() < 5.0 * sd,
                "rate {rate}, step {step}: {sampled} sampled, expected {expected:.0}"
            );
        }
    }

    #[test]
    fn steps_of_different_series_share_one_countdown_independently() {
        // Two series interleaved on one thread, steps 1 and 40: each is
        // sampled at its own probability.
        let rate = 0.002f32;
        let cell = RateCell::new(rate);
        let sampler = Sampler::with_seed(99);
        let mut counts = [0u64; 2];
        let calls = 300_000u64;
        for _ in 0..calls {
            for (index, step) in [1u64, 40].into_iter().enumerate() {
                if !sampler.skip_by(step) && sampler.decide(&cell, step).is_some() {
                    counts[index] += 1;
                }
            }
        }
        for (index, step) in [1u64, 40].into_iter().enumerate() {
            let prob = 1.0 - (1.0 - f64::from(rate)).powf(step as f64);
            let expected = calls as f64 * prob;
            let sd = (expected * (1.0 - prob)).sqrt();
            assert!(
                (counts[index] as f64 - expected).abs() < 5.0 * sd,
                "step {step}: {} vs {expected:.0}",
                counts[index]
            );
        }
    }

    #[test]
    fn the_inlined_log_matches_libm() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut worst = 0.0f64;
        let mut check = |x: f64| {
            let (ours, libm) = (ln(x), x.ln());
            let error = if libm.abs() > 1e-3 {
                ((ours - libm) / libm).abs()
            } else {
                (ours - libm).abs() * 1e3
            };
            worst = worst.max(error);
        };
        for _ in 0..1_000_000 {
            // The skip draw's inputs: (0, 1] at 53-bit resolution.
            check(((rng.u64(..) >> 11) + 1) as f64 / (1u64 << 53) as f64);
            // And any positive normal value.
            check(f64::from_bits(
                rng.u64(0x0010_0000_0000_0000..0x7ff0_0000_0000_0000),
            ));
        }
        for x in [
            1.0,
            0.5,
            2.0,
            std::f64::consts::SQRT_2,
            1.0 / (1u64 << 53) as f64,
            f64::MIN_POSITIVE,
            f64::MAX,
        ] {
            check(x);
        }
        assert_eq!(ln(1.0), 0.0);
        assert!(worst < 2e-10, "worst relative error {worst:e}");
    }

}

impl Sampler {
    /// Restarts the sampler from `seed`, exactly as [`Sampler::with_seed`]
    /// starts a fresh one, so a test can replay a thread's decisions on its
    /// own sampler and know which calls were sampled and with which `p`.
    /// Test builds only.
    #[cfg(all(test, not(loom)))]
    pub(crate) fn reseed(&self, seed: u64) {
        self.countdown.set(0);
        self.prob.set(0.0);
        self.rng.set(seed | 1);
        self.rate_word.set(u64::MAX);
        self.inv_ln_keep.set(0.0);
        self.skips_left.set(0);
    }
}
