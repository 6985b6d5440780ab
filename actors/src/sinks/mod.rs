//! Sinks: components that store streams.

pub mod null;
pub mod parquet;
