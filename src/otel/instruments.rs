//! The synchronous instruments: what `Counter::add`, `UpDownCounter::add`,
//! `Gauge::record` and `Histogram::record` run.
//!
//! A sampled instrument hands the engine the value and a closure that would
//! resolve the attributes; the thread's countdown decides whether the
//! closure runs at all (`record::sampled_resolving`). So an unsampled call
//! is a virtual call, the countdown check and a return: the attribute slice
//! is never read. An exact instrument (gauges, critical instruments,
//! `never_sample` names) resolves every call and records it in full.
//!
//! With the `otel-api-bound` feature, `bind` resolves the set once and
//! returns a handle that records as hotmetrics' own handles do.

use std::sync::Arc;

use opentelemetry::metrics::SyncInstrument;
use opentelemetry::KeyValue;

use super::attributes::SeriesCache;
use crate::hot::cell::Kind;
use crate::hot::pipeline;
use crate::hot::record;
use crate::hot::registry;
use crate::hot::value::Value;
use crate::sync::statics::{AtomicU64, Ordering};

/// One synchronous instrument.
#[derive(Debug)]
pub(crate) struct Instrument {
    series: SeriesCache,
    /// Every call is recorded (gauge, up-down counter, critical,
    /// `never_sample`).
    exact: bool,
    /// What a call takes off the countdown before it looks at its
    /// attributes: the metric's sample-first step (the largest any of its
    /// sampled series needs; see `registry::apply_steps`).
    step: &'static AtomicU64,
}

/// The step of an instrument whose metric the registry refused (its calls
/// then resolve to nothing).
static REFUSED_STEP: AtomicU64 = AtomicU64::new(1);

impl Instrument {
    pub(crate) fn new(name: Arc<str>, kind: Kind, exact: bool) -> Self {
        let step = registry::metric_step(&name, kind).unwrap_or(&REFUSED_STEP);
        Self {
            series: SeriesCache::new(name, kind),
            exact: exact || kind.always_exact(),
            step,
        }
    }

    /// True when every call is recorded.
    #[cfg(test)]
    pub(crate) fn is_exact(&self) -> bool {
        self.exact
    }

    /// The instrument's series cache (tests count its resolutions).
    #[cfg(test)]
    pub(crate) fn series(&self) -> &SeriesCache {
        &self.series
    }

    #[inline(never)]
    fn measure_exact<T: Value>(&self, value: T, attributes: &[KeyValue]) {
        if !pipeline::is_active() {
            return;
        }
        if let Some(cell) = self.series.resolve(attributes) {
            record::exact(cell, value);
        }
    }
}

impl<T> SyncInstrument<T> for Instrument
where
    T: Value + Send + Sync + 'static,
{
    #[inline]
    fn measure(&self, value: T, attributes: &[KeyValue]) {
        if self.exact {
            self.measure_exact(value, attributes);
        } else {
            let step = self.step.load(Ordering::Relaxed);
            record::sampled_resolving(value, step, || self.series.resolve(attributes));
        }
    }

    #[cfg(feature = "otel-api-bound")]
    fn bind(
        &self,
        attributes: &[KeyValue],
    ) -> Box<dyn opentelemetry::metrics::BoundSyncInstrument<T> + Send + Sync> {
        Box::new(bound::Bound {
            cell: self.series.resolve(attributes),
            exact: self.exact,
        })
    }
}

/// The instrument handed out for a name the registry would refuse: every
/// call does nothing (the refusal was logged when it was built).
#[derive(Debug)]
pub(crate) struct Refused;

impl<T> SyncInstrument<T> for Refused
where
    T: Value + Send + Sync + 'static,
{
    fn measure(&self, _value: T, _attributes: &[KeyValue]) {}

    #[cfg(feature = "otel-api-bound")]
    fn bind(
        &self,
        _attributes: &[KeyValue],
    ) -> Box<dyn opentelemetry::metrics::BoundSyncInstrument<T> + Send + Sync> {
        Box::new(bound::Bound {
            cell: None,
            exact: true,
        })
    }
}

#[cfg(feature = "otel-api-bound")]
mod bound {
    use opentelemetry::metrics::BoundSyncInstrument;

    use crate::hot::cell::SeriesCell;
    use crate::hot::record;
    use crate::hot::value::Value;

    /// An instrument bound to one attribute set: the series is resolved,
    /// so a call is the countdown check, as for `record!`.
    #[derive(Debug)]
    pub(super) struct Bound {
        /// `None` when the set was refused: calls do nothing.
        pub(super) cell: Option<&'static SeriesCell>,
        pub(super) exact: bool,
    }

    impl<T> BoundSyncInstrument<T> for Bound
    where
        T: Value + Send + Sync + 'static,
    {
        #[inline]
        fn measure(&self, value: T) {
            let Some(cell) = self.cell else {
                return;
            };
            record::handle(cell, self.exact, value);
        }
    }
}
