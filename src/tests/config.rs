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
        ("HOTMETRICS_BUFFER_SIZE", "0"),
        ("HOTMETRICS_BUFFER_SIZE", "2k"),
        ("HOTMETRICS_EXPORT_INTERVAL_MS", "0"),
        ("HOTMETRICS_EXPORT_INTERVAL_MS", "1.5"),
        ("HOTMETRICS_ADAPTIVE", "maybe"),
        ("HOTMETRICS_DISABLED", "2"),
        ("HOTMETRICS_MODE", "sometimes"),
        ("HOTMETRICS_TARGET_RELATIVE_ERROR", "tight"),
        ("HOTMETRICS_ACCURACY_WINDOW_MS", "0"),
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
            ("HOTMETRICS_BUFFER_SIZE", "100"),
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
