//! Hostile input: non-finite, negative, huge and subnormal values through
//! every path; label values of 1 MiB; 10⁶ distinct dynamic label values;
//! names that OpenTelemetry or Prometheus refuse; and property tests
//! ("fuzzing" on the stable toolchain) of the configuration parser and the
//! name and label validation. See also `examples/fuzz_config.rs`, the
//! random-input harness CI runs for a bounded time.

use std::sync::Arc;
use std::thread;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};

use crate::hot::cell::Kind;
use crate::test_support::{engine_lock, in_own_process, rss_bytes};
use crate::{record, Engine, RegistrationError, MAX_LABEL_LEN};

fn exact_engine() -> Engine {
    Engine::builder()
        .sample_rate(1.0)
        .adaptive(false)
        .buffer_capacity(1 << 14)
        .install()
        .expect("valid settings")
}

#[test]
fn hostile_values_through_handles_critical_and_sampled_paths() {
    let _lock = engine_lock();
    let engine = exact_engine();
    thread::spawn(|| {
        let counter = crate::counter("hostile.counter");
        let critical = crate::counter("hostile.critical").critical();
        let updown = crate::updown("hostile.updown").critical();
        let gauge = crate::gauge("hostile.gauge");
        let histogram = crate::histogram("hostile.histogram");
        let critical_histogram = crate::histogram("hostile.critical_histogram").critical();
        for bad in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -1.0,
            -f64::MIN_POSITIVE,
        ] {
            counter.add(bad); // 5 rejected
            critical.add(bad); // 5 rejected
            histogram.record(bad); // 5 rejected
            critical_histogram.record(bad); // 5 rejected
        }
        // Negative increments of any type are refused at run time.
        counter.add(-3.0f32); // rejected
        critical.add(-7i64); // rejected
        critical.add(f64::MIN); // rejected
        updown.add(f64::NAN); // rejected
        gauge.set(f64::INFINITY); // rejected
                                  // Accepted extremes.
        counter.add(u64::MAX);
        critical.add(u64::MAX);
        updown.add(i64::MIN);
        updown.add(i64::MAX);
        gauge.set(-f64::MAX);
        histogram.record(f64::from_bits(1)); // smallest subnormal
        histogram.record(0.0);
        histogram.record(4.0e15); // within resolution × 2⁶² ≈ 4.6e15
        histogram.record(1.0e16); // rejected: out of range
        histogram.record(f64::MAX); // rejected
        critical_histogram.record(f64::MAX); // rejected
    })
    .join()
    .expect("no panic on hostile values");
    let snapshot = engine.snapshot();
    assert_eq!(snapshot.stats.values_rejected, 5 * 4 + 5 + 3);
    assert_eq!(
        snapshot.counter("hostile.counter", &[]).unwrap().value,
        u64::MAX as f64
    );
    assert_eq!(
        snapshot.counter("hostile.critical", &[]).unwrap().value,
        u64::MAX as f64
    );
    assert_eq!(snapshot.updown("hostile.updown", &[]).unwrap().value, -1.0);
    assert_eq!(snapshot.gauge("hostile.gauge", &[]), Some(-f64::MAX));
    let histogram = snapshot.histogram("hostile.histogram", &[]).unwrap();
    assert_eq!(histogram.count.value, 3.0);
    assert_eq!(histogram.min, Some(0.0));
    assert_eq!(histogram.max, Some(4.0e15));
    assert!(histogram.sum.value.is_finite());
    assert!(snapshot
        .histogram("hostile.critical_histogram", &[])
        .is_some_and(|h| h.count.value == 0.0));
    engine.shutdown().unwrap();
}

#[test]
fn label_values_of_one_mebibyte_are_refused_without_keeping_them() {
    if !in_own_process(
        "tests::hostile::label_values_of_one_mebibyte_are_refused_without_keeping_them",
    ) {
        return;
    }
    let _lock = engine_lock();
    let engine = exact_engine();
    let huge = "x".repeat(1 << 20);
    let base = crate::counter("hostile.labels");
    let before = rss_bytes().unwrap_or(0);
    for round in 0..200 {
        let value_refused = base.with_labels(&[("k", &huge)]);
        assert!(!value_refused.is_registered());
        value_refused.add(1u8);
        let key_refused = base.with_labels(&[(&huge, "v")]);
        assert!(!key_refused.is_registered());
        key_refused.add(1u8);
        let _ = round;
    }
    let growth = rss_bytes().unwrap_or(0).saturating_sub(before);
    // The error names the rule; the key in it is cut short.
    let error = crate::hot::registry::series(
        "hostile.labels",
        Kind::Counter,
        &[(Arc::from("k"), Arc::from(huge.as_str()))],
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("longer than 4096 bytes"),
        "{error}"
    );
    let error = crate::hot::registry::series(
        "hostile.labels",
        Kind::Counter,
        &[(Arc::from(huge.as_str()), Arc::from("v"))],
    )
    .unwrap_err();
    assert!(error.to_string().len() < 200, "{error}");
    let snapshot = engine.snapshot();
    assert_eq!(
        snapshot.find("hostile.labels", &[]).count(),
        1,
        "only the base series"
    );
    assert!(
        growth < 32 << 20,
        "RSS grew by {growth} bytes for 400 refused MiB"
    );
    // At the limit exactly, a label is accepted.
    let at_limit = "y".repeat(MAX_LABEL_LEN);
    assert!(base.with_labels(&[("k", &at_limit)]).is_registered());
    engine.shutdown().unwrap();
}

