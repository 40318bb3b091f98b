//! Snapshot → Prometheus text exposition format 0.0.4, or OpenMetrics 1.0.
//!
//! | hotmetrics | Prometheus |
//! |---|---|
//! | counter | `counter`, sample `<name>_total` |
//! | up-down counter, gauge | `gauge` |
//! | histogram | `histogram`: cumulative `_bucket{le=…}`, `_sum`, `_count` |
//! | an estimate's variance | `counter`: `<name>_variance_total`, `<name>_count_variance_total`, `<name>_sum_variance_total` |
//!
//! Names are sanitised to `[a-zA-Z_:][a-zA-Z0-9_:]*` (every other
//! character becomes `_`, runs of `_` collapse, a leading digit gets a `_`
//! prefix); label names to `[a-zA-Z_][a-zA-Z0-9_]*` (a leading digit or
//! `__` gets a `key_` prefix), and two labels that sanitise to the same name
//! have their values joined with `;`. Two metrics whose families collide
//! after sanitising keep the first one; the other is left out and logged
//! once. A variance family never takes the name of a program's metric,
//! whatever the order. Bucket counts are the estimated counts rounded so
//! they sum exactly to `_count`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use super::unit::prometheus_unit;
use crate::export::rebucket::{explicit_masses, round_preserving_total};
use crate::export::variance;
use crate::hot::registry::Labels;
use crate::report::snapshot::{Estimate, MetricValue, SeriesSnapshot, Snapshot};

/// Which exposition format to write.
///
/// ```
/// use hotmetrics::export::prometheus::PrometheusFormat;
/// use hotmetrics::export::Prometheus;
///
/// let prometheus = Prometheus::builder().without_server().build().unwrap();
/// let text = prometheus.render_as(PrometheusFormat::OpenMetrics);
/// assert!(text.ends_with("# EOF\n"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PrometheusFormat {
    /// Text exposition format 0.0.4 (`text/plain; version=0.0.4`).
    Text,
    /// OpenMetrics 1.0 (`application/openmetrics-text; version=1.0.0`).
    OpenMetrics,
}

impl PrometheusFormat {
    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            PrometheusFormat::Text => "text/plain; version=0.0.4; charset=utf-8",
            PrometheusFormat::OpenMetrics => {
                "application/openmetrics-text; version=1.0.0; charset=utf-8"
            }
        }
    }
}

/// Rendering settings.
#[derive(Clone, Debug)]
pub(crate) struct RenderOptions {
    pub(crate) boundaries: HashMap<String, Vec<f64>>,
    pub(crate) default_boundaries: Vec<f64>,
    /// Expose each estimate's variance (`export/variance.rs`).
    pub(crate) variance: bool,
    /// Resource attributes for `target_info`; empty for none.
    pub(crate) target_info: Vec<(String, String)>,
}

/// Sanitises a metric name.
pub(crate) fn metric_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    for c in name.chars() {
        let keep = c.is_ascii_alphanumeric() || c == '_' || c == ':';
        let c = if keep { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// Sanitises a label name.
pub(crate) fn label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) || out.starts_with("__") {
        out.insert_str(0, "key_");
    }
    out
}

fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A sample value: integers without a fraction, large or tiny values with
/// an exponent, and `NaN`/`+Inf`/`-Inf`.
pub(crate) fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else if value != 0.0 && (value.abs() >= 1e15 || value.abs() < 1e-4) {
        format!("{value:e}")
    } else {
        format!("{value}")
    }
}

/// An `le` value: OpenMetrics wants the canonical float form (`5.0`).
fn le_value(bound: f64, format: PrometheusFormat) -> String {
    let text = number(bound);
    let needs_point =
        format == PrometheusFormat::OpenMetrics && bound.is_finite() && !text.contains(['.', 'e']);
    if needs_point {
        format!("{text}.0")
    } else {
        text
    }
}

