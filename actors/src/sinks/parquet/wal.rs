//! The write-ahead log of an open part: every batch is appended to `part-NNNNNN.wal` (an Arrow
//! IPC stream) before it goes to the Parquet encoder, so that a killed process leaves its rows
//! behind in a form `ensemble recover` can read.
//!
//! Durability: each append is handed to the kernel at once (it survives a killed process); the
//! sink's group commit (one `syncfs` per flush interval) makes it survive a power cut. A part's
//! log is deleted once the part's Parquet file is finished, synced and renamed.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{Schema, SchemaRef};

use super::writer::SinkError;

/// File extension of a write-ahead log.
pub const WAL_EXTENSION: &str = "wal";

/// The log's write buffer. Every append is flushed at once, so the buffer only gathers one IPC
/// message's pieces into one `write`; larger writes bypass it. A small buffer matters with
/// thousands of open logs (10,000 slow streams × std's default 8 KiB = 80 MB).
const WAL_BUFFER_BYTES: usize = 2048;

/// Appends batches of one part to its log.
pub struct WalWriter {
    path: PathBuf,
    writer: StreamWriter<BufWriter<File>>,
}

impl WalWriter {
    /// Creates the log at `path` for batches of `schema`; `metadata` is stored with the schema
    /// (run id, stream, ...) so that a recovered part can carry it.
    pub fn create(
        path: PathBuf,
        schema: &Schema,
        metadata: &[(String, String)],
    ) -> Result<Self, SinkError> {
        let file = File::create(&path).map_err(|source| SinkError::Io {
            path: path.clone(),
            source,
        })?;
        let mut meta = schema.metadata().clone();
        meta.extend(metadata.iter().cloned());
        let logged = schema.clone().with_metadata(meta);
        let buffered = BufWriter::with_capacity(WAL_BUFFER_BYTES, file);
        let writer = StreamWriter::try_new(buffered, &logged).map_err(|e| wal_err(&path, e))?;
        let mut wal = Self { path, writer };
        wal.writer.flush().map_err(|e| wal_err(&wal.path, e))?;
        Ok(wal)
    }

    /// Appends a batch and hands it to the kernel.
    pub fn append(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        self.writer
            .write(batch)
            .map_err(|e| wal_err(&self.path, e))?;
        self.writer.flush().map_err(|e| wal_err(&self.path, e))
    }

    /// Makes everything appended durable.
    pub fn sync(&mut self) -> Result<(), SinkError> {
        self.writer
            .get_ref()
            .get_ref()
            .sync_data()
            .map_err(|source| SinkError::Io {
                path: self.path.clone(),
                source,
            })
    }

    /// Closes the log and returns its path, for deleting it later (see `seal_parts`).
    pub fn into_path(self) -> PathBuf {
        self.path
    }

    /// Deletes the log: its part is safely finished.
    pub fn remove(self) -> Result<(), SinkError> {
        let path = self.path.clone();
        drop(self.writer);
        fs::remove_file(&path).map_err(|source| SinkError::Io { path, source })
    }
}

fn wal_err(path: &Path, e: arrow_schema::ArrowError) -> SinkError {
    SinkError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    }
}

/// What a log holds: its schema (without the stored metadata), the metadata, and every complete
/// batch. A torn last message (the process died while writing it) is left out and flagged.
#[derive(Debug)]
pub struct WalContents {
    /// The batches' schema, as the sink received them.
    pub schema: SchemaRef,
    /// Metadata stored with the log (run id, stream, ...).
    pub metadata: HashMap<String, String>,
    /// Every complete batch, in order.
    pub batches: Vec<RecordBatch>,
    /// Whether the log ended in the middle of a message.
    pub torn_tail: bool,
}

/// Reads a log, keeping every complete batch.
///
/// Returns `Ok(None)` for a log that ended before its schema was complete (nothing to recover).
pub fn read_wal(path: &Path, metadata_keys: &[&str]) -> Result<Option<WalContents>, SinkError> {
    let file = File::open(path).map_err(|source| SinkError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let Ok(reader) = StreamReader::try_new(BufReader::new(file), None) else {
        return Ok(None);
    };
    let logged = reader.schema();
    let mut metadata = HashMap::new();
    let mut plain = logged.metadata().clone();
    for key in metadata_keys {
        if let Some(v) = plain.remove(key) {
            metadata.insert((*key).to_string(), v);
        }
    }
    let schema = Arc::new(logged.as_ref().clone().with_metadata(plain));
    let mut batches = Vec::new();
    let mut torn_tail = false;
    for item in reader {
        match item {
            Ok(batch) => match RecordBatch::try_new(schema.clone(), batch.columns().to_vec()) {
                Ok(b) => batches.push(b),
                Err(_) => {
                    torn_tail = true;
                    break;
                }
            },
            Err(_) => {
                torn_tail = true;
                break;
            }
        }
    }
    Ok(Some(WalContents {
        schema,
        metadata,
        batches,
        torn_tail,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instruments::sim::{SimGenerator, SimInstrumentConfig};

    fn generator() -> SimGenerator {
        let cfg: SimInstrumentConfig =
            serde_json::from_str(r#"{"rate_hz": 100.0, "channels": ["a"]}"#).expect("valid");
        SimGenerator::new(&cfg, 0, 0)
    }

    #[test]
    fn a_torn_log_yields_every_complete_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("part-000000.wal");
        let mut g = generator();
        let meta = vec![("ensemble.stream".to_string(), "s".to_string())];
        let mut wal = WalWriter::create(path.clone(), g.schema(), &meta).expect("create");
        for _ in 0..3 {
            wal.append(&g.generate(50)).expect("append");
        }
        drop(wal);
        let whole = fs::read(&path).expect("read");
        // Cut the file in the middle of the third batch, as a killed process would.
        fs::write(&path, &whole[..whole.len() - 100]).expect("truncate");
        let contents = read_wal(&path, &["ensemble.stream"])
            .expect("readable")
            .expect("schema complete");
        assert_eq!(contents.batches.len(), 2);
        assert!(contents.torn_tail);
        assert_eq!(contents.metadata["ensemble.stream"], "s");
        assert_eq!(contents.schema.as_ref(), g.schema().as_ref());
    }

    #[test]
    fn a_log_cut_inside_its_schema_has_nothing_to_recover() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.wal");
        fs::write(&path, [0xff, 0xff, 0xff]).expect("write");
        assert!(read_wal(&path, &[]).expect("readable").is_none());
    }
}
