//! Flusher-side aggregation: every drained sample weighted by its own `1/p`.
//!
//! * Counters and up-down counters: the Horvitz–Thompson total Σ v/p and its
//!   unbiased variance estimate Σ v²(1−p)/p² (independent Bernoulli trials).
//! * Histograms: the same for the count (v = 1) and the sum, and
//!   log-linear buckets holding the weighted distribution
//!   (`report/distribution`), lent to snapshots without a copy (`live.rs`).
//!   A weight 1/p is rarely whole; each series carries the fractional
//!   remainder into its next sample, so the distribution's total stays
//!   within one of Σ 1/p.
//! * Spilled samples arrive as totals (see `spill.rs`) and add to the same
//!   sums; they have no place in the distribution.
//!
//! Only the thread holding the aggregator's lock drains, which is what makes
//! it the ring's single consumer.
//!
//! With an idle timeout, [`Aggregator::retire_idle`] finds the series that
//! nothing recorded for that long (no sample drained or spilled, no exact
//! call, no gauge set) and retires them through the registry: they leave
//! the snapshot, and a sample of a retired series that still arrives is
//! counted in `retired_values`, not added anywhere. A series that restarts
//! in its cell (revived, or a recycled cell) starts over here from zero.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::allocator;
use super::catalog;
use super::live::LiveDistribution;
use crate::hot::cell::Kind;
use crate::hot::exact::{self, Totals};
use crate::hot::registry::{self, Labels, SeriesInfo};
use crate::hot::sample::Sample;
use crate::hot::spill::SpillTotals;
use crate::report::distribution::bits_for_precision;
use crate::report::snapshot::{Estimate, HistogramSnapshot, MetricValue, SeriesSnapshot};

/// Running totals of one series.
#[derive(Debug)]
struct SeriesAgg {
    /// Σ v/p (histograms: Σ v/p of values).
    sum: f64,
    /// Σ v²(1−p)/p².
    sum_var: f64,
    /// Histograms: Σ 1/p and Σ (1−p)/p².
    count: f64,
    count_var: f64,
    samples: u64,
    /// Some sample had p < 1.
    inexact: bool,
    min: f64,
    max: f64,
    /// Histograms only: weighted distribution and the carried remainder.
    distribution: Option<LiveDistribution>,
    /// The fraction of a unit of weight carried to the next sample, in
    /// units of 2⁻⁶⁴.
    carry: u64,
    /// Health and allocation: Σ 1/p, Σ v/p and Σ v²/p of the samples
    /// drained (Σ 1/p also of those spilled) since the last `take_period`,
    /// and the exact-call count seen then.
    period_weight: f64,
    period_value: f64,
    period_square: f64,
    exact_seen: u64,
    /// What the allocator last decided for it (see `Aggregator::plan`).
    plan: Plan,
    /// The last inclusion probability of its samples, with its weight
    /// `1/p` and variance factor `(1−p)/p²`: a series keeps its
    /// probability for a control period, so the divisions are made once
    /// per change, however samples of different series interleave.
    last_prob: f32,
    last_weight: f64,
    last_var_factor: f64,
    /// Exported (not retired).
    live: bool,
    /// The idle check: when it last saw the series recorded, and the
    /// sample and exact-call counts it saw then.
    last_active: Instant,
    idle_samples: u64,
    idle_calls: u64,
    /// `last_weight` in 64.64 fixed point: its whole part and its
    /// fraction in units of 2⁻⁶⁴ (rounded to nearest: off by at most
    /// 2⁻⁶⁵ a sample, so the distribution's total drifts from Σ 1/p by
    /// less than one in 10¹⁹ samples).
    last_whole: u64,
    last_fraction: u64,
}

/// What the allocator last decided for a series, for the snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Plan {
    /// Its inclusion probability now (`None`: exact, or not decided).
    pub(crate) inclusion_prob: Option<f64>,
    /// Whether its expected error meets the target (`None`: no target).
    pub(crate) target_met: Option<bool>,
}

/// One series' figures over the period just ended.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct PeriodSeries {
    /// Estimated calls: Σ 1/p of its samples plus its exact calls.
    pub(crate) calls: f64,
    /// Squared coefficient of variation of its values, from its samples
    /// (`None` without samples).
    pub(crate) cv2: Option<f64>,
    /// Seconds of the period the series existed for (registered during
    /// the period: since then).
    pub(crate) observed_secs: f64,
}