/// The `{…}` part, with an optional extra label (for `le`).
fn label_set(labels: &Labels, extra: Option<(&str, &str)>) -> String {
    // Sanitised name → values in original-key order (labels come sorted).
    let mut merged: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (key, value) in labels.iter() {
        merged.entry(label_name(key)).or_default().push(value);
    }
    if merged.is_empty() && extra.is_none() {
        return String::new();
    }
    let mut out = String::from("{");
    for (index, (name, values)) in merged.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        let _ = write!(out, "{name}=\"");
        escape_label_value(&mut out, &values.join(";"));
        out.push('"');
    }
    if let Some((name, value)) = extra {
        if !merged.is_empty() {
            out.push(',');
        }
        let _ = write!(out, "{name}=\"{value}\"");
    }
    out.push('}');
    out
}

/// One metric family being written.
struct Family {
    kind: &'static str,
    /// The name the metric had, to detect collisions.
    source: String,
    /// The declared description, for `# HELP`.
    help: Option<String>,
    /// The declared unit in Prometheus words, for `# UNIT`.
    unit: Option<String>,
    lines: String,
}

/// Families in first-seen order.
#[derive(Default)]
struct Families {
    order: Vec<String>,
    by_name: HashMap<String, Family>,
    /// Metric names left out because their family name was taken.
    collisions: Vec<String>,
    /// Family names of the program's own metrics, which no variance series
    /// takes even when it comes first.
    program: HashSet<String>,
}

impl Families {
    /// The lines of family `name`, or `None` if another metric owns it.
    fn lines(&mut self, name: &str, kind: &'static str, source: &str) -> Option<&mut String> {
        if !self.by_name.contains_key(name) {
            self.order.push(name.to_string());
            self.by_name.insert(
                name.to_string(),
                Family {
                    kind,
                    source: source.to_string(),
                    help: None,
                    unit: None,
                    lines: String::new(),
                },
            );
        }
        let family = self.by_name.get_mut(name)?;
        if family.kind != kind || family.source != source {
            if !self.collisions.iter().any(|seen| seen == source) {
                self.collisions.push(source.to_string());
            }
            return None;
        }
        Some(&mut family.lines)
    }
}

impl Families {
    /// Sets the `# HELP` text and the `# UNIT` of family `name` if it has
    /// none yet.
    fn describe(&mut self, name: &str, source: &str, help: Option<&str>, unit: Option<&str>) {
        let Some(family) = self.by_name.get_mut(name) else {
            return;
        };
        if family.source != source {
            return;
        }
        if family.help.is_none() {
            family.help = help.map(str::to_string);
        }
        if family.unit.is_none() {
            family.unit = unit.and_then(prometheus_unit);
        }
    }
}

