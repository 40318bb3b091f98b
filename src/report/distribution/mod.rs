//! The weighted distribution of one histogram series: log-linear buckets
//! indexed by the bits of the value's `f64`.
//!
//! # Layout
//!
//! A positive `f64` is `2^e × 1.m`. Keeping the exponent and the top
//! `bits` bits of the mantissa, `value.to_bits() >> (52 − bits)`, gives a
//! bucket index that grows with the value: `2^bits` buckets of equal width
//! per octave (binary order of magnitude), each at most `2^−bits` of its
//! lower bound wide. A bucket is read as its midpoint, which is within
//! `2^−(bits+1)` of every value in it (relative). One shift, no logarithm,
//! no division.
//!
//! Values below the bucket of the engine's `histogram_resolution` are
//! counted in one zero bucket and read as 0 (the resolution is, within a
//! bucket, the smallest value told apart from 0). Their indices, and those
//! of NaN and −0, fall outside the window of counts, so one bounds check
//! sends them, new ranges and overflowing counts alike to the slow path.
//!
//! # Storage
//!
//! The counts are a contiguous window of whole octaves that grows to cover
//! the values seen: a series spanning 1 … 10⁹ holds 30 octaves, however
//! many values it recorded. A count starts one byte wide; the window
//! widens to 2, 4 then 8 bytes per count the first time a bucket would
//! overflow. So memory depends on the range of the values and the largest
//! bucket count's width, never on the number of samples otherwise.
//!
//! | precision (digits) | buckets per octave | relative error | 1 … 10⁹ (30 octaves), 1-byte counts | whole range (63 octaves at resolution 0.001), 8-byte counts |
//! |---:|---:|---:|---:|---:|
//! | 1 | 4 | 12.5 % | 120 B | 2.0 KiB |
//! | **2 (default)** | **32** | **1.56 %** | **960 B** | **15.8 KiB** |
//! | 3 | 256 | 0.195 % | 7.5 KiB | 126 KiB |
//! | 4 | 4096 | 0.012 % | 120 KiB | 2 MiB |
//! | 5 | 32768 | 0.0015 % | 960 KiB | 16 MiB |
//!
//! # Why not `hdrhistogram` with fewer digits or narrower counts
//!
//! Measured with 10⁴ values log-uniform over 1 … 10⁹ at resolution 0.001
//! (units 10³ … 10¹²), per copy, and the time of `record_n` into a sized
//! histogram on the same machine: 3 significant digits, `u64` counts (the
//! previous layout): 254 KB, 13 ns; 2 digits, `u32`: 17 KB, 8–12 ns; 2
//! digits, `u16`: 8.7 KB, 9–12 ns; 1 digit, `u16`: 1.2 KB, 14–19 ns,
//! buckets 1/16 of their value wide. Its counts array spans 0 … max, so
//! the units below the values cost too, and its narrow counts saturate
//! silently (`saturating_add`) where a weighted count must not. Here the
//! bucket work of a drained sample is about 3 ns (`benches/drain.rs`),
//! a copy is 960 one- or two-byte counts, and a count widens instead of
//! saturating.
//!
//! A distribution in a snapshot is immutable and shared by `Arc` (see
//! `drain/live.rs` for how the aggregator lends it without a copy).

use std::sync::OnceLock;

use hdrhistogram::Histogram;

/// The precision (decimal digits) histograms keep unless configured.
pub(crate) const DEFAULT_PRECISION: u8 = 2;

/// Mantissa bits kept for `digits` of precision: values and quantiles
/// within `2·10^−digits` of the truth (relative), `⌈digits·log₂ 10⌉ − 2`.
pub(crate) fn bits_for_precision(digits: u8) -> u8 {
    (f64::from(digits) * std::f64::consts::LOG2_10).ceil() as u8 - 2
}

/// Bucket counts of one width.
#[derive(Clone, Debug)]
enum Counts {
    U8(Box<[u8]>),
    U16(Box<[u16]>),
    U32(Box<[u32]>),
    U64(Box<[u64]>),
}

impl Counts {
    fn len(&self) -> usize {
        match self {
            Counts::U8(counts) => counts.len(),
            Counts::U16(counts) => counts.len(),
            Counts::U32(counts) => counts.len(),
            Counts::U64(counts) => counts.len(),
        }
    }

    fn width(&self) -> usize {
        match self {
            Counts::U8(_) => 1,
            Counts::U16(_) => 2,
            Counts::U32(_) => 4,
            Counts::U64(_) => 8,
        }
    }

    fn get(&self, slot: usize) -> u64 {
        match self {
            Counts::U8(counts) => u64::from(counts[slot]),
            Counts::U16(counts) => u64::from(counts[slot]),
            Counts::U32(counts) => u64::from(counts[slot]),
            Counts::U64(counts) => counts[slot],
        }
    }

