//! From an OpenTelemetry attribute list to a series cell, for the calls that
//! need one: sampled calls, exact instruments, observations, `bind`.
//!
//! The registry already maps name + kind + labels to a cell, order-insensitive
//! and with the cardinality limit, but under a global lock and with an
//! allocation per lookup. Each instrument therefore keeps its own cache from
//! attribute sets to series, read under a shared lock:
//!
//! * the key is an order-insensitive hash of the set (the per-pair hashes are
//!   mixed, then added), so `[a, b]` and `[b, a]` land on one entry without
//!   sorting or copying the caller's slice;
//! * a hit is confirmed by comparing the pairs, not just the hash;
//! * a key repeated in one list counts once, first occurrence first, which is
//!   also what the registry keeps;
//! * an entry holds its series with a [`SeriesRef`], and the cache keeps at
//!   most [`CACHE_CAPACITY`] sets per instrument, and no more than the
//!   cardinality limit, letting go of the oldest entry for each new one
//!   past that. A series no entry holds any more is
//!   recycled once it is idle (see the registry's "Idle series"), so under
//!   attribute values without bound memory stays bounded: the sets the
//!   cardinality limit keeps live, plus what the caches hold;
//! * a call records with its series held: under the read lock on a hit
//!   (an eviction takes the write lock, so it cannot let go of the series
//!   during the call), with its own [`SeriesRef`] after a miss;
//! * sets the cardinality limit routes to the overflow series are not cached
//!   (a place may free up for them at any time); refused sets are, as
//!   refused (the refusal was logged once).
//!
//! Attribute values become label strings (`Value::as_str`): an integer `200`
//! and a string `"200"` name the same series.

use std::collections::hash_map::Entry as Slot;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crossbeam_utils::CachePadded;
use opentelemetry::KeyValue;

use crate::hot::cell::{Kind, SeriesCell};
use crate::hot::registry::{self, SeriesRef};

/// Attribute sets one instrument caches at most (fewer under a lower
/// cardinality limit: more than the limit are never live); past that,
/// each new set takes the place of the oldest.
pub(crate) const CACHE_CAPACITY: usize = 4096;

/// A cached set: its pairs (first occurrence of each key) and its series,
/// `None` when the registry refused it.
#[derive(Debug)]
struct Entry {
    attributes: Box<[KeyValue]>,
    series: Option<SeriesRef>,
}

#[derive(Debug, Default)]
struct Sets {
    /// Keyed by [`set_hash`], already mixed: the map does not hash again.
    /// The entries of one hash are in the order they were added.
    by_hash: HashMap<u64, Vec<Entry>, BuildHasherDefault<PreHashed>>,
    /// The hash of every entry, oldest first.
    order: VecDeque<u64>,
}

impl Sets {
    /// The entry of `attributes` (whose hash is `hash`), if cached.
    fn find(&self, hash: u64, attributes: &[KeyValue]) -> Option<&Entry> {
        self.by_hash
            .get(&hash)?
            .iter()
            .find(|entry| same_set(&entry.attributes, attributes))
    }

    /// Adds an entry, letting go of the oldest ones first if the cache
    /// holds `capacity` entries.
    fn add(&mut self, hash: u64, entry: Entry, capacity: usize) {
        while self.order.len() >= capacity.max(1) {
            self.evict_oldest();
        }
        self.order.push_back(hash);
        self.by_hash.entry(hash).or_default().push(entry);
    }