impl SeriesAgg {
    /// A series' totals from zero; a retired one holds no distribution.
    fn new(kind: Kind, bits: u8, resolution: f64, live: bool) -> Self {
        let distribution =
            (live && kind == Kind::Histogram).then(|| LiveDistribution::new(bits, resolution));
        Self {
            sum: 0.0,
            sum_var: 0.0,
            count: 0.0,
            count_var: 0.0,
            samples: 0,
            inexact: false,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            distribution,
            carry: 0,
            period_weight: 0.0,
            period_value: 0.0,
            period_square: 0.0,
            exact_seen: 0,
            plan: Plan::default(),
            last_prob: 1.0,
            last_weight: 1.0,
            last_var_factor: 0.0,
            live,
            last_active: Instant::now(),
            idle_samples: 0,
            idle_calls: 0,
            last_whole: 1,
            last_fraction: 0,
        }
    }
}

/// The aggregate state of an engine.
#[derive(Debug)]
pub(crate) struct Aggregator {
    infos: Vec<SeriesInfo>,
    series: Vec<SeriesAgg>,
    /// Histograms' mantissa bits (`2^bits` buckets per octave).
    bits: u8,
    resolution: f64,
    /// Samples absorbed from rings.
    pub(crate) samples_recorded: u64,
    /// Values the distribution could not hold (none since every value
    /// the hot side accepts has a bucket; kept for the stats' sum).
    pub(crate) rejected: u64,
    /// Last `samples_spilled` seen: spills are collected only when it moved.
    dropped_seen: u64,
    /// The registry's revision at the last sync.
    revision_seen: u64,
    /// Samples (drained or spilled) of series already retired.
    pub(crate) retired_values: u64,
    /// Exact calls of series since retired (their totals were cleared).
    retired_exact_calls: u64,
    /// Takes the registry's list of restarted series (the engine's
    /// aggregator); a test's own aggregator leaves it (see
    /// `registry::sync`).
    takes_restarts: bool,
}

impl Aggregator {
    /// An aggregator whose histograms keep `precision` decimal digits
    /// (see `report/distribution`) and count values below `resolution`
    /// as 0.
    pub(crate) fn new(precision: u8, resolution: f64) -> Self {
        Self {
            infos: Vec::new(),
            series: Vec::new(),
            bits: bits_for_precision(precision),
            resolution,
            samples_recorded: 0,
            rejected: 0,
            dropped_seen: 0,
            revision_seen: 0,
            retired_values: 0,
            retired_exact_calls: 0,
            takes_restarts: true,
        }
    }

    /// An aggregator of a test's own, beside the engine's: it reads the
    /// registry's restarts without taking them from the engine's.
    #[cfg(test)]
    pub(crate) fn beside_the_engine(precision: u8, resolution: f64) -> Self {
        Self {
            takes_restarts: false,
            ..Self::new(precision, resolution)
        }
    }

    /// Learns series registered since the last call, and starts over those
    /// that restarted in their cells.
    fn sync(&mut self) {
        self.revision_seen = registry::revision();
        let (new, restarted) = registry::sync(self.infos.len(), self.takes_restarts);
        for (info, live) in restarted {
            let index = info.cell.id().index();
            if !self.takes_restarts && self.infos[index].created == info.created {
                // Left in the list by an earlier sync of this reader (it
                // does not take them): already applied.
                continue;
            }
            self.series[index] = SeriesAgg::new(info.kind, self.bits, self.resolution, live);
            self.infos[index] = info;
        }
        for (info, live) in new {
            self.series
                .push(SeriesAgg::new(info.kind, self.bits, self.resolution, live));
            self.infos.push(info);
        }
    }

    /// True if series `index` is known and not retired.
    pub(crate) fn is_live(&self, index: usize) -> bool {
        self.series.get(index).is_some_and(|agg| agg.live)
    }

