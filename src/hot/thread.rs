//! The calling thread's state: its sampler, its handle on the installed
//! pipeline, and the ring it pushes to.
//!
//! A sampled call needs the pipeline (rate cell, rings). Loading it from the
//! installed slot (`pipeline::installed`) costs two full-barrier atomic
//! operations (take and repay an `arc-swap` debt slot), about as much as the
//! ring push itself. Each thread therefore keeps its own `Arc` to the
//! pipeline it last used, and a borrowed pointer to it (and to the owned
//! ring it holds, if any) beside its sampler in one `const` thread-local, so
//! a sampled call reaches everything with one thread-local access.
//!
//! Two thread-locals, and why:
//!
//! * [`LOCAL`] is `const`-initialised and has no destructor: no lazy-init
//!   branch on the fast path, always reachable (even from another
//!   thread-local's destructor). It holds the sampler and two raw pointers.
//! * `HANDLE` owns the `Arc<Pipeline>` and the claim on an owned ring. It
//!   needs a destructor (to drop the `Arc` and give the ring back at thread
//!   exit), so it is registered lazily, and is touched only on the slow
//!   paths: a thread's first sampled call, a pipeline found closed, no
//!   engine installed.
//!
//! # The pointer rules
//!
//! The unsafe reads in [`Local::cached_pipeline`] and [`Local::push`] rely on
//! these, all kept in this file:
//!
//! 1. `Local::pipeline` is non-null only while `HANDLE` holds an `Arc` to
//!    that pipeline: [`Handle::set`] writes the pointer after taking the
//!    `Arc`, and [`Handle::forget`] nulls it before the `Arc` is dropped or
//!    replaced (also at thread exit, from `Handle`'s destructor).
//! 2. `Local::owned_ring` is non-null only while this thread holds that
//!    ring's claim (`Ring::try_claim`), which `Handle::forget` gives back
//!    after nulling the pointer; the ring lives in the pipeline of rule 1.
//! 3. `HANDLE` is changed only by this thread and only by [`reload`], which
//!    no caller runs while it holds a reference returned by
//!    `cached_pipeline` (the sampled path makes no call that reaches it).
//!
//! A handle that is stale but not yet closed is still a live pipeline whose
//! final drain will take what is pushed to it, exactly as a call holding an
//! `arc-swap` guard across an uninstall would.
//!
//! Exact calls reach nothing here (no sampler, no pipeline): their
//! per-thread cells live in `exact.rs`, in a pair of thread-locals of the
//! same shape (a `const` directory without destructor, and an owner
//! registered lazily whose destructor folds the cells at thread exit),
//! which keeps that file self-contained and holds no raw pointer.

use super::pipeline::{self, Pipeline};
use super::ring::Ring;
use super::sample::Sample;
use super::sampler::Sampler;
use super::spill::Spill;
use crate::sync::{const_thread_local, Arc, Cell, RefCell};

/// One thread's state reached by every call.
#[derive(Debug)]
pub(crate) struct Local {
    sampler: Sampler,
    /// The pipeline `HANDLE` holds, or null (rule 1).
    pipeline: Cell<*const Pipeline>,
    /// The owned ring of that pipeline this thread holds the claim on, or
    /// null (rule 2).
    owned_ring: Cell<*const Ring>,
    /// Shared shard this thread pushes to when it holds no owned ring;
    /// `u32::MAX` until assigned.
    shard: Cell<u32>,
}

const_thread_local! {
    /// This thread's state: `const` so the fast path has no init check.
    static LOCAL: Local = Local {
        sampler: Sampler::new(),
        pipeline: Cell::new(std::ptr::null()),
        owned_ring: Cell::new(std::ptr::null()),
        shard: Cell::new(u32::MAX),
    };
}

/// Runs `f` with the calling thread's state.
#[inline(always)]
pub(crate) fn with<R>(f: impl FnOnce(&Local) -> R) -> R {
    LOCAL.with(f)
}

/// The per-call check: takes `step` off the countdown; `true` means skip
/// this call (see `Sampler::skip_by`).
#[inline(always)]
pub(crate) fn skip_by(step: u64) -> bool {
    LOCAL.with(|local| local.sampler.skip_by(step))
}

impl Local {
    /// The thread's sampler.
    #[inline(always)]
    pub(crate) fn sampler(&self) -> &Sampler {
        &self.sampler
    }

    /// The pipeline this thread's handle holds, if it holds one.
    #[inline(always)]
    pub(crate) fn cached_pipeline(&self) -> Option<&Pipeline> {
        // SAFETY: non-null means a live `Arc<Pipeline>` held by this thread's handle outlives the borrow (rules 1, 3).
        unsafe { self.pipeline.get().as_ref() }
    }

