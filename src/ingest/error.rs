//! The error type of ingest's file side.

use std::path::{Path, PathBuf};

use ensemble_actors::sinks::parquet::SinkError;

/// Why ingest could not store something. Every variant names the file or message involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Writing a Parquet part failed.
    #[error(transparent)]
    Parquet(#[from] SinkError),
    /// A file or directory could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// An existing part could not be read back (to learn which rows it holds).
    #[error("cannot read back {path}: {message}")]
    ReadBack {
        /// The part.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

pub(super) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}
