//! `record!` with label expressions: values land in their series, in every
//! form; the cardinality limit sends the excess to the overflow series; an
//! unsampled call does not evaluate its values; and estimates at a low rate
//! are honest because each sample carries the probability of the metric's
//! step it was taken with (a control corrected by the base rate fails).

use std::borrow::Cow;
use std::cell::Cell;
use std::thread;
use std::time::Duration;

use crate::drain::allocator::prob_of;
use crate::hot::cell::Kind;
use crate::hot::registry;
use crate::hot::thread::seed_this_thread;
use crate::sync::statics::Ordering;
use crate::sync::Arc;
use crate::test_support::{engine_lock, exact_engine};
use crate::{record, ControllerMode, Engine, OVERFLOW_KEY};

#[test]
fn values_of_every_type_land_in_their_series_in_every_form() {
    let _lock = engine_lock();
    let engine = exact_engine();
    let routes = ["/a", "/b", "/a", "/c", "/a"];
    for (index, route) in routes.iter().enumerate() {
        let status = if index % 2 == 0 { 200u16 } else { 500 };
        let owned = route.to_string();
        let cow: Cow<'_, str> = Cow::Borrowed(route);
        record!(counter: "dyn.requests", 1, "route" => *route, "status" => status);
        record!(counter: "dyn.owned", 2u64, "route" => owned.clone(), "kind" => "literal");
        record!(counter: "dyn.cow", 1, "route" => cow);
        record!(counter: "dyn.formatted", 1, "id" => format!("user-{}", index % 2));
        record!(histogram: "dyn.latency", 10.0 * (index + 1) as f64, "route" => &owned);
        record!(critical histogram: "dyn.critical_latency", 5.0, "route" => *route);
        record!(critical counter: "dyn.failures", 1, "route" => *route);
        record!(critical updown: "dyn.critical_level", 1i64, "route" => *route);
        record!(updown: "dyn.level", -1i64, "route" => *route);
        record!(gauge: "dyn.depth", index as f64, "route" => *route);
        let out = record!(timed: "dyn.work_ns", { index * 2 }, "route" => *route);
        assert_eq!(out, index * 2);
    }
    let snapshot = engine.snapshot();
    let counter = |name: &str, labels: &[(&str, &str)]| {
        snapshot
            .counter(name, labels)
            .unwrap_or_else(|| panic!("{name} {labels:?}"))
            .value
    };
    assert_eq!(
        counter("dyn.requests", &[("route", "/a"), ("status", "200")]),
        3.0
    );
    assert_eq!(
        counter("dyn.requests", &[("route", "/b"), ("status", "500")]),
        1.0
    );
    assert_eq!(
        counter("dyn.requests", &[("route", "/c"), ("status", "500")]),
        1.0
    );
    assert_eq!(
        counter("dyn.owned", &[("kind", "literal"), ("route", "/a")]),
        6.0
    );
    assert_eq!(counter("dyn.cow", &[("route", "/b")]), 1.0);
    assert_eq!(counter("dyn.formatted", &[("id", "user-0")]), 3.0);
    assert_eq!(counter("dyn.formatted", &[("id", "user-1")]), 2.0);
    assert_eq!(counter("dyn.failures", &[("route", "/a")]), 3.0);
    let latency = snapshot
        .histogram("dyn.latency", &[("route", "/a")])
        .unwrap();
    assert_eq!((latency.count.value, latency.sum.value), (3.0, 90.0));
    let critical = snapshot
        .histogram("dyn.critical_latency", &[("route", "/a")])
        .unwrap();
    assert_eq!(critical.count.value, 3.0);
    assert!(critical.count.exact);
    let level = |name: &str| snapshot.updown(name, &[("route", "/a")]).unwrap().value;
    assert_eq!(level("dyn.level"), -3.0);
    assert_eq!(level("dyn.critical_level"), 3.0);
    assert_eq!(snapshot.gauge("dyn.depth", &[("route", "/a")]), Some(4.0));
    assert_eq!(snapshot.gauge("dyn.depth", &[("route", "/c")]), Some(3.0));
    let timed = snapshot
        .histogram("dyn.work_ns", &[("route", "/a")])
        .unwrap();
    assert_eq!(timed.count.value, 3.0);
    engine.shutdown().unwrap();
}

