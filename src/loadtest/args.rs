//! The flags of `ensemble loadtest`; each overrides the `[loadtest]` file, if one is given.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use ensemble_actors::instruments::sim::Pace;
use ensemble_actors::link::Delivery;
use ensemble_actors::sinks::parquet::Codec;

use super::spec::{InstrumentGroup, LoadSink, LoadtestSpec, SpecError};
use crate::cli::parse_duration;

/// `ensemble loadtest [FILE] [flags]`.
#[derive(Debug, Clone, Args)]
pub struct LoadtestArgs {
    /// A file with a `[loadtest]` table (groups of instruments, faults); flags override it.
    pub file: Option<PathBuf>,
    /// Simulated instruments (replaces the file's groups with one group).
    #[arg(long)]
    pub instruments: Option<usize>,
    /// Channels per instrument (with --instruments; default 1).
    #[arg(long)]
    pub channels: Option<usize>,
    /// Rows per second per instrument (with --instruments; default 1000).
    #[arg(long)]
    pub rate: Option<f64>,
    /// How long to stream, e.g. `20s`.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// How often each instrument emits the rows that came due, e.g. `100ms`.
    #[arg(long, value_parser = parse_duration)]
    pub batch_interval: Option<Duration>,
    /// `parquet` or `null` (count and discard).
    #[arg(long, value_enum)]
    pub sink: Option<LoadSink>,
    /// `zstd`, `snappy` or `none`.
    #[arg(long, value_parser = parse_codec)]
    pub compression: Option<Codec>,
    /// Parquet group commit interval, e.g. `1s`.
    #[arg(long, value_parser = parse_duration)]
    pub flush_interval: Option<Duration>,
    /// Parquet writer threads (default: one per core).
    #[arg(long)]
    pub writer_threads: Option<usize>,
    /// `realtime` (default) or `max` (as fast as the pipeline accepts).
    #[arg(long, value_parser = parse_pace)]
    pub pace: Option<Pace>,
    /// `lossless` (default) or `best_effort`.
    #[arg(long, value_parser = parse_delivery)]
    pub delivery: Option<Delivery>,
    /// Link capacity per instrument, in batches.
    #[arg(long)]
    pub queue_batches: Option<usize>,
    /// Fraction of instruments that panic once at a random time (restarted by the policy).
    #[arg(long)]
    pub faults: Option<f64>,
    /// Seed for signals and faults.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Directory for the run directory.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Show no live progress.
    #[arg(long)]
    pub quiet: bool,
}

impl LoadtestArgs {
    /// The spec: the file's `[loadtest]` table (or the defaults), then every flag given.
    pub fn spec(&self) -> Result<LoadtestSpec, SpecError> {
        let mut spec = match &self.file {
            Some(path) => LoadtestSpec::from_file(path)?,
            None => LoadtestSpec::default(),
        };
        if self.instruments.is_some() || self.channels.is_some() || self.rate.is_some() {
            let first = spec.groups.first().cloned();
            spec.groups = vec![InstrumentGroup {
                count: self
                    .instruments
                    .or(first.as_ref().map(|g| g.count))
                    .unwrap_or(10),
                channels: self
                    .channels
                    .or(first.as_ref().map(|g| g.channels))
                    .unwrap_or(1),
                rate_hz: self
                    .rate
                    .or(first.as_ref().map(|g| g.rate_hz))
                    .unwrap_or(1000.0),
            }];
        }
        if let Some(v) = self.duration {
            spec.duration = v;
        }
        if let Some(v) = self.batch_interval {
            spec.batch_interval = v;
        }
        if let Some(v) = self.sink {
            spec.sink = v;
        }
        if let Some(v) = self.compression {
            spec.compression = v;
        }
        if let Some(v) = self.flush_interval {
            spec.flush_interval = v;
        }
        if self.writer_threads.is_some() {
            spec.writer_threads = self.writer_threads;
        }
        if let Some(v) = self.pace {
            spec.pace = v;
        }
        if let Some(v) = self.delivery {
            spec.delivery = v;
        }
        if let Some(v) = self.queue_batches {
            spec.queue_batches = v;
        }
        if let Some(v) = self.faults {
            spec.faults = v;
        }
        if let Some(v) = self.seed {
            spec.seed = v;
        }
        if let Some(v) = &self.output {
            spec.output = v.clone();
        }
        spec.check()?;
        Ok(spec)
    }
}

fn parse_codec(text: &str) -> Result<Codec, String> {
    match text {
        "zstd" => Ok(Codec::Zstd),
        "snappy" => Ok(Codec::Snappy),
        "none" => Ok(Codec::None),
        other => Err(format!("`{other}`: expected zstd, snappy or none")),
    }
}

fn parse_pace(text: &str) -> Result<Pace, String> {
    match text {
        "realtime" => Ok(Pace::Realtime),
        "max" => Ok(Pace::Max),
        other => Err(format!("`{other}`: expected realtime or max")),
    }
}

fn parse_delivery(text: &str) -> Result<Delivery, String> {
    match text {
        "lossless" => Ok(Delivery::Lossless),
        "best_effort" => Ok(Delivery::BestEffort),
        other => Err(format!("`{other}`: expected lossless or best_effort")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: LoadtestArgs,
    }

    #[test]
    fn flags_make_one_group_and_override_defaults() {
        let w = Wrapper::try_parse_from([
            "x",
            "--instruments",
            "1000",
            "--channels",
            "4",
            "--rate",
            "1000",
            "--duration",
            "20s",
            "--sink",
            "null",
            "--compression",
            "none",
        ])
        .expect("parses");
        let spec = w.args.spec().expect("valid");
        assert_eq!(spec.instruments(), 1000);
        assert_eq!(spec.groups[0].channels, 4);
        assert_eq!(spec.duration, Duration::from_secs(20));
        assert_eq!(spec.sink, LoadSink::Null);
        assert_eq!(spec.compression, Codec::None);
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(Wrapper::try_parse_from(["x", "--compression", "lz4"]).is_err());
        let w = Wrapper::try_parse_from(["x", "--faults", "1.5"]).expect("parses");
        assert!(w.args.spec().is_err());
    }
}