#[test]
fn a_million_distinct_label_values_stay_within_the_cardinality_limit() {
    if !in_own_process(
        "tests::hostile::a_million_distinct_label_values_stay_within_the_cardinality_limit",
    ) {
        return;
    }
    let _lock = engine_lock();
    let engine = exact_engine();
    let base = crate::counter("hostile.cardinality");
    base.add(1u8);
    let values = 1_000_000u32;
    let before = rss_bytes().unwrap_or(0);
    let mut value = String::new();
    for user in 0..values {
        use std::fmt::Write;
        value.clear();
        let _ = write!(value, "user-{user}");
        base.with_labels(&[("user", &value)]).add(1u8);
    }
    let growth = rss_bytes().unwrap_or(0).saturating_sub(before);
    let snapshot = engine.snapshot();
    let limit = crate::DEFAULT_CARDINALITY_LIMIT;
    assert_eq!(snapshot.find("hostile.cardinality", &[]).count(), limit + 1);
    let overflow = snapshot
        .counter("hostile.cardinality", &[(crate::OVERFLOW_KEY, "true")])
        .unwrap();
    // The base series is one of the `limit` label sets.
    assert_eq!(overflow.value, f64::from(values) - (limit as f64 - 1.0));
    let total: f64 = snapshot
        .find("hostile.cardinality", &[])
        .filter_map(|series| match series.value {
            crate::MetricValue::Counter(estimate) => Some(estimate.value),
            _ => None,
        })
        .sum();
    assert_eq!(total, f64::from(values) + 1.0, "no call lost");
    println!(
        "10^6 label values: {} series, RSS +{} KiB",
        limit + 1,
        growth / 1024
    );
    assert!(growth < 64 << 20, "RSS grew by {growth} bytes");
    engine.shutdown().unwrap();
}

#[test]
fn names_refused_at_registration_and_sanitised_for_prometheus() {
    let _lock = engine_lock();
    for name in [
        "",
        " ",
        "9lives",
        "_private",
        ".dot",
        "has space",
        "tab\tname",
        "new\nline",
        "ümlaut",
        "emoji_\u{1f600}",
        "semi;colon",
        "quote\"d",
        "brace{",
        &"x".repeat(256),
    ] {
        match crate::try_counter(name) {
            Err(error @ RegistrationError::InvalidName { .. }) => {
                let message = error.to_string();
                assert!(message.contains("invalid metric name"), "{message}");
                assert!(message.len() < 400, "message stays short");
            }
            other => panic!("{name:?} should be refused, got {other:?}"),
        }
    }
    assert!(crate::try_counter(&"x".repeat(255)).is_ok());
    #[cfg(feature = "prometheus")]
    {
        // Valid OpenTelemetry names that Prometheus does not allow are
        // sanitised on export, as documented: every character outside
        // `[a-zA-Z0-9_:]` becomes `_`, runs of `_` collapse.
        let prometheus = crate::export::Prometheus::builder()
            .without_server()
            .build()
            .unwrap();
        let engine = Engine::builder()
            .exporter(prometheus.clone())
            .install()
            .unwrap();
        record!(critical counter: "http.server.request-count/v2", 3);
        record!(critical counter: "Mixed.Case_name", 1);
        engine.shutdown().unwrap();
        let text = prometheus.render();
        assert!(
            text.contains("http_server_request_count_v2_total 3"),
            "{text}"
        );
        assert!(text.contains("Mixed_Case_name_total 1"), "{text}");
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let name: String = line
                .chars()
                .take_while(|c| !matches!(c, '{' | ' '))
                .collect();
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                    && !name.starts_with(|c: char| c.is_ascii_digit()),
                "not a Prometheus name: {name:?}"
            );
        }
    }
}

/// The documented grammar, written independently of `validate_name`.
fn name_allowed(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 255
        && bytes[0].is_ascii_alphabetic()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(b))
}

