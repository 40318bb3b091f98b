//! The adaptive rate controller: a pure function from what the flusher saw
//! during one control period to the rate for the next.
//!
//! Being pure, it is tested by simulation (`tests/controller.rs`) without
//! threads or clocks. The policy:
//!
//! * **Pressure lowers the rate at once, proportionally.** Pressure is ring
//!   utilisation above the high-water mark, any drop, or the flusher's busy
//!   time above its CPU budget. The new rate aims the worst of these at the
//!   middle of the band (`(low + high) / 2` utilisation, 80 % of the CPU
//!   budget). Drops reveal demand the full ring could not show, so demand is
//!   scaled by `(samples + drops) / samples`. One step absorbs a 10× burst.
//!   A near miss (a peak above the high-water mark with no drop) only trims
//!   the rate back to the mark: such a peak is often one late drain (the
//!   flusher descheduled for a few milliseconds), and cutting to the middle
//!   of the band on every such period would walk the rate down far below
//!   what the load needs.
//! * **Increases are capped** at ×[`ControllerConfig::max_increase`] per
//!   period and happen only when the ring sits below the low-water mark and
//!   the flusher is well inside its budget. Up to the configured rate
//!   ([`ControllerConfig::home_rate`]) that is enough: after a burst the rate
//!   climbs back. Above it the sampled throughput must also be below
//!   [`ControllerConfig::raise_budget`]: a busy hot path keeps its configured
//!   rate (extra samples would cost its threads time), a quiet one earns more
//!   samples and smaller error bars.
//! * **Between the marks nothing changes** (a dead band), so a settled rate
//!   does not oscillate.
//!
//! [`ControllerMode::Reference`] is the classic rule (halve above 80 %,
//! ×1.5 below 30 %) kept for comparison; [`ControllerMode::Fixed`] never
//! changes the rate.

use std::time::Duration;

/// Which policy runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ControllerMode {
    /// Error targeting (the default when no rate is given): each series is
    /// sampled just enough for its accuracy target (`drain/allocator.rs`);
    /// the base rate and every series' step are set each period.
    ErrorTarget,
    /// The proportional buffer-pressure policy described in the module
    /// docs: one rate for every sampled series (the default when a rate is
    /// given).
    Adaptive,
    /// Halve above the high-water mark, ×1.5 below the low-water mark.
    Reference,
    /// Keep the initial rate.
    Fixed,
}

/// Controller settings (the builder keeps its own; this is the input of
/// [`next_rate`]). Build it from `Default` and set fields.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ControllerConfig {
    /// Policy.
    pub mode: ControllerMode,
    /// Lowest rate the controller may set.
    pub min_rate: f64,
    /// Highest rate the controller may set.
    pub max_rate: f64,
    /// The configured rate: the controller returns to it freely after
    /// pressure, and goes above it only while the engine is quiet.
    pub home_rate: f64,
    /// Utilisation above which the rate is lowered (default 0.8).
    pub high_water: f64,
    /// Utilisation below which the rate may be raised (default 0.3).
    pub low_water: f64,
    /// Largest factor of one increase (default 1.5).
    pub max_increase: f64,
    /// Share of one core the flusher may spend draining (default 0.25).
    pub cpu_budget: f64,
    /// Sampled calls per second above which the rate is not raised
    /// (default 50 000).
    pub raise_budget: f64,
    /// How often the controller runs (default 5 s).
    pub period: Duration,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            mode: ControllerMode::Adaptive,
            min_rate: 0.01,
            max_rate: 0.15,
            home_rate: 0.03,
            high_water: 0.8,
            low_water: 0.3,
            max_increase: 1.5,
            cpu_budget: 0.25,
            raise_budget: 50_000.0,
            period: Duration::from_secs(5),
        }
    }
}

/// What one control period looked like. Build it from `Default` and set
/// fields.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Observation {
    /// Rate in force during the period.
    pub rate: f64,
    /// Highest ring fill (0–1) seen at a drain during the period.
    pub peak_utilisation: f64,
    /// Samples drained during the period.
    pub samples: u64,
    /// Samples spilled because a ring was full.
    pub drops: u64,
    /// Share of the period the flusher spent draining (0–1).
    pub busy_fraction: f64,
    /// Length of the period in seconds.
    pub period_secs: f64,
}

impl Observation {
    /// Sampled calls per second (drained and spilled).
    pub fn samples_per_sec(&self) -> f64 {
        if self.period_secs > 0.0 {
            (self.samples + self.drops) as f64 / self.period_secs
        } else {
            0.0
        }
    }
}

/// The rate for the next period. Always within `[min_rate, max_rate]`.
pub fn next_rate(config: &ControllerConfig, observed: &Observation) -> f64 {
    let rate = observed.rate;
    let next = match config.mode {
        // The allocator sets the rate in this mode.
        ControllerMode::Fixed | ControllerMode::ErrorTarget => return rate,
        ControllerMode::Reference => {
            if observed.peak_utilisation > config.high_water || observed.drops > 0 {
                rate * 0.5
            } else if observed.peak_utilisation < config.low_water {
                rate * 1.5
            } else {
                rate
            }
        }
        ControllerMode::Adaptive => adaptive(config, observed),
    };
    next.clamp(config.min_rate, config.max_rate)
}

fn adaptive(config: &ControllerConfig, observed: &Observation) -> f64 {
    let rate = observed.rate;
    let target_utilisation = (config.high_water + config.low_water) / 2.0;
    // Demand on the ring, corrected for what overflowed.
    let demand = if observed.drops > 0 {
        let seen = observed.samples.max(1) as f64;
        observed.peak_utilisation.max(config.high_water) * (seen + observed.drops as f64) / seen
    } else {
        observed.peak_utilisation
    };
    let ring_factor = if demand > 0.0 {
        target_utilisation / demand
    } else {
        f64::INFINITY
    };
    let cpu_factor = if observed.busy_fraction > 0.0 {
        0.8 * config.cpu_budget / observed.busy_fraction
    } else {
        f64::INFINITY
    };
    let pressured = observed.drops > 0
        || observed.peak_utilisation > config.high_water
        || observed.busy_fraction > config.cpu_budget;
    if pressured {
        let ring_factor = if observed.drops > 0 {
            ring_factor
        } else if observed.peak_utilisation > config.high_water {
            config.high_water / observed.peak_utilisation
        } else {
            f64::INFINITY
        };
        return rate * ring_factor.min(cpu_factor).min(1.0);
    }
    let quiet = observed.peak_utilisation < config.low_water
        && observed.busy_fraction < config.cpu_budget * config.low_water / config.high_water;
    if !quiet {
        return rate;
    }
    let sampled_per_sec = observed.samples_per_sec();
    // Above the home rate only while the sampled throughput stays within the
    // raise budget; below it, back home freely.
    let budget_factor = if sampled_per_sec > 0.0 {
        config.raise_budget / sampled_per_sec
    } else {
        f64::INFINITY
    };
    let home_factor = if rate < config.home_rate {
        (config.home_rate / rate).max(budget_factor)
    } else {
        budget_factor
    };
    let factor = config
        .max_increase
        .min(ring_factor)
        .min(cpu_factor)
        .min(home_factor);
    if factor > 1.0 {
        rate * factor
    } else {
        rate
    }
}
