//! Sinks: components that store streams.

mod inputs;
pub mod nats;
pub mod null;
pub mod parquet;

pub use inputs::SinkInputs;