fn hotmetrics_var() -> impl Strategy<Value = (String, String)> {
    let key = prop_oneof![
        Just("HOTMETRICS_SAMPLE_RATE"),
        Just("HOTMETRICS_MIN_SAMPLE_RATE"),
        Just("HOTMETRICS_MAX_SAMPLE_RATE"),
        Just("HOTMETRICS_BUFFER_SIZE"),
        Just("HOTMETRICS_BUFFER_CAPACITY"),
        Just("HOTMETRICS_EXPORT_INTERVAL_MS"),
        Just("OTEL_METRIC_EXPORT_INTERVAL"),
        Just("OTEL_SDK_DISABLED"),
        Just("HOTMETRICS_ADAPTIVE"),
        Just("HOTMETRICS_DISABLED"),
        Just("HOTMETRICS_OTHER"),
    ];
    let value = prop_oneof![
        any::<String>(),
        "[-+]?[0-9]{0,3}(\\.[0-9]{0,4})?([eE][-+]?[0-9]{1,3})?",
        Just("NaN".to_string()),
        Just("inf".to_string()),
        Just("1e-320".to_string()),
        Just("18446744073709551616".to_string()),
        "(true|false|yes|no|on|off|1|0|TRUE| on )",
    ];
    (key, value).prop_map(|(key, value)| (key.to_string(), value))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(debug_assertions) { 2000 } else { 20_000 },
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0xf022),
        ..ProptestConfig::default()
    })]

    /// Any set of `HOTMETRICS_*` (and engine-level `OTEL_*`) values: never a panic; an error names a
    /// variable that was given and its value; an accepted configuration
    /// validates to settings within their documented ranges.
    #[test]
    fn the_configuration_parser_takes_any_input(vars in proptest::collection::vec(hotmetrics_var(), 0..6)) {
        match Engine::builder().from_vars(vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
            Err(error) => {
                prop_assert!(vars.iter().any(|(key, _)| *key == error.setting), "{error}");
                prop_assert!(error.to_string().contains(&error.setting));
            }
            Ok(builder) => match builder.config() {
                Ok(config) => {
                    prop_assert!(config.sample_rate > 0.0 && config.sample_rate <= 1.0);
                    // The rate the samplers get (an f32) is not rounded to 0.
                    prop_assert!(config.sample_rate as f32 > 0.0, "{}", config.sample_rate);
                    prop_assert!(config.controller.min_rate as f32 > 0.0);
                    prop_assert!(config.controller.min_rate <= config.controller.max_rate);
                    prop_assert!((1..=1 << 24).contains(&config.buffer_capacity));
                    prop_assert!(!config.export_interval.is_zero());
                }
                Err(error) => prop_assert!(!error.setting.is_empty(), "{error}"),
            },
        }
    }

    /// Names: `validate_name` (which registration runs first) agrees with
    /// the documented grammar on any string. Nothing is registered, so the
    /// process-wide registry other tests share stays clean.
    #[test]
    fn name_validation_matches_the_documented_grammar(
        name in prop_oneof![any::<String>(), "[a-zA-Z][a-zA-Z0-9_./-]{0,300}", "[ -~]{0,20}"]
    ) {
        let allowed = name_allowed(&name);
        match crate::validate_name(&name) {
            Ok(()) => prop_assert!(allowed, "{:?} accepted", name),
            Err(reason) => prop_assert!(!allowed && !reason.is_empty(), "{:?} refused", name),
        }
    }

    /// Labels: any keys and values (empty, long, any Unicode): never a
    /// panic; refused exactly when a key is empty or a key or value is
    /// longer than the limit.
    #[test]
    fn label_validation_takes_any_input(
        labels in proptest::collection::vec(
            (prop_oneof![any::<String>(), Just(String::new()), Just("k".repeat(4097))],
             prop_oneof![any::<String>(), Just("v".repeat(4096)), Just("v".repeat(4097))]),
            0..4,
        )
    ) {
        let shared: Vec<(Arc<str>, Arc<str>)> = labels
            .iter()
            .map(|(key, value)| (Arc::from(key.as_str()), Arc::from(value.as_str())))
            .collect();
        let expected_ok = labels.iter().all(|(key, value)| {
            !key.is_empty() && key.len() <= MAX_LABEL_LEN && value.len() <= MAX_LABEL_LEN
        });
        let outcome = crate::hot::registry::validate_labels("hostile.fuzzed_labels", &shared);
        prop_assert_eq!(outcome.is_ok(), expected_ok, "{:?}", outcome);
        if let Err(error) = outcome {
            prop_assert!(error.to_string().len() < 400, "the message stays short");
        }
    }
}
