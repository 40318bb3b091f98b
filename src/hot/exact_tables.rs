//! The data behind `exact.rs`: each thread's slot pages and directory,
//! and the [`Tables`] that register the live threads, hand out slot
//! indexes and spare pages, fold a thread's slots at exit, start epochs and
//! sum the totals. No thread-local here: the shipping build drives one
//! `static` instance through `exact.rs`, the loom models and tests drive
//! instances directly. See `exact.rs` for the design.

use super::cell::{Kind, SeriesCell, NO_EXACT_SLOT};
use crate::sync::{AtomicU64, Cell, Mutex, MutexGuard, Ordering};

/// The process's tables.
#[cfg(not(loom))]
#[inline(always)]
pub(crate) fn tables() -> &'static Tables {
    static TABLES: Tables = Tables::new(MAX_PAGES * SLOTS_PER_PAGE);
    &TABLES
}

/// The process's tables (under loom, where the models use instances).
#[cfg(loom)]
pub(crate) fn tables() -> &'static Tables {
    static TABLES: std::sync::OnceLock<Tables> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| Tables::new(MAX_PAGES * SLOTS_PER_PAGE))
}

/// Slots per page (a power of two); shrunk under loom.
pub(crate) const SLOTS_PER_PAGE: usize = if cfg!(loom) { 2 } else { 64 };
/// Pages one thread may hold, and so the bound on slot indexes.
pub(crate) const MAX_PAGES: usize = if cfg!(loom) { 2 } else { 64 };
/// [`SeriesCell::exact_slot`] of a series past the bound: shared path.
const SHARED_SLOT: u32 = u32::MAX - 1;

/// One series' exact totals on one thread. Written only by the owning
/// thread (a load and a store); read by readers under the tables' lock.
#[derive(Debug)]
struct Slot {
    int: AtomicU64,
    float_bits: AtomicU64,
    calls: AtomicU64,
}

/// [`SLOTS_PER_PAGE`] slots, on cache lines no other thread writes.
#[derive(Debug)]
#[repr(align(64))]
pub(crate) struct Page {
    slots: [Slot; SLOTS_PER_PAGE],
}

impl Page {
    fn zero(&self) {
        for slot in &self.slots {
            slot.int.store(0, Ordering::Relaxed);
            slot.float_bits.store(0, Ordering::Relaxed);
            slot.calls.store(0, Ordering::Relaxed);
        }
    }
}

/// A series' exact totals: base plus live slots.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Totals {
    /// Σ integer amounts, wrapping (up-down deltas: as `i64`).
    pub int: u64,
    /// Σ non-integer amounts.
    pub float: f64,
    /// Exact calls.
    pub calls: u64,
}

impl Totals {
    /// The cell's base less its offset (what the live slots held when the
    /// series last restarted in the cell).
    fn base(cell: &SeriesCell) -> Self {
        Self {
            int: cell
                .exact_int
                .load(Ordering::Relaxed)
                .wrapping_sub(cell.exact_offset_int.load(Ordering::Relaxed)),
            float: cell.exact_float.load() - cell.exact_offset_float.load(),
            calls: cell
                .exact_calls
                .load(Ordering::Relaxed)
                .wrapping_sub(cell.exact_offset_calls.load(Ordering::Relaxed)),
        }
    }

    fn add(&mut self, slot: &Slot) {
        self.int = self.int.wrapping_add(slot.int.load(Ordering::Relaxed));
        self.float += f64::from_bits(slot.float_bits.load(Ordering::Relaxed));
        self.calls = self.calls.wrapping_add(slot.calls.load(Ordering::Relaxed));
    }

    /// The total as a number: unsigned for a counter, signed for an
    /// up-down counter.
    pub fn value(&self, kind: Kind) -> f64 {
        let int = if kind == Kind::UpDown {
            self.int as i64 as f64
        } else {
            self.int as f64
        };
        int + self.float
    }
}

/// One thread's directory of pages: the fast path's view of its table.
/// `const`, no destructor: reachable from any thread-local destructor.
#[derive(Debug)]
pub struct Slots {
    /// The epoch the pages below belong to; `u64::MAX` when none.
    epoch: Cell<u64>,
    /// Page `n` holds slots `n × SLOTS_PER_PAGE ..`; the same pages as the
    /// thread's [`Live`] entry, set by the owner under the lock.
    pages: [Cell<Option<&'static Page>>; MAX_PAGES],
}

impl Default for Slots {
    fn default() -> Self {
        Self::new()
    }
}

impl Slots {
    /// A directory with no pages.
    pub const fn new() -> Self {
        Self {
            epoch: Cell::new(u64::MAX),
            pages: [const { Cell::new(None) }; MAX_PAGES],
        }
    }

