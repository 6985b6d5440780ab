//! The coordinator actor: the actix shell that drives the [`Supervisor`]. It launches every
//! component (through `launch`), feeds the supervisor what it sees (reports, liveness, stalls,
//! stop requests) and carries out what the supervisor decides (restart timers, ending streams,
//! stop messages, the outcome).
//!
//! Stop is a message: instruments stop producing and end their streams, the end markers follow
//! the data through every link, each stage flushes once its input ended, each sink finishes its
//! files once all its inputs ended, and the coordinator reports the outcome once every
//! component is done.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use ensemble_actors::control::{ComponentExited, ExitOutcome, Stop, Terminate};
use tokio::sync::oneshot;

use super::arbiters::InstrumentArbiters;
use super::launch::{self, Launched};
use super::outcome::{RunEventKind, RunOutcome, StopReason};
use super::run_context::RunContext;
use super::stage_hosts::StageHosts;
use super::supervisor::{AfterFailure, Role, Supervisor};
use super::wiring::StreamPlan;
use crate::config::Experiment;

mod plan_run;

/// How often the coordinator checks that its components are still alive.
const SUPERVISION_TICK: Duration = Duration::from_millis(200);

/// Sent to the coordinator to stop the run gracefully.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct StopRun(pub StopReason);

/// Where a producing component's spec and stream are.
#[derive(Debug, Clone, Copy)]
struct Place {
    /// Index of its spec in the experiment's instruments or stages.
    spec: usize,
    /// Index of its stream in the planned streams.
    stream: usize,
    /// For a stage: index of the stream it reads.
    upstream: Option<usize>,
}

/// The coordinator. Build it with [`Coordinator::new`] and start it; it reports on `outcome`.
pub struct Coordinator {
    experiment: Arc<Experiment>,
    run: RunContext,
    streams: Vec<StreamPlan>,
    /// Instruments' and stages' specs and streams, by name.
    places: BTreeMap<String, Place>,
    /// Every component's state and every decision about it.
    supervisor: Supervisor<SpawnHandle>,
    /// The running actors, by component name.
    running: BTreeMap<String, Launched>,
    outcome: Option<oneshot::Sender<RunOutcome>>,
    /// Plan support (see `plan_run`): running instruments for the executor, its stop flag, and
    /// a stop requested while it finishes its current point.
    plan: plan_run::PlanState,
    /// The threads simulated instruments run on (not the system thread, which the sinks' actors
    /// and the coordinator need).
    arbiters: InstrumentArbiters,
    /// Where stages run, and their input links' consumers.
    stages: StageHosts,
}

impl Coordinator {
    /// A coordinator for `experiment` over the planned `streams`; the outcome goes to `outcome`.
    pub fn new(
        experiment: Arc<Experiment>,
        run: RunContext,
        streams: Vec<StreamPlan>,
        outcome: oneshot::Sender<RunOutcome>,
    ) -> Self {
        let stream_index: BTreeMap<&str, usize> = streams
            .iter()
            .enumerate()
            .map(|(i, s)| (&*s.name, i))
            .collect();
        let mut places = BTreeMap::new();
        for (spec, instrument) in experiment.instruments.iter().enumerate() {
            if let Some(&stream) = stream_index.get(instrument.name.as_str()) {
                let place = Place {
                    spec,
                    stream,
                    upstream: None,
                };
                places.insert(instrument.name.clone(), place);
            }
        }
        for (spec, stage) in experiment.stages.iter().enumerate() {
            let stream = stream_index.get(stage.name.as_str());
            let upstream = stream_index.get(stage.selection.stream.as_str());
            if let (Some(&stream), Some(&upstream)) = (stream, upstream) {
                let place = Place {
                    spec,
                    stream,
                    upstream: Some(upstream),
                };
                places.insert(stage.name.clone(), place);
            }
        }
        Self {
            supervisor: Supervisor::new(&experiment, Instant::now()),
            stages: StageHosts::new(&experiment),
            experiment,
            run,
            streams,
            places,
            running: BTreeMap::new(),
            outcome: Some(outcome),
            plan: plan_run::PlanState::default(),
            arbiters: InstrumentArbiters::per_core(),
        }
    }

