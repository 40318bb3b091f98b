//! `Engine::builder()`: settings and their validation (the environment
//! layer laid over them is in `env.rs`).

use std::time::Duration;

use super::env::{check_rate, EnvSettings};
use super::handle::Engine;
use crate::drain::catalog;
use crate::drain::config::{Config, HealthConfig, TargetConfig};
use crate::drain::controller::{ControllerConfig, ControllerMode};
use crate::error::{ConfigError, InstallError};
use crate::export::exporter::Exporter;
use crate::hot::registry::DEFAULT_CARDINALITY_LIMIT;
use crate::report::distribution::DEFAULT_PRECISION;

/// Builds and installs an [`Engine`].
///
/// ```
/// use std::time::Duration;
///
/// let engine = hotmetrics::Engine::builder()
///     .sample_rate(0.03)
///     .rate_bounds(0.01, 0.15)
///     .buffer_capacity(2048)
///     .export_interval(Duration::from_secs(10))
///     .never_sample(["critical.", "system.shutdown"])
///     .install()
///     .expect("valid settings");
/// hotmetrics::record!(counter: "doc.builder", 1);
/// engine.shutdown().unwrap();
/// ```
#[must_use = "a builder does nothing until `install()` is called (and its `Engine` kept)"]
pub struct Builder {
    /// `Some` when set: a rate given and no mode picks the pressure
    /// controller (explicit settings are never reinterpreted).
    sample_rate: Option<f64>,
    /// `Some` when set; otherwise chosen from `sample_rate` (see `mode`).
    mode: Option<ControllerMode>,
    targets: TargetConfig,
    bounds: Option<(f64, f64)>,
    buffer_capacity: usize,
    shards: Option<usize>,
    export_interval: Duration,
    drain_interval: Duration,
    controller: ControllerConfig,
    never_sample: Vec<String>,
    cardinality_limit: usize,
    /// `Duration::ZERO`: off.
    idle_timeout: Duration,
    histogram_sigfig: u8,
    histogram_resolution: f64,
    shutdown_timeout: Duration,
    disabled: bool,
    health: HealthConfig,
    /// Units and descriptions to declare at install: (name, unit,
    /// description).
    descriptions: Vec<(String, String, String)>,
    /// Read by `from_env`; laid over the fields above by `config`, so a
    /// variable wins over its setter whatever the order of the calls.
    pub(super) env: EnvSettings,
    pub(crate) exporters: Vec<Box<dyn Exporter>>,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("sample_rate", &self.sample_rate)
            .field("mode", &self.mode)
            .field("targets", &self.targets)
            .field("bounds", &self.bounds)
            .field("buffer_capacity", &self.buffer_capacity)
            .field("shards", &self.shards)
            .field("export_interval", &self.export_interval)
            .field("controller", &self.controller)
            .field("never_sample", &self.never_sample)
            .field("descriptions", &self.descriptions)
            .field("idle_timeout", &self.idle_timeout)
            .field("env", &self.env)
            .field("exporters", &self.exporters.len())
            .finish_non_exhaustive()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            sample_rate: None,
            mode: None,
            targets: TargetConfig::default(),
            bounds: None,
            buffer_capacity: 8192,
            shards: None,
            export_interval: Duration::from_secs(10),
            drain_interval: Duration::from_millis(1),
            controller: ControllerConfig::default(),
            never_sample: Vec::new(),
            cardinality_limit: DEFAULT_CARDINALITY_LIMIT,
            idle_timeout: Duration::ZERO,
            histogram_sigfig: DEFAULT_PRECISION,
            histogram_resolution: 0.001,
            shutdown_timeout: Duration::from_secs(5),
            disabled: false,
            health: HealthConfig::default(),
            descriptions: Vec::new(),
            env: EnvSettings::default(),
            exporters: Vec::new(),
        }
    }
}

impl Engine {
    /// Starts a builder with the default settings.
    pub fn builder() -> Builder {
        Builder::default()
    }
}

/// The rate a sampled series starts at when none is given.
const DEFAULT_RATE: f64 = 0.03;
/// Error targeting's default bounds on a series' inclusion probability:
/// hot series go far below 1 %, and above ½ a series is recorded exactly.
const TARGET_MIN_RATE: f64 = 1e-7;
const TARGET_MAX_RATE: f64 = 0.5;

