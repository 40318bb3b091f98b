//! Every invalid setting is an `Err` naming the setting and the value.

use std::time::Duration;

use crate::{ConfigError, Engine, InstallError};

fn config_error(builder: crate::Builder) -> ConfigError {
    match builder.install() {
        Err(InstallError::Config(error)) => error,
        Err(other) => panic!("expected a configuration error, got {other}"),
        Ok(_) => panic!("expected a configuration error, the engine installed"),
    }
}

#[test]
fn builder_values_out_of_range_are_errors() {
    let cases: Vec<(crate::Builder, &str, &str)> = vec![
        (Engine::builder().sample_rate(0.0), "sample_rate", "0"),
        (Engine::builder().sample_rate(1.5), "sample_rate", "1.5"),
        (
            Engine::builder().sample_rate(f64::NAN),
            "sample_rate",
            "NaN",
        ),
        (
            Engine::builder().rate_bounds(0.2, 0.1),
            "rate_bounds",
            "(0.2, 0.1)",
        ),
        (
            Engine::builder().rate_bounds(0.0, 0.1),
            "rate_bounds.min",
            "0",
        ),
        (
            Engine::builder().rate_bounds(0.01, 2.0),
            "rate_bounds.max",
            "2",
        ),
        (
            Engine::builder().sample_rate(0.5).rate_bounds(0.01, 0.15),
            "sample_rate",
            "0.5",
        ),
        (Engine::builder().buffer_capacity(0), "buffer_capacity", "0"),
        (Engine::builder().ring_shards(0), "ring_shards", "0"),
        (
            Engine::builder().export_interval(Duration::ZERO),
            "export_interval",
            "0s",
        ),
        (
            Engine::builder().cardinality_limit(0),
            "cardinality_limit",
            "0",
        ),
        (
            Engine::builder().histogram_precision(6),
            "histogram_precision",
            "6",
        ),
        (
            Engine::builder().histogram_resolution(-1.0),
            "histogram_resolution",
            "-1",
        ),
        (
            Engine::builder().utilisation_marks(0.9, 0.5),
            "utilisation_marks",
            "(0.9, 0.5)",
        ),
        (Engine::builder().never_sample([""]), "never_sample", ""),
    ];
    for (builder, setting, value) in cases {
        let error = config_error(builder);
        assert_eq!(error.setting, setting, "{error}");
        assert_eq!(error.value, value, "{error}");
        let message = error.to_string();
        assert!(
            message.contains(setting) && message.contains("expected"),
            "{message}"
        );
    }
}

#[test]
fn environment_values_that_do_not_parse_are_errors() {
    let cases = [
        ("HOTMETRICS_SAMPLE_RATE", "abc"),
        ("HOTMETRICS_SAMPLE_RATE", "0"),
        ("HOTMETRICS_SAMPLE_RATE", "1.01"),
        ("HOTMETRICS_MIN_SAMPLE_RATE", "-0.1"),
        ("HOTMETRICS_MAX_SAMPLE_RATE", "lots"),
        ("HOTMETRICS_BUFFER_CAPACITY", "0"),
        ("HOTMETRICS_BUFFER_CAPACITY", "16777217"),
        ("HOTMETRICS_BUFFER_SIZE", "0"),
        ("HOTMETRICS_BUFFER_SIZE", "2k"),
        ("HOTMETRICS_EXPORT_INTERVAL_MS", "0"),
        ("HOTMETRICS_EXPORT_INTERVAL_MS", "1.5"),
        ("HOTMETRICS_ADAPTIVE", "maybe"),
        ("HOTMETRICS_DISABLED", "2"),
        ("HOTMETRICS_MODE", "sometimes"),
        ("HOTMETRICS_TARGET_RELATIVE_ERROR", "tight"),
        ("HOTMETRICS_ACCURACY_WINDOW_MS", "0"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "0"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "1s"),
        ("OTEL_SDK_DISABLED", "maybe"),
        ("OTEL_METRICS_EXPORTER", "zipkin"),
    ];
    for (key, value) in cases {
        let error = Engine::builder().from_vars([(key, value)]).unwrap_err();
        assert_eq!(error.setting, key);
        assert_eq!(error.value, value);
        let message = error.to_string();
        assert!(
            message.contains(key) && message.contains(value),
            "{message}"
        );
    }
    let crossed = Engine::builder()
        .from_vars([
            ("HOTMETRICS_MIN_SAMPLE_RATE", "0.2"),
            ("HOTMETRICS_MAX_SAMPLE_RATE", "0.1"),
        ])
        .unwrap_err();
    assert_eq!(crossed.setting, "HOTMETRICS_MIN_SAMPLE_RATE");
}

