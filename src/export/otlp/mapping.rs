//! From a [`Snapshot`] to an OTLP `ExportMetricsServiceRequest`.
//!
//! | hotmetrics | OTLP |
//! |---|---|
//! | counter | `Sum`, monotonic, cumulative (or delta) |
//! | up-down counter | `Sum`, not monotonic, always cumulative |
//! | gauge | `Gauge` |
//! | histogram | explicit-bucket `Histogram` or base-2 `ExponentialHistogram` |
//! | labels | attributes (`otel.metric.overflow` as a boolean) |
//! | an estimate's variance | `Sum`, monotonic, double: `<name>.variance`, `<name>.count.variance`, `<name>.sum.variance` |
//!
//! Estimated values go out as doubles. Values of exact series (every call
//! recorded) go out as integers where the point type has one and the value
//! is whole. A histogram's min and max are sent only when they are exact;
//! under delta temporality, only when the interval's extreme is known (the
//! cumulative extreme moved during it). Series of one name share a
//! `Metric`. Every estimated value is followed by its variance series
//! unless the exporter was built without (`export/variance.rs`).

use std::collections::{HashMap, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, ExponentialHistogram, Gauge,
    Histogram, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::config::{Config, HistogramAggregation};
use super::delta::{counter_delta, variance_delta, Baseline, DeltaState};
use super::histogram::HistogramView;
use crate::export::variance;
use crate::hot::registry::Labels;
use crate::hot::registry::OVERFLOW_KEY;
use crate::report::snapshot::{Estimate, MetricValue, SeriesSnapshot, Snapshot};

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
    })
}

fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

fn attributes(labels: &Labels) -> Vec<KeyValue> {
    labels
        .iter()
        .map(|(key, value)| {
            if &**key == OVERFLOW_KEY && &**value == "true" {
                KeyValue {
                    key: key.to_string(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::BoolValue(true)),
                    }),
                    ..Default::default()
                }
            } else {
                string_attribute(key, value)
            }
        })
        .collect()
}

/// An exact whole value as an integer, anything else as a double.
fn number(estimate: &Estimate) -> number_data_point::Value {
    let value = estimate.value;
    if estimate.exact && value.fract() == 0.0 && value.abs() < 9.007_199_254_740_992e15 {
        number_data_point::Value::AsInt(value as i64)
    } else {
        number_data_point::Value::AsDouble(value)
    }
}

/// The time bounds of the points of one request.
struct Times {
    now: u64,
    /// Start of cumulative points: the engine's start, stable.
    cumulative_start: u64,
    /// Start of delta points: the last accepted export.
    delta_start: u64,
}

/// Builds requests for one exporter configuration.
pub(crate) struct Mapper<'a> {
    pub(crate) config: &'a Config,
    /// `Some` under delta temporality.
    pub(crate) delta: Option<&'a DeltaState>,
}

/// Metrics of a request, grouped by name in first-seen order.
#[derive(Default)]
struct Metrics<'a> {
    list: Vec<(String, Data)>,
    by_name: HashMap<String, usize>,
    /// Declared unit and description per name.
    described: HashMap<String, (String, String)>,
    /// Names of the program's own metrics, which no variance series takes.
    program: HashSet<&'a str>,
    /// The series whose variance each variance name carries (the first).
    variance_of: HashMap<String, &'a str>,
    /// Variance series left out because their name was taken.
    left_out: Vec<String>,
}

impl<'a> Metrics<'a> {
    /// The data of metric `name`, created by `empty` if new.
    fn entry(&mut self, name: &str, empty: impl FnOnce() -> Data) -> &mut Data {
        let index = match self.by_name.get(name) {
            Some(index) => *index,
            None => {
                self.list.push((name.to_string(), empty()));
                self.by_name.insert(name.to_string(), self.list.len() - 1);
                self.list.len() - 1
            }
        };
        &mut self.list[index].1
    }

    fn sum(&mut self, name: &str, monotonic: bool, temporality: i32, point: NumberDataPoint) {
        let data = self.entry(name, || {
            Data::Sum(Sum {
                data_points: Vec::new(),
                aggregation_temporality: temporality,
                is_monotonic: monotonic,
            })
        });
        if let Data::Sum(sum) = data {
            sum.data_points.push(point);
        }
    }