    /// The slot `index` of epoch `epoch`, if this thread has its page.
    #[inline(always)]
    fn slot(&self, epoch: u64, index: u32) -> Option<&'static Slot> {
        if epoch != self.epoch.get() {
            return None;
        }
        let page = self.pages.get(index as usize / SLOTS_PER_PAGE)?.get()?;
        Some(&page.slots[index as usize % SLOTS_PER_PAGE])
    }

    /// Drops every page from the directory: later calls take the cold path.
    /// The first step of a thread's exit (then [`Tables::exit`]).
    pub fn forget(&self) {
        self.epoch.set(u64::MAX);
        for page in &self.pages {
            page.set(None);
        }
    }
}

/// A live thread's table, as readers see it.
#[derive(Debug)]
struct Live {
    epoch: u64,
    pages: [Option<&'static Page>; MAX_PAGES],
}

#[derive(Debug)]
struct Inner {
    /// Slot index → its series.
    cells: Vec<&'static SeriesCell>,
    /// Live tables; a thread's registration is its index here.
    live: Vec<Option<Live>>,
    free_tables: Vec<usize>,
    free_pages: Vec<&'static Page>,
    /// Pages ever allocated (they are recycled, never freed).
    pages_allocated: usize,
    /// Series given no slot: they count in their base (shared path).
    series_past_bound: usize,
}

/// Every thread's exact cells: the live tables, the slot index space and
/// the spare pages, behind one lock that readers, exiting threads and
/// epoch changes take (the per-call path does not).
#[derive(Debug)]
pub struct Tables {
    /// The current epoch: written under the lock, read by the fast path.
    epoch: AtomicU64,
    /// Calls that took the shared path (past the bound, or unregistered).
    shared_calls: AtomicU64,
    /// Slot indexes handed out at most: `MAX_PAGES × SLOTS_PER_PAGE`, or
    /// fewer for tests.
    max_slots: usize,
    inner: Mutex<Inner>,
}

/// Whether the calling thread's slot for a series is ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prepared {
    Ready,
    Shared,
}

impl Tables {
    /// Tables at epoch 0, with at most `max_slots` slot indexes.
    #[cfg(not(loom))]
    pub(crate) const fn new(max_slots: usize) -> Self {
        Self {
            epoch: AtomicU64::new(0),
            shared_calls: AtomicU64::new(0),
            max_slots,
            inner: Mutex::new(Inner::EMPTY),
        }
    }