    /// Pushes `sample` to `pipeline`: to the owned ring this thread holds if
    /// `pipeline` is the one it caches, else to its shared shard. Spills a
    /// refused sample into `spill`; `false` when the ring was closed (see
    /// [`Pipeline::submit`]).
    #[inline]
    pub(crate) fn push(&self, pipeline: &Pipeline, sample: Sample, spill: &Spill) -> bool {
        let owned = self.owned_ring.get();
        if !owned.is_null() && std::ptr::eq(pipeline, self.pipeline.get()) {
            // SAFETY: non-null means this thread holds the claim of this ring of the cached pipeline (rule 2).
            unsafe { pipeline.submit_owned(&*owned, sample, spill) }
        } else {
            self.push_shared(pipeline, sample, spill)
        }
    }

    /// [`Local::push`] to the thread's shared shard. Out of line: on the
    /// sampled path it serves only threads that hold no owned ring.
    #[inline(never)]
    fn push_shared(&self, pipeline: &Pipeline, sample: Sample, spill: &Spill) -> bool {
        let shards = pipeline.rings.len();
        let mut shard = self.shard.get();
        if shard == u32::MAX {
            // Kept reduced, so the division below is skipped unless a later
            // engine has fewer shards.
            shard = (pipeline.assign_shard() % shards.max(1)) as u32;
            self.shard.set(shard);
        }
        let shard = shard as usize;
        let shard = if shard < shards {
            shard
        } else {
            shard % shards
        };
        pipeline.submit(shard, sample, spill)
    }
}

/// Owner of the `Arc` and the ring claim behind `Local`'s pointers.
#[derive(Debug)]
struct Handle {
    pipeline: Option<Arc<Pipeline>>,
    /// Index in `pipeline.owned` of the ring this thread holds.
    owned: Option<usize>,
}

const_thread_local! {
    static HANDLE: RefCell<Handle> = RefCell::new(Handle { pipeline: None, owned: None });
}

impl Handle {
    /// Holds `pipeline` (claiming one of its owned rings if one is free)
    /// and points `Local` at it.
    fn set(&mut self, pipeline: Option<Arc<Pipeline>>) {
        // Null first: the old `Arc` may be the last reference (rule 1).
        self.forget();
        self.pipeline = pipeline;
        let Some(pipeline) = self.pipeline.as_deref() else {
            return;
        };
        self.owned = pipeline.claim_owned();
        let ring = self.owned.map_or(std::ptr::null(), |index| {
            &pipeline.owned[index] as *const Ring
        });
        LOCAL.with(|local| {
            local.pipeline.set(pipeline);
            local.owned_ring.set(ring);
        });
    }

    /// Nulls `Local`'s pointers, then gives the owned ring back (this
    /// thread's last push to it is behind it).
    fn forget(&mut self) {
        LOCAL.with(|local| {
            local.pipeline.set(std::ptr::null());
            local.owned_ring.set(std::ptr::null());
        });
        if let (Some(pipeline), Some(index)) = (self.pipeline.as_deref(), self.owned.take()) {
            pipeline.owned[index].release();
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // Thread exit: `LOCAL` (no destructor) outlives this handle.
        self.forget();
    }
}

/// What [`reload`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reload {
    /// The handle now holds the installed pipeline (or nothing, when no
    /// engine is installed): `Local::cached_pipeline` says which.
    Cached,
    /// The handle cannot be changed now: this call re-entered one that is
    /// changing it, or the thread's thread-locals are being torn down. Use
    /// the installed slot directly.
    Unavailable,
}

/// Points this thread's handle at the installed pipeline (none when no
/// engine is installed), releasing the one it held.
#[cold]
#[inline(never)]
pub(crate) fn reload() -> Reload {
    let installed = if pipeline::is_active() {
        pipeline::installed().as_ref().cloned()
    } else {
        None
    };
    let reloaded = HANDLE.try_with(|handle| match handle.try_borrow_mut() {
        Ok(mut handle) => {
            handle.set(installed);
            Reload::Cached
        }
        Err(_) => Reload::Unavailable,
    });
    reloaded.unwrap_or(Reload::Unavailable)
}

/// Restarts this thread's sampler from `seed` (see `Sampler::reseed`).
/// Test builds only.
#[cfg(all(test, not(loom)))]
pub(crate) fn seed_this_thread(seed: u64) {
    LOCAL.with(|local| local.sampler.reseed(seed));
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_thread_without_an_engine_caches_nothing() {
        assert_eq!(reload(), Reload::Cached);
        with(|local| assert!(local.cached_pipeline().is_none()));
    }

    #[test]
    fn shards_are_assigned_once_and_kept_reduced() {
        let pipeline = Pipeline::new(4, 8, 1.0, f64::MAX);
        for _ in 0..6 {
            pipeline.assign_shard();
        }
        let local = Local {
            sampler: Sampler::new(),
            pipeline: Cell::new(std::ptr::null()),
            owned_ring: Cell::new(std::ptr::null()),
            shard: Cell::new(u32::MAX),
        };
        let spill = Spill::new();
        let sample = |value| Sample {
            id: super::super::sample::MetricId(0),
            inclusion_prob: 1.0,
            value,
        };
        assert!(local.push(&pipeline, sample(1.0), &spill));
        assert_eq!(local.shard.get(), 2);
        assert!(local.push(&pipeline, sample(2.0), &spill));
        assert_eq!(pipeline.rings[2].len(), 2);
    }
}
