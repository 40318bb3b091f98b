//! `_bucket{le}` lines against the exact counts of the values: a value is
//! counted under its own `le` unless it sits just above one, within the
//! distribution's placement error.

use super::*;
use crate::export::rebucket::fixtures::{near, spread_values};
use crate::export::rebucket::DEFAULT_BOUNDARIES;

#[test]
fn le_counts_are_exact_but_next_to_a_bound() {
    let values = spread_values(0x9e0);
    let prometheus = Prometheus::builder()
        .without_server()
        .env_vars(NO_ENV)
        .build()
        .unwrap();
    let mut exporter = prometheus.clone();
    exporter
        .export(&snapshot(vec![series(
            "latency_ms",
            &[],
            MetricValue::Histogram(histogram(&values, 1)),
        )]))
        .unwrap();
    let (samples, _) = parse(&prometheus.render());
    for bound in DEFAULT_BOUNDARIES {
        let le = number(bound);
        let (_, _, count) = find(&samples, "latency_ms_bucket", &[("le", &le)])
            .unwrap_or_else(|| panic!("le {le}"));
        let exact = values.iter().filter(|v| **v <= bound).count() as f64;
        let came = values.iter().filter(|v| near(**v, bound)).count() as f64;
        assert!(
            exact <= *count && *count <= exact + came,
            "le {le}: {count} vs exact {exact} (+{came})"
        );
    }
    let (_, _, all) = find(&samples, "latency_ms_bucket", &[("le", "+Inf")]).unwrap();
    assert_eq!(*all, values.len() as f64);
}
