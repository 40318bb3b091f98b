//! Handles: metrics whose label values are only known at run time.
//!
//! `hotmetrics::counter("http.requests").with_labels(&[("route", route)])`
//! resolves the series once (a registry lookup under a lock) and returns a
//! handle that records with the same hot path as `record!`. Keep handles
//! and reuse them: the lookup is the expensive part. Each metric name admits
//! at most the engine's cardinality limit of label sets (default 2000);
//! further sets share one overflow series labelled
//! `otel.metric.overflow = "true"`.

use std::fmt;

use super::cell::{Kind, SeriesCell};
use super::pipeline;
use super::record;
use super::registry::{self, Labels, SeriesRef};
use super::value::{CounterValue, Value};
use crate::error::RegistrationError;
use crate::sync::Arc;

#[derive(Clone)]
struct Inner {
    name: Arc<str>,
    kind: Kind,
    labels: Labels,
    /// `None` when registration was refused: calls do nothing. Held, so
    /// the cell stays this label set's (retired and revived in place, see
    /// `registry.rs`) while the handle lives.
    series: Option<SeriesRef>,
    critical: bool,
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("labels", &self.labels)
            .field("registered", &self.series.is_some())
            .field("critical", &self.critical)
            .finish()
    }
}

impl Inner {
    fn new(name: &str, kind: Kind) -> Result<Self, RegistrationError> {
        let name: Arc<str> = Arc::from(name);
        let labels: Labels = Arc::from(Vec::new());
        let series = registry::resolve(&name, kind, &labels)?;
        Ok(Self {
            name,
            kind,
            labels,
            series: Some(series),
            critical: false,
        })
    }

    fn disabled(name: &str, kind: Kind, error: &RegistrationError) -> Self {
        log::error!(target: "hotmetrics", "metric not registered, its calls are ignored: {error}");
        Self {
            name: Arc::from(name),
            kind,
            labels: Arc::from(Vec::new()),
            series: None,
            critical: false,
        }
    }

    fn with_labels(&self, extra: &[(&str, &str)]) -> Self {
        let mut labels: Vec<(Arc<str>, Arc<str>)> = self.labels.to_vec();
        for (key, value) in extra {
            labels.retain(|(existing, _)| &**existing != *key);
            labels.push((Arc::from(*key), Arc::from(*value)));
        }
        let labels: Labels = Arc::from(labels);
        let series = match registry::resolve(&self.name, self.kind, &labels) {
            Ok(series) => {
                if self.critical {
                    registry::make_critical(series.cell());
                }
                Some(series)
            }
            Err(error) => {
                log::error!(target: "hotmetrics", "label set not registered, its calls are ignored: {error}");
                None
            }
        };
        Self {
            name: self.name.clone(),
            kind: self.kind,
            labels,
            series,
            critical: self.critical,
        }
    }

    #[inline(always)]
    fn record<V: Value>(&self, value: V) {
        let Some(series) = &self.series else {
            return;
        };
        record::handle(series.cell(), self.critical, value);
    }

    fn cell(&self) -> Option<&'static SeriesCell> {
        self.series.as_ref().map(SeriesRef::cell)
    }
}

macro_rules! handle_type {
    ($(#[$doc:meta])* $ty:ident, $kind:expr, $ctor:ident, $try_ctor:ident, $method:ident: $bound:path, $method_doc:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $ty(Inner);

        impl $ty {
            /// The same metric with these labels added (or replaced, by key).
            /// Resolves the series now; keep the returned handle.
            pub fn with_labels(&self, labels: &[(&str, &str)]) -> Self {
                Self(self.0.with_labels(labels))
            }

            /// Makes every call through this handle exact: never sampled,
            /// never dropped.
            pub fn critical(mut self) -> Self {
                self.0.critical = true;
                if let Some(cell) = self.0.cell() {
                    registry::make_critical(cell);
                }
                self
            }

            #[doc = $method_doc]
            #[inline(always)]
            pub fn $method<V: $bound>(&self, value: V) {
                self.0.record(value);
            }

            /// Pushes one sample taken with probability `inclusion_prob`,
            /// bypassing the sampling decision: what benches use to fill the
            /// rings with samples of chosen probabilities. Not a stable API.
            #[doc(hidden)]
            pub fn __push_sample(&self, inclusion_prob: f32, value: f64) {
                if let Some(cell) = self.0.cell() {
                    if pipeline::is_active() {
                        record::push_decided(cell, inclusion_prob, value);
                    }
                }
            }

            /// The metric name.
            pub fn name(&self) -> &str {
                &self.0.name
            }

            /// The labels of this handle's series.
            pub fn labels(&self) -> &[(Arc<str>, Arc<str>)] {
                &self.0.labels
            }

            /// True if the series was registered (calls are recorded).
            pub fn is_registered(&self) -> bool {
                self.0.series.is_some()
            }
        }

        /// A handle for the metric `name` with no labels. A refused
        /// registration (invalid name, or the name already used by another
        /// kind) is logged and gives a handle whose calls do nothing; use the
        /// `try_` form to get the error instead.
        pub fn $ctor(name: &str) -> $ty {
            $try_ctor(name).unwrap_or_else(|error| $ty(Inner::disabled(name, $kind, &error)))
        }

        /// A handle for the metric `name` with no labels.
        ///
        /// # Errors
        ///
        /// [`RegistrationError`] when the name is not a valid instrument name
        /// or is already registered with another kind.
        pub fn $try_ctor(name: &str) -> Result<$ty, RegistrationError> {
            Inner::new(name, $kind).map($ty)
        }
    };
}

handle_type!(
    /// A monotonic counter handle (`add` non-negative increments).
    ///
    /// `add` takes an unsigned integer or a float ([`CounterValue`]): a
    /// signed integer, which could be negative, does not compile.
    ///
    /// ```
    /// let sent = hotmetrics::counter("ws.messages_sent").with_labels(&[("peer", "eu-1")]);
    /// sent.add(1u64);
    /// sent.add(b"hello".len());
    /// hotmetrics::counter("ws.bytes_in").add(0.5);
    /// ```
    ///
    /// [`CounterValue`]: crate::CounterValue
    Counter, Kind::Counter, counter, try_counter, add: CounterValue,
    "Adds a non-negative increment (sampled unless exact). A negative, NaN \
     or infinite float is never added; see [`CounterValue`](crate::CounterValue) \
     for when it is counted in `values_rejected`."
);
handle_type!(
    /// An up-down counter handle (`add` signed deltas).
    ///
    /// ```
    /// let open = hotmetrics::updown("ws.active_connections");
    /// open.add(1);
    /// open.add(-1);
    /// ```
    UpDownCounter, Kind::UpDown, updown, try_updown, add: Value,
    "Adds a signed delta (always exact: a level is never sampled)."
);
handle_type!(
    /// A gauge handle (`set` the current value; never sampled).
    ///
    /// ```
    /// hotmetrics::gauge("queue.depth").set(17.0);
    /// ```
    Gauge, Kind::Gauge, gauge, try_gauge, set: Value,
    "Sets the current value."
);
handle_type!(
    /// A histogram handle (`record` non-negative values).
    ///
    /// ```
    /// hotmetrics::histogram("ws.send_latency_us").record(42.0);
    /// ```
    Histogram, Kind::Histogram, histogram, try_histogram, record: Value,
    "Records one value (sampled unless exact)."
);