#[test]
fn environment_values_that_parse_are_applied() {
    let _lock = crate::test_support::engine_lock();
    let engine = Engine::builder()
        .from_vars([
            ("HOTMETRICS_SAMPLE_RATE", "0.05"),
            ("HOTMETRICS_MIN_SAMPLE_RATE", "0.02"),
            ("HOTMETRICS_MAX_SAMPLE_RATE", "0.1"),
            ("HOTMETRICS_BUFFER_CAPACITY", "100"),
            ("HOTMETRICS_EXPORT_INTERVAL_MS", "250"),
            ("HOTMETRICS_ADAPTIVE", "false"),
            ("UNRELATED", "ignored"),
        ])
        .unwrap()
        .install()
        .unwrap();
    assert!((engine.sample_rate() - 0.05).abs() < 1e-6);
    assert!(engine.set_sample_rate(0.0).is_err());
    engine.set_sample_rate(0.5).unwrap();
    assert!((engine.sample_rate() - 0.5).abs() < 1e-6);
    engine.shutdown().unwrap();
}

/// The one rule: a variable that is set wins over its setter, called
/// before `from_vars` or after it; unset variables leave the code's values.
#[test]
fn the_environment_wins_over_code_whatever_the_order() {
    let vars = [
        ("HOTMETRICS_EXPORT_INTERVAL_MS", "250"),
        ("HOTMETRICS_BUFFER_CAPACITY", "64"),
        ("HOTMETRICS_SAMPLE_RATE", "0.05"),
        ("HOTMETRICS_DISABLED", "true"),
    ];
    let before = Engine::builder()
        .export_interval(Duration::from_secs(30))
        .buffer_capacity(4096)
        .sample_rate(0.1)
        .disabled(false)
        .from_vars(vars)
        .unwrap();
    let after = Engine::builder()
        .from_vars(vars)
        .unwrap()
        .export_interval(Duration::from_secs(30))
        .buffer_capacity(4096)
        .sample_rate(0.1)
        .disabled(false);
    for builder in [before, after] {
        let config = builder.config().unwrap();
        assert_eq!(config.export_interval, Duration::from_millis(250));
        assert_eq!(config.buffer_capacity, 64);
        assert_eq!(config.sample_rate, 0.05);
        assert!(config.disabled);
    }
    // Unset variables leave the code's settings alone.
    let config = Engine::builder()
        .buffer_capacity(4096)
        .from_vars([("UNRELATED", "x"), ("HOTMETRICS_MODE", " ")])
        .unwrap()
        .config()
        .unwrap();
    assert_eq!(config.buffer_capacity, 4096);
    // A variable crossing the bounds set in code is named at install.
    let error = Engine::builder()
        .from_vars([("HOTMETRICS_MAX_SAMPLE_RATE", "0.2")])
        .unwrap()
        .rate_bounds(0.3, 0.5)
        .config()
        .unwrap_err();
    assert_eq!(error.setting, "HOTMETRICS_MAX_SAMPLE_RATE");
    // HOTMETRICS_ADAPTIVE acts on the mode set in code, as the setter does.
    let mode = Engine::builder()
        .controller_mode(crate::controller::ControllerMode::Adaptive)
        .from_vars([("HOTMETRICS_ADAPTIVE", "off")])
        .unwrap()
        .config()
        .unwrap()
        .controller
        .mode;
    assert_eq!(mode, crate::controller::ControllerMode::Fixed);
}

/// Where both families name a setting, `HOTMETRICS_*` wins; alone, the
/// `OTEL_*` variable applies.
#[test]
fn hotmetrics_variables_win_over_their_otel_twins() {
    let config = |vars: &[(&str, &str)]| {
        Engine::builder()
            .export_interval(Duration::from_secs(30))
            .from_vars(vars.iter().copied())
            .unwrap()
            .config()
            .unwrap()
    };
    let both = config(&[
        ("OTEL_METRIC_EXPORT_INTERVAL", "2500"),
        ("HOTMETRICS_EXPORT_INTERVAL_MS", "250"),
        ("OTEL_SDK_DISABLED", "true"),
        ("HOTMETRICS_DISABLED", "false"),
    ]);
    assert_eq!(both.export_interval, Duration::from_millis(250));
    assert!(!both.disabled);
    let otel = config(&[
        ("OTEL_METRIC_EXPORT_INTERVAL", "2500"),
        ("OTEL_SDK_DISABLED", "TRUE"),
    ]);
    assert_eq!(otel.export_interval, Duration::from_millis(2500));
    assert!(otel.disabled);
    // The losing twin is still parsed: a typo is not hidden.
    let error = Engine::builder()
        .from_vars([
            ("OTEL_METRIC_EXPORT_INTERVAL", "2.5s"),
            ("HOTMETRICS_EXPORT_INTERVAL_MS", "250"),
        ])
        .unwrap_err();
    assert_eq!(error.setting, "OTEL_METRIC_EXPORT_INTERVAL");
}