impl Builder {
    /// The mode in force: the one set, else the pressure controller when a
    /// rate was given, else error targeting.
    fn mode(&self) -> ControllerMode {
        match (self.mode, self.sample_rate) {
            (Some(mode), _) => mode,
            (None, Some(_)) => ControllerMode::Adaptive,
            (None, None) => ControllerMode::ErrorTarget,
        }
    }

    fn check_targets(&self) -> Result<(), ConfigError> {
        let targets = &self.targets;
        if !(targets.relative_error > 0.0 && targets.relative_error < 1.0) {
            return Err(ConfigError::new(
                "target_relative_error",
                targets.relative_error,
                "a relative standard error in (0, 1)",
            ));
        }
        if targets.window.is_some_and(|window| window.is_zero()) {
            return Err(ConfigError::new(
                "accuracy_window",
                "0s",
                "a positive duration",
            ));
        }
        if !(targets.quantile > 0.0 && targets.quantile < 1.0) {
            return Err(ConfigError::new(
                "quantile_target.quantile",
                targets.quantile,
                "a quantile in (0, 1)",
            ));
        }
        if !(targets.rank_error > 0.0 && targets.rank_error < 1.0) {
            return Err(ConfigError::new(
                "quantile_target.rank_error",
                targets.rank_error,
                "a rank error in (0, 1)",
            ));
        }
        Ok(())
    }
}

impl Builder {
    /// Initial sample rate, in `(0, 1]` (default 0.03).
    ///
    /// Given without a [`controller_mode`](Builder::controller_mode), it
    /// selects the buffer-pressure controller starting at this rate, as in
    /// earlier releases: one rate for every sampled series. Under error
    /// targeting (the default) it is only the base rate the engine starts
    /// at, before the first allocation.
    pub fn sample_rate(mut self, rate: f64) -> Self {
        self.sample_rate = Some(rate);
        self
    }

    /// Bounds on every sampled series' inclusion probability (under error
    /// targeting; default 10⁻⁷–0.5, above which a series is recorded
    /// exactly) or on the one rate (the other modes; default 0.01–0.15,
    /// widened to include `sample_rate` when not set explicitly).
    pub fn rate_bounds(mut self, min: f64, max: f64) -> Self {
        self.bounds = Some((min, max));
        self
    }

    /// Slots per ring (each owned ring and each shared shard), rounded up to
    /// a power of two (default 8192: about 8 ms of samples per ring at a
    /// million samples a second, so a flusher kept off the CPU for a few
    /// milliseconds by busy workers does not make the rings spill).
    pub fn buffer_capacity(mut self, slots: usize) -> Self {
        self.buffer_capacity = slots;
        self
    }

    /// Number of shared ring shards, and of owned rings (default: the
    /// machine's parallelism, rounded up to a power of two, at most 64). A
    /// thread claims a free owned ring on its first sampled call and pushes
    /// to it without a locked instruction; threads that find none free are
    /// spread over the shared shards so they do not contend on one tail.
    pub fn ring_shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// How often snapshots go to the exporters (default 10 s).
    pub fn export_interval(mut self, interval: Duration) -> Self {
        self.export_interval = interval;
        self
    }

    /// How long the flusher sleeps between drains when the rings stay below
    /// their high-water mark (default 1 ms).
    pub fn drain_interval(mut self, interval: Duration) -> Self {
        self.drain_interval = interval;
        self
    }

    /// `false`: one fixed rate for every sampled series
    /// ([`ControllerMode::Fixed`] at `sample_rate`). `true` (the default)
    /// keeps an adaptive mode: error targeting, or the pressure controller
    /// when a `sample_rate` was given; it turns an explicit `Fixed` into
    /// the pressure controller.
    pub fn adaptive(mut self, on: bool) -> Self {
        self.mode = match (on, self.mode) {
            (false, _) => Some(ControllerMode::Fixed),
            (true, Some(ControllerMode::Fixed)) => Some(ControllerMode::Adaptive),
            (true, mode) => mode,
        };
        self
    }

