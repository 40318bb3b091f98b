//! A lock-free, insert-only hash table: what makes the `metrics` facade's
//! `register_*` (run by every `counter!` call) cheap.
//!
//! The facade's macros register their key on every call, so the recorder
//! looks the key up every time. Here a lookup on a hit takes no lock and
//! allocates nothing: it probes a fixed array of pointers by the key's
//! precomputed hash, and checks the full key of each entry whose hash
//! matches (two keys whose hashes collide never share an entry).
//!
//! # Protocol
//!
//! * **Slots** are `AtomicPtr<Entry>`s, null while empty, in a fixed array
//!   whose length is a power of two. A slot is written once, from null to
//!   an entry, and never again while the table lives.
//! * **Inserts** take the table's mutex, probe again (another thread may
//!   have inserted the key since the caller's lookup missed), then write
//!   the new entry to the first empty slot of the key's probe sequence
//!   (linear probing from `hash & mask`) with `Release`.
//! * **Lookups** walk the same sequence with `Acquire` loads and stop at
//!   the first empty slot. Since slots are never emptied and every insert
//!   fills the first empty slot of its sequence under the mutex, a lookup
//!   that reaches an empty slot knows the key was not there when it looked;
//!   it then goes to the insert path, which decides under the mutex.
//! * **Entries** are boxed once and freed only when the table is dropped
//!   (`&mut self`: no lookup can be running). A lookup's `&Entry` borrows
//!   the table, so it cannot outlive it; the facade's table is a `static`.
//! * **Bounded**: at most three quarters of the slots are filled, so every
//!   probe sequence ends at an empty slot. A full table refuses inserts,
//!   and the caller resolves its key without caching it.
//!
//! `loom_tests/` model-checks this protocol on small tables (concurrent
//! inserts of one key, of colliding keys, a lookup racing an insert, a
//! full table).

use std::fmt;
use std::ptr;

use crate::sync::{AtomicPtr, Mutex, Ordering};

/// One key and what it resolved to.
#[derive(Debug)]
pub struct Entry<K, V> {
    /// The key's hash, as given to [`KeyCache::insert`].
    pub hash: u64,
    /// The full key, compared on every hit whose hash matches.
    pub key: K,
    /// What the key resolved to.
    pub value: V,
    /// The entry's position in insertion order (0, 1, 2, ...): a dense
    /// index for per-thread tables.
    pub index: u32,
}

/// Why an insert did not cache its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Full {
    /// Three quarters of the slots are filled.
    Full,
}

/// An insert-only hash table whose lookups take no lock (see the module
/// documentation).
pub struct KeyCache<K, V> {
    /// `mask + 1` slots, each null or a leaked `Box<Entry>` (see the
    /// module's protocol); written only under `inserting`.
    slots: Box<[AtomicPtr<Entry<K, V>>]>,
    /// `slots.len() - 1`; the length is a power of two.
    mask: usize,
    /// Held by inserts; guards the count of entries (the next index).
    inserting: Mutex<u32>,
}

