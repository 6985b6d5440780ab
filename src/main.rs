//! The `ensemble` binary: parse the command line, set up logging, run, map the result to an
//! exit code (0 clean, 1 run failed, 2 bad usage or config).

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use ensemble::cli::{Cli, Command, SimCommand};
use ensemble::config;
use ensemble::coordinator::StopReason;
use ensemble::progress::ProgressMode;
use ensemble::run::run_served_blocking;
use ensemble::summary::summary_table;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Sim {
            command:
                SimCommand::Serve {
                    listen,
                    pty,
                    profile,
                    faults,
                    seed,
                },
        } => sim_serve(listen, pty, profile, &faults, seed),
        Command::Validate { file } => match config::load(&file) {
            Ok(experiment) => {
                print!("{}", experiment.graph_summary());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::from(2)
            }
        },
        Command::Recover { run_dir } => match ensemble::recover::recover(&run_dir) {
            Ok(recovery) => {
                for (dir, r) in &recovery.directories {
                    println!(
                        "{}: {} part(s) rebuilt, {} rows{}",
                        dir.display(),
                        r.parts_recovered.len(),
                        r.rows_recovered,
                        if r.unrecoverable.is_empty() {
                            String::new()
                        } else {
                            format!(
                                ", {} unfinished part(s) without a log removed",
                                r.unrecoverable.len()
                            )
                        }
                    );
                }
                print!("{}", summary_table(&recovery.manifest));
                println!("{}", run_dir.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(1)
            }
        },
        Command::Pause { run_dir, now } => {
            control(&run_dir, if now { "pause now" } else { "pause" })
        }
        Command::Resume { run_dir } => control(&run_dir, "resume"),
        Command::Stop { run_dir } => control(&run_dir, "stop"),
        Command::Status { run_dir } => control(&run_dir, "status"),
        Command::Loadtest(args) => loadtest(&args),
        Command::Ingest(args) => ingest(*args),
        Command::Runs(args) => data_command(ensemble::data::commands::runs(&args)),
        Command::Inspect(args) => data_command(ensemble::data::commands::inspect(&args)),
        Command::Export(args) => data_command(ensemble::data::commands::export(&args)),
        Command::Plot(args) => data_command(ensemble::data::commands::plot(&args)),
        Command::Serve { dir, listen, token } => serve_dir(&dir, listen, token),
        Command::Run {
            file,
            output,
            duration,
            quiet,
            meta,
            serve,
            serve_token,
        } => {
            let serve = match serve_config(serve, serve_token) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let mut experiment = match config::load(&file) {
                Ok(e) => e,
                Err(errors) => {
                    eprintln!("{errors}");
                    return ExitCode::from(2);
                }
            };
            if let Err(e) = config::metadata::apply_meta_args(&mut experiment.metadata, &meta) {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            if let Some(output) = output {
                experiment.output = output;
            }
            if let Some(duration) = duration {
                experiment.duration = duration;
            }
            let progress = if quiet {
                ProgressMode::Quiet
            } else {
                ProgressMode::detect()
            };
            match run_served_blocking(experiment, shutdown_on_signal(), progress, serve)
                .context("the run could not be carried out")
            {
                Ok(report) => {
                    print!("{}", summary_table(&report.manifest));
                    println!("{}", report.run_dir.display());
                    if report.is_clean() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// A data command's result as an exit code: 0, or the error's (2 bad input, 1 cannot write).
fn data_command(result: Result<(), ensemble::data::DataError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// `ensemble pause|resume|stop|status RUN_DIR`: one command over the run's control socket;
/// prints the state it replied with. 0 accepted, 1 refused or unreachable.
fn control(run_dir: &std::path::Path, command: &str) -> ExitCode {
    match ensemble::control::send_command(run_dir, command) {
        Ok(state) => {
            if command == "status" {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&state).unwrap_or_default()
                );
            } else {
                let total = state["points_total"]
                    .as_u64()
                    .map_or("?".to_string(), |n| n.to_string());
                println!(
                    "{}: {} ({} of {total} points)",
                    command,
                    state["phase"].as_str().unwrap_or("?"),
                    state["points_done"]
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// The `--serve` address and token (from `--serve-token` or the environment), checked.
fn serve_config(
    addr: Option<std::net::SocketAddr>,
    token: Option<String>,
) -> Result<Option<ensemble::web::ServeConfig>, ensemble::web::WebError> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    let token = token.or_else(|| std::env::var(ensemble::web::TOKEN_ENV).ok());
    ensemble::web::ServeConfig::new(addr, token).map(Some)
}

/// `ensemble serve DIR`: serves finished runs until SIGINT or SIGTERM.
fn serve_dir(
    dir: &std::path::Path,
    listen: std::net::SocketAddr,
    token: Option<String>,
) -> ExitCode {
    use ensemble::web::{NoControl, WebServer, files::FileSource};
    let config = match serve_config(Some(listen), token) {
        Ok(Some(c)) => c,
        Ok(None) => return ExitCode::from(2),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let source = match FileSource::open(dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let server = match WebServer::start(
        &config,
        std::sync::Arc::new(source),
        std::sync::Arc::new(NoControl),
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    eprintln!("serving http://{}/", server.addr());
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let signal = runtime.block_on(next_signal());
    eprintln!("{signal}: the view stops");
    drop(server);
    ExitCode::SUCCESS
}

/// `ensemble sim serve`: serves until SIGINT or SIGTERM.
fn sim_serve(
    listen: Option<std::net::SocketAddr>,
    pty: bool,
    profile: ensemble_actors::simulator::Profile,
    faults: &[ensemble_actors::simulator::FaultSpec],
    seed: u64,
) -> ExitCode {
    use ensemble::sim_serve::{Listen, merge_faults, serve};
    let listen = match (listen, pty) {
        (Some(addr), false) => Listen::Tcp(addr),
        _ => Listen::Pty,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let shutdown = async {
        let signal = next_signal().await;
        eprintln!("{signal}: the simulator stops");
    };
    match runtime.block_on(serve(
        listen,
        profile,
        merge_faults(faults),
        seed,
        shutdown,
        &mut std::io::stdout(),
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `ensemble loadtest`: 0 passed, 1 lost rows or fell short (or could not run), 2 bad usage.
fn loadtest(args: &ensemble::loadtest::LoadtestArgs) -> ExitCode {
    let spec = match args.spec() {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let progress = if args.quiet {
        ProgressMode::Quiet
    } else {
        ProgressMode::Totals
    };
    // Injected faults panic on purpose: one line each, not a backtrace.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .unwrap_or_default();
        if message.starts_with("simulated fault") {
            eprintln!("{message}");
        } else {
            default_hook(info);
        }
    }));
    let report = match ensemble::loadtest::run_loadtest(&spec, shutdown_on_signal(), progress)
        .context("the load test could not be carried out")
    {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(1);
        }
    };
    print!("{}", report.table());
    println!("{}", report.run_dir);
    if let Some(path) = &args.json {
        let written = serde_json::to_vec_pretty(&report)
            .map_err(anyhow::Error::from)
            .and_then(|text| std::fs::write(path, text).map_err(anyhow::Error::from))
            .with_context(|| format!("cannot write the JSON report to {}", path.display()));
        if let Err(e) = written {
            eprintln!("error: {e:#}");
            return ExitCode::from(1);
        }
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `ensemble ingest`: runs one worker until SIGINT or SIGTERM, then drains and exits.
fn ingest(args: ensemble::cli::IngestArgs) -> ExitCode {
    use ensemble::ingest::{IngestOptions, default_worker_name};
    use ensemble_actors::sinks::parquet::Codec;
    let compression = match args.compression.as_str() {
        "zstd" => Codec::Zstd,
        "snappy" => Codec::Snappy,
        "none" => Codec::None,
        other => {
            eprintln!("error: --compression: unknown codec `{other}` (zstd, snappy, none)");
            return ExitCode::from(2);
        }
    };
    let security = args.security();
    let mut options = IngestOptions::new(&args.url, &args.stream, args.output, &args.durable);
    options.security = security;
    options.subject_prefix = args.subject_prefix;
    options.worker = args.worker.unwrap_or_else(default_worker_name);
    options.commit_interval = args.commit_interval;
    options.commit_messages = args.commit_messages;
    options.ack_wait = args.ack_wait;
    options.replicas = args.replicas;
    options.parquet.compression = compression;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let shutdown = async {
        let signal = next_signal().await;
        eprintln!("{signal}: finishing parts and acknowledging, then exiting");
    };
    match runtime
        .block_on(ensemble::ingest::run(options, shutdown))
        .context("ingest stopped")
    {
        Ok(summary) => {
            eprintln!(
                "ingest: {} batches stored, {} duplicates skipped, {} rejected, {} commits",
                summary.stored, summary.duplicates, summary.rejected, summary.commits
            );
            if summary.rejected > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Resolves on the first SIGINT or SIGTERM; a second one exits the process at once.
async fn shutdown_on_signal() -> StopReason {
    let first = next_signal().await;
    eprintln!("{first}: stopping; draining and flushing (press Ctrl-C again to exit at once)");
    tokio::spawn(async {
        let second = next_signal().await;
        eprintln!("{second} again: exiting at once; `ensemble recover` can finish the files");
        ensemble::control::restore_terminal();
        std::process::exit(130);
    });
    StopReason::Requested(format!("{first} received"))
}

async fn next_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}
