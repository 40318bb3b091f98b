//! The engine's public face: the [`Engine`] handle an install returns, and
//! its [`Builder`] (settings, validation, environment).
//!
//! The engine is the top of the crate: it builds the hot side's pipeline,
//! the consumer side's shared state and the exporters' threads, and nothing
//! below imports it.

mod builder;
mod env;
mod from_env;
mod handle;

pub use builder::Builder;
pub use handle::Engine;
