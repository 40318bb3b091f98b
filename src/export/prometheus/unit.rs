//! A declared unit (UCUM, as OpenTelemetry writes it) in the words
//! Prometheus names use, after OpenTelemetry's Prometheus compatibility
//! rules: `s` → `seconds`, `By` → `bytes`, `1` → `ratio`, `{request}` →
//! nothing (annotations in braces are dropped), `By/s` →
//! `bytes_per_second`.

/// The Prometheus word(s) for `unit`; `None` when nothing is left (an
/// annotation only) or the unit has characters a name cannot hold.
pub(super) fn prometheus_unit(unit: &str) -> Option<String> {
    let unit = strip_annotations(unit);
    let unit = unit.trim();
    if unit.is_empty() {
        return None;
    }
    let word = match unit.split_once('/') {
        Some((numerator, denominator)) => {
            let denominator = per_word(denominator.trim())?;
            match numerator.trim() {
                "" | "1" => format!("per_{denominator}"),
                numerator => format!("{}_per_{denominator}", word(numerator)?),
            }
        }
        None => word(unit)?,
    };
    Some(word)
}

fn strip_annotations(unit: &str) -> String {
    let mut out = String::with_capacity(unit.len());
    let mut depth = 0usize;
    for c in unit.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

fn word(unit: &str) -> Option<String> {
    let known = match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "1" => "ratio",
        "%" => "percent",
        other => {
            return other
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
                .then(|| other.to_string());
        }
    };
    Some(known.to_string())
}

fn per_word(unit: &str) -> Option<String> {
    let singular = match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => return word(other),
    };
    Some(singular.to_string())
}

#[cfg(test)]
mod tests {
    use super::prometheus_unit;

    #[test]
    fn units_read_as_prometheus_words() {
        let cases = [
            ("s", Some("seconds")),
            ("ms", Some("milliseconds")),
            ("By", Some("bytes")),
            ("1", Some("ratio")),
            ("{request}", None),
            ("{packet}/s", Some("per_second")),
            ("By/s", Some("bytes_per_second")),
            ("", None),
            ("m/s", Some("meters_per_second")),
            ("odd unit", None),
        ];
        for (unit, expected) in cases {
            assert_eq!(prometheus_unit(unit).as_deref(), expected, "{unit:?}");
        }
    }
}
