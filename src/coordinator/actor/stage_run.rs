//! The coordinator's side of stages: starting each on its own arbiter, feeding its input link,
//! and supervising it.
//!
//! A stage is a consumer like a sink and a producer like an instrument. It needs no stop
//! message: it ends when its input ends (the instruments stop → every stage flushes and ends its
//! stream → the sinks finish), then reports [`ExitOutcome::StageFinished`].
//!
//! Each stage runs on its own [`Arbiter`] (a thread with its own event loop), so an FFT never
//! holds up the threads that acquire data. The arbiters live until the run's outcome is sent.
//!
//! # Failures
//!
//! A stage that fails (it rejects a batch, or its actor dies) is handled per its `on_failure`:
//! - `restart`: a new stage is built on a new arbiter and continues the same stream at the next
//!   `seq`. The failed stage's window state (a partial FFT or statistics window, the filter's
//!   history) is lost; the `restarted` event in the manifest says so. A batch the stage
//!   rejected (an error) is lost with it; a batch it panicked on was never answered, so the
//!   feeder delivers it again to the new stage. The batches after it wait in the input link.
//! - `continue`: the stage's stream ends there (its consumers finish), and its input link is
//!   closed (what its producer still sends it is counted as dropped).
//! - `abort` (or too many restarts): the same, and the run stops with status `failed`.
//!
//! [`ExitOutcome::StageFinished`]: ensemble_actors::control::ExitOutcome::StageFinished

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use ensemble_actors::batch::StreamEvent;
use ensemble_actors::control::ComponentExited;
use ensemble_actors::instruments::sim::SimFault;
use ensemble_actors::link::LinkReceiver;
use ensemble_actors::outputs::Outputs;
use ensemble_actors::stages::decimate::DecimateStage;
use ensemble_actors::stages::fft::FftStage;
use ensemble_actors::stages::fir::FirStage;
use ensemble_actors::stages::stats::StatsStage;
use ensemble_actors::stages::{Faulty, Stage, StageActor, StageError, StageInput};
use ensemble_actors::stats::LinkStats;
use tokio::sync::watch;

use super::{Coordinator, SlotState, StopReason};
use crate::config::{Experiment, OnFailure, StageKind, StageSpec};
use crate::coordinator::restarts::{RestartDecision, RestartTracker};
use crate::coordinator::wiring::StreamPlan;

/// Which actor the feeder of a stage's input link delivers to; `None` once no stage will ever
/// read the link again.
type Consumer = Option<Recipient<StreamEvent>>;

/// One stage as the coordinator keeps it.
struct StageSlot {
    /// The compiled stage, to build it again on a restart.
    spec: StageSpec,
    /// Index of the stage's own stream in the coordinator's streams.
    stream: usize,
    /// Index of the stream it reads.
    upstream: usize,
    /// The running actor, to see that it is alive.
    addr: Option<Recipient<StreamEvent>>,
    /// Tells the input link's feeder which actor to deliver to.
    consumer: watch::Sender<Consumer>,
    /// Running, restarting or done.
    state: SlotState,
    /// The restart policy's memory.
    restarts: RestartTracker,
    /// The thread the stage runs on; replaced on a restart.
    arbiter: Option<Arbiter>,
}

/// Every stage of the run, and the arbiters they run (or ran) on.
#[derive(Default)]
pub(super) struct Stages {
    /// By name.
    slots: BTreeMap<String, StageSlot>,
    /// Arbiters of failed stages, stopped with the others at the end of the run.
    retired: Vec<Arbiter>,
}

impl Stages {
    /// A slot per stage of `experiment`, pointing at its planned streams.
    pub(super) fn new(experiment: &Experiment, streams: &[StreamPlan]) -> Self {
        let index = |name: &str| streams.iter().position(|s| &*s.name == name);
        let slots = experiment
            .stages
            .iter()
            .filter_map(|spec| {
                let slot = StageSlot {
                    stream: index(&spec.name)?,
                    upstream: index(&spec.selection.stream)?,
                    spec: spec.clone(),
                    addr: None,
                    consumer: watch::channel(None).0,
                    state: SlotState::Done,
                    restarts: RestartTracker::new(spec.supervision),
                    arbiter: None,
                };
                Some((spec.name.clone(), slot))
            })
            .collect();
        Self {
            slots,
            retired: Vec::new(),
        }
    }

    /// Whether `name` is a stage.
    pub(super) fn contains(&self, name: &str) -> bool {
        self.slots.contains_key(name)
    }

    /// Whether every stage has ended.
    pub(super) fn all_done(&self) -> bool {
        self.slots
            .values()
            .all(|s| matches!(s.state, SlotState::Done))
    }

