//! Recovery of a killed sink's leftovers: every part whose write-ahead log survived becomes a
//! finished Parquet file again. Plain file work, no actors.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::checkpoint::{CHECKPOINT_EXTENSION, Checkpointed, finish_partial, read_checkpoints};
use super::config::ParquetSinkConfig;
use super::error::{SinkError, io_err};
use super::metadata::FILE_METADATA_KEYS;
use super::properties::writer_properties;
use super::seal::sync_dir;
use super::wal::{WAL_EXTENSION, WalContents, read_wal, read_wal_mapped};

/// What recovery did in one stream directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryRecovery {
    /// Parts rebuilt from their logs.
    pub parts_recovered: Vec<PathBuf>,
    /// Rows in those parts.
    pub rows_recovered: u64,
    /// Logs whose last frame was cut off by the kill (its rows were never acknowledged).
    pub torn_logs: usize,
    /// Unfinished parts that had no log (written with `write_ahead_log = false`): removed.
    pub unrecoverable: Vec<PathBuf>,
}

/// Turns what a killed writer left in `dir` into finished parts.
///
/// - `part-N.wal` with no `part-N.parquet`: the row groups its checkpoints (`part-N.rowgroups`)
///   record, as far as `part-N.parquet.partial` holds them, plus the logged rows after them
///   become `part-N.parquet` (finished in place when the log adds nothing, rewritten otherwise,
///   through `.partial` and a rename as the sink does); then the log, checkpoints and any
///   `.partial` go.
/// - `part-N.wal` beside a finished `part-N.parquet`: the kill came between rename and delete;
///   the log and checkpoints go.
/// - `part-N.parquet.partial` with no log: nothing can restore it; it is removed and reported.
pub fn recover_directory(
    dir: &Path,
    config: &ParquetSinkConfig,
) -> Result<DirectoryRecovery, SinkError> {
    let mut report = DirectoryRecovery::default();
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io_err(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for wal in entries
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == WAL_EXTENSION))
    {
        let finished = wal.with_extension("parquet");
        let partial = wal.with_extension("parquet.partial");
        let checkpoints = wal.with_extension(CHECKPOINT_EXTENSION);
        if !finished.exists() {
            if let Some(rows) = recover_part(wal, &checkpoints, &partial, &finished, config)? {
                report.torn_logs += usize::from(rows.torn_log);
                report.parts_recovered.push(finished);
                report.rows_recovered += rows.rows;
            } else if partial.exists() {
                fs::remove_file(&partial).map_err(io_err(&partial))?;
            }
        }
        for log in [wal, &checkpoints] {
            if log.exists() {
                fs::remove_file(log).map_err(io_err(log))?;
            }
        }
    }
    for leftover in &entries {
        let name = leftover.to_string_lossy();
        if !leftover.exists() {
            continue;
        }
        if name.ends_with(".parquet.partial") {
            fs::remove_file(leftover).map_err(io_err(leftover))?;
            report.unrecoverable.push(leftover.clone());
        } else if leftover
            .extension()
            .is_some_and(|x| x == CHECKPOINT_EXTENSION || x == "rebuilt")
        {
            // Checkpoints of a part without a log (nothing to finish them with), or a rebuild
            // that a killed recovery left unfinished (done again above).
            fs::remove_file(leftover).map_err(io_err(leftover))?;
        }
    }
    sync_dir(dir)?;
    Ok(report)
}

/// What [`recover_directory`] would do with one killed part, found without changing anything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecoverablePart {
    /// Rows in row groups its checkpoints record and its `.partial` file holds.
    pub checkpointed_rows: u64,
    /// Rows its log adds after them.
    pub logged_rows: u64,
    /// Whether the log's last frame was cut off by the kill.
    pub torn_log: bool,
}

impl RecoverablePart {
    /// Rows the recovered part will hold.
    pub fn rows(&self) -> u64 {
        self.checkpointed_rows + self.logged_rows
    }
}

/// What recovery would restore of the part whose log is `wal` (`part-N.wal`), read without
/// changing a byte: the log is memory-mapped ([`read_wal_mapped`]), the checkpoints and the
/// `.partial` file's length read. `None` when `part-N.parquet` is already finished (recovery
/// only deletes the log then) or nothing would be restored. The same counting as
/// [`recover_directory`] uses, so the two agree by construction.
pub fn recoverable_part(wal: &Path) -> Result<Option<RecoverablePart>, SinkError> {
    if wal.with_extension("parquet").exists() {
        return Ok(None);
    }
    let partial = wal.with_extension("parquet.partial");
    let checkpoints = wal.with_extension(CHECKPOINT_EXTENSION);
    let (checkpointed, contents) = read_killed_part(wal, &checkpoints, &partial, read_wal_mapped)?;
    let checkpointed_rows = checkpointed.as_ref().map_or(0, Checkpointed::rows);
    let logged_rows = contents.as_ref().map_or(0, |c| {
        c.rows_from(checkpointed_rows)
            .iter()
            .map(|b| b.num_rows() as u64)
            .sum()
    });
    let part = RecoverablePart {
        checkpointed_rows,
        logged_rows,
        torn_log: contents.as_ref().is_some_and(|c| c.torn_tail),
    };
    Ok((part.rows() > 0).then_some(part))
}

