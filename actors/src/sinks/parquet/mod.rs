//! The Parquet sink (`type = "parquet"`): one directory per stream, rotated part files.

mod actor;
mod config;
mod durability;
mod pool;
mod writer;

pub use actor::ParquetSinkActor;
pub use config::{Codec, ParquetSinkConfig};
pub use pool::{FailureFeed, PoolClosed, SinkContext, SinkInput, WriteFailure, WriterPool};
pub use writer::{
    Rotation, SinkError, StreamPartWriter, sync_dir, writer_properties, writer_properties_builder,
};
