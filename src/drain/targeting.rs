//! Error targeting, once per control period: what the allocator
//! (`allocator.rs`) is given and what is done with its answer.
//!
//! * Demands: every counter and histogram that is not exact by design,
//!   with its estimated calls per second over the period (Σ 1/π of its
//!   samples plus its exact calls) and the spread of its values.
//! * Budget: the samples per second the flusher may drain, the least of
//!   its CPU budget at the cost per sample measured over the period, half
//!   the rings' capacity per drain interval, and, after the rings
//!   overflowed or passed their high-water mark, the throughput they
//!   carried scaled back to the middle of the band.
//! * Answer: the base rate is published (the thread-local countdowns pick
//!   it up at their next draw), every series' step is set through the
//!   registry (cells and callsites), and each series' probability and
//!   whether it meets its target are kept for the snapshot.

use super::aggregate::{Aggregator, PeriodSeries, Plan};
use super::allocator::{self, Allocation, Choice, Demand, Limits};
use super::controller::Observation;
use super::shared::Shared;
use crate::hot::cell::Kind;
use crate::hot::registry;

/// A series' rate is known once it has been seen this long (or half the
/// period, when periods are shorter).
const MIN_OBSERVED_SECS: f64 = 0.1;

/// Cost of draining one sample assumed before one is measured.
const DEFAULT_SAMPLE_COST_NS: f64 = 100.0;

/// Runs the allocator over the period just ended and applies its answer.
/// Returns the allocation (for logging and tests).
pub(crate) fn retarget(
    shared: &Shared,
    aggregator: &mut Aggregator,
    series: &[PeriodSeries],
    observed: &Observation,
    cv2_memory: &mut Vec<f64>,
) -> Allocation {
    let config = &shared.config;
    let min_observed = MIN_OBSERVED_SECS.min(observed.period_secs / 2.0);
    cv2_memory.resize(series.len(), 0.0);
    let mut indices = Vec::new();
    let mut demands = Vec::new();
    for (index, (info, period)) in aggregator.infos().iter().zip(series).enumerate() {
        if let Some(cv2) = period.cv2 {
            cv2_memory[index] = cv2;
        }
        if !matches!(info.kind, Kind::Counter | Kind::Histogram)
            || info.cell.is_pinned()
            || !aggregator.is_live(index)
        {
            continue;
        }
        indices.push(index);
        demands.push(Demand {
            kind: info.kind,
            // Known once it has been seen for a tenth of a second (or half
            // the period, when periods are shorter).
            calls_per_sec: (period.observed_secs >= min_observed)
                .then(|| period.calls / period.observed_secs),
            cv2: cv2_memory[index],
        });
    }
    let limits = Limits {
        relative_error: config.targets.relative_error,
        quantile: config.targets.quantile,
        rank_error: config.targets.rank_error,
        window_secs: config.targets.window_secs(),
        min_prob: config.controller.min_rate,
        max_prob: config.controller.max_rate,
        samples_per_sec: budget(shared, observed),
    };
    let allocation = allocator::allocate(&demands, &limits);
    if let Some(base) = allocation.base_rate {
        let base = base as f32;
        if base != shared.pipeline.rate.rate() {
            shared.pipeline.rate.publish(base);
            shared
                .stats
                .rate_changes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let mut steps = vec![None; series.len()];
    for (position, &index) in indices.iter().enumerate() {
        let choice = allocation.choices[position];
        steps[index] = choice.step();
        let inclusion_prob = match choice {
            Choice::Sampled { inclusion_prob, .. } => Some(inclusion_prob),
            Choice::Exact | Choice::Keep => None,
        };
        let target_met = allocation.expected_error[position]
            .map(|error| error <= limits.relative_error * 1.0001);
        aggregator.set_plan(
            index,
            Plan {
                inclusion_prob,
                target_met,
            },
        );
    }
    let base = f64::from(shared.pipeline.rate.rate());
    registry::apply_steps(
        |info| steps.get(info.cell.id().index()).copied().flatten(),
        allocator::step_for(config.sample_rate, base),
        allocator::step_for(config.controller.max_rate, base),
    );
    let misses = allocation.misses(&limits);
    if misses > 0 {
        log::warn!(
            target: "hotmetrics",
            misses = misses,
            relaxed_by = allocation.relaxed_by;
            "sampling budget binds: {misses} series miss their {:.2} % target (errors relaxed {:.2}x to fit {:.0} samples/s)",
            limits.relative_error * 100.0,
            allocation.relaxed_by,
            limits.samples_per_sec
        );
    }
    allocation
}

/// Samples per second the engine may take next period.
fn budget(shared: &Shared, observed: &Observation) -> f64 {
    let config = &shared.config;
    let drained = observed.samples as f64;
    let cost_ns = if drained >= 1_000.0 {
        (observed.busy_fraction * observed.period_secs * 1e9 / drained).max(1.0)
    } else {
        DEFAULT_SAMPLE_COST_NS
    };
    let cpu = config.controller.cpu_budget * 1e9 / cost_ns;
    let rings = shared.pipeline.all_rings().count() as f64;
    let capacity = shared.pipeline.rings[0].capacity() as f64;
    let ring = rings * capacity / 2.0 / config.drain_interval.as_secs_f64().max(1e-6);
    let mut budget = cpu.min(ring);
    let carried = observed.samples_per_sec();
    let controller = &config.controller;
    let middle = (controller.high_water + controller.low_water) / 2.0;
    if observed.drops > 0 {
        let seen = observed.samples.max(1) as f64;
        budget = budget.min(carried * seen / (seen + observed.drops as f64) * middle);
    } else if observed.peak_utilisation > controller.high_water {
        budget = budget.min(carried * middle / observed.peak_utilisation);
    }
    budget.max(1.0)
}
