//! What the engine knows at one instant: every series' estimate, and the
//! engine's own figures.
//!
//! Values are cumulative since the engine was installed. A snapshot is a
//! copy: recording goes on while you read it, and the next snapshot may
//! differ.

use std::sync::Arc;
use std::time::SystemTime;

use hdrhistogram::Histogram;

use super::distribution::Distribution;
use super::stats::Stats;
use crate::hot::cell::Kind;
use crate::hot::registry::Labels;

/// An estimated total with its standard error.
///
/// For a sampled series, `value` is the Horvitz–Thompson estimate Σ v/p over
/// the samples and `std_error` the square root of its unbiased variance
/// estimate Σ v²(1−p)/p². The interval `value ± 1.96·std_error` covers the
/// true total about 95 % of the time. For an exact series `std_error` is 0.
///
/// A sampled series with no sample yet reads `0 ± 0` with `samples == 0`:
/// that is not a confident zero. [`Estimate::calls_upper_bound`] then says
/// how many calls it may have had unseen.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Estimate {
    /// The estimate.
    pub value: f64,
    /// Its standard error.
    pub std_error: f64,
    /// True when every call was recorded (no sampling involved).
    pub exact: bool,
    /// Samples behind the estimate (drained and spilled; 0 for an exact
    /// series).
    pub samples: u64,
    /// For a sampled series with no sample: the 95 % upper bound on the
    /// calls it may have had unseen, `ln 20 / −ln(1 − π) ≈ 3/π` at its
    /// inclusion probability `π` now. `None` otherwise.
    pub calls_upper_bound: Option<f64>,
}

impl Estimate {
    /// An estimate of `value ± std_error` from `samples` samples (`exact`
    /// when every call was recorded).
    pub fn new(value: f64, std_error: f64, exact: bool, samples: u64) -> Self {
        Self {
            value,
            std_error,
            exact,
            samples,
            calls_upper_bound: None,
        }
    }

    /// An exact total.
    pub fn exact(value: f64) -> Self {
        Self::new(value, 0.0, true, 0)
    }

    /// The variance estimate `std_error²`: for a sampled series the
    /// Horvitz–Thompson `Σ v²(1−π)/π²` over its samples (0 for an exact
    /// series). Unlike the standard error it adds up: the variance of a
    /// sum of independent estimates is the sum of their variances, and the
    /// variance of an increase between two snapshots is the increase of
    /// the variance. This is what the exporters send beside every
    /// estimated series (`<name>.variance`, `<name>_variance_total`).
    ///
    /// ```
    /// use hotmetrics::Estimate;
    ///
    /// // Two instances' estimates of the same counter, summed:
    /// let (a, b) = (Estimate::new(1000.0, 30.0, false, 900), Estimate::new(500.0, 40.0, false, 300));
    /// let sum_std_error = (a.variance() + b.variance()).sqrt();
    /// assert_eq!(sum_std_error, 50.0); // not 30 + 40
    /// ```
    pub fn variance(&self) -> f64 {
        self.std_error * self.std_error
    }

    /// `std_error / |value|` (0 for an exact or zero estimate).
    pub fn relative_error(&self) -> f64 {
        if self.value == 0.0 {
            0.0
        } else {
            self.std_error / self.value.abs()
        }
    }

    /// `value ± z·std_error`.
    pub fn interval(&self, z: f64) -> (f64, f64) {
        (
            self.value - z * self.std_error,
            self.value + z * self.std_error,
        )
    }
}

/// A histogram series.
///
/// Read its distribution with [`quantile`](HistogramSnapshot::quantile),
/// [`count_at_or_below`](HistogramSnapshot::count_at_or_below) and
/// [`weighted_values`](HistogramSnapshot::weighted_values); the
/// distribution's storage (log-linear buckets, `2^bits` per octave) is not
/// part of the API. Cloning a snapshot, or taking the next one of a series
/// that did not change, shares the buckets instead of copying them.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HistogramSnapshot {
    /// Estimated number of values recorded.
    pub count: Estimate,
    /// Estimated sum of the values recorded.
    pub sum: Estimate,
    /// Smallest value seen among recorded samples; the true minimum only if
    /// `min_max_exact`.
    pub min: Option<f64>,
    /// Largest value seen among recorded samples; the true maximum only if
    /// `min_max_exact`.
    pub max: Option<f64>,
    /// True when every call of this series was recorded, so `min`/`max` are
    /// the true extremes.
    pub min_max_exact: bool,
    /// Samples behind the estimates (drained and spilled).
    pub samples: u64,
    /// The weighted distribution (each sample counted ≈ 1/p times),
    /// immutable and shared with the engine's later snapshots while the
    /// series does not change.
    pub(crate) distribution: Arc<Distribution>,
}