    /// The variance series `<base>.variance` of an estimate of `of`: a
    /// monotonic sum with the estimate's attributes and temporality, in its
    /// squared unit (see `export/variance.rs`). Left out when the name is
    /// a metric of the program's or another series' variance (a counter
    /// `h.count` beside a histogram `h`): points of two meanings never
    /// share a metric.
    fn variance(
        &mut self,
        of: &'a str,
        base: &str,
        unit: Option<&str>,
        temporality: i32,
        point: NumberDataPoint,
    ) {
        let name = format!("{base}.variance");
        let owner = *self.variance_of.entry(name.clone()).or_insert(of);
        if owner != of || self.program.contains(name.as_str()) {
            if !self.left_out.contains(&name) {
                self.left_out.push(name);
            }
            return;
        }
        let unit = unit
            .map(variance::squared_unit)
            .filter(|unit| !unit.is_empty());
        let description = variance::description(base);
        self.describe(&name, unit.as_deref(), Some(&description));
        self.sum(&name, true, temporality, point);
    }

    fn gauge(&mut self, name: &str, point: NumberDataPoint) {
        if let Data::Gauge(gauge) = self.entry(name, || Data::Gauge(Gauge::default())) {
            gauge.data_points.push(point);
        }
    }

    /// Records the unit and description of `name` (the first seen wins).
    fn describe(&mut self, name: &str, unit: Option<&str>, description: Option<&str>) {
        if unit.is_none() && description.is_none() {
            return;
        }
        self.described.entry(name.to_string()).or_insert_with(|| {
            (
                unit.unwrap_or_default().to_string(),
                description.unwrap_or_default().to_string(),
            )
        });
    }

    fn into_metrics(mut self) -> Vec<Metric> {
        self.list
            .into_iter()
            .map(|(name, data)| {
                let (unit, description) = self.described.remove(&name).unwrap_or_default();
                Metric {
                    name,
                    description,
                    unit,
                    data: Some(data),
                    ..Default::default()
                }
            })
            .collect()
    }
}

