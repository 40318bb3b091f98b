//! Human-readable table or JSON lines on standard output (or any writer).
//!
//! Each estimate is shown with what it rests on: its standard error, its
//! relative error (`std_error / |value|`) and the samples behind it. An
//! exact series says so; a sampled series with no sample yet shows `0`
//! samples and how many calls it may have had unseen
//! ([`Estimate::calls_upper_bound`]), since its `0 ± 0` is no confident
//! zero. For a histogram the relative error is its count's.
//!
//! ```text
//! series         kind     rel. err  samples  value
//! ws.sent        counter  0.99 %    10214    1000512.3 ± 9871.2
//! ws.errors      counter  -         0        0.0 ± 0.0 (≤ 299.6 calls unseen)
//! http.requests  counter  exact     -        42
//! ```

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::UNIX_EPOCH;

use crate::error::ExportError;
use crate::export::exporter::Exporter;
use crate::report::snapshot::{Estimate, MetricValue, SeriesSnapshot, Snapshot};

/// Output format of [`Stdout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StdoutFormat {
    /// An aligned table, one row per series.
    Table,
    /// One JSON object per series per line.
    JsonLines,
}

/// Writes each snapshot to standard output (or another writer).
///
/// ```
/// use hotmetrics::export::{Exporter, Stdout};
/// let mut out = Stdout::json().to_writer(Vec::new());
/// # let _ = &mut out;
/// ```
pub struct Stdout {
    format: StdoutFormat,
    writer: Box<dyn Write + Send>,
}

impl std::fmt::Debug for Stdout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stdout")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl Default for Stdout {
    fn default() -> Self {
        Self::new()
    }
}

impl Stdout {
    /// The table format on standard output.
    pub fn new() -> Self {
        Self {
            format: StdoutFormat::Table,
            writer: Box::new(io::stdout()),
        }
    }

    /// JSON lines on standard output.
    pub fn json() -> Self {
        Self {
            format: StdoutFormat::JsonLines,
            writer: Box::new(io::stdout()),
        }
    }

    /// Same format, written to `writer` instead.
    pub fn to_writer(self, writer: impl Write + Send + 'static) -> Self {
        Self {
            format: self.format,
            writer: Box::new(writer),
        }
    }

    /// Renders a snapshot in this exporter's format.
    pub fn render(&self, snapshot: &Snapshot) -> String {
        match self.format {
            StdoutFormat::Table => render_table(snapshot),
            StdoutFormat::JsonLines => render_json(snapshot),
        }
    }
}

fn series_label(series: &SeriesSnapshot) -> String {
    if series.labels.is_empty() {
        return series.name.to_string();
    }
    let labels: Vec<String> = series
        .labels
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    format!("{}{{{}}}", series.name, labels.join(","))
}

fn estimate_text(estimate: &Estimate) -> String {
    if estimate.exact {
        return format!("{}", estimate.value);
    }
    let mut text = format!("{:.1} ± {:.1}", estimate.value, estimate.std_error);
    if let Some(bound) = estimate.calls_upper_bound {
        let _ = write!(text, " (≤ {bound:.1} calls unseen)");
    }
    text
}

fn value_text(value: &MetricValue) -> String {
    match value {
        MetricValue::Counter(estimate) | MetricValue::UpDown(estimate) => estimate_text(estimate),
        MetricValue::Gauge(value) => format!("{value}"),
        MetricValue::Histogram(histogram) => {
            let quantile = |q| {
                histogram
                    .quantile(q)
                    .map_or_else(|| "-".to_string(), |v| format!("{v:.3}"))
            };
            format!(
                "count {}  sum {}  p50 {}  p99 {}  max {}{}",
                estimate_text(&histogram.count),
                estimate_text(&histogram.sum),
                quantile(0.5),
                quantile(0.99),
                histogram
                    .max
                    .map_or_else(|| "-".into(), |v| format!("{v:.3}")),
                if histogram.min_max_exact {
                    ""
                } else {
                    " (of samples)"
                }
            )
        }
    }
}

/// The relative error and sample count columns of a row.
fn accuracy_text(value: &MetricValue) -> (String, String) {
    let (estimate, samples) = match value {
        MetricValue::Counter(estimate) | MetricValue::UpDown(estimate) => {
            (estimate, estimate.samples)
        }
        MetricValue::Histogram(histogram) => (&histogram.count, histogram.samples),
        MetricValue::Gauge(_) => return ("-".into(), "-".into()),
    };
    if estimate.exact {
        ("exact".into(), "-".into())
    } else if samples == 0 {
        ("-".into(), "0".into())
    } else {
        (
            format!("{:.2} %", 100.0 * estimate.relative_error()),
            samples.to_string(),
        )
    }
}

