//! Reading a run directory without changing it: the manifest (checked for a format this build
//! knows), the stream directories and their files, and Parquet footers.

use std::fs::File;
use std::path::{Path, PathBuf};

use ensemble_actors::sinks::parquet::{CHECKPOINT_EXTENSION, WAL_EXTENSION};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use super::error::DataError;
use crate::manifest::{MANIFEST_FILE, Manifest};

/// Directory of the thumbnails inside a run directory (never a stream).
pub const PLOTS_DIR: &str = "plots";

/// The manifest of `run_dir`, `None` if it has none.
///
/// Refuses a manifest written by a newer ensemble (its `ensemble_version` has a higher major,
/// or a higher minor with the same major): its format may hold what this build would misread.
pub fn read_manifest(run_dir: &Path) -> Result<Option<Manifest>, DataError> {
    let path = run_dir.join(MANIFEST_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(DataError::Read { path, source }),
    };
    let bad = |message: String| DataError::BadManifest {
        path: path.clone(),
        message,
    };
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    let version = value
        .get("ensemble_version")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| bad("no `ensemble_version`".to_string()))?;
    if is_newer(version, env!("CARGO_PKG_VERSION")) {
        return Err(DataError::FutureVersion {
            path,
            version: version.to_string(),
            ours: env!("CARGO_PKG_VERSION"),
        });
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| bad(e.to_string()))
}

/// Whether version `theirs` (`MAJOR.MINOR.PATCH`) has a newer format than `ours`: a higher
/// major, or the same major and a higher minor. Text that is not a version counts as newer.
fn is_newer(theirs: &str, ours: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64)> {
        let mut parts = v.split(['.', '-', '+']);
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    };
    match (parse(theirs), parse(ours)) {
        (Some(t), Some(o)) => t > o,
        (None, _) => true,
        (_, None) => false,
    }
}

/// What one stream directory holds.
#[derive(Debug, Clone, Default)]
pub struct StreamFiles {
    /// The stream's name (the directory's name).
    pub stream: String,
    /// The directory, relative to the run directory (`STREAM` or `SUBDIRECTORY/STREAM`).
    pub relative: PathBuf,
    /// Finished parts (`*.parquet`), in order.
    pub parts: Vec<PathBuf>,
    /// Write-ahead logs of parts a killed run left unfinished (`*.wal`), in order.
    pub logs: Vec<PathBuf>,
    /// Unfinished part files (`*.parquet.partial`).
    pub partials: Vec<PathBuf>,
    /// Bytes of every file in the directory.
    pub bytes: u64,
}

impl StreamFiles {
    /// Whether the directory holds what a killed, unrecovered run leaves.
    pub fn unfinished(&self) -> bool {
        !self.logs.is_empty() || !self.partials.is_empty()
    }
}

/// The stream directories of `run_dir`: every directory (or directory one level further down,
/// for a sink's `subdirectory`) holding parts, logs or unfinished parts, sorted by path.
pub fn stream_dirs(run_dir: &Path) -> Result<Vec<StreamFiles>, DataError> {
    let mut found = Vec::new();
    for entry in sorted_entries(run_dir)? {
        if !entry.is_dir() || entry.file_name().is_some_and(|n| n == PLOTS_DIR) {
            continue;
        }
        let relative = PathBuf::from(entry.file_name().unwrap_or_default());
        let files = scan_stream_dir(run_dir, &relative)?;
        if files.parts.is_empty() && !files.unfinished() {
            // Maybe a sink's subdirectory: its streams are one level down.
            for inner in sorted_entries(&entry)? {
                if inner.is_dir() {
                    let nested = relative.join(inner.file_name().unwrap_or_default());
                    let files = scan_stream_dir(run_dir, &nested)?;
                    if !files.parts.is_empty() || files.unfinished() {
                        found.push(files);
                    }
                }
            }
        } else {
            found.push(files);
        }
    }
    Ok(found)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(DataError::read(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    Ok(entries)
}

fn scan_stream_dir(run_dir: &Path, relative: &Path) -> Result<StreamFiles, DataError> {
    let dir = run_dir.join(relative);
    let mut files = StreamFiles {
        stream: relative
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        relative: relative.to_path_buf(),
        ..Default::default()
    };
    for path in sorted_entries(&dir)? {
        let Ok(meta) = path.metadata() else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        files.bytes += meta.len();
        let name = path.to_string_lossy();
        if name.ends_with(".parquet.partial") {
            files.partials.push(path);
        } else if path.extension().is_some_and(|x| x == "parquet") {
            files.parts.push(path);
        } else if path.extension().is_some_and(|x| x == WAL_EXTENSION) {
            files.logs.push(path);
        } else if path.extension().is_some_and(|x| x == CHECKPOINT_EXTENSION) {
            // Counted in `bytes`; read through the log it belongs to.
        }
    }
    Ok(files)
}

/// The footer of a finished part, read alone (no data pages), with page indexes skipped.
pub fn read_footer(path: &Path) -> Result<ParquetMetaData, DataError> {
    let file = File::open(path).map_err(DataError::read(path))?;
    ParquetMetaDataReader::new()
        .parse_and_finish(&file)
        .map_err(|e| DataError::parquet(path, e))
}

/// A run directory that exists and is one: it has a manifest or a stream directory.
pub fn check_run_dir(run_dir: &Path) -> Result<(Option<Manifest>, Vec<StreamFiles>), DataError> {
    if !run_dir.is_dir() {
        return Err(DataError::Missing {
            path: run_dir.to_path_buf(),
        });
    }
    let manifest = read_manifest(run_dir)?;
    let streams = stream_dirs(run_dir)?;
    if manifest.is_none() && streams.is_empty() {
        return Err(DataError::NotARun {
            path: run_dir.to_path_buf(),
        });
    }
    Ok((manifest, streams))
}

/// A key-value entry of a file's metadata.
pub fn file_key_value<'a>(metadata: &'a ParquetMetaData, key: &str) -> Option<&'a str> {
    metadata
        .file_metadata()
        .key_value_metadata()?
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_higher_major_or_minor_is_newer() {
        assert!(is_newer("0.2.0", "0.1.9"));
        assert!(is_newer("1.0.0", "0.9.0"));
        assert!(!is_newer("0.1.7", "0.1.0"));
        assert!(!is_newer("0.1.0-rc1", "0.1.0"));
        assert!(is_newer("garbage", "0.1.0"));
    }

    #[test]
    fn a_missing_directory_and_an_empty_one_are_told_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = check_run_dir(&dir.path().join("nope")).expect_err("missing");
        assert!(matches!(missing, DataError::Missing { .. }), "{missing}");
        let empty = check_run_dir(dir.path()).expect_err("empty");
        assert!(matches!(empty, DataError::NotARun { .. }), "{empty}");
    }

    #[test]
    fn a_manifest_from_a_future_version_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join(MANIFEST_FILE),
            r#"{"ensemble_version": "99.0.0", "something_new": 1}"#,
        )
        .expect("write");
        let e = read_manifest(dir.path()).expect_err("future");
        assert!(e.to_string().contains("run.json"), "{e}");
        assert!(e.to_string().contains("99.0.0"), "{e}");
    }
}
