//! `engine.health()`: each reason is induced by its cause, and clears once
//! the cause is gone.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::drain::catalog;
use crate::export::{Exporter, InMemory};
use crate::test_support::engine_lock;
use crate::{
    record, CircuitState, ConfigError, Engine, ExportError, Health, InstallError, Reason, Snapshot,
};

const PERIOD: Duration = Duration::from_millis(50);

fn builder() -> crate::Builder {
    Engine::builder().adaptive(false).controller_period(PERIOD)
}

/// Polls `health()` until `test` holds, or fails after 20 s.
fn wait_until(engine: &Engine, what: &str, test: impl Fn(&Health) -> bool) -> Health {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let health = engine.health();
        if test(&health) {
            return health;
        }
        assert!(Instant::now() < deadline, "{what}: health is {health}");
        thread::sleep(Duration::from_millis(5));
    }
}

fn has(health: &Health, matches: impl Fn(&Reason) -> bool) -> bool {
    health.reasons().iter().any(matches)
}

#[test]
fn a_fresh_engine_is_healthy_and_a_shut_down_one_is_not() {
    let _lock = engine_lock();
    let engine = builder().install().unwrap();
    record!(counter: "health.fresh", 1);
    thread::sleep(PERIOD * 3);
    assert_eq!(engine.health(), Health::Healthy);
    assert_eq!(engine.health().to_string(), "healthy");
    engine.shutdown().unwrap();
    assert_eq!(engine.health(), Health::Degraded(vec![Reason::ShutDown]));
    assert_eq!(engine.health().to_string(), "degraded: engine shut down");
    let disabled = Engine::builder().disabled(true).install().unwrap();
    assert!(disabled.health().is_healthy());
}