impl Mapper<'_> {
    /// The whole request for `snapshot`, and the variance series left out
    /// because their names were taken.
    pub(crate) fn request(
        &self,
        snapshot: &Snapshot,
    ) -> (ExportMetricsServiceRequest, Vec<String>) {
        let times = Times {
            now: nanos(snapshot.time),
            cumulative_start: nanos(snapshot.start_time),
            delta_start: nanos(
                self.delta
                    .map_or(snapshot.start_time, |state| state.start_time(snapshot)),
            ),
        };
        let mut metrics = Metrics {
            program: snapshot.series.iter().map(|s| &*s.name).collect(),
            ..Metrics::default()
        };
        for series in &snapshot.series {
            self.series(&mut metrics, series, &times);
        }
        let resource = Resource {
            attributes: self
                .config
                .resource
                .attributes
                .iter()
                .map(|(key, value)| string_attribute(key, value))
                .collect(),
            ..Default::default()
        };
        let left_out = std::mem::take(&mut metrics.left_out);
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(resource),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "hotmetrics".into(),
                        version: env!("CARGO_PKG_VERSION").into(),
                        ..Default::default()
                    }),
                    metrics: metrics.into_metrics(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        (request, left_out)
    }

    /// The accepted state of `series`, unless the series restarted since
    /// (`restarted`: retired after its idle timeout and recorded again), in
    /// which case that state was an earlier series'.
    fn baseline(&self, series: &SeriesSnapshot, restarted: bool) -> Option<&Baseline> {
        self.delta
            .filter(|_| !restarted)
            .and_then(|state| state.baseline(&series.name, &series.labels))
    }

    fn series<'s>(&self, metrics: &mut Metrics<'s>, series: &'s SeriesSnapshot, times: &Times) {
        let delta = self.delta.is_some();
        let temporality = if delta {
            AggregationTemporality::Delta as i32
        } else {
            AggregationTemporality::Cumulative as i32
        };
        let cumulative = AggregationTemporality::Cumulative as i32;
        // A series that restarted (retired after its idle timeout, then
        // recorded again) starts at its own start time, and its deltas from
        // zero once it restarted after the accepted export.
        let series_start = series.start_time.map(nanos);
        let restarted = series_start.is_some_and(|started| started > times.delta_start);
        let times = &Times {
            now: times.now,
            cumulative_start: series_start.map_or(times.cumulative_start, |started| {
                started.max(times.cumulative_start)
            }),
            delta_start: if restarted {
                series_start.unwrap_or(times.delta_start)
            } else {
                times.delta_start
            },
        };
        let start = if delta {
            times.delta_start
        } else {
            times.cumulative_start
        };
        metrics.describe(
            &series.name,
            series.unit.as_deref(),
            series.description.as_deref(),
        );
        let unit = series.unit.as_deref();
        let variance_on = self.config.variance;
        let point = |start: u64, value: number_data_point::Value| NumberDataPoint {
            attributes: attributes(&series.labels),
            start_time_unix_nano: start,
            time_unix_nano: times.now,
            value: Some(value),
            ..Default::default()
        };
        match &series.value {
            MetricValue::Counter(estimate) => {
                let accepted = match self.baseline(series, restarted) {
                    Some(Baseline::Counter(accepted)) => Some(accepted),
                    _ => None,
                };
                let value = counter_delta(estimate, accepted);
                metrics.sum(
                    &series.name,
                    true,
                    temporality,
                    point(start, number(&value)),
                );
                if variance_on && !estimate.exact {
                    let variance = variance_delta(estimate, accepted);
                    let point = point(start, number_data_point::Value::AsDouble(variance));
                    metrics.variance(&series.name, &series.name, unit, temporality, point);
                }
            }
            MetricValue::UpDown(estimate) => {
                // Up-down counters stay cumulative under every preference.
                let value = point(times.cumulative_start, number(estimate));
                metrics.sum(&series.name, false, cumulative, value);
                // Always exact today; an estimated one would send its
                // variance, cumulative as its value.
                if let Some(variance) = variance::of(estimate).filter(|_| variance_on) {
                    let point = point(
                        times.cumulative_start,
                        number_data_point::Value::AsDouble(variance),
                    );
                    metrics.variance(&series.name, &series.name, unit, cumulative, point);
                }
            }
            MetricValue::Gauge(value) => {
                let point = point(0, number_data_point::Value::AsDouble(*value));
                metrics.gauge(&series.name, point);
            }
            MetricValue::Histogram(histogram) => {
                let accepted = match self.baseline(series, restarted) {
                    Some(Baseline::Histogram(accepted)) => Some(accepted),
                    _ => None,
                };
                let view = HistogramView::new(histogram, accepted, delta);
                let attrs = attributes(&series.labels);
                match self.config.histogram {
                    HistogramAggregation::ExplicitBucket => {
                        let bounds = self.config.boundaries_for(&series.name);
                        let point = view.explicit(bounds, attrs, start, times.now);
                        let data = metrics.entry(&series.name, || {
                            Data::Histogram(Histogram {
                                data_points: Vec::new(),
                                aggregation_temporality: temporality,
                            })
                        });
                        if let Data::Histogram(h) = data {
                            h.data_points.push(point);
                        }
                    }
                    HistogramAggregation::Base2Exponential => {
                        let max_buckets = self.config.max_exponential_buckets;
                        let point = view.exponential(max_buckets, attrs, start, times.now);
                        let data = metrics.entry(&series.name, || {
                            Data::ExponentialHistogram(ExponentialHistogram {
                                data_points: Vec::new(),
                                aggregation_temporality: temporality,
                            })
                        });
                        if let Data::ExponentialHistogram(h) = data {
                            h.data_points.push(point);
                        }
                    }
                }
                if !variance_on {
                    return;
                }
                // The declared unit is the values': the count has none.
                for (part, unit, variance) in [
                    ("count", None, view.count_variance),
                    ("sum", unit, view.sum_variance),
                ] {
                    if let Some(variance) = variance {
                        let point = point(start, number_data_point::Value::AsDouble(variance));
                        let base = format!("{}.{part}", series.name);
                        metrics.variance(&series.name, &base, unit, temporality, point);
                    }
                }
            }
        }
    }
}
