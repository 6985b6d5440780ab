//! The plain Parquet writer of one stream: rotated part files, written as `*.partial` and
//! renamed when finished. No actors and no threads here; the sink runs it on a writer thread.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{WriterProperties, WriterPropertiesBuilder};
use parquet::schema::types::ColumnPath;

use super::checkpoint::CHECKPOINT_EXTENSION;
use super::config::{Codec, ParquetSinkConfig};
use super::encoder::PartEncoder;
use super::wal::{WAL_EXTENSION, WalWriter, read_wal};
use crate::batch::{DataBatch, StreamId};
use crate::control::{PartFile, StreamWriteReport};

/// Why a Parquet sink could not write. Every variant names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The file system refused (disk full, permission denied, directory gone, ...).
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The Parquet encoder refused the data.
    #[error("cannot encode {path}: {source}")]
    Parquet {
        /// The file being written.
        path: PathBuf,
        /// What the encoder said.
        source: parquet::errors::ParquetError,
    },
    /// The configuration does not make valid writer properties.
    #[error("invalid Parquet settings: {0}")]
    Settings(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SinkError + '_ {
    move |source| SinkError::Io {
        path: path.to_path_buf(),
        source,
    }
}

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

/// A part's rows are held, not encoded, until it has a row group's worth or batches of this
/// many bytes of Arrow memory (with a write-ahead log only: held rows live in the log, and are
/// read back from it when the encoder opens).
const HOLD_BYTES: usize = 64 * 1024;

struct OpenPart {
    /// The Parquet encoder; opened only once the part has enough rows to be worth it (see
    /// [`HOLD_BYTES`]), so a slow stream costs no open file and no encoder buffers until then.
    encoder: Option<PartEncoder>,
    /// Rows taken while the encoder was not open yet, and the Arrow memory their batches took.
    /// They are kept in the log only (not in memory), so that 10,000 slow streams cost memory
    /// that does not grow with the run.
    held_rows: usize,
    held_bytes: usize,
    wal: Option<WalWriter>,
    /// Rows taken but not yet logged, each batch with the part row of its first row. They are
    /// logged in one append per [`log`](Self::log) call (the sink's log tick, a few times per
    /// flush interval, and before rows are reported handed to the OS); rows that reach a
    /// checkpointed row group first are never logged.
    unlogged: Vec<(u64, RecordBatch)>,
    partial_path: PathBuf,
    final_path: PathBuf,
    relative_path: PathBuf,
    rows: u64,
    first_seq: u64,
    opened_at: Instant,
}

impl OpenPart {
    /// Appends every unlogged row that no checkpoint covers to the log, in one write.
    fn log(&mut self) -> Result<(), SinkError> {
        self.forget_checkpointed();
        if let Some(wal) = &mut self.wal {
            if !self.unlogged.is_empty() {
                wal.append(self.unlogged.iter().map(|(first, batch)| (*first, batch)))?;
            }
        }
        self.unlogged.clear();
        Ok(())
    }

    /// Drops the unlogged rows that the checkpoints now cover (the `.partial` file holds them).
    fn forget_checkpointed(&mut self) {
        let covered = self
            .encoder
            .as_ref()
            .map_or(0, PartEncoder::checkpointed_rows);
        self.unlogged.retain_mut(|(first, batch)| {
            let rows = batch.num_rows() as u64;
            if *first + rows <= covered {
                return false;
            }
            if *first < covered {
                let skip = (covered - *first) as usize;
                *batch = batch.slice(skip, batch.num_rows() - skip);
                *first = covered;
            }
            true
        });
    }

    /// Takes `rows` of the part, the first of which is part row `first_row`: holds them while
    /// that is allowed, otherwise encodes them.
    fn add(
        &mut self,
        rows: RecordBatch,
        first_row: u64,
        settings: &PartSettings,
        schema: &SchemaRef,
    ) -> Result<(), SinkError> {
        let row_group_rows = settings
            .props
            .max_row_group_row_count()
            .unwrap_or(usize::MAX);
        let bytes = rows.get_array_memory_size();
        let hold = self.encoder.is_none()
            && self.wal.is_some()
            && self.held_rows + rows.num_rows() < row_group_rows
            && self.held_bytes + bytes < HOLD_BYTES;
        if hold {
            self.held_rows += rows.num_rows();
            self.held_bytes += bytes;
            self.unlogged.push((first_row, rows));
            return Ok(());
        }
        // `rows` joins the unlogged ones only after the encoder is open, so that the rows it
        // reads back from the log are exactly the held ones.
        self.encoder(settings, schema)?.write(&rows)?;
        if self.wal.is_some() {
            self.unlogged.push((first_row, rows));
        }
        self.forget_checkpointed();
        Ok(())
    }

