//! The coordinator actor: starts every component, supervises it, and stops the run in order.
//!
//! Stop is a message: instruments stop producing and end their streams, the end markers follow
//! the data through every link, each sink finishes its files once all its inputs ended, and the
//! coordinator reports the outcome once every sink has reported.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use ensemble_actors::batch::StreamEvent;
use ensemble_actors::control::{ComponentExited, ExitOutcome, Flush, SinkReport, Stop, Terminate};
use ensemble_actors::instruments::sim::{SimAcquisition, SimInstrumentActor};
use ensemble_actors::link::run_pump;
use ensemble_actors::sinks::nats::{NatsSinkActor, spawn_publisher};
use ensemble_actors::sinks::null::NullSinkActor;
use ensemble_actors::sinks::parquet::{ParquetSinkActor, WriterPool};
use ensemble_actors::sinks::{SinkContext, SinkInput};
use tokio::sync::oneshot;

use super::arbiters::InstrumentArbiters;
use super::restarts::{RestartDecision, RestartTracker};
use super::stall::StallWatch;

mod plan_run;
mod stage_run;
use super::wiring::StreamPlan;
use crate::config::{Experiment, InstrumentKind, InstrumentSpec, OnFailure, SinkKind};

/// How often the coordinator checks that its components are still alive.
const SUPERVISION_TICK: Duration = Duration::from_millis(200);

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// The plan ran to its end.
    Completed,
    /// Stopped early on request (Ctrl-C, SIGTERM); everything acquired was saved.
    Stopped,
    /// A component failed beyond its policy, or a sink could not write.
    Failed,
}

/// Why the run is asked to stop.
#[derive(Debug, Clone)]
pub enum StopReason {
    /// An operator asked (signal): status `stopped`.
    Requested(String),
    /// Something failed: status `failed`.
    Failure(String),
    /// The plan ended (a stream plan's duration passed, or a point plan's last point is done):
    /// status `completed`.
    PlanEnded,
}

/// Sent to the coordinator to stop the run gracefully.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct StopRun(pub StopReason);

/// Something that happened to a component during the run, for the manifest.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// Which component.
    pub component: String,
    /// `failed`, `restarting`, `restarted`, `gave_up`, `stopped`, `still_running`.
    pub event: String,
    /// Details (the error text, the backoff).
    pub detail: String,
}

/// The end result the coordinator hands back.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// How the run ended.
    pub status: RunStatus,
    /// Why it stopped early, if it did.
    pub stop_reason: Option<String>,
    /// Per sink: its report (if it finished) and its error (if it failed).
    pub sinks: BTreeMap<String, SinkOutcome>,
    /// Restarts, failures and other events in order.
    pub events: Vec<RunEvent>,
}

/// What one sink ended with.
#[derive(Debug, Clone, Default)]
pub struct SinkOutcome {
    /// What it wrote, once it finished.
    pub report: Option<SinkReport>,
    /// Its first error.
    pub error: Option<String>,
}

/// The fixed facts of a run every component needs.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// The run's id.
    pub run_id: String,
    /// The run directory.
    pub run_dir: PathBuf,
    /// Wall-clock start, ns since the Unix epoch: the timestamp of every stream's row 0.
    pub start_ns: i64,
    /// The same moment on the monotonic clock.
    pub clock_start: tokio::time::Instant,
    /// The run's control handle: pause, resume, stop and the plan's state.
    pub control: crate::control::RunControl,
}

#[derive(Debug)]
enum SlotState {
    Running,
    /// Seen gone without a report once; failed if still so at the next tick.
    Suspect,
    Restarting(SpawnHandle),
    Done,
}

impl SlotState {
    /// Feeds the liveness tick: returns `true` when the actor was seen gone twice in a row
    /// without a report (the first time, its report may still be on the way).
    fn observe(&mut self, alive: bool) -> bool {
        match self {
            SlotState::Running if !alive => {
                *self = SlotState::Suspect;
                false
            }
            SlotState::Suspect if !alive => true,
            SlotState::Suspect => {
                *self = SlotState::Running;
                false
            }
            _ => false,
        }
    }
}

struct InstrumentSlot {
    spec: InstrumentSpec,
    stream: usize,
    stop: Option<Recipient<Stop>>,
    /// Abandons a stalled acquisition.
    terminate: Option<Recipient<Terminate>>,
    state: SlotState,
    restarts: RestartTracker,
    stall: StallWatch,
}