fn render_table(snapshot: &Snapshot) -> String {
    let rows: Vec<[String; 5]> = snapshot
        .series
        .iter()
        .map(|series| {
            let (relative, samples) = accuracy_text(&series.value);
            [
                series_label(series),
                series.kind().as_str().to_string(),
                relative,
                samples,
                value_text(&series.value),
            ]
        })
        .collect();
    // The value last: a histogram's is long.
    let headers = ["series", "kind", "rel. err", "samples", "value"];
    let mut widths = headers.map(|header| header.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(headers.map(String::from)).chain(rows) {
        let mut line = String::new();
        for (index, (cell, width)) in row.iter().zip(widths).enumerate() {
            if index > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = width.saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// Appends `text` as a JSON string literal.
pub(crate) fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_number(out: &mut String, value: f64) {
    if value.is_finite() {
        let _ = write!(out, "{value}");
    } else {
        out.push_str("null");
    }
}

/// `"<prefix>relative_error"` of `estimate`.
fn json_relative_error(out: &mut String, prefix: &str, estimate: &Estimate) {
    let _ = write!(out, ",\"{prefix}relative_error\":");
    json_number(out, estimate.relative_error());
}

/// `"samples"`, and `"calls_upper_bound"` when there is none yet.
fn json_samples(out: &mut String, samples: u64, estimate: &Estimate) {
    let _ = write!(out, ",\"samples\":{samples}");
    if let Some(bound) = estimate.calls_upper_bound {
        out.push_str(",\"calls_upper_bound\":");
        json_number(out, bound);
    }
}

fn render_json(snapshot: &Snapshot) -> String {
    let time_ns = snapshot
        .time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos());
    let mut out = String::new();
    for series in &snapshot.series {
        out.push_str("{\"time_unix_nano\":");
        let _ = write!(out, "{time_ns}");
        out.push_str(",\"name\":");
        json_string(&mut out, &series.name);
        out.push_str(",\"kind\":");
        json_string(&mut out, series.kind().as_str());
        out.push_str(",\"labels\":{");
        for (index, (key, value)) in series.labels.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            json_string(&mut out, key);
            out.push(':');
            json_string(&mut out, value);
        }
        out.push('}');
        match &series.value {
            MetricValue::Counter(estimate) | MetricValue::UpDown(estimate) => {
                out.push_str(",\"value\":");
                json_number(&mut out, estimate.value);
                out.push_str(",\"std_error\":");
                json_number(&mut out, estimate.std_error);
                json_relative_error(&mut out, "", estimate);
                json_samples(&mut out, estimate.samples, estimate);
                let _ = write!(out, ",\"exact\":{}", estimate.exact);
            }
            MetricValue::Gauge(value) => {
                out.push_str(",\"value\":");
                json_number(&mut out, *value);
            }
            MetricValue::Histogram(histogram) => {
                out.push_str(",\"count\":");
                json_number(&mut out, histogram.count.value);
                out.push_str(",\"count_std_error\":");
                json_number(&mut out, histogram.count.std_error);
                out.push_str(",\"sum\":");
                json_number(&mut out, histogram.sum.value);
                out.push_str(",\"sum_std_error\":");
                json_number(&mut out, histogram.sum.std_error);
                json_relative_error(&mut out, "count_", &histogram.count);
                json_relative_error(&mut out, "sum_", &histogram.sum);
                json_samples(&mut out, histogram.samples, &histogram.count);
                for (key, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999)] {
                    let _ = write!(out, ",\"{key}\":");
                    json_number(&mut out, histogram.quantile(q).unwrap_or(f64::NAN));
                }
                out.push_str(",\"min\":");
                json_number(&mut out, histogram.min.unwrap_or(f64::NAN));
                out.push_str(",\"max\":");
                json_number(&mut out, histogram.max.unwrap_or(f64::NAN));
                let _ = write!(out, ",\"exact\":{}", histogram.min_max_exact);
            }
        }
        out.push_str("}\n");
    }
    out
}

impl Exporter for Stdout {
    fn export(&mut self, snapshot: &Snapshot) -> Result<(), ExportError> {
        let text = self.render(snapshot);
        self.writer
            .write_all(text.as_bytes())
            .and_then(|()| self.writer.flush())
            .map_err(|error| ExportError::Transient(format!("write failed: {error}")))
    }

    fn name(&self) -> &str {
        "stdout"
    }
}

#[cfg(test)]
mod tests;
