//! What producers share with the flusher while an engine is installed, and
//! the slot that says which pipeline is installed.
//!
//! A [`Pipeline`] holds the ring shards, the rate cell and the few counters
//! the cold producer paths bump (spills, rejections); [`Pipeline::submit`]
//! and [`Pipeline::submit_owned`] are what a sampled call does with its
//! sample: push, then settle (wake the flusher past the high-water mark,
//! spill a refused sample, report a closed ring). Nothing here knows about
//! aggregation or export.
//!
//! The installed slot is a `static`, which loom atomics cannot be, so it is
//! an `arc-swap` cell and a `crate::sync::statics` flag; its logic is a single publish/unpublish, exercised by the
//! engine tests. A thread reaches the installed pipeline through its own
//! cached handle (`thread.rs`), not through this slot, on every sampled call.

use std::sync::OnceLock;
use std::thread::Thread;

use arc_swap::{ArcSwapOption, Guard};

use super::rate::RateCell;
use super::ring::{PushError, Ring};
use super::sample::Sample;
use super::spill::Spill;
use crate::sync::statics::AtomicBool;
use crate::sync::{heavy_fence_available, statics, Arc, AtomicU64, AtomicUsize, Ordering};

/// Shared producer-side state of one installed engine.
#[derive(Debug)]
pub struct Pipeline {
    /// Shared shards: any thread may push (compare-and-swap claims).
    pub(crate) rings: Box<[Ring]>,
    /// Rings a thread claims for itself on its first sampled call and
    /// pushes to without a locked instruction (see `ring.rs`); threads that
    /// find none free use the shared shards. Empty where the process-wide
    /// barrier their close needs is missing (`sync::heavy_fence_available`).
    pub(crate) owned: Box<[Ring]>,
    pub(crate) rate: RateCell,
    /// Samples folded into spill accumulators because a push failed.
    pub(crate) samples_spilled: AtomicU64,
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
        // Owned rings close through an asymmetric fence (see `ring.rs`);
        // without the process-wide half, every thread uses the shards.
        let owned_rings = if heavy_fence_available() {
            shards.max(1)
        } else {
            0
        };
        let owned: Box<[Ring]> = (0..owned_rings).map(|_| Ring::new(capacity)).collect();
        let high_water = rings[0].capacity() / 2;
        Self {
            rings,
            owned,
            rate: RateCell::new(rate),
            samples_spilled: AtomicU64::new(0),
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

    /// Every ring the consumer drains: the shared shards, then the owned.
    pub(crate) fn all_rings(&self) -> impl Iterator<Item = &Ring> {
        self.rings.iter().chain(self.owned.iter())
    }

    /// Claims a free owned ring for the calling thread.
    pub(crate) fn claim_owned(&self) -> Option<usize> {
        self.owned.iter().position(Ring::try_claim)
    }

    /// [`Pipeline::submit`] to the owned ring this thread holds.
    ///
    /// # Safety
    ///
    /// As [`Ring::push_owned`]: the calling thread holds `ring`'s claim.
    #[inline]
    pub(crate) unsafe fn submit_owned(&self, ring: &Ring, sample: Sample, spill: &Spill) -> bool {
        // SAFETY: the caller holds the claim (this function's contract).
        let pushed = unsafe { ring.push_owned(sample) };
        self.settle(ring, pushed, spill)
    }

    /// Pushes a sample to `shard`; on failure folds it into `spill` and counts
    /// the drop. Returns `false` only when the ring is closed: the pipeline
    /// was shut down, and the sample belongs to a call made after that (the
    /// caller may retry on a newer pipeline, or drop it like every such call).
    #[inline]
    pub(crate) fn submit(&self, shard: usize, sample: Sample, spill: &Spill) -> bool {
        let ring = &self.rings[shard % self.rings.len()];
        self.settle(ring, ring.push(sample), spill)
    }

    /// What follows a push to `ring`, either kind: the early wake-up, the
    /// spill of a refused sample; `false` when the ring was closed (the
    /// sample was neither drained nor spilled: the caller retries on the
    /// installed engine, or drops it as a call made after shutdown).
    #[inline(always)]
    fn settle(&self, ring: &Ring, pushed: Result<usize, PushError>, spill: &Spill) -> bool {
        match pushed {
            Ok(pos) => {
                // Look at the fill level once every 64 pushes only: reading
                // `head` touches the consumer's cache line.
                if pos % 64 == 0 && ring.len() >= self.high_water {
                    self.wake_flusher();
                }
                true
            }
            Err(PushError::Full(sample)) | Err(PushError::Contended(sample)) => {
                self.spill(ring, sample, spill)
            }
            // Refused before the push, or reclaimed after it by the owned
            // ring's holder because the ring closed meanwhile (`ring.rs`):
            // either way not drained, so the call counts as one made after
            // shutdown.
            Err(PushError::Closed(_)) => false,
        }
    }

    /// Folds a sample the ring refused into `spill` and counts it; `false`
    /// (nothing folded) when the ring closed meanwhile, as for a push
    /// refused as `Closed`.
    #[cold]
    #[inline(never)]
    fn spill(&self, ring: &Ring, sample: Sample, spill: &Spill) -> bool {
        // SeqCst on both sides (here and in `flusher::final_drain`'s
        // close/wait):
        // either shutdown sees `spilling > 0` and waits for this fold, or this
        // thread sees the ring closed and does not fold into a drained engine.
        self.spilling.fetch_add(1, Ordering::SeqCst);
        let open = !ring.is_closed_seqcst();
        if open {
            spill.fold(&sample);
            self.samples_spilled.fetch_add(1, Ordering::Relaxed);
        }
        self.spilling.fetch_sub(1, Ordering::SeqCst);
        self.wake_flusher();
        open
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

static INSTALLED: ArcSwapOption<Pipeline> = ArcSwapOption::const_empty();

/// True while an engine is installed and not shut down: the one load an
/// exact call makes before touching its series.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The installed pipeline, if any. Cheap (no reference-count write), but
/// two full-barrier operations: sampled calls go through their thread's
/// cached handle instead (`thread::with_pipeline`).
#[inline]
pub(crate) fn installed() -> Guard<Option<Arc<Pipeline>>> {
    INSTALLED.load()
}

/// True while an engine is installed.
#[inline(always)]
pub(crate) fn is_active() -> bool {
    // Relaxed: a hint only. A call that sees a stale `true` finds the
    // pipeline closed (or absent) when it pushes.
    ACTIVE.load(statics::Ordering::Relaxed)
}

/// Installs `pipeline` if the slot is empty; returns false if an engine is
/// already installed.
pub(crate) fn install(pipeline: Arc<Pipeline>) -> bool {
    let previous = INSTALLED.compare_and_swap(&None::<Arc<Pipeline>>, Some(pipeline));
    if previous.is_some() {
        return false;
    }
    ACTIVE.store(true, statics::Ordering::Relaxed);
    true
}

/// Empties the slot if it still holds `pipeline`.
pub(crate) fn uninstall(pipeline: &Arc<Pipeline>) {
    ACTIVE.store(false, statics::Ordering::Relaxed);
    let current = INSTALLED.load_full();
    if let Some(current) = current {
        if Arc::ptr_eq(&current, pipeline) {
            INSTALLED.compare_and_swap(&Some(current), None);
        }
    }
}
