//! The command line: what `ensemble` accepts, parsed by clap.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Run many scientific instruments at once and record everything they measure.
#[derive(Debug, Parser)]
#[command(name = "ensemble", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an experiment file: acquire, process and store until its plan ends or Ctrl-C.
    Run {
        /// The experiment file (TOML).
        file: PathBuf,
        /// Directory for run directories (overrides `[experiment] output`).
        #[arg(long)]
        output: Option<PathBuf>,
        /// How long to stream (overrides `[experiment] duration`), e.g. `10s`, `250ms`, `2m`.
        #[arg(long, value_parser = parse_duration)]
        duration: Option<Duration>,
        /// Show no live progress.
        #[arg(long)]
        quiet: bool,
    },
    /// Finish what a killed run left: rebuild parts from their write-ahead logs and rewrite the
    /// manifest with `status: "crashed"` and the counts read back from the files.
    Recover {
        /// The run directory (`<output>/<run_id>`).
        run_dir: PathBuf,
    },
    /// Consume what `nats` sinks publish to JetStream and write run directories of Parquet files
    /// (one per run id); keeps running for the next runs until Ctrl-C, then drains and exits.
    Ingest(IngestArgs),
    /// Pause a running plan at its next point boundary (through RUN_DIR/control.sock).
    Pause {
        /// The run directory (`<output>/<run_id>`).
        run_dir: PathBuf,
        /// Abandon the point in progress now; it is taken again after the resume.
        #[arg(long)]
        now: bool,
    },
    /// Resume a paused plan.
    Resume {
        /// The run directory (`<output>/<run_id>`).
        run_dir: PathBuf,
    },
    /// Stop a running run after its current point (at once while paused); everything acquired
    /// is saved and the status is `stopped`.
    Stop {
        /// The run directory (`<output>/<run_id>`).
        run_dir: PathBuf,
    },
    /// Print a running run's plan state: phase, points done, pauses and suspensions (JSON).
    Status {
        /// The run directory (`<output>/<run_id>`).
        run_dir: PathBuf,
    },
    /// Check an experiment file and print its component graph; creates nothing.
    Validate {
        /// The experiment file (TOML).
        file: PathBuf,
    },
    /// Run many simulated instruments into one sink and report offered vs achieved throughput,
    /// losses, sample-to-disk latency, memory and CPU. Exit code 1 if anything was lost or the
    /// achieved rate fell more than 1% short.
    Loadtest(Box<crate::loadtest::LoadtestArgs>),
    /// The SCPI device simulator.
    Sim {
        /// What to do.
        #[command(subcommand)]
        command: SimCommand,
    },
}

/// `ensemble sim` subcommands.
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Serve a simulated SCPI device until Ctrl-C; prints the address to use.
    Serve {
        /// TCP address to listen on, e.g. `127.0.0.1:5025` (many clients share one device).
        #[arg(long, required_unless_present = "pty", conflicts_with = "pty")]
        listen: Option<std::net::SocketAddr>,
        /// Serve on a new pseudo-terminal instead (one serial client at a time).
        #[arg(long)]
        pty: bool,
        /// The device: `dmm`, `psu` or `tempctl`.
        #[arg(long, default_value = "dmm")]
        profile: ensemble_actors::simulator::Profile,
        /// A fault to inject (repeatable): `disconnect-after=N`, `garbage=P`, `delay=DUR`,
        /// `stall-after=N`, or several joined by commas.
        #[arg(long = "fault")]
        faults: Vec<ensemble_actors::simulator::FaultSpec>,
        /// Seed of the device noise and the fault draws.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

/// Parses a duration such as `10s`, `250ms` or `2m`; zero is refused.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text).map_err(|e| format!("`{text}`: {e}"))?;
    if d.is_zero() {
        return Err(format!("`{text}`: must be longer than zero"));
    }
    Ok(d)
}

/// `ensemble ingest` options.
#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// NATS server(s), comma-separated.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    pub url: String,
    /// The JetStream data stream (the `nats` sink's `stream`).
    #[arg(long, default_value = "ENSEMBLE")]
    pub stream: String,
    /// The `nats` sink's `subject_prefix`.
    #[arg(long, default_value = "ensemble")]
    pub subject_prefix: String,
    /// Directory for run directories.
    #[arg(long)]
    pub output: PathBuf,
    /// Durable consumer name; workers with the same name share the messages.
    #[arg(long, default_value = "ingest")]
    pub durable: String,
    /// This worker's name, used in its part file names (`part-<worker>-NNNNNN.parquet`); must be
    /// unique among running workers and the same when a worker is restarted. Default: host name.
    #[arg(long)]
    pub worker: Option<String>,
    /// Finish parts and acknowledge at least this often (each commit ends one part per stream).
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub commit_interval: Duration,
    /// ... or after this many messages.
    #[arg(long, default_value_t = 1000)]
    pub commit_messages: usize,
    /// How long JetStream waits for an acknowledgement before delivering a message again.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub ack_wait: Duration,
    /// Compression of the Parquet parts: zstd, snappy or none.
    #[arg(long, default_value = "zstd")]
    pub compression: String,
}
