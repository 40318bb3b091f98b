//! `Builder::exporters_from_env`: the OpenTelemetry SDK environment
//! (`OTEL_METRICS_EXPORTER`, `OTEL_METRIC_EXPORT_INTERVAL`,
//! `OTEL_SDK_DISABLED`) applied to an engine builder.

use super::builder::Builder;
use crate::error::ConfigError;
use crate::export::env::EnvSource;
use crate::export::select::select;

impl Builder {
    /// Configures the engine's export by the OpenTelemetry environment:
    /// adds the exporters chosen by `OTEL_METRICS_EXPORTER` (see
    /// [`export::from_env`](crate::export::from_env); the console when it
    /// is unset), sets the export interval from `OTEL_METRIC_EXPORT_INTERVAL`
    /// (milliseconds; the builder's interval is kept when it is unset), and
    /// builds a disabled engine when `OTEL_SDK_DISABLED=true`.
    ///
    /// ```
    /// let engine = hotmetrics::Engine::builder()
    ///     .exporters_from_vars([("OTEL_METRICS_EXPORTER", "none")])
    ///     .expect("valid OTEL_* settings")
    ///     .install()
    ///     .unwrap();
    /// engine.shutdown().unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// As [`export::from_env`](crate::export::from_env), and for an export
    /// interval that is not a positive whole number of milliseconds.
    pub fn exporters_from_env(self) -> Result<Self, ConfigError> {
        self.otel(&EnvSource::process())
    }

    /// [`Builder::exporters_from_env`] over the given variables instead of
    /// the process environment.
    ///
    /// # Errors
    ///
    /// As [`Builder::exporters_from_env`].
    pub fn exporters_from_vars<I, K, V>(self, vars: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        self.otel(&EnvSource::from_vars(vars))
    }

    fn otel(mut self, env: &EnvSource) -> Result<Self, ConfigError> {
        if env.bool("OTEL_SDK_DISABLED")? == Some(true) {
            return Ok(self.disabled(true));
        }
        if let Some((key, interval)) = env.millis(&["OTEL_METRIC_EXPORT_INTERVAL"])? {
            if interval.is_zero() {
                return Err(ConfigError::new(
                    key,
                    "0",
                    "a positive whole number of milliseconds",
                ));
            }
            self = self.export_interval(interval);
        }
        for exporter in select(env)? {
            self = self.boxed_exporter(exporter);
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_takes_interval_and_disabled() {
        let builder = Builder::default()
            .exporters_from_vars([
                ("OTEL_METRICS_EXPORTER", "none"),
                ("OTEL_METRIC_EXPORT_INTERVAL", "2500"),
            ])
            .unwrap();
        let config = builder.config().unwrap();
        assert_eq!(
            config.export_interval,
            std::time::Duration::from_millis(2500)
        );
        assert!(builder.exporters.is_empty());
        let builder = Builder::default()
            .exporters_from_vars([("OTEL_SDK_DISABLED", "TRUE")])
            .unwrap();
        assert!(builder.config().unwrap().disabled);
        assert!(Builder::default()
            .exporters_from_vars([("OTEL_METRIC_EXPORT_INTERVAL", "0")])
            .is_err());
    }
}
