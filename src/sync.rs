//! The one place atomics, cells and spin hints come from.
//!
//! Under `--cfg loom` every primitive here is loom's, so `loom_tests/` checks
//! the ring, the spill accumulators and the rate cell exactly as they ship.
//! Deliberate exceptions, each said where it is:
//!
//! * `static` items (the callsite cache, the installed-pipeline slot) use
//!   `std` atomics, because loom atomics cannot be constructed in a
//!   `static`;
//! * [`Arc`] is `std`'s in both builds: the installed slot is an
//!   `arc-swap` cell, which holds `std` `Arc`s (loom's would only add leak
//!   checks, and no model shares a pipeline through the slot);
//! * the exact cells' tables (`hot/exact.rs`) are one `static` in the
//!   shipping build, built from this module's types (`std`'s there, so
//!   `const`); under loom the models build instances and the unused global
//!   sits behind a `OnceLock`;
//! * thread-local state holds only [`Cell`]s (and the thread's pipeline
//!   handle and its cache of the series of `record!` label expressions a
//!   [`RefCell`]) and is model-checked as an instance; [`const_thread_local!`] declares it `const` in the shipping
//!   build and as a loom thread-local under loom.

pub(crate) use std::cell::{Cell, RefCell};
pub(crate) use std::sync::Arc;

/// Atomics that live in a `static` (the callsite cache, the installed
/// slot's flag): `std`'s in both builds, since loom atomics cannot be
/// constructed in a `static`. Their logic is checked on instances.
pub(crate) mod statics {
    pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
}

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{
    fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    fence, AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};

/// The slots of the `metrics` facade's key cache (`metrics_rs/cache.rs`).
#[cfg(not(loom))]
#[cfg_attr(not(feature = "metrics"), allow(unused_imports))]
pub(crate) use std::sync::atomic::AtomicPtr;

#[cfg(loom)]
pub(crate) use loom::sync::atomic::AtomicPtr;

/// A lock taken off the per-call path only (the exact cells' tables,
/// `hot/exact.rs`): `std`'s, or loom's so the models explore around it.
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