    /// Adds `n` to `slot`; false (and nothing added) if `slot` is outside
    /// the window or the count would not fit its width.
    #[inline]
    fn add(&mut self, slot: usize, n: u64) -> bool {
        #[inline]
        fn bump<T: Copy + Into<u64> + TryFrom<u64>>(count: Option<&mut T>, n: u64) -> bool {
            let Some(count) = count else {
                return false;
            };
            // `n` is one sample's weight: the sum cannot wrap a u64.
            match T::try_from((*count).into().wrapping_add(n)) {
                Ok(sum) => {
                    *count = sum;
                    true
                }
                Err(_) => false,
            }
        }
        // The usual widths first, as branches rather than a jump table.
        if let Counts::U8(counts) = self {
            bump(counts.get_mut(slot), n)
        } else if let Counts::U16(counts) = self {
            bump(counts.get_mut(slot), n)
        } else if let Counts::U32(counts) = self {
            bump(counts.get_mut(slot), n)
        } else if let Counts::U64(counts) = self {
            bump(counts.get_mut(slot), n)
        } else {
            false
        }
    }

    /// `len` zero counts of `width` bytes holding `self`'s from `at` on.
    fn resized(&self, width: usize, len: usize, at: usize) -> Counts {
        fn fill<T: Copy + Default + TryFrom<u64>>(
            from: &Counts,
            len: usize,
            at: usize,
        ) -> Box<[T]> {
            let mut counts = vec![T::default(); len];
            for slot in 0..from.len() {
                let count = from.get(slot);
                if count > 0 {
                    counts[at + slot] = T::try_from(count).ok().expect("a width that holds it");
                }
            }
            counts.into_boxed_slice()
        }
        match width {
            1 => Counts::U8(fill(self, len, at)),
            2 => Counts::U16(fill(self, len, at)),
            4 => Counts::U32(fill(self, len, at)),
            _ => Counts::U64(fill(self, len, at)),
        }
    }
}

/// A weighted distribution of non-negative values in log-linear buckets.
#[derive(Clone, Debug)]
pub(crate) struct Distribution {
    /// Mantissa bits kept: `2^bits` buckets per octave; at most 20.
    bits: u8,
    /// `52 − bits`: a bucket index is the value's bits shifted by it.
    shift: u32,
    /// Values below it are counted in `zero`.
    resolution: f64,
    /// The bucket of `resolution`: values of lower buckets count in `zero`,
    /// and the window never starts below it.
    min_index: u32,
    /// Weighted count of the values below `min_index`'s bucket (and of
    /// NaN and −0).
    zero: u64,
    /// Bucket index of `counts[0]`: the start of an octave, or
    /// `min_index`, whichever is higher (the window holds whole octaves
    /// but below the resolution). Meaningless while `counts` is empty.
    first: u32,
    /// Counts of buckets `first .. first + counts.len()`.
    counts: Counts,
    /// The same data as an HDR histogram, built only for the deprecated
    /// `HistogramSnapshot::distribution`.
    legacy: OnceLock<Box<Histogram<u64>>>,
}

impl Distribution {
    /// An empty distribution with `2^bits` buckets per octave; values below
    /// `resolution` count as 0.
    pub(crate) fn new(bits: u8, resolution: f64) -> Self {
        debug_assert!(bits <= 20, "{bits} mantissa bits: the index must fit a u32");
        Self {
            bits,
            shift: 52 - u32::from(bits),
            resolution,
            min_index: (resolution.to_bits() >> (52 - u32::from(bits))) as u32,
            zero: 0,
            first: 0,
            counts: Counts::U8(Box::default()),
            legacy: OnceLock::new(),
        }
    }

    /// An empty distribution of the same layout (no allocation).
    pub(crate) fn empty_like(&self) -> Self {
        Self::new(self.bits, self.resolution)
    }

    /// Values below it count as 0.
    pub(crate) fn resolution(&self) -> f64 {
        self.resolution
    }

    /// Mantissa bits kept: `2^bits` buckets per octave (read by the OTLP
    /// exporter's exponential buckets).
    #[cfg_attr(not(feature = "otlp"), allow(dead_code))]
    pub(crate) fn bits(&self) -> u8 {
        self.bits
    }

    /// Where the bucket counts live (tests: a distribution moved, not
    /// copied, keeps it).
    #[cfg(test)]
    pub(crate) fn counts_address(&self) -> usize {
        match &self.counts {
            Counts::U8(counts) => counts.as_ptr() as usize,
            Counts::U16(counts) => counts.as_ptr() as usize,
            Counts::U32(counts) => counts.as_ptr() as usize,
            Counts::U64(counts) => counts.as_ptr() as usize,
        }
    }

    /// The largest relative distance of a value from its bucket's
    /// midpoint, `2^−(bits+1)`.
    #[cfg(test)]
    pub(crate) fn relative_error(&self) -> f64 {
        (-f64::from(self.bits) - 1.0).exp2()
    }

    /// Σ of the counts.
    ///
    /// Summed when asked (one pass over the window), so that recording
    /// does not keep one more running total.
    pub(crate) fn total(&self) -> u64 {
        let counted: u64 = match &self.counts {
            Counts::U8(counts) => counts.iter().map(|count| u64::from(*count)).sum(),
            Counts::U16(counts) => counts.iter().map(|count| u64::from(*count)).sum(),
            Counts::U32(counts) => counts.iter().map(|count| u64::from(*count)).sum(),
            Counts::U64(counts) => counts.iter().sum(),
        };
        self.zero + counted
    }