    /// The encoder, opened now (with every held row, read back from the log, written to it)
    /// if it was not yet.
    fn encoder(
        &mut self,
        settings: &PartSettings,
        schema: &SchemaRef,
    ) -> Result<&mut PartEncoder, SinkError> {
        if self.encoder.is_none() {
            let held = self.read_back_held(schema)?;
            let mut encoder = PartEncoder::create(
                &self.partial_path,
                schema.clone(),
                settings.props.clone(),
                settings
                    .write_ahead_log
                    .then(|| self.final_path.with_extension(CHECKPOINT_EXTENSION)),
            )?;
            for batch in &held {
                encoder.write(batch)?;
            }
            (self.held_rows, self.held_bytes) = (0, 0);
            self.encoder = Some(encoder);
        }
        Ok(self
            .encoder
            .as_mut()
            .expect("the encoder was opened just above"))
    }

    /// The held rows, read back from the log (after logging what is still unlogged of them):
    /// every row of the part so far, since no row group was closed yet.
    fn read_back_held(&mut self, schema: &SchemaRef) -> Result<Vec<RecordBatch>, SinkError> {
        if self.held_rows == 0 {
            return Ok(Vec::new());
        }
        let held = self.held_rows;
        self.log()?;
        let Some(wal) = &self.wal else {
            return Ok(Vec::new());
        };
        let lost = || SinkError::Io {
            path: wal.path().to_path_buf(),
            source: std::io::Error::other(format!(
                "the log lost held rows: {held} rows were written to it"
            )),
        };
        let contents = read_wal(wal.path(), &[])?.ok_or_else(lost)?;
        let batches: Vec<RecordBatch> = contents
            .rows_from(0)
            .into_iter()
            .map(|b| RecordBatch::try_new(schema.clone(), b.columns().to_vec()))
            .collect::<Result<_, _>>()
            .map_err(|e| SinkError::Io {
                path: wal.path().to_path_buf(),
                source: std::io::Error::other(e),
            })?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if rows != held {
            return Err(lost());
        }
        Ok(batches)
    }
}

/// A finished part whose footer is written but which is neither synced nor renamed yet:
/// [`seal_parts`] does that for many parts at once. Until then its write-ahead log and
/// checkpoints stay, so a crash in between recovers it.
#[derive(Debug)]
pub struct UnsealedPart {
    partial_path: PathBuf,
    final_path: PathBuf,
    /// The part's write-ahead log and checkpoints, deleted once it is sealed.
    logs: Vec<PathBuf>,
}

