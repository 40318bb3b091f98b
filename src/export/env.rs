//! Reading the OpenTelemetry environment variables shared by the exporters.
//!
//! The OpenTelemetry specification treats an empty value as unset, lists as
//! `key=value` pairs separated by commas with percent-encoded parts, and
//! durations as whole milliseconds. Everything here reads from an
//! [`EnvSource`], which is either the process environment or a list given by
//! the caller (tests, embedding), so nothing depends on global state that
//! tests running in parallel would race on.
//!
//! Values that may carry credentials (header values) never go into an
//! error: the error names the variable and the key, and says `<redacted>`.

use std::collections::HashMap;
use std::time::Duration;

use crate::error::ConfigError;

/// Where `OTEL_*` variables are read from.
#[derive(Clone, Debug, Default)]
pub(crate) struct EnvSource {
    /// `None`: the process environment.
    vars: Option<HashMap<String, String>>,
}

impl EnvSource {
    /// The process environment.
    pub(crate) fn process() -> Self {
        Self { vars: None }
    }

    /// The given variables only.
    pub(crate) fn from_vars<I, K, V>(vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        Self {
            vars: Some(
                vars.into_iter()
                    .map(|(key, value)| (key.as_ref().to_string(), value.as_ref().to_string()))
                    .collect(),
            ),
        }
    }

    /// The trimmed value of `key`; empty values count as unset.
    pub(crate) fn get(&self, key: &str) -> Option<String> {
        let raw = match &self.vars {
            Some(vars) => vars.get(key).cloned(),
            None => std::env::var(key).ok(),
        }?;
        let trimmed = raw.trim();
        (!trimmed.is_empty()).then(|| trimmed.to_string())
    }

    /// The first of `keys` that is set, with its name.
    pub(crate) fn first(&self, keys: &[&'static str]) -> Option<(&'static str, String)> {
        keys.iter()
            .find_map(|key| self.get(key).map(|value| (*key, value)))
    }

    /// `true`/`false` (case-insensitive), as the specification spells them.
    pub(crate) fn bool(&self, key: &'static str) -> Result<Option<bool>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(raw) => match raw.to_ascii_lowercase().as_str() {
                "true" => Ok(Some(true)),
                "false" => Ok(Some(false)),
                _ => Err(ConfigError::new(key, raw, "true or false")),
            },
        }
    }

    /// A whole number of milliseconds.
    pub(crate) fn millis(
        &self,
        keys: &[&'static str],
    ) -> Result<Option<(&'static str, Duration)>, ConfigError> {
        match self.first(keys) {
            None => Ok(None),
            Some((key, raw)) => raw
                .parse::<u64>()
                .map(|millis| Some((key, Duration::from_millis(millis))))
                .map_err(|_| ConfigError::new(key, raw, "a whole number of milliseconds")),
        }
    }
}

