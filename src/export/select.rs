//! Choosing exporters by `OTEL_METRICS_EXPORTER`, as OpenTelemetry SDKs do.

use crate::error::ConfigError;
use crate::export::env::EnvSource;
use crate::export::exporter::Exporter;
use crate::export::stdout::Stdout;

const ACCEPTED: &str = "a comma-separated list of otlp, prometheus, console, none";

/// The exporters named by `OTEL_METRICS_EXPORTER`, each configured by its
/// own `OTEL_*` variables (and `HOTMETRICS_EXPORT_VARIANCE`).
///
/// | `OTEL_METRICS_EXPORTER` | exporters |
/// |---|---|
/// | unset or empty | none |
/// | `otlp` | [`Otlp::from_env`](crate::export::Otlp::from_env) (feature `otlp`) |
/// | `prometheus` | [`Prometheus::from_env`](crate::export::Prometheus::from_env) (feature `prometheus`): serves `/metrics` |
/// | `console` | [`Stdout`] |
/// | `none` | none |
/// | `otlp,prometheus` | both, each on its own thread |
///
/// With `OTEL_SDK_DISABLED=true` the list is empty. Unlike the
/// OpenTelemetry SDKs, whose default is `otlp`, nothing set means no
/// exporter: nothing is sent to a collector that may not exist, and
/// nothing is printed unless asked (`OTEL_METRICS_EXPORTER=console`).
///
/// ```
/// let exporters = hotmetrics::export::from_env().expect("valid OTEL_* settings");
/// let mut builder = hotmetrics::Engine::builder();
/// for exporter in exporters {
///     builder = builder.boxed_exporter(exporter);
/// }
/// # drop(builder);
/// ```
///
/// [`Builder::from_env`](crate::Builder::from_env) adds these exporters to
/// the builder's and also applies `OTEL_METRIC_EXPORT_INTERVAL`,
/// `OTEL_SDK_DISABLED` and the `HOTMETRICS_*` variables to the engine.
///
/// # Errors
///
/// [`ConfigError`] for a name outside the list, a name whose feature is
/// not built in, or a setting the chosen exporter refuses (an unknown
/// `OTEL_EXPORTER_OTLP_PROTOCOL`, a Prometheus port already in use…).
pub fn from_env() -> Result<Vec<Box<dyn Exporter>>, ConfigError> {
    select(&EnvSource::process())
}

/// [`from_env`] over the given variables instead of the process
/// environment.
///
/// ```
/// let exporters =
///     hotmetrics::export::from_vars([("OTEL_METRICS_EXPORTER", "console,none")]).unwrap();
/// assert_eq!(exporters.len(), 1);
/// assert_eq!(exporters[0].name(), "stdout");
/// ```
///
/// # Errors
///
/// As [`from_env`].
pub fn from_vars<I, K, V>(vars: I) -> Result<Vec<Box<dyn Exporter>>, ConfigError>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    select(&EnvSource::from_vars(vars))
}

fn select(env: &EnvSource) -> Result<Vec<Box<dyn Exporter>>, ConfigError> {
    if env.bool("OTEL_SDK_DISABLED")? == Some(true) {
        return Ok(Vec::new());
    }
    select_named(env)
}

/// The exporters `OTEL_METRICS_EXPORTER` names (none when it is unset),
/// whatever `OTEL_SDK_DISABLED` says: the caller decides whether the engine
/// is disabled.
pub(crate) fn select_named(env: &EnvSource) -> Result<Vec<Box<dyn Exporter>>, ConfigError> {
    let Some(raw) = env.get("OTEL_METRICS_EXPORTER") else {
        return Ok(Vec::new());
    };
    let mut names: Vec<String> = Vec::new();
    for name in raw
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        let name = name.to_ascii_lowercase();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let mut exporters: Vec<Box<dyn Exporter>> = Vec::new();
    for name in &names {
        match name.as_str() {
            "otlp" => exporters.push(otlp(env, &raw)?),
            "prometheus" => exporters.push(prometheus(env, &raw)?),
            "console" => exporters.push(Box::new(Stdout::new())),
            "none" => {}
            _ => return Err(ConfigError::new("OTEL_METRICS_EXPORTER", &raw, ACCEPTED)),
        }
    }
    Ok(exporters)
}

#[cfg(feature = "otlp")]
fn otlp(env: &EnvSource, _raw: &str) -> Result<Box<dyn Exporter>, ConfigError> {
    let exporter = crate::export::otlp::Otlp::builder()
        .env_source(env.clone())
        .build()?;
    Ok(Box::new(exporter))
}

#[cfg(not(feature = "otlp"))]
fn otlp(_env: &EnvSource, raw: &str) -> Result<Box<dyn Exporter>, ConfigError> {
    Err(ConfigError::new(
        "OTEL_METRICS_EXPORTER",
        raw,
        "exporters built into this program (otlp needs the `otlp` feature)",
    ))
}

#[cfg(feature = "prometheus")]
fn prometheus(env: &EnvSource, _raw: &str) -> Result<Box<dyn Exporter>, ConfigError> {
    let exporter = crate::export::prometheus::Prometheus::builder()
        .env_source(env.clone())
        .build()?;
    Ok(Box::new(exporter))
}

#[cfg(not(feature = "prometheus"))]
fn prometheus(_env: &EnvSource, raw: &str) -> Result<Box<dyn Exporter>, ConfigError> {
    Err(ConfigError::new(
        "OTEL_METRICS_EXPORTER",
        raw,
        "exporters built into this program (prometheus needs the `prometheus` feature)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(vars: &[(&str, &str)]) -> Result<Vec<String>, ConfigError> {
        from_vars(vars.iter().copied())
            .map(|list| list.iter().map(|e| e.name().to_string()).collect())
    }

    #[test]
    fn nothing_by_default_and_the_console_when_asked() {
        assert_eq!(names(&[]).unwrap(), Vec::<String>::new());
        assert_eq!(
            names(&[("OTEL_METRICS_EXPORTER", "  ")]).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            names(&[("OTEL_METRICS_EXPORTER", "console")]).unwrap(),
            ["stdout"]
        );
        assert_eq!(
            names(&[("OTEL_METRICS_EXPORTER", "none")]).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            names(&[
                ("OTEL_METRICS_EXPORTER", "console"),
                ("OTEL_SDK_DISABLED", "true")
            ])
            .unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn unknown_names_are_refused() {
        let error = names(&[("OTEL_METRICS_EXPORTER", "otlp,zipkin")]).unwrap_err();
        assert_eq!(error.setting, "OTEL_METRICS_EXPORTER");
        assert_eq!(error.value, "otlp,zipkin");
        assert!(names(&[("OTEL_SDK_DISABLED", "maybe")]).is_err());
    }

    #[cfg(all(feature = "otlp", feature = "prometheus"))]
    #[test]
    fn comma_list_builds_each_once() {
        let chosen = names(&[
            ("OTEL_METRICS_EXPORTER", "otlp, Prometheus ,console,otlp"),
            ("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1"),
            ("OTEL_EXPORTER_PROMETHEUS_PORT", "0"),
        ])
        .unwrap();
        assert_eq!(chosen, ["otlp", "prometheus", "stdout"]);
        let error = names(&[
            ("OTEL_METRICS_EXPORTER", "otlp"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ])
        .unwrap_err();
        assert_eq!(error.setting, "OTEL_EXPORTER_OTLP_PROTOCOL");
    }
}