    /// Bucket index of `value` (≥ `resolution`).
    #[inline]
    fn index(&self, value: f64) -> u32 {
        (value.to_bits() >> self.shift) as u32
    }

    /// Lowest value of bucket `index`.
    fn lower(&self, index: u32) -> f64 {
        f64::from_bits(u64::from(index) << self.shift)
    }

    /// Adds `value` `n` times if its bucket is in the window and its count
    /// stays within its width; false (nothing added) otherwise. The whole
    /// of a drained sample's bucket work: values of the zero bucket, NaN
    /// and −0 have indices outside the window too.
    #[inline]
    pub(crate) fn try_record(&mut self, value: f64, n: u64) -> bool {
        let slot = self.index(value).wrapping_sub(self.first) as usize;
        self.counts.add(slot, n)
    }

    /// Adds `value` `n` times.
    #[inline]
    pub(crate) fn record_n(&mut self, value: f64, n: u64) {
        if !self.try_record(value, n) {
            self.record_slow(value, n);
        }
    }

    /// Counts `value` in the zero bucket, or widens the window to its
    /// bucket, or the counts to hold `n` more.
    #[cold]
    #[inline(never)]
    fn record_slow(&mut self, value: f64, n: u64) {
        let index = self.index(value);
        if index < self.min_index || value.is_nan() || value.is_sign_negative() {
            self.zero = self.zero.saturating_add(n);
            return;
        }
        let octave = 1u32 << self.bits;
        let mut first = (index & !(octave - 1)).max(self.min_index);
        let mut end = (index | (octave - 1)) + 1;
        if self.counts.len() > 0 {
            first = first.min(self.first);
            end = end.max(self.first + self.counts.len() as u32);
        }
        let slot = (index - first) as usize;
        let need = self
            .counts
            .get_or_zero(index.wrapping_sub(self.first) as usize)
            + n;
        let mut width = self.counts.width();
        while width < 8 && need >> (8 * width) != 0 {
            width *= 2;
        }
        self.counts = self.counts.resized(
            width,
            (end - first) as usize,
            (self.first.wrapping_sub(first)) as usize,
        );
        self.first = first;
        let added = self.counts.add(slot, n);
        debug_assert!(added, "a width that holds {need}");
    }

    /// Buckets with a count, in increasing order: `(lowest value, count)`
    /// (the zero bucket as value 0).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let zero = (self.zero > 0).then_some((0.0, self.zero));
        zero.into_iter().chain(
            (0..self.counts.len())
                .map(|slot| (slot, self.counts.get(slot)))
                .filter(|(_, count)| *count > 0)
                .map(|(slot, count)| (self.lower(self.first + slot as u32), count)),
        )
    }

    /// The value at quantile `q` (`[0, 1]`): the midpoint of the bucket
    /// holding the `⌈q·total⌉`-th unit of weight (at least the first);
    /// `None` when empty.
    pub(crate) fn value_at_quantile(&self, q: f64) -> Option<f64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = self.zero;
        if seen >= rank {
            return Some(0.0);
        }
        for slot in 0..self.counts.len() {
            seen += self.counts.get(slot);
            if seen >= rank {
                let index = self.first + slot as u32;
                return Some((self.lower(index) + self.lower(index + 1)) / 2.0);
            }
        }
        // Unreachable with consistent counts; the largest bucket then.
        self.iter().last().map(|(value, _)| value)
    }

    /// Weighted count of the buckets whose lowest value is at most `bound`.
    pub(crate) fn count_at_or_below(&self, bound: f64) -> u64 {
        if bound < 0.0 {
            return 0;
        }
        self.iter()
            .take_while(|(value, _)| *value <= bound)
            .map(|(_, count)| count)
            .sum()
    }

    /// Bytes this distribution occupies (its struct and its counts; not
    /// the `Arc` around it).
    pub(crate) fn bytes(&self) -> usize {
        let legacy = self.legacy.get().map_or(0, |histogram| {
            std::mem::size_of::<Histogram<u64>>() + histogram.distinct_values() * 8
        });
        std::mem::size_of::<Self>() + self.counts.len() * self.counts.width() + legacy
    }

    /// Drops the HDR view built by `legacy_histogram`, before a write.
    pub(crate) fn forget_legacy(&mut self) {
        self.legacy = OnceLock::new();
    }

    /// The same data as a 3-significant-digit HDR histogram in units of
    /// the resolution, built on first use.
    pub(crate) fn legacy_histogram(&self) -> &Histogram<u64> {
        self.legacy.get_or_init(|| {
            let mut histogram = Histogram::new(3).expect("3 significant digits are valid");
            histogram.auto(true);
            for (value, count) in self.iter() {
                let units = (value / self.resolution).round().min(u64::MAX as f64 / 2.0);
                let _ = histogram.record_n(units as u64, count);
            }
            Box::new(histogram)
        })
    }
}

impl Counts {
    fn get_or_zero(&self, slot: usize) -> u64 {
        if slot < self.len() {
            self.get(slot)
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests;
