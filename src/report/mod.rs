//! What the consumer side builds and exporters read: [`Snapshot`]s of the
//! series, the engine's [`Stats`], its [`Health`].
//!
//! Plain data and its formatting; it imports only the hot side's names for
//! kinds and labels.
//!
//! [`Snapshot`]: snapshot::Snapshot
//! [`Stats`]: stats::Stats
//! [`Health`]: health::Health

pub(crate) mod distribution;
pub(crate) mod health;
pub(crate) mod snapshot;
pub(crate) mod stats;