#[test]
fn more_label_sets_than_the_cache_holds_resolve_right() {
    let _lock = engine_lock();
    let engine = exact_engine();
    // 150 sets through the thread's 64-entry cache, three rounds.
    for _ in 0..3 {
        for user in 0..150u32 {
            record!(counter: "dyn.users", 1, "user" => user, "shard" => user % 3);
        }
    }
    let snapshot = engine.snapshot();
    for user in 0..150u32 {
        let labels = [
            ("shard", (user % 3).to_string()),
            ("user", user.to_string()),
        ];
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(snapshot.counter("dyn.users", &labels).unwrap().value, 3.0);
    }
    engine.shutdown().unwrap();
}

#[test]
fn the_cardinality_limit_sends_excess_label_sets_to_the_overflow_series() {
    let _lock = engine_lock();
    let engine = Engine::builder()
        .sample_rate(1.0)
        .adaptive(false)
        .cardinality_limit(10)
        .install()
        .unwrap();
    for round in 0..2 {
        for id in 0..25u32 {
            record!(counter: "dyn.limited", 1, "id" => id);
            record!(gauge: "dyn.limited_gauge", f64::from(round), "id" => id);
        }
    }
    let snapshot = engine.snapshot();
    let limited: Vec<_> = snapshot
        .series
        .iter()
        .filter(|series| &*series.name == "dyn.limited")
        .collect();
    assert_eq!(limited.len(), 11, "10 label sets and the overflow series");
    for id in 0..10u32 {
        let value = snapshot.counter("dyn.limited", &[("id", &id.to_string())]);
        assert_eq!(value.unwrap().value, 2.0);
    }
    let overflow = snapshot.counter("dyn.limited", &[(OVERFLOW_KEY, "true")]);
    assert_eq!(overflow.unwrap().value, 30.0, "15 sets, twice");
    assert_eq!(
        snapshot.gauge("dyn.limited_gauge", &[(OVERFLOW_KEY, "true")]),
        Some(1.0)
    );
    assert!(engine.stats().series_overflowed >= 15);
    engine.shutdown().unwrap();
}

#[test]
fn unsampled_calls_do_not_evaluate_their_values_and_no_engine_none_at_all() {
    let _lock = engine_lock();
    let evaluated = Cell::new(0u32);
    let value = || {
        evaluated.set(evaluated.get() + 1);
        "v"
    };
    // No engine installed: the exact forms skip, the sampled ones park.
    for _ in 0..10_000 {
        record!(counter: "dyn.lazy.none", 1, "k" => value());
        record!(gauge: "dyn.lazy.none_gauge", 1.0, "k" => value());
        record!(critical counter: "dyn.lazy.none_critical", 1, "k" => value());
    }
    assert_eq!(evaluated.get(), 0);
    let engine = Engine::builder()
        .sample_rate(1e-6)
        .adaptive(false)
        .install()
        .unwrap();
    seed_this_thread(11);
    for _ in 0..100_000 {
        record!(counter: "dyn.lazy", 1, "k" => value());
        record!(histogram: "dyn.lazy_histogram", 1.0, "k" => value());
        let _ = record!(timed: "dyn.lazy_ns", { 1 }, "k" => value());
    }
    assert!(evaluated.get() <= 3, "{} evaluations", evaluated.get());
    engine.shutdown().unwrap();
}

