//! The Parquet sink (`type = "parquet"`): one directory per stream, rotated part files.

mod config;
mod writer;

pub use config::{Codec, ParquetSinkConfig};
pub use writer::{
    Rotation, SinkError, StreamPartWriter, sync_dir, writer_properties, writer_properties_builder,
};
