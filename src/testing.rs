//! Testing code that records, without a lock between tests.
//!
//! One engine serves a whole process (callsites cache their series for the
//! life of the program), so tests cannot each install their own. What they
//! can do is share one engine that records every call, and assert on the
//! *change* of their own series between two snapshots: tests that use their
//! own metric names, or their own label values, then run in parallel and
//! never see each other's calls.
//!
//! ```
//! use hotmetrics::{record, testing};
//!
//! fn handle_request(route: &'static str) {
//!     match route {
//!         "/a" => record!(counter: "doc.requests", 1, "route" => "/a"),
//!         _ => record!(counter: "doc.requests", 1, "route" => "other"),
//!     }
//!     record!(histogram: "doc.request_bytes", 512.0);
//! }
//!
//! let watch = testing::watch();
//! handle_request("/a");
//! handle_request("/a");
//! assert_eq!(watch.counter("doc.requests", &[("route", "/a")]), 2.0);
//! assert_eq!(watch.counter("doc.requests", &[("route", "other")]), 0.0);
//! let bytes = watch.histogram("doc.request_bytes", &[]);
//! assert_eq!((bytes.count, bytes.sum), (2.0, 1024.0));
//! ```
//!
//! The test engine ([`engine`]) is installed on first use and records every
//! call exactly: no sampling, no exporters, rings large enough that a test's
//! burst is not spilled (a spilled histogram value would still count in
//! `count` and `sum`, but not in the distribution). It stays installed until
//! the process exits, so a test binary that uses it must not install an
//! engine of its own: [`engine`] panics, naming the conflict, when another
//! engine was installed first, and `Engine::builder().install()` returns
//! [`InstallError::AlreadyInstalled`]
//! after it.
//!
//! A [`Watch`] reads changes, so what other tests record into *other*
//! series does not disturb it. Two tests that record into the same series
//! in parallel do see each other's calls: give each test its own metric
//! name or its own label value.

use std::sync::OnceLock;
use std::time::Duration;

use crate::engine::Engine;
use crate::error::InstallError;
use crate::report::snapshot::{MetricValue, Snapshot};

/// Ring slots per shard of the test engine: a test's burst of histogram
/// values stays in the rings until the next snapshot drains them.
const TEST_BUFFER_CAPACITY: usize = 1 << 16;

/// The process-wide test engine: installed on the first call, every call
/// recorded exactly, no exporters.
///
/// # Panics
///
/// When another engine is already installed in this process (the test
/// binary installed its own): the two cannot share the callsites.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| match install() {
        Ok(engine) => engine,
        Err(InstallError::AlreadyInstalled) => panic!(
            "hotmetrics::testing::engine(): another engine is installed in this process; \
             a test binary that uses the test engine must not install its own"
        ),
        Err(error) => panic!("hotmetrics::testing::engine(): {error}"),
    })
}

fn install() -> Result<Engine, InstallError> {
    // Names start with an ASCII letter, so these prefixes make every series
    // exact: counters and up-down counters in the threads' own cells,
    // histograms through the rings with probability 1.
    let every_name = (b'a'..=b'z')
        .chain(b'A'..=b'Z')
        .map(|letter| char::from(letter).to_string());
    Engine::builder()
        .sample_rate(1.0)
        .adaptive(false)
        .never_sample(every_name)
        .buffer_capacity(TEST_BUFFER_CAPACITY)
        .drain_interval(Duration::from_millis(5))
        .install()
}

/// A baseline taken now; its methods report how series changed since.
///
/// Installs the test engine if it is not installed yet.
pub fn watch() -> Watch {
    Watch {
        before: engine().snapshot(),
    }
}

/// The change of a histogram series since a [`Watch`] began.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct HistogramChange {
    /// Values recorded.
    pub count: f64,
    /// Their sum.
    pub sum: f64,
}

/// A snapshot of the test engine to compare later snapshots with.
#[derive(Debug)]
pub struct Watch {
    before: Snapshot,
}

impl Watch {
    /// How much the counter `name` with exactly these labels grew since the
    /// watch began (0 for a series that did not exist and still does not).
    ///
    /// # Panics
    ///
    /// When a series of that name and labels exists with another kind.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let now = engine().snapshot();
        let value = |snapshot: &Snapshot| {
            level(snapshot, name, labels, "counter", |value| match value {
                MetricValue::Counter(estimate) => Some(estimate.value),
                _ => None,
            })
        };
        value(&now).unwrap_or(0.0) - value(&self.before).unwrap_or(0.0)
    }

    /// How much the up-down counter `name` with exactly these labels moved
    /// since the watch began.
    ///
    /// # Panics
    ///
    /// When a series of that name and labels exists with another kind.
    pub fn updown(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let now = engine().snapshot();
        let value = |snapshot: &Snapshot| {
            level(
                snapshot,
                name,
                labels,
                "up-down counter",
                |value| match value {
                    MetricValue::UpDown(estimate) => Some(estimate.value),
                    _ => None,
                },
            )
        };
        value(&now).unwrap_or(0.0) - value(&self.before).unwrap_or(0.0)
    }

    /// How many values the histogram `name` with exactly these labels took
    /// since the watch began, and their sum.
    ///
    /// # Panics
    ///
    /// When a series of that name and labels exists with another kind.
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> HistogramChange {
        let now = engine().snapshot();
        let totals = |snapshot: &Snapshot| {
            level(snapshot, name, labels, "histogram", |value| match value {
                MetricValue::Histogram(histogram) => {
                    Some((histogram.count.value, histogram.sum.value))
                }
                _ => None,
            })
            .unwrap_or((0.0, 0.0))
        };
        let ((count, sum), (count_before, sum_before)) = (totals(&now), totals(&self.before));
        HistogramChange {
            count: count - count_before,
            sum: sum - sum_before,
        }
    }

    /// The gauge `name` with exactly these labels if it was set since the
    /// watch began (to a value other than the one it had then: a gauge is
    /// a level, so setting it to the same value leaves no trace).
    ///
    /// # Panics
    ///
    /// When a series of that name and labels exists with another kind.
    pub fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let now = engine().snapshot();
        let value = |snapshot: &Snapshot| {
            level(snapshot, name, labels, "gauge", |value| match value {
                MetricValue::Gauge(value) => Some(*value),
                _ => None,
            })
        };
        let (now, before) = (value(&now)?, value(&self.before));
        (before != Some(now)).then_some(now)
    }
}

/// The figure `read` takes from the series `name` with exactly `labels`,
/// `None` when there is no such series.
fn level<T>(
    snapshot: &Snapshot,
    name: &str,
    labels: &[(&str, &str)],
    kind: &str,
    read: impl Fn(&MetricValue) -> Option<T>,
) -> Option<T> {
    let series = snapshot.series(name, labels)?;
    match read(&series.value) {
        Some(value) => Some(value),
        None => panic!(
            "hotmetrics::testing: {name} {labels:?} is a {:?} series, not a {kind}",
            series.kind()
        ),
    }
}
