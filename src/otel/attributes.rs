//! From an OpenTelemetry attribute list to a series cell, for the calls that
//! need one: sampled calls, exact instruments, observations, `bind`.
//!
//! The registry already maps name + kind + labels to a cell, order-insensitive
//! and with the cardinality limit, but under a global lock and with an
//! allocation per lookup. Each instrument therefore keeps its own cache from
//! attribute sets to cells, read under a shared lock:
//!
//! * the key is an order-insensitive hash of the set (the per-pair hashes are
//!   mixed, then added), so `[a, b]` and `[b, a]` land on one entry without
//!   sorting or copying the caller's slice;
//! * a hit is confirmed by comparing the pairs, not just the hash;
//! * a key repeated in one list counts once, first occurrence first, which is
//!   also what the registry keeps;
//! * the cache holds at most [`CACHE_CAPACITY`] sets per instrument. Past
//!   that (attribute values without bound), a miss goes to the registry on
//!   each resolution: memory stays bounded and the registry's overflow series
//!   still takes the excess sets.
//!
//! Attribute values become label strings (`Value::as_str`): an integer `200`
//! and a string `"200"` name the same series.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crossbeam_utils::CachePadded;
use opentelemetry::KeyValue;

use crate::hot::cell::{Kind, SeriesCell};
use crate::hot::registry;

/// Attribute sets one instrument caches before it stops adding to its cache.
pub(crate) const CACHE_CAPACITY: usize = 4096;

/// A cached set: its pairs (first occurrence of each key) and its cell,
/// `None` when the registry refused it (the refusal was logged once).
#[derive(Debug)]
struct Entry {
    attributes: Box<[KeyValue]>,
    cell: Option<&'static SeriesCell>,
}

#[derive(Debug, Default)]
struct Sets {
    /// Keyed by [`set_hash`], already mixed: the map does not hash again.
    by_hash: HashMap<u64, Vec<Entry>, BuildHasherDefault<PreHashed>>,
    len: usize,
}

/// One instrument's map from attribute sets to series cells.
#[derive(Debug)]
pub(crate) struct SeriesCache {
    name: Arc<str>,
    kind: Kind,
    /// The series without attributes, the commonest set.
    empty: OnceLock<Option<&'static SeriesCell>>,
    /// On its own cache line: a sampled call's read lock writes the lock
    /// word, which must not evict the fields every unsampled call reads.
    sets: CachePadded<RwLock<Sets>>,
    /// Resolutions made (tests check that unsampled calls make none).
    #[cfg(test)]
    pub(crate) resolutions: std::sync::atomic::AtomicU64,
}

impl SeriesCache {
    pub(crate) fn new(name: Arc<str>, kind: Kind) -> Self {
        Self {
            name,
            kind,
            empty: OnceLock::new(),
            sets: CachePadded::new(RwLock::new(Sets::default())),
            #[cfg(test)]
            resolutions: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The metric name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The cell of the series named by `attributes`, registering it on first
    /// sight; `None` if the registry refused it.
    pub(crate) fn resolve(&self, attributes: &[KeyValue]) -> Option<&'static SeriesCell> {
        #[cfg(test)]
        self.resolutions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if attributes.is_empty() {
            return *self.empty.get_or_init(|| self.register(&[]));
        }
        let hash = set_hash(attributes);
        if let Some(entry) = self.read().by_hash.get(&hash).and_then(|entries| {
            entries
                .iter()
                .find(|entry| same_set(&entry.attributes, attributes))
        }) {
            return entry.cell;
        }
        self.miss(hash, attributes)
    }

    #[cold]
    #[inline(never)]
    fn miss(&self, hash: u64, attributes: &[KeyValue]) -> Option<&'static SeriesCell> {
        let effective: Box<[KeyValue]> = attributes
            .iter()
            .enumerate()
            .filter(|(index, _)| first_of_key(attributes, *index))
            .map(|(_, pair)| pair.clone())
            .collect();
        let mut sets = self.write();
        if let Some(entry) = sets.by_hash.get(&hash).and_then(|entries| {
            entries
                .iter()
                .find(|entry| same_set(&entry.attributes, attributes))
        }) {
            return entry.cell;
        }
        let cell = self.register(&effective);
        if sets.len < CACHE_CAPACITY {
            sets.len += 1;
            sets.by_hash.entry(hash).or_default().push(Entry {
                attributes: effective,
                cell,
            });
        }
        cell
    }