    /// Starts every sink and the pumps of the links into them.
    fn start_sinks(&mut self, ctx: &mut Context<Self>) -> Result<(), String> {
        let context = launch::sink_context(&self.experiment, &self.run);
        for spec in &self.experiment.sinks {
            let exited = ctx.address().recipient();
            let launched = launch::sink(spec, &context, &mut self.streams, exited)?;
            self.running.insert(spec.name.clone(), launched);
        }
        Ok(())
    }

    /// Launches (or relaunches) instrument or stage `name`; a launch that fails is the
    /// component's failure.
    fn launch(&mut self, name: &str, ctx: &mut Context<Self>) {
        let Some(&place) = self.places.get(name) else {
            return;
        };
        let exited = ctx.address().recipient();
        let stream = &self.streams[place.stream];
        let launched = match place.upstream {
            None => launch::instrument(
                &self.experiment.instruments[place.spec],
                stream,
                &self.run,
                &mut self.arbiters,
                &self.plan.drivers,
                exited,
            ),
            Some(upstream) => launch::stage(
                &self.experiment.stages[place.spec],
                stream,
                &self.streams[upstream],
                &mut self.stages,
                exited,
            ),
        };
        let heartbeats = stream.stats.heartbeats();
        self.supervisor.running(name, heartbeats, Instant::now());
        match launched {
            Ok(launched) => {
                self.running.insert(name.to_string(), launched);
            }
            Err(reason) => self.fail(name, reason, ctx),
        }
    }

    /// A restart's backoff has passed: the component runs again and continues its stream.
    fn restart(&mut self, name: &str, ctx: &mut Context<Self>) {
        if self.supervisor.stopping().is_some() {
            return;
        }
        let Some(place) = self.places.get(name) else {
            return;
        };
        let stats = &self.streams[place.stream].stats;
        stats.record_restart();
        let detail = match place.upstream {
            None => String::new(),
            Some(_) => format!(
                "a new stage continues the stream at seq {}; the window state of the failed one \
                 (partial window, filter history) is lost",
                stats.rows()
            ),
        };
        self.supervisor
            .record(name, RunEventKind::Restarted, detail);
        self.launch(name, ctx);
    }

    /// Component `name` failed: the supervisor decides, the actor carries it out.
    fn fail(&mut self, name: &str, reason: String, ctx: &mut Context<Self>) {
        if self.supervisor.role(name) != Some(Role::Sink) {
            self.running.remove(name);
        }
        let owned = name.to_string();
        let after = self
            .supervisor
            .failed(name, reason, Instant::now(), |delay| {
                ctx.run_later(delay, move |act, ctx| act.restart(&owned, ctx))
            });
        let AfterFailure { end_stream, stop } = after;
        if end_stream {
            self.end_stream(name);
        }
        match stop {
            Some(reason) => {
                self.begin_stop(reason, ctx);
                self.maybe_finish();
            }
            None if end_stream => self.maybe_finish(),
            None => {}
        }
    }

    /// Ends the stream of `name`, whose producer can no longer do it, so its consumers can
    /// finish; a stage's input link closes too.
    fn end_stream(&self, name: &str) {
        self.stages.close_input(name);
        if let Some(place) = self.places.get(name) {
            let outputs = self.streams[place.stream].outputs();
            actix::spawn(async move { outputs.end().await });
        }
    }

    fn begin_stop(&mut self, reason: StopReason, ctx: &mut Context<Self>) {
        let Some(orders) = self.supervisor.begin_stop(reason) else {
            return;
        };
        if let Some(reason) = self.supervisor.stopping() {
            tracing::info!(run_id = %self.run.run_id, "Stopping: {reason:?}.");
        }
        self.plan.stop_executor();
        for name in &orders.stop {
            if let Some(stop) = self.running.get(name).and_then(|r| r.stop.as_ref()) {
                stop.do_send(Stop);
            }
        }
        for timer in orders.cancel {
            ctx.cancel_future(timer);
        }
        for name in &orders.end {
            self.end_stream(name);
        }
        let grace = self.experiment.grace_period;
        ctx.run_later(grace, move |act, _| act.supervisor.name_stragglers(grace));
        self.maybe_finish();
    }