impl HistogramSnapshot {
    /// The estimated `q`-quantile (`q` in `[0, 1]`) of the recorded values,
    /// from the weighted distribution; `None` when nothing was recorded.
    ///
    /// The value is the midpoint of the bucket the quantile falls in,
    /// within the distribution's relative error of every value of that
    /// bucket (1.6 % at the default `histogram_precision(2)`), and never
    /// outside the recorded `min` and `max`.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if !(0.0..=1.0).contains(&q) {
            return None;
        }
        let value = self.distribution.value_at_quantile(q)?;
        let value = match (self.min, self.max) {
            (Some(min), Some(max)) if min <= max => value.clamp(min, max),
            _ => value,
        };
        Some(value)
    }

    /// Estimated count of recorded values `<= bound`, from the weighted
    /// distribution scaled to `count` (spilled samples, which have no place
    /// in the distribution, are spread in proportion). A bucket counts as
    /// below `bound` when its lowest value is.
    pub fn count_at_or_below(&self, bound: f64) -> f64 {
        let total = self.distribution.total();
        if total == 0 || bound < 0.0 {
            return 0.0;
        }
        let below = self.distribution.count_at_or_below(bound);
        self.count.value * below as f64 / total as f64
    }

    /// Where the histogram's weight sits: `(value, estimated count)` pairs
    /// in increasing order of value, the counts summing to `count.value`
    /// (spilled samples, which have no place in the distribution, are
    /// spread in proportion; a histogram whose every sample spilled puts
    /// its whole count at its mean). A value is the lowest of its bucket
    /// of the underlying distribution (buckets 2⁻⁵ of their lowest value
    /// wide at the default precision). This is what the exporters
    /// re-bucket.
    ///
    /// ```
    /// let engine = hotmetrics::Engine::builder().install().unwrap();
    /// let latency = hotmetrics::histogram("doc.weighted_values").critical();
    /// for value in [1.0, 2.0, 2.0, 700.0] {
    ///     latency.record(value);
    /// }
    /// let snapshot = engine.snapshot();
    /// let histogram = snapshot.histogram("doc.weighted_values", &[]).unwrap();
    /// let below_10: f64 = histogram
    ///     .weighted_values()
    ///     .iter()
    ///     .filter(|(value, _)| *value < 10.0)
    ///     .map(|(_, count)| count)
    ///     .sum();
    /// assert_eq!(below_10, 3.0);
    /// # engine.shutdown().unwrap();
    /// ```
    pub fn weighted_values(&self) -> Vec<(f64, f64)> {
        let total = self.distribution.total();
        let count = self.count.value.max(0.0);
        if total == 0 {
            // Everything spilled: the only place we know is the mean.
            return match self.mean() {
                Some(mean) if count > 0.0 => vec![(mean.max(0.0), count)],
                _ => Vec::new(),
            };
        }
        let scale = count / total as f64;
        self.distribution
            .iter()
            .map(|(value, weight)| (value, weight as f64 * scale))
            .collect()
    }

    /// Bytes its distribution occupies (shared with the other snapshots
    /// that hold the same, unchanged, distribution): its buckets, one to
    /// eight bytes each, and their bookkeeping.
    ///
    /// ```
    /// let engine = hotmetrics::Engine::builder().install().unwrap();
    /// let latency = hotmetrics::histogram("doc.distribution_bytes").critical();
    /// for value in [1.0, 1e3, 1e6, 1e9] {
    ///     latency.record(value);
    /// }
    /// let snapshot = engine.snapshot();
    /// let histogram = snapshot.histogram("doc.distribution_bytes", &[]).unwrap();
    /// // 30 octaves of 32 one-byte counts, and a header.
    /// assert!(histogram.distribution_bytes() < 1200);
    /// # engine.shutdown().unwrap();
    /// ```
    pub fn distribution_bytes(&self) -> usize {
        self.distribution.bytes()
    }

    /// The weighted distribution as a 3-significant-digit HDR histogram
    /// (built on first call from the buckets, so no more precise than
    /// they are) and the value of one of its units.
    #[doc(hidden)]
    #[deprecated(
        note = "exposes the `hdrhistogram` crate, which is not part of hotmetrics' API: use `quantile`, `count_at_or_below` or `weighted_values`"
    )]
    pub fn distribution(&self) -> (&Histogram<u64>, f64) {
        (
            self.distribution.legacy_histogram(),
            self.distribution.resolution(),
        )
    }

    /// Mean of the recorded values (`sum / count`), if any.
    pub fn mean(&self) -> Option<f64> {
        (self.count.value > 0.0).then(|| self.sum.value / self.count.value)
    }
}

