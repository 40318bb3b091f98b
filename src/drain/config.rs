//! The engine's validated settings, as the consumer side reads them. The
//! builder (`engine/builder.rs`) makes them; the flusher, the controller and
//! the health monitor only read them.

use std::time::Duration;

use super::controller::{ControllerConfig, ControllerMode};
use crate::hot::cell::STEP_OFF;
use crate::hot::sampler::step_for;

/// Validated engine settings.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// The rate the engine starts at (under error targeting: the base rate
    /// before the first allocation).
    pub(crate) sample_rate: f64,
    /// Error targeting's accuracy targets.
    pub(crate) targets: TargetConfig,
    pub(crate) buffer_capacity: usize,
    pub(crate) shards: usize,
    pub(crate) export_interval: Duration,
    pub(crate) drain_interval: Duration,
    pub(crate) controller: ControllerConfig,
    pub(crate) never_sample: Vec<String>,
    pub(crate) cardinality_limit: usize,
    /// Series not recorded for this long are retired (`None`: never).
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) histogram_sigfig: u8,
    pub(crate) histogram_resolution: f64,
    pub(crate) histogram_max: f64,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) disabled: bool,
    pub(crate) health: HealthConfig,
}

impl Config {
    /// The step a new counter starts with (see `registry::configure`):
    /// under error targeting exact until its rate is known, otherwise 1.
    pub(crate) fn new_counter_step(&self) -> u64 {
        if self.controller.mode == ControllerMode::ErrorTarget {
            STEP_OFF
        } else {
            1
        }
    }
}

impl Config {
    /// The step sample-first calls (OpenTelemetry instruments) of a new
    /// metric start with: under error targeting the one that gives the
    /// upper bound on a series' probability (high until the rate is known),
    /// otherwise 1 (the one rate).
    pub(crate) fn sample_first_start(&self) -> u64 {
        if self.controller.mode == ControllerMode::ErrorTarget {
            step_for(self.controller.max_rate, self.sample_rate)
        } else {
            1
        }
    }
}

/// Smallest rate accepted: samplers work in `f32`, and a smaller rate
/// would round to 0 there (never sampling) instead of being refused.
pub(crate) const MIN_RATE: f64 = 1e-30;

/// What error targeting aims at, per series and accuracy window.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct TargetConfig {
    /// Relative standard error of a counter's increase (and a histogram's
    /// count) over one window.
    pub(crate) relative_error: f64,
    /// The accuracy window; `None` in the builder until resolved to the
    /// export interval.
    pub(crate) window: Option<Duration>,
    /// The quantile whose rank each histogram should know ...
    pub(crate) quantile: f64,
    /// ... to within this rank error (one standard error) per window.
    pub(crate) rank_error: f64,
}

impl Default for TargetConfig {
    fn default() -> Self {
        Self {
            relative_error: 0.01,
            window: None,
            quantile: 0.99,
            rank_error: 0.001,
        }
    }
}

impl TargetConfig {
    /// The window in seconds (the builder always resolves it).
    pub(crate) fn window_secs(&self) -> f64 {
        self.window.map_or(10.0, |window| window.as_secs_f64())
    }
}

/// The thresholds, from the builder.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct HealthConfig {
    /// Share of samples spilled over a period above which the engine is
    /// degraded.
    pub(crate) drop_threshold: f64,
    /// Rate jump that makes a storm.
    pub(crate) storm_factor: f64,
    /// Longest time without a completed drain before the engine is degraded.
    pub(crate) drain_lag: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            drop_threshold: 0.001,
            storm_factor: 10.0,
            drain_lag: Duration::from_millis(250),
        }
    }
}
