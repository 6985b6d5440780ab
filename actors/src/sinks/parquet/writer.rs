//! The plain Parquet writer of one stream: rotated part files, written as `*.partial` and
//! renamed when finished. No actors and no threads here; the sink runs it on a writer thread.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use super::error::{SinkError, io_err};
use super::open_part::OpenPart;
use super::properties::PartSettings;
use super::seal::{UnsealedPart, seal_each};
use super::wal::{WAL_EXTENSION, WalWriter};
use crate::batch::{DataBatch, StreamId};
use crate::control::{PartFile, StreamWriteReport};

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

    /// The sink's log tick, a few times per flush interval: appends the rows taken since the
    /// last call (and not in a checkpointed row group since) to the write-ahead log, in one write
    /// that hands them to the kernel, so that a slow stream's rows are durable soon after they
    /// arrive. A fast stream (row groups checkpointed since the last tick) skips it: its rows
    /// reach a checkpointed row group first, and [`flush_to_os`](Self::flush_to_os) logs the
    /// rest at the group commit. Returns whether every row taken is now logged or checkpointed.
    pub fn log_pending(&mut self) -> Result<bool, SinkError> {
        self.open.as_mut().map_or(Ok(true), OpenPart::log_tick)
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
            checkpointed_at_tick: 0,
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
        let mut encoder = part.encoder.take().expect("`encoder` opened it just above");
        if part.wal.is_some() && part.unlogged.is_empty() {
            // Every row of the part is in its log (none is checkpointed, none waits to be
            // logged): a crash before sealing recovers the part from the log alone.
            encoder.skip_first_checkpoint();
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instruments::sim::{SimGenerator, SimInstrumentConfig};
    use crate::sinks::parquet::test_util::{seqs_of, sim_writer, write_rows};
    use crate::sinks::parquet::{ParquetSinkConfig, seal_parts};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use std::fs::File;

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
    fn a_fast_stream_skips_the_log_tick_and_the_commit_logs_what_no_checkpoint_holds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = ParquetSinkConfig {
            row_group_rows: 100,
            ..Default::default()
        };
        let (mut w, mut g) = sim_writer(dir.path(), &config);
        let log = dir.path().join("s/part-000000.wal");
        let log_size = || fs::metadata(&log).map_or(0, |m| m.len());
        for _ in 0..5 {
            write_rows(&mut w, &mut g, 50);
        }
        let before = log_size();
        assert!(
            !w.log_pending().expect("tick"),
            "rows 200..250 are neither logged nor checkpointed"
        );
        assert_eq!(
            log_size(),
            before,
            "a stream whose checkpoints advance skips the tick"
        );
        assert!(w.flush_to_os().expect("commit"), "a part is open");
        assert!(log_size() > before, "the group commit logs the 50 rows");
        write_rows(&mut w, &mut g, 10);
        let before = log_size();
        assert!(
            w.log_pending().expect("tick"),
            "no checkpoint since: logged"
        );
        assert!(log_size() > before);
        let report = w.finish().expect("finish");
        assert_eq!(report.rows, 260);
    }

    #[test]
    fn a_fully_logged_part_finishes_without_checkpoints_and_recovers_from_its_log() {
        for log_first in [true, false] {
            let dir = tempfile::tempdir().expect("tempdir");
            let config = ParquetSinkConfig::default();
            let (mut w, mut g) = sim_writer(dir.path(), &config);
            // More than a part holds unencoded: the encoder is open before the part finishes.
            write_rows(&mut w, &mut g, 5_000);
            if log_first {
                // What the pool does when a stream ends: every row goes to the log.
                w.flush_to_os().expect("log");
            }
            let (report, part) = w.finish_unsealed().expect("finish");
            assert_eq!(report.rows, 5_000);
            assert!(part.is_some(), "left for sealing");
            let checkpoints = dir.path().join("s/part-000000.rowgroups");
            // Rows not yet logged are in the last row group only: it must be checkpointed.
            assert_eq!(checkpoints.exists(), !log_first, "log_first {log_first}");
            // Killed before sealing: recovery restores every row.
            let s = dir.path().join("s");
            let recovered = crate::sinks::parquet::recover_directory(&s, &config).expect("ok");
            assert_eq!(recovered.rows_recovered, 5_000, "log_first {log_first}");
            let finished = s.join("part-000000.parquet");
            assert_eq!(seqs_of(&finished), (0..5_000).collect::<Vec<u64>>());
        }
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
