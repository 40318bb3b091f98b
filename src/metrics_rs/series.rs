//! What a facade `Counter`, `Gauge` or `Histogram` wraps: a resolved
//! hotmetrics series, and each thread's own `Arc` of it.
//!
//! The facade's handles are `Arc<dyn CounterFn>` (and so on), and its
//! macros clone one per call and drop it after. If every thread cloned the
//! same `Arc`, its reference count would be one cache line written by
//! every call of every thread: the cost the facade's own users measure at
//! two threads and more. So each thread gets an `Arc` of its own per
//! series (`OWN`, indexed by the key cache's dense entry index), and the
//! object behind it is aligned to 128 bytes, so the count sits on cache
//! lines no other allocation shares (128: adjacent-line prefetch pulls
//! lines in pairs, as crossbeam's `CachePadded` documents).

use std::cell::RefCell;
use std::sync::Arc;

use metrics::{CounterFn, GaugeFn, HistogramFn, Key};

use super::cache::Entry;
use crate::hot::cell::{Kind, SeriesCell};
use crate::hot::pipeline;
use crate::hot::record;
use crate::hot::registry::SeriesRef;

/// A resolved series, as a facade `CounterFn`, `GaugeFn` and `HistogramFn`.
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct Series {
    /// `None` when the key was refused: calls do nothing. Held (counted
    /// in the cell's holders) for as long as this `Series` lives, so an
    /// idle series it names is retired and revived, and its cell reused
    /// once no `Series` of it is left (see `registry.rs`, "Idle series").
    pub(crate) cell: Option<SeriesRef>,
}

impl Series {
    #[inline]
    pub(crate) fn cell(&self) -> Option<&'static SeriesCell> {
        self.cell.as_ref().map(SeriesRef::cell)
    }
}

impl CounterFn for Series {
    #[inline]
    fn increment(&self, value: u64) {
        if let Some(cell) = self.cell() {
            record::handle(cell, false, value);
        }
    }

    fn absolute(&self, value: u64) {
        let Some(cell) = self.cell() else {
            return;
        };
        if !pipeline::is_active() {
            return;
        }
        let rise = cell.raise_absolute(value);
        if rise > 0 {
            record::exact(cell, rise);
        }
    }
}

impl GaugeFn for Series {
    fn increment(&self, value: f64) {
        if let Some(cell) = self.cell() {
            record::gauge_add(cell, value);
        }
    }

    fn decrement(&self, value: f64) {
        if let Some(cell) = self.cell() {
            record::gauge_add(cell, -value);
        }
    }

    fn set(&self, value: f64) {
        if let Some(cell) = self.cell() {
            if pipeline::is_active() {
                record::exact(cell, value);
            }
        }
    }
}

impl HistogramFn for Series {
    #[inline]
    fn record(&self, value: f64) {
        if let Some(cell) = self.cell() {
            record::handle(cell, false, value);
        }
    }

    fn record_many(&self, value: f64, count: usize) {
        if let Some(cell) = self.cell() {
            // `count` calls, each its own trial: the estimate's count and
            // variance are those of `count` separate records.
            for _ in 0..count {
                record::handle(cell, false, value);
            }
        }
    }
}

/// A cache key: the facade's key and the kind it was registered as (one
/// name registered as two kinds is two keys, and one of them is refused).
#[derive(Debug)]
pub(crate) struct FacadeKey {
    pub(crate) kind: Kind,
    pub(crate) key: Key,
}

/// A cached key's entry: its shared `Arc` is the fallback when the
/// thread's own table cannot be used.
pub(crate) type CachedEntry = Entry<FacadeKey, Arc<Series>>;

std::thread_local! {
    /// This thread's own `Arc` of each series it recorded through the
    /// facade, by the entry's index in the key cache (`None` where it
    /// recorded none). Dropped at thread exit; a handle the program kept
    /// holds its own reference.
    static OWN: RefCell<Vec<Option<Arc<Series>>>> = const { RefCell::new(Vec::new()) };
}

/// This thread's own `Arc` of `entry`'s series (a clone: the count it
/// moves is this thread's). The shared one from a thread-local destructor,
/// or if the table is borrowed (never, in practice: nothing in a clone
/// calls back in).
#[inline]
pub(crate) fn own(entry: &'static CachedEntry) -> Arc<Series> {
    OWN.try_with(|own| {
        if let Ok(own) = own.try_borrow() {
            if let Some(Some(series)) = own.get(entry.index as usize) {
                return series.clone();
            }
        }
        first_on_thread(own, entry)
    })
    .unwrap_or_else(|_| entry.value.clone())
}

/// The thread's first call of `entry`'s series: makes its own `Arc`.
#[cold]
#[inline(never)]
fn first_on_thread(
    own: &RefCell<Vec<Option<Arc<Series>>>>,
    entry: &'static CachedEntry,
) -> Arc<Series> {
    let Ok(mut own) = own.try_borrow_mut() else {
        return entry.value.clone();
    };
    let index = entry.index as usize;
    if own.len() <= index {
        own.resize(index + 1, None);
    }
    own[index]
        .get_or_insert_with(|| {
            Arc::new(Series {
                cell: entry.value.cell.clone(),
            })
        })
        .clone()
}