/// The data of one series.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum MetricValue {
    /// A counter's estimated total.
    Counter(Estimate),
    /// An up-down counter's estimated total.
    UpDown(Estimate),
    /// A gauge's last value.
    Gauge(f64),
    /// A histogram.
    Histogram(HistogramSnapshot),
}

/// One series in a snapshot.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SeriesSnapshot {
    /// Metric name.
    pub name: Arc<str>,
    /// Labels, sorted by key.
    pub labels: Labels,
    /// Its data.
    pub value: MetricValue,
    /// Unit the metric was declared with (OpenTelemetry instruments'
    /// `with_unit`), for exporters; `None` when undeclared.
    pub unit: Option<Arc<str>>,
    /// Description the metric was declared with (OpenTelemetry instruments'
    /// `with_description`), for exporters; `None` when undeclared.
    pub description: Option<Arc<str>>,
    /// The probability each call of the series is sampled with now; `None`
    /// when every call is recorded.
    pub inclusion_prob: Option<f64>,
    /// Under error targeting: whether the series' sampling now is expected
    /// to meet its accuracy target (`false` when the sampling budget binds).
    /// `None` in the other modes, for exact series, and for a series whose
    /// rate is not known yet.
    pub target_met: Option<bool>,
    /// When the series started, if after the snapshot's
    /// [`start_time`](Snapshot::start_time): a label set that was retired
    /// after its idle timeout ([`Builder::idle_timeout`]) and recorded again
    /// starts over from zero then. Cumulative exports take it as the
    /// series' start time.
    ///
    /// [`Builder::idle_timeout`]: crate::Builder::idle_timeout
    pub start_time: Option<SystemTime>,
}

impl SeriesSnapshot {
    /// A series with no declared unit or description and no sampling
    /// figures (exporter tests build snapshots with it).
    pub fn new(name: impl Into<Arc<str>>, labels: Labels, value: MetricValue) -> Self {
        Self {
            name: name.into(),
            labels,
            value,
            unit: None,
            description: None,
            inclusion_prob: None,
            target_met: None,
            start_time: None,
        }
    }

    /// The instrument kind.
    pub fn kind(&self) -> Kind {
        match self.value {
            MetricValue::Counter(_) => Kind::Counter,
            MetricValue::UpDown(_) => Kind::UpDown,
            MetricValue::Gauge(_) => Kind::Gauge,
            MetricValue::Histogram(_) => Kind::Histogram,
        }
    }

    /// The value of label `key`, if present.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| &**k == key)
            .map(|(_, v)| &**v)
    }
}

/// Every series and the engine's figures at one instant.
///
/// # Lookups
///
/// One rule: the typed getters ([`counter`](Snapshot::counter),
/// [`updown`](Snapshot::updown), [`gauge`](Snapshot::gauge),
/// [`histogram`](Snapshot::histogram)) and [`series`](Snapshot::series)
/// return the one series with exactly the labels given (order does not
/// matter) and, for the typed ones, of exactly that kind;
/// [`find`](Snapshot::find) is the search: every series whose labels
/// include the ones given.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Snapshot {
    /// The series, user metrics first, then the engine's own `hotmetrics.*`.
    pub series: Vec<SeriesSnapshot>,
    /// The engine's own figures.
    pub stats: Stats,
    /// When the engine was installed (start of cumulative values).
    pub start_time: SystemTime,
    /// When this snapshot was taken.
    pub time: SystemTime,
}