    /// The supervision tick: actors gone without a report, then stalled instruments, then
    /// gone stages and sinks.
    fn supervise(&mut self, ctx: &mut Context<Self>) {
        self.fail_vanished(Role::Instrument, ctx);
        let (streams, places) = (&self.streams, &self.places);
        let stalled = self.supervisor.stalled(Instant::now(), |name| {
            places.get(name).map_or((0, false), |p| {
                let stats = &streams[p.stream].stats;
                (stats.heartbeats(), stats.is_waiting())
            })
        });
        for (name, _) in &stalled {
            if let Some(terminate) = self.running.get_mut(name).and_then(|r| r.terminate.take()) {
                terminate.do_send(Terminate);
            }
        }
        for (name, reason) in stalled {
            self.fail(&name, reason, ctx);
        }
        self.fail_vanished(Role::Stage, ctx);
        self.fail_vanished(Role::Sink, ctx);
    }

    /// Fails every component of `role` whose actor is gone without a report (the supervisor
    /// decides when "gone" is certain).
    fn fail_vanished(&mut self, role: Role, ctx: &mut Context<Self>) {
        let running = &self.running;
        let alive = |name: &str| running.get(name).is_some_and(Launched::is_alive);
        for (name, reason) in self.supervisor.vanished(role, alive) {
            self.fail(&name, reason, ctx);
        }
    }

    /// Hands out the outcome once every component is done, and stops the arbiters.
    fn maybe_finish(&mut self) {
        let Some(outcome) = self.supervisor.try_finish() else {
            return;
        };
        self.arbiters.stop();
        self.stages.stop_arbiters();
        if let Some(tx) = self.outcome.take() {
            let _ = tx.send(outcome);
        }
    }
}

impl Actor for Coordinator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        if let Err(e) = self.start_sinks(ctx) {
            self.supervisor.failed_to_start(e);
            self.maybe_finish();
            return;
        }
        self.stages.start_pumps(&mut self.streams);
        // Stages first (by name), so that they are ready when data comes, then instruments.
        let (stages, instruments): (Vec<_>, Vec<_>) = self
            .places
            .iter()
            .map(|(name, place)| (name.clone(), place.upstream.is_some()))
            .partition(|(_, is_stage)| *is_stage);
        let producers: Vec<String> = stages
            .into_iter()
            .chain(instruments)
            .map(|(n, _)| n)
            .collect();
        for name in producers {
            self.launch(&name, ctx);
        }
        self.run.launched.send_replace(true);
        ctx.run_interval(SUPERVISION_TICK, |act, ctx| act.supervise(ctx));
        self.start_plan(ctx);
        self.maybe_finish();
    }
}

impl Handler<ComponentExited> for Coordinator {
    type Result = ();

    fn handle(&mut self, msg: ComponentExited, ctx: &mut Self::Context) {
        let name = msg.component;
        match msg.outcome {
            ExitOutcome::InstrumentFinished => {
                self.supervisor.ended(&name);
                self.running.remove(&name);
                self.maybe_finish();
            }
            ExitOutcome::SinkFinished(report) => {
                self.supervisor.sink_finished(&name, report);
                self.maybe_finish();
            }
            ExitOutcome::StageFinished { rows } => {
                if self.supervisor.role(&name) == Some(Role::Stage) {
                    tracing::info!(component_id = name, rows, "Stage finished.");
                    self.supervisor.ended(&name);
                    self.running.remove(&name);
                }
                self.maybe_finish();
            }
            ExitOutcome::Failed(reason) => self.fail(&name, reason, ctx),
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
