//! The shared sample rate, published by the controller, read by samplers
//! only when they redraw a skip.
//!
//! One `AtomicU64` holds an epoch (high 32 bits) and the rate as `f32` bits
//! (low 32 bits). A sampler caches the whole word next to the derived
//! `ln(1 − p)`; an unchanged word means the cached logarithm is still right,
//! so the redraw costs one load and one compare beyond the random draw. The
//! rate a sample carries is exactly the `f32` read here, the one its
//! Bernoulli trial used.

use crate::sync::{AtomicU64, Ordering};

/// A rate word: epoch in the high half, `f32` rate bits in the low half.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateWord(pub(crate) u64);

impl RateWord {
    /// The rate as published.
    pub fn rate(self) -> f32 {
        f32::from_bits(self.0 as u32)
    }

    /// How many times the rate was published before this word.
    pub fn epoch(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

/// The cell the controller writes and samplers read.
#[derive(Debug)]
pub struct RateCell {
    word: AtomicU64,
}

impl RateCell {
    /// A cell holding `rate` at epoch 0.
    pub fn new(rate: f32) -> Self {
        Self {
            word: AtomicU64::new(u64::from(rate.to_bits())),
        }
    }

    /// Current word.
    #[inline]
    pub fn load(&self) -> RateWord {
        // Relaxed: the word is self-contained; nothing else is published
        // with it.
        RateWord(self.word.load(Ordering::Relaxed))
    }

    /// Current rate.
    pub fn rate(&self) -> f32 {
        self.load().rate()
    }

    /// Publishes `rate` under the next epoch. Only the flusher calls this.
    pub fn publish(&self, rate: f32) {
        let old = self.load();
        let epoch = u64::from(old.epoch().wrapping_add(1));
        self.word
            .store((epoch << 32) | u64::from(rate.to_bits()), Ordering::Relaxed);
    }
}