#[test]
fn the_buffer_size_alias_is_accepted_and_the_setter_name_wins() {
    let capacity = |vars: &[(&str, &str)]| {
        Engine::builder()
            .from_vars(vars.iter().copied())
            .unwrap()
            .config()
            .unwrap()
            .buffer_capacity
    };
    assert_eq!(capacity(&[("HOTMETRICS_BUFFER_SIZE", "100")]), 100);
    assert_eq!(capacity(&[("HOTMETRICS_BUFFER_CAPACITY", "300")]), 300);
    assert_eq!(
        capacity(&[
            ("HOTMETRICS_BUFFER_SIZE", "100"),
            ("HOTMETRICS_BUFFER_CAPACITY", "300")
        ]),
        300
    );
}

/// `OTEL_METRICS_EXPORTER` adds exporters beside the code's; unset, it adds
/// none (no console table unless asked); a disabled engine builds none.
#[test]
fn exporters_come_from_the_environment_only_when_named() {
    let count = |vars: &[(&str, &str)]| {
        Engine::builder()
            .exporter(crate::export::InMemory::new())
            .from_vars(vars.iter().copied())
            .unwrap()
            .exporters
            .iter()
            .map(|exporter| exporter.name().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(count(&[]), ["in_memory"]);
    assert_eq!(
        count(&[("OTEL_METRICS_EXPORTER", "console")]),
        ["in_memory", "stdout"]
    );
    assert_eq!(count(&[("OTEL_METRICS_EXPORTER", "none")]), ["in_memory"]);
    assert_eq!(
        count(&[
            ("OTEL_METRICS_EXPORTER", "console"),
            ("HOTMETRICS_DISABLED", "true")
        ]),
        ["in_memory"]
    );
    // HOTMETRICS_DISABLED=false wins over OTEL_SDK_DISABLED=true: the
    // engine runs, with the exporters the environment names.
    assert_eq!(
        count(&[
            ("OTEL_METRICS_EXPORTER", "console"),
            ("OTEL_SDK_DISABLED", "true"),
            ("HOTMETRICS_DISABLED", "false")
        ]),
        ["in_memory", "stdout"]
    );
}

#[test]
fn the_mode_is_error_targeting_unless_a_rate_or_a_mode_is_given() {
    use crate::controller::ControllerMode;
    let mode = |builder: crate::Builder| builder.config().unwrap().controller.mode;
    assert_eq!(mode(Engine::builder()), ControllerMode::ErrorTarget);
    // An explicit rate keeps the earlier behaviour: the pressure controller.
    assert_eq!(
        mode(Engine::builder().sample_rate(0.03)),
        ControllerMode::Adaptive
    );
    let from_env = Engine::builder()
        .from_vars([("HOTMETRICS_SAMPLE_RATE", "0.03")])
        .unwrap();
    assert_eq!(mode(from_env), ControllerMode::Adaptive);
    assert_eq!(
        mode(Engine::builder().sample_rate(0.03).adaptive(false)),
        ControllerMode::Fixed
    );
    assert_eq!(
        mode(Engine::builder().adaptive(false)),
        ControllerMode::Fixed
    );
    assert_eq!(
        mode(Engine::builder().adaptive(false).adaptive(true)),
        ControllerMode::Adaptive
    );
    let targeted = Engine::builder()
        .sample_rate(0.03)
        .from_vars([("HOTMETRICS_MODE", "target")])
        .unwrap();
    assert_eq!(mode(targeted), ControllerMode::ErrorTarget);
    // Error targeting's bounds let a hot series go far below 1 %.
    let config = Engine::builder().config().unwrap();
    assert!(config.controller.min_rate <= 1e-6);
    assert_eq!(config.controller.max_rate, 0.5);
    // The accuracy window defaults to the export interval.
    let config = Engine::builder()
        .export_interval(Duration::from_secs(3))
        .config()
        .unwrap();
    assert_eq!(config.targets.window, Some(Duration::from_secs(3)));
    for bad in [
        Engine::builder().target_relative_error(0.0),
        Engine::builder().target_relative_error(1.5),
        Engine::builder().accuracy_window(Duration::ZERO),
        Engine::builder().quantile_target(1.0, 0.001),
        Engine::builder().quantile_target(0.99, 0.0),
    ] {
        assert!(bad.config().is_err());
    }
}
