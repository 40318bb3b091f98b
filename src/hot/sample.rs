//! The record that travels through the ring: which series, what value, and
//! the probability with which this very call was sampled.

/// Index of a series in the process-wide registry.
///
/// Stable for the life of the process; the flusher uses it to find the
/// series' aggregate without hashing names or labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MetricId(pub(crate) u32);

impl MetricId {
    /// The raw index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One sampled call, 16 bytes.
///
/// `inclusion_prob` is the probability the sampler really used for this call
/// (1.0 for exact calls). The flusher weights the value by its inverse, so
/// estimates stay unbiased even when the rate changes between the decision
/// and the drain.
#[derive(Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct Sample {
    /// The series this value belongs to.
    pub id: MetricId,
    /// Probability in `(0, 1]` with which this call was included.
    pub inclusion_prob: f32,
    /// The recorded value (counter increment, up-down delta, histogram value).
    pub value: f64,
}

impl Sample {
    /// A placeholder used to fill ring slots before their first write.
    pub(crate) const EMPTY: Sample = Sample {
        id: MetricId(u32::MAX),
        inclusion_prob: 0.0,
        value: 0.0,
    };

    /// The Horvitz–Thompson weight `1/p` of this sample.
    #[inline]
    pub fn weight(&self) -> f64 {
        1.0 / f64::from(self.inclusion_prob)
    }
}
