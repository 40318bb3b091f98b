//! Each thread's cache of the series its `record!` sites with label
//! expressions record into, keyed by (callsite, label values).
//!
//! A recorded call of such a site needs the series of its values. Asking
//! the registry takes its lock and allocates, so each thread keeps the
//! series it used last: [`ENTRIES`] entries in one `const` thread-local,
//! each holding the site's address, its own copy of the values' texts
//! (a hit compares the values, never the hash alone) and a [`SeriesRef`].
//!
//! Why per thread, and why a `SeriesRef`: a cached series counts as held
//! ([`SeriesCell::holders`](super::cell::SeriesCell)) for as long as an
//! entry keeps it, and no longer. An entry is evicted only by its own
//! thread, so a call copies the cell out of its entry and records with no
//! reference counting; and once the entry is gone (evicted, or the thread
//! exited) the cell can be retired and recycled for another label set like
//! a dropped handle's. Memory stays bounded under endless churn of label
//! values: each thread holds at most [`ENTRIES`] series beyond what the
//! cardinality limit keeps live.
//!
//! A set may sit in two entries picked by a hash of the site and values; a
//! miss resolves through the caller's closure and puts the series in the
//! first of the two if that is empty, else in the second, dropping the
//! `SeriesRef` that was there.
//!
//! Re-entrancy: a `record!` reached while the cache is in use on the same
//! thread (from a value's formatting is not: values are formatted before
//! the cache is entered; from the registry's logging, or the recording)
//! finds it busy and resolves uncached, holding a temporary `SeriesRef`
//! for its own call, so it never evicts the entry in use nor borrows the
//! entries twice. Calls from thread-local destructors after this thread's
//! cache is gone resolve uncached the same way.

use super::callsite::DynamicCallsite;
use super::registry::SeriesRef;
use crate::sync::{const_thread_local, Cell, RefCell};

/// Entries per thread. A thread's working set of label sets is what it
/// records over a few export intervals (routes × statuses, tenants); 64
/// holds the usual ones with two probes per lookup, in about 5 KiB per
/// thread that records label expressions (allocated on its first miss;
/// none for other threads). It is also the most series one thread keeps
/// from being recycled, so small enough that `64 × threads` stays modest
/// beside a cardinality limit of 2000.
pub(crate) const ENTRIES: usize = 64;

/// One cached label set of one site.
#[derive(Debug)]
struct Entry {
    /// The site's address (sites are `static`).
    site: usize,
    /// Of `site` and `texts` (see [`hash_of`]): a quick filter only.
    hash: u64,
    /// The call's values as text, in the site's key order.
    texts: Box<[Box<str>]>,
    /// Their series, held while the entry lives.
    series: SeriesRef,
}

impl Entry {
    fn is(&self, site: usize, hash: u64, texts: &[&str]) -> bool {
        self.site == site
            && self.hash == hash
            && self.texts.len() == texts.len()
            && self
                .texts
                .iter()
                .zip(texts)
                .all(|(kept, text)| **kept == **text)
    }
}

/// One thread's cache.
#[derive(Debug)]
pub(crate) struct SeriesCache {
    /// A call is using the entries (set by [`Busy`], only by this thread).
    busy: Cell<bool>,
    /// Empty until the thread's first miss, then [`ENTRIES`] long.
    /// Borrowed only while `busy` is set, by the call that set it.
    entries: RefCell<Vec<Option<Entry>>>,
}

const_thread_local! {
    /// This thread's cache; its destructor drops the entries' `SeriesRef`s
    /// at thread exit.
    static CACHE: SeriesCache = SeriesCache {
        busy: Cell::new(false),
        entries: RefCell::new(Vec::new()),
    };
}

/// Sets `busy` for as long as it lives (also on unwinding).
struct Busy<'a>(&'a Cell<bool>);