    /// Chooses the policy: [`ControllerMode::ErrorTarget`] (the default
    /// when no rate is given), [`ControllerMode::Adaptive`] (the
    /// buffer-pressure controller, the default when a rate is given),
    /// [`ControllerMode::Reference`] or [`ControllerMode::Fixed`].
    pub fn controller_mode(mut self, mode: ControllerMode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Under error targeting: the relative standard error each sampled
    /// counter's increase (and each histogram's count) should have over one
    /// accuracy window, in `(0, 1)` (default 0.01). With unit increments,
    /// 1 % needs about 10⁴ samples per window.
    pub fn target_relative_error(mut self, relative_error: f64) -> Self {
        self.targets.relative_error = relative_error;
        self
    }

    /// Under error targeting: the window the accuracy target is for
    /// (default: the export interval). A pull exporter has no interval of
    /// its own: set the scrape interval here.
    pub fn accuracy_window(mut self, window: Duration) -> Self {
        self.targets.window = Some(window);
        self
    }

    /// Under error targeting: the quantile whose rank each histogram should
    /// know to within `rank_error` (one standard error) per accuracy window
    /// (default p99 to ±0.001, about 10⁴ samples per window), independent
    /// of the bucket layout.
    pub fn quantile_target(mut self, quantile: f64, rank_error: f64) -> Self {
        self.targets.quantile = quantile;
        self.targets.rank_error = rank_error;
        self
    }

    /// How often the controller runs (default 5 s).
    pub fn controller_period(mut self, period: Duration) -> Self {
        self.controller.period = period;
        self
    }

    /// Utilisation marks: lower the rate above `high`, raise it below `low`
    /// (defaults 0.8 and 0.3).
    pub fn utilisation_marks(mut self, low: f64, high: f64) -> Self {
        self.controller.low_water = low;
        self.controller.high_water = high;
        self
    }

    /// Share of one core the flusher may spend draining before the controller
    /// lowers the rate (default 0.25).
    pub fn flusher_cpu_budget(mut self, share: f64) -> Self {
        self.controller.cpu_budget = share;
        self
    }

    /// Sampled calls per second below which a quiet engine may raise its
    /// rate (default 50 000).
    pub fn raise_budget(mut self, samples_per_sec: f64) -> Self {
        self.controller.raise_budget = samples_per_sec;
        self
    }

    /// Name prefixes whose metrics are never sampled (exact, like
    /// `critical`).
    pub fn never_sample<I, S>(mut self, prefixes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.never_sample
            .extend(prefixes.into_iter().map(Into::into));
        self
    }

    /// Label sets per metric name before the overflow series (default 2000).
    pub fn cardinality_limit(mut self, limit: usize) -> Self {
        self.cardinality_limit = limit;
        self
    }

    /// Retires a label set nothing recorded for `timeout` (default: never;
    /// `Duration::ZERO` turns it off again): its series leaves the exports
    /// and frees its place under the [cardinality
    /// limit](Builder::cardinality_limit), so label values that churn
    /// (routes added by deploys, tenants that leave) do not fill the
    /// overflow series for good. A later call brings the label set back as
    /// a new series, from zero, with a new start time (OpenTelemetry's rule
    /// for a cumulative series that restarts; Prometheus sees a counter
    /// reset). Memory stays bounded however many label values come and go:
    /// a retired series' cell is reused once no handle holds it.
    ///
    /// "Not recorded" means no sample drained, no exact call, no spilled
    /// sample and no gauge set. An unsampled call leaves no trace, but a
    /// series the allocator samples gets samples every accuracy window (it
    /// is sampled for that), so a series in use is retired only if it went
    /// a whole timeout without one; its next sampled call brings it back.
    /// The timeout must be at least the export interval, or a series
    /// recorded once could leave before any export saw it. Environment:
    /// `HOTMETRICS_IDLE_TIMEOUT_MS` (`0`: off).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let builder = hotmetrics::Engine::builder().idle_timeout(Duration::from_secs(600));
    /// # drop(builder);
    /// ```
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Decimal digits histograms keep, 1–5 (default 2): values, quantiles
    /// and bucket placement within `2·10^−digits` of the truth (relative).
    ///
    /// Histograms hold log-linear buckets, `2^bits` per octave with
    /// `bits = ⌈digits·log₂ 10⌉ − 2`, read at their midpoints:
    ///
    /// | digits | buckets per octave | relative error | a series over 1 … 10⁹ |
    /// |---:|---:|---:|---:|
    /// | 1 | 4 | 12.5 % | 120 buckets |
    /// | 2 (default) | 32 | 1.56 % | 960 buckets |
    /// | 3 | 256 | 0.195 % | 7 680 buckets |
    /// | 4 | 4 096 | 0.012 % | 122 880 buckets |
    /// | 5 | 32 768 | 0.0015 % | 983 040 buckets |
    ///
    /// A bucket count takes 1 byte, widened to 2, 4 or 8 when one would
    /// overflow. Until this release the default was 3 significant digits
    /// of an HDR histogram (about 350 KiB a series); 2 now keeps each
    /// series within about 1–2 KiB.
    ///
    /// ```
    /// let builder = hotmetrics::Engine::builder().histogram_precision(3);
    /// # drop(builder);
    /// ```
    pub fn histogram_precision(mut self, significant_digits: u8) -> Self {
        self.histogram_sigfig = significant_digits;
        self
    }

    /// Smallest histogram value told apart from 0 (default 0.001): smaller
    /// values count as 0. Values are accepted up to `resolution × 2⁶²`.
    pub fn histogram_resolution(mut self, resolution: f64) -> Self {
        self.histogram_resolution = resolution;
        self
    }

    /// The budget of `shutdown()`: its final drain and final export are
    /// done within it, or it reports `ExportTimedOut` (default 5 s). Exporters are given this deadline: the OTLP exporter
    /// fits its retries of the final snapshot into it, although its own
    /// export timeout (`OTEL_METRIC_EXPORT_TIMEOUT`, 30 s) is longer.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Health: share of samples spilled on full rings over one control
    /// period above which [`Engine::health`] reports
    /// [`Reason::Drops`](crate::Reason::Drops), in `[0, 1]` (default 0.001,
    /// i.e. 0.1 %).
    pub fn health_drop_threshold(mut self, share: f64) -> Self {
        self.health.drop_threshold = share;
        self
    }

    /// Health: a series whose arrival rate over one control period exceeds
    /// `factor` times the lowest rate of the three periods before is
    /// reported as a [`Reason::Storm`](crate::Reason::Storm); greater than
    /// 1 (default 10).
    pub fn storm_factor(mut self, factor: f64) -> Self {
        self.health.storm_factor = factor;
        self
    }

    /// Health: time without a completed drain pass after which
    /// [`Engine::health`] reports
    /// [`Reason::DrainLagging`](crate::Reason::DrainLagging) (default
    /// 250 ms; the flusher normally drains every `drain_interval`).
    pub fn drain_lag_threshold(mut self, lag: Duration) -> Self {
        self.health.drain_lag = lag;
        self
    }

    /// Builds a disabled engine: installs nothing, every `record!` stays a
    /// no-op.
    pub fn disabled(mut self, disabled: bool) -> Self {
        self.disabled = disabled;
        self
    }

    /// Adds an exporter; each runs on its own thread.
    pub fn exporter(mut self, exporter: impl Exporter) -> Self {
        self.exporters.push(Box::new(exporter));
        self
    }

    /// Adds an already boxed exporter.
    pub fn boxed_exporter(mut self, exporter: Box<dyn Exporter>) -> Self {
        self.exporters.push(exporter);
        self
    }

    /// `disabled` as set in code (the environment aside).
    pub(super) fn disabled_in_code(&self) -> bool {
        self.disabled
    }

    /// The settings with the environment read by `from_env` laid over the
    /// setters' values (environment over code), without the exporters.
    fn with_env(&self) -> Result<Builder, ConfigError> {
        let env = &self.env;
        let mut resolved = Builder {
            sample_rate: env.sample_rate.or(self.sample_rate),
            mode: env.mode.or(self.mode),
            targets: self.targets.clone(),
            bounds: self.bounds,
            buffer_capacity: env
                .buffer_capacity
                .map_or(self.buffer_capacity, |(_, slots)| slots),
            shards: self.shards,
            export_interval: env.export_interval.unwrap_or(self.export_interval),
            drain_interval: self.drain_interval,
            controller: self.controller.clone(),
            never_sample: self.never_sample.clone(),
            cardinality_limit: self.cardinality_limit,
            idle_timeout: env.idle_timeout.unwrap_or(self.idle_timeout),
            histogram_sigfig: self.histogram_sigfig,
            histogram_resolution: self.histogram_resolution,
            shutdown_timeout: self.shutdown_timeout,
            disabled: env.disabled.unwrap_or(self.disabled),
            health: self.health.clone(),
            descriptions: Vec::new(),
            env: EnvSettings::default(),
            exporters: Vec::new(),
        };
        if let Some(on) = env.adaptive {
            resolved = resolved.adaptive(on);
        }
        if let Some(relative_error) = env.relative_error {
            resolved.targets.relative_error = relative_error;
        }
        if env.window.is_some() {
            resolved.targets.window = env.window;
        }
        if env.min_rate.is_some() || env.max_rate.is_some() {
            let (old_min, old_max) = self
                .bounds
                .unwrap_or((self.controller.min_rate, self.controller.max_rate));
            let (min, max) = (
                env.min_rate.unwrap_or(old_min),
                env.max_rate.unwrap_or(old_max),
            );
            if min > max {
                // Name the variable that was set: with only the maximum
                // given, it is the one that crosses the minimum in force.
                return Err(if env.min_rate.is_none() {
                    ConfigError::new(
                        "HOTMETRICS_MAX_SAMPLE_RATE",
                        max,
                        &format!("a rate no smaller than the minimum ({min})"),
                    )
                } else {
                    ConfigError::new(
                        "HOTMETRICS_MIN_SAMPLE_RATE",
                        min,
                        &format!("a rate no larger than the maximum ({max})"),
                    )
                });
            }
            resolved.bounds = Some((min, max));
        }
        Ok(resolved)
    }

    /// Validates every setting, the environment read by `from_env` laid
    /// over the setters' values.
    pub(crate) fn config(&self) -> Result<Config, ConfigError> {
        self.with_env()?.validate()
    }

    /// Validates the settings held in the fields.
    fn validate(&self) -> Result<Config, ConfigError> {
        let mode = self.mode();
        let sample_rate = self.sample_rate.unwrap_or(DEFAULT_RATE);
        check_rate("sample_rate", sample_rate)?;
        self.check_targets()?;
        let (default_min, default_max) = if mode == ControllerMode::ErrorTarget {
            (TARGET_MIN_RATE, TARGET_MAX_RATE)
        } else {
            (self.controller.min_rate, self.controller.max_rate)
        };
        let (min_rate, max_rate) = match self.bounds {
            Some((min, max)) => {
                check_rate("rate_bounds.min", min)?;
                check_rate("rate_bounds.max", max)?;
                if min > max {
                    return Err(ConfigError::new(
                        "rate_bounds",
                        format!("({min}, {max})"),
                        "min <= max",
                    ));
                }
                if mode != ControllerMode::Fixed && !(min..=max).contains(&sample_rate) {
                    return Err(ConfigError::new(
                        "sample_rate",
                        sample_rate,
                        &format!("a rate within rate_bounds [{min}, {max}]"),
                    ));
                }
                (min, max)
            }
            None => (default_min.min(sample_rate), default_max.max(sample_rate)),
        };
        if self.buffer_capacity == 0 || self.buffer_capacity > 1 << 24 {
            return Err(ConfigError::new(
                "buffer_capacity",
                self.buffer_capacity,
                "a number of slots in 1..=16777216",
            ));
        }
        let shards = match self.shards {
            Some(0) | Some(65..) => {
                return Err(ConfigError::new(
                    "ring_shards",
                    self.shards.unwrap_or(0),
                    "a number of shards in 1..=64",
                ))
            }
            Some(shards) => shards,
            None => std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(1)
                .next_power_of_two()
                .min(64),
        };
        if self.export_interval.is_zero() {
            return Err(ConfigError::new(
                "export_interval",
                "0s",
                "a positive duration",
            ));
        }
        if self.drain_interval.is_zero() {
            return Err(ConfigError::new(
                "drain_interval",
                "0s",
                "a positive duration",
            ));
        }
        if self.controller.period.is_zero() {
            return Err(ConfigError::new(
                "controller_period",
                "0s",
                "a positive duration",
            ));
        }
        let marks = (self.controller.low_water, self.controller.high_water);
        if !(marks.0 > 0.0 && marks.0 < marks.1 && marks.1 <= 1.0) {
            return Err(ConfigError::new(
                "utilisation_marks",
                format!("({}, {})", marks.0, marks.1),
                "0 < low < high <= 1",
            ));
        }
        if !(self.controller.cpu_budget > 0.0 && self.controller.cpu_budget <= 1.0) {
            return Err(ConfigError::new(
                "flusher_cpu_budget",
                self.controller.cpu_budget,
                "a share of one core in (0, 1]",
            ));
        }
        if self.controller.raise_budget.is_nan() || self.controller.raise_budget < 0.0 {
            return Err(ConfigError::new(
                "raise_budget",
                self.controller.raise_budget,
                "a non-negative number of samples per second",
            ));
        }
        if self.cardinality_limit == 0 {
            return Err(ConfigError::new("cardinality_limit", 0, "at least 1"));
        }
        if !self.idle_timeout.is_zero() && self.idle_timeout < self.export_interval {
            return Err(ConfigError::new(
                "idle_timeout",
                format!("{:?}", self.idle_timeout),
                &format!(
                    "at least the export interval ({:?}), or zero to keep idle series",
                    self.export_interval
                ),
            ));
        }
        if !(1..=5).contains(&self.histogram_sigfig) {
            return Err(ConfigError::new(
                "histogram_precision",
                self.histogram_sigfig,
                "1 to 5 decimal digits",
            ));
        }
        if !(self.histogram_resolution.is_finite() && self.histogram_resolution > 0.0) {
            return Err(ConfigError::new(
                "histogram_resolution",
                self.histogram_resolution,
                "a positive finite number",
            ));
        }
        if !(0.0..=1.0).contains(&self.health.drop_threshold) {
            return Err(ConfigError::new(
                "health_drop_threshold",
                self.health.drop_threshold,
                "a share of samples in [0, 1]",
            ));
        }
        if !(self.health.storm_factor.is_finite() && self.health.storm_factor > 1.0) {
            return Err(ConfigError::new(
                "storm_factor",
                self.health.storm_factor,
                "a finite factor greater than 1",
            ));
        }
        if self.health.drain_lag.is_zero() {
            return Err(ConfigError::new(
                "drain_lag_threshold",
                "0s",
                "a positive duration",
            ));
        }
        for prefix in &self.never_sample {
            if prefix.is_empty() {
                return Err(ConfigError::new(
                    "never_sample",
                    "",
                    "non-empty name prefixes (an empty prefix would make every metric exact)",
                ));
            }
        }
        let mut controller = self.controller.clone();
        controller.mode = mode;
        controller.min_rate = min_rate;
        controller.max_rate = max_rate;
        controller.home_rate = sample_rate;
        let mut targets = self.targets.clone();
        targets.window.get_or_insert(self.export_interval);
        Ok(Config {
            sample_rate,
            targets,
            buffer_capacity: self.buffer_capacity,
            shards,
            export_interval: self.export_interval,
            drain_interval: self.drain_interval,
            controller,
            never_sample: self.never_sample.clone(),
            cardinality_limit: self.cardinality_limit,
            idle_timeout: (!self.idle_timeout.is_zero()).then_some(self.idle_timeout),
            histogram_sigfig: self.histogram_sigfig,
            histogram_resolution: self.histogram_resolution,
            histogram_max: self.histogram_resolution * (1u64 << 62) as f64,
            shutdown_timeout: self.shutdown_timeout,
            disabled: self.disabled,
            health: self.health.clone(),
        })
    }

    /// Validates the settings, installs the engine globally and starts its
    /// flusher and exporter threads.
    ///
    /// # Errors
    ///
    /// [`InstallError::Config`] for an invalid setting,
    /// [`InstallError::AlreadyInstalled`] if another engine is installed.
    pub fn install(self) -> Result<Engine, InstallError> {
        let config = self.config()?;
        let engine = Engine::start(config, self.exporters)?;
        for (name, unit, description) in &self.descriptions {
            catalog::describe(name, unit, description);
        }
        Ok(engine)
    }

    /// Declares the unit (UCUM: `"s"`, `"By"`, `"{request}"`; empty for
    /// none) and description of metric `name`, for OTLP and Prometheus
    /// (`# UNIT`, `# HELP`), when the engine is installed. As
    /// [`describe`](fn@crate::describe): the first declaration of a name
    /// wins, and declarations outlive the engine.
    ///
    /// ```
    /// let engine = hotmetrics::Engine::builder()
    ///     .describe("doc.builder.latency", "ms", "Time to serve a request")
    ///     .install()
    ///     .unwrap();
    /// hotmetrics::record!(histogram: "doc.builder.latency", 4.2);
    /// let snapshot = engine.snapshot();
    /// let series = snapshot.series("doc.builder.latency", &[]).unwrap();
    /// assert_eq!(series.unit.as_deref(), Some("ms"));
    /// assert_eq!(series.description.as_deref(), Some("Time to serve a request"));
    /// # engine.shutdown().unwrap();
    /// ```
    pub fn describe(
        mut self,
        name: impl Into<String>,
        unit: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        self.descriptions
            .push((name.into(), unit.into(), description.into()));
        self
    }
}
