//! Sinks: components that store streams.

pub mod parquet;