struct SinkSlot {
    alive: Option<Recipient<ensemble_actors::control::Flush>>,
    outcome: SinkOutcome,
    done: bool,
    suspect: bool,
}

/// The coordinator. Build it with [`Coordinator::new`] and start it; it reports on `outcome`.
pub struct Coordinator {
    experiment: Arc<Experiment>,
    run: RunContext,
    streams: Vec<StreamPlan>,
    instruments: BTreeMap<String, InstrumentSlot>,
    sinks: BTreeMap<String, SinkSlot>,
    stopping: Option<StopReason>,
    events: Vec<RunEvent>,
    outcome: Option<oneshot::Sender<RunOutcome>>,
    stop_started: Option<Instant>,
    /// Plan support (see `plan_run`): running instruments for the executor, its stop flag, and
    /// a stop requested while it finishes its current point.
    plan: plan_run::PlanState,
    /// The threads instrument actors run on (not the system thread, which the sinks' actors
    /// and the coordinator need).
    arbiters: InstrumentArbiters,
    /// Processing stages (see `stage_run`): their slots and arbiters.
    stages: stage_run::Stages,
}

impl Coordinator {
    /// A coordinator for `experiment` over the planned `streams`; the outcome goes to `outcome`.
    pub fn new(
        experiment: Arc<Experiment>,
        run: RunContext,
        streams: Vec<StreamPlan>,
        outcome: oneshot::Sender<RunOutcome>,
    ) -> Self {
        let instruments = experiment
            .instruments
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                (
                    spec.name.clone(),
                    InstrumentSlot {
                        spec: spec.clone(),
                        stream: i,
                        stop: None,
                        terminate: None,
                        state: SlotState::Done,
                        restarts: RestartTracker::new(spec.supervision),
                        stall: StallWatch::new(spec.stall_timeout, Instant::now()),
                    },
                )
            })
            .collect();
        let sinks = experiment
            .sinks
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    SinkSlot {
                        alive: None,
                        outcome: SinkOutcome::default(),
                        done: false,
                        suspect: false,
                    },
                )
            })
            .collect();
        let stages = stage_run::Stages::new(&experiment, &streams);
        Self {
            stages,
            experiment,
            run,
            streams,
            instruments,
            sinks,
            stopping: None,
            events: Vec::new(),
            outcome: Some(outcome),
            stop_started: None,
            plan: plan_run::PlanState::default(),
            arbiters: InstrumentArbiters::per_core(),
        }
    }

    fn event(&mut self, component: &str, event: &'static str, detail: String) {
        match event {
            "failed" | "gave_up" | "still_running" => {
                tracing::error!(component_id = component, "{event}: {detail}")
            }
            _ => tracing::warn!(component_id = component, "{event}: {detail}"),
        }
        self.events.push(RunEvent {
            at: Utc::now(),
            component: component.to_string(),
            event: event.to_string(),
            detail,
        });
    }

    fn start_sinks(&mut self, ctx: &mut Context<Self>) -> Result<(), String> {
        let me = ctx.address().recipient::<ComponentExited>();
        let sink_context = SinkContext {
            run_dir: self.run.run_dir.clone(),
            run_id: self.run.run_id.clone(),
            experiment: self.experiment.name.clone(),
            metadata: serde_json::to_string(&self.experiment.metadata)
                .unwrap_or_else(|_| "{}".to_string()),
        };
        for spec in &self.experiment.sinks {
            let inputs: Vec<SinkInput> = spec
                .inputs
                .iter()
                .filter_map(|i| self.streams.iter().find(|s| *s.name == **i))
                .map(|s| SinkInput {
                    stream: s.name.clone(),
                    schema: s.schema.clone(),
                    component: s.component.clone(),
                })
                .collect();
            let (events, alive): (Recipient<StreamEvent>, Recipient<Flush>) = match &spec.kind {
                SinkKind::Parquet(cfg) => {
                    let (pool, failures_rx) = WriterPool::start(cfg, &sink_context, &inputs)
                        .map_err(|e| format!("sink `{}`: {e}", spec.name))?;
                    let addr = ParquetSinkActor::new(
                        spec.name.clone(),
                        pool,
                        inputs.iter().map(|i| i.stream.clone()).collect(),
                        failures_rx,
                        me.clone(),
                    )
                    .start();
                    (addr.clone().recipient(), addr.recipient())
                }
                SinkKind::Null(_) => {
                    let addr = NullSinkActor::new(
                        spec.name.clone(),
                        inputs.iter().map(|i| i.stream.clone()).collect(),
                        me.clone(),
                    )
                    .start();
                    (addr.clone().recipient(), addr.recipient())
                }
                SinkKind::Nats(cfg) => {
                    let (publisher, failures_rx) =
                        spawn_publisher(cfg.clone(), spec.name.clone(), &sink_context, &inputs);
                    let addr = NatsSinkActor::new(
                        spec.name.clone(),
                        publisher,
                        inputs.iter().map(|i| i.stream.clone()).collect(),
                        failures_rx,
                        me.clone(),
                    )
                    .start();
                    (addr.clone().recipient(), addr.recipient())
                }
            };
            for stream in &mut self.streams {
                for link in stream.links.iter_mut().filter(|l| l.sink == spec.name) {
                    if let Some(rx) = link.receiver.take() {
                        tokio::spawn(run_pump(rx, events.clone()));
                    }
                }
            }
            if let Some(slot) = self.sinks.get_mut(&spec.name) {
                slot.alive = Some(alive);
            }
        }
        Ok(())
    }

    fn start_instrument(&mut self, name: &str, ctx: &mut Context<Self>) {
        let me = ctx.address().recipient::<ComponentExited>();
        let Some(slot) = self.instruments.get_mut(name) else {
            return;
        };
        let stream = &self.streams[slot.stream];
        let outputs = stream.outputs();
        let (stop, terminate) = match &slot.spec.kind {
            InstrumentKind::Sim(cfg) => {
                let mut acquisition = SimAcquisition::new(
                    cfg,
                    self.run.start_ns,
                    self.run.clock_start,
                    stream.expected_rows,
                    outputs,
                );
                acquisition.follow_pauses(self.run.control.pauses(), self.experiment.pause_streams);
                let actor = SimInstrumentActor::new(name.to_string(), acquisition, me);
                self.plan
                    .drivers
                    .insert(name, crate::plan::Driver::Sim(actor.probe()));
                let addr =
                    SimInstrumentActor::start_in_arbiter(&self.arbiters.next_handle(), move |_| {
                        actor
                    });
                (addr.clone().recipient(), addr.recipient())
            }
            InstrumentKind::Scpi(cfg) => {
                match plan_run::start_scpi(
                    name,
                    cfg,
                    outputs,
                    &stream.report,
                    &self.plan.drivers,
                    self.experiment
                        .pause_streams
                        .then(|| self.run.control.pauses()),
                    me,
                ) {
                    Some(stop) => stop,
                    None => return,
                }
            }
        };
        slot.stop = Some(stop);
        slot.terminate = Some(terminate);
        slot.state = SlotState::Running;
        slot.stall
            .restart(stream.stats.heartbeats(), Instant::now());
    }

    /// Ends a stream whose producer can no longer do it, so its sinks can finish.
    fn end_stream_for(&self, name: &str) {
        if let Some(slot) = self.instruments.get(name) {
            let outputs = self.streams[slot.stream].outputs();
            actix::spawn(async move { outputs.end().await });
        }
    }

    fn instrument_failed(&mut self, name: &str, reason: String, ctx: &mut Context<Self>) {
        self.event(name, "failed", reason.clone());
        let Some(slot) = self.instruments.get_mut(name) else {
            return;
        };
        slot.stop = None;
        slot.terminate = None;
        if self.stopping.is_some() {
            slot.state = SlotState::Done;
            self.end_stream_for(name);
            self.maybe_finish();
            return;
        }
        match slot.spec.supervision.on_failure {
            OnFailure::Restart => match slot.restarts.on_failure(Instant::now()) {
                RestartDecision::RestartAfter(delay) => {
                    let owned = name.to_string();
                    let handle = ctx.run_later(delay, move |act, ctx| act.restart(&owned, ctx));
                    slot.state = SlotState::Restarting(handle);
                    self.event(name, "restarting", format!("in {delay:?}"));
                }
                RestartDecision::GiveUp => {
                    slot.state = SlotState::Done;
                    let detail = format!(
                        "more than {} restarts within {:?}",
                        slot.spec.supervision.max_restarts, slot.spec.supervision.restart_window
                    );
                    self.event(name, "gave_up", detail.clone());
                    self.end_stream_for(name);
                    self.begin_stop(
                        StopReason::Failure(format!("{name}: {detail}: {reason}")),
                        ctx,
                    );
                }
            },
            OnFailure::Abort => {
                slot.state = SlotState::Done;
                self.end_stream_for(name);
                self.begin_stop(StopReason::Failure(format!("{name}: {reason}")), ctx);
            }
            OnFailure::Continue => {
                slot.state = SlotState::Done;
                self.end_stream_for(name);
                self.maybe_finish();
            }
        }
    }

    fn restart(&mut self, name: &str, ctx: &mut Context<Self>) {
        if self.stopping.is_some() {
            return;
        }
        if let Some(slot) = self.instruments.get(name) {
            self.streams[slot.stream].stats.record_restart();
        }
        self.event(name, "restarted", String::new());
        self.start_instrument(name, ctx);
    }

    fn begin_stop(&mut self, reason: StopReason, ctx: &mut Context<Self>) {
        match (&self.stopping, &reason) {
            (None, _) => {}
            // A failure during a requested stop still makes the run a failure.
            (Some(StopReason::Requested(_) | StopReason::PlanEnded), StopReason::Failure(_)) => {
                self.stopping = Some(reason);
                return;
            }
            (Some(_), _) => return,
        }
        tracing::info!(run_id = %self.run.run_id, "Stopping: {reason:?}.");
        self.stopping = Some(reason);
        self.plan.stop_executor();
        self.stop_started = Some(Instant::now());
        let mut to_end = Vec::new();
        for (name, slot) in &mut self.instruments {
            match std::mem::replace(&mut slot.state, SlotState::Done) {
                SlotState::Running | SlotState::Suspect => {
                    slot.state = SlotState::Running;
                    if let Some(stop) = &slot.stop {
                        stop.do_send(Stop);
                    }
                }
                SlotState::Restarting(handle) => {
                    ctx.cancel_future(handle);
                    to_end.push(name.clone());
                }
                SlotState::Done => {}
            }
        }
        for name in to_end {
            self.end_stream_for(&name);
        }
        self.stop_stages(ctx);
        let grace = self.experiment.grace_period;
        ctx.run_later(grace, |act, _| act.name_stragglers());
        self.maybe_finish();
    }

    fn name_stragglers(&mut self) {
        if self.outcome.is_none() {
            return;
        }
        let running: Vec<String> = self
            .instruments
            .iter()
            .filter(|(_, s)| !matches!(s.state, SlotState::Done))
            .map(|(n, _)| n.clone())
            .chain(self.stages.running())
            .chain(
                self.sinks
                    .iter()
                    .filter(|(_, s)| !s.done)
                    .map(|(n, _)| n.clone()),
            )
            .collect();
        let detail = format!(
            "still draining after the grace period of {:?}; waiting (a second Ctrl-C exits at once)",
            self.experiment.grace_period
        );
        for name in running {
            self.event(&name, "still_running", detail.clone());
        }
    }

    fn supervise(&mut self, ctx: &mut Context<Self>) {
        let mut failed = Vec::new();
        for (name, slot) in &mut self.instruments {
            let alive = slot.stop.as_ref().is_some_and(|s| s.connected());
            if slot.state.observe(alive) {
                failed.push(name.clone());
            }
        }
        for name in failed {
            self.instrument_failed(
                &name,
                "the actor stopped without a report (it panicked)".into(),
                ctx,
            );
        }
        self.watch_for_stalls(ctx);
        self.supervise_stages(ctx);
        let mut dead_sinks = Vec::new();
        for (name, slot) in &mut self.sinks {
            if slot.done {
                continue;
            }
            let alive = slot.alive.as_ref().is_some_and(|a| a.connected());
            if alive {
                slot.suspect = false;
            } else if slot.suspect {
                dead_sinks.push(name.clone());
            } else {
                slot.suspect = true;
            }
        }
        for name in dead_sinks {
            self.sink_failed(
                &name,
                "the sink stopped without a report (it panicked)".into(),
                true,
                ctx,
            );
        }
    }

    /// Fails every running instrument that has stalled, after abandoning its acquisition.
    fn watch_for_stalls(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let mut stalled = Vec::new();
        for (name, slot) in &mut self.instruments {
            if !matches!(slot.state, SlotState::Running) {
                continue;
            }
            let stats = &self.streams[slot.stream].stats;
            if slot
                .stall
                .observe(stats.heartbeats(), stats.is_waiting(), now)
            {
                if let Some(terminate) = slot.terminate.take() {
                    terminate.do_send(Terminate);
                }
                let timeout = slot.stall.timeout().unwrap_or_default();
                stalled.push((name.clone(), timeout));
            }
        }
        for (name, timeout) in stalled {
            self.instrument_failed(
                &name,
                format!(
                    "stalled: no data and no sign of life for {timeout:?} while nothing pushed \
                     back (stall_timeout); its acquisition was abandoned"
                ),
                ctx,
            );
        }
    }

    fn sink_failed(&mut self, name: &str, reason: String, gone: bool, ctx: &mut Context<Self>) {
        self.event(name, "failed", reason.clone());
        if let Some(slot) = self.sinks.get_mut(name) {
            slot.outcome.error.get_or_insert(reason.clone());
            if gone {
                slot.done = true;
            }
        }
        self.begin_stop(StopReason::Failure(format!("sink {name}: {reason}")), ctx);
        self.maybe_finish();
    }

    fn maybe_finish(&mut self) {
        let instruments_done = self
            .instruments
            .values()
            .all(|s| matches!(s.state, SlotState::Done));
        let sinks_done = self.sinks.values().all(|s| s.done);
        if !(instruments_done && self.stages.all_done() && sinks_done) {
            return;
        }
        let Some(tx) = self.outcome.take() else {
            return;
        };
        self.arbiters.stop();
        self.stages.stop_arbiters();
        let (status, stop_reason) = match &self.stopping {
            None => (RunStatus::Completed, None),
            Some(StopReason::Requested(r)) => (RunStatus::Stopped, Some(r.clone())),
            Some(StopReason::Failure(r)) => (RunStatus::Failed, Some(r.clone())),
            Some(StopReason::PlanEnded) => (RunStatus::Completed, None),
        };
        let sinks = self
            .sinks
            .iter()
            .map(|(n, s)| (n.clone(), s.outcome.clone()))
            .collect();
        let _ = tx.send(RunOutcome {
            status,
            stop_reason,
            sinks,
            events: std::mem::take(&mut self.events),
        });
    }
}

