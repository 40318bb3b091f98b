//! A random-input fuzz harness for the configuration parser and the name
//! and label validation, on the stable toolchain.
//!
//! `cargo fuzz` needs nightly-only compiler flags (sanitizer coverage), so
//! this harness is coverage-less instead: it feeds a seeded stream of
//! inputs mixing dictionary tokens (variable names, numbers at and around
//! every limit, booleans), mutations of them, and raw random bytes, and
//! checks the contracts on every input:
//!
//! * `Builder::from_vars` never panics; an error names a variable that was
//!   given; an accepted configuration installs or is refused with an error
//!   naming a setting (nothing is clamped silently);
//! * `validate_name` accepts exactly the documented grammar;
//! * handles with any labels never panic, and are registered exactly when
//!   every key is non-empty and keys and values are within the limit;
//! * `hotmetrics::export::from_vars` (OTLP and console settings) never
//!   panics and names a variable it was given when it refuses.
//!
//! Run: `cargo run --release --example fuzz_config -- --seconds 60 --seed 7`
//! (CI runs it for 20 s). A failing input is printed with its iteration
//! and seed, which replay it.

use std::time::{Duration, Instant};

const KEYS: &[&str] = &[
    "HOTMETRICS_SAMPLE_RATE",
    "HOTMETRICS_MIN_SAMPLE_RATE",
    "HOTMETRICS_MAX_SAMPLE_RATE",
    "HOTMETRICS_BUFFER_SIZE",
    "HOTMETRICS_BUFFER_CAPACITY",
    "HOTMETRICS_EXPORT_INTERVAL_MS",
    "HOTMETRICS_ADAPTIVE",
    "HOTMETRICS_DISABLED",
    // The engine-level OTEL_* variables `from_vars` reads too
    // (OTEL_METRICS_EXPORTER is left to `check_exporters`: an exporter
    // started here would send to a collector that is not there).
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_SDK_DISABLED",
];

const EXPORT_KEYS: &[&str] = &[
    "OTEL_METRICS_EXPORTER",
    "OTEL_SDK_DISABLED",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_SERVICE_NAME",
];

const TOKENS: &[&str] = &[
    "0",
    "1",
    "-1",
    "0.0",
    "1.0",
    "1.5",
    "0.03",
    "0.01",
    "0.15",
    "1e-30",
    "1e-31",
    "1e-320",
    "5e-324",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "+0.5",
    " 0.5 ",
    "0x10",
    "1_000",
    "16777216",
    "16777217",
    "18446744073709551615",
    "18446744073709551616",
    "true",
    "false",
    "yes",
    "no",
    "on",
    "off",
    "TRUE",
    "maybe",
    "",
    " ",
    "\u{0}",
    "é",
    "\u{1f600}",
    "otlp",
    "console",
    "none",
    "otlp,console",
    ",,",
    "http/protobuf",
    "grpc",
    "http/json",
    "gzip",
    "k=v",
    "k=v,k2=v2",
    "=",
    "%zz",
    "http://127.0.0.1:4318",
    "localhost:4317",
    "cumulative",
    "delta",
    "lowmemory",
    "service.name=fuzz",
];

fn token(rng: &mut fastrand::Rng) -> String {
    match rng.u8(0..6) {
        0 => {
            // Random bytes, made into a string lossily (any Unicode).
            let bytes: Vec<u8> = (0..rng.usize(0..24)).map(|_| rng.u8(..)).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        1 => {
            // A dictionary token with one byte changed, inserted or cut.
            let mut text = TOKENS[rng.usize(..TOKENS.len())].as_bytes().to_vec();
            let at = rng.usize(0..=text.len());
            match rng.u8(0..3) {
                0 if at < text.len() => text[at] = rng.u8(0x20..0x7f),
                1 => text.insert(at, rng.u8(0x20..0x7f)),
                _ => text.truncate(at),
            }
            String::from_utf8_lossy(&text).into_owned()
        }
        2 => format!("{}", rng.f64() * 10f64.powi(rng.i32(-40..40))),
        3 => format!("{}", rng.i64(..)),
        _ => TOKENS[rng.usize(..TOKENS.len())].to_string(),
    }
}

fn name(rng: &mut fastrand::Rng) -> String {
    match rng.u8(0..4) {
        0 => token(rng),
        1 => "x".repeat(rng.usize(250..260)),
        _ => {
            const ALPHABET: &[u8] = b"abcXYZ019_.-/ :;{}\"\\\t";
            (0..rng.usize(0..12))
                .map(|_| char::from(ALPHABET[rng.usize(..ALPHABET.len())]))
                .collect()
        }
    }
}

/// The documented name grammar, written independently of the crate.
fn name_allowed(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 255
        && bytes[0].is_ascii_alphabetic()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(b))
}

