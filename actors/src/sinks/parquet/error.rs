//! The Parquet sink's error type, shared by the part writer, its encoder, log and checkpoints.

use std::path::{Path, PathBuf};

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

/// Maps an I/O error on `path` to [`SinkError::Io`], for `map_err`.
pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SinkError + '_ {
    move |source| SinkError::Io {
        path: path.to_path_buf(),
        source,
    }
}