impl Actor for Coordinator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        if let Err(e) = self.start_sinks(ctx) {
            self.event("coordinator", "failed", e.clone());
            for slot in self.sinks.values_mut() {
                slot.done = true;
            }
            self.stopping = Some(StopReason::Failure(e));
            self.maybe_finish();
            return;
        }
        self.start_stages(ctx);
        let names: Vec<String> = self.instruments.keys().cloned().collect();
        for name in names {
            self.start_instrument(&name, ctx);
        }
        ctx.run_interval(SUPERVISION_TICK, |act, ctx| act.supervise(ctx));
        self.start_plan(ctx);
        self.maybe_finish();
    }
}

impl Handler<ComponentExited> for Coordinator {
    type Result = ();

    fn handle(&mut self, msg: ComponentExited, ctx: &mut Self::Context) {
        let name = msg.component;
        let is_sink = self.sinks.contains_key(&name);
        let is_stage = self.stages.contains(&name);
        match msg.outcome {
            ExitOutcome::InstrumentFinished => {
                if let Some(slot) = self.instruments.get_mut(&name) {
                    slot.state = SlotState::Done;
                    slot.stop = None;
                }
                self.maybe_finish();
            }
            ExitOutcome::SinkFinished(report) => {
                if let Some(slot) = self.sinks.get_mut(&name) {
                    slot.outcome.report = Some(report);
                    slot.done = true;
                }
                self.maybe_finish();
            }
            ExitOutcome::StageFinished { rows } => self.stage_finished(&name, rows),
            ExitOutcome::Failed(reason) if is_stage => self.stage_failed(&name, reason, ctx),
            ExitOutcome::Failed(reason) if is_sink => self.sink_failed(&name, reason, false, ctx),
            ExitOutcome::Failed(reason) => self.instrument_failed(&name, reason, ctx),
        }
    }
}

impl Handler<StopRun> for Coordinator {
    type Result = ();

    fn handle(&mut self, msg: StopRun, ctx: &mut Self::Context) {
        if self.plan.defer_stop(&msg.0) {
            return;
        }
        self.begin_stop(msg.0, ctx);
    }
}
