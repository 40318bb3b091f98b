//! Error bars on the wire: the variance sent beside every estimated series.
//!
//! In the process every estimate carries its standard error. A standard
//! error does not survive what a backend does with series: summed across
//! instances it overstates the error (standard errors do not add), and a
//! gauge of it cannot be taken over a time window. Its square does both.
//! Samples are independent Bernoulli trials, so
//!
//! * the variances of independent instances add: the variance of
//!   `sum(x)` is `sum(variance of x)`;
//! * the Horvitz–Thompson variance estimate `Σ v²(1−π)/π²` is a sum over
//!   samples, so the variance of the increase between two instants is the
//!   increase of the cumulative variance.
//!
//! Hence each estimated series goes out with its cumulative variance
//! estimate as a monotonic sum of its own, with the same attributes and
//! the series' temporality, and
//! `sqrt(sum(increase(x_variance_total[5m])))` is the standard error of
//! `sum(increase(x_total[5m]))`.
//!
//! | series | OTLP (monotonic double `Sum`) | Prometheus (`counter`) |
//! |---|---|---|
//! | counter `x` | `x.variance` | `x_variance_total` |
//! | histogram `h`: count | `h.count.variance` | `h_count_variance_total` |
//! | histogram `h`: sum | `h.sum.variance` | `h_sum_variance_total` |
//!
//! (An up-down counter is always exact today; were one estimated, its
//! variance would go out the same way, cumulative, as `x.variance`.)
//!
//! * **Which series.** Every estimate with `exact == false`, including a
//!   sampled series with no sample yet (variance 0), so the set of series
//!   a backend sees does not change when the first sample arrives. Exact
//!   series (critical, up-down, made exact by the allocator) send none.
//! * **Temporality.** Cumulative by default. Under OTLP delta temporality a
//!   point carries the variance added since the last *accepted* export,
//!   over the same interval as the value's delta, so a failed export's
//!   variance rides in the next one as its value does.
//! * **Units** (OTLP). The square of the series' declared unit, in UCUM:
//!   a single unit symbol with an optional exponent has the exponent
//!   doubled (`ms` → `ms2`, `s-1` → `s-2`); a count with an annotation
//!   (`{request}`, dimension 1) keeps dimension 1 and says what was squared
//!   (`{request^2}`); `1` stays `1`; anything longer is written as the
//!   product of itself (`By/s` → `(By/s).(By/s)`). A histogram's declared
//!   unit is its values', so `h.sum.variance` gets its square and
//!   `h.count.variance` (a count) gets none; nor does a series without a
//!   declared unit. Prometheus carries no units.
//! * **No sample-count series.** The samples behind an estimate are in
//!   the snapshot and the console exporter, not on the wire: a window's
//!   effective number of samples is already there, as
//!   `increase(x_total)² / increase(x_variance_total)` (the sample count
//!   for unit increments at small `π`, less when values spread), which is
//!   the figure that says whether a normal interval means something. A
//!   count series would add one series per estimated series for no new
//!   information.
//! * **A window with no sample** shows a variance increase of 0. That is
//!   not certainty: calls may have gone unseen (in the process
//!   `Estimate::calls_upper_bound` bounds them). On the wire a window with
//!   no sample is one where neither the value nor the variance moved; one
//!   where the value moved and the variance did not had only exact calls.
//! * **Names taken.** A variance name that is a metric of the program's
//!   own, or another series' variance (a counter `h.count` beside a
//!   histogram `h`), is left out and logged once: the program's metric, or
//!   the first series, keeps it.
//! * **The switch.** On by default; `export_variance(false)` on the OTLP or
//!   Prometheus builder, or `HOTMETRICS_EXPORT_VARIANCE=false` (the builder
//!   setting wins), turns it off. It replaces the standard-error gauges of
//!   earlier releases, whose builder method stays as a deprecated alias.

use crate::error::ConfigError;
use crate::export::env::EnvSource;
use crate::report::snapshot::Estimate;

/// The environment variable of the switch.
pub(crate) const ENV: &str = "HOTMETRICS_EXPORT_VARIANCE";