impl<'a> Busy<'a> {
    /// `None` if the cache is in use already.
    fn enter(busy: &'a Cell<bool>) -> Option<Self> {
        if busy.replace(true) {
            // In use: leave the flag to its holder.
            return None;
        }
        Some(Self(busy))
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// Runs `record` with the series of `texts` (a call's values in key order)
/// at `site`, held for the whole call: from this thread's cache, else from
/// `resolve` (`None`: refused; the flag: may be cached). `None` if refused.
pub(crate) fn with_series<R>(
    site: &DynamicCallsite,
    texts: &[&str],
    resolve: impl FnOnce() -> Option<(SeriesRef, bool)>,
    record: impl FnOnce(&SeriesRef) -> R,
) -> Option<R> {
    let mut pending = Some((resolve, record));
    let cached = CACHE.try_with(|cache| {
        let _busy = Busy::enter(&cache.busy)?;
        let (resolve, record) = pending.take()?;
        Some(cache.call(site, texts, resolve, record))
    });
    match (cached, pending) {
        (Ok(Some(result)), _) => result,
        // Busy (a re-entrant call), or the cache is gone (thread exit).
        (_, Some((resolve, record))) => {
            let (series, _) = resolve()?;
            Some(record(&series))
        }
        (_, None) => unreachable!("a cached call returns its result"),
    }
}

impl SeriesCache {
    /// The cached path of [`with_series`]; the caller set `busy`.
    fn call<R>(
        &self,
        site: &DynamicCallsite,
        texts: &[&str],
        resolve: impl FnOnce() -> Option<(SeriesRef, bool)>,
        record: impl FnOnce(&SeriesRef) -> R,
    ) -> Option<R> {
        debug_assert!(self.busy.get());
        let site = site as *const DynamicCallsite as usize;
        let hash = hash_of(site, texts);
        let slots = slots_of(hash);
        {
            // No other borrow: only the call that set `busy` borrows, and
            // a re-entrant call during `record` finds it set.
            let entries = self.entries.borrow();
            let hit = slots
                .iter()
                .filter_map(|&index| entries.get(index)?.as_ref())
                .find(|entry| entry.is(site, hash, texts));
            if let Some(entry) = hit {
                return Some(record(&entry.series));
            }
        }
        self.miss(site, hash, slots, texts, resolve, record)
    }

    #[cold]
    #[inline(never)]
    fn miss<R>(
        &self,
        site: usize,
        hash: u64,
        slots: [usize; 2],
        texts: &[&str],
        resolve: impl FnOnce() -> Option<(SeriesRef, bool)>,
        record: impl FnOnce(&SeriesRef) -> R,
    ) -> Option<R> {
        let (series, cacheable) = resolve()?;
        let result = record(&series);
        if cacheable {
            let entry = Entry {
                site,
                hash,
                texts: texts.iter().map(|text| Box::from(*text)).collect(),
                series,
            };
            let mut entries = self.entries.borrow_mut();
            if entries.is_empty() {
                entries.resize_with(ENTRIES, || None);
            }
            let [first, second] = slots;
            let index = if entries[first].is_none() {
                first
            } else {
                second
            };
            // Drops the evicted entry's `SeriesRef`: its cell may now be
            // recycled once retired.
            entries[index] = Some(entry);
        }
        Some(result)
    }
}

/// FNV-1a of the site's address and the texts (each ended by a byte no
/// UTF-8 text has).
fn hash_of(site: usize, texts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in site.to_le_bytes().iter() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    for text in texts {
        for &byte in text.as_bytes().iter().chain(&[0xff]) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash ^ (hash >> 29)
}

/// The two entries a label set may sit in: never the same one.
fn slots_of(hash: u64) -> [usize; 2] {
    let first = hash as usize % ENTRIES;
    let second = (hash >> 32) as usize % (ENTRIES - 1);
    [first, (first + 1 + second) % ENTRIES]
}

/// Series this thread's cache holds (tests).
#[cfg(test)]
pub(crate) fn held_here() -> usize {
    CACHE.with(|cache| cache.entries.borrow().iter().flatten().count())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hot::cell::{Kind, SeriesCell};
    use crate::hot::sample::MetricId;
    use crate::sync::statics::Ordering;
    use crate::sync::Mutex;

    static SITE: DynamicCallsite = DynamicCallsite::new("cache.test", Kind::Counter, &["k"], false);
    static OTHER: DynamicCallsite =
        DynamicCallsite::new("cache.other", Kind::Counter, &["k"], false);

    /// Keeps the tests' cells reachable, as the registry keeps its own.
    static CELLS: Mutex<Vec<&'static SeriesCell>> = Mutex::new(Vec::new());

    fn cell() -> &'static SeriesCell {
        let cell = Box::leak(Box::new(SeriesCell::new(MetricId(u32::MAX), Kind::Counter)));
        CELLS.lock().unwrap().push(cell);
        cell
    }

    fn holders(cell: &SeriesCell) -> usize {
        cell.holders.load(Ordering::Relaxed)
    }

    /// Records through the cache; counts the misses in `resolved`.
    fn call(site: &DynamicCallsite, text: &str, cell: &'static SeriesCell, resolved: &Cell<u32>) {
        let found = with_series(
            site,
            &[text],
            || {
                resolved.set(resolved.get() + 1);
                Some((SeriesRef::new(cell), true))
            },
            |series| assert!(std::ptr::eq(series.cell(), cell)),
        );
        assert!(found.is_some());
    }

    #[test]
    fn a_hit_compares_site_and_values_and_holds_the_series_once() {
        std::thread::spawn(|| {
            let (a, b, c) = (cell(), cell(), cell());
            let resolved = Cell::new(0);
            call(&SITE, "a", a, &resolved);
            call(&SITE, "a", a, &resolved);
            assert_eq!((resolved.get(), holders(a)), (1, 1));
            call(&SITE, "b", b, &resolved);
            call(&OTHER, "a", c, &resolved);
            assert_eq!(resolved.get(), 3);
            assert_eq!((holders(b), holders(c)), (1, 1));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn eviction_and_thread_exit_release_the_series() {
        let cells: Vec<&'static SeriesCell> = (0..1000).map(|_| cell()).collect();
        let held = std::thread::spawn({
            let cells = cells.clone();
            move || {
                let resolved = Cell::new(0);
                for (index, cell) in cells.iter().enumerate() {
                    call(&SITE, &format!("v{index}"), cell, &resolved);
                }
                let held: usize = cells.iter().map(|cell| holders(cell)).sum();
                assert_eq!(held, held_here());
                held
            }
        })
        .join()
        .unwrap();
        assert!(held > ENTRIES / 2 && held <= ENTRIES, "{held} held");
        assert!(cells.iter().all(|cell| holders(cell) == 0));
    }

    #[test]
    fn a_reentrant_call_resolves_uncached_and_keeps_the_entry_in_use() {
        std::thread::spawn(|| {
            let (outer, inner) = (cell(), cell());
            let resolved = Cell::new(0);
            call(&SITE, "outer", outer, &resolved);
            with_series(
                &SITE,
                &["outer"],
                || unreachable!("cached"),
                |series| {
                    // Same key, and another: both uncached, held for the call.
                    call(&SITE, "outer", outer, &resolved);
                    call(&SITE, "inner", inner, &resolved);
                    assert_eq!(holders(inner), 0);
                    assert!(std::ptr::eq(series.cell(), outer));
                },
            );
            assert_eq!(resolved.get(), 3);
            assert_eq!((holders(outer), holders(inner)), (1, 0));
            call(&SITE, "outer", outer, &resolved);
            assert_eq!(resolved.get(), 3, "the entry in use was kept");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn an_uncacheable_series_is_held_for_its_call_only() {
        std::thread::spawn(|| {
            let overflow = cell();
            for _ in 0..3 {
                with_series(
                    &SITE,
                    &["over"],
                    || Some((SeriesRef::new(overflow), false)),
                    |_| assert_eq!(holders(overflow), 1),
                );
            }
            assert_eq!(holders(overflow), 0);
            assert_eq!(with_series(&SITE, &["none"], || None, |_| ()), None);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn slots_spread_label_sets() {
        let used: std::collections::HashSet<usize> = (0..256)
            .flat_map(|index| slots_of(hash_of(0x1000, &[&format!("/r{index}")])))
            .collect();
        assert_eq!(used.len(), ENTRIES);
    }
}
