//! The controller driven by a simulated arrival process: no threads, no
//! clocks, so the behaviour under a 10× burst is checked exactly.

use crate::controller::{next_rate, ControllerConfig, ControllerMode, Observation};

/// A fluid model of one ring shard drained every `drain_secs`: arrivals are
/// spread evenly with a burstiness factor on the peak.
struct Model {
    slots: f64,
    drain_secs: f64,
    period_secs: f64,
    /// Flusher time per drained sample.
    cost_secs: f64,
}

impl Model {
    fn observe(&self, calls_per_sec: f64, rate: f64) -> Observation {
        let per_drain = calls_per_sec * rate * self.drain_secs;
        let peak = per_drain * 1.25;
        let drains = self.period_secs / self.drain_secs;
        let taken = per_drain.min(self.slots);
        let dropped = (per_drain - self.slots).max(0.0);
        let samples = taken * drains;
        Observation {
            rate,
            peak_utilisation: (peak / self.slots).min(1.0),
            samples: samples as u64,
            drops: (dropped * drains) as u64,
            busy_fraction: samples * self.cost_secs / self.period_secs,
            period_secs: self.period_secs,
        }
    }
}

const MODEL: Model = Model {
    slots: 2048.0,
    drain_secs: 0.001,
    period_secs: 5.0,
    cost_secs: 20e-9,
};

/// Runs `loads` (calls per second, one per period) and returns the rate in
/// force in each period and the observations.
fn run(config: &ControllerConfig, loads: &[f64]) -> (Vec<f64>, Vec<Observation>) {
    let mut rate = config.home_rate;
    let mut rates = Vec::new();
    let mut seen = Vec::new();
    for &load in loads {
        rates.push(rate);
        let observation = MODEL.observe(load, rate);
        seen.push(observation);
        rate = next_rate(config, &observation);
        assert!((config.min_rate..=config.max_rate).contains(&rate));
    }
    (rates, seen)
}

/// Periods after `from` until the rate stays within ±10 % of its final value.
fn settle_periods(rates: &[f64], from: usize, to: usize) -> usize {
    let last = rates[to - 1];
    (from..to)
        .find(|&start| {
            rates[start..to]
                .iter()
                .all(|r| (r / last - 1.0).abs() <= 0.10)
        })
        .map_or(usize::MAX, |start| start - from)
}

fn config(mode: ControllerMode) -> ControllerConfig {
    ControllerConfig {
        mode,
        ..ControllerConfig::default()
    }
}

/// Base load: 4 M calls/s, so 3 % fills a 2048-slot ring to about 7 % per
/// millisecond drain, far above the raise budget.
const BASE: f64 = 4.0e6;

#[test]
fn a_steady_busy_load_keeps_the_configured_rate() {
    let (rates, _) = run(&config(ControllerMode::Adaptive), &[BASE; 20]);
    assert!(rates.iter().all(|&r| r == 0.03), "{rates:?}");
}

#[test]
fn a_ten_fold_burst_settles_fast_without_oscillation_and_recovers() {
    // 10 M calls/s: 3 % fills a shard to ~18 % between drains; 10× that
    // overflows it unless the rate drops.
    let busy = 1.0e7;
    let mut loads = vec![busy; 5];
    loads.extend(vec![busy * 10.0; 15]);
    loads.extend(vec![busy; 15]);
    let adaptive = config(ControllerMode::Adaptive);
    let (rates, seen) = run(&adaptive, &loads);
    let settle = settle_periods(&rates, 5, 20);
    assert!(settle <= 3, "settled after {settle} periods: {rates:?}");
    let settled = rates[5 + settle];
    for &rate in &rates[5 + settle..20] {
        assert!(
            (rate / settled - 1.0).abs() <= 0.10,
            "oscillates: {rates:?}"
        );
    }
    // Drops below 0.1 % of samples after the first period of the burst.
    for observation in &seen[6..20] {
        let share = observation.drops as f64 / (observation.samples + observation.drops) as f64;
        assert!(share < 0.001, "drops {share} in {observation:?}");
    }
    // Back to the configured rate once the burst is over.
    let recovered = rates[20..].iter().position(|&r| r >= 0.03 * 0.999);
    assert!(
        recovered.is_some_and(|p| p <= 8),
        "did not recover: {rates:?}"
    );

    // The reference rule (halve above 80 %, ×1.5 below 30 %) on the same
    // load, for comparison.
    let reference = config(ControllerMode::Reference);
    let (reference_rates, reference_seen) = run(&reference, &loads);
    let reference_settle = settle_periods(&reference_rates, 5, 20);
    let reference_drops: u64 = reference_seen[6..20].iter().map(|o| o.drops).sum();
    let adaptive_drops: u64 = seen[6..20].iter().map(|o| o.drops).sum();
    println!(
        "adaptive: settled in {settle} periods at {settled:.4}, drops after period 1: {adaptive_drops}; \
         reference: settled in {reference_settle} periods at {:.4}, drops after period 1: {reference_drops}",
        reference_rates[19]
    );
    assert!(settle <= reference_settle);
    assert!(adaptive_drops <= reference_drops);
}

#[test]
fn a_quiet_engine_earns_a_higher_rate_up_to_the_maximum() {
    let (rates, _) = run(&config(ControllerMode::Adaptive), &[10_000.0; 12]);
    assert!(rates.windows(2).all(|pair| pair[1] >= pair[0]));
    assert_eq!(*rates.last().unwrap(), 0.15);
    // Never more than ×1.5 per period.
    assert!(rates
        .windows(2)
        .all(|pair| pair[1] <= pair[0] * 1.5 + 1e-12));
}

#[test]
fn a_flusher_over_its_cpu_budget_lowers_the_rate() {
    let observation = Observation {
        rate: 0.03,
        peak_utilisation: 0.5,
        samples: 1_000_000,
        drops: 0,
        busy_fraction: 0.5,
        period_secs: 5.0,
    };
    let next = next_rate(&config(ControllerMode::Adaptive), &observation);
    assert!((next - 0.03 * 0.8 * 0.25 / 0.5).abs() < 1e-9, "{next}");
}

#[test]
fn fixed_mode_and_bounds() {
    let fixed = config(ControllerMode::Fixed);
    let (rates, _) = run(&fixed, &[1e9, 1e3, 1e9]);
    assert!(rates.iter().all(|&r| r == 0.03));
    let overloaded = Observation {
        rate: 0.03,
        peak_utilisation: 1.0,
        samples: 1000,
        drops: 1_000_000,
        busy_fraction: 1.0,
        period_secs: 5.0,
    };
    assert_eq!(
        next_rate(&config(ControllerMode::Adaptive), &overloaded),
        0.01
    );
    assert_eq!(
        next_rate(&config(ControllerMode::Reference), &overloaded),
        0.015
    );
}