    /// Names of the stages that have not ended yet.
    pub(super) fn running(&self) -> Vec<String> {
        self.slots
            .iter()
            .filter(|(_, s)| !matches!(s.state, SlotState::Done))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Stops every stage's thread (at the end of the run; the stages have ended by then, or are
    /// abandoned with the run).
    pub(super) fn stop_arbiters(&mut self) {
        for arbiter in self
            .slots
            .values_mut()
            .filter_map(|s| s.arbiter.take())
            .chain(self.retired.drain(..))
        {
            arbiter.stop();
        }
    }
}

/// What a stage actor needs besides the stage itself.
struct Launch<'a> {
    /// The thread it runs on.
    arbiter: &'a Arbiter,
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

impl Launch<'_> {
    /// Builds the stage `kind` for `input` and starts its actor.
    fn spawn(
        self,
        kind: &StageKind,
        input: &StageInput,
    ) -> Result<Recipient<StreamEvent>, StageError> {
        Ok(match kind {
            StageKind::Fft(c) => self.start(FftStage::new(c, input)?),
            StageKind::Fir(c) => self.start(FirStage::new(c, input)?),
            StageKind::Decimate(c) => self.start(DecimateStage::new(c, input)?),
            StageKind::Stats(c) => self.start(StatsStage::new(c, input)?),
        })
    }

    /// Makes `stage`'s stream continue at `next_seq` and starts its actor on the arbiter.
    fn start<S: Stage + Send>(self, stage: S) -> Recipient<StreamEvent> {
        let mut stage = Faulty::new(stage, self.fault, self.restarts);
        stage.continue_at(self.next_seq);
        let (name, outputs, exited) = (self.name.to_string(), self.outputs, self.exited);
        let input = self.input;
        StageActor::start_in_arbiter(&self.arbiter.handle(), move |_| {
            let actor = StageActor::new(name, stage, outputs, exited);
            match input {
                Some(stats) => actor.counting_losses_on(stats),
                None => actor,
            }
        })
        .recipient()
    }
}

/// Delivers a stage's input link to whichever actor runs the stage now, in order, one event at a
/// time (`send().await`: a busy stage pushes back through the lossless link to its producer).
///
/// When the actor is gone, the event waits for the next one (a restart); once the coordinator
/// says no stage will come (`None`), the link is closed and what is left is counted as dropped.
/// Returns after delivering the end of the stream.
async fn feed(rx: LinkReceiver, stats: Arc<LinkStats>, mut consumer: watch::Receiver<Consumer>) {
    loop {
        let event = rx.pop().await;
        let rows = event.rows() as u64;
        let is_end = matches!(event, StreamEvent::End(_));
        loop {
            let target = consumer.borrow_and_update().clone();
            let Some(target) = target else {
                stats.record_drop(rows);
                rx.close();
                return;
            };
            if target.send(event.clone()).await.is_ok() {
                stats.record_delivered(rows);
                break;
            }
            // The stage is gone: wait for the coordinator's decision, then try again.
            if consumer.changed().await.is_err() {
                stats.record_drop(rows);
                rx.close();
                return;
            }
        }
        if is_end {
            return;
        }
    }
}

impl Coordinator {
    /// Starts the feeder of every stage's input link, then every stage.
    pub(super) fn start_stages(&mut self, ctx: &mut Context<Self>) {
        let names: Vec<String> = self.stages.slots.keys().cloned().collect();
        for name in &names {
            let Some(slot) = self.stages.slots.get(name) else {
                continue;
            };
            let link = self.streams[slot.upstream]
                .links
                .iter_mut()
                .find(|l| l.to_stage && l.sink == *name);
            if let Some(link) = link {
                if let Some(rx) = link.receiver.take() {
                    tokio::spawn(feed(rx, link.stats.clone(), slot.consumer.subscribe()));
                }
            }
        }
        for name in names {
            self.start_stage(&name, ctx);
        }
    }

    /// Builds and starts one stage on a new arbiter; its stream continues where it stands.
    fn start_stage(&mut self, name: &str, ctx: &mut Context<Self>) {
        let me = ctx.address().recipient::<ComponentExited>();
        let Some(slot) = self.stages.slots.get_mut(name) else {
            return;
        };
        let stream = &self.streams[slot.stream];
        let upstream = &self.streams[slot.upstream];
        let arbiter = Arbiter::new();
        let launch = Launch {
            arbiter: &arbiter,
            name,
            next_seq: stream.stats.rows(),
            restarts: stream.stats.restarts(),
            fault: slot.spec.fault.as_ref(),
            outputs: stream.outputs(),
            exited: me,
            input: upstream
                .links
                .iter()
                .find(|l| l.to_stage && l.sink == name)
                .map(|l| l.stats.clone()),
        };
        let started = StageInput::from_schema(&slot.spec.selection, &upstream.schema)
            .and_then(|input| launch.spawn(&slot.spec.kind, &input));
        if let Some(old) = slot.arbiter.replace(arbiter) {
            self.stages.retired.push(old);
        }
        match started {
            Ok(addr) => {
                slot.consumer.send_replace(Some(addr.clone()));
                slot.addr = Some(addr);
                slot.state = SlotState::Running;
            }
            Err(e) => {
                slot.state = SlotState::Running;
                self.stage_failed(name, format!("cannot build the stage: {e}"), ctx);
            }
        }
    }