    fn register(&self, attributes: &[KeyValue]) -> Option<&'static SeriesCell> {
        let labels: Vec<(Arc<str>, Arc<str>)> = attributes
            .iter()
            .map(|pair| {
                (
                    Arc::from(pair.key.as_str()),
                    Arc::from(&*pair.value.as_str()),
                )
            })
            .collect();
        match registry::series(&self.name, self.kind, &labels) {
            Ok(cell) => Some(cell),
            Err(error) => {
                log::error!(
                    target: "hotmetrics",
                    "OpenTelemetry attribute set not registered, its measurements are ignored: {error}"
                );
                None
            }
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Sets> {
        // The map is consistent between statements: a panic elsewhere
        // while holding the lock leaves it usable.
        self.sets
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Sets> {
        self.sets
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// True if `attributes[index]` is the first pair with its key.
fn first_of_key(attributes: &[KeyValue], index: usize) -> bool {
    let key = &attributes[index].key;
    !attributes[..index].iter().any(|pair| pair.key == *key)
}

/// Order-insensitive hash of the set: every first-of-its-key pair hashed on
/// its own, finalised, and added (addition commutes, so order drops out).
pub(crate) fn set_hash(attributes: &[KeyValue]) -> u64 {
    let mut total: u64 = 0;
    for (index, pair) in attributes.iter().enumerate() {
        if !first_of_key(attributes, index) {
            continue;
        }
        let mut hasher = MixHasher(0);
        pair.hash(&mut hasher);
        total = total.wrapping_add(finalize(hasher.0));
    }
    total
}

/// Whether `given` names the set `cached` holds (one pair per key).
fn same_set(cached: &[KeyValue], given: &[KeyValue]) -> bool {
    // The common case: the caller passes its set in the order it was first
    // seen (then `given` has no repeated key, as `cached` has none).
    if cached == given {
        return true;
    }
    let mut matched = 0;
    for (index, pair) in given.iter().enumerate() {
        if !first_of_key(given, index) {
            continue;
        }
        if !cached.contains(pair) {
            return false;
        }
        matched += 1;
    }
    matched == cached.len()
}

/// A small multiply-rotate hasher: the input is short (a key and a value)
/// and the result is finalised before use, so speed matters more than
/// avalanche here.
struct MixHasher(u64);

impl Hasher for MixHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    // The end mark of a `str`, integers and float bits skip the byte loop.
    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn write_u64(&mut self, word: u64) {
        self.add(word);
    }

    fn write_i64(&mut self, word: i64) {
        self.add(word as u64);
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let mut tail = [0u8; 8];
        tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
        self.add(u64::from_le_bytes(tail) ^ ((bytes.len() as u64) << 56));
    }
}

impl MixHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        const K: u64 = 0x9E37_79B9_7F4A_7C15;
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

/// The hasher of a map whose keys are hashes already.
#[derive(Debug, Default)]
struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not reached for `u64` keys; kept correct for any other use.
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }
}

/// The splitmix64 finaliser: spreads every input bit over the output.
fn finalize(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &'static str, value: &'static str) -> KeyValue {
        KeyValue::new(key, value)
    }

    #[test]
    fn hash_ignores_order_and_repeated_keys() {
        let a = [kv("a", "1"), kv("b", "2"), kv("c", "3")];
        let b = [kv("c", "3"), kv("a", "1"), kv("b", "2")];
        let repeated = [kv("a", "1"), kv("b", "2"), kv("a", "9"), kv("c", "3")];
        assert_eq!(set_hash(&a), set_hash(&b));
        assert_eq!(set_hash(&a), set_hash(&repeated));
        assert_ne!(set_hash(&a), set_hash(&[kv("a", "1"), kv("b", "2")]));
        assert_ne!(
            set_hash(&[kv("a", "1"), kv("b", "2")]),
            set_hash(&[kv("a", "2"), kv("b", "1")])
        );
    }

    #[test]
    fn same_set_compares_pairs_not_positions() {
        let cached = [kv("a", "1"), kv("b", "2")];
        assert!(same_set(&cached, &[kv("b", "2"), kv("a", "1")]));
        assert!(same_set(
            &cached,
            &[kv("b", "2"), kv("a", "1"), kv("b", "7")]
        ));
        assert!(!same_set(
            &cached,
            &[kv("b", "7"), kv("a", "1"), kv("b", "2")]
        ));
        assert!(!same_set(&cached, &[kv("a", "1")]));
        assert!(!same_set(
            &cached,
            &[kv("a", "1"), kv("b", "2"), kv("c", "3")]
        ));
    }
}