fn check_config(rng: &mut fastrand::Rng) -> Result<(), String> {
    let vars: Vec<(String, String)> = (0..rng.usize(0..5))
        .map(|_| (KEYS[rng.usize(..KEYS.len())].to_string(), token(rng)))
        .collect();
    match hotmetrics::Engine::builder().from_vars(vars.iter().cloned()) {
        Err(error) => {
            if !vars.iter().any(|(key, _)| *key == error.setting) {
                return Err(format!("{vars:?}: error names {:?}", error.setting));
            }
        }
        Ok(builder) => {
            // Validate by installing (no exporter; shut down at once).
            match builder.adaptive(false).install() {
                Ok(engine) => {
                    let rate = engine.sample_rate();
                    let rate_ok = rate > 0.0 && rate <= 1.0;
                    if !rate_ok && !engine.is_disabled() {
                        return Err(format!("{vars:?}: installed with rate {rate}"));
                    }
                    engine
                        .shutdown()
                        .map_err(|error| format!("{vars:?}: shutdown: {error}"))?;
                }
                Err(hotmetrics::InstallError::Config(error)) => {
                    if error.setting.is_empty() || !error.to_string().contains("expected") {
                        return Err(format!("{vars:?}: unclear error {error}"));
                    }
                }
                Err(other) => return Err(format!("{vars:?}: {other}")),
            }
        }
    }
    Ok(())
}

fn check_exporters(rng: &mut fastrand::Rng) -> Result<(), String> {
    let mut vars: Vec<(String, String)> = (0..rng.usize(0..5))
        .map(|_| {
            let key = EXPORT_KEYS[rng.usize(..EXPORT_KEYS.len())].to_string();
            (key, token(rng))
        })
        .collect();
    // Never let the fuzzer start a Prometheus listener.
    for (key, value) in &mut vars {
        if key == "OTEL_METRICS_EXPORTER" && value.to_ascii_lowercase().contains("prometheus") {
            *value = "none".into();
        }
    }
    if let Err(error) = hotmetrics::export::from_vars(vars.iter().cloned()) {
        if !vars.iter().any(|(key, _)| *key == error.setting) {
            return Err(format!("{vars:?}: error names {:?}", error.setting));
        }
    }
    Ok(())
}

fn check_name(rng: &mut fastrand::Rng) -> Result<(), String> {
    let name = name(rng);
    let accepted = hotmetrics::validate_name(&name).is_ok();
    if accepted != name_allowed(&name) {
        return Err(format!("{name:?}: validate_name says {accepted}"));
    }
    Ok(())
}

fn check_labels(rng: &mut fastrand::Rng, base: &hotmetrics::Counter) -> Result<(), String> {
    let labels: Vec<(String, String)> = (0..rng.usize(0..3))
        .map(|_| {
            let key = match rng.u8(0..8) {
                0 => String::new(),
                1 => "k".repeat(rng.usize(4090..4100)),
                _ => token(rng),
            };
            let value = match rng.u8(0..8) {
                0 => "v".repeat(rng.usize(4090..4100)),
                _ => token(rng),
            };
            (key, value)
        })
        .collect();
    let refs: Vec<(&str, &str)> = labels
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    let handle = base.with_labels(&refs);
    handle.add(1u8);
    // `with_labels` replaces duplicate keys: only the last value counts.
    let mut effective: Vec<(&str, &str)> = Vec::new();
    for (key, value) in &refs {
        effective.retain(|(existing, _)| existing != key);
        effective.push((key, value));
    }
    let valid = effective.iter().all(|(key, value)| {
        !key.is_empty()
            && key.len() <= hotmetrics::MAX_LABEL_LEN
            && value.len() <= hotmetrics::MAX_LABEL_LEN
    });
    if handle.is_registered() != valid {
        return Err(format!(
            "labels {:?}: registered = {}",
            effective
                .iter()
                .map(|(k, v)| (k.len(), v.len()))
                .collect::<Vec<_>>(),
            handle.is_registered()
        ));
    }
    Ok(())
}

fn main() {
    let mut seconds = 10u64;
    let mut seed = 1u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().and_then(|value| value.parse().ok());
        match (arg.as_str(), value) {
            ("--seconds", Some(value)) => seconds = value,
            ("--seed", Some(value)) => seed = value,
            _ => {
                eprintln!("usage: fuzz_config [--seconds N] [--seed N]");
                std::process::exit(2);
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let base = hotmetrics::counter("fuzz.labels");
    let mut iterations = 0u64;
    let mut failures = 0u64;
    while Instant::now() < deadline {
        let mut rng =
            fastrand::Rng::with_seed(seed.wrapping_mul(0x9e37_79b9).wrapping_add(iterations));
        let outcome = match iterations % 8 {
            0 => check_config(&mut rng),
            1 => check_exporters(&mut rng),
            2 | 3 => check_labels(&mut rng, &base),
            _ => check_name(&mut rng),
        };
        if let Err(message) = outcome {
            failures += 1;
            eprintln!("FAIL seed {seed} iteration {iterations}: {message}");
            if failures >= 10 {
                break;
            }
        }
        iterations += 1;
    }
    println!("fuzz_config: {iterations} inputs in {seconds} s (seed {seed}), {failures} failures");
    if failures > 0 {
        std::process::exit(1);
    }
}