impl Snapshot {
    /// A snapshot of `series` and `stats` taken at `time`, cumulative since
    /// `start_time`: for exporter tests and tools that build snapshots by
    /// hand (the engine's own come from
    /// [`Engine::snapshot`](crate::Engine::snapshot)).
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use hotmetrics::{Estimate, MetricValue, SeriesSnapshot, Snapshot, Stats};
    ///
    /// let start = SystemTime::UNIX_EPOCH;
    /// let snapshot = Snapshot::new(
    ///     vec![SeriesSnapshot::new("sent", Vec::new().into(), MetricValue::Counter(Estimate::exact(3.0)))],
    ///     Stats::default(),
    ///     start,
    ///     start + Duration::from_secs(10),
    /// );
    /// assert_eq!(snapshot.counter("sent", &[]).unwrap().value, 3.0);
    /// ```
    pub fn new(
        series: Vec<SeriesSnapshot>,
        stats: Stats,
        start_time: SystemTime,
        time: SystemTime,
    ) -> Self {
        Self {
            series,
            stats,
            start_time,
            time,
        }
    }

    /// Every series named `name` whose labels include all of `labels`
    /// (a subset match: `&[]` gives every series of the metric). The one
    /// lookup that matches a subset; the typed getters below take the
    /// exact label set.
    ///
    /// ```
    /// # use hotmetrics::{Estimate, MetricValue, SeriesSnapshot, Snapshot, Stats};
    /// # let labels = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect::<Vec<_>>().into();
    /// # let counter = |route, status, n| SeriesSnapshot::new("http.requests", labels(&[("route", route), ("status", status)]), MetricValue::Counter(Estimate::exact(n)));
    /// # let now = std::time::SystemTime::now();
    /// let snapshot = Snapshot::new(
    ///     vec![counter("/a", "200", 5.0), counter("/a", "500", 1.0), counter("/b", "200", 7.0)],
    ///     Stats::default(), now, now,
    /// );
    /// assert_eq!(snapshot.find("http.requests", &[("route", "/a")]).count(), 2);
    /// assert_eq!(snapshot.counter("http.requests", &[("route", "/a")]), None); // not the exact set
    /// assert_eq!(
    ///     snapshot.counter("http.requests", &[("status", "500"), ("route", "/a")]).unwrap().value,
    ///     1.0
    /// );
    /// ```
    pub fn find<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a SeriesSnapshot> + 'a {
        self.series.iter().filter(move |series| {
            &*series.name == name
                && labels
                    .iter()
                    .all(|(key, value)| series.label(key) == Some(*value))
        })
    }

    /// The series `name` whose labels are exactly `labels` (in any order),
    /// of whatever kind.
    pub fn series(&self, name: &str, labels: &[(&str, &str)]) -> Option<&SeriesSnapshot> {
        self.series.iter().find(|series| {
            &*series.name == name
                && series.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(key, value)| series.label(key) == Some(*value))
        })
    }

    /// The counter `name` with exactly `labels` (in any order); `None` if
    /// there is none, or if the series is not a counter (an up-down
    /// counter is read with [`updown`](Snapshot::updown)).
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> Option<Estimate> {
        self.series(name, labels)
            .and_then(|series| match series.value {
                MetricValue::Counter(estimate) => Some(estimate),
                _ => None,
            })
    }

    /// The up-down counter `name` with exactly `labels` (in any order).
    pub fn updown(&self, name: &str, labels: &[(&str, &str)]) -> Option<Estimate> {
        self.series(name, labels)
            .and_then(|series| match series.value {
                MetricValue::UpDown(estimate) => Some(estimate),
                _ => None,
            })
    }

    /// The gauge `name` with exactly `labels` (in any order).
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.series(name, labels)
            .and_then(|series| match series.value {
                MetricValue::Gauge(value) => Some(value),
                _ => None,
            })
    }

    /// The histogram `name` with exactly `labels` (in any order).
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Option<&HistogramSnapshot> {
        self.series(name, labels)
            .and_then(|series| match &series.value {
                MetricValue::Histogram(histogram) => Some(histogram),
                _ => None,
            })
    }
}
