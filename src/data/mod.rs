//! Finding, reading and sharing what was recorded: plain functions over run directories that
//! return typed results, so `ensemble serve` or a script can use them as a library.
//!
//! - [`catalog`]: `ensemble runs`: the runs in a directory, newest first, filtered.
//! - [`inspect`]: `ensemble inspect`: how a run ended and what each stream holds; reads a killed
//!   run's write-ahead logs memory-mapped, without changing anything.
//! - [`export`]: `ensemble export`: CSV, NDJSON, Arrow or Parquet, streaming (the format
//!   writers are in [`export_writers`]).
//! - [`plot`]: `ensemble plot`: time series, spectra, scans (drawing in [`figure`]).
//! - [`thumbnails`]: `plots/STREAM.png` per stream of a finished run.
//! - [`rundir`]: reading a run directory (manifest, stream directories, footers); [`read`]:
//!   parts batch by batch; [`stats`]:
//!   what row-group statistics say.
//! - [`args`], [`commands`]: the command-line side; [`error`]: [`DataError`].
//!
//! See `docs/data.md` for the file layout and reading runs from Python.

pub mod args;
pub mod catalog;
pub mod commands;
pub mod error;
pub mod export;
pub mod export_writers;
pub mod figure;
pub mod inspect;
pub mod plot;
pub mod read;
pub mod rundir;
pub mod stats;
pub mod thumbnails;

pub use error::DataError;
