//! The one trait every exporter implements.

use crate::error::ExportError;
use crate::export::inbox::Inbox;
use crate::report::snapshot::Snapshot;
use crate::report::stats::CircuitState;

/// Somewhere snapshots can be sent.
///
/// ```
/// use hotmetrics::export::Exporter;
/// use hotmetrics::{ExportError, Snapshot};
///
/// struct CountSeries(usize);
///
/// impl Exporter for CountSeries {
///     fn export(&mut self, snapshot: &Snapshot) -> Result<(), ExportError> {
///         self.0 = snapshot.series.len();
///         Ok(())
///     }
/// }
/// ```
pub trait Exporter: Send + 'static {
    /// Delivers one snapshot (cumulative values since the engine started).
    ///
    /// # Errors
    ///
    /// [`ExportError`] when the snapshot could not be delivered; the engine
    /// counts it and logs it (rate-limited).
    fn export(&mut self, snapshot: &Snapshot) -> Result<(), ExportError>;

    /// Delivers [`inbox.current()`](Inbox::current); what the engine calls.
    ///
    /// The default exports the current snapshot once with
    /// [`Exporter::export`]. An exporter that retries overrides it to take
    /// newer snapshots between attempts ([`Inbox::refresh`]), to sleep in a
    /// way shutdown interrupts ([`Inbox::wait`]), and to stop at the
    /// shutdown deadline ([`Inbox::deadline`]); see [`Inbox`] for an
    /// example. An exporter that wraps another forwards this method too, or
    /// the inner one never sees the inbox.
    ///
    /// # Errors
    ///
    /// As [`Exporter::export`].
    fn export_from(&mut self, inbox: &mut Inbox<'_>) -> Result<(), ExportError> {
        self.export(inbox.current())
    }

    /// Called once after the final export, at shutdown.
    ///
    /// # Errors
    ///
    /// [`ExportError`] when flushing or closing failed.
    fn shutdown(&mut self) -> Result<(), ExportError> {
        Ok(())
    }

    /// A short name for logs and errors.
    fn name(&self) -> &str {
        std::any::type_name::<Self>()
    }

    /// The exporter's circuit-breaker state, if it has one.
    fn circuit_state(&self) -> CircuitState {
        CircuitState::Closed
    }
}

impl Exporter for Box<dyn Exporter> {
    fn export(&mut self, snapshot: &Snapshot) -> Result<(), ExportError> {
        (**self).export(snapshot)
    }
    fn export_from(&mut self, inbox: &mut Inbox<'_>) -> Result<(), ExportError> {
        (**self).export_from(inbox)
    }
    fn shutdown(&mut self) -> Result<(), ExportError> {
        (**self).shutdown()
    }
    fn name(&self) -> &str {
        (**self).name()
    }
    fn circuit_state(&self) -> CircuitState {
        (**self).circuit_state()
    }
}
