//! Configuration of the Parquet sink (`type = "parquet"`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Writes each input stream to `<run>/<stream>/part-NNNNNN.parquet`.
///
/// Parts are written as `*.partial` and renamed when finished, so readers never see a torn file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetSinkConfig {
    /// Write under `<run>/<subdirectory>/<stream>/` instead of `<run>/<stream>/`; needed when
    /// several Parquet sinks store the same stream.
    #[serde(default)]
    pub subdirectory: Option<String>,
    /// Compression codec of every column.
    #[serde(default)]
    pub compression: Codec,
    /// zstd level (1 is fast and compresses noisy floats about as well as higher levels).
    #[serde(default = "default_zstd_level")]
    pub zstd_level: i32,
    /// A column chunk whose compression saved less than this share of its bytes is stored
    /// uncompressed for the column's next 7 row groups, then compressed again to check; each
    /// try in vain doubles the stretch, up to 63 row groups (default 0.1; 0 compresses every
    /// chunk). zstd-1 saves ~7% on a noisy signal's doubles at half a
    /// writer's CPU time; a quantised or slowly varying signal compresses far better and stays
    /// compressed.
    #[serde(default = "default_min_compression_saving")]
    pub min_compression_saving: f64,
    /// Rows per row group, at most: with many streams a row group also closes when the open
    /// row groups of the sink together take about 128 MiB (their pages wait in memory).
    #[serde(default = "default_row_group_rows")]
    pub row_group_rows: usize,
    /// Start a new part file after this many rows.
    #[serde(default)]
    pub rotate_rows: Option<u64>,
    /// Start a new part file after this much time.
    #[serde(default, with = "humantime_serde")]
    pub rotate_interval: Option<Duration>,
    /// How often what was written is made durable (one `syncfs` per writer thread): a killed
    /// process loses at most the rows of the last `flush_interval`, and a power cut at most
    /// twice that. Default 1 s.
    #[serde(default = "default_flush_interval", with = "humantime_serde")]
    pub flush_interval: Option<Duration>,
    /// Encoding threads; streams are spread over them (default: the number of cores).
    #[serde(default)]
    pub writer_threads: Option<usize>,
    /// Keep a write-ahead log and row-group checkpoints of each open part (what makes
    /// `flush_interval` hold after a crash; `ensemble recover` reads them). Turn off only where
    /// losing a whole part is fine.
    #[serde(default = "default_true")]
    pub write_ahead_log: bool,
    /// Testing aid: write at most this many rows per second per writer thread, to rehearse a
    /// sink slower than its instruments (overload, backpressure, best-effort drops).
    #[serde(default)]
    pub throttle_rows_per_s: Option<f64>,
}

impl Default for ParquetSinkConfig {
    fn default() -> Self {
        Self {
            subdirectory: None,
            compression: Codec::default(),
            zstd_level: default_zstd_level(),
            min_compression_saving: default_min_compression_saving(),
            row_group_rows: default_row_group_rows(),
            rotate_rows: None,
            rotate_interval: None,
            flush_interval: default_flush_interval(),
            writer_threads: None,
            throttle_rows_per_s: None,
            write_ahead_log: true,
        }
    }
}

/// Compression codecs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Codec {
    /// zstd at `zstd_level`.
    #[default]
    Zstd,
    /// Snappy.
    Snappy,
    /// No compression.
    None,
}

impl ParquetSinkConfig {
    /// Checks values serde cannot: returns `(key, message)` for each problem.
    pub fn check(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if let Some(sub) = &self.subdirectory {
            let plain = std::path::Path::new(sub)
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
            if sub.is_empty() || !plain {
                problems.push((
                    "subdirectory",
                    format!("must be a plain relative path inside the run directory, got `{sub}`"),
                ));
            }
        }
        if !(1..=22).contains(&self.zstd_level) {
            problems.push((
                "zstd_level",
                format!("must be 1 to 22, got {}", self.zstd_level),
            ));
        }
        if !(0.0..1.0).contains(&self.min_compression_saving) {
            problems.push((
                "min_compression_saving",
                format!(
                    "must be at least 0 and below 1, got {}",
                    self.min_compression_saving
                ),
            ));
        }
        if self.row_group_rows == 0 {
            problems.push(("row_group_rows", "must be at least 1".to_string()));
        }
        if self.rotate_rows == Some(0) {
            problems.push(("rotate_rows", "must be at least 1".to_string()));
        }
        if self.rotate_interval.is_some_and(|d| d.is_zero()) {
            problems.push(("rotate_interval", "must be longer than zero".to_string()));
        }
        if self.flush_interval.is_some_and(|d| d.is_zero()) {
            problems.push(("flush_interval", "must be longer than zero".to_string()));
        }
        if self.writer_threads == Some(0) {
            problems.push(("writer_threads", "must be at least 1".to_string()));
        }
        if self
            .throttle_rows_per_s
            .is_some_and(|r| !(r.is_finite() && r > 0.0))
        {
            problems.push((
                "throttle_rows_per_s",
                "must be a positive number".to_string(),
            ));
        }
        problems
    }
}

const fn default_true() -> bool {
    true
}
const fn default_zstd_level() -> i32 {
    1
}
const fn default_min_compression_saving() -> f64 {
    0.1
}
const fn default_flush_interval() -> Option<Duration> {
    Some(Duration::from_secs(1))
}
const fn default_row_group_rows() -> usize {
    131_072
}
