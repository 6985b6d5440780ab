//! What a load test runs: groups of simulated instruments, a sink, a duration.
//!
//! A spec comes from command-line flags or from the `[loadtest]` table of a file:
//!
//! ```toml
//! [loadtest]
//! duration = "60s"
//! batch_interval = "500ms"
//! sink = "parquet"            # or "null": count and discard
//! compression = "zstd"
//! faults = 0.01               # this fraction of instruments panics once, at a random time
//!
//! [[loadtest.groups]]         # one or more groups of identical instruments
//! count = 900
//! channels = 1
//! rate_hz = 10
//!
//! [[loadtest.groups]]
//! count = 100
//! channels = 4
//! rate_hz = 1000
//! ```

use std::path::PathBuf;
use std::time::Duration;

use ensemble_actors::instruments::sim::Pace;
use ensemble_actors::link::Delivery;
use ensemble_actors::sinks::parquet::Codec;
use serde::{Deserialize, Serialize};

/// A whole load test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadtestSpec {
    /// Groups of identical instruments; instruments are numbered across groups.
    #[serde(default = "default_groups")]
    pub groups: Vec<InstrumentGroup>,
    /// How long every instrument streams.
    #[serde(default = "default_duration", with = "humantime_serde")]
    pub duration: Duration,
    /// How often each instrument emits the rows that came due (its batch size in time).
    #[serde(default = "default_batch_interval", with = "humantime_serde")]
    pub batch_interval: Duration,
    /// Real time (the default) or as fast as the pipeline accepts.
    #[serde(default)]
    pub pace: Pace,
    /// Where the rows go.
    #[serde(default)]
    pub sink: LoadSink,
    /// Codec of the Parquet sink.
    #[serde(default)]
    pub compression: Codec,
    /// zstd level of the Parquet sink.
    #[serde(default = "default_zstd_level")]
    pub zstd_level: i32,
    /// Group commit interval of the Parquet sink (row groups closed and synced this often).
    #[serde(default = "default_flush_interval", with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Largest row group of the Parquet sink.
    #[serde(default = "default_row_group_rows")]
    pub row_group_rows: usize,
    /// Writer threads of the Parquet sink (default: one per core).
    #[serde(default)]
    pub writer_threads: Option<usize>,
    /// Lossless (the default: push back) or best effort (drop oldest and count).
    #[serde(default)]
    pub delivery: Delivery,
    /// Link capacity per instrument, in batches.
    #[serde(default = "default_queue_batches")]
    pub queue_batches: usize,
    /// Fraction of instruments (0 to 1) that panic once at a random time; the restart policy
    /// brings them back and they catch up, so a lossless test must still lose nothing.
    #[serde(default)]
    pub faults: f64,
    /// Seed for signals and for choosing which instruments fail, and when.
    #[serde(default)]
    pub seed: u64,
    /// Where run directories go.
    #[serde(default = "default_output")]
    pub output: PathBuf,
}

/// Identical simulated instruments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstrumentGroup {
    /// How many.
    pub count: usize,
    /// Float64 channels per instrument.
    #[serde(default = "default_channels")]
    pub channels: usize,
    /// Rows per second per instrument.
    pub rate_hz: f64,
}

/// The sink of a load test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LoadSink {
    /// Parquet files, one directory per instrument.
    #[default]
    Parquet,
    /// Count and discard: the pipeline without encoding or disk.
    Null,
}

impl Default for LoadtestSpec {
    fn default() -> Self {
        Self {
            groups: default_groups(),
            duration: default_duration(),
            batch_interval: default_batch_interval(),
            pace: Pace::Realtime,
            sink: LoadSink::Parquet,
            compression: Codec::Zstd,
            zstd_level: default_zstd_level(),
            flush_interval: default_flush_interval(),
            row_group_rows: default_row_group_rows(),
            writer_threads: None,
            delivery: Delivery::Lossless,
            queue_batches: default_queue_batches(),
            faults: 0.0,
            seed: 0,
            output: default_output(),
        }
    }
}

/// A file holding a `[loadtest]` table (other tables are ignored).
#[derive(Debug, Deserialize)]
struct LoadtestFile {
    loadtest: LoadtestSpec,
}

/// Why a load test spec is unusable.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The `[loadtest]` table is missing or malformed.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong (names the key).
        message: String,
    },
    /// A value is out of range; every problem, one per line, each naming its key.
    #[error("{}", .0.join("\n"))]
    Invalid(Vec<String>),
}

