//! `Builder::from_env`: the environment (`HOTMETRICS_*` and the
//! engine-level `OTEL_*` variables) read into a builder, by the rule
//! written in `env.rs`.

use super::builder::Builder;
use crate::error::ConfigError;
use crate::export::env::EnvSource;
use crate::export::select::select_named;

impl Builder {
    /// Reads the environment: the `HOTMETRICS_*` variables and the
    /// engine-level OpenTelemetry ones (`OTEL_METRICS_EXPORTER`,
    /// `OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_SDK_DISABLED`).
    ///
    /// One rule: **a variable that is set wins over code**, wherever
    /// `from_env()` sits among the setters; where the two families name the
    /// same setting, the `HOTMETRICS_*` variable wins. Exporters named by
    /// `OTEL_METRICS_EXPORTER` are added beside those given in code; with it
    /// unset none is added (the console only with
    /// `OTEL_METRICS_EXPORTER=console`). A plain [`install`](Builder::install)
    /// without `from_env()` reads no environment.
    ///
    /// | variable | setter |
    /// |---|---|
    /// | `HOTMETRICS_MODE` | [`controller_mode`](Builder::controller_mode) |
    /// | `HOTMETRICS_SAMPLE_RATE` | [`sample_rate`](Builder::sample_rate) |
    /// | `HOTMETRICS_MIN_SAMPLE_RATE`, `HOTMETRICS_MAX_SAMPLE_RATE` | [`rate_bounds`](Builder::rate_bounds) |
    /// | `HOTMETRICS_ADAPTIVE` | [`adaptive`](Builder::adaptive) |
    /// | `HOTMETRICS_TARGET_RELATIVE_ERROR` | [`target_relative_error`](Builder::target_relative_error) |
    /// | `HOTMETRICS_ACCURACY_WINDOW_MS` | [`accuracy_window`](Builder::accuracy_window) |
    /// | `HOTMETRICS_BUFFER_CAPACITY` (deprecated alias `HOTMETRICS_BUFFER_SIZE`) | [`buffer_capacity`](Builder::buffer_capacity) |
    /// | `HOTMETRICS_EXPORT_INTERVAL_MS`, else `OTEL_METRIC_EXPORT_INTERVAL` | [`export_interval`](Builder::export_interval) |
    /// | `HOTMETRICS_IDLE_TIMEOUT_MS` (`0`: off) | [`idle_timeout`](Builder::idle_timeout) |
    /// | `HOTMETRICS_DISABLED`, else `OTEL_SDK_DISABLED` | [`disabled`](Builder::disabled) |
    /// | `OTEL_METRICS_EXPORTER` | [`exporter`](Builder::exporter) (added; see [`export::from_env`](crate::export::from_env)) |
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let builder = hotmetrics::Engine::builder()
    ///     .from_vars([("HOTMETRICS_EXPORT_INTERVAL_MS", "2000")])
    ///     .expect("valid settings")
    ///     // Called after from_env, the setter still loses to the variable.
    ///     .export_interval(Duration::from_secs(30));
    /// let engine = builder.install().unwrap();
    /// engine.shutdown().unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`ConfigError`] naming the variable and its value when one does not
    /// parse, or when an exporter named by `OTEL_METRICS_EXPORTER` refuses
    /// its own `OTEL_*` settings (the exporters are built here: a
    /// Prometheus port already in use is reported now).
    pub fn from_env(self) -> Result<Self, ConfigError> {
        self.read_env(&EnvSource::process(), true)
    }

    /// [`Builder::from_env`] over the given variables instead of the
    /// process environment (for tests and embedding).
    ///
    /// # Errors
    ///
    /// As [`Builder::from_env`].
    pub fn from_vars<I, K, V>(self, vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        self.read_env(&EnvSource::from_vars(vars), true)
    }

    /// The `OTEL_*` part of [`Builder::from_env`] alone.
    ///
    /// # Errors
    ///
    /// As [`Builder::from_env`].
    #[deprecated(
        since = "0.1.1",
        note = "`from_env()` reads the OTEL_* variables too, with one precedence rule; \
                with nothing set this no longer adds a console exporter"
    )]
    pub fn exporters_from_env(self) -> Result<Self, ConfigError> {
        self.read_env(&EnvSource::process(), false)
    }

    /// [`Builder::exporters_from_env`] over the given variables.
    ///
    /// # Errors
    ///
    /// As [`Builder::from_env`].
    #[deprecated(
        since = "0.1.1",
        note = "`from_vars()` reads the OTEL_* variables too, with one precedence rule"
    )]
    pub fn exporters_from_vars<I, K, V>(self, vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        self.read_env(&EnvSource::from_vars(vars), false)
    }

    fn read_env(mut self, env: &EnvSource, hotmetrics_family: bool) -> Result<Self, ConfigError> {
        let mut settings = self.env.clone();
        settings.read(env, hotmetrics_family)?;
        // A disabled engine starts no exporter: do not build one (a
        // Prometheus exporter would bind its port).
        let disabled = settings.disabled.unwrap_or(self.disabled_in_code());
        self.env = settings;
        if !disabled {
            for exporter in select_named(env)? {
                self = self.boxed_exporter(exporter);
            }
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    #[allow(deprecated)]
    fn the_deprecated_otel_reader_takes_interval_and_disabled_only() {
        let builder = Builder::default()
            .exporters_from_vars([
                ("OTEL_METRICS_EXPORTER", "none"),
                ("OTEL_METRIC_EXPORT_INTERVAL", "2500"),
                ("HOTMETRICS_EXPORT_INTERVAL_MS", "100"),
            ])
            .unwrap();
        let config = builder.config().unwrap();
        assert_eq!(config.export_interval, Duration::from_millis(2500));
        assert!(builder.exporters.is_empty());
        let builder = Builder::default()
            .exporters_from_vars([("OTEL_SDK_DISABLED", "TRUE")])
            .unwrap();
        assert!(builder.config().unwrap().disabled);
        assert!(Builder::default()
            .exporters_from_vars([("OTEL_METRIC_EXPORT_INTERVAL", "0")])
            .is_err());
        // Nothing set: no exporter, no console table.
        let builder = Builder::default()
            .exporters_from_vars([("UNRELATED", "x")])
            .unwrap();
        assert!(builder.exporters.is_empty());
    }
}
