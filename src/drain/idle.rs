//! Idle series: the flusher's side of the idle timeout.
//!
//! Every [`check_interval`] the flusher, right after a drain pass:
//!
//! 1. recycles the series found unheld at the previous check, once every
//!    ring has been drained past the positions claimed then (so no sample
//!    of the old series is still in a ring when another label set takes the
//!    index: `registry::recycle`);
//! 2. retires the series nothing recorded for the timeout
//!    (`Aggregator::retire_idle`): they leave the snapshot, and so every
//!    exporter's output, and free their places under the cardinality
//!    limit;
//! 3. notes the retired series no holder can reach any more
//!    (`registry::quiescent`, whose Acquire fence pairs with the holders'
//!    Release drops) and, after that, the rings' claimed positions.
//!
//! A series is so retired between one timeout and one timeout plus a check
//! interval after its last recorded call, and its cell recycled a check
//! interval or more after the last holder let go. See `hot/registry.rs` for
//! the producer side (revival, holders).

use std::time::{Duration, Instant};

use super::aggregate::Aggregator;
use crate::hot::pipeline::Pipeline;
use crate::hot::registry;

/// How often the flusher looks for idle series under `timeout`: a quarter
/// of it, no more often than every 10 ms.
pub(crate) fn check_interval(timeout: Duration) -> Duration {
    (timeout / 4).max(Duration::from_millis(10))
}

/// The flusher's idle-series state between checks.
#[derive(Debug, Default)]
pub(crate) struct Idle {
    /// Retired series no holder could reach at the last check.
    pending: Vec<u32>,
    /// Every ring's claimed position, read after `pending` was found.
    marks: Vec<usize>,
}

impl Idle {
    /// One check (module docs); returns the series retired.
    pub(crate) fn check(
        &mut self,
        pipeline: &Pipeline,
        aggregator: &mut Aggregator,
        timeout: Duration,
    ) -> usize {
        if !self.pending.is_empty() && drained_past(pipeline, &self.marks) {
            registry::recycle(&self.pending);
            self.pending.clear();
        }
        let retired = aggregator.retire_idle(Instant::now(), timeout);
        if self.pending.is_empty() {
            registry::quiescent(&mut self.pending);
            self.marks.clear();
            if !self.pending.is_empty() {
                // After the fence in `quiescent`: every claim made by a
                // call of those series is below these positions.
                self.marks
                    .extend(pipeline.all_rings().map(|ring| ring.claimed()));
            }
        }
        retired
    }
}

/// True once every ring's consumer has passed its mark.
fn drained_past(pipeline: &Pipeline, marks: &[usize]) -> bool {
    pipeline
        .all_rings()
        .zip(marks)
        .all(|(ring, &mark)| ring.head().wrapping_sub(mark) as isize >= 0)
}