#[test]
fn drops_above_the_threshold_then_clear() {
    let _lock = engine_lock();
    let engine = builder()
        .sample_rate(1.0)
        .buffer_capacity(2)
        .ring_shards(1)
        .drain_interval(Duration::from_millis(20))
        .health_drop_threshold(0.01)
        .install()
        .unwrap();
    let flooding = Arc::new(AtomicBool::new(true));
    let producer = {
        let flooding = flooding.clone();
        thread::spawn(move || {
            while flooding.load(Ordering::Relaxed) {
                for _ in 0..1000 {
                    record!(counter: "health.flood", 1);
                }
                thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let degraded = wait_until(&engine, "drops reported", |health| {
        has(health, |reason| matches!(reason, Reason::Drops { .. }))
    });
    if let Some(Reason::Drops {
        dropped,
        drained,
        share,
    }) = degraded
        .reasons()
        .iter()
        .find(|reason| matches!(reason, Reason::Drops { .. }))
    {
        assert!(*dropped > 0 && *share > 0.01, "{dropped} of {drained}");
        assert!(degraded.to_string().contains("spilled on full rings"));
    }
    flooding.store(false, Ordering::Relaxed);
    producer.join().unwrap();
    wait_until(&engine, "drops cleared", |health| {
        !has(health, |reason| matches!(reason, Reason::Drops { .. }))
    });
    engine.shutdown().unwrap();
}

#[test]
fn a_drain_stuck_behind_a_blocked_collector_lags_then_recovers() {
    let _lock = engine_lock();
    let engine = builder()
        .drain_lag_threshold(Duration::from_millis(40))
        .export_interval(Duration::from_millis(10))
        .exporter(InMemory::keeping(1))
        .install()
        .unwrap();
    // A snapshot collector (an observable instrument's callback) that
    // blocks: the flusher runs it before each export and is stuck in it.
    let blocked = Arc::new(AtomicBool::new(true));
    let collector = {
        let blocked = blocked.clone();
        catalog::add_collector(Arc::new(move || {
            while blocked.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(1));
            }
        }))
    };
    let lagging = wait_until(&engine, "drain lag reported", |health| {
        has(health, |reason| {
            matches!(reason, Reason::DrainLagging { since_last_drain, .. }
                if *since_last_drain > Duration::from_millis(40))
        })
    });
    assert!(lagging.to_string().contains("draining lags"), "{lagging}");
    blocked.store(false, Ordering::Relaxed);
    catalog::remove_collector(collector);
    wait_until(&engine, "drain lag cleared", |health| {
        !has(health, |reason| {
            matches!(reason, Reason::DrainLagging { .. })
        })
    });
    assert!(engine.stats().drain_lag < Duration::from_millis(40));
    engine.shutdown().unwrap();
}

/// An exporter whose backend is down while `down` is set; its circuit
/// opens after three failures and closes after one success.
struct Flaky {
    down: Arc<AtomicBool>,
    failures: u32,
    circuit: Arc<AtomicU8>,
}

impl Exporter for Flaky {
    fn export(&mut self, _: &Snapshot) -> Result<(), ExportError> {
        if self.down.load(Ordering::Relaxed) {
            self.failures += 1;
            if self.failures >= 3 {
                self.circuit.store(1, Ordering::Relaxed);
            }
            Err(ExportError::Transient("connection refused".into()))
        } else {
            self.failures = 0;
            self.circuit.store(0, Ordering::Relaxed);
            Ok(())
        }
    }

    fn circuit_state(&self) -> CircuitState {
        match self.circuit.load(Ordering::Relaxed) {
            1 => CircuitState::Open,
            _ => CircuitState::Closed,
        }
    }
}

#[test]
fn an_exporter_fault_and_an_open_circuit_then_recovery() {
    let _lock = engine_lock();
    let down = Arc::new(AtomicBool::new(true));
    let engine = builder()
        .export_interval(Duration::from_millis(10))
        .exporter(Flaky {
            down: down.clone(),
            failures: 0,
            circuit: Arc::new(AtomicU8::new(0)),
        })
        .install()
        .unwrap();
    let degraded = wait_until(&engine, "fault and open circuit", |health| {
        has(health, |reason| {
            matches!(
                reason,
                Reason::CircuitOpen {
                    state: CircuitState::Open
                }
            )
        }) && has(
            health,
            |reason| matches!(reason, Reason::ExporterFault { failures, .. } if *failures > 0),
        )
    });
    let text = degraded.to_string();
    assert!(text.contains("export circuit open"), "{text}");
    assert!(text.contains("connection refused"), "{text}");
    assert!(engine.stats().exports_failed >= 3);
    down.store(false, Ordering::Relaxed);
    wait_until(&engine, "recovered", |health| health.is_healthy());
    engine.shutdown().unwrap();
}

/// Paces `per_ms` critical calls per millisecond for `span`.
fn paced(per_ms: u32, span: Duration) {
    let started = Instant::now();
    let mut done = 0u64;
    while started.elapsed() < span {
        let due = (started.elapsed().as_secs_f64() * 1000.0 * f64::from(per_ms)) as u64;
        while done < due {
            record!(critical counter: "health.storm", 1);
            record!(counter: "health.steady", 1);
            done += 1;
        }
        thread::sleep(Duration::from_micros(500));
    }
}

#[test]
fn a_storm_on_one_metric_is_reported_then_clears() {
    let _lock = engine_lock();
    let engine = builder()
        .controller_period(Duration::from_millis(100))
        .sample_rate(1.0)
        .buffer_capacity(1 << 14)
        .storm_factor(4.0)
        .install()
        .unwrap();
    let worker = thread::spawn(|| {
        // 4 quiet periods (2000 calls each), then 10× for 5 periods, then
        // quiet again.
        paced(20, Duration::from_millis(400));
        paced(200, Duration::from_millis(500));
        paced(20, Duration::from_millis(600));
    });
    let storm = wait_until(&engine, "storm reported", |health| {
        has(health, |reason| matches!(reason, Reason::Storm { .. }))
    });
    let reasons: Vec<&Reason> = storm
        .reasons()
        .iter()
        .filter(|reason| matches!(reason, Reason::Storm { .. }))
        .collect();
    for reason in &reasons {
        if let Reason::Storm {
            metric,
            calls_per_sec,
            baseline_per_sec,
            ..
        } = reason
        {
            assert!(
                ["health.storm", "health.steady"].contains(&&**metric),
                "{reason}"
            );
            assert!(*calls_per_sec > 4.0 * baseline_per_sec);
        }
    }
    assert!(storm.to_string().contains("storm on health."), "{storm}");
    worker.join().unwrap();
    wait_until(&engine, "storm cleared", |health| {
        !has(health, |reason| matches!(reason, Reason::Storm { .. }))
    });
    engine.shutdown().unwrap();
}

#[test]
fn health_settings_are_validated() {
    let cases = [
        (
            Engine::builder().health_drop_threshold(1.5),
            "health_drop_threshold",
        ),
        (
            Engine::builder().health_drop_threshold(f64::NAN),
            "health_drop_threshold",
        ),
        (Engine::builder().storm_factor(1.0), "storm_factor"),
        (
            Engine::builder().storm_factor(f64::INFINITY),
            "storm_factor",
        ),
        (
            Engine::builder().drain_lag_threshold(Duration::ZERO),
            "drain_lag_threshold",
        ),
    ];
    for (builder, setting) in cases {
        match builder.install() {
            Err(InstallError::Config(ConfigError {
                setting: refused, ..
            })) => assert_eq!(refused, setting),
            Err(other) => panic!("{setting}: {other}"),
            Ok(_) => panic!("{setting}: installed"),
        }
    }
}