    fn evict_oldest(&mut self) {
        let Some(hash) = self.order.pop_front() else {
            return;
        };
        // One `order` item per entry, in the order entries were added: the
        // oldest entry of `hash` is the first of its list.
        if let Slot::Occupied(mut slot) = self.by_hash.entry(hash) {
            // Drops its `SeriesRef`: the series may be recycled once idle.
            slot.get_mut().remove(0);
            if slot.get().is_empty() {
                slot.remove();
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.order.len()
    }
}

/// One instrument's map from attribute sets to series.
#[derive(Debug)]
pub(crate) struct SeriesCache {
    name: Arc<str>,
    kind: Kind,
    /// The series without attributes, the commonest set: held for the
    /// instrument's life.
    empty: OnceLock<Option<SeriesRef>>,
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

    /// Runs `record` with the cell of the series named by `attributes`
    /// (registered on first sight), held until `record` returns; `None` if
    /// the registry refused the set.
    pub(crate) fn with_cell<R>(
        &self,
        attributes: &[KeyValue],
        record: impl FnOnce(&'static SeriesCell) -> R,
    ) -> Option<R> {
        self.with_series(attributes, |series| record(series.cell()))
    }

    /// A holder of the series named by `attributes`, for as long as it
    /// lives (a bound instrument's); `None` if the registry refused the
    /// set.
    #[cfg(feature = "otel-api-bound")]
    pub(crate) fn hold(&self, attributes: &[KeyValue]) -> Option<SeriesRef> {
        self.with_series(attributes, SeriesRef::clone)
    }

    fn with_series<R>(
        &self,
        attributes: &[KeyValue],
        use_series: impl FnOnce(&SeriesRef) -> R,
    ) -> Option<R> {
        #[cfg(test)]
        self.resolutions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if attributes.is_empty() {
            let empty = self
                .empty
                .get_or_init(|| self.register(&[]).map(|(series, _)| series));
            return empty.as_ref().map(use_series);
        }
        let hash = set_hash(attributes);
        {
            let sets = self.read();
            if let Some(entry) = sets.find(hash, attributes) {
                // Still under the read lock: no eviction can let go of the
                // series while it is used.
                return entry.series.as_ref().map(use_series);
            }
        }
        let series = self.miss(hash, attributes)?;
        Some(use_series(&series))
    }

    /// Registers `attributes` and caches the result (if it may be cached);
    /// the series, held for the caller's call.
    #[cold]
    #[inline(never)]
    fn miss(&self, hash: u64, attributes: &[KeyValue]) -> Option<SeriesRef> {
        let effective: Box<[KeyValue]> = attributes
            .iter()
            .enumerate()
            .filter(|(index, _)| first_of_key(attributes, *index))
            .map(|(_, pair)| pair.clone())
            .collect();
        let mut sets = self.write();
        if let Some(entry) = sets.find(hash, attributes) {
            return entry.series.clone();
        }
        let capacity = registry::cardinality_limit().min(CACHE_CAPACITY);
        match self.register(&effective) {
            Some((series, cacheable)) => {
                if cacheable {
                    let entry = Entry {
                        attributes: effective,
                        series: Some(series.clone()),
                    };
                    sets.add(hash, entry, capacity);
                }
                Some(series)
            }
            None => {
                let entry = Entry {
                    attributes: effective,
                    series: None,
                };
                sets.add(hash, entry, capacity);
                None
            }
        }
    }

    /// The series of `attributes` from the registry, and whether it may be
    /// cached under them; `None` (logged) if refused.
    fn register(&self, attributes: &[KeyValue]) -> Option<(SeriesRef, bool)> {
        let labels: Vec<(Arc<str>, Arc<str>)> = attributes
            .iter()
            .map(|pair| {
                (
                    Arc::from(pair.key.as_str()),
                    Arc::from(&*pair.value.as_str()),
                )
            })
            .collect();
        match registry::resolve_for_cache(&self.name, self.kind, &labels) {
            Ok(found) => Some(found),
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

    fn holders(series: &SeriesRef) -> usize {
        series
            .cell()
            .holders
            .load(crate::sync::statics::Ordering::Relaxed)
    }

    #[test]
    fn a_full_cache_lets_go_of_its_oldest_sets_in_order() {
        let mut sets = Sets::default();
        let series: Vec<SeriesRef> = (0..5)
            .map(|index| {
                let labels = [(Arc::from("set"), Arc::from(index.to_string()))];
                let (series, cacheable) =
                    registry::resolve_for_cache("otel.cache.eviction", Kind::Counter, &labels)
                        .unwrap();
                assert!(cacheable);
                series
            })
            .collect();
        let sets_of: Vec<[KeyValue; 1]> = (0..5)
            .map(|index| [KeyValue::new("set", index.to_string())])
            .collect();
        for (index, (held, attributes)) in series.iter().zip(&sets_of).enumerate() {
            // Sets 0, 2 and 4 share one hash: evictions must take the
            // oldest of a hash first.
            let hash = if index % 2 == 0 { 7 } else { index as u64 };
            let entry = Entry {
                attributes: attributes.to_vec().into_boxed_slice(),
                series: Some(held.clone()),
            };
            sets.add(hash, entry, 3);
            assert!(sets.len() <= 3);
        }
        // Sets 0 and 1 were let go of; 2, 3 and 4 are held by the cache
        // (and by `series` here).
        let held: Vec<usize> = series.iter().map(holders).collect();
        assert_eq!(held, [1, 1, 2, 2, 2]);
        assert!(sets.find(7, &sets_of[0]).is_none());
        assert!(sets.find(1, &sets_of[1]).is_none());
        assert!(sets.find(7, &sets_of[2]).is_some());
        assert!(sets.find(3, &sets_of[3]).is_some());
        assert!(sets.find(7, &sets_of[4]).is_some());
        drop(sets);
        assert!(series.iter().all(|held| holders(held) == 1));
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
