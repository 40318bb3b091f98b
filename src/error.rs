//! One small error type per operation; every message names the setting or
//! the input and says what would be accepted.

use std::fmt;

/// A configuration value was refused (builder setting, or `HOTMETRICS_*` or
/// `OTEL_*` variable).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ConfigError {
    /// The setting, as the user wrote it (`sample_rate` or
    /// `HOTMETRICS_SAMPLE_RATE`).
    pub setting: String,
    /// The refused value, as given.
    pub value: String,
    /// What would have been accepted.
    pub expected: String,
}

impl ConfigError {
    pub(crate) fn new(setting: &str, value: impl fmt::Display, expected: &str) -> Self {
        Self {
            setting: setting.to_string(),
            value: value.to_string(),
            expected: expected.to_string(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} = {:?}: expected {}",
            self.setting, self.value, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

/// `install()` failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum InstallError {
    /// A setting was invalid; fix it and install again.
    Config(ConfigError),
    /// Another engine is installed in this process; shut it down first.
    AlreadyInstalled,
    /// The flusher thread could not be started.
    Spawn(std::io::Error),
}

impl fmt::Display for InstallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InstallError::Config(error) => error.fmt(f),
            InstallError::AlreadyInstalled => f.write_str(
                "a hotmetrics engine is already installed in this process; shut it down before installing another",
            ),
            InstallError::Spawn(error) => write!(f, "could not start the flusher thread: {error}"),
        }
    }
}

impl std::error::Error for InstallError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            InstallError::Config(error) => Some(error),
            InstallError::Spawn(error) => Some(error),
            InstallError::AlreadyInstalled => None,
        }
    }
}

impl From<ConfigError> for InstallError {
    fn from(error: ConfigError) -> Self {
        InstallError::Config(error)
    }
}

/// `shutdown()` could not finish everything it promises.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ShutdownError {
    /// The final export of `exporter` did not finish within the shutdown
    /// timeout (the drain itself completed; the data is in the last
    /// snapshot). Raise `shutdown_timeout` or fix the backend.
    ExportTimedOut {
        /// The exporter's name.
        exporter: String,
    },
    /// The final export of `exporter` failed.
    ExportFailed {
        /// The exporter's name.
        exporter: String,
        /// Its error.
        error: ExportError,
    },
    /// The flusher thread panicked; the final drain ran on the caller's
    /// thread instead.
    FlusherPanicked,
}

impl fmt::Display for ShutdownError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShutdownError::ExportTimedOut { exporter } => write!(
                f,
                "final export to {exporter} did not finish within the shutdown timeout"
            ),
            ShutdownError::ExportFailed { exporter, error } => {
                write!(f, "final export to {exporter} failed: {error}")
            }
            ShutdownError::FlusherPanicked => f.write_str(
                "the flusher thread panicked; the final drain ran on the caller's thread",
            ),
        }
    }
}

impl std::error::Error for ShutdownError {}

/// An exporter could not deliver a snapshot.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ExportError {
    /// Worth retrying later (network error, 5xx, throttling).
    Transient(String),
    /// Retrying the same data will not help (bad request, bad config).
    Permanent(String),
    /// The exporter panicked; the engine caught it.
    Panicked(String),
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportError::Transient(message) => write!(f, "transient export error: {message}"),
            ExportError::Permanent(message) => write!(f, "permanent export error: {message}"),
            ExportError::Panicked(message) => write!(f, "exporter panicked: {message}"),
        }
    }
}

impl std::error::Error for ExportError {}

/// A metric could not be registered.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RegistrationError {
    /// The name breaks the instrument-name rules: an ASCII letter first,
    /// then letters, digits, `_`, `.`, `-` or `/`, at most 255 characters.
    InvalidName {
        /// The refused name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The name is already registered with another kind.
    KindConflict {
        /// The name.
        name: String,
        /// Kind it was registered with first.
        existing: &'static str,
        /// Kind asked for now.
        requested: &'static str,
    },
    /// A label key is empty or a label is too long.
    InvalidLabel {
        /// The metric name.
        name: String,
        /// The offending key (truncated for display).
        key: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
}

impl fmt::Display for RegistrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistrationError::InvalidName { name, reason } => {
                write!(f, "invalid metric name {name:?}: {reason}")
            }
            RegistrationError::KindConflict {
                name,
                existing,
                requested,
            } => write!(
                f,
                "metric {name:?} is already registered as a {existing}, cannot register it as a {requested}"
            ),
            RegistrationError::InvalidLabel { name, key, reason } => {
                write!(f, "invalid label {key:?} on metric {name:?}: {reason}")
            }
        }
    }
}

impl std::error::Error for RegistrationError {}
