//! The `metrics::Recorder` implementation: registration through the key
//! cache, descriptions into the catalog, refusals counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use metrics::{
    Counter, Gauge, Histogram, Key, KeyName, Metadata, SetRecorderError, SharedString, Unit,
};

use super::cache::KeyCache;
use super::series::{self, FacadeKey, Series};
use crate::drain::catalog;
use crate::error::RegistrationError;
use crate::hot::cell::Kind;
use crate::hot::registry::{self, SeriesRef};

/// Slots of the process-wide key cache: it caches three quarters as many
/// keys (6144), 64 KiB of pointers.
const CACHE_SLOTS: usize = 8192;

fn cache() -> &'static KeyCache<FacadeKey, Arc<Series>> {
    static CACHE: OnceLock<KeyCache<FacadeKey, Arc<Series>>> = OnceLock::new();
    CACHE.get_or_init(|| KeyCache::new(CACHE_SLOTS))
}

/// Keys refused for their name or labels.
static REFUSED_INVALID: AtomicU64 = AtomicU64::new(0);
/// Keys refused because their name is registered as another kind.
static REFUSED_KIND_CONFLICT: AtomicU64 = AtomicU64::new(0);
/// Registrations resolved without the cache (it was full).
static UNCACHED: AtomicU64 = AtomicU64::new(0);

/// A `metrics` facade recorder that records through hotmetrics.
///
/// Install it once, early in `main`, beside the engine:
///
/// ```no_run
/// let engine = hotmetrics::Engine::builder().install().unwrap();
/// metrics::set_global_recorder(hotmetrics::metrics_rs::Recorder::default())
///     .expect("no other metrics recorder is installed");
/// metrics::counter!("requests", "route" => "/api").increment(1);
/// # engine.shutdown().unwrap();
/// ```
///
/// Zero-sized: every value shares the process-wide key cache, so it can
/// also be used as a thread's local recorder
/// (`metrics::with_local_recorder(&Recorder::new(), ..)`). (A struct with
/// a private field rather than a unit struct, so `Recorder::default()`
/// reads as intended under clippy.)
#[derive(Clone, Copy, Debug, Default)]
pub struct Recorder {
    _shared: (),
}

impl Recorder {
    /// The recorder (the same as `Recorder::default()`), usable in a
    /// `static`.
    ///
    /// ```
    /// static RECORDER: hotmetrics::metrics_rs::Recorder = hotmetrics::metrics_rs::Recorder::new();
    /// metrics::with_local_recorder(&RECORDER, || metrics::counter!("doc.facade.static").increment(1));
    /// ```
    pub const fn new() -> Self {
        Self { _shared: () }
    }
}

/// Installs [`Recorder`] as the `metrics` facade's global recorder: the
/// same as `metrics::set_global_recorder(Recorder::default())`.
///
/// ```no_run
/// hotmetrics::metrics_rs::install().expect("no other metrics recorder is installed");
/// ```
///
/// # Errors
///
/// The facade already has a global recorder (it takes one per process).
pub fn install() -> Result<(), SetRecorderError<Recorder>> {
    metrics::set_global_recorder(Recorder::new())
}

/// What the facade recorder refused or could not cache, since the process
/// started (see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Keys refused for an invalid name or label.
    pub refused_invalid: u64,
    /// Keys refused because their name is registered as another kind.
    pub refused_kind_conflict: u64,
    /// Registrations resolved without the key cache, which was full.
    pub uncached_registrations: u64,
    /// Keys in the cache.
    pub cached_keys: u64,
}

/// The facade recorder's figures so far. They may change right after.
///
/// ```
/// let stats = hotmetrics::metrics_rs::stats();
/// assert!(stats.cached_keys <= 6144);
/// ```
pub fn stats() -> Stats {
    Stats {
        refused_invalid: REFUSED_INVALID.load(Ordering::Relaxed),
        refused_kind_conflict: REFUSED_KIND_CONFLICT.load(Ordering::Relaxed),
        uncached_registrations: UNCACHED.load(Ordering::Relaxed),
        cached_keys: cache().len() as u64,
    }
}

