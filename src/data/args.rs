//! Command-line options of the data commands (`runs`, `inspect`, `export`, `plot`).

use std::path::PathBuf;

use super::export_writers::ExportFormat;
use super::export_writers::TimeFormat;

/// `ensemble runs` options.
#[derive(Debug, clap::Args)]
pub struct RunsArgs {
    /// Directory of run directories (default: `runs`, the default `[experiment] output`).
    pub dir: Option<PathBuf>,
    /// Only runs where KEY=VALUE (repeatable; all must hold): `status`, `name`, `id` or a
    /// metadata key. `status=crashed` also matches `crashed-unrecovered`.
    #[arg(long = "where", value_name = "KEY=VALUE")]
    pub conditions: Vec<String>,
    /// Only runs that started at or after this (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long)]
    pub since: Option<String>,
    /// Print JSON (an array of runs) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `ensemble inspect` options.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `ensemble export` options.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Streams to export (repeatable; default all).
    #[arg(long = "stream")]
    pub streams: Vec<String>,
    /// Channel columns to keep, comma-separated (default all; `timestamp` and `seq` always).
    #[arg(long, value_delimiter = ',')]
    pub channels: Vec<String>,
    /// Only rows at or after this time: RFC 3339, YYYY-MM-DD, or +SECONDS after the start.
    #[arg(long)]
    pub from: Option<String>,
    /// Only rows at or before this time (same forms as --from).
    #[arg(long)]
    pub to: Option<String>,
    /// Output format.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// How times are written.
    #[arg(long, value_enum, default_value = "rfc3339")]
    pub time: TimeFormat,
    /// CSV: a second header row with each column's unit.
    #[arg(long)]
    pub units: bool,
    /// Output file, `-` for standard output (one stream), or a new directory (several
    /// streams: one file each). Default `-`.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `ensemble plot` options.
#[derive(Debug, clap::Args)]
pub struct PlotArgs {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The stream to plot (required unless --all).
    #[arg(long, required_unless_present = "all")]
    pub stream: Option<String>,
    /// Channels to draw (repeatable; default all).
    #[arg(long = "channel")]
    pub channels: Vec<String>,
    /// Only rows at or after this time (as for `export`).
    #[arg(long)]
    pub from: Option<String>,
    /// Only rows at or before this time.
    #[arg(long)]
    pub to: Option<String>,
    /// Draw the mean spectrum of an `fft` stream.
    #[arg(long)]
    pub spectrum: bool,
    /// The output, FILE.png or FILE.svg (required unless --all).
    #[arg(long, required_unless_present = "all")]
    pub out: Option<PathBuf>,
    /// Draw `plots/STREAM.png` for every stream of the run (the thumbnails).
    #[arg(long, conflicts_with_all = ["stream", "out"])]
    pub all: bool,
    /// Width in pixels.
    #[arg(long, default_value_t = super::plot::DEFAULT_SIZE.0)]
    pub width: u32,
    /// Height in pixels.
    #[arg(long, default_value_t = super::plot::DEFAULT_SIZE.1)]
    pub height: u32,
}
