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
        self.series
            .with_cell(attributes, |cell| record::exact(cell, value));
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
            record::sampled_resolving(value, step, |push| {
                self.series.with_cell(attributes, push).is_some()
            });
        }
    }

    #[cfg(feature = "otel-api-bound")]
    fn bind(
        &self,
        attributes: &[KeyValue],
    ) -> Box<dyn opentelemetry::metrics::BoundSyncInstrument<T> + Send + Sync> {
        Box::new(bound::Bound {
            series: self.series.hold(attributes),
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
            series: None,
            exact: true,
        })
    }
}

#[cfg(feature = "otel-api-bound")]
mod bound {
    use opentelemetry::metrics::BoundSyncInstrument;

    use crate::hot::record;
    use crate::hot::registry::SeriesRef;
    use crate::hot::value::Value;

    /// An instrument bound to one attribute set: the series is resolved,
    /// so a call is the countdown check, as for `record!`.
    #[derive(Debug)]
    pub(super) struct Bound {
        /// `None` when the set was refused: calls do nothing. Held for as
        /// long as the bound instrument lives, as a handle holds its
        /// series.
        pub(super) series: Option<SeriesRef>,
        pub(super) exact: bool,
    }

    impl<T> BoundSyncInstrument<T> for Bound
    where
        T: Value + Send + Sync + 'static,
    {
        #[inline]
        fn measure(&self, value: T) {
            let Some(series) = &self.series else {
                return;
            };
            record::handle(series.cell(), self.exact, value);
        }
    }
}