impl<K, V> fmt::Debug for KeyCache<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyCache")
            .field("slots", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl<K, V> KeyCache<K, V> {
    /// A table of `slots` slots (rounded up to a power of two, at least
    /// 2), which caches at most three quarters as many keys.
    pub fn new(slots: usize) -> Self {
        let slots = slots.max(2).next_power_of_two();
        Self {
            slots: (0..slots)
                .map(|_| AtomicPtr::new(ptr::null_mut()))
                .collect(),
            mask: slots - 1,
            inserting: Mutex::new(0),
        }
    }

    /// The most keys the table caches.
    pub fn max_entries(&self) -> usize {
        self.slots.len() / 4 * 3
    }

    /// The entry of the key whose hash is `hash` and for which `is_key`
    /// holds, if it is cached. Takes no lock, allocates nothing.
    #[inline]
    pub fn get(&self, hash: u64, is_key: impl Fn(&K) -> bool) -> Option<&Entry<K, V>> {
        let mut slot = hash as usize & self.mask;
        // Bounded: at least a quarter of the slots stay empty, so the walk
        // ends at one long before it wraps; the bound only guards a bug.
        for _ in 0..self.slots.len() {
            // Acquire: pairs with the Release store in `insert`, so the
            // entry's fields are visible before it is read.
            let entry = self.slots[slot].load(Ordering::Acquire);
            if entry.is_null() {
                return None;
            }
            // SAFETY: a non-null slot holds a pointer from `Box::into_raw`
            // in `insert`, published with Release after the entry was
            // written, and freed only in `drop` (`&mut self`), which cannot
            // run while `&self` is borrowed here; entries are never
            // written after publication, so a shared reference is sound.
            let entry = unsafe { &*entry };
            if entry.hash == hash && is_key(&entry.key) {
                return Some(entry);
            }
            slot = (slot + 1) & self.mask;
        }
        None
    }

    /// The entry of the key (`hash`, `is_key`), inserting the one `make`
    /// builds if it is not cached yet. `make` runs under the table's
    /// mutex, at most once, and only when the key is missing and the table
    /// has room. The cold side of a lookup: it locks and may allocate.
    ///
    /// # Errors
    ///
    /// [`Full::Full`] when the key is missing and the table holds
    /// [`max_entries`](Self::max_entries) keys; `make` did not run.
    pub fn insert(
        &self,
        hash: u64,
        is_key: impl Fn(&K) -> bool,
        make: impl FnOnce() -> (K, V),
    ) -> Result<&Entry<K, V>, Full> {
        let mut count = self
            .inserting
            .lock()
            // The count is written last, after the slot: a panic in `make`
            // leaves the table as it was.
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(entry) = self.get(hash, &is_key) {
            return Ok(entry);
        }
        if *count as usize >= self.max_entries() {
            return Err(Full::Full);
        }
        let (key, value) = make();
        debug_assert!(is_key(&key), "`make` built the key it was asked for");
        let entry = Box::into_raw(Box::new(Entry {
            hash,
            key,
            value,
            index: *count,
        }));
        let mut slot = hash as usize & self.mask;
        // Only inserts write slots, and they hold the mutex: the slots seen
        // empty here stay empty until the store below.
        while !self.slots[slot].load(Ordering::Relaxed).is_null() {
            slot = (slot + 1) & self.mask;
        }
        // Release: pairs with the Acquire load in `get`; publishes the
        // entry's fields with the pointer.
        self.slots[slot].store(entry, Ordering::Release);
        *count += 1;
        // SAFETY: just published from `Box::into_raw`; freed only in
        // `drop`, which needs `&mut self` (see `get`).
        Ok(unsafe { &*entry })
    }

    /// The number of cached keys.
    pub fn len(&self) -> usize {
        *self
            .inserting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) as usize
    }

    /// True if no key is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K, V> Drop for KeyCache<K, V> {
    fn drop(&mut self) {
        for slot in self.slots.iter() {
            // `&mut self`: no other thread reaches the slot.
            let entry = slot.swap(ptr::null_mut(), Ordering::Relaxed);
            if !entry.is_null() {
                // SAFETY: a non-null slot holds a pointer from
                // `Box::into_raw` in `insert`, stored in this one slot
                // only; `&mut self` means no lookup holds a reference to
                // it, and the slot is nulled so it is freed once.
                drop(unsafe { Box::from_raw(entry) });
            }
        }
    }
}

// SAFETY: the table hands out `&Entry<K, V>` to any thread and moves
// `K`, `V` into entries built on the inserting thread; entries are freed
// on the dropping thread. So sharing the table needs `K` and `V` to be
// `Sync` (shared reads) and `Send` (dropped elsewhere), as for
// `Mutex<Vec<Box<Entry>>>`.
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for KeyCache<K, V> {}
// SAFETY: as above; moving the table moves ownership of its entries.
unsafe impl<K: Send + Sync, V: Send + Sync> Send for KeyCache<K, V> {}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn hits_check_the_full_key_so_colliding_hashes_stay_apart() {
        let cache: KeyCache<String, u32> = KeyCache::new(8);
        let a = cache
            .insert(7, |key| key == "a", || ("a".to_string(), 1))
            .unwrap();
        let b = cache
            .insert(7, |key| key == "b", || ("b".to_string(), 2))
            .unwrap();
        assert!(!ptr::eq(a, b));
        assert_eq!(cache.get(7, |key| key == "a").unwrap().value, 1);
        assert_eq!(cache.get(7, |key| key == "b").unwrap().value, 2);
        assert!(cache.get(7, |key| key == "c").is_none());
        assert!(cache.get(8, |key| key == "a").is_none());
        // Inserting again finds the entry; `make` does not run.
        let again = cache
            .insert(7, |key| key == "a", || unreachable!("cached"))
            .unwrap();
        assert!(ptr::eq(a, again));
        assert_eq!((a.index, b.index), (0, 1));
    }

    #[test]
    fn a_full_table_refuses_and_keeps_what_it_has() {
        let cache: KeyCache<u64, u64> = KeyCache::new(8);
        assert_eq!(cache.max_entries(), 6);
        for key in 0..6u64 {
            // Every key hashes to the last slot: the probes wrap around.
            cache.insert(7, |k| *k == key, || (key, key * 10)).unwrap();
        }
        assert_eq!(
            cache.insert(7, |k| *k == 99, || (99, 0)).unwrap_err(),
            Full::Full
        );
        for key in 0..6u64 {
            assert_eq!(cache.get(7, |k| *k == key).unwrap().value, key * 10);
        }
        assert!(cache.get(7, |k| *k == 99).is_none());
        assert_eq!(cache.len(), 6);
    }

    #[test]
    fn threads_inserting_one_key_share_one_entry() {
        let cache: KeyCache<u64, u64> = KeyCache::new(64);
        let found: Vec<usize> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        let mut last = 0;
                        for key in 0..40u64 {
                            let entry =
                                cache.insert(key % 5, |k| *k == key, || (key, key)).unwrap();
                            assert_eq!(entry.value, key);
                            last = entry as *const _ as usize;
                        }
                        last
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(found.windows(2).all(|pair| pair[0] == pair[1]));
        assert_eq!(cache.len(), 40);
    }
}
