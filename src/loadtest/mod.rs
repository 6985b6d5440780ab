//! `ensemble loadtest`: runs many simulated instruments into one sink and reports offered
//! versus achieved throughput, losses, sample-to-disk latency, memory and CPU.
//!
//! - `args`: the command-line flags.
//! - `spec`: what to run, from flags or a `[loadtest]` table.
//! - `build`: the spec as a compiled [`Experiment`](crate::config::Experiment).
//! - `report`: the report, its table and its JSON keys.
//!
//! A load test is an ordinary run (`run`) of a generated experiment, so it measures exactly
//! the code path of `ensemble run`.

mod args;
mod build;
mod report;
mod spec;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use ensemble_actors::latency::now_ns;

pub use args::LoadtestArgs;
pub use build::{SINK_NAME, experiment, fault_time, instrument_name};
pub use report::{LoadtestReport, Measured, THROUGHPUT_TOLERANCE};
pub use spec::{InstrumentGroup, LoadSink, LoadtestSpec, SpecError};

use crate::coordinator::StopReason;
use crate::process::{RssSampler, cpu_seconds, peak_rss_mib};
use crate::progress::ProgressMode;
use crate::run::{RunError, run_blocking};

/// Runs a load test to its end (or until `shutdown`) and measures it.
///
/// `spec` must have passed [`LoadtestSpec::check`]. Blocks the calling thread; starts its own
/// actix system.
pub fn run_loadtest<F>(
    spec: &LoadtestSpec,
    shutdown: F,
    progress: ProgressMode,
) -> Result<LoadtestReport, RunError>
where
    F: std::future::Future<Output = StopReason>,
{
    let experiment = experiment(spec);
    let faults_injected = (0..spec.instruments())
        .filter(|&i| fault_time(spec, i).is_some())
        .count();
    let sampler = RssSampler::start(Duration::from_secs(1));
    let (user0, system0) = cpu_seconds();
    let started = Instant::now();
    let began_at_ns = now_ns();
    let stop_asked = Arc::new(AtomicI64::new(i64::MIN));
    let noted = stop_asked.clone();
    let shutdown = async move {
        let reason = shutdown.await;
        noted.store(now_ns(), Ordering::Relaxed);
        reason
    };
    let run = run_blocking(experiment, shutdown, progress)?;
    let ended_at_ns = now_ns();
    let elapsed_s = started.elapsed().as_secs_f64();
    let (user1, system1) = cpu_seconds();
    let measured = Measured {
        elapsed_s,
        cpu_s: (user1 - user0, system1 - system0),
        peak_rss_mib: peak_rss_mib(),
        rss_samples_mib: sampler.finish(),
        faults_injected,
        began_at_ns,
        ended_at_ns,
        stop_asked_at_ns: Some(stop_asked.load(Ordering::Relaxed)).filter(|&t| t != i64::MIN),
    };
    Ok(LoadtestReport::new(spec, &run, measured))
}