/// Makes finished parts durable under their final names with two `syncfs` calls in all (one
/// for their bytes, one for the renames) instead of an `fsync` per file and per directory, then
/// deletes their logs. `run_dir` names the file system. On this kind of VM an `fdatasync` costs
/// about 3.6 ms, so sealing 10,000 parts one by one took 70–90 s.
pub fn seal_parts(run_dir: &Path, parts: Vec<UnsealedPart>) -> Result<(), SinkError> {
    if parts.is_empty() {
        return Ok(());
    }
    if parts.len() <= SYNC_EACH_UP_TO {
        return seal_each(run_dir, &parts);
    }
    let fs = File::open(run_dir).map_err(io_err(run_dir))?;
    let syncfs = || {
        nix::unistd::syncfs(&fs).map_err(|errno| SinkError::Io {
            path: run_dir.to_path_buf(),
            source: errno.into(),
        })
    };
    syncfs()?;
    // Renames and unlinks wait on the file system's journal, not the CPU: a few threads keep
    // several in flight (unlinking 10,000 logs one by one took tens of seconds here).
    let chunk = parts.len().div_ceil(SEAL_THREADS);
    let each = |f: &(dyn Fn(&UnsealedPart) -> Result<(), SinkError> + Sync)| {
        std::thread::scope(|scope| {
            let workers: Vec<_> = parts
                .chunks(chunk)
                .map(|c| scope.spawn(move || c.iter().try_for_each(f)))
                .collect();
            workers
                .into_iter()
                .try_for_each(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
        })
    };
    each(&|part| {
        fs::rename(&part.partial_path, &part.final_path).map_err(io_err(&part.final_path))
    })?;
    syncfs()?;
    each(&UnsealedPart::remove_logs)
}

impl UnsealedPart {
    /// Deletes the part's log and checkpoints: it is sealed.
    fn remove_logs(&self) -> Result<(), SinkError> {
        self.logs
            .iter()
            .try_for_each(|log| fs::remove_file(log).map_err(io_err(log)))
    }
}

/// Threads that rename and unlink in [`seal_parts`].
const SEAL_THREADS: usize = 4;
/// Up to this many parts are sealed with an `fsync` per file and directory instead: a `syncfs`
/// also waits for every other process's dirty pages on the file system (80–250 ms measured
/// here beside other engineers' builds, against about 3.6 ms per `fsync`), which for one fast
/// stream was a fifth of its run.
const SYNC_EACH_UP_TO: usize = 16;

/// [`seal_parts`] for a few parts: each file synced, renamed, its directory synced.
fn seal_each(run_dir: &Path, parts: &[UnsealedPart]) -> Result<(), SinkError> {
    let mut directories = Vec::new();
    for part in parts {
        File::open(&part.partial_path)
            .and_then(|f| f.sync_all())
            .map_err(io_err(&part.partial_path))?;
        fs::rename(&part.partial_path, &part.final_path).map_err(io_err(&part.final_path))?;
        let dir = part.final_path.parent().unwrap_or(run_dir);
        if !directories.contains(&dir) {
            directories.push(dir);
        }
    }
    directories.into_iter().try_for_each(sync_dir)?;
    parts.iter().try_for_each(UnsealedPart::remove_logs)
}

/// Writes one stream into `<run_dir>/<directory>/part-NNNNNN.parquet` files, where
/// `directory` is the stream's name (or `<subdirectory>/<stream>` for a sink that has one).
///
/// A part is written as `part-NNNNNN.parquet.partial` and renamed, after its footer is written
/// and synced, to its final name: a reader that lists `*.parquet` never sees a torn file.
///
/// The verbs are kept apart as in [`ArrowWriter`]: [`write`](Self::write) buffers rows,
/// [`flush`](Self::flush) closes the row group and makes the bytes durable, and
/// [`finish`](Self::finish) writes the footer of the open part.
pub struct StreamPartWriter {
    run_dir: PathBuf,
    /// The stream's directory, relative to `run_dir`.
    directory: PathBuf,
    stream: StreamId,
    schema: SchemaRef,
    settings: PartSettings,
    open: Option<OpenPart>,
    /// File names are `<part_prefix>NNNNNN.parquet` (`part-` unless set otherwise).
    part_prefix: String,
    next_part: u32,
    parts: Vec<PartFile>,
    rows_finished: u64,
}

impl StreamPartWriter {
    /// A writer for `stream` (whose batches have `schema`) into `run_dir/directory`.
    ///
    /// Creates the directory; nothing else is written until the first row arrives.
    pub fn new(
        run_dir: &Path,
        directory: PathBuf,
        stream: StreamId,
        schema: SchemaRef,
        settings: PartSettings,
    ) -> Result<Self, SinkError> {
        let dir = run_dir.join(&directory);
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        Ok(Self {
            run_dir: run_dir.to_path_buf(),
            directory,
            stream,
            schema,
            settings,
            open: None,
            part_prefix: "part-".to_string(),
            next_part: 0,
            parts: Vec::new(),
            rows_finished: 0,
        })
    }

    /// Names parts `<prefix>NNNNNN.parquet`, numbering from `first_part`; for writers that share
    /// a directory (e.g. `ensemble ingest` workers, `part-<worker>-`) or continue an earlier one.
    pub fn with_part_names(mut self, prefix: impl Into<String>, first_part: u32) -> Self {
        self.part_prefix = prefix.into();
        self.next_part = first_part;
        self
    }

    /// Finishes the open part now (footer written, synced, renamed); the next row opens a new
    /// one. Nothing happens if no part is open.
    pub fn close_part(&mut self) -> Result<(), SinkError> {
        self.finish_part(false).map(drop)
    }

    /// The parts finished so far.
    pub fn parts(&self) -> &[PartFile] {
        &self.parts
    }

    /// Whether each part keeps a write-ahead log (so its rows are durable before it is
    /// finished).
    pub fn logs_ahead(&self) -> bool {
        self.settings.write_ahead_log
    }

    /// The stream written.
    pub fn stream(&self) -> &StreamId {
        &self.stream
    }

    /// Appends a batch, starting new parts where the rotation says so.
    pub fn write(&mut self, batch: &DataBatch) -> Result<(), SinkError> {
        if self.open.as_ref().is_some_and(|p| self.interval_due(p)) {
            self.finish_part(false)?;
        }
        let total = batch.rows();
        let mut offset = 0;
        while offset < total {
            if self.open.is_none() {
                self.open_part(batch.first_seq + offset as u64)?;
            }
            let part = self.open.as_mut().expect("a part was opened just above");
            let room = self
                .settings
                .rotation
                .rows
                .map_or(usize::MAX, |r| r.saturating_sub(part.rows) as usize);
            let take = room.min(total - offset);
            let slice: RecordBatch = if offset == 0 && take == total {
                (*batch.batch).clone()
            } else {
                batch.batch.slice(offset, take)
            };
            part.add(slice, part.rows, &self.settings, &self.schema)?;
            part.rows += take as u64;
            offset += take;
            if self.settings.rotation.rows.is_some_and(|r| part.rows >= r) {
                self.finish_part(false)?;
            }
        }
        Ok(())
    }

    /// Finishes the open part if it has been open longer than the rotation interval. Called when
    /// the writer is idle.
    pub fn tick(&mut self) -> Result<(), SinkError> {
        if self.open.as_ref().is_some_and(|p| self.interval_due(p)) {
            self.finish_part(false)?;
        }
        Ok(())
    }

    /// Closes the open row group and makes every byte written so far durable (rows still held
    /// unencoded are durable in the write-ahead log).
    pub fn flush(&mut self) -> Result<(), SinkError> {
        if let Some(part) = self.open.as_mut() {
            if let Some(encoder) = part.encoder.as_mut() {
                encoder.flush()?;
                encoder.flush_to_os()?;
                encoder
                    .file()
                    .sync_data()
                    .map_err(io_err(&part.partial_path))?;
                encoder.sync_checkpoints()?;
            }
            part.log()?;
            if let Some(wal) = part.wal.as_mut() {
                wal.sync()?;
            }
        }
        Ok(())
    }

    /// Appends the rows taken since the last call (and not in a checkpointed row group since)
    /// to the write-ahead log, in one write that hands them to the kernel. The sink calls this a
    /// few times per flush interval: rows reach the log a little later than they arrive, but a
    /// fast stream's rows mostly reach a checkpointed row group first and are never logged.
    pub fn log_pending(&mut self) -> Result<(), SinkError> {
        self.open.as_mut().map_or(Ok(()), OpenPart::log)
    }

    /// Hands what was written to the OS, without waiting for the disk; the sink's group commit
    /// then makes it durable with one `syncfs` for all streams. With a write-ahead log, the
    /// rows not yet logged (nor in a checkpointed row group) are logged now; without one, the
    /// open row group is closed and its bytes written. Returns whether a part is open.
    pub fn flush_to_os(&mut self) -> Result<bool, SinkError> {
        let Some(part) = self.open.as_mut() else {
            return Ok(false);
        };
        if part.wal.is_some() {
            part.log()?;
            return Ok(true);
        }
        let encoder = part.encoder(&self.settings, &self.schema)?;
        encoder.flush()?;
        encoder.flush_to_os()?;
        Ok(true)
    }

    /// Finishes the open part and reports every part written.
    pub fn finish(mut self) -> Result<StreamWriteReport, SinkError> {
        self.finish_part(false)?;
        Ok(self.report())
    }

    /// Finishes the open part but leaves it to the caller to seal (sync and rename) with
    /// [`seal_parts`], together with other streams' parts. Only parts with a write-ahead log
    /// are left unsealed (a crash before sealing recovers them from it); without one the part
    /// is sealed here.
    pub fn finish_unsealed(
        mut self,
    ) -> Result<(StreamWriteReport, Option<UnsealedPart>), SinkError> {
        let unsealed = self.finish_part(self.settings.write_ahead_log)?;
        Ok((self.report(), unsealed))
    }

    fn report(self) -> StreamWriteReport {
        StreamWriteReport {
            stream: self.stream,
            rows: self.rows_finished,
            parts: self.parts,
            rows_lost: 0,
            error: None,
        }
    }

    /// Rows in finished parts plus rows in the open part.
    pub fn rows_written(&self) -> u64 {
        self.rows_finished + self.open.as_ref().map_or(0, |p| p.rows)
    }

    fn interval_due(&self, part: &OpenPart) -> bool {
        self.settings
            .rotation
            .interval
            .is_some_and(|i| part.opened_at.elapsed() >= i)
    }

    fn open_part(&mut self, first_seq: u64) -> Result<(), SinkError> {
        let name = format!("{}{:06}.parquet", self.part_prefix, self.next_part);
        let relative_path = self.directory.join(&name);
        let final_path = self.run_dir.join(&relative_path);
        let partial_path = final_path.with_extension("parquet.partial");
        // The log exists before the Parquet file, so a part that has a `.partial` always has a
        // log to recover it from.
        let wal = if self.settings.write_ahead_log {
            Some(WalWriter::create(
                final_path.with_extension(WAL_EXTENSION),
                &self.schema,
                &self.settings.wal_metadata,
            )?)
        } else {
            None
        };
        self.next_part += 1;
        self.open = Some(OpenPart {
            encoder: None,
            held_rows: 0,
            held_bytes: 0,
            wal,
            unlogged: Vec::new(),
            partial_path,
            final_path,
            relative_path,
            rows: 0,
            first_seq,
            opened_at: Instant::now(),
        });
        Ok(())
    }

    /// Encodes what the open part still holds and writes its footer. Unless `defer_seal`, the
    /// part is then synced, renamed and its log deleted; otherwise that is returned for
    /// [`seal_parts`].
    fn finish_part(&mut self, defer_seal: bool) -> Result<Option<UnsealedPart>, SinkError> {
        let Some(mut part) = self.open.take() else {
            return Ok(None);
        };
        part.encoder(&self.settings, &self.schema)?;
        let encoder = part.encoder.take().expect("`encoder` opened it just above");
        // Every row group is closed and checkpointed now: nothing is left to log.
        let (file, checkpoints) = encoder.finish()?;
        let logs: Vec<PathBuf> = part
            .wal
            .map(WalWriter::into_path)
            .into_iter()
            .chain(checkpoints)
            .collect();
        self.rows_finished += part.rows;
        self.parts.push(PartFile {
            path: part.relative_path,
            rows: part.rows,
            first_seq: part.first_seq,
        });
        drop(file);
        let unsealed = UnsealedPart {
            partial_path: part.partial_path,
            final_path: part.final_path,
            logs,
        };
        if defer_seal {
            return Ok(Some(unsealed));
        }
        seal_each(&self.run_dir, &[unsealed])?;
        Ok(None)
    }
}

/// Makes a rename or a new file in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<(), SinkError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instruments::sim::{SimGenerator, SimInstrumentConfig};
    use crate::sinks::parquet::test_util::{seqs_of, sim_writer, write_rows};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    fn sim() -> SimGenerator {
        let cfg: SimInstrumentConfig =
            serde_json::from_str(r#"{"rate_hz": 100.0, "channels": ["a", "b"]}"#).expect("valid");
        SimGenerator::new(&cfg, 0, 0)
    }

    fn read_rows(path: &Path) -> usize {
        let file = File::open(path).expect("part exists");
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("valid parquet")
            .build()
            .expect("reader");
        reader.map(|b| b.expect("batch").num_rows()).sum()
    }

    #[test]
    fn rotates_by_rows_exactly_and_renames_finished_parts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut g = sim();
        let config = ParquetSinkConfig {
            rotate_rows: Some(250),
            ..Default::default()
        };
        let settings = PartSettings::from_config(&config, vec![]).expect("settings");
        let mut w = StreamPartWriter::new(
            dir.path(),
            "s".into(),
            "s".into(),
            g.schema().clone(),
            settings,
        )
        .expect("writer");
        write_rows(&mut w, &mut g, 100);
        write_rows(&mut w, &mut g, 400);
        write_rows(&mut w, &mut g, 10);
        // The open part's 10 rows are held in memory and in its log; no Parquet file yet.
        assert!(dir.path().join("s/part-000002.wal").exists());
        assert!(!dir.path().join("s/part-000002.parquet.partial").exists());
        let report = w.finish().expect("finish");
        assert_eq!(report.rows, 510);
        let rows: Vec<u64> = report.parts.iter().map(|p| p.rows).collect();
        assert_eq!(rows, [250, 250, 10]);
        let firsts: Vec<u64> = report.parts.iter().map(|p| p.first_seq).collect();
        assert_eq!(firsts, [0, 250, 500]);
        for part in &report.parts {
            assert_eq!(read_rows(&dir.path().join(&part.path)) as u64, part.rows);
        }
        let leftovers = fs::read_dir(dir.path().join("s"))
            .expect("dir")
            .filter(|e| {
                e.as_ref().is_ok_and(|e| {
                    e.path()
                        .extension()
                        .is_some_and(|x| x == "partial" || x == "wal" || x == "rowgroups")
                })
            })
            .count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn unsealed_parts_keep_their_logs_until_sealed_together() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut unsealed = Vec::new();
        for name in ["a", "b"] {
            let mut g = sim();
            let settings =
                PartSettings::from_config(&ParquetSinkConfig::default(), vec![]).expect("ok");
            let mut w = StreamPartWriter::new(
                dir.path(),
                name.into(),
                name.into(),
                g.schema().clone(),
                settings,
            )
            .expect("writer");
            write_rows(&mut w, &mut g, 30);
            let (report, part) = w.finish_unsealed().expect("finish");
            assert_eq!(report.rows, 30);
            unsealed.push(part.expect("with a log, the part is left unsealed"));
            assert!(
                dir.path()
                    .join(name)
                    .join("part-000000.parquet.partial")
                    .exists()
            );
            assert!(dir.path().join(name).join("part-000000.wal").exists());
        }
        seal_parts(dir.path(), unsealed).expect("seal");
        for name in ["a", "b"] {
            let part = dir.path().join(name).join("part-000000.parquet");
            assert_eq!(read_rows(&part), 30);
            assert!(!dir.path().join(name).join("part-000000.wal").exists());
            assert!(
                !dir.path()
                    .join(name)
                    .join("part-000000.parquet.partial")
                    .exists()
            );
        }
    }

    #[test]
    fn a_slow_streams_rows_reach_its_log_every_tick_and_come_back_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut w, mut g) = sim_writer(dir.path(), &ParquetSinkConfig::default());
        let log = dir.path().join("s/part-000000.wal");
        let mut logged = 0;
        for _ in 0..50 {
            write_rows(&mut w, &mut g, 10);
            w.log_pending().expect("log tick");
            let size = fs::metadata(&log).expect("log").len();
            assert!(size > logged, "every tick appends the new rows");
            logged = size;
        }
        assert!(!dir.path().join("s/part-000000.parquet.partial").exists());
        let report = w.finish().expect("finish");
        assert_eq!(report.rows, 500);
        let part = dir.path().join(&report.parts[0].path);
        assert_eq!(seqs_of(&part), (0..500).collect::<Vec<u64>>());
    }

    #[test]
    fn unwritable_directory_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let blocker = dir.path().join("file");
        fs::write(&blocker, b"x").expect("write");
        let g = sim();
        let settings =
            PartSettings::from_config(&ParquetSinkConfig::default(), vec![]).expect("settings");
        let err = StreamPartWriter::new(
            &blocker,
            "s".into(),
            "s".into(),
            g.schema().clone(),
            settings,
        )
        .err()
        .expect("a file is no directory");
        assert!(err.to_string().contains("file"), "{err}");
    }
}
