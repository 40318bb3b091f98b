//! Helpers shared by the crate's tests.
//!
//! Only one engine can be installed per process, and the tests of this
//! crate run on parallel threads of one process: every test that installs
//! an engine holds [`engine_lock`] for its whole duration.

use std::sync::{Mutex, MutexGuard};

/// Serialises tests that install the global engine.
pub(crate) fn engine_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Resident set size of this process in bytes (Linux), for memory-growth
/// checks.
pub(crate) fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