/// The cache hash of `key` registered as `kind`: the key's precomputed
/// hash, mixed with the kind.
#[inline]
fn hash_of(kind: Kind, key: &Key) -> u64 {
    key.get_hash() ^ (kind as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Whether `cached` is `key`: the same name and labels in memory (a
/// static key, as the facade's macros build from literals, and its cached
/// clone borrow the same statics), else compared in full (hash, name,
/// labels in any order).
#[inline]
fn same_key(cached: &Key, key: &Key) -> bool {
    let same_memory = |a: &str, b: &str| a.as_ptr() == b.as_ptr() && a.len() == b.len();
    let (cached_labels, labels) = (cached.labels().as_slice(), key.labels().as_slice());
    (same_memory(cached.name(), key.name())
        && cached_labels.as_ptr() == labels.as_ptr()
        && cached_labels.len() == labels.len())
        || cached == key
}

/// The calling thread's own `Arc` of the series of `key` as `kind`:
/// registration on every facade macro call.
#[inline]
fn register(kind: Kind, key: &Key) -> Arc<Series> {
    let hash = hash_of(kind, key);
    match cache().get(hash, |cached| {
        cached.kind == kind && same_key(&cached.key, key)
    }) {
        Some(entry) => series::own(entry),
        None => register_slow(kind, key, hash),
    }
}

/// A key's first registration (or every one, past the cache's capacity).
#[cold]
#[inline(never)]
fn register_slow(kind: Kind, key: &Key, hash: u64) -> Arc<Series> {
    let inserted = cache().insert(
        hash,
        |cached| cached.kind == kind && same_key(&cached.key, key),
        || {
            let cell = resolve(kind, key);
            (
                FacadeKey {
                    kind,
                    key: key.clone(),
                },
                Arc::new(Series { cell }),
            )
        },
    );
    match inserted {
        Ok(entry) => series::own(entry),
        Err(_full) => {
            UNCACHED.fetch_add(1, Ordering::Relaxed);
            Arc::new(Series {
                cell: resolve(kind, key),
            })
        }
    }
}

/// [`resolve`], for the tests of `Series`.
#[cfg(test)]
pub(super) fn resolve_for_tests(kind: Kind, key: &Key) -> Option<SeriesRef> {
    resolve(kind, key)
}

/// Resolves `key` to its series in the registry; `None` (logged and
/// counted) when it is refused.
fn resolve(kind: Kind, key: &Key) -> Option<SeriesRef> {
    let labels: Vec<(Arc<str>, Arc<str>)> = key
        .labels()
        .map(|label| (Arc::from(label.key()), Arc::from(label.value())))
        .collect();
    match registry::resolve(key.name(), kind, &labels) {
        Ok(series) => Some(series),
        Err(error) => {
            let counter = match error {
                RegistrationError::KindConflict { .. } => &REFUSED_KIND_CONFLICT,
                _ => &REFUSED_INVALID,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            log::error!(
                target: "hotmetrics",
                "metrics facade {} not registered, its calls are ignored: {error}",
                kind.as_str()
            );
            None
        }
    }
}

/// The UCUM unit OpenTelemetry expects for a facade unit; `None` for
/// none.
fn ucum(unit: Unit) -> &'static str {
    match unit {
        Unit::Count => "{count}",
        Unit::Percent => "%",
        Unit::Seconds => "s",
        Unit::Milliseconds => "ms",
        Unit::Microseconds => "us",
        Unit::Nanoseconds => "ns",
        Unit::Tebibytes => "TiBy",
        Unit::Gibibytes => "GiBy",
        Unit::Mebibytes => "MiBy",
        Unit::Kibibytes => "KiBy",
        Unit::Bytes => "By",
        Unit::TerabitsPerSecond => "Tbit/s",
        Unit::GigabitsPerSecond => "Gbit/s",
        Unit::MegabitsPerSecond => "Mbit/s",
        Unit::KilobitsPerSecond => "kbit/s",
        Unit::BitsPerSecond => "bit/s",
        Unit::CountPerSecond => "{count}/s",
    }
}

/// Declares a metric's unit and description in the catalog (the path the
/// OpenTelemetry provider's instruments take).
fn describe(name: &KeyName, unit: Option<Unit>, description: &str) {
    if let Err(reason) = registry::validate_name(name.as_str()) {
        log::warn!(
            target: "hotmetrics",
            "metrics facade description of {:?} ignored: {reason}",
            name.as_str()
        );
        return;
    }
    catalog::declare(name.as_str(), unit.map(ucum), Some(description));
}

impl metrics::Recorder for Recorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        describe(&key, unit, &description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        describe(&key, unit, &description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        describe(&key, unit, &description);
    }

    #[inline]
    fn register_counter(&self, key: &Key, _metadata: &Metadata<'_>) -> Counter {
        Counter::from_arc(register(Kind::Counter, key))
    }

    #[inline]
    fn register_gauge(&self, key: &Key, _metadata: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(register(Kind::Gauge, key))
    }

    #[inline]
    fn register_histogram(&self, key: &Key, _metadata: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(register(Kind::Histogram, key))
    }
}

/// The calling thread's own `Arc` of the counter series of `key`, as
/// `register_counter` wraps it.
#[cfg(test)]
pub(crate) fn register_for_test(key: &Key) -> Arc<Series> {
    register(Kind::Counter, key)
}
