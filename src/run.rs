//! Running an experiment: run directory, manifest, coordinator, progress, outcome.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use chrono::{DateTime, Utc};
use ensemble_actors::budget::MemoryBudget;
use tokio::sync::oneshot;

use crate::config::Experiment;
use crate::control::{ControlSocket, RunControl};
use crate::coordinator::{
    Coordinator, RunContext, StopReason, StopRun, StreamPlan, StreamView, plan_streams,
};
use crate::manifest::{Manifest, MemoryEntry, SinkEntry};
use crate::memory::{MemoryCap, MemoryGovernor};
use crate::progress::{Progress, ProgressMode};

/// Why a run could not be carried out (as opposed to a run that ended with status `failed`).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The run directory could not be made (or already exists: runs never reuse one).
    #[error("cannot create the run directory {path}: {source}")]
    RunDirectory {
        /// The directory.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// The manifest could not be written.
    #[error("cannot write the run manifest in {path}: {source}")]
    Manifest {
        /// The run directory.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// A stage's stream could not be planned (a bug: the compiler checks the same thing).
    #[error("cannot plan the run's streams: {0}")]
    Wiring(#[from] crate::coordinator::WiringError),
    /// The live web view could not start (`--serve`).
    #[error("cannot serve the live view: {0}")]
    Serve(#[from] crate::web::WebError),
    /// The coordinator went away without an outcome (a bug: it should never happen).
    #[error("the coordinator ended without reporting how the run ended")]
    NoOutcome,
}

/// A finished run: where it is and what its manifest says.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The final manifest, as written to `run.json`.
    pub manifest: Manifest,
    /// What each sink reported, by name (with its latency histogram, which the manifest omits).
    pub sinks: std::collections::BTreeMap<String, crate::coordinator::SinkOutcome>,
    /// When the last batch of any stream was emitted (wall clock, ns since the Unix epoch).
    pub last_emitted_at_ns: Option<i64>,
    /// When the last producer to start started producing (wall clock, ns since the Unix
    /// epoch), and how many producers started at all.
    pub last_started_at_ns: Option<i64>,
    /// Producers that started producing.
    pub producers_started: usize,
    /// When the last stream was ended (wall clock, ns since the Unix epoch).
    pub last_ended_at_ns: Option<i64>,
}

impl RunReport {
    /// Whether the run ended cleanly (completed, or stopped on request with everything saved).
    pub fn is_clean(&self) -> bool {
        self.manifest.status == "completed" || self.manifest.status == "stopped"
    }
}

/// A new run id: UTC start time to the millisecond, then random characters. Sorts by start time.
pub fn new_run_id(started_at: DateTime<Utc>) -> String {
    let random = ulid::Ulid::new().to_string();
    format!(
        "{}-{}",
        started_at.format("%Y%m%dT%H%M%S%.3fZ"),
        random[random.len() - 6..].to_lowercase()
    )
}

fn create_run_dir(output: &Path, run_id: &str) -> Result<PathBuf, RunError> {
    let run_dir = output.join(run_id);
    let err = |source| RunError::RunDirectory {
        path: run_dir.clone(),
        source,
    };
    std::fs::create_dir_all(output).map_err(err)?;
    // `create_dir`, not `create_dir_all`: an existing run directory is never reused.
    std::fs::create_dir(&run_dir).map_err(err)?;
    Ok(run_dir)
}

fn initial_manifest(experiment: &Experiment, run_id: &str, started_at: DateTime<Utc>) -> Manifest {
    Manifest {
        run_id: run_id.to_string(),
        experiment: experiment.name.clone(),
        description: experiment.description.clone(),
        metadata: experiment.metadata.clone(),
        status: "running".to_string(),
        stop_reason: None,
        started_at,
        stopped_at: None,
        ensemble_version: env!("CARGO_PKG_VERSION").to_string(),
        config_path: experiment.source_path.clone(),
        config: experiment.source_text.clone(),
        streams: Default::default(),
        sinks: experiment
            .sinks
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    SinkEntry {
                        sink_type: match s.kind {
                            crate::config::SinkKind::Parquet(_) => "parquet".to_string(),
                            crate::config::SinkKind::Null(_) => "null".to_string(),
                            crate::config::SinkKind::Nats(_) => "nats".to_string(),
                        },
                        inputs: s.inputs.clone(),
                        delivery: match s.delivery {
                            ensemble_actors::link::Delivery::Lossless => "lossless",
                            ensemble_actors::link::Delivery::BestEffort => "best_effort",
                        }
                        .to_string(),
                        error: None,
                    },
                )
            })
            .collect(),
        events: Vec::new(),
        interruptions: Vec::new(),
        memory: None,
    }
}

/// Runs `experiment` until its plan ends or `shutdown` resolves, then drains and finishes.
///
/// Must be called inside an actix `System` whose runtime is multi-threaded (see
/// [`run_blocking`]). Returns once every sink has finished its files and the final manifest is
/// written.
pub async fn run(
    experiment: Experiment,
    shutdown: impl Future<Output = StopReason>,
    progress: ProgressMode,
) -> Result<RunReport, RunError> {
    run_served(experiment, shutdown, progress, None).await
}