    /// Adds one drained sample.
    pub(crate) fn absorb(&mut self, sample: Sample) {
        let index = sample.id.index();
        if index >= self.series.len() {
            self.sync();
            if index >= self.series.len() {
                return;
            }
        }
        if !self.series[index].live {
            // Revived since the last sync, or a straggler of a retired
            // series (a call that raced its retirement).
            if registry::revision() != self.revision_seen {
                self.sync();
            }
            if !self.series[index].live {
                self.retired_values += 1;
                return;
            }
        }
        self.samples_recorded += 1;
        let agg = &mut self.series[index];
        let p = f64::from(sample.inclusion_prob);
        let v = sample.value;
        // A series' samples nearly all carry its probability in force, so
        // the two divisions are made once per change, not per sample.
        if sample.inclusion_prob != agg.last_prob {
            agg.last_prob = sample.inclusion_prob;
            agg.last_weight = 1.0 / p;
            agg.last_var_factor = (1.0 - p) / (p * p);
            // 1/p ≥ 1 and finite (p in (0, 1]); its fraction is exact in
            // f64, and × 2⁶⁴ stays below 2⁶⁴.
            let whole = agg.last_weight.floor();
            agg.last_whole = whole as u64;
            agg.last_fraction =
                ((agg.last_weight - whole) * 18_446_744_073_709_551_616.0).round() as u64;
        }
        let (weight, var_factor) = (agg.last_weight, agg.last_var_factor);
        agg.samples += 1;
        agg.period_weight += weight;
        agg.period_value += v * weight;
        agg.period_square += v * v * weight;
        agg.inexact |= p < 1.0;
        agg.sum += v * weight;
        agg.sum_var += v * v * var_factor;
        // Histograms (only they have a distribution).
        let Some(distribution) = agg.distribution.as_mut() else {
            return;
        };
        agg.count += weight;
        agg.count_var += var_factor;
        // Branches, rarely taken once the extremes are seen, rather than
        // `f64::min`/`max` on two more chains through memory.
        if v < agg.min {
            agg.min = v;
        }
        if v > agg.max {
            agg.max = v;
        }
        // The fraction carried in fixed point: an integer add and its
        // carry bit, where floating point put two conversions on the
        // dependency chain that runs through `carry` from sample to sample.
        let (carry, overflow) = agg.carry.overflowing_add(agg.last_fraction);
        agg.carry = carry;
        // At least 1 (1/p ≥ 1): no branch on it.
        let whole = agg.last_whole + u64::from(overflow);
        distribution.record_n(v, whole);
    }

    /// Collects spill totals if any producer spilled since the last look
    /// (`dropped` is the pipeline's counter), or always when `force`.
    pub(crate) fn collect_spills(&mut self, dropped: u64, force: bool) {
        if !force && dropped == self.dropped_seen {
            return;
        }
        self.dropped_seen = dropped;
        self.sync();
        for index in 0..self.infos.len() {
            let totals = self.infos[index].cell.spill.take();
            // A take racing a fold may get some of its fields and not its
            // count (counted last): keep every part, or the sums lose what
            // the count alone would not show.
            let touched = totals.samples > 0
                || totals.weight != 0.0
                || totals.weight_var != 0.0
                || totals.value != 0.0
                || totals.value_var != 0.0
                || totals.min.is_finite()
                || totals.max.is_finite()
                || totals.inexact;
            if touched && !self.series[index].live {
                self.retired_values += totals.samples.max(1);
            } else if touched {
                self.add_spill(index, &totals);
            }
        }
    }

    fn add_spill(&mut self, index: usize, totals: &SpillTotals) {
        let kind = self.infos[index].kind;
        let agg = &mut self.series[index];
        agg.samples += totals.samples;
        agg.period_weight += totals.weight;
        agg.inexact |= totals.inexact;
        agg.sum += totals.value;
        agg.sum_var += totals.value_var;
        if kind == Kind::Histogram {
            agg.count += totals.weight;
            agg.count_var += totals.weight_var;
            agg.min = agg.min.min(totals.min);
            agg.max = agg.max.max(totals.max);
        }
    }

