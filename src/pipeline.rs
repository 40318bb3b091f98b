//! What producers share with the flusher while an engine is installed: the
//! ring shards, the rate cell and the few counters the cold producer paths
//! bump (spills, rejections). It belongs to the hot side: nothing here knows
//! about aggregation or export.

use std::sync::OnceLock;
use std::thread::Thread;

use crate::rate::RateCell;
use crate::ring::{PushError, Ring};
use crate::sample::Sample;
use crate::spill::Spill;
use crate::sync::{AtomicU64, AtomicUsize, Ordering};

/// Shared producer-side state of one installed engine.
#[derive(Debug)]
pub struct Pipeline {
    pub(crate) rings: Box<[Ring]>,
    pub(crate) rate: RateCell,
    /// Samples folded into spill accumulators because a push failed.
    pub(crate) samples_dropped: AtomicU64,
    /// Values refused on the hot path (NaN, ±∞, negative counter increments,
    /// histogram values out of range).
    pub(crate) values_rejected: AtomicU64,
    /// Producers currently inside a spill; shutdown waits for zero.
    pub(crate) spilling: AtomicUsize,
    /// Round-robin source of thread → shard assignments.
    next_shard: AtomicUsize,
    /// Fill level (slots) past which a producer wakes the flusher early.
    high_water: usize,
    /// Set while a wake-up is pending, so producers wake it once.
    wake_pending: AtomicUsize,
    /// The flusher thread, once it runs.
    pub(crate) flusher: OnceLock<Thread>,
    /// Largest histogram value accepted (the tracked range).
    pub(crate) histogram_max: f64,
}

impl Pipeline {
    /// `shards` rings of `capacity` slots each, starting at `rate`.
    pub(crate) fn new(shards: usize, capacity: usize, rate: f32, histogram_max: f64) -> Self {
        let rings: Box<[Ring]> = (0..shards.max(1)).map(|_| Ring::new(capacity)).collect();
        let high_water = rings[0].capacity() / 2;
        Self {
            rings,
            rate: RateCell::new(rate),
            samples_dropped: AtomicU64::new(0),
            values_rejected: AtomicU64::new(0),
            spilling: AtomicUsize::new(0),
            next_shard: AtomicUsize::new(0),
            high_water,
            wake_pending: AtomicUsize::new(0),
            flusher: OnceLock::new(),
            histogram_max,
        }
    }

    /// Hands out shards round-robin to threads on their first sample.
    pub(crate) fn assign_shard(&self) -> usize {
        self.next_shard.fetch_add(1, Ordering::Relaxed)
    }

    /// Pushes a sample to `shard`; on failure folds it into `spill` and counts
    /// the drop. A sample refused because the ring is closed belongs to a
    /// call made after shutdown and is ignored, like every such call.
    #[inline]
    pub(crate) fn submit(&self, shard: usize, sample: Sample, spill: &Spill) {
        let ring = &self.rings[shard % self.rings.len()];
        match ring.push(sample) {
            Ok(pos) => {
                // Look at the fill level once every 64 pushes only: reading
                // `head` touches the consumer's cache line.
                if pos % 64 == 0 && ring.len() >= self.high_water {
                    self.wake_flusher();
                }
            }
            Err(PushError::Full(sample)) | Err(PushError::Contended(sample)) => {
                self.spill(ring, sample, spill);
            }
            Err(PushError::Closed(_)) => {}
        }
    }

    #[cold]
    #[inline(never)]
    fn spill(&self, ring: &Ring, sample: Sample, spill: &Spill) {
        // SeqCst on both sides (here and in `Engine::shutdown`'s close/wait):
        // either shutdown sees `spilling > 0` and waits for this fold, or this
        // thread sees the ring closed and does not fold into a drained engine.
        self.spilling.fetch_add(1, Ordering::SeqCst);
        if !ring.is_closed_seqcst() {
            spill.fold(&sample);
            self.samples_dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.spilling.fetch_sub(1, Ordering::SeqCst);
        self.wake_flusher();
    }

    #[cold]
    #[inline(never)]
    fn wake_flusher(&self) {
        if self.wake_pending.swap(1, Ordering::Relaxed) == 0 {
            if let Some(thread) = self.flusher.get() {
                thread.unpark();
            }
        }
    }

    /// Called by the flusher when it starts a drain: the next crossing of the
    /// high-water mark may wake it again.
    pub(crate) fn clear_wake(&self) {
        self.wake_pending.store(0, Ordering::Relaxed);
    }

    /// Counts one rejected value.
    #[cold]
    #[inline(never)]
    pub(crate) fn reject(&self) {
        self.values_rejected.fetch_add(1, Ordering::Relaxed);
    }
}
