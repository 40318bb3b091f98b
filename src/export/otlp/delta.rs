//! Delta temporality from cumulative snapshots.
//!
//! The engine's snapshots are cumulative. For delta output the exporter
//! keeps, per counter and histogram series, the cumulative state of the
//! last snapshot the backend *accepted*, and sends `current − accepted`
//! over `[accepted time, current time]`; the variance series of an
//! estimate the same way (the variance of an increase is the increase of
//! the variance). A failed export does not move
//! that baseline, so its data rides along in the next export's delta (with
//! a start time that covers the whole gap): nothing is lost and nothing is
//! queued. Memory is one entry per series, whatever the length of an
//! outage. A permanent rejection does move it: that data is given up rather
//! than re-sent forever.
//!
//! Histograms keep the accepted snapshot's distribution by `Arc` (the
//! engine never mutates a distribution once it is in a snapshot), so the
//! baseline costs no copy.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use crate::hot::registry::Labels;
use crate::report::snapshot::{Estimate, HistogramSnapshot, MetricValue, Snapshot};

/// The accepted cumulative state of one series.
#[derive(Clone, Debug)]
pub(crate) enum Baseline {
    Counter(Estimate),
    Histogram(HistogramSnapshot),
}

/// Accepted state of every delta series.
#[derive(Debug, Default)]
pub(crate) struct DeltaState {
    /// Time of the last accepted snapshot; `None` before the first.
    accepted_at: Option<SystemTime>,
    series: HashMap<(Arc<str>, Labels), Baseline>,
}

impl DeltaState {
    /// Start of the interval the next delta covers.
    pub(crate) fn start_time(&self, snapshot: &Snapshot) -> SystemTime {
        self.accepted_at.unwrap_or(snapshot.start_time)
    }

    /// The accepted state of a series, if it was ever accepted.
    pub(crate) fn baseline(&self, name: &Arc<str>, labels: &Labels) -> Option<&Baseline> {
        // Keys are compared by content; cloning two `Arc`s is cheap.
        self.series.get(&(name.clone(), labels.clone()))
    }

    /// The backend accepted (or refused for good) `snapshot`: it becomes
    /// the baseline. Series that are no longer in it (retired after their
    /// idle timeout) are forgotten, so memory follows the live series.
    pub(crate) fn accept(&mut self, snapshot: &Snapshot) {
        self.accepted_at = Some(snapshot.time);
        let mut accepted = HashMap::with_capacity(snapshot.series.len());
        for series in &snapshot.series {
            let baseline = match &series.value {
                MetricValue::Counter(estimate) => Baseline::Counter(*estimate),
                MetricValue::Histogram(histogram) => Baseline::Histogram(histogram.clone()),
                _ => continue,
            };
            accepted.insert((series.name.clone(), series.labels.clone()), baseline);
        }
        self.series = accepted;
    }

    /// Series held (for the memory bound tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.series.len()
    }
}

/// The variance of `current − accepted`: the variance added since the
/// accepted export (samples are independent, so variances add), taken
/// from the variances themselves so that the deltas sum back to the
/// cumulative variance.
pub(crate) fn variance_delta(current: &Estimate, accepted: Option<&Estimate>) -> f64 {
    let before = accepted.map_or(0.0, Estimate::variance);
    (current.variance() - before).max(0.0)
}

/// `current − accepted` of a counter; exact only if both are.
pub(crate) fn counter_delta(current: &Estimate, accepted: Option<&Estimate>) -> Estimate {
    match accepted {
        None => *current,
        Some(accepted) => Estimate {
            // A Horvitz–Thompson total only grows; guard against float noise.
            value: (current.value - accepted.value).max(0.0),
            // Independent samples: variances add, so the interval's
            // variance is the difference of the two.
            std_error: (current.std_error.powi(2) - accepted.std_error.powi(2))
                .max(0.0)
                .sqrt(),
            exact: current.exact && accepted.exact,
            samples: current.samples.saturating_sub(accepted.samples),
            calls_upper_bound: current.calls_upper_bound,
        },
    }
}