/// Four series of one dynamic site, called 1, 3, 10 and 30 times in 44,
/// at base rate 1 % under error targeting: the metric's sample-first step
/// starts near the one of the rate bound (15 %), far from the base rate.
/// Over 200 seeded trials, each with its own engine, the 95 % interval of
/// every series must cover the truth in 90–99 % of the trials. The
/// control corrects each series' samples by the base rate instead of the
/// probability they carry: it must fail.
#[test]
fn estimates_of_dynamic_series_at_a_low_rate_are_honest_and_the_control_fails() {
    const TRIALS: u32 = 200;
    const WEIGHTS: [u32; 4] = [1, 3, 10, 30];
    let _lock = engine_lock();
    let mut covered = [0u32; 4];
    let mut control_covered = [0u32; 4];
    let mut rng = fastrand::Rng::with_seed(0xd1a);
    for trial in 0..TRIALS {
        let base_rate = 0.01;
        let engine = Engine::builder()
            .sample_rate(base_rate)
            .rate_bounds(0.005, 0.15)
            .controller_mode(ControllerMode::ErrorTarget)
            .controller_period(Duration::from_secs(3600))
            .buffer_capacity(1 << 14)
            .install()
            .unwrap();
        let calls = rng.u32(4_000..8_000);
        let seed = 0xabc0 + u64::from(trial);
        let truth = thread::spawn(move || {
            seed_this_thread(seed);
            let mut truth = [0.0f64; 4];
            let mut draw = fastrand::Rng::with_seed(seed);
            for _ in 0..calls {
                let mut pick = draw.u32(0..44);
                let mut series = 0;
                while pick >= WEIGHTS[series] {
                    pick -= WEIGHTS[series];
                    series += 1;
                }
                let increment = draw.u32(1..=5);
                truth[series] += f64::from(increment);
                let route = format!("/r{series}");
                record!(counter: "dyn.honest", increment, "route" => route.as_str());
            }
            truth
        })
        .join()
        .unwrap();
        let snapshot = engine.snapshot();
        let step = registry::metric_step("dyn.honest", Kind::Counter)
            .unwrap()
            .load(Ordering::Relaxed);
        assert!(step > 1, "the metric step {step} is the base rate step");
        for (series, &truth) in truth.iter().enumerate() {
            let route = format!("/r{series}");
            let Some(estimate) = snapshot.counter("dyn.honest", &[("route", &route)]) else {
                // No sample and never registered: the interval [0, ...] of
                // the carried probability covers nothing but zero.
                continue;
            };
            if (estimate.value - truth).abs() <= 1.96 * estimate.std_error {
                covered[series] += 1;
            }
            // The control: Σ v/p where the samples carry π = 1 − (1 − p)^s.
            let scale = prob_of(base_rate, step) / base_rate;
            let control = estimate.value * scale;
            if (control - truth).abs() <= 1.96 * estimate.std_error * scale {
                control_covered[series] += 1;
            }
        }
        engine.shutdown().unwrap();
    }
    println!("dynamic honesty: covered {covered:?}, control {control_covered:?} of {TRIALS}");
    for series in 0..4 {
        let share = f64::from(covered[series]) / f64::from(TRIALS);
        assert!(
            (0.90..=0.99).contains(&share),
            "series {series}: {share} covered"
        );
        let control = f64::from(control_covered[series]) / f64::from(TRIALS);
        assert!(
            control < 0.5,
            "the control covered {control} of series {series}"
        );
    }
}

#[test]
fn a_repeated_key_takes_its_first_value_in_every_order() {
    let _lock = engine_lock();
    let engine = exact_engine();
    for route in ["/a", "/b", "/a"] {
        record!(counter: "dyn.unit.repeated", 1, "route" => route, "status" => 200u16, "route" => "/z");
        record!(counter: "dyn.unit.repeated", 1, "status" => 200u16, "route" => route);
    }
    let snapshot = engine.snapshot();
    let value = |route: &str| {
        snapshot
            .counter("dyn.unit.repeated", &[("route", route), ("status", "200")])
            .map(|estimate| estimate.value)
    };
    assert_eq!(
        (value("/a"), value("/b"), value("/z")),
        (Some(4.0), Some(2.0), None)
    );
    engine.shutdown().unwrap();
}

#[test]
fn a_timer_holds_its_series_while_the_block_runs() {
    let _lock = engine_lock();
    let engine = exact_engine();
    std::thread::spawn(|| {
        let labels = [(Arc::from("k"), Arc::from("v"))];
        let holders = || {
            let probe = registry::resolve("dyn.unit.timed", Kind::Histogram, &labels).unwrap();
            probe.cell().holders.load(Ordering::Relaxed) - 1
        };
        let value = String::from("v");
        for _ in 0..2 {
            let during = record!(timed: "dyn.unit.timed", { holders() }, "k" => &value);
            assert_eq!(during, 2, "the thread's cache and the timer");
            assert_eq!(holders(), 1, "the thread's cache");
        }
    })
    .join()
    .unwrap();
    engine.shutdown().unwrap();
}
