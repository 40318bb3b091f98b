//! The pieces the loom models (`loom_tests/`) drive: the ring, the spill
//! accumulators, the rate cell, the sampler, a one-ring pipeline and the
//! exact cells' tables, the `metrics` facade's key cache, with the few producer steps they exercise. Only
//! built under `--cfg loom`.

pub use crate::hot::rate::{RateCell, RateWord};
pub use crate::hot::ring::{PushError, Ring};
pub use crate::hot::sample::{MetricId, Sample};
pub use crate::hot::sampler::Sampler;
pub use crate::hot::spill::{Spill, SpillTotals};

pub use crate::hot::cell::{Kind, SeriesCell};
pub use crate::hot::exact_tables::{Amount, Slots, Tables, Totals};
pub use crate::hot::pipeline::Pipeline;
pub use crate::metrics_rs::cache::{Entry, Full, KeyCache};

/// Series `id` of a fresh slot index space, for models of [`Tables`]
/// (leaked, as the registry leaks its cells).
pub fn series(id: u32, kind: Kind) -> &'static SeriesCell {
    Box::leak(Box::new(SeriesCell::new(MetricId(id), kind)))
}

/// One exact call on `tables` from the thread whose directory is `slots`
/// and registration `table`: the fast path, else the cold one.
pub fn exact_add(
    tables: &Tables,
    slots: &Slots,
    table: &mut Option<usize>,
    cell: &'static SeriesCell,
    amount: Amount,
) {
    let added = match amount {
        Amount::Int(amount) => tables.add_int(slots, cell, amount),
        Amount::Float(amount) => tables.add_float(slots, cell, amount),
    };
    if !added {
        tables.add_slow(slots, Some(table), cell, amount);
    }
}

/// What a thread's exit does: forget the directory, fold and unregister.
pub fn exact_exit(tables: &Tables, slots: &Slots, table: Option<usize>) {
    slots.forget();
    if let Some(table) = table {
        tables.exit(table);
    }
}

/// A sample for series `id`.
pub fn sample(id: u32, inclusion_prob: f32, value: f64) -> Sample {
    Sample {
        id: MetricId(id),
        inclusion_prob,
        value,
    }
}

/// A pipeline of one ring of `capacity` slots at `rate`.
pub fn pipeline(capacity: usize, rate: f32) -> Pipeline {
    Pipeline::new(1, capacity, rate, f64::MAX)
}

/// What a producer does with a decided sample: push, or spill and
/// count on a full ring. False when the ring was closed.
pub fn submit(pipeline: &Pipeline, sample: Sample, spill: &Spill) -> bool {
    pipeline.submit(0, sample, spill)
}

/// [`submit`] from the thread holding the claim on the pipeline's
/// owned ring ([`owned_ring`]).
///
/// # Safety
///
/// The calling thread holds that ring's claim (`Ring::try_claim`).
pub unsafe fn submit_owned(pipeline: &Pipeline, sample: Sample, spill: &Spill) -> bool {
    // SAFETY: forwarded contract: the caller holds the claim.
    unsafe { pipeline.submit_owned(&pipeline.owned[0], sample, spill) }
}

/// The pipeline's (first) owned ring.
pub fn owned_ring(pipeline: &Pipeline) -> &Ring {
    &pipeline.owned[0]
}

/// The pipeline's rate cell (the controller publishes here).
pub fn rate(pipeline: &Pipeline) -> &RateCell {
    &pipeline.rate
}

/// The pipeline's ring.
pub fn ring(pipeline: &Pipeline) -> &Ring {
    &pipeline.rings[0]
}

/// Producers inside a spill now (the shutdown hand-shake waits for 0),
/// read as `flusher::final_drain` reads it (an RMW).
pub fn spilling(pipeline: &Pipeline) -> usize {
    pipeline
        .spilling
        .fetch_add(0, crate::sync::Ordering::SeqCst)
}

/// Samples counted as spilled.
pub fn samples_dropped(pipeline: &Pipeline) -> u64 {
    pipeline
        .samples_spilled
        .load(crate::sync::Ordering::Relaxed)
}

/// A holder of a series, as a handle holds one (`registry::SeriesRef`):
/// counted in the cell's holders until dropped.
#[derive(Debug)]
pub struct Holder(crate::hot::registry::SeriesRef);

impl Holder {
    /// The held cell.
    pub fn cell(&self) -> &'static SeriesCell {
        self.0.cell()
    }
}

/// Holds `cell`, as resolving a handle does.
pub fn hold(cell: &'static SeriesCell) -> Holder {
    Holder(crate::hot::registry::SeriesRef::new(cell))
}

/// The flusher's test before recycling a retired cell: no holder left,
/// then an Acquire fence (`SeriesCell::unheld`).
pub fn unheld(cell: &SeriesCell) -> bool {
    cell.unheld()
}
