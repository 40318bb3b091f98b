//! What producers share with the flusher while an engine is installed: the
//! ring shards, the rate cell and the few counters the cold producer paths
//! bump (spills, rejections). It belongs to the hot side: nothing here knows
//! about aggregation or export.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};
use std::thread::Thread;

use crate::global;
use crate::rate::RateCell;
use crate::ring::{PushError, Ring};
use crate::sample::Sample;
use crate::sampler::SAMPLER;
use crate::spill::Spill;
use crate::sync::{AtomicU64, AtomicUsize, Ordering};

/// Shared producer-side state of one installed engine.
#[derive(Debug)]
pub struct Pipeline {
    /// Shared shards: any thread may push (compare-and-swap claims).
    pub(crate) rings: Box<[Ring]>,
    /// Rings a thread claims for itself on its first sampled call and
    /// pushes to without a locked instruction (see `ring.rs`); threads that
    /// find none free use the shared shards.
    pub(crate) owned: Box<[Ring]>,
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
        let owned: Box<[Ring]> = (0..shards.max(1)).map(|_| Ring::new(capacity)).collect();
        let high_water = rings[0].capacity() / 2;
        Self {
            rings,
            owned,
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

    /// Every ring the consumer drains: the shared shards, then the owned.
    pub(crate) fn all_rings(&self) -> impl Iterator<Item = &Ring> {
        self.rings.iter().chain(self.owned.iter())
    }

    /// Claims a free owned ring for the calling thread.
    fn claim_owned(&self) -> Option<usize> {
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
    /// spill of a refused sample; `false` when the ring was closed.
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
                self.spill(ring, sample, spill);
                true
            }
            Err(PushError::Closed(_)) => false,
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

// This thread's handle on the installed pipeline.
//
// A sampled call needs the pipeline (rate cell, rings). Loading it from the
// global `ArcSwapOption` costs two full-barrier atomic operations (take and
// repay a debt slot), about as much as the ring push itself. Each thread
// therefore keeps its own `Arc` to the pipeline it last used and only goes
// back to the global slot when that one is gone:
//
// * `global::is_active()` false (uninstalled): the handle is dropped, so a
//   shut-down engine's memory is released at the thread's next sampled call;
// * the cached pipeline refuses a push as closed (a newer engine was
//   installed since): the caller reloads and retries once.
//
// A handle that is stale but not yet closed is still a live pipeline whose
// final drain will take what is pushed to it, exactly as a call holding an
// `arc-swap` guard across an uninstall would. The slot is only touched on
// sampled calls, never on the countdown path, so its lazy destructor
// registration costs nothing per call; the `Arc` is released at thread exit.
std::thread_local! {
    static CURRENT: RefCell<Cached> = const { RefCell::new(Cached { pipeline: None, owned: None }) };
}

/// The thread's handle: owns the `Arc`, holds the claim on one of its owned
/// rings (when one was free), and keeps the sampler's borrowed pointers to
/// both (`Sampler::cached_pipeline`, `Sampler::owned_ring`) in step, so the
/// sampled path reaches them through the `const` sampler thread-local
/// without this lazily registered one.
struct Cached {
    pipeline: Option<Arc<Pipeline>>,
    /// Index in `pipeline.owned` of the ring this thread holds.
    owned: Option<usize>,
}

impl Cached {
    fn set(&mut self, pipeline: Option<Arc<Pipeline>>) {
        // Null first: the old `Arc` may be the last reference.
        self.forget();
        self.pipeline = pipeline;
        let Some(pipeline) = self.pipeline.as_deref() else {
            return;
        };
        self.owned = pipeline.claim_owned();
        let ring = self.owned.map_or(std::ptr::null(), |index| {
            &pipeline.owned[index] as *const Ring
        });
        let pointer = pipeline as *const Pipeline;
        let _ = SAMPLER.try_with(|sampler| sampler.set_cached_pipeline(pointer, ring));
    }

    fn get(&self) -> Option<&Pipeline> {
        self.pipeline.as_deref()
    }

    /// Nulls the sampler's pointers, then gives the owned ring back (this
    /// thread's last push to it is behind it).
    fn forget(&mut self) {
        let _ = SAMPLER
            .try_with(|sampler| sampler.set_cached_pipeline(std::ptr::null(), std::ptr::null()));
        if let (Some(pipeline), Some(index)) = (self.pipeline.as_deref(), self.owned.take()) {
            pipeline.owned[index].release();
        }
    }
}

impl Drop for Cached {
    fn drop(&mut self) {
        // Thread exit: the sampler (no destructor) outlives this handle.
        self.forget();
    }
}

/// Runs `f` with the installed pipeline (`None` when no engine is
/// installed), through this thread's cached handle.
///
/// `f` returns `Err(value)` to ask for one retry on a freshly loaded
/// pipeline (its push found the cached one closed); the retry gets the same
/// `value` back. Returns `None` when `f` asked for a retry twice.
#[inline]
pub(crate) fn with_current<T, R>(
    value: T,
    mut f: impl FnMut(Option<&Pipeline>, T) -> Result<R, T>,
) -> Option<R> {
    if !global::is_active() {
        let _ = CURRENT.try_with(|current| {
            if let Ok(mut current) = current.try_borrow_mut() {
                current.set(None);
            }
        });
        return f(None, value).ok();
    }
    let mut pending = Some(value);
    let through_cache = CURRENT.try_with(|current| {
        let Ok(mut current) = current.try_borrow_mut() else {
            // Re-entered (a call made while this one holds the handle):
            // use the global slot directly.
            let value = pending.take()?;
            return f(global::pipeline().as_deref(), value).ok();
        };
        if current.pipeline.is_none() {
            current.set(global::pipeline().as_ref().cloned());
        }
        let value = pending.take()?;
        match f(current.get(), value) {
            Ok(out) => Some(out),
            Err(value) => {
                current.set(global::pipeline().as_ref().cloned());
                f(current.get(), value).ok()
            }
        }
    });
    match through_cache {
        Ok(out) => out,
        // Thread-local storage already torn down (a call from another
        // thread-local's destructor): use the global slot directly.
        Err(_) => {
            let value = pending.take()?;
            f(global::pipeline().as_deref(), value).ok()
        }
    }
}