    /// Builds the user series of a snapshot: aggregates plus the exact
    /// totals (cells' bases and the live threads' slots) and gauges.
    ///
    /// `base_rate` is the rate the threads' countdowns are drawn at now: a
    /// sampled series' probability is `1 − (1 − base_rate)^step`.
    pub(crate) fn series_snapshot(&mut self, base_rate: f64) -> Vec<SeriesSnapshot> {
        self.sync();
        let (bits, resolution) = (self.bits, self.resolution);
        let descriptions = catalog::descriptions_now();
        let mut exact_totals = Vec::new();
        exact::totals_by_id(self.infos.iter().map(|info| info.cell), &mut exact_totals);
        let mut out = Vec::with_capacity(self.infos.len());
        for ((info, agg), totals) in self.infos.iter().zip(&mut self.series).zip(&exact_totals) {
            if !agg.live {
                continue;
            }
            let cell = info.cell;
            let inclusion_prob = (info.kind != Kind::Gauge && !cell.is_exact())
                .then(|| allocator::prob_of(base_rate, cell.step()));
            // A sampled series with no sample yet: how many calls it may
            // have had unseen (95 %: (1 − π)^n ≥ 0.05).
            let calls_upper_bound = inclusion_prob
                .filter(|_| agg.samples == 0)
                .map(|prob| 20f64.ln() / -(-prob).ln_1p());
            let samples = agg.samples;
            let estimate = |value: f64, variance: f64, exact: bool| {
                let mut estimate = Estimate::new(value, variance.max(0.0).sqrt(), exact, samples);
                estimate.calls_upper_bound = calls_upper_bound.filter(|_| !exact);
                estimate
            };
            let value = match info.kind {
                Kind::Counter | Kind::UpDown => {
                    // Exact once something was recorded and nothing sampled; a
                    // series with no data yet is not claimed exact (its type on
                    // the wire must not flip once samples arrive).
                    let recorded = agg.samples > 0 || totals.calls > 0 || cell.is_exact();
                    let estimate = estimate(
                        agg.sum + totals.value(info.kind),
                        agg.sum_var,
                        !agg.inexact && recorded,
                    );
                    if info.kind == Kind::Counter {
                        MetricValue::Counter(estimate)
                    } else {
                        MetricValue::UpDown(estimate)
                    }
                }
                Kind::Gauge => {
                    let value = cell.gauge.load();
                    if value.is_nan() {
                        continue;
                    }
                    MetricValue::Gauge(value)
                }
                Kind::Histogram => {
                    let exact = !agg.inexact && (agg.samples > 0 || cell.is_exact());
                    // Unchanged since the last snapshot: the same `Arc`.
                    let distribution = agg
                        .distribution
                        .get_or_insert_with(|| LiveDistribution::new(bits, resolution))
                        .snapshot();
                    MetricValue::Histogram(HistogramSnapshot {
                        count: estimate(agg.count, agg.count_var, exact),
                        sum: estimate(agg.sum, agg.sum_var, exact),
                        min: (agg.samples > 0).then_some(agg.min),
                        max: (agg.samples > 0).then_some(agg.max),
                        min_max_exact: exact,
                        samples: agg.samples,
                        distribution,
                    })
                }
            };
            let declared = descriptions.get(&info.name);
            out.push(SeriesSnapshot {
                name: info.name.clone(),
                labels: info.labels.clone(),
                value,
                unit: declared.and_then(|declared| declared.unit.clone()),
                description: declared.and_then(|declared| declared.description.clone()),
                inclusion_prob,
                target_met: agg.plan.target_met.filter(|_| inclusion_prob.is_some()),
                start_time: info.restarted,
            });
        }
        out
    }
}

impl Aggregator {
    /// Each series' figures (index = series id) since the last call, into
    /// `out`; starts the next period. Read by the health monitor (arrival
    /// rates) and the allocator (rates and value spread).
    ///
    /// `period_started` is when the period began.
    pub(crate) fn take_period(&mut self, period_started: Instant, out: &mut Vec<PeriodSeries>) {
        self.sync();
        out.clear();
        let now = Instant::now();
        let mut exact_totals = Vec::new();
        exact::totals_by_id(self.infos.iter().map(|info| info.cell), &mut exact_totals);
        for ((info, agg), totals) in self.infos.iter().zip(&mut self.series).zip(&exact_totals) {
            if !agg.live {
                out.push(PeriodSeries::default());
                continue;
            }
            let exact = totals.calls;
            let new_exact = exact.saturating_sub(agg.exact_seen);
            agg.exact_seen = exact;
            let cv2 = (agg.period_weight > 0.0 && agg.period_value > 0.0).then(|| {
                let mean = agg.period_value / agg.period_weight;
                let square = agg.period_square / agg.period_weight;
                (square / (mean * mean) - 1.0).max(0.0)
            });
            out.push(PeriodSeries {
                calls: agg.period_weight + new_exact as f64,
                cv2,
                observed_secs: now
                    .saturating_duration_since(period_started.max(info.created))
                    .as_secs_f64(),
            });
            agg.period_weight = 0.0;
            agg.period_value = 0.0;
            agg.period_square = 0.0;
        }
    }

