//! Helpers shared by the crate's tests.
//!
//! Only one engine can be installed per process, and the tests of this
//! crate run on parallel threads of one process: every test that installs
//! an engine holds [`engine_lock`] for its whole duration.

use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Serialises tests that install the global engine.
pub(crate) fn engine_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Held shared by tests that feed their own `Aggregator` from series of the
/// process-wide registry without an engine, and exclusively by tests that
/// install an engine with an idle timeout: that engine's flusher retires
/// every series nothing recorded for the timeout, the other tests' series
/// included, which would then count their samples as retired values.
static RETIRING: RwLock<()> = RwLock::new(());

/// For a test that drives the registry's series without an engine.
pub(crate) fn registry_without_engine() -> RwLockReadGuard<'static, ()> {
    RETIRING
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// For a test that installs an engine with an idle timeout (take
/// [`engine_lock`] first).
pub(crate) fn retiring_engine() -> RwLockWriteGuard<'static, ()> {
    RETIRING
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Installs an engine that samples every call (rate 1, fixed) with rings
/// of `1 << 16` slots, so a test's burst is drained, not spilled.
pub(crate) fn exact_engine() -> crate::Engine {
    crate::Engine::builder()
        .sample_rate(1.0)
        .adaptive(false)
        .buffer_capacity(1 << 16)
        .install()
        .expect("valid settings")
}

/// Resident set size of this process in bytes (Linux), for memory-growth
/// checks.
pub(crate) fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// Set in a child process started by [`in_own_process`].
const ISOLATED: &str = "HOTMETRICS_TEST_ISOLATED";

/// Runs the calling test in a process of its own, so process-wide figures
/// (resident memory) are not disturbed by tests running beside it.
///
/// Returns true in that child process: the caller runs its body. In the
/// parent it starts this test binary again with only `test` (its full path,
/// e.g. `tests::faults::name`) selected, forwards its output, fails if it
/// failed, and returns false: the caller returns at once.
pub(crate) fn in_own_process(test: &str) -> bool {
    if std::env::var_os(ISOLATED).is_some() {
        return true;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let output = std::process::Command::new(exe)
        .args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env(ISOLATED, "1")
        // Memory figures measure the engine, not the backtraces a panic
        // hook collects (tests with panicking exporters would grow by them).
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("start the test binary again");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{test} failed in its own process:\n{stdout}\n{stderr}"
    );
    false
}
