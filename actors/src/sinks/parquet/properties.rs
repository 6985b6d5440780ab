//! What every part file of a sink is written with: encoder properties, file metadata, rotation
//! and whether a write-ahead log is kept.

use std::time::Duration;

use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{WriterProperties, WriterPropertiesBuilder};
use parquet::schema::types::ColumnPath;

use super::config::{Codec, ParquetSinkConfig};
use super::error::SinkError;

/// Writer properties for acquired data, chosen for noisy floats: no dictionary encoding (it costs
/// speed and buys nothing on such data), the configured codec, and `key_value` as file metadata.
pub fn writer_properties(
    config: &ParquetSinkConfig,
    key_value: Vec<(String, String)>,
) -> Result<WriterProperties, SinkError> {
    Ok(writer_properties_builder(config)?
        .set_key_value_metadata(Some(
            key_value
                .into_iter()
                .map(|(k, v)| KeyValue::new(k, v))
                .collect(),
        ))
        .build())
}

/// The builder behind [`writer_properties`], for callers that add settings of their own.
pub fn writer_properties_builder(
    config: &ParquetSinkConfig,
) -> Result<WriterPropertiesBuilder, SinkError> {
    let compression = match config.compression {
        Codec::Zstd => Compression::ZSTD(
            ZstdLevel::try_new(config.zstd_level)
                .map_err(|e| SinkError::Settings(e.to_string()))?,
        ),
        Codec::Snappy => Compression::SNAPPY,
        Codec::None => Compression::UNCOMPRESSED,
    };
    // DELTA_BINARY_PACKED on the regular `timestamp` and `seq` columns: measured (benches/
    // writers.rs, BENCHMARKS.md) both faster and smaller than PLAIN; floats stay PLAIN
    // (BYTE_STREAM_SPLIT made files 13% smaller but encoding about 10% slower).
    Ok(WriterProperties::builder()
        .set_compression(compression)
        .set_dictionary_enabled(false)
        .set_column_encoding(
            ColumnPath::from(crate::batch::TIMESTAMP_COLUMN),
            Encoding::DELTA_BINARY_PACKED,
        )
        .set_column_encoding(
            ColumnPath::from(crate::batch::SEQ_COLUMN),
            Encoding::DELTA_BINARY_PACKED,
        )
        .set_max_row_group_row_count(Some(config.row_group_rows))
        .set_created_by(format!("ensemble {}", env!("CARGO_PKG_VERSION"))))
}

/// Everything a [`StreamPartWriter`] needs besides where to write.
#[derive(Debug, Clone)]
pub struct PartSettings {
    /// Encoder settings, including the file metadata.
    pub props: WriterProperties,
    /// When to start a new part.
    pub rotation: Rotation,
    /// Keep a write-ahead log per open part (made durable by the sink's group commit).
    pub write_ahead_log: bool,
    /// Metadata stored with the write-ahead log, so a recovered part can carry it.
    pub wal_metadata: Vec<(String, String)>,
    /// A column whose compression saves less than this share is stored uncompressed for a
    /// while (`ParquetSinkConfig::min_compression_saving`).
    pub min_compression_saving: f64,
}

impl PartSettings {
    /// Settings from a sink's configuration, with `metadata` written into every file.
    pub fn from_config(
        config: &ParquetSinkConfig,
        metadata: Vec<(String, String)>,
    ) -> Result<Self, SinkError> {
        Ok(Self {
            props: writer_properties(config, metadata.clone())?,
            rotation: Rotation {
                rows: config.rotate_rows,
                interval: config.rotate_interval,
            },
            write_ahead_log: config.write_ahead_log,
            wal_metadata: metadata,
            min_compression_saving: config.min_compression_saving,
        })
    }
}

/// When to start a new part file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotation {
    /// After this many rows in a part.
    pub rows: Option<u64>,
    /// After a part has been open this long.
    pub interval: Option<Duration>,
}
