//! An exporter that keeps snapshots in memory, for tests.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::ExportError;
use crate::export::exporter::Exporter;
use crate::report::snapshot::Snapshot;

/// Keeps the last snapshots it received (64 by default). Clones share the
/// same store, so keep one clone to read what the engine exported.
///
/// ```
/// let store = hotmetrics::export::InMemory::new();
/// let engine = hotmetrics::Engine::builder()
///     .exporter(store.clone())
///     .install()
///     .unwrap();
/// hotmetrics::record!(critical counter: "doc.in_memory", 3);
/// engine.shutdown().unwrap();
/// let last = store.latest().expect("the final export");
/// assert_eq!(last.counter("doc.in_memory", &[]).unwrap().value, 3.0);
/// ```
#[derive(Clone, Debug)]
pub struct InMemory {
    store: Arc<Mutex<Store>>,
}

#[derive(Debug)]
struct Store {
    snapshots: VecDeque<Arc<Snapshot>>,
    keep: usize,
    exports: u64,
}

impl Default for InMemory {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemory {
    /// Keeps the last 64 snapshots.
    pub fn new() -> Self {
        Self::keeping(64)
    }

    /// Keeps the last `keep` snapshots (at least one).
    pub fn keeping(keep: usize) -> Self {
        Self {
            store: Arc::new(Mutex::new(Store {
                snapshots: VecDeque::new(),
                keep: keep.max(1),
                exports: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The most recent snapshot.
    pub fn latest(&self) -> Option<Arc<Snapshot>> {
        self.lock().snapshots.back().cloned()
    }

    /// The snapshots kept, oldest first.
    pub fn snapshots(&self) -> Vec<Arc<Snapshot>> {
        self.lock().snapshots.iter().cloned().collect()
    }

    /// How many snapshots were exported in all.
    pub fn export_count(&self) -> u64 {
        self.lock().exports
    }
}

impl Exporter for InMemory {
    fn export(&mut self, snapshot: &Snapshot) -> Result<(), ExportError> {
        let mut store = self.lock();
        if store.snapshots.len() == store.keep {
            store.snapshots.pop_front();
        }
        store.snapshots.push_back(Arc::new(snapshot.clone()));
        store.exports += 1;
        Ok(())
    }

    fn name(&self) -> &str {
        "in_memory"
    }
}
