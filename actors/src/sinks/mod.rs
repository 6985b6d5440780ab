//! Sinks: components that store streams.

mod context;
mod exit;
mod inputs;
pub mod nats;
pub mod null;
pub mod parquet;

pub use context::{FailureFeed, SinkContext, SinkInput, WriteFailure};
pub use exit::SinkExit;
pub use inputs::SinkInputs;
