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
        /// Run metadata KEY=VALUE (repeatable), over `[experiment.metadata]`; the value is
        /// read as a TOML scalar where it is one (`42`, `true`), else kept as text.
        #[arg(long = "meta", value_name = "KEY=VALUE")]
        meta: Vec<String>,
        /// Serve the live web view while the run goes on (default address 127.0.0.1:8750;
        /// port 0 picks a free one). The address is printed as `serving http://ADDR/`.
        #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:8750")]
        serve: Option<std::net::SocketAddr>,
        /// The token every request to the view must carry (`Authorization: Bearer` or
        /// `?token=`); required to bind anything but loopback. Default: $ENSEMBLE_SERVE_TOKEN.
        #[arg(long, value_name = "TOKEN", requires = "serve")]
        serve_token: Option<String>,
    },
    /// Serve the web view over finished runs: one run directory, or an output directory with a
    /// list of its runs. Runs until Ctrl-C.
    Serve {
        /// A run directory (`<output>/<run_id>`) or an output directory.
        dir: PathBuf,
        /// Where to listen; port 0 picks a free one.
        #[arg(long, default_value = "127.0.0.1:8750")]
        listen: std::net::SocketAddr,
        /// The token every request must carry; required to bind anything but loopback.
        /// Default: $ENSEMBLE_SERVE_TOKEN.
        #[arg(long, value_name = "TOKEN")]
        token: Option<String>,
    },
    /// List the runs in a directory, newest first: id, name, status, start, duration, streams,
    /// rows, size, metadata (reads manifests only).
    Runs(crate::data::args::RunsArgs),
    /// Show how a run ended and what each stream holds: rows, time range, rate, seq gaps and
    /// their causes, drops, parts, sizes, units. Read-only, also on a killed run.
    Inspect(crate::data::args::InspectArgs),
    /// Write a run's streams as CSV, NDJSON, Arrow IPC or Parquet, batch by batch.
    Export(crate::data::args::ExportArgs),
    /// Plot a stream to PNG or SVG (or `--all`: `plots/STREAM.png` for every stream).
    Plot(crate::data::args::PlotArgs),
    /// Finish what a killed run left: rebuild parts from their write-ahead logs and rewrite the
    /// manifest with `status: "crashed"` and the counts read back from the files.
    Recover {
        /// The run directory (`<output>/<run_id>`).
        run_dir: PathBuf,
    },
    /// Consume what `nats` sinks publish to JetStream and write run directories of Parquet files
    /// (one per run id); keeps running for the next runs until Ctrl-C, then drains and exits.
    Ingest(Box<IngestArgs>),
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
    /// Create the JetStream streams with this many replicas (1 to 5) when they do not exist;
    /// an existing stream with another number is an error. Without it, ingest waits for a
    /// `nats` sink to create them.
    #[arg(long)]
    pub replicas: Option<usize>,
    /// Compression of the Parquet parts: zstd, snappy or none.
    #[arg(long, default_value = "zstd")]
    pub compression: String,
    /// NATS credentials file (user JWT and nkey seed).
    #[arg(long)]
    pub creds_file: Option<PathBuf>,
    /// File holding an nkey seed.
    #[arg(long)]
    pub nkey_seed_file: Option<PathBuf>,
    /// User name for user/password login (the password comes from `--password-env`).
    #[arg(long, requires = "password_env")]
    pub user: Option<String>,
    /// Environment variable holding the password of `--user`.
    #[arg(long, requires = "user")]
    pub password_env: Option<String>,
    /// Environment variable holding an authentication token.
    #[arg(long)]
    pub token_env: Option<String>,
    /// PEM file of the CA that signed the servers' certificates (implies TLS).
    #[arg(long)]
    pub tls_ca_file: Option<PathBuf>,
    /// PEM client certificate, for servers that verify clients.
    #[arg(long, requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `--tls-cert-file`.
    #[arg(long, requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
}

impl IngestArgs {
    /// The credentials and TLS options, as the `nats` sink's `security` table.
    pub fn security(&self) -> ensemble_actors::sinks::nats::NatsSecurity {
        ensemble_actors::sinks::nats::NatsSecurity {
            creds_file: self.creds_file.clone(),
            nkey_seed_file: self.nkey_seed_file.clone(),
            user: self.user.clone(),
            password_env: self.password_env.clone(),
            token_env: self.token_env.clone(),
            tls_ca_file: self.tls_ca_file.clone(),
            tls_cert_file: self.tls_cert_file.clone(),
            tls_key_file: self.tls_key_file.clone(),
        }
    }
}
