//! `ensemble recover RUN_DIR`: turn what a killed run left into finished Parquet parts and a
//! manifest with `status: "crashed"` and the true counts read back from the files.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{TimestampNanosecondType, UInt64Type};
use chrono::Utc;
use ensemble_actors::control::PartFile;
use ensemble_actors::sinks::parquet::{DirectoryRecovery, recover_directory};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::config::{SinkKind, compile};
use crate::manifest::{Manifest, StreamSinkEntry};

/// Why a run directory could not be recovered.
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// No readable manifest: this is not a run directory.
    #[error("{path} has no readable run.json: {source}")]
    NoManifest {
        /// The run directory.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The run ended normally; there is nothing to recover.
    #[error("{path}: the run already ended with status `{status}`; nothing to recover")]
    AlreadyFinished {
        /// The run directory.
        path: PathBuf,
        /// Its status.
        status: String,
    },
    /// The experiment text stored in the manifest no longer compiles.
    #[error("{path}: the experiment stored in run.json does not compile:\n{errors}")]
    Config {
        /// The run directory.
        path: PathBuf,
        /// The compiler's errors.
        errors: crate::config::ConfigErrors,
    },
    /// A part could not be rebuilt or read.
    #[error("{0}")]
    Sink(#[from] ensemble_actors::sinks::parquet::SinkError),
    /// A finished part could not be read back.
    #[error("cannot read {path}: {message}")]
    Unreadable {
        /// The part.
        path: PathBuf,
        /// What the reader said.
        message: String,
    },
    /// The manifest could not be written.
    #[error("cannot write {path}/run.json: {source}")]
    WriteManifest {
        /// The run directory.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
}

/// What recovery did, for the report printed by the command.
#[derive(Debug, Clone)]
pub struct Recovery {
    /// The manifest as written (status `crashed`).
    pub manifest: Manifest,
    /// Per stream directory (relative to the run), what was rebuilt.
    pub directories: BTreeMap<PathBuf, DirectoryRecovery>,
}

/// What one finished part holds, read from the file itself.
struct PartSummary {
    rows: u64,
    first_seq: Option<u64>,
    first_ts: Option<i64>,
    last_ts: Option<i64>,
}

fn summarize(path: &Path) -> Result<PartSummary, RecoverError> {
    let unreadable = |message: String| RecoverError::Unreadable {
        path: path.to_path_buf(),
        message,
    };
    let file = File::open(path).map_err(|e| unreadable(e.to_string()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| unreadable(e.to_string()))?;
    let mut s = PartSummary {
        rows: 0,
        first_seq: None,
        first_ts: None,
        last_ts: None,
    };
    for batch in reader {
        let batch = batch.map_err(|e| unreadable(e.to_string()))?;
        let n = batch.num_rows();
        if n == 0 {
            continue;
        }
        s.rows += n as u64;
        if let Some(seq) = batch
            .column_by_name("seq")
            .and_then(|c| c.as_primitive_opt::<UInt64Type>())
        {
            s.first_seq.get_or_insert(seq.value(0));
        }
        if let Some(ts) = batch
            .column_by_name("timestamp")
            .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
        {
            s.first_ts.get_or_insert(ts.value(0));
            s.last_ts = Some(ts.value(n - 1));
        }
    }
    Ok(s)
}

/// Recovers `run_dir` in place and rewrites its manifest with `status: "crashed"`.
pub fn recover(run_dir: &Path) -> Result<Recovery, RecoverError> {
    let mut manifest = Manifest::read(run_dir).map_err(|source| RecoverError::NoManifest {
        path: run_dir.to_path_buf(),
        source,
    })?;
    if manifest.status != "running" {
        return Err(RecoverError::AlreadyFinished {
            path: run_dir.to_path_buf(),
            status: manifest.status,
        });
    }
    let experiment = compile(&manifest.config_path, &manifest.config).map_err(|errors| {
        RecoverError::Config {
            path: run_dir.to_path_buf(),
            errors,
        }
    })?;
    let mut directories = BTreeMap::new();
    for sink in &experiment.sinks {
        let SinkKind::Parquet(config) = &sink.kind else {
            continue;
        };
        for stream in &sink.inputs {
            let relative = match &config.subdirectory {
                Some(sub) => Path::new(sub).join(stream),
                None => PathBuf::from(stream),
            };
            let dir = run_dir.join(&relative);
            let recovered = if dir.is_dir() {
                recover_directory(&dir, config)?
            } else {
                DirectoryRecovery::default()
            };
            let entry = record_parts(run_dir, &relative)?;
            if let Some(stream_entry) = manifest.streams.get_mut(stream) {
                let WrittenParts {
                    rows,
                    parts,
                    first_ts,
                    last_ts,
                } = entry;
                stream_entry.rows = stream_entry.rows.max(rows);
                stream_entry.first_seq = (stream_entry.rows > 0).then_some(0);
                stream_entry.last_seq = stream_entry.rows.checked_sub(1);
                if first_ts.is_some() {
                    stream_entry.first_timestamp_ns = first_ts;
                }
                if last_ts > stream_entry.last_timestamp_ns {
                    stream_entry.last_timestamp_ns = last_ts;
                }
                stream_entry.sinks.insert(
                    sink.name.clone(),
                    StreamSinkEntry {
                        rows_written: rows,
                        parts,
                        ..Default::default()
                    },
                );
            }
            directories.insert(relative, recovered);
        }
    }
    manifest.status = "crashed".to_string();
    manifest.stop_reason = Some(format!(
        "the process ended without finishing; recovered by `ensemble recover` at {}",
        Utc::now().to_rfc3339()
    ));
    manifest
        .write(run_dir)
        .map_err(|source| RecoverError::WriteManifest {
            path: run_dir.to_path_buf(),
            source,
        })?;
    Ok(Recovery {
        manifest,
        directories,
    })
}

/// What the finished parts in one stream directory hold.
struct WrittenParts {
    rows: u64,
    parts: Vec<PartFile>,
    first_ts: Option<i64>,
    last_ts: Option<i64>,
}

/// Rows, parts and timestamp range of the finished parts in one stream directory.
fn record_parts(run_dir: &Path, relative: &Path) -> Result<WrittenParts, RecoverError> {
    let dir = run_dir.join(relative);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    let mut rows = 0;
    let mut parts = Vec::new();
    let (mut first_ts, mut last_ts) = (None, None);
    for path in files {
        let s = summarize(&path)?;
        rows += s.rows;
        first_ts = first_ts.or(s.first_ts);
        last_ts = s.last_ts.or(last_ts);
        let name = path.file_name().map(PathBuf::from).unwrap_or_default();
        parts.push(PartFile {
            path: relative.join(name),
            rows: s.rows,
            first_seq: s.first_seq.unwrap_or(0),
        });
    }
    Ok(WrittenParts {
        rows,
        parts,
        first_ts,
        last_ts,
    })
}