impl LoadtestSpec {
    /// Reads the `[loadtest]` table of a file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let file: LoadtestFile = toml::from_str(&text).map_err(|e| SpecError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        Ok(file.loadtest)
    }

    /// Every problem with the values, each naming its key; empty when the spec is usable.
    pub fn check(&self) -> Result<(), SpecError> {
        let mut problems = Vec::new();
        if self.groups.is_empty() {
            problems.push("loadtest.groups: needs at least one group".to_string());
        }
        for (i, g) in self.groups.iter().enumerate() {
            if g.count == 0 {
                problems.push(format!("loadtest.groups[{i}].count: must be at least 1"));
            }
            if g.channels == 0 {
                problems.push(format!("loadtest.groups[{i}].channels: must be at least 1"));
            }
            if !(g.rate_hz.is_finite() && g.rate_hz > 0.0) {
                problems.push(format!(
                    "loadtest.groups[{i}].rate_hz: must be a positive number, got {}",
                    g.rate_hz
                ));
            }
        }
        if self.instruments() > 100_000 {
            problems.push(format!(
                "loadtest.groups: {} instruments; at most 100000 (instrument names have five digits)",
                self.instruments()
            ));
        }
        for (key, d) in [
            ("duration", self.duration),
            ("batch_interval", self.batch_interval),
            ("flush_interval", self.flush_interval),
        ] {
            if d.is_zero() {
                problems.push(format!("loadtest.{key}: must be longer than zero"));
            }
        }
        if !(0.0..=1.0).contains(&self.faults) {
            problems.push(format!(
                "loadtest.faults: must be a fraction from 0 to 1, got {}",
                self.faults
            ));
        }
        if !(1..=22).contains(&self.zstd_level) {
            problems.push(format!(
                "loadtest.zstd_level: must be 1 to 22, got {}",
                self.zstd_level
            ));
        }
        if self.row_group_rows == 0 {
            problems.push("loadtest.row_group_rows: must be at least 1".to_string());
        }
        if self.queue_batches == 0 {
            problems.push("loadtest.queue_batches: must be at least 1".to_string());
        }
        if self.writer_threads == Some(0) {
            problems.push("loadtest.writer_threads: must be at least 1".to_string());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(SpecError::Invalid(problems))
        }
    }

    /// Instruments over all groups.
    pub fn instruments(&self) -> usize {
        self.groups.iter().map(|g| g.count).sum()
    }
}

fn default_groups() -> Vec<InstrumentGroup> {
    vec![InstrumentGroup {
        count: 10,
        channels: default_channels(),
        rate_hz: 1000.0,
    }]
}
const fn default_channels() -> usize {
    1
}
const fn default_duration() -> Duration {
    Duration::from_secs(10)
}
const fn default_batch_interval() -> Duration {
    Duration::from_millis(100)
}
const fn default_zstd_level() -> i32 {
    1
}
const fn default_flush_interval() -> Duration {
    Duration::from_secs(1)
}
const fn default_row_group_rows() -> usize {
    131_072
}
const fn default_queue_batches() -> usize {
    16
}
fn default_output() -> PathBuf {
    PathBuf::from("runs")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_with_groups_parses_and_checks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lt.toml");
        std::fs::write(
            &path,
            "[loadtest]\nduration = \"2s\"\nsink = \"null\"\nfaults = 0.1\n\
             [[loadtest.groups]]\ncount = 3\nrate_hz = 10\n\
             [[loadtest.groups]]\ncount = 2\nchannels = 4\nrate_hz = 1000\n",
        )
        .expect("write");
        let spec = LoadtestSpec::from_file(&path).expect("parses");
        assert_eq!(spec.instruments(), 5);
        assert_eq!(spec.sink, LoadSink::Null);
        assert_eq!(spec.groups[1].channels, 4);
        spec.check().expect("valid");
    }

    #[test]
    fn every_bad_value_is_named() {
        let spec = LoadtestSpec {
            groups: vec![InstrumentGroup {
                count: 0,
                channels: 1,
                rate_hz: -1.0,
            }],
            faults: 2.0,
            ..LoadtestSpec::default()
        };
        let text = spec.check().expect_err("invalid").to_string();
        for key in ["groups[0].count", "groups[0].rate_hz", "loadtest.faults"] {
            assert!(text.contains(key), "{text}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<LoadtestFile>("[loadtest]\ninstrument = 3\n").expect_err("x");
        assert!(err.to_string().contains("instrument"), "{err}");
    }
}
