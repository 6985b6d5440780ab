//! The one error type of the data tools: each names the file or argument it is about.

use std::path::PathBuf;

/// Why a data command could not do what was asked. Nothing is written when one is returned
/// (outputs go to a temporary file that is renamed only once complete).
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The path does not exist.
    #[error("{path}: no such run directory")]
    Missing {
        /// What was named.
        path: PathBuf,
    },
    /// The directory holds neither a manifest nor stream directories.
    #[error("{path}: not a run directory (no run.json and no stream directory with parts)")]
    NotARun {
        /// The directory.
        path: PathBuf,
    },
    /// A file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// `run.json` is not a manifest.
    #[error("{path}: not a valid run manifest: {message}")]
    BadManifest {
        /// The manifest.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// `run.json` was written by a newer ensemble whose format this one may not know.
    #[error(
        "{path}: written by ensemble {version}, newer than this ensemble ({ours}); use ensemble {version} or later to read it"
    )]
    FutureVersion {
        /// The manifest.
        path: PathBuf,
        /// Its `ensemble_version`.
        version: String,
        /// This build's version.
        ours: &'static str,
    },
    /// A Parquet file is damaged or truncated.
    #[error("{path}: not a readable Parquet file: {message}")]
    BadParquet {
        /// The file.
        path: PathBuf,
        /// What the reader said.
        message: String,
    },
    /// A write-ahead log or checkpoint of an unfinished part could not be read.
    #[error("{0}")]
    Log(#[from] ensemble_actors::sinks::parquet::SinkError),
    /// An argument is wrong (`--from` after `--to`, an unknown stream or channel, ...).
    #[error("{0}")]
    Usage(String),
    /// The output could not be written.
    #[error("{path}: cannot write: {source}")]
    Write {
        /// The output.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// Drawing a plot failed.
    #[error("{path}: cannot draw the plot: {message}")]
    Plot {
        /// The output.
        path: PathBuf,
        /// What plotters said.
        message: String,
    },
}

impl DataError {
    /// The process exit code for this error: 2 for bad input (missing or damaged run, bad
    /// arguments), 1 for a failure to write the output.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Write { .. } | Self::Plot { .. } => 1,
            _ => 2,
        }
    }

    /// A [`DataError::BadParquet`] for `path`.
    pub(crate) fn parquet(path: &std::path::Path, e: impl std::fmt::Display) -> Self {
        Self::BadParquet {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }

    /// A [`DataError::Read`] for `path`.
    pub(crate) fn read(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Read {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A [`DataError::Write`] for `path`.
    pub(crate) fn write(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Write {
            path: path.to_path_buf(),
            source,
        }
    }
}
