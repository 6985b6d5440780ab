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
    /// How often each instrument emits the rows that came due, e.g. `100ms`. Default (without a
    /// file): 1 ms per instrument, from 100 ms to 1 s.
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
        match (self.batch_interval, &self.file) {
            (Some(v), _) => spec.batch_interval = v,
            (None, None) => spec.batch_interval = default_batch_interval(spec.instruments()),
            (None, Some(_)) => {}
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

/// Shortest and longest batch interval a load test picks by itself.
const BATCH_INTERVAL_RANGE: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(1));

/// The batch interval of a load test of `instruments` given no `--batch-interval` (nor a file):
/// 1 ms per instrument, from 100 ms to 1 s, so that they emit at most about 1,000 batches a
/// second together once there are more than 100.
///
/// Each batch costs the same whatever its rows (generating, two hops, a writer-thread
/// hand-off, an encoder call per column), and 1,000 instruments in 100 ms batches spent most of
/// the pipeline's CPU on that: at 3 kHz × 4 channels, 0.385 CPU s per million rows with 100 ms
/// batches against 0.224 with 1 s, and only the latter kept up (BENCHMARKS.md, issue 16 item 3,
/// session 7). 100 ms stays the interval of 100 instruments and fewer.
pub fn default_batch_interval(instruments: usize) -> Duration {
    let (shortest, longest) = BATCH_INTERVAL_RANGE;
    Duration::from_millis(instruments as u64).clamp(shortest, longest)
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
    fn without_a_flag_or_file_the_batch_interval_grows_with_the_instruments() {
        let interval = |args: &[&str]| {
            let mut all = vec!["x"];
            all.extend_from_slice(args);
            let w = Wrapper::try_parse_from(all).expect("parses");
            w.args.spec().expect("valid").batch_interval
        };
        assert_eq!(interval(&[]), Duration::from_millis(100), "10 instruments");
        assert_eq!(
            interval(&["--instruments", "300"]),
            Duration::from_millis(300)
        );
        assert_eq!(interval(&["--instruments", "1000"]), Duration::from_secs(1));
        assert_eq!(
            interval(&["--instruments", "10000"]),
            Duration::from_secs(1)
        );
        assert_eq!(
            interval(&["--instruments", "1000", "--batch-interval", "100ms"]),
            Duration::from_millis(100),
            "the flag wins"
        );
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(Wrapper::try_parse_from(["x", "--compression", "lz4"]).is_err());
        let w = Wrapper::try_parse_from(["x", "--faults", "1.5"]).expect("parses");
        assert!(w.args.spec().is_err());
    }
}