/// [`run`], and with `serve` the live web view beside it (`ensemble run --serve`): every stream
/// gets a tap, the taps' fixed budget is taken from the run's memory budget for the whole run,
/// and the page's Stop takes the same path as `shutdown`. Prints `serving http://ADDR/` on
/// stderr once the server listens.
pub async fn run_served(
    experiment: Experiment,
    shutdown: impl Future<Output = StopReason>,
    progress: ProgressMode,
    serve: Option<crate::web::ServeConfig>,
) -> Result<RunReport, RunError> {
    let experiment = Arc::new(experiment);
    let started_at = Utc::now();
    // Row 0 of every paced stream is stamped `started_at` and due at `clock_start`: the two
    // are read together. Read after planning the streams and writing the manifest (0.2-0.4 s
    // for 10,000 streams), every sample was stamped that much earlier than it was due, and
    // every sample-to-durable latency was that much longer than it really was.
    let clock_start = tokio::time::Instant::now();
    let run_id = new_run_id(started_at);
    let cap = MemoryCap::from_mb(experiment.max_memory_mb);
    let budget = MemoryBudget::new(cap.initial_in_flight_limit());
    let mut streams = plan_streams(&experiment, &budget)?;
    let view_bytes = crate::web::view_budget_bytes(experiment.max_memory_mb);
    let view_memory = serve.as_ref().map(|_| {
        crate::coordinator::attach_taps(&mut streams, view_bytes);
        budget.force_reserve(view_bytes)
    });
    let run_dir = create_run_dir(&experiment.output, &run_id)?;
    let manifest_err = |source| RunError::Manifest {
        path: run_dir.clone(),
        source,
    };

    let views: Vec<StreamView> = streams.iter().map(StreamPlan::view).collect();
    let mut manifest = initial_manifest(&experiment, &run_id, started_at);
    manifest.update_streams(&views);
    manifest.write(&run_dir).map_err(manifest_err)?;

    let control = RunControl::new();
    let context = RunContext {
        run_id: run_id.clone(),
        run_dir: run_dir.clone(),
        start_ns: started_at.timestamp_nanos_opt().unwrap_or(0),
        clock_start,
        control: control.clone(),
        pause_streams: experiment.pause_streams,
        launched: Arc::new(tokio::sync::watch::channel(false).0),
    };
    // `p`/`r` from the terminal when stdin is a TTY and progress is shown (a program that
    // embeds runs passes `ProgressMode::Quiet` to keep its terminal); the terminal is given
    // back, and the key reader ends, when this is dropped at the end of the run.
    let _keys = (progress != ProgressMode::Quiet)
        .then(|| crate::control::TerminalKeys::start(control.clone()))
        .flatten();
    // Without a socket the run still goes on (Ctrl-C still stops it); say why.
    let socket = ControlSocket::bind(&run_dir, control.clone())
        .inspect_err(|e| tracing::warn!("{e}; `ensemble pause|resume|stop` cannot reach this run."))
        .ok();
    let server = match &serve {
        Some(config) => {
            let live = crate::web::live::LiveSource::new(crate::web::live::LiveRun {
                run_id: run_id.clone(),
                run_dir: run_dir.clone(),
                experiment: experiment.name.clone(),
                started_at,
                duration: matches!(experiment.plan, crate::config::Plan::Stream)
                    .then_some(experiment.duration),
                max_memory_mb: experiment.max_memory_mb,
                streams: views.clone(),
                budget: budget.clone(),
                view_budget_bytes: view_bytes,
            });
            let server =
                crate::web::WebServer::start(config, Arc::new(live), Arc::new(control.clone()))?;
            eprintln!("serving http://{}/", server.addr());
            Some(server)
        }
        None => None,
    };
    let governor = MemoryGovernor::start(budget.clone(), cap);
    let (outcome_tx, mut outcome_rx) = oneshot::channel();
    let coordinator = Coordinator::new(experiment.clone(), context, streams, outcome_tx).start();
    let display = Progress::start(views.clone(), budget.clone(), progress);

    tokio::pin!(shutdown);
    let (mut signalled, mut stop_asked) = (false, false);
    let outcome = loop {
        tokio::select! {
            outcome = &mut outcome_rx => break outcome,
            reason = &mut shutdown, if !signalled => {
                signalled = true;
                coordinator.do_send(StopRun(reason));
            }
            by = control.stop_requested(), if !stop_asked => {
                stop_asked = true;
                coordinator.do_send(StopRun(StopReason::Requested(format!("stop asked by {by}"))));
            }
        }
    }
    .map_err(|_| RunError::NoOutcome)?;
    drop(socket);
    display.finish().await;
    drop((server, view_memory));

    manifest.record_outcome(&outcome, &views);
    manifest.interruptions = control.interruptions();
    manifest.memory = Some(MemoryEntry::read(
        experiment.max_memory_mb,
        &budget,
        &governor,
    ));
    drop(governor);
    manifest.write(&run_dir).map_err(manifest_err)?;
    publish_final_manifest(&experiment, &manifest).await;
    if experiment.thumbnails {
        draw_thumbnails(&run_dir, &manifest.run_id).await;
    }
    Ok(RunReport {
        run_dir,
        manifest,
        sinks: outcome.sinks,
        last_emitted_at_ns: views
            .iter()
            .filter_map(|v| v.stats.last_emitted_at_ns())
            .max(),
        last_started_at_ns: views.iter().filter_map(|v| v.stats.started_at_ns()).max(),
        producers_started: views
            .iter()
            .filter(|v| v.stats.started_at_ns().is_some())
            .count(),
        last_ended_at_ns: views.iter().filter_map(|v| v.stats.ended_at_ns()).max(),
    })
}