    /// Tables at epoch 0, with at most `max_slots` slot indexes.
    #[cfg(loom)]
    pub fn new(max_slots: usize) -> Self {
        Self {
            epoch: AtomicU64::new(0),
            shared_calls: AtomicU64::new(0),
            max_slots,
            inner: Mutex::new(Inner::EMPTY),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Inner's invariants hold between statements; nothing in a locked
        // section panics but an allocation failure.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The fast path: adds `amount` to this thread's slot for `cell`;
    /// `false` when the slot is not ready (see [`Tables::add_slow`]).
    #[inline(always)]
    pub fn add_int(&self, slots: &Slots, cell: &SeriesCell, amount: i64) -> bool {
        self.add_with(slots, cell, &|slot| {
            let int = slot.int.load(Ordering::Relaxed);
            slot.int.store(int.wrapping_add(amount as u64), Ordering::Relaxed);
        })
    }

    /// [`Tables::add_int`] for a non-integer amount.
    #[inline]
    pub fn add_float(&self, slots: &Slots, cell: &SeriesCell, amount: f64) -> bool {
        self.add_with(slots, cell, &|slot| {
            let sum = f64::from_bits(slot.float_bits.load(Ordering::Relaxed)) + amount;
            slot.float_bits.store(sum.to_bits(), Ordering::Relaxed);
        })
    }

    /// Adds one call to this thread's slot for `cell` (`add` adds its
    /// amount), if the slot is ready. Single writer: plain
    /// read-modify-writes, no locked instruction. Relaxed: readers sum
    /// under the lock and may see a concurrent call or not; a call that
    /// happened before a read is seen.
    #[inline(always)]
    fn add_with(&self, slots: &Slots, cell: &SeriesCell, add: &impl Fn(&Slot)) -> bool {
        let epoch = self.epoch.load(Ordering::Relaxed);
        let Some(slot) = slots.slot(epoch, cell.exact_slot()) else {
            return false;
        };
        add(slot);
        let calls = slot.calls.load(Ordering::Relaxed);
        slot.calls.store(calls.wrapping_add(1), Ordering::Relaxed);
        true
    }

    /// The cold path: readies this thread's slot for `cell` (registering
    /// the thread in `table`, taking the new epoch, taking a page) and
    /// adds; past the bound, or with no `table` (the thread's registration
    /// is gone), adds to the shared base instead.
    pub fn add_slow(
        &self,
        slots: &Slots,
        table: Option<&mut Option<usize>>,
        cell: &'static SeriesCell,
        amount: Amount,
    ) {
        if let Some(table) = table {
            if cell.exact_slot() != SHARED_SLOT
                && self.prepare(slots, table, cell) == Prepared::Ready
            {
                let added = match amount {
                    Amount::Int(amount) => self.add_int(slots, cell, amount),
                    Amount::Float(amount) => self.add_float(slots, cell, amount),
                };
                // Not added only if an install raced this call.
                if added {
                    return;
                }
            }
        }
        self.shared_calls.fetch_add(1, Ordering::Relaxed);
        match amount {
            Amount::Int(amount) => cell.add_exact_int(amount),
            Amount::Float(amount) => cell.add_exact_float(amount),
        }
    }

    fn prepare(
        &self,
        slots: &Slots,
        table: &mut Option<usize>,
        cell: &'static SeriesCell,
    ) -> Prepared {
        let mut inner = self.lock();
        let epoch = self.epoch.load(Ordering::Relaxed);
        let mut index = cell.exact_slot();
        if index == NO_EXACT_SLOT {
            index = if inner.cells.len() < self.max_slots {
                inner.cells.push(cell);
                (inner.cells.len() - 1) as u32
            } else {
                inner.series_past_bound += 1;
                if inner.series_past_bound == 1 {
                    log::warn!(
                        target: "hotmetrics",
                        "more than {} exact series: the later ones count through a shared atomic",
                        self.max_slots
                    );
                }
                SHARED_SLOT
            };
            cell.set_exact_slot(index);
        }
        if index == SHARED_SLOT {
            return Prepared::Shared;
        }
        let id = *table.get_or_insert_with(|| inner.register(epoch));
        let Inner {
            live,
            free_pages,
            pages_allocated,
            ..
        } = &mut *inner;
        let live = live[id].as_mut().expect("a registered table is live");
        if live.epoch != epoch {
            // A new engine: this thread is its slots' only writer, so
            // zeroing them here loses nothing it adds later.
            for page in live.pages.iter().flatten() {
                page.zero();
            }
            live.epoch = epoch;
        }
        slots.epoch.set(epoch);
        let number = index as usize / SLOTS_PER_PAGE;
        if live.pages[number].is_none() {
            let page = free_pages.pop().unwrap_or_else(|| {
                *pages_allocated += 1;
                Box::leak(Box::new(Page {
                    slots: std::array::from_fn(|_| Slot {
                        int: AtomicU64::new(0),
                        float_bits: AtomicU64::new(0),
                        calls: AtomicU64::new(0),
                    }),
                }))
            });
            page.zero();
            live.pages[number] = Some(page);
            slots.pages[number].set(Some(page));
        }
        Prepared::Ready
    }

    /// Thread exit: folds table `table`'s slots into the bases (if it is of
    /// the current epoch) and unregisters it, under the lock readers take.
    /// Called by the owning thread, after [`Slots::forget`].
    pub fn exit(&self, table: usize) {
        let mut inner = self.lock();
        let Some(live) = inner.live.get_mut(table).and_then(Option::take) else {
            return;
        };
        if live.epoch == self.epoch.load(Ordering::Relaxed) {
            for (number, page) in live.pages.iter().enumerate() {
                let Some(page) = page else { continue };
                for (offset, slot) in page.slots.iter().enumerate() {
                    let mut totals = Totals::default();
                    totals.add(slot);
                    let cell = inner.cells.get(number * SLOTS_PER_PAGE + offset);
                    if let (Some(cell), true) = (cell, totals.calls > 0) {
                        cell.exact_int.fetch_add(totals.int, Ordering::Relaxed);
                        if totals.float != 0.0 {
                            cell.exact_float.add(totals.float);
                        }
                        cell.exact_calls.fetch_add(totals.calls, Ordering::Relaxed);
                    }
                }
            }
        }
        inner.free_pages.extend(live.pages.into_iter().flatten());
        inner.free_tables.push(table);
    }

    /// Restarts `cell`'s totals from zero (its series was retired, revived
    /// or recycled) and returns what they were. The live threads' slots
    /// cannot be cleared from here (each has one writer), so their sum now
    /// becomes the cell's offset and the base is cleared: base + slots −
    /// offset is then zero, and stays right across a thread's fold at exit
    /// (which moves a slot's value into the base). Under the lock the folds
    /// and readers take.
    pub fn rebase(&self, cell: &SeriesCell) -> Totals {
        let inner = self.lock();
        let mut slots = Totals::default();
        let index = cell.exact_slot() as usize;
        if index < inner.cells.len() {
            for page in inner.current_pages(self.epoch.load(Ordering::Relaxed)) {
                if let Some(page) = page[index / SLOTS_PER_PAGE] {
                    slots.add(&page.slots[index % SLOTS_PER_PAGE]);
                }
            }
        }
        let base = Totals {
            int: cell.exact_int.swap(0, Ordering::Relaxed),
            float: cell.exact_float.swap(0.0),
            calls: cell.exact_calls.swap(0, Ordering::Relaxed),
        };
        let before = Totals {
            int: base
                .int
                .wrapping_add(slots.int)
                .wrapping_sub(cell.exact_offset_int.load(Ordering::Relaxed)),
            float: base.float + slots.float - cell.exact_offset_float.load(),
            calls: base
                .calls
                .wrapping_add(slots.calls)
                .wrapping_sub(cell.exact_offset_calls.load(Ordering::Relaxed)),
        };
        cell.exact_offset_int.store(slots.int, Ordering::Relaxed);
        cell.exact_offset_float.store(slots.float);
        cell.exact_offset_calls.store(slots.calls, Ordering::Relaxed);
        before
    }

    /// Starts a new epoch (an engine is being installed): clears the bases
    /// of every series with a slot, under the lock, so no fold from an
    /// earlier engine lands after; live tables go stale (module docs).
    pub fn restart(&self) {
        let inner = self.lock();
        for cell in &inner.cells {
            cell.exact_int.store(0, Ordering::Relaxed);
            cell.exact_float.store(0.0);
            cell.exact_calls.store(0, Ordering::Relaxed);
            // The live tables go stale, so the slots count for nothing.
            cell.exact_offset_int.store(0, Ordering::Relaxed);
            cell.exact_offset_float.store(0.0);
            cell.exact_offset_calls.store(0, Ordering::Relaxed);
        }
        let epoch = self.epoch.load(Ordering::Relaxed);
        self.epoch.store(epoch.wrapping_add(1), Ordering::Relaxed);
    }

    /// The current totals of `cell`: base plus live slots.
    pub fn totals(&self, cell: &SeriesCell) -> Totals {
        let inner = self.lock();
        let mut totals = Totals::base(cell);
        let index = cell.exact_slot() as usize;
        if index < inner.cells.len() {
            for page in inner.current_pages(self.epoch.load(Ordering::Relaxed)) {
                if let Some(page) = page[index / SLOTS_PER_PAGE] {
                    totals.add(&page.slots[index % SLOTS_PER_PAGE]);
                }
            }
        }
        totals
    }

    /// The current totals of series 0, 1, 2, … (`cells`, in id order, as
    /// the registry lists them) into `out[id]`, in one pass under the lock.
    pub fn totals_by_id<'a>(
        &self,
        cells: impl IntoIterator<Item = &'a SeriesCell>,
        out: &mut Vec<Totals>,
    ) {
        let inner = self.lock();
        out.clear();
        for cell in cells {
            debug_assert_eq!(cell.id.index(), out.len(), "cells in id order");
            out.push(Totals::base(cell));
        }
        for pages in inner.current_pages(self.epoch.load(Ordering::Relaxed)) {
            for (number, page) in pages.iter().enumerate() {
                let Some(page) = page else { continue };
                let first = number * SLOTS_PER_PAGE;
                for (cell, slot) in inner.cells.iter().skip(first).zip(&page.slots) {
                    if let Some(totals) = out.get_mut(cell.id.index()) {
                        totals.add(slot);
                    }
                }
            }
        }
    }

    /// Calls that took the shared path.
    pub fn shared_calls(&self) -> u64 {
        self.shared_calls.load(Ordering::Relaxed)
    }

    /// Pages ever allocated, and live tables now (memory checks).
    pub fn footprint(&self) -> (usize, usize) {
        let inner = self.lock();
        let live = inner.live.iter().flatten().count();
        (inner.pages_allocated, live)
    }
}

impl Inner {
    const EMPTY: Inner = Inner {
        cells: Vec::new(),
        live: Vec::new(),
        free_tables: Vec::new(),
        free_pages: Vec::new(),
        pages_allocated: 0,
        series_past_bound: 0,
    };

    fn register(&mut self, epoch: u64) -> usize {
        let live = Some(Live {
            epoch,
            pages: [None; MAX_PAGES],
        });
        match self.free_tables.pop() {
            Some(id) => {
                self.live[id] = live;
                id
            }
            None => {
                self.live.push(live);
                self.live.len() - 1
            }
        }
    }

    /// The page lists of the live tables of `epoch`.
    fn current_pages(&self, epoch: u64) -> impl Iterator<Item = &[Option<&'static Page>]> {
        self.live
            .iter()
            .flatten()
            .filter(move |live| live.epoch == epoch)
            .map(|live| &live.pages[..])
    }
}

/// An amount for [`Tables::add_slow`].
#[derive(Clone, Copy, Debug)]
pub enum Amount {
    /// An integer (wrapping; up-down deltas as `i64`).
    Int(i64),
    /// A finite non-integer amount.
    Float(f64),
}
