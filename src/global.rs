//! The installed-engine slot.
//!
//! `static`s cannot hold loom atomics, so this file uses `std` and
//! `arc-swap` directly (the documented exception to `crate::sync`). Its
//! logic is a single publish/unpublish, exercised by the engine tests.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::{ArcSwapOption, Guard};

use crate::pipeline::Pipeline;

static PIPELINE: ArcSwapOption<Pipeline> = ArcSwapOption::const_empty();

/// True while an engine is installed and not shut down: the one load an
/// exact call makes before touching its series.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The installed pipeline, if any. Cheap (no reference-count write).
#[inline]
pub(crate) fn pipeline() -> Guard<Option<Arc<Pipeline>>> {
    PIPELINE.load()
}

/// True while an engine is installed.
#[inline(always)]
pub(crate) fn is_active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// Installs `pipeline` if the slot is empty; returns false if an engine is
/// already installed.
pub(crate) fn install(pipeline: Arc<Pipeline>) -> bool {
    let previous = PIPELINE.compare_and_swap(&None::<Arc<Pipeline>>, Some(pipeline));
    if previous.is_some() {
        return false;
    }
    ACTIVE.store(true, Ordering::Relaxed);
    true
}

/// Empties the slot if it still holds `pipeline`.
pub(crate) fn uninstall(pipeline: &Arc<Pipeline>) {
    ACTIVE.store(false, Ordering::Relaxed);
    let current = PIPELINE.load_full();
    if let Some(current) = current {
        if Arc::ptr_eq(&current, pipeline) {
            PIPELINE.compare_and_swap(&Some(current), None);
        }
    }
}
