//! The Parquet sink (`type = "parquet"`): one directory per stream, rotated part files.

mod actor;
mod c_heap;
mod checkpoint;
mod codec_choice;
mod config;
mod durability;
mod encoder;
mod error;
mod metadata;
mod open_part;
mod pool;
mod properties;
mod recover;
mod seal;
#[cfg(test)]
mod test_util;
mod wal;
mod writer;

pub use actor::ParquetSinkActor;
pub use checkpoint::{CHECKPOINT_EXTENSION, Checkpointed, finish_partial, read_checkpoints};
pub use config::{Codec, ParquetSinkConfig};
pub use error::SinkError;
pub use metadata::{FILE_METADATA_KEYS, RUN_METADATA_KEY, file_metadata};
pub use pool::{PoolClosed, WriterPool};
pub use properties::{PartSettings, Rotation, writer_properties, writer_properties_builder};
pub use recover::{DirectoryRecovery, RecoverablePart, recover_directory, recoverable_part};
pub use seal::{UnsealedPart, seal_parts, sync_dir};
pub use wal::{WAL_EXTENSION, WalContents, WalWriter, read_wal, read_wal_mapped};
pub use writer::StreamPartWriter;