/// Whether variance series are exported: the builder's setting, else
/// [`ENV`], else on.
///
/// # Errors
///
/// [`ConfigError`] naming [`ENV`] when its value is not a boolean (the
/// words the other `HOTMETRICS_*` switches take).
pub(crate) fn enabled(explicit: Option<bool>, env: &EnvSource) -> Result<bool, ConfigError> {
    if let Some(on) = explicit {
        return Ok(on);
    }
    let Some(raw) = env.get(ENV) else {
        return Ok(true);
    };
    match raw.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::new(
            ENV,
            raw,
            "true or false (also 1/0, yes/no, on/off)",
        )),
    }
}

/// The variance to export for `estimate`: `None` when it is exact.
pub(crate) fn of(estimate: &Estimate) -> Option<f64> {
    (!estimate.exact).then(|| estimate.variance())
}

/// The description of the variance series of `series` (the name the
/// reader queries, `x_total` or `x`).
pub(crate) fn description(series: &str) -> String {
    format!(
        "Cumulative variance estimate of {series} (sum of v^2(1-p)/p^2 over its samples): \
         the square root of its increase over a window is the standard error of the \
         increase of {series}; variances of instances add"
    )
}

/// The square of a UCUM unit (see the module notes); empty for an empty
/// unit. OTLP only: Prometheus carries no units.
#[cfg(feature = "otlp")]
pub(crate) fn squared_unit(unit: &str) -> String {
    let unit = unit.trim();
    if unit.is_empty() || unit == "1" {
        return unit.to_string();
    }
    // A lone annotation: a count of things, dimension 1.
    if let Some(inner) = unit.strip_prefix('{').and_then(|u| u.strip_suffix('}')) {
        if !inner.contains(['{', '}']) {
            return format!("{{{inner}^2}}");
        }
    }
    // One unit symbol, with an optional integer exponent.
    let symbol_end = unit
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(unit.len());
    let (symbol, exponent) = unit.split_at(symbol_end);
    if !symbol.is_empty() {
        if exponent.is_empty() {
            return format!("{symbol}2");
        }
        let digits = exponent.strip_prefix('-').unwrap_or(exponent);
        if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
            if let Ok(power) = exponent.parse::<i32>() {
                if let Some(doubled) = power.checked_mul(2) {
                    return format!("{symbol}{doubled}");
                }
            }
        }
    }
    format!("({unit}).({unit})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "otlp")]
    #[test]
    fn units_are_squared_in_ucum() {
        for (unit, squared) in [
            ("", ""),
            ("1", "1"),
            ("ms", "ms2"),
            ("By", "By2"),
            ("s-1", "s-2"),
            ("m2", "m4"),
            ("{request}", "{request^2}"),
            ("By/s", "(By/s).(By/s)"),
            ("ms{wall}", "(ms{wall}).(ms{wall})"),
            ("%", "(%).(%)"),
            ("10*3", "(10*3).(10*3)"),
        ] {
            assert_eq!(squared_unit(unit), squared, "{unit:?}");
        }
    }

    #[test]
    fn the_switch_builder_then_environment_then_on() {
        let none = EnvSource::from_vars([("OTHER", "x")]);
        let off = EnvSource::from_vars([(ENV, " Off ")]);
        let bad = EnvSource::from_vars([(ENV, "maybe")]);
        assert!(enabled(None, &none).unwrap());
        assert!(!enabled(None, &off).unwrap());
        assert!(enabled(Some(true), &off).unwrap(), "the builder wins");
        assert!(!enabled(Some(false), &none).unwrap());
        let error = enabled(None, &bad).unwrap_err();
        assert_eq!(error.setting, ENV);
        assert!(
            enabled(Some(true), &bad).unwrap(),
            "not read when set in code"
        );
    }

    #[test]
    fn exact_estimates_have_none() {
        assert_eq!(of(&Estimate::exact(3.0)), None);
        assert_eq!(of(&Estimate::new(10.0, 3.0, false, 4)), Some(9.0));
        assert_eq!(of(&Estimate::new(0.0, 0.0, false, 0)), Some(0.0));
    }
}
