//! `Builder::from_env`: the environment layer, one rule for both families
//! of variables.
//!
//! # The rule
//!
//! * **Environment over code.** A variable that is set wins over the
//!   setter it matches, whether the setter is called before or after
//!   `from_env()`: the values read are kept apart from the setters' and laid
//!   over them when the engine is installed, so a deployment can change a
//!   setting without knowing where the program calls `from_env()`.
//! * **`HOTMETRICS_*` over `OTEL_*`.** Where both families name the same
//!   setting (`HOTMETRICS_EXPORT_INTERVAL_MS` / `OTEL_METRIC_EXPORT_INTERVAL`,
//!   `HOTMETRICS_DISABLED` / `OTEL_SDK_DISABLED`), the crate's own variable
//!   wins, being the more specific. Both are still parsed: a malformed value
//!   is an error even when the other one would win.
//! * **Exporters are added, never removed.** `OTEL_METRICS_EXPORTER` adds
//!   the exporters it names beside those given in code (a program may read
//!   its own in-memory exporter); unset, it adds none: no console table and
//!   no collector unless asked (`OTEL_METRICS_EXPORTER=console`).
//! * **Only when asked.** A plain `install()` reads no environment;
//!   `from_env()` is the one call that does.
//!
//! An empty value counts as unset, as the OpenTelemetry specification says.

use std::time::Duration;

use crate::drain::config::MIN_RATE;
use crate::drain::controller::ControllerMode;
use crate::error::ConfigError;
use crate::export::env::EnvSource;

/// `HOTMETRICS_BUFFER_CAPACITY`'s earlier name, still accepted.
const BUFFER_ALIAS: &str = "HOTMETRICS_BUFFER_SIZE";

/// The settings read by `from_env`, kept apart from the setters' values and
/// laid over them by `Builder::config`. `None`: the variable was unset.
#[derive(Clone, Debug, Default)]
pub(super) struct EnvSettings {
    pub(super) sample_rate: Option<f64>,
    pub(super) mode: Option<ControllerMode>,
    /// Applied after `mode`, as [`Builder::adaptive`] is.
    pub(super) adaptive: Option<bool>,
    pub(super) relative_error: Option<f64>,
    pub(super) window: Option<Duration>,
    pub(super) min_rate: Option<f64>,
    pub(super) max_rate: Option<f64>,
    /// With the name of the variable it came from (the alias or not).
    pub(super) buffer_capacity: Option<(&'static str, usize)>,
    pub(super) export_interval: Option<Duration>,
    /// `Duration::ZERO`: off.
    pub(super) idle_timeout: Option<Duration>,
    pub(super) disabled: Option<bool>,
}

impl EnvSettings {
    /// Reads what is set in `env` over `self` (a later `from_env` call wins
    /// for the variables it finds).
    ///
    /// `hotmetrics_family`: read `HOTMETRICS_*` too (the deprecated
    /// `exporters_from_*` read only `OTEL_*`).
    pub(super) fn read(
        &mut self,
        env: &EnvSource,
        hotmetrics_family: bool,
    ) -> Result<(), ConfigError> {
        if hotmetrics_family {
            self.read_hotmetrics(env)?;
        }
        // OTEL_* first, so the HOTMETRICS_* variable of a pair wins.
        if let Some((key, interval)) = env.millis(&["OTEL_METRIC_EXPORT_INTERVAL"])? {
            if interval.is_zero() {
                return Err(ConfigError::new(
                    key,
                    "0",
                    "a positive whole number of milliseconds",
                ));
            }
            self.export_interval = Some(interval);
        }
        if let Some(disabled) = env.bool("OTEL_SDK_DISABLED")? {
            self.disabled = Some(disabled);
        }
        if !hotmetrics_family {
            return Ok(());
        }
        if let Some((key, raw)) = env.first(&["HOTMETRICS_EXPORT_INTERVAL_MS"]) {
            self.export_interval = Some(parse_millis(key, &raw)?);
        }
        if let Some((key, raw)) = env.first(&["HOTMETRICS_IDLE_TIMEOUT_MS"]) {
            self.idle_timeout = Some(parse_millis_or_off(key, &raw)?);
        }
        if let Some((key, raw)) = env.first(&["HOTMETRICS_DISABLED"]) {
            self.disabled = Some(parse_bool(key, &raw)?);
        }
        Ok(())
    }

