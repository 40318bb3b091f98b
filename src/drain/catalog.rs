//! The catalog: what the process knows of its metrics beyond their
//! series, read on the consumer side when a snapshot is built.
//!
//! * Declared units and descriptions, by metric name (copy-on-write, so a
//!   snapshot takes the whole map with one reference-count increment).
//! * Collectors: functions run on the flusher side right before each
//!   snapshot, to record values that are observed rather than pushed
//!   (OpenTelemetry's observable instruments).
//!
//! Nothing here is reached from a `record!` or handle call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// The unit and description a metric was declared with, for exporters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Description {
    /// Unit of measure (UCUM, as OpenTelemetry uses it), if declared.
    pub(crate) unit: Option<Arc<str>>,
    /// Human-readable description, if declared.
    pub(crate) description: Option<Arc<str>>,
}

/// Metric name → declared unit and description. Copy-on-write: a snapshot
/// takes the current map with one reference-count increment.
type Descriptions = Arc<HashMap<Arc<str>, Description>>;

fn descriptions() -> MutexGuard<'static, Descriptions> {
    static DESCRIPTIONS: OnceLock<Mutex<Descriptions>> = OnceLock::new();
    DESCRIPTIONS
        .get_or_init(|| Mutex::new(Arc::new(HashMap::new())))
        .lock()
        // A plain map behind the lock: it is consistent between statements.
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Records the unit and description of metric `name` (empty strings count
/// as absent). The first declaration with anything in it wins, as for the
/// metric's kind; a different later one is logged and ignored.
#[cfg_attr(not(any(feature = "otel-api", feature = "metrics")), allow(dead_code))]
pub(crate) fn describe(name: &str, unit: Option<&str>, description: Option<&str>) {
    let declared = Description {
        unit: unit.filter(|unit| !unit.is_empty()).map(Arc::from),
        description: description.filter(|text| !text.is_empty()).map(Arc::from),
    };
    if declared == Description::default() {
        return;
    }
    let mut map = descriptions();
    match map.get(name) {
        Some(existing) if *existing == declared => {}
        Some(existing) => log::warn!(
            target: "hotmetrics",
            "metric {name:?} declared again with unit {:?} and description {:?}; \
             keeping the first declaration (unit {:?}, description {:?})",
            declared.unit,
            declared.description,
            existing.unit,
            existing.description
        ),
        None => {
            Arc::make_mut(&mut map).insert(Arc::from(name), declared);
        }
    }
}

/// Every declared unit and description, by metric name.
pub(crate) fn descriptions_now() -> Descriptions {
    descriptions().clone()
}

/// A function run on the flusher side right before each snapshot is built,
/// to record values that are observed rather than pushed (OpenTelemetry's
/// observable instruments).
pub(crate) type Collector = Arc<dyn Fn() + Send + Sync>;

struct Collectors {
    next_id: u64,
    list: Vec<(u64, Collector)>,
}

fn collectors() -> MutexGuard<'static, Collectors> {
    static COLLECTORS: Mutex<Collectors> = Mutex::new(Collectors {
        next_id: 0,
        list: Vec::new(),
    });
    COLLECTORS
        .lock()
        // A plain list behind the lock: it is consistent between statements.
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Registers `collector`; returns the id that removes it.
#[cfg_attr(not(feature = "otel-api"), allow(dead_code))]
pub(crate) fn add_collector(collector: Collector) -> u64 {
    let mut collectors = collectors();
    let id = collectors.next_id;
    collectors.next_id += 1;
    collectors.list.push((id, collector));
    id
}

/// Removes the collector registered under `id`, if it is still there.
#[cfg_attr(not(feature = "otel-api"), allow(dead_code))]
pub(crate) fn remove_collector(id: u64) {
    collectors().list.retain(|(existing, _)| *existing != id);
}

/// Runs every registered collector once, outside the list's lock (a
/// collector resolves series and may register or remove collectors). A
/// collector that panics is logged and skipped; the caller, the flusher,
/// goes on.
pub(crate) fn run_collectors() {
    let list: Vec<Collector> = collectors()
        .list
        .iter()
        .map(|(_, collector)| collector.clone())
        .collect();
    for collector in list {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| collector()));
        if outcome.is_err() {
            log::error!(
                target: "hotmetrics",
                "a snapshot collector panicked; its values are missing from this snapshot"
            );
        }
    }
}
