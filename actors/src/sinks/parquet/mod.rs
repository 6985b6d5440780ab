//! The Parquet sink (`type = "parquet"`): one directory per stream, rotated part files.

mod actor;
mod c_heap;
mod checkpoint;
mod config;
mod durability;
mod encoder;
mod pool;
mod recover;
#[cfg(test)]
mod test_util;
mod wal;
mod writer;

pub use actor::ParquetSinkActor;
pub use checkpoint::{CHECKPOINT_EXTENSION, Checkpointed, finish_partial, read_checkpoints};
pub use config::{Codec, ParquetSinkConfig};
pub use pool::{FailureFeed, PoolClosed, SinkContext, SinkInput, WriteFailure, WriterPool};
pub use recover::{
    DirectoryRecovery, FILE_METADATA_KEYS, RUN_METADATA_KEY, RecoverablePart, file_metadata,
    recover_directory, recoverable_part,
};
pub use wal::{WAL_EXTENSION, WalContents, WalWriter, read_wal, read_wal_mapped};
pub use writer::{
    PartSettings, Rotation, SinkError, StreamPartWriter, UnsealedPart, seal_parts, sync_dir,
    writer_properties, writer_properties_builder,
};