/// The checkpoints (as far as the `.partial` file holds their row groups) and the log of a
/// killed part, the log read by `read`.
fn read_killed_part(
    wal: &Path,
    checkpoints: &Path,
    partial: &Path,
    read: fn(&Path, &[&str]) -> Result<Option<WalContents>, SinkError>,
) -> Result<(Option<Checkpointed>, Option<WalContents>), SinkError> {
    let partial_len = fs::metadata(partial).map_or(0, |m| m.len());
    let checkpointed = match partial_len {
        0 => None,
        len => read_checkpoints(checkpoints, len)?,
    };
    Ok((checkpointed, read(wal, &FILE_METADATA_KEYS)?))
}

/// What one recovered part holds.
struct RecoveredPart {
    rows: u64,
    /// The log's last frame was cut off by the kill (its rows were never acknowledged).
    torn_log: bool,
}

/// Finishes one killed part into `finished` from its `.partial` file, checkpoints and log;
/// `None` when they hold no row.
fn recover_part(
    wal: &Path,
    checkpoints: &Path,
    partial: &Path,
    finished: &Path,
    config: &ParquetSinkConfig,
) -> Result<Option<RecoveredPart>, SinkError> {
    let (checkpointed, contents) = read_killed_part(wal, checkpoints, partial, read_wal)?;
    let covered = checkpointed.as_ref().map_or(0, Checkpointed::rows);
    let torn_log = contents.as_ref().is_some_and(|c| c.torn_tail);
    let tail = contents
        .as_ref()
        .map_or_else(Vec::new, |c| c.rows_from(covered));
    let tail_rows: u64 = tail.iter().map(|b| b.num_rows() as u64).sum();
    if covered + tail_rows == 0 {
        return Ok(None);
    }
    if let Some(checkpointed) = &checkpointed {
        finish_partial(partial, checkpointed)?;
        if tail.is_empty() {
            fs::rename(partial, finished).map_err(io_err(finished))?;
            return Ok(Some(RecoveredPart {
                rows: covered,
                torn_log,
            }));
        }
    }
    // The logged rows after the checkpointed ones: the part is written anew, the finished
    // `.partial` (if any) first, into a file beside it. (Rows beyond the checkpoints come from
    // the log, so there is one.)
    let Some(contents) = contents else {
        return Ok(None);
    };
    let mut metadata: Vec<(String, String)> = contents.metadata.clone().into_iter().collect();
    metadata.sort();
    let props = writer_properties(config, metadata)?;
    let rebuilt = partial.with_extension("partial.rebuilt");
    let file = File::create(&rebuilt).map_err(io_err(&rebuilt))?;
    let pq = |source| SinkError::Parquet {
        path: rebuilt.clone(),
        source,
    };
    let mut writer =
        ArrowWriter::try_new(file, contents.schema.clone(), Some(props)).map_err(pq)?;
    if checkpointed.is_some() {
        let reader = File::open(partial).map_err(io_err(partial)).and_then(|f| {
            ParquetRecordBatchReaderBuilder::try_new(f)
                .and_then(|b| b.build())
                .map_err(|source| SinkError::Parquet {
                    path: partial.to_path_buf(),
                    source,
                })
        })?;
        for batch in reader {
            let batch = batch.map_err(|e| pq(e.into()))?;
            let batch = RecordBatch::try_new(contents.schema.clone(), batch.columns().to_vec())
                .map_err(|e| pq(e.into()))?;
            writer.write(&batch).map_err(pq)?;
        }
    }
    for batch in &tail {
        writer.write(batch).map_err(pq)?;
    }
    let file = writer.into_inner().map_err(pq)?;
    file.sync_all().map_err(io_err(&rebuilt))?;
    fs::rename(&rebuilt, finished).map_err(io_err(finished))?;
    if partial.exists() {
        fs::remove_file(partial).map_err(io_err(partial))?;
    }
    Ok(Some(RecoveredPart {
        rows: covered + tail_rows,
        torn_log,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::DataBatch;
    use crate::instruments::sim::{SimGenerator, SimInstrumentConfig};
    use crate::sinks::parquet::test_util::{seqs_of, sim_writer, write_rows};
    use crate::sinks::parquet::{PartSettings, StreamPartWriter};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    #[test]
    fn a_killed_writer_leaves_a_log_that_becomes_a_finished_part() {
        let run = tempfile::tempdir().expect("tempdir");
        let cfg: SimInstrumentConfig =
            serde_json::from_str(r#"{"rate_hz": 100.0, "channels": ["a"]}"#).expect("valid");
        let mut g = SimGenerator::new(&cfg, 0, 0);
        let config = ParquetSinkConfig {
            rotate_rows: Some(300),
            ..Default::default()
        };
        let meta = vec![("ensemble.stream".to_string(), "s".to_string())];
        let settings = PartSettings::from_config(&config, meta).expect("settings");
        let mut w = StreamPartWriter::new(
            run.path(),
            "s".into(),
            "s".into(),
            g.schema().clone(),
            settings,
        )
        .expect("writer");
        for _ in 0..5 {
            let first = g.next_seq();
            w.write(&DataBatch::new("s".into(), first, g.generate(100)))
                .expect("write");
        }
        // The sink's log tick came, then the kill: no finish, no footer. Part 0 (300 rows) is
        // finished, part 1 is open.
        w.log_pending().expect("log");
        std::mem::forget(w);
        let dir = run.path().join("s");
        // Its rows are held unencoded (and logged): only the log is on disk.
        assert!(dir.join("part-000001.wal").exists());
        let preview = recoverable_part(&dir.join("part-000001.wal"))
            .expect("readable")
            .expect("rows to restore");
        assert_eq!(
            preview.rows(),
            200,
            "the preview counts what recovery restores"
        );
        assert_eq!(
            recoverable_part(&dir.join("part-000000.wal")).expect("ok"),
            None
        );
        let report = recover_directory(&dir, &config).expect("recover");
        assert_eq!(report.rows_recovered, 200);
        assert_eq!(
            report.parts_recovered,
            vec![dir.join("part-000001.parquet")]
        );
        let file = File::open(dir.join("part-000001.parquet")).expect("recovered part");
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).expect("valid parquet");
        let kv = builder
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .cloned();
        assert!(
            kv.unwrap_or_default()
                .iter()
                .any(|e| e.key == "ensemble.stream")
        );
        let rows: usize = builder
            .build()
            .expect("reader")
            .map(|b| b.expect("batch").num_rows())
            .sum();
        assert_eq!(rows, 200);
        let left: Vec<_> = fs::read_dir(&dir)
            .expect("dir")
            .filter_map(|e| e.ok())
            .collect();
        assert_eq!(left.len(), 2, "two finished parts and nothing else");
    }

    /// A writer of one stream whose row groups close every `row_group_rows` rows.
    fn fast_writer(run: &Path, row_group_rows: usize) -> (StreamPartWriter, SimGenerator) {
        let config = ParquetSinkConfig {
            row_group_rows,
            ..Default::default()
        };
        sim_writer(run, &config)
    }

    #[test]
    fn checkpointed_row_groups_and_the_logged_rows_after_them_make_the_part() {
        let run = tempfile::tempdir().expect("tempdir");
        let (mut w, mut g) = fast_writer(run.path(), 100);
        for _ in 0..7 {
            write_rows(&mut w, &mut g, 50);
        }
        // Row groups of rows 0..300 are closed and checkpointed; rows 300..350 are not in one.
        // The group commit logs them (the log tick skips a stream whose checkpoints advance).
        w.flush_to_os().expect("log");
        // Taken after the last commit and before the kill: not promised (younger than the
        // commit), and not recovered.
        write_rows(&mut w, &mut g, 20);
        std::mem::forget(w);
        let dir = run.path().join("s");
        let preview = recoverable_part(&dir.join("part-000000.wal"))
            .expect("readable")
            .expect("rows to restore");
        assert_eq!((preview.checkpointed_rows, preview.logged_rows), (300, 50));
        let logged = read_wal(&dir.join("part-000000.wal"), &[])
            .expect("readable")
            .expect("schema");
        let logged_rows: Vec<(u64, usize)> = logged
            .batches
            .iter()
            .map(|(first, b)| (*first, b.num_rows()))
            .collect();
        // The first batch was held before the encoder opened (held rows live in the log); rows
        // 50..300 went straight into checkpointed row groups and were never logged.
        assert_eq!(logged_rows, [(0, 50), (300, 50)]);
        let report = recover_directory(&dir, &ParquetSinkConfig::default()).expect("recover");
        assert_eq!(report.rows_recovered, 350);
        assert_eq!(
            seqs_of(&dir.join("part-000000.parquet")),
            (0..350).collect::<Vec<u64>>()
        );
        let left = fs::read_dir(&dir).expect("dir").count();
        assert_eq!(left, 1, "only the finished part is left");
    }

    #[test]
    fn a_part_whose_rows_are_all_checkpointed_is_finished_in_place() {
        let run = tempfile::tempdir().expect("tempdir");
        let (mut w, mut g) = fast_writer(run.path(), 100);
        for _ in 0..3 {
            write_rows(&mut w, &mut g, 100);
        }
        w.log_pending().expect("log");
        std::mem::forget(w);
        let dir = run.path().join("s");
        let partial = dir.join("part-000000.parquet.partial");
        // Killed while a row group was being written: a torn tail after the last checkpoint.
        let mut torn = fs::OpenOptions::new()
            .append(true)
            .open(&partial)
            .expect("open");
        std::io::Write::write_all(&mut torn, &[7; 1000]).expect("append");
        let report = recover_directory(&dir, &ParquetSinkConfig::default()).expect("recover");
        assert_eq!(report.rows_recovered, 300);
        let part = dir.join("part-000000.parquet");
        assert_eq!(seqs_of(&part), (0..300).collect::<Vec<u64>>());
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(&part).expect("open"))
            .expect("valid parquet");
        assert_eq!(
            builder.metadata().num_row_groups(),
            3,
            "the row groups as written"
        );
    }
}