#[cfg(any(feature = "otlp", feature = "prometheus"))]
/// Decodes `%XX` escapes; `None` on a malformed escape or invalid UTF-8.
pub(crate) fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text.get(index + 1..index + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(any(feature = "otlp", feature = "prometheus"))]
/// Parses `k1=v1,k2=v2` with percent-encoded keys and values. Empty
/// members are skipped. On error, returns the 1-based position of the bad
/// member (never its text: it may be a credential).
pub(crate) fn parse_pairs(raw: &str) -> Result<Vec<(String, String)>, usize> {
    let mut pairs = Vec::new();
    for (position, member) in raw.split(',').enumerate() {
        let member = member.trim();
        if member.is_empty() {
            continue;
        }
        let (key, value) = member.split_once('=').ok_or(position + 1)?;
        let key = percent_decode(key.trim()).ok_or(position + 1)?;
        let value = percent_decode(value.trim()).ok_or(position + 1)?;
        if key.is_empty() {
            return Err(position + 1);
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

#[cfg(any(feature = "otlp", feature = "prometheus"))]
/// The resource of this process: `service.name` and the other attributes,
/// from explicit settings, `OTEL_SERVICE_NAME` and
/// `OTEL_RESOURCE_ATTRIBUTES`, in that order of precedence.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Resource {
    /// Sorted by key, `service.name` included.
    pub(crate) attributes: Vec<(String, String)>,
}

#[cfg(any(feature = "otlp", feature = "prometheus"))]
impl Resource {
    /// Builds the resource. `explicit_name` and `explicit` (attributes set in
    /// code) win over the environment.
    pub(crate) fn resolve(
        env: &EnvSource,
        explicit_name: Option<&str>,
        explicit: &[(String, String)],
    ) -> Self {
        let mut attributes: HashMap<String, String> = HashMap::new();
        attributes.insert("telemetry.sdk.name".into(), "hotmetrics".into());
        attributes.insert("telemetry.sdk.language".into(), "rust".into());
        attributes.insert(
            "telemetry.sdk.version".into(),
            env!("CARGO_PKG_VERSION").into(),
        );
        if let Some(raw) = env.get("OTEL_RESOURCE_ATTRIBUTES") {
            match parse_pairs(&raw) {
                Ok(pairs) => attributes.extend(pairs),
                // The specification: discard the whole value on a parse error.
                Err(position) => log::warn!(
                    target: "hotmetrics",
                    "OTEL_RESOURCE_ATTRIBUTES ignored: member {position} is not a percent-encoded key=value pair"
                ),
            }
        }
        if let Some(name) = env.get("OTEL_SERVICE_NAME") {
            attributes.insert("service.name".into(), name);
        }
        attributes.extend(explicit.iter().cloned());
        if let Some(name) = explicit_name {
            attributes.insert("service.name".into(), name.to_string());
        }
        attributes
            .entry("service.name".into())
            .or_insert_with(default_service_name);
        let mut attributes: Vec<(String, String)> = attributes.into_iter().collect();
        attributes.sort();
        Self { attributes }
    }

    /// The value of `key`.
    #[cfg(test)]
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(any(feature = "otlp", feature = "prometheus"))]
/// `unknown_service:<executable name>`, as the semantic conventions say.
fn default_service_name() -> String {
    let executable = std::env::current_exe()
        .ok()
        .and_then(|path| {
            path.file_name()
                .map(|name| name.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    if executable.is_empty() {
        "unknown_service".into()
    } else {
        format!("unknown_service:{executable}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_are_unset() {
        let env = EnvSource::from_vars([("A", "  "), ("B", " x ")]);
        assert_eq!(env.get("A"), None);
        assert_eq!(env.get("B").as_deref(), Some("x"));
        assert_eq!(env.first(&["A", "B"]), Some(("B", "x".to_string())));
    }

    #[cfg(any(feature = "otlp", feature = "prometheus"))]
    #[test]
    fn pairs_are_percent_decoded() {
        let pairs = parse_pairs("a=1, b%2Cc = x%3Dy ,,").unwrap();
        assert_eq!(
            pairs,
            vec![("a".into(), "1".into()), ("b,c".into(), "x=y".into())]
        );
        assert_eq!(parse_pairs("a=1,broken"), Err(2));
        assert_eq!(parse_pairs("a=%zz"), Err(1));
        assert_eq!(parse_pairs("=v"), Err(1));
    }

    #[test]
    fn bools_and_millis_are_strict() {
        let env = EnvSource::from_vars([("T", "TRUE"), ("X", "yes"), ("M", "250"), ("N", "-1")]);
        assert_eq!(env.bool("T").unwrap(), Some(true));
        assert!(env.bool("X").is_err());
        assert_eq!(
            env.millis(&["M"]).unwrap(),
            Some(("M", Duration::from_millis(250)))
        );
        let error = env.millis(&["N"]).unwrap_err();
        assert_eq!(error.setting, "N");
    }

    #[cfg(any(feature = "otlp", feature = "prometheus"))]
    #[test]
    fn resource_precedence() {
        let env = EnvSource::from_vars([
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=from-attrs,deployment.environment=prod",
            ),
            ("OTEL_SERVICE_NAME", "from-env"),
        ]);
        let resource = Resource::resolve(&env, None, &[]);
        assert_eq!(resource.get("service.name"), Some("from-env"));
        assert_eq!(resource.get("deployment.environment"), Some("prod"));
        assert_eq!(resource.get("telemetry.sdk.name"), Some("hotmetrics"));
        let resource = Resource::resolve(&env, Some("code"), &[]);
        assert_eq!(resource.get("service.name"), Some("code"));
        let bad = EnvSource::from_vars([("OTEL_RESOURCE_ATTRIBUTES", "a=1,oops")]);
        let resource = Resource::resolve(&bad, None, &[]);
        assert_eq!(resource.get("a"), None, "a bad value is discarded whole");
        assert!(resource
            .get("service.name")
            .unwrap()
            .starts_with("unknown_service"));
    }
}
