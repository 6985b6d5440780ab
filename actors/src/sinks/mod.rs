//! Sinks: components that store streams.

pub mod nats;
pub mod null;
pub mod parquet;
