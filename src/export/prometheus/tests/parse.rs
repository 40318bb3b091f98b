//! A strict reader of the exposition format, for the tests: every line a
//! comment or a well-formed sample, every sample after its family's
//! `# TYPE`, names and label names valid.

use std::collections::BTreeMap;

/// A sample line: name, labels, value.
pub(super) type Sample = (String, BTreeMap<String, String>, f64);

/// Parses exposition text; panics on any line that is not a comment or a
/// well-formed sample, or a sample whose family has no `# TYPE` before it.
pub(super) fn parse(text: &str) -> (Vec<Sample>, BTreeMap<String, String>) {
    let mut samples = Vec::new();
    let mut types = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "one TYPE per family: {line}"
            );
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).expect("a value");
        let name = &line[..name_end];
        assert!(
            name.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name {name:?}"
        );
        let mut rest = &line[name_end..];
        let mut labels = BTreeMap::new();
        if let Some(body) = rest.strip_prefix('{') {
            let (parsed, after) = parse_labels(body);
            labels = parsed;
            rest = after;
        }
        let value = match rest.trim() {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            text => text
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("a number: {line}")),
        };
        assert!(
            types.keys().any(|family| name.starts_with(family.as_str())),
            "no # TYPE before {line}"
        );
        samples.push((name.to_string(), labels, value));
    }
    (samples, types)
}

/// Parses `k="v",…}`; returns the labels and what follows the `}`.
fn parse_labels(body: &str) -> (BTreeMap<String, String>, &str) {
    let mut labels = BTreeMap::new();
    let mut chars = body.chars();
    loop {
        let mut key = String::new();
        loop {
            match chars.next().expect("labels close") {
                '}' if key.is_empty() => return (labels, chars.as_str()),
                ',' if key.is_empty() => continue,
                '=' => break,
                c => key.push(c),
            }
        }
        assert!(
            key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !key.starts_with(|c: char| c.is_ascii_digit())
                && !key.starts_with("__"),
            "label name {key:?}"
        );
        assert_eq!(chars.next(), Some('"'), "a quoted value");
        let mut value = String::new();
        loop {
            match chars.next().expect("value closes") {
                '"' => break,
                '\\' => match chars.next().expect("escaped character") {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                other => value.push(other),
            }
        }
        labels.insert(key, value);
    }
}

pub(super) fn find<'a>(
    samples: &'a [Sample],
    name: &str,
    labels: &[(&str, &str)],
) -> Option<&'a Sample> {
    samples.iter().find(|(n, l, _)| {
        n == name
            && l.len() == labels.len()
            && labels
                .iter()
                .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
    })
}
