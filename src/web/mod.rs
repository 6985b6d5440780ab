//! The live web view (`ensemble run --serve`) and the viewer of finished runs
//! (`ensemble serve DIR`).
//!
//! - [`auth`]: where it listens (loopback by default) and the token anything else needs.
//! - [`server`]: the HTTP server on its own thread and runtime; routes; the event stream.
//! - [`connections`]: accepting clients within limits (count, header time, stalled writes);
//!   [`pace`]: how many bytes a second the view may send in all.
//! - [`live`]: a running run's status and plots, read from counters and taps.
//! - [`files`] and [`parquet_read`]: finished runs, read from manifests and Parquet parts.
//! - [`decimate`], [`history`] and [`recent`]: min/max/last per bucket, for any window, in
//!   fixed memory; [`envelope`]: one bucket; [`bucket_runs`]: the inner loops they share.
//! - [`stream_fold`]: what the view keeps of a live stream, folded from its tap within a
//!   [`fold_budget`].
//! - [`frames`]: Arrow batches to time envelopes, spectra and scan points.
//! - [`control`]: what Stop, Pause and Resume call ([`ControlPort`]).
//! - [`api`]: the JSON types of the API; [`page`]: the page, compiled in.
//! - [`error`]: errors of starting the view and of bad requests.
//!
//! Acquisition never waits for the view: producers offer batches to a fixed-size tap with
//! `try_lock` (see `ensemble_actors::tap`), and all decimation runs on the server's thread.

pub mod api;
pub mod auth;
pub mod bucket_runs;
pub mod connections;
pub mod control;
pub mod decimate;
pub mod envelope;
pub mod error;
pub mod files;
pub mod fold_budget;
pub mod frames;
pub mod history;
pub mod live;
pub mod pace;
pub mod page;
pub mod parquet_read;
pub mod recent;
pub mod server;
pub mod stream_fold;

pub use auth::{DEFAULT_ADDR, ServeConfig, TOKEN_ENV};
pub use control::{ControlError, ControlPort, NoControl};
pub use error::WebError;
pub use server::{ViewSource, WebServer};

/// Most bytes the taps of a served run hold in all, reserved from the run's memory budget for
/// the whole run: an eighth of `max_memory_mb`, at most 64 MiB.
pub fn view_budget_bytes(max_memory_mb: u64) -> u64 {
    (max_memory_mb * 1024 * 1024 / 8).min(64 * 1024 * 1024)
}