    /// The series known to the aggregator, in id order.
    pub(crate) fn infos(&self) -> &[SeriesInfo] {
        &self.infos
    }

    /// Records what the allocator decided for series `index`.
    pub(crate) fn set_plan(&mut self, index: usize, plan: Plan) {
        if let Some(agg) = self.series.get_mut(index) {
            agg.plan = plan;
        }
    }

    /// Name and labels of series `index`, if known.
    pub(crate) fn series_name(&self, index: usize) -> Option<(Arc<str>, Labels)> {
        self.infos
            .get(index)
            .map(|info| (info.name.clone(), info.labels.clone()))
    }

    /// Running totals of series `id` (Σ v/p, Σ v²(1−p)/p², Σ 1/p,
    /// Σ (1−p)/p²), for tests that difference them around a trial.
    #[cfg(test)]
    pub(crate) fn totals(&mut self, id: crate::hot::sample::MetricId) -> Option<[f64; 4]> {
        self.sync();
        self.series
            .get(id.index())
            .map(|agg| [agg.sum, agg.sum_var, agg.count, agg.count_var])
    }

    /// Bytes held by the histograms' distributions (live and last
    /// published; see `LiveDistribution::bytes`).
    pub(crate) fn histogram_bytes(&self) -> u64 {
        self.series
            .iter()
            .filter_map(|agg| agg.distribution.as_ref())
            .map(|distribution| distribution.bytes() as u64)
            .sum()
    }

    /// Bytes held by the distribution of series `id` (live and last
    /// published), for tests.
    #[cfg(test)]
    pub(crate) fn histogram_bytes_of(&self, id: crate::hot::sample::MetricId) -> usize {
        self.series
            .get(id.index())
            .and_then(|agg| agg.distribution.as_ref())
            .map_or(0, LiveDistribution::bytes)
    }

    /// Exact calls recorded: cells' bases plus live threads' slots, and
    /// those of series retired since.
    pub(crate) fn exact_calls(&self) -> u64 {
        let mut exact_totals = Vec::new();
        exact::totals_by_id(self.infos.iter().map(|info| info.cell), &mut exact_totals);
        exact_totals
            .iter()
            .map(|totals: &Totals| totals.calls)
            .fold(self.retired_exact_calls, u64::wrapping_add)
    }

    /// Retires the series nothing recorded for `timeout` as of `now` (see
    /// the module docs); returns how many. A series counts as recorded
    /// when the check sees its sample count (drained and spilled) or its
    /// exact-call count move, or a gauge set, since its last look; it is
    /// retired `timeout` after the look that last saw it move, so never
    /// sooner than `timeout` after its last call.
    pub(crate) fn retire_idle(&mut self, now: Instant, timeout: Duration) -> usize {
        self.sync();
        let mut exact_totals = Vec::new();
        exact::totals_by_id(self.infos.iter().map(|info| info.cell), &mut exact_totals);
        let mut idle = Vec::new();
        let rows = self.infos.iter().zip(&mut self.series).zip(&exact_totals);
        for (index, ((info, agg), totals)) in rows.enumerate() {
            if !agg.live || info.overflow {
                continue;
            }
            let gauge_set = info.cell.take_gauge_set();
            if gauge_set || agg.samples != agg.idle_samples || totals.calls != agg.idle_calls {
                agg.last_active = now;
                agg.idle_samples = agg.samples;
                agg.idle_calls = totals.calls;
            } else if now.saturating_duration_since(agg.last_active) >= timeout {
                idle.push(index);
            }
        }
        if idle.is_empty() {
            return 0;
        }
        let retired = registry::retire(&idle);
        for &(index, before) in &retired {
            let agg = &self.series[index];
            // Exact calls between the look above and the retirement raced
            // it: counted, not exported.
            self.retired_values += before.calls.saturating_sub(agg.idle_calls);
            self.retired_exact_calls = self.retired_exact_calls.wrapping_add(before.calls);
            self.series[index] =
                SeriesAgg::new(self.infos[index].kind, self.bits, self.resolution, false);
        }
        retired.len()
    }
}