/// An `UnsafeCell` whose contents are only reachable through closures, the
/// shape loom needs to track every access.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a shared raw pointer to the contents.
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Runs `f` with a mutable raw pointer to the contents.
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// Declares a thread-local: `const`-initialised (no lazy-init branch, no
/// destructor registration unless the type needs one) in the shipping build,
/// a loom thread-local under `--cfg loom`.
macro_rules! const_thread_local {
    ($(#[$attr:meta])* $vis:vis static $name:ident: $ty:ty = $init:expr;) => {
        #[cfg(not(loom))]
        std::thread_local! {
            $(#[$attr])* $vis static $name: $ty = const { $init };
        }
        #[cfg(loom)]
        loom::thread_local! {
            $(#[$attr])* $vis static $name: $ty = $init;
        }
    };
}
pub(crate) use const_thread_local;

/// Called inside every bounded retry loop. Under loom the scheduler is not
/// fair, so a retry must yield or the model never lets the other thread run.
#[inline(always)]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// The cheap half of an asymmetric fence: the owned ring's producer runs it
/// between publishing a sample and re-reading the ring's closed flag.
///
/// Only a compiler fence in the shipping build (no instruction is emitted):
/// the hardware half is supplied by [`heavy_fence`], which the final drain
/// runs once. Together they give the store-then-load pattern on each side
/// the guarantee a `SeqCst` fence on both sides would (either the producer
/// sees the close, or the drain sees the publish). Under loom, where no
/// process-wide barrier exists, both halves are `SeqCst` fences: the model
/// checks the protocol with the ordering the pair stands for.
#[inline(always)]
pub(crate) fn light_fence() {
    #[cfg(loom)]
    loom::sync::atomic::fence(Ordering::SeqCst);
    #[cfg(not(loom))]
    std::sync::atomic::compiler_fence(Ordering::SeqCst);
}

/// The expensive half of the asymmetric fence (see [`light_fence`]): acts
/// as a full fence on every thread of the process that is running now.
/// Linux `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`; callable only once
/// [`heavy_fence_available`] returned true.
pub(crate) fn heavy_fence() {
    #[cfg(loom)]
    loom::sync::atomic::fence(Ordering::SeqCst);
    #[cfg(all(not(loom), target_os = "linux"))]
    membarrier::expedited();
    #[cfg(all(not(loom), not(target_os = "linux")))]
    unreachable!("heavy_fence without a process-wide barrier");
}

/// True when [`heavy_fence`] works here (registers the process for it on
/// the first call). False off Linux, on kernels before 4.14, or where a
/// sandbox forbids the call: code that needs the pair must then take a path
/// that does not rely on it.
pub(crate) fn heavy_fence_available() -> bool {
    #[cfg(loom)]
    return true;
    #[cfg(all(not(loom), target_os = "linux"))]
    return membarrier::register();
    #[cfg(all(not(loom), not(target_os = "linux")))]
    return false;
}

#[cfg(all(not(loom), target_os = "linux"))]
mod membarrier {
    use std::sync::OnceLock;

    /// `MEMBARRIER_CMD_PRIVATE_EXPEDITED` (linux/membarrier.h).
    const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    /// `MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED`.
    const REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

    fn membarrier(command: libc::c_long) -> libc::c_long {
        // SAFETY: `membarrier(cmd, flags = 0, cpu_id = 0)` takes no pointer
        // and touches no memory of ours; an unknown command returns -1.
        unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                command,
                0 as libc::c_long,
                0 as libc::c_long,
            )
        }
    }

    /// Registers the process once; true if the expedited barrier works.
    pub(super) fn register() -> bool {
        static REGISTERED: OnceLock<bool> = OnceLock::new();
        *REGISTERED.get_or_init(|| membarrier(REGISTER_PRIVATE_EXPEDITED) == 0)
    }

    /// Runs the barrier; the process registered (`register` returned true).
    pub(super) fn expedited() {
        let done = membarrier(PRIVATE_EXPEDITED);
        // Registered, so the kernel has no reason to refuse it.
        assert_eq!(
            done, 0,
            "membarrier(PRIVATE_EXPEDITED) failed after registration"
        );
    }
}

/// An `f64` stored as its bits in an [`AtomicU64`], with a CAS-loop add.
///
/// Used only off the unsampled path: spill accumulators (ring full), exact
/// float counters (critical calls) and gauges.
#[derive(Debug)]
pub(crate) struct AtomicF64(AtomicU64);

impl AtomicF64 {
    pub(crate) fn new(value: f64) -> Self {
        Self(AtomicU64::new(value.to_bits()))
    }

    pub(crate) fn load(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    pub(crate) fn store(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }

    /// Adds `delta`; lock-free (some caller always succeeds), never blocks.
    pub(crate) fn add(&self, delta: f64) {
        let mut current = self.0.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(current) + delta).to_bits();
            match self
                .0
                .compare_exchange(current, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(seen) => {
                    current = seen;
                    spin_hint();
                }
            }
        }
    }

    /// Lowers the stored value to `value` if `value` is smaller.
    pub(crate) fn fetch_min(&self, value: f64) {
        self.update_if(value, |old| value < old);
    }

    /// Raises the stored value to `value` if `value` is larger.
    pub(crate) fn fetch_max(&self, value: f64) {
        self.update_if(value, |old| value > old);
    }

    fn update_if(&self, value: f64, better: impl Fn(f64) -> bool) {
        let mut current = self.0.load(Ordering::Relaxed);
        while better(f64::from_bits(current)) {
            match self.0.compare_exchange(
                current,
                value.to_bits(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(seen) => {
                    current = seen;
                    spin_hint();
                }
            }
        }
    }

    /// Adds `delta` to the value, or sets it to `delta` while it is unset
    /// (NaN): a gauge moved by increments before any `set`.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn add_from_unset(&self, delta: f64) {
        let mut current = self.0.load(Ordering::Relaxed);
        loop {
            let old = f64::from_bits(current);
            let next = if old.is_nan() { delta } else { old + delta };
            match self.0.compare_exchange(
                current,
                next.to_bits(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(seen) => {
                    current = seen;
                    spin_hint();
                }
            }
        }
    }

    /// Replaces the value, returning the old one.
    pub(crate) fn swap(&self, value: f64) -> f64 {
        f64::from_bits(self.0.swap(value.to_bits(), Ordering::Relaxed))
    }
}
