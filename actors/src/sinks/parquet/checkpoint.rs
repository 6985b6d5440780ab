//! Row-group checkpoints of an open part (`part-NNNNNN.rowgroups`): whenever the encoder closes
//! row groups, their Parquet metadata is appended here, so that what a killed process leaves in
//! `part-NNNNNN.parquet.partial` can be finished into a readable file without the write-ahead
//! log holding those rows too. The log then only needs the rows not yet in a recorded row group:
//! a fast stream writes each row to disk once, not twice.
//!
//! Format: records of `[u64 data end][u64 footer length][footer]` (little-endian), where the
//! footer is a Parquet footer (`FileMetaData`, its length, `PAR1`) of the row groups closed since
//! the previous record, and `data end` is the `.partial` file's length once they were written.
//! A record is appended only after its row groups' bytes were handed to the kernel.

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::file::metadata::{
    FileMetaData, ParquetMetaData, ParquetMetaDataReader, ParquetMetaDataWriter, RowGroupMetaData,
};
use parquet::file::writer::SerializedFileWriter;

use super::error::{SinkError, io_err};

/// File extension of a part's row-group checkpoints.
pub const CHECKPOINT_EXTENSION: &str = "rowgroups";

/// Bytes before each record's footer: the data end and the footer's length.
const RECORD_HEADER: usize = 16;
/// The Parquet footer's tail: the metadata length and `PAR1`.
const FOOTER_TAIL: usize = 8;

/// Appends the metadata of a part's closed row groups to its checkpoint file.
pub(super) struct CheckpointLog {
    path: PathBuf,
    /// Created with the first record.
    file: Option<File>,
    /// Row groups recorded so far.
    recorded: usize,
    /// Rows in them.
    rows: u64,
}

impl CheckpointLog {
    /// A checkpoint log at `path`; the file is created with the first record.
    pub(super) fn new(path: PathBuf) -> Self {
        Self {
            path,
            file: None,
            recorded: 0,
            rows: 0,
        }
    }

    /// Records the row groups `parquet` closed since the last record. Every byte `parquet` has
    /// written must already be handed to the kernel.
    pub(super) fn record(&mut self, parquet: &SerializedFileWriter<File>) -> Result<(), SinkError> {
        let closed = parquet.flushed_row_groups();
        let Some(new) = closed.get(self.recorded..).filter(|n| !n.is_empty()) else {
            return Ok(());
        };
        let rows: i64 = new.iter().map(RowGroupMetaData::num_rows).sum();
        let props = parquet.properties();
        let file_metadata = FileMetaData::new(
            props.writer_version().as_num(),
            rows,
            Some(props.created_by().to_string()),
            props.key_value_metadata().cloned(),
            Arc::new(parquet.schema_descr().clone()),
            None,
        );
        let metadata = ParquetMetaData::new(file_metadata, new.to_vec());
        let mut record = vec![0; RECORD_HEADER];
        ParquetMetaDataWriter::new(&mut record, &metadata)
            .finish()
            .map_err(|source| SinkError::Parquet {
                path: self.path.clone(),
                source,
            })?;
        let footer = (record.len() - RECORD_HEADER) as u64;
        record[..8].copy_from_slice(&(parquet.bytes_written() as u64).to_le_bytes());
        record[8..RECORD_HEADER].copy_from_slice(&footer.to_le_bytes());
        let file = match &mut self.file {
            Some(f) => f,
            none => none.insert(File::create(&self.path).map_err(io_err(&self.path))?),
        };
        file.write_all(&record).map_err(io_err(&self.path))?;
        self.recorded = closed.len();
        self.rows += rows as u64;
        Ok(())
    }

    /// Rows in the recorded row groups: recoverable from the `.partial` file alone.
    pub(super) fn rows(&self) -> u64 {
        self.rows
    }

    /// Makes every record durable.
    pub(super) fn sync(&self) -> Result<(), SinkError> {
        match &self.file {
            Some(f) => f.sync_data().map_err(io_err(&self.path)),
            None => Ok(()),
        }
    }

    /// Whether a record was written (the checkpoint file exists).
    pub(super) fn has_records(&self) -> bool {
        self.file.is_some()
    }

    /// The file's path, if a record was written (for deleting it once the part is sealed).
    pub(super) fn into_path(self) -> Option<PathBuf> {
        self.file.map(|_| self.path)
    }
}

/// The recorded row groups of a killed part that its `.partial` file really holds.
#[derive(Debug)]
pub struct Checkpointed {
    /// Metadata of every such row group, as one file's.
    metadata: ParquetMetaData,
    /// Where the last of them ends in the `.partial` file.
    data_end: u64,
}

impl Checkpointed {
    /// Rows in the recorded row groups.
    pub fn rows(&self) -> u64 {
        self.metadata.file_metadata().num_rows().max(0) as u64
    }
}

