//! Everything a `record!` or handle call can reach, and nothing else.
//!
//! Files here import nothing outside this folder but `crate::sync` and
//! `crate::error` (`.ci/imports.py` checks it), so what runs per call reads
//! in one place:
//!
//! | file | what it holds |
//! |---|---|
//! | `callsite.rs` | the `static` a `record!` expands to: cached series word and step |
//! | `record.rs` | the inline entries (`sampled`, `handle`, `gauge`, `timed_*`) |
//! | `dynamic.rs` | `record!` sites with label expressions: sample first, resolve after |
//! | `series_cache.rs` | each thread's cache of those sites' series, held while cached |
//! | `label.rs` | [`LabelValue`](label::LabelValue): the label values a call accepts |
//! | `slow.rs` | their cold halves: route, decide, check, push, or record exactly |
//! | `value.rs` | [`Value`](value::Value): the numbers a call accepts |
//! | `sampler.rs` | the countdown and the geometric skip draws |
//! | `thread.rs` | the one `const` thread-local and the rules for its pointers |
//! | `pipeline.rs` | what producers share with the flusher, and the installed slot |
//! | `ring.rs` | the bounded lock-free queue |
//! | `spill.rs` | per-series accumulators for samples a full ring refused |
//! | `rate.rs` | the published rate word |
//! | `sample.rs` | one sample: series, value, inclusion probability |
//! | `cell.rs` | a series' producer-side cell (exact base, gauge, spill) |
//! | `exact.rs` | exact counts in per-thread single-writer cells, folded at exit |
//! | `exact_tables.rs` | those cells' pages, the live threads' tables, fold and sums |
//! | `registry.rs` | series lookup, callsite resolution, name and label checks |
//! | `handle.rs` | the handles (`counter(..).with_labels(..)`) |

/// Declares the modules whose `pub` items the loom models reach through
/// `loom_api.rs`: outside `--cfg loom` those items are unreachable from
/// outside the crate, and a few are unused.
macro_rules! reached_by_loom {
    ($($module:ident),* $(,)?) => {
        $(
            #[cfg_attr(not(loom), allow(unreachable_pub, dead_code))]
            pub(crate) mod $module;
        )*
    };
}

reached_by_loom!(
    cell,
    exact_tables,
    pipeline,
    rate,
    ring,
    sample,
    sampler,
    spill
);

pub(crate) mod callsite;
pub(crate) mod dynamic;
pub(crate) mod exact;
pub(crate) mod handle;
pub(crate) mod label;
pub(crate) mod record;
pub(crate) mod registry;
pub(crate) mod series_cache;
mod slow;
pub(crate) mod thread;
pub(crate) mod value;
