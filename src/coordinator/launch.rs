//! Starting components: one launcher per kind (sink, instrument, stage), in this one place.
//!
//! Each builds its component's actor from the compiled spec and the planned streams, starts it
//! where it belongs, connects it, and returns what the coordinator keeps of a running actor
//! ([`Launched`]). A launcher that cannot start its component says why; the coordinator
//! records that as the component's failure.
//!
//! Where each kind runs:
//! - sinks on the system thread (their actors only hand batches to writer threads);
//! - simulated instruments spread over [`InstrumentArbiters`], one per core;
//! - SCPI instruments on the system thread (their I/O is async and light);
//! - each stage on an arbiter of its own (see [`StageHosts`]).

use std::sync::Arc;

use actix::prelude::*;
use ensemble_actors::batch::StreamEvent;
use ensemble_actors::control::{ComponentExited, Stop, Terminate};
use ensemble_actors::instruments::scpi::{ScpiActor, ScpiInstrumentConfig};
use ensemble_actors::instruments::sim::{
    SimAcquisition, SimFault, SimInstrumentActor, SimInstrumentConfig,
};
use ensemble_actors::link::run_pump;
use ensemble_actors::outputs::Outputs;
use ensemble_actors::sinks::nats::{NatsSinkActor, spawn_publisher};
use ensemble_actors::sinks::null::NullSinkActor;
use ensemble_actors::sinks::parquet::{ParquetSinkActor, WriterPool};
use ensemble_actors::sinks::{SinkContext, SinkInput};
use ensemble_actors::stages::{Faulty, Stage, StageActor, StageError};
use ensemble_actors::stats::LinkStats;

use super::arbiters::InstrumentArbiters;
use super::run_context::RunContext;
use super::stage_hosts::StageHosts;
use super::wiring::StreamPlan;
use crate::config::{
    Experiment, InstrumentKind, InstrumentSpec, SinkKind, SinkSpec, StageSpec, UseStage,
};
use crate::plan::{Driver, Drivers};

/// What the coordinator keeps of a running component's actor.
pub(super) struct Launched {
    /// Whether the actor's mailbox is still open (checked on every supervision tick).
    alive: Box<dyn Fn() -> bool>,
    /// Asks an instrument to stop acquiring and end its stream.
    pub(super) stop: Option<Recipient<Stop>>,
    /// Abandons an instrument's stalled acquisition; taken when sent.
    pub(super) terminate: Option<Recipient<Terminate>>,
}

impl Launched {
    /// A consumer (sink or stage) running at `actor`.
    fn consumer(actor: Recipient<StreamEvent>) -> Self {
        Self {
            alive: Box::new(move || actor.connected()),
            stop: None,
            terminate: None,
        }
    }

    /// An instrument that stops on `stop` and is abandoned on `terminate`.
    fn instrument(stop: Recipient<Stop>, terminate: Recipient<Terminate>) -> Self {
        let watched = stop.clone();
        Self {
            alive: Box::new(move || watched.connected()),
            stop: Some(stop),
            terminate: Some(terminate),
        }
    }

    /// Whether the actor still runs.
    pub(super) fn is_alive(&self) -> bool {
        (self.alive)()
    }
}

/// What every sink of the run is told about it.
pub(super) fn sink_context(experiment: &Experiment, run: &RunContext) -> SinkContext {
    SinkContext {
        run_dir: run.run_dir.clone(),
        run_id: run.run_id.clone(),
        experiment: experiment.name.clone(),
        metadata: serde_json::to_string(&experiment.metadata).unwrap_or_else(|_| "{}".to_string()),
    }
}

/// Starts sink `spec` on the system thread and the pump of every link into it.
pub(super) fn sink(
    spec: &SinkSpec,
    context: &SinkContext,
    streams: &mut [StreamPlan],
    exited: Recipient<ComponentExited>,
) -> Result<Launched, String> {
    let inputs: Vec<SinkInput> = spec
        .inputs
        .iter()
        .filter_map(|i| streams.iter().find(|s| *s.name == **i))
        .map(|s| SinkInput {
            stream: s.name.clone(),
            schema: s.schema.clone(),
            component: s.component.clone(),
        })
        .collect();
    let names = || inputs.iter().map(|i| i.stream.clone()).collect();
    let name = spec.name.clone();
    let events: Recipient<StreamEvent> = match &spec.kind {
        SinkKind::Parquet(cfg) => {
            let (pool, failures) = WriterPool::start(cfg, context, &inputs)
                .map_err(|e| format!("sink `{}`: {e}", spec.name))?;
            ParquetSinkActor::new(name, pool, names(), failures, exited)
                .start()
                .recipient()
        }
        SinkKind::Null(_) => NullSinkActor::new(name, names(), exited)
            .start()
            .recipient(),
        SinkKind::Nats(cfg) => {
            let (publisher, failures) =
                spawn_publisher(cfg.clone(), spec.name.clone(), context, &inputs);
            NatsSinkActor::new(name, publisher, names(), failures, exited)
                .start()
                .recipient()
        }
    };
    for link in streams
        .iter_mut()
        .flat_map(|s| s.links.iter_mut())
        .filter(|l| !l.to_stage && l.sink == spec.name)
    {
        if let Some(rx) = link.receiver.take() {
            tokio::spawn(run_pump(rx, events.clone()));
        }
    }
    Ok(Launched::consumer(events))
}