    /// A stage flushed after its input ended and ended its stream.
    pub(super) fn stage_finished(&mut self, name: &str, rows: u64) {
        if let Some(slot) = self.stages.slots.get_mut(name) {
            tracing::info!(component_id = name, rows, "Stage finished.");
            slot.state = SlotState::Done;
            slot.addr = None;
        }
        self.maybe_finish();
    }

    /// Ends a stage for good: no consumer for its input link, and its stream ends so that its
    /// consumers can finish.
    fn retire_stage(&mut self, name: &str) {
        let Some(slot) = self.stages.slots.get_mut(name) else {
            return;
        };
        slot.state = SlotState::Done;
        slot.addr = None;
        slot.consumer.send_replace(None);
        let outputs = self.streams[slot.stream].outputs();
        actix::spawn(async move { outputs.end().await });
    }

    /// A stage failed: restart it, leave it ended, or stop the run, per its policy.
    pub(super) fn stage_failed(&mut self, name: &str, reason: String, ctx: &mut Context<Self>) {
        self.event(name, "failed", reason.clone());
        let Some(slot) = self.stages.slots.get_mut(name) else {
            return;
        };
        slot.addr = None;
        if self.stopping.is_some() {
            self.retire_stage(name);
            self.maybe_finish();
            return;
        }
        let supervision = slot.spec.supervision;
        match supervision.on_failure {
            OnFailure::Restart => match slot.restarts.on_failure(Instant::now()) {
                RestartDecision::RestartAfter(delay) => {
                    let owned = name.to_string();
                    let handle =
                        ctx.run_later(delay, move |act, ctx| act.restart_stage(&owned, ctx));
                    slot.state = SlotState::Restarting(handle);
                    self.event(name, "restarting", format!("in {delay:?}"));
                }
                RestartDecision::GiveUp => {
                    let detail = format!(
                        "more than {} restarts within {:?}",
                        supervision.max_restarts, supervision.restart_window
                    );
                    self.event(name, "gave_up", detail.clone());
                    self.retire_stage(name);
                    self.begin_stop(
                        StopReason::Failure(format!("{name}: {detail}: {reason}")),
                        ctx,
                    );
                }
            },
            OnFailure::Abort => {
                self.retire_stage(name);
                self.begin_stop(StopReason::Failure(format!("{name}: {reason}")), ctx);
            }
            OnFailure::Continue => {
                self.retire_stage(name);
                self.maybe_finish();
            }
        }
    }

    /// Builds the stage again; its stream continues at the next `seq`.
    fn restart_stage(&mut self, name: &str, ctx: &mut Context<Self>) {
        if self.stopping.is_some() {
            return;
        }
        let Some(slot) = self.stages.slots.get(name) else {
            return;
        };
        let stream = &self.streams[slot.stream];
        stream.stats.record_restart();
        let detail = format!(
            "a new stage continues the stream at seq {}; the window state of the failed one \
             (partial window, filter history) is lost",
            stream.stats.rows()
        );
        self.event(name, "restarted", detail);
        self.start_stage(name, ctx);
    }

    /// On stop: a stage waiting to restart will not; its stream ends now. Running stages end by
    /// themselves once their input ends.
    pub(super) fn stop_stages(&mut self, ctx: &mut Context<Self>) {
        let waiting: Vec<String> = self
            .stages
            .slots
            .iter_mut()
            .filter_map(
                |(name, slot)| match std::mem::replace(&mut slot.state, SlotState::Done) {
                    SlotState::Restarting(handle) => {
                        ctx.cancel_future(handle);
                        Some(name.clone())
                    }
                    other => {
                        slot.state = other;
                        None
                    }
                },
            )
            .collect();
        for name in waiting {
            self.retire_stage(&name);
        }
    }

    /// Finds stages whose actor died without a report (twice in a row, as for instruments).
    pub(super) fn supervise_stages(&mut self, ctx: &mut Context<Self>) {
        let mut failed = Vec::new();
        for (name, slot) in &mut self.stages.slots {
            let alive = slot.addr.as_ref().is_some_and(|a| a.connected());
            if slot.state.observe(alive) {
                failed.push(name.clone());
            }
        }
        for name in failed {
            self.stage_failed(
                &name,
                "the stage stopped without a report (it panicked)".into(),
                ctx,
            );
        }
    }
}
