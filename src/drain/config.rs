//! The engine's validated settings, as the consumer side reads them. The
//! builder (`engine/builder.rs`) makes them; the flusher, the controller and
//! the health monitor only read them.

use std::time::Duration;

use super::controller::ControllerConfig;

/// Validated engine settings.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) sample_rate: f64,
    pub(crate) buffer_capacity: usize,
    pub(crate) shards: usize,
    pub(crate) export_interval: Duration,
    pub(crate) drain_interval: Duration,
    pub(crate) controller: ControllerConfig,
    pub(crate) never_sample: Vec<String>,
    pub(crate) cardinality_limit: usize,
    pub(crate) histogram_sigfig: u8,
    pub(crate) histogram_resolution: f64,
    pub(crate) histogram_max: f64,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) disabled: bool,
    pub(crate) health: HealthConfig,
}

/// Smallest rate accepted: samplers work in `f32`, and a smaller rate
/// would round to 0 there (never sampling) instead of being refused.
pub(crate) const MIN_RATE: f64 = 1e-30;

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