/// Escapes `# HELP` text.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Renders `snapshot`; also returns the metric names left out by a name
/// collision.
pub(crate) fn render(
    snapshot: Option<&Snapshot>,
    options: &RenderOptions,
    format: PrometheusFormat,
) -> (String, Vec<String>) {
    let series_list = snapshot.map(|s| s.series.as_slice()).unwrap_or_default();
    let mut families = Families {
        program: series_list.iter().map(family_name).collect(),
        ..Families::default()
    };
    if !options.target_info.is_empty() {
        let labels: Labels = options
            .target_info
            .iter()
            .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
            .collect::<Vec<_>>()
            .into();
        let kind = match format {
            PrometheusFormat::Text => "gauge",
            PrometheusFormat::OpenMetrics => "info",
        };
        if let Some(lines) = families.lines("target_info", kind, "target_info") {
            let _ = writeln!(lines, "target_info{} 1", label_set(&labels, None));
        }
    }
    for series in series_list {
        let base = metric_name(&series.name);
        let source = &*series.name;
        let help = series.description.as_deref();
        let unit = series.unit.as_deref();
        match &series.value {
            MetricValue::Counter(estimate) => {
                let family = base.strip_suffix("_total").unwrap_or(&base).to_string();
                if let Some(lines) = families.lines(&family, "counter", source) {
                    let _ = writeln!(
                        lines,
                        "{family}_total{} {}",
                        label_set(&series.labels, None),
                        number(estimate.value)
                    );
                }
                families.describe(&family, source, help, unit);
                let of = format!("{family}_total");
                variance_line(&mut families, options, &family, &of, series, estimate);
            }
            // Up-down counters are gauges in Prometheus (and exact).
            MetricValue::UpDown(estimate) => {
                gauge_line(&mut families, &base, source, &series.labels, estimate.value);
                variance_line(&mut families, options, &base, &base, series, estimate);
            }
            MetricValue::Gauge(value) => {
                gauge_line(&mut families, &base, source, &series.labels, *value);
            }
            MetricValue::Histogram(histogram) => {
                let bounds = options
                    .boundaries
                    .get(source)
                    .unwrap_or(&options.default_boundaries);
                let (counts, total) = round_preserving_total(&explicit_masses(histogram, bounds));
                if let Some(lines) = families.lines(&base, "histogram", source) {
                    let mut cumulative = 0u64;
                    for (bound, count) in bounds.iter().zip(&counts) {
                        cumulative += count;
                        let le = le_value(*bound, format);
                        let labels = label_set(&series.labels, Some(("le", &le)));
                        let _ = writeln!(lines, "{base}_bucket{labels} {cumulative}");
                    }
                    let labels = label_set(&series.labels, Some(("le", "+Inf")));
                    let _ = writeln!(lines, "{base}_bucket{labels} {total}");
                    let labels = label_set(&series.labels, None);
                    let _ = writeln!(lines, "{base}_sum{labels} {}", number(histogram.sum.value));
                    let _ = writeln!(lines, "{base}_count{labels} {total}");
                }
                for (part, estimate) in [("count", &histogram.count), ("sum", &histogram.sum)] {
                    let of = format!("{base}_{part}");
                    variance_line(&mut families, options, &of, &of, series, estimate);
                }
            }
        }
        families.describe(&base, source, help, unit);
    }
    let mut out = String::new();
    for name in &families.order {
        let Some(family) = families.by_name.get(name) else {
            continue;
        };
        let type_name = match (format, family.kind) {
            (PrometheusFormat::Text, "counter") => format!("{name}_total"),
            // OpenMetrics names an info family without its `_info` suffix.
            (PrometheusFormat::OpenMetrics, "info") => {
                name.strip_suffix("_info").unwrap_or(name).to_string()
            }
            _ => name.clone(),
        };
        if let Some(help) = &family.help {
            let _ = writeln!(out, "# HELP {type_name} {}", escape_help(help));
        }
        if let Some(unit) = &family.unit {
            // OpenMetrics requires the family name to end with its unit;
            // the text format reads `# UNIT` as a comment.
            if format == PrometheusFormat::Text || name.ends_with(&format!("_{unit}")) {
                let _ = writeln!(out, "# UNIT {type_name} {unit}");
            }
        }
        let _ = writeln!(out, "# TYPE {type_name} {}", family.kind);
        out.push_str(&family.lines);
    }
    if format == PrometheusFormat::OpenMetrics {
        out.push_str("# EOF\n");
    }
    (out, families.collisions)
}

/// The family a series' samples go to (a counter's without `_total`).
fn family_name(series: &SeriesSnapshot) -> String {
    let base = metric_name(&series.name);
    match series.value {
        MetricValue::Counter(_) => base.strip_suffix("_total").unwrap_or(&base).to_string(),
        _ => base,
    }
}

/// One `gauge` sample line of family `base`.
fn gauge_line(families: &mut Families, base: &str, source: &str, labels: &Labels, value: f64) {
    if let Some(lines) = families.lines(base, "gauge", source) {
        let _ = writeln!(lines, "{base}{} {}", label_set(labels, None), number(value));
    }
}

/// The counter `<base>_variance_total` of an estimate that is not exact,
/// when on; `of` names the series it belongs to, for `# HELP`.
fn variance_line(
    families: &mut Families,
    options: &RenderOptions,
    base: &str,
    of: &str,
    series: &SeriesSnapshot,
    estimate: &Estimate,
) {
    let Some(variance) = variance::of(estimate).filter(|_| options.variance) else {
        return;
    };
    let family = format!("{base}_variance");
    let owner = format!("{} (variance)", series.name);
    if families.program.contains(&family) {
        if !families.collisions.contains(&owner) {
            families.collisions.push(owner);
        }
        return;
    }
    if let Some(lines) = families.lines(&family, "counter", &owner) {
        let labels = label_set(&series.labels, None);
        let _ = writeln!(lines, "{family}_total{labels} {}", number(variance));
    }
    families.describe(&family, &owner, Some(&variance::description(of)), None);
}
