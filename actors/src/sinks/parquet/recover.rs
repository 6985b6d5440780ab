//! Recovery of a killed sink's leftovers: every part whose write-ahead log survived becomes a
//! finished Parquet file again. Plain file work, no actors.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use parquet::arrow::ArrowWriter;

use super::config::ParquetSinkConfig;
use super::wal::{WAL_EXTENSION, read_wal};
use super::writer::{SinkError, sync_dir, writer_properties};

/// Metadata keys the sink stores with each log (and writes into each file).
pub const FILE_METADATA_KEYS: [&str; 4] = [
    "ensemble.run_id",
    "ensemble.experiment",
    "ensemble.stream",
    "ensemble.instrument",
];

/// The file metadata of a part: run id, experiment, stream and producing component, under
/// [`FILE_METADATA_KEYS`].
pub fn file_metadata(
    run_id: &str,
    experiment: &str,
    stream: &str,
    instrument: &str,
) -> Vec<(String, String)> {
    FILE_METADATA_KEYS
        .iter()
        .zip([run_id, experiment, stream, instrument])
        .map(|(k, v)| ((*k).to_string(), v.to_string()))
        .collect()
}

/// What recovery did in one stream directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryRecovery {
    /// Parts rebuilt from their logs.
    pub parts_recovered: Vec<PathBuf>,
    /// Rows in those parts.
    pub rows_recovered: u64,
    /// Logs whose last message was cut off by the kill (its rows were never acknowledged).
    pub torn_logs: usize,
    /// Unfinished parts that had no log (written with `write_ahead_log = false`): removed.
    pub unrecoverable: Vec<PathBuf>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SinkError + '_ {
    move |source| SinkError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Turns what a killed writer left in `dir` into finished parts.
///
/// - `part-N.wal` with no `part-N.parquet`: its complete batches are written to `part-N.parquet`
///   (through `.partial` and a rename, as the sink does), then the log and any old `.partial` go.
/// - `part-N.wal` beside a finished `part-N.parquet`: the kill came between rename and delete;
///   the log goes.
/// - `part-N.parquet.partial` with no log: nothing can restore it; it is removed and reported.
pub fn recover_directory(
    dir: &Path,
    config: &ParquetSinkConfig,
) -> Result<DirectoryRecovery, SinkError> {
    let mut report = DirectoryRecovery::default();
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for wal in entries
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == WAL_EXTENSION))
    {
        let finished = wal.with_extension("parquet");
        let partial = wal.with_extension("parquet.partial");
        if finished.exists() {
            fs::remove_file(wal).map_err(io(wal))?;
            continue;
        }
        let contents = read_wal(wal, &FILE_METADATA_KEYS)?;
        let rows: usize = contents
            .as_ref()
            .map_or(0, |c| c.batches.iter().map(|b| b.num_rows()).sum());
        if let Some(contents) = contents.filter(|_| rows > 0) {
            report.torn_logs += usize::from(contents.torn_tail);
            let mut metadata: Vec<(String, String)> = contents.metadata.into_iter().collect();
            metadata.sort();
            let props = writer_properties(config, metadata)?;
            let file = File::create(&partial).map_err(io(&partial))?;
            let pq = |source| SinkError::Parquet {
                path: partial.clone(),
                source,
            };
            let mut writer =
                ArrowWriter::try_new(file, contents.schema.clone(), Some(props)).map_err(pq)?;
            for batch in &contents.batches {
                writer.write(batch).map_err(pq)?;
            }
            let file = writer.into_inner().map_err(pq)?;
            file.sync_all().map_err(io(&partial))?;
            fs::rename(&partial, &finished).map_err(io(&finished))?;
            report.parts_recovered.push(finished);
            report.rows_recovered += rows as u64;
        } else if partial.exists() {
            fs::remove_file(&partial).map_err(io(&partial))?;
        }
        fs::remove_file(wal).map_err(io(wal))?;
    }
    for partial in entries
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".parquet.partial"))
        .filter(|p| p.exists())
    {
        fs::remove_file(partial).map_err(io(partial))?;
        report.unrecoverable.push(partial.clone());
    }
    sync_dir(dir)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::DataBatch;
    use crate::instruments::sim::{SimGenerator, SimInstrumentConfig};
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
        // Killed: no finish, no footer. Part 0 (300 rows) is finished, part 1 is open.
        std::mem::forget(w);
        let dir = run.path().join("s");
        // Its rows are held unencoded (and logged): only the log is on disk.
        assert!(dir.join("part-000001.wal").exists());
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
}