/// Hands the final manifest to every `nats` sink's JetStream (subject
/// `PREFIX.RUN._manifest.final`), so that `ensemble ingest` can write the same `run.json`.
/// Best effort, at most 10 s per sink: the run's data is already stored or counted.
async fn publish_final_manifest(experiment: &Experiment, manifest: &Manifest) {
    use ensemble_actors::sinks::nats::{codec::ControlKind, publish_control};
    for sink in &experiment.sinks {
        let crate::config::SinkKind::Nats(cfg) = &sink.kind else {
            continue;
        };
        let Ok(json) = serde_json::to_vec_pretty(manifest) else {
            continue;
        };
        let publish = publish_control(cfg, &sink.name, &manifest.run_id, ControlKind::Final, json);
        let result =
            tokio::time::timeout(cfg.retry_for.min(Duration::from_secs(10)), publish).await;
        if let Err(e) = result
            .map_err(|_| "timed out".to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
        {
            tracing::warn!(component_id = %sink.name, run_id = %manifest.run_id, "Cannot publish the final manifest: {e}.");
        }
    }
}

/// Draws `plots/STREAM.png` per stream once the data is safe (the final manifest is written),
/// off the actor threads. A failure costs only the thumbnail: it is logged, the run stands.
async fn draw_thumbnails(run_dir: &Path, run_id: &str) {
    use crate::data::thumbnails::{THUMBNAIL_SIZE, draw_thumbnails};
    let dir = run_dir.to_path_buf();
    match tokio::task::spawn_blocking(move || draw_thumbnails(&dir, THUMBNAIL_SIZE)).await {
        Ok(Ok(done)) => {
            for (stream, why) in done.skipped {
                tracing::warn!(run_id, stream, "No thumbnail for this stream: {why}.");
            }
        }
        Ok(Err(e)) => tracing::warn!(run_id, "Cannot draw the thumbnails: {e}."),
        Err(e) => tracing::warn!(run_id, "Drawing the thumbnails failed: {e}."),
    }
}

/// Runs `experiment` in a new actix system on a multi-threaded tokio runtime, blocking the
/// calling thread until the run has finished.
///
/// # Panics
/// If the operating system refuses to start the runtime's threads.
pub fn run_blocking<F>(
    experiment: Experiment,
    shutdown: F,
    progress: ProgressMode,
) -> Result<RunReport, RunError>
where
    F: Future<Output = StopReason>,
{
    run_served_blocking(experiment, shutdown, progress, None)
}

/// [`run_blocking`] with the live web view ([`run_served`]).
///
/// # Panics
/// If the operating system refuses to start the runtime's threads.
pub fn run_served_blocking<F>(
    experiment: Experiment,
    shutdown: F,
    progress: ProgressMode,
    serve: Option<crate::web::ServeConfig>,
) -> Result<RunReport, RunError>
where
    F: Future<Output = StopReason>,
{
    let system = actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("the OS lets a process start a few threads")
    });
    system.block_on(run_served(experiment, shutdown, progress, serve))
}

/// A shutdown that never comes: the run ends when its plan does.
pub async fn never() -> StopReason {
    std::future::pending().await
}

/// A shutdown `after` the given time, as if an operator stopped the run.
pub async fn after(delay: std::time::Duration) -> StopReason {
    tokio::time::sleep(delay).await;
    StopReason::Requested(format!("stopped after {delay:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_sort_by_start_time_and_are_unique() {
        let t0 = Utc::now();
        let t1 = t0 + chrono::Duration::milliseconds(1);
        let a = new_run_id(t0);
        let b = new_run_id(t1);
        assert!(a < b, "{a} < {b}");
        assert_ne!(new_run_id(t0), new_run_id(t0));
    }

    #[test]
    fn an_existing_run_directory_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        create_run_dir(dir.path(), "x").expect("first");
        let err = create_run_dir(dir.path(), "x").expect_err("second");
        assert!(err.to_string().contains("x"), "{err}");
    }
}
