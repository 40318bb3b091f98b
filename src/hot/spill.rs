//! Accumulators for samples the ring could not take.
//!
//! When a push fails the sample is not lost: its weighted contribution is
//! folded in here, so counter and up-down estimates stay unbiased and a
//! histogram keeps its count, sum, min and max (only the sample's place in
//! the distribution is lost). Every fold is one of a handful of CAS loops on
//! the series' own cache line: this runs only on overflow, never per call.

use super::sample::Sample;
use crate::sync::{AtomicF64, AtomicU64, Ordering};

/// Per-series spill totals. Written by producers on a full ring; read (and
/// reset) by whoever aggregates.
#[derive(Debug)]
pub struct Spill {
    /// Number of samples folded in (unweighted).
    samples: AtomicU64,
    /// Σ 1/p: the estimated number of calls these samples stand for.
    weight: AtomicF64,
    /// Σ (1−p)/p²: Horvitz–Thompson variance of `weight`.
    weight_var: AtomicF64,
    /// Σ v/p.
    value: AtomicF64,
    /// Σ v²(1−p)/p².
    value_var: AtomicF64,
    /// Smallest and largest value folded in (+∞ / −∞ when none).
    min: AtomicF64,
    max: AtomicF64,
    /// True while every folded sample had p = 1.
    inexact: AtomicU64,
}

/// What a spill accumulator held when it was read.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SpillTotals {
    /// Samples folded in.
    pub samples: u64,
    /// Σ 1/p.
    pub weight: f64,
    /// Σ (1−p)/p².
    pub weight_var: f64,
    /// Σ v/p.
    pub value: f64,
    /// Σ v²(1−p)/p².
    pub value_var: f64,
    /// Smallest value, +∞ when none.
    pub min: f64,
    /// Largest value, −∞ when none.
    pub max: f64,
    /// True if some sample had p < 1.
    pub inexact: bool,
}

impl Default for Spill {
    fn default() -> Self {
        Self::new()
    }
}

impl Spill {
    /// Empty accumulators.
    pub fn new() -> Self {
        Self {
            samples: AtomicU64::new(0),
            weight: AtomicF64::new(0.0),
            weight_var: AtomicF64::new(0.0),
            value: AtomicF64::new(0.0),
            value_var: AtomicF64::new(0.0),
            min: AtomicF64::new(f64::INFINITY),
            max: AtomicF64::new(f64::NEG_INFINITY),
            inexact: AtomicU64::new(0),
        }
    }

    /// Folds in one sample's weighted contribution.
    #[cold]
    #[inline(never)]
    pub fn fold(&self, sample: &Sample) {
        let p = f64::from(sample.inclusion_prob);
        let v = sample.value;
        // Horvitz–Thompson: contribution v/p, variance term v²(1−p)/p².
        let var_factor = (1.0 - p) / (p * p);
        self.weight.add(1.0 / p);
        self.weight_var.add(var_factor);
        self.value.add(v / p);
        self.value_var.add(v * v * var_factor);
        self.min.fetch_min(v);
        self.max.fetch_max(v);
        if p < 1.0 {
            self.inexact.store(1, Ordering::Relaxed);
        }
        // Counted last: a reader that sees `samples` may still miss the sums
        // of an in-flight fold, which the next read picks up (`take`).
        self.samples.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads the totals without resetting them.
    pub fn read(&self) -> SpillTotals {
        SpillTotals {
            samples: self.samples.load(Ordering::Relaxed),
            weight: self.weight.load(),
            weight_var: self.weight_var.load(),
            value: self.value.load(),
            value_var: self.value_var.load(),
            min: self.min.load(),
            max: self.max.load(),
            inexact: self.inexact.load(Ordering::Relaxed) != 0,
        }
    }

    /// Moves the totals out, leaving the accumulators empty.
    ///
    /// Each field is swapped on its own, so a fold running concurrently lands
    /// either in what is returned or in what stays behind, field by field;
    /// after all folders have finished, the sums of every `take` plus what is
    /// left equal what was folded.
    pub fn take(&self) -> SpillTotals {
        SpillTotals {
            samples: self.samples.swap(0, Ordering::Relaxed),
            weight: self.weight.swap(0.0),
            weight_var: self.weight_var.swap(0.0),
            value: self.value.swap(0.0),
            value_var: self.value_var.swap(0.0),
            min: self.min.swap(f64::INFINITY),
            max: self.max.swap(f64::NEG_INFINITY),
            inexact: self.inexact.swap(0, Ordering::Relaxed) != 0,
        }
    }
}