/// Starts instrument `spec`, producing `stream`, and registers it with the plan's `drivers`.
pub(super) fn instrument(
    spec: &InstrumentSpec,
    stream: &StreamPlan,
    run: &RunContext,
    arbiters: &mut InstrumentArbiters,
    drivers: &Drivers,
    exited: Recipient<ComponentExited>,
) -> Result<Launched, String> {
    match &spec.kind {
        InstrumentKind::Sim(cfg) => {
            Ok(sim(&spec.name, cfg, stream, run, arbiters, drivers, exited))
        }
        InstrumentKind::Scpi(cfg) => scpi(&spec.name, cfg, stream, run, drivers, exited),
    }
}

/// A simulated instrument, on the next of the instrument arbiters; the plan reads and sets it
/// through its probe.
fn sim(
    name: &str,
    cfg: &SimInstrumentConfig,
    stream: &StreamPlan,
    run: &RunContext,
    arbiters: &mut InstrumentArbiters,
    drivers: &Drivers,
    exited: Recipient<ComponentExited>,
) -> Launched {
    let mut acquisition = SimAcquisition::new(
        cfg,
        run.start_ns,
        run.clock_start,
        stream.expected_rows,
        stream.outputs(),
    );
    acquisition.follow_pauses(run.control.pauses(), run.pause_streams);
    acquisition.start_after(run.launched());
    let actor = SimInstrumentActor::new(name.to_string(), acquisition, exited);
    drivers.insert(name, Driver::Sim(actor.probe()));
    let addr = SimInstrumentActor::start_in_arbiter(&arbiters.next_handle(), move |_| actor);
    Launched::instrument(addr.clone().recipient(), addr.recipient())
}

/// An SCPI instrument, on the system thread; its session report follows into the stream's
/// report slot, and the plan drives it through its probe (from the plan's own task). With
/// `pause_streams` it stops polling while the plan is paused.
fn scpi(
    name: &str,
    cfg: &ScpiInstrumentConfig,
    stream: &StreamPlan,
    run: &RunContext,
    drivers: &Drivers,
    exited: Recipient<ComponentExited>,
) -> Result<Launched, String> {
    let mut actor = ScpiActor::new(name.to_string(), cfg.clone(), stream.outputs(), exited)
        .map_err(|e| e.to_string())?;
    if run.pause_streams {
        actor.pause_on(run.control.pauses());
    }
    stream.report.set_scpi(actor.report());
    drivers.insert(name, Driver::Scpi(actor.probe()));
    let addr = actor.start();
    Ok(Launched::instrument(
        addr.clone().recipient(),
        addr.recipient(),
    ))
}

/// Starts stage `spec` on a new arbiter, reading `upstream` and producing `stream`; its stream
/// continues where it stands (at the next `seq`, after a restart), and its input link's pump
/// delivers to it from now on.
pub(super) fn stage(
    spec: &StageSpec,
    stream: &StreamPlan,
    upstream: &StreamPlan,
    hosts: &mut StageHosts,
    exited: Recipient<ComponentExited>,
) -> Result<Launched, String> {
    let arbiter = hosts.new_arbiter(&spec.name);
    let launch = StageLaunch {
        arbiter,
        name: &spec.name,
        next_seq: stream.stats.rows(),
        restarts: stream.stats.restarts(),
        fault: spec.fault.as_ref(),
        outputs: stream.outputs(),
        exited,
        input: upstream
            .links
            .iter()
            .find(|l| l.to_stage && l.sink == spec.name)
            .map(|l| l.stats.clone()),
    };
    let actor = launch
        .spawn(spec)
        .map_err(|e| format!("cannot build the stage: {e}"))?;
    hosts.serve(&spec.name, actor.clone());
    Ok(Launched::consumer(actor))
}

/// What a stage actor needs besides the stage itself.
struct StageLaunch<'a> {
    /// The thread it runs on.
    arbiter: ArbiterHandle,
    /// The component's name.
    name: &'a str,
    /// `seq` of its first output row: the stream continues where the failed stage left it.
    next_seq: u64,
    /// Restarts so far, for a fault's `times`.
    restarts: u64,
    /// The stage's injected fault, if its table has one.
    fault: Option<&'a SimFault>,
    /// Where its output goes.
    outputs: Outputs,
    /// Who is told when it ends.
    exited: Recipient<ComponentExited>,
    /// The counters of the link into the stage, where a rejected batch is counted as dropped.
    input: Option<Arc<LinkStats>>,
}

impl StageLaunch<'_> {
    /// Builds the stage of `spec` for its resolved input and starts its actor.
    fn spawn(self, spec: &StageSpec) -> Result<Recipient<StreamEvent>, StageError> {
        spec.kind.build(&spec.input, self)
    }
}

impl UseStage for StageLaunch<'_> {
    type Output = Recipient<StreamEvent>;

    /// Makes `stage`'s stream continue at `next_seq` and starts its actor on the arbiter.
    fn stage<S: Stage + Send>(self, stage: S) -> Recipient<StreamEvent> {
        let mut stage = Faulty::new(stage, self.fault, self.restarts);
        stage.continue_at(self.next_seq);
        let (name, outputs, exited) = (self.name.to_string(), self.outputs, self.exited);
        let input = self.input;
        StageActor::start_in_arbiter(&self.arbiter, move |_| {
            let actor = StageActor::new(name, stage, outputs, exited);
            match input {
                Some(stats) => actor.counting_losses_on(stats),
                None => actor,
            }
        })
        .recipient()
    }
}
