//! Sinks: components that store streams.

mod exit;
mod inputs;
pub mod nats;
pub mod null;
pub mod parquet;

pub use exit::SinkExit;
pub use inputs::SinkInputs;