    fn read_hotmetrics(&mut self, env: &EnvSource) -> Result<(), ConfigError> {
        if let Some((key, raw)) = env.first(&["HOTMETRICS_SAMPLE_RATE"]) {
            self.sample_rate = Some(parse_rate(key, &raw)?);
        }
        if let Some((key, raw)) = env.first(&["HOTMETRICS_MODE"]) {
            self.mode = Some(parse_mode(key, &raw)?);
        }
        if let Some((key, raw)) = env.first(&["HOTMETRICS_ADAPTIVE"]) {
            self.adaptive = Some(parse_bool(key, &raw)?);
        }
        if let Some((key, raw)) = env.first(&["HOTMETRICS_TARGET_RELATIVE_ERROR"]) {
            self.relative_error =
                Some(raw.parse::<f64>().map_err(|_| {
                    ConfigError::new(key, &raw, "a relative standard error in (0, 1)")
                })?);
        }
        if let Some((key, raw)) = env.first(&["HOTMETRICS_ACCURACY_WINDOW_MS"]) {
            self.window = Some(parse_millis(key, &raw)?);
        }
        if let Some((key, raw)) = env.first(&["HOTMETRICS_MIN_SAMPLE_RATE"]) {
            self.min_rate = Some(parse_rate(key, &raw)?);
        }
        if let Some((key, raw)) = env.first(&["HOTMETRICS_MAX_SAMPLE_RATE"]) {
            self.max_rate = Some(parse_rate(key, &raw)?);
        }
        if let (Some(min), Some(max)) = (self.min_rate, self.max_rate) {
            if min > max {
                return Err(ConfigError::new(
                    "HOTMETRICS_MIN_SAMPLE_RATE",
                    min,
                    &format!("a rate no larger than HOTMETRICS_MAX_SAMPLE_RATE ({max})"),
                ));
            }
        }
        // Both names are parsed; the one that matches the setter wins.
        let alias = env.first(&[BUFFER_ALIAS]);
        if let Some((key, raw)) = &alias {
            self.buffer_capacity = Some((*key, parse_slots(key, raw)?));
        }
        if let Some((key, raw)) = env.first(&["HOTMETRICS_BUFFER_CAPACITY"]) {
            self.buffer_capacity = Some((key, parse_slots(key, &raw)?));
        } else if alias.is_some() {
            log::warn!(
                target: "hotmetrics",
                "{BUFFER_ALIAS} is deprecated: set HOTMETRICS_BUFFER_CAPACITY instead"
            );
        }
        Ok(())
    }
}

fn parse_rate(setting: &str, raw: &str) -> Result<f64, ConfigError> {
    let rate = raw
        .trim()
        .parse::<f64>()
        .map_err(|_| ConfigError::new(setting, raw, "a number in (0, 1]"))?;
    check_rate(setting, rate).map_err(|_| ConfigError::new(setting, raw, "a number in (0, 1]"))?;
    Ok(rate)
}

fn parse_millis(setting: &str, raw: &str) -> Result<Duration, ConfigError> {
    raw.trim()
        .parse::<u64>()
        .ok()
        .filter(|millis| *millis > 0)
        .map(Duration::from_millis)
        .ok_or_else(|| ConfigError::new(setting, raw, "a whole number of milliseconds > 0"))
}

/// A whole number of milliseconds, `0` meaning off.
fn parse_millis_or_off(setting: &str, raw: &str) -> Result<Duration, ConfigError> {
    raw.trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| ConfigError::new(setting, raw, "a whole number of milliseconds (0: off)"))
}

fn parse_slots(setting: &str, raw: &str) -> Result<usize, ConfigError> {
    raw.trim()
        .parse::<usize>()
        .ok()
        .filter(|slots| (1..=1 << 24).contains(slots))
        .ok_or_else(|| ConfigError::new(setting, raw, "a whole number of slots in 1..=16777216"))
}

fn parse_bool(setting: &str, raw: &str) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::new(
            setting,
            raw,
            "true or false (also 1/0, yes/no, on/off)",
        )),
    }
}

fn parse_mode(setting: &str, raw: &str) -> Result<ControllerMode, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "target" | "error_target" | "error-target" => Ok(ControllerMode::ErrorTarget),
        "adaptive" | "pressure" => Ok(ControllerMode::Adaptive),
        "reference" => Ok(ControllerMode::Reference),
        "fixed" => Ok(ControllerMode::Fixed),
        _ => Err(ConfigError::new(
            setting,
            raw,
            "target, adaptive (or pressure), reference or fixed",
        )),
    }
}

/// A rate in `[MIN_RATE, 1]`.
pub(super) fn check_rate(setting: &str, rate: f64) -> Result<(), ConfigError> {
    if (MIN_RATE..=1.0).contains(&rate) {
        Ok(())
    } else {
        Err(ConfigError::new(
            setting,
            rate,
            "a number in (0, 1], at least 1e-30",
        ))
    }
}