/// Reads the checkpoints at `path` of a `.partial` file of `partial_len` bytes: every complete
/// record whose row groups lie inside the file, up to the first that does not. `None` when there
/// is no such record.
pub fn read_checkpoints(path: &Path, partial_len: u64) -> Result<Option<Checkpointed>, SinkError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io_err(path)(source)),
    };
    let mut rest = bytes.as_slice();
    let mut first: Option<FileMetaData> = None;
    let mut row_groups: Vec<RowGroupMetaData> = Vec::new();
    let mut data_end = 0;
    while let Some((end, metadata, after)) = next_record(rest) {
        let inside = end <= partial_len
            && metadata.row_groups().iter().all(|g| {
                g.columns().iter().all(|c| {
                    let (start, len) = c.byte_range();
                    start.checked_add(len).is_some_and(|e| e <= end)
                })
            });
        if !inside {
            break;
        }
        first.get_or_insert_with(|| metadata.file_metadata().clone());
        row_groups.extend(metadata.row_groups().iter().cloned());
        data_end = end;
        rest = after;
    }
    let Some(file) = first else {
        return Ok(None);
    };
    let rows = row_groups.iter().map(RowGroupMetaData::num_rows).sum();
    let file = FileMetaData::new(
        file.version(),
        rows,
        file.created_by().map(str::to_string),
        file.key_value_metadata().cloned(),
        file.schema_descr_ptr(),
        None,
    );
    Ok(Some(Checkpointed {
        metadata: ParquetMetaData::new(file, row_groups),
        data_end,
    }))
}

/// The first complete, decodable record of `bytes`: its data end, its metadata and what follows.
fn next_record(bytes: &[u8]) -> Option<(u64, ParquetMetaData, &[u8])> {
    let end = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let len = usize::try_from(u64::from_le_bytes(
        bytes.get(8..RECORD_HEADER)?.try_into().ok()?,
    ))
    .ok()?;
    let footer = bytes.get(RECORD_HEADER..RECORD_HEADER.checked_add(len)?)?;
    let thrift = footer.get(..footer.len().checked_sub(FOOTER_TAIL)?)?;
    let metadata = ParquetMetaDataReader::decode_metadata(thrift).ok()?;
    Some((end, metadata, &bytes[RECORD_HEADER + len..]))
}

/// Turns a killed part's `.partial` file into a readable Parquet file of its recorded row
/// groups: cut after the last of them, then their footer written and synced.
pub fn finish_partial(partial: &Path, checkpointed: &Checkpointed) -> Result<(), SinkError> {
    let mut file = OpenOptions::new()
        .write(true)
        .open(partial)
        .map_err(io_err(partial))?;
    let mut footer = Vec::new();
    ParquetMetaDataWriter::new(&mut footer, &checkpointed.metadata)
        .finish()
        .map_err(|source| SinkError::Parquet {
            path: partial.to_path_buf(),
            source,
        })?;
    file.set_len(checkpointed.data_end)
        .and_then(|()| file.seek(SeekFrom::End(0)))
        .and_then(|_| file.write_all(&footer))
        .and_then(|()| file.sync_all())
        .map_err(io_err(partial))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instruments::sim::{SimGenerator, SimInstrumentConfig};
    use crate::sinks::parquet::encoder::PartEncoder;
    use crate::sinks::parquet::{ParquetSinkConfig, writer_properties};

    /// Writes `groups` row groups of 100 rows with checkpoints; returns the `.partial` file and
    /// the checkpoints' path (the encoder is dropped as a killed process would leave it).
    fn killed_part(dir: &Path, groups: usize) -> (PathBuf, PathBuf) {
        let cfg: SimInstrumentConfig =
            serde_json::from_str(r#"{"rate_hz": 100.0, "channels": ["a"]}"#).expect("valid");
        let mut g = SimGenerator::new(&cfg, 0, 0);
        let config = ParquetSinkConfig {
            row_group_rows: 100,
            ..Default::default()
        };
        let props = writer_properties(&config, vec![]).expect("props");
        let partial = dir.join("part-000000.parquet.partial");
        let checkpoints = dir.join("part-000000.rowgroups");
        let mut encoder = PartEncoder::create(
            &partial,
            g.schema().clone(),
            props,
            Some(checkpoints.clone()),
            config.min_compression_saving,
        )
        .expect("create");
        for _ in 0..groups {
            encoder.write(&g.generate(100)).expect("write");
        }
        assert_eq!(encoder.checkpointed_rows(), 100 * groups as u64);
        std::mem::forget(encoder);
        (partial, checkpoints)
    }

    #[test]
    fn only_row_groups_the_file_holds_count() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (partial, checkpoints) = killed_part(dir.path(), 3);
        let len = fs::metadata(&partial).expect("partial").len();
        let all = read_checkpoints(&checkpoints, len)
            .expect("readable")
            .expect("records");
        assert_eq!(all.rows(), 300);
        // A file cut inside the third row group (as after a power cut) holds two of them.
        let cut = read_checkpoints(&checkpoints, len - 10)
            .expect("readable")
            .expect("records");
        assert_eq!(cut.rows(), 200);
        // A torn last record is ignored too.
        let bytes = fs::read(&checkpoints).expect("checkpoints");
        fs::write(&checkpoints, &bytes[..bytes.len() - 5]).expect("truncate");
        let torn = read_checkpoints(&checkpoints, len)
            .expect("readable")
            .expect("records");
        assert_eq!(torn.rows(), 200);
        assert!(
            read_checkpoints(&dir.path().join("none.rowgroups"), len)
                .expect("a missing file is no error")
                .is_none()
        );
    }

    #[test]
    fn a_finished_partial_reads_back_its_checkpointed_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (partial, checkpoints) = killed_part(dir.path(), 2);
        let len = fs::metadata(&partial).expect("partial").len();
        let checkpointed = read_checkpoints(&checkpoints, len)
            .expect("readable")
            .expect("records");
        finish_partial(&partial, &checkpointed).expect("finish");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            File::open(&partial).expect("open"),
        )
        .expect("a valid Parquet file")
        .build()
        .expect("reader");
        let rows: usize = reader.map(|b| b.expect("batch").num_rows()).sum();
        assert_eq!(rows, 200);
    }
}
