//! The supervisor: the state of every component of a run, and every decision about it, as a
//! plain struct. The coordinator actor only drives it (it feeds in what it saw, and carries out
//! what it is told); nothing here touches an actor.
//!
//! # The slot table
//!
//! One slot per component, by name. A slot is `Running`, `Suspect` (its actor was seen gone
//! without a report once; its report may still be on the way), `Restarting` (holding the timer
//! of its restart) or `Done`. Instruments and stages start `Done` until launched; sinks start
//! `Running`. The run is finished once every slot is `Done`.
//!
//! # Failures
//!
//! An instrument or a stage that fails (it reports an error, its actor vanishes, an instrument
//! stalls) is handled per its `on_failure`:
//! - `restart`: after a backoff a new actor continues the same stream at the next `seq`; too
//!   many restarts within the window escalate to abort (`gave_up`);
//! - `continue`: the component's stream ends there, so its consumers can finish;
//! - `abort`: the same, and the run stops with status `failed`.
//!
//! Once the run is stopping, a failed component is not restarted: its stream ends. A sink is
//! never restarted: its failure stops the run (`failed`), and the sink still reports what it
//! wrote unless its actor vanished.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ensemble_actors::control::SinkReport;

use super::outcome::{RunEvent, RunEventKind, RunOutcome, RunStatus, SinkOutcome, StopReason};
use super::restarts::{RestartDecision, RestartTracker};
use super::stall::StallWatch;
use crate::config::{Experiment, OnFailure, Supervision};

#[cfg(test)]
mod tests;

/// What kind of component a slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// Produces a stream; restarted per its policy; watched for stalls.
    Instrument,
    /// Reads one stream and produces another; restarted per its policy.
    Stage,
    /// Reads streams and stores them; never restarted.
    Sink,
}

impl Role {
    /// The failure recorded when the component's actor vanished without a report.
    fn vanished(self) -> &'static str {
        match self {
            Role::Instrument => "the actor stopped without a report (it panicked)",
            Role::Stage => "the stage stopped without a report (it panicked)",
            Role::Sink => "the sink stopped without a report (it panicked)",
        }
    }
}

/// Where a component stands; `T` is the handle of a scheduled restart (the actor's timer).
#[derive(Debug)]
enum SlotState<T> {
    Running,
    /// Seen gone without a report once; failed if still so at the next tick.
    Suspect,
    Restarting(T),
    Done,
}

impl<T> SlotState<T> {
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

    fn is_done(&self) -> bool {
        matches!(self, SlotState::Done)
    }
}

/// What the supervisor remembers of a component besides its state, per role.
#[derive(Debug)]
enum Memory {
    Instrument {
        restarts: RestartTracker,
        stall: StallWatch,
    },
    Stage {
        restarts: RestartTracker,
    },
    Sink {
        outcome: SinkOutcome,
    },
}

#[derive(Debug)]
struct Slot<T> {
    state: SlotState<T>,
    memory: Memory,
}

impl<T> Slot<T> {
    fn role(&self) -> Role {
        match self.memory {
            Memory::Instrument { .. } => Role::Instrument,
            Memory::Stage { .. } => Role::Stage,
            Memory::Sink { .. } => Role::Sink,
        }
    }
}

/// What the coordinator must do after a failure.
#[derive(Debug, Default)]
#[must_use]
pub(super) struct AfterFailure {
    /// The component is done for good: end its stream (and close a stage's input link), so
    /// that its consumers can finish.
    pub(super) end_stream: bool,
    /// Stop the run for this reason.
    pub(super) stop: Option<StopReason>,
}

/// What the coordinator must do to stop the run.
#[derive(Debug)]
#[must_use]
pub(super) struct StopOrders<T> {
    /// Running instruments: send each `Stop` (they end their streams themselves).
    pub(super) stop: Vec<String>,
    /// Restart timers to cancel.
    pub(super) cancel: Vec<T>,
    /// Components whose restart was cancelled (instruments, then stages): end their streams.
    pub(super) end: Vec<String>,
}

/// Every component's slot, the run's stop reason and its events. Build it with
/// [`Supervisor::new`]; `T` is the handle of a scheduled restart.
#[derive(Debug)]
pub(super) struct Supervisor<T> {
    slots: BTreeMap<String, Slot<T>>,
    stopping: Option<StopReason>,
    events: Vec<RunEvent>,
    finished: bool,
}

impl<T> Default for Supervisor<T> {
    fn default() -> Self {
        Self {
            slots: BTreeMap::new(),
            stopping: None,
            events: Vec::new(),
            finished: false,
        }
    }
}

impl<T> Supervisor<T> {
    /// A slot for every component of `experiment`.
    pub(super) fn new(experiment: &Experiment, now: Instant) -> Self {
        let mut supervisor = Self::default();
        for spec in &experiment.instruments {
            supervisor.add_instrument(&spec.name, spec.supervision, spec.stall_timeout, now);
        }
        for spec in &experiment.stages {
            supervisor.add_stage(&spec.name, spec.supervision);
        }
        for spec in &experiment.sinks {
            supervisor.add_sink(&spec.name);
        }
        supervisor
    }

    /// Adds an instrument (not yet launched) with its policy and stall timeout.
    pub(super) fn add_instrument(
        &mut self,
        name: &str,
        policy: Supervision,
        stall_timeout: Option<Duration>,
        now: Instant,
    ) {
        let memory = Memory::Instrument {
            restarts: RestartTracker::new(policy),
            stall: StallWatch::new(stall_timeout, now),
        };
        self.add(name, SlotState::Done, memory);
    }

    /// Adds a stage (not yet launched) with its policy.
    pub(super) fn add_stage(&mut self, name: &str, policy: Supervision) {
        let restarts = RestartTracker::new(policy);
        self.add(name, SlotState::Done, Memory::Stage { restarts });
    }

    /// Adds a sink; it counts as running until it reports.
    pub(super) fn add_sink(&mut self, name: &str) {
        let outcome = SinkOutcome::default();
        self.add(name, SlotState::Running, Memory::Sink { outcome });
    }

    fn add(&mut self, name: &str, state: SlotState<T>, memory: Memory) {
        self.slots.insert(name.to_string(), Slot { state, memory });
    }

    /// The role of component `name`, if there is one.
    pub(super) fn role(&self, name: &str) -> Option<Role> {
        self.slots.get(name).map(Slot::role)
    }

    /// Why the run is stopping, once it is.
    pub(super) fn stopping(&self) -> Option<&StopReason> {
        self.stopping.as_ref()
    }

    /// Whether the outcome has been handed out (see [`Supervisor::try_finish`]).
    pub(super) fn is_finished(&self) -> bool {
        self.finished
    }

    /// Records (and logs) an event for the manifest.
    pub(super) fn record(&mut self, component: &str, event: RunEventKind, detail: String) {
        self.events.push(RunEvent::now(component, event, detail));
    }

    /// Component `name`'s actor runs (launched or relaunched); an instrument's stall clock
    /// starts again from its stream's `heartbeats`.
    pub(super) fn running(&mut self, name: &str, heartbeats: u64, now: Instant) {
        if let Some(slot) = self.slots.get_mut(name) {
            slot.state = SlotState::Running;
            if let Memory::Instrument { stall, .. } = &mut slot.memory {
                stall.restart(heartbeats, now);
            }
        }
    }

    /// Component `name` ended normally (an instrument produced its last row, a stage flushed).
    pub(super) fn ended(&mut self, name: &str) {
        if let Some(slot) = self.slots.get_mut(name) {
            slot.state = SlotState::Done;
        }
    }

    /// Sink `name` finished every file; `report` says what it wrote.
    pub(super) fn sink_finished(&mut self, name: &str, report: SinkReport) {
        if let Some(slot) = self.slots.get_mut(name) {
            slot.state = SlotState::Done;
            if let Memory::Sink { outcome } = &mut slot.memory {
                outcome.report = Some(report);
            }
        }
    }

    /// Component `name` failed for `reason` at `now`: records it and decides, per its policy,
    /// what follows. A restart is scheduled through `schedule(delay)`, whose handle the slot
    /// keeps until the restart or a stop.
    pub(super) fn failed(
        &mut self,
        name: &str,
        reason: String,
        now: Instant,
        schedule: impl FnOnce(Duration) -> T,
    ) -> AfterFailure {
        self.record(name, RunEventKind::Failed, reason.clone());
        let stopping = self.stopping.is_some();
        let Some(slot) = self.slots.get_mut(name) else {
            return AfterFailure::default();
        };
        let restarts = match &mut slot.memory {
            Memory::Sink { outcome } => {
                outcome.error.get_or_insert(reason.clone());
                return AfterFailure {
                    end_stream: false,
                    stop: Some(StopReason::Failure(format!("sink {name}: {reason}"))),
                };
            }
            Memory::Instrument { restarts, .. } | Memory::Stage { restarts } => restarts,
        };
        let ended = |stop| AfterFailure {
            end_stream: true,
            stop,
        };
        if stopping {
            slot.state = SlotState::Done;
            return ended(None);
        }
        let policy = *restarts.policy();
        match policy.on_failure {
            OnFailure::Restart => match restarts.on_failure(now) {
                RestartDecision::RestartAfter(delay) => {
                    slot.state = SlotState::Restarting(schedule(delay));
                    self.record(name, RunEventKind::Restarting, format!("in {delay:?}"));
                    AfterFailure::default()
                }
                RestartDecision::GiveUp => {
                    slot.state = SlotState::Done;
                    let detail = format!(
                        "more than {} restarts within {:?}",
                        policy.max_restarts, policy.restart_window
                    );
                    self.record(name, RunEventKind::GaveUp, detail.clone());
                    let reason = format!("{name}: {detail}: {reason}");
                    ended(Some(StopReason::Failure(reason)))
                }
            },
            OnFailure::Abort => {
                slot.state = SlotState::Done;
                ended(Some(StopReason::Failure(format!("{name}: {reason}"))))
            }
            OnFailure::Continue => {
                slot.state = SlotState::Done;
                ended(None)
            }
        }
    }

    /// The run could not start (`reason`): nothing will report, so every sink counts as done
    /// and the run as failed.
    pub(super) fn failed_to_start(&mut self, reason: String) {
        self.record("coordinator", RunEventKind::Failed, reason.clone());
        for slot in self.slots.values_mut() {
            if slot.role() == Role::Sink {
                slot.state = SlotState::Done;
            }
        }
        self.stopping = Some(StopReason::Failure(reason));
    }

    /// Starts stopping the run for `reason`; `None` if it is stopping already (a failure during
    /// a requested stop, or after the plan ended, still makes the run a failure).
    pub(super) fn begin_stop(&mut self, reason: StopReason) -> Option<StopOrders<T>> {
        match (&self.stopping, &reason) {
            (None, _) => {}
            (Some(StopReason::Requested(_) | StopReason::PlanEnded), StopReason::Failure(_)) => {
                self.stopping = Some(reason);
                return None;
            }
            (Some(_), _) => return None,
        }
        self.stopping = Some(reason);
        let mut orders = StopOrders {
            stop: Vec::new(),
            cancel: Vec::new(),
            end: Vec::new(),
        };
        for role in [Role::Instrument, Role::Stage] {
            for (name, slot) in self.slots.iter_mut().filter(|(_, s)| s.role() == role) {
                match std::mem::replace(&mut slot.state, SlotState::Done) {
                    SlotState::Restarting(timer) => {
                        orders.cancel.push(timer);
                        orders.end.push(name.clone());
                    }
                    // A running instrument is asked to stop (and gets its ticks again to
                    // report); a running stage ends by itself once its input ends.
                    SlotState::Running | SlotState::Suspect if role == Role::Instrument => {
                        slot.state = SlotState::Running;
                        orders.stop.push(name.clone());
                    }
                    other => slot.state = other,
                }
            }
        }
        Some(orders)
    }

    /// Feeds the liveness tick to every slot of `role`: returns each component seen gone twice
    /// in a row without a report, with the failure to record. A vanished sink is done: it
    /// will never report.
    pub(super) fn vanished(
        &mut self,
        role: Role,
        alive: impl Fn(&str) -> bool,
    ) -> Vec<(String, String)> {
        let mut gone = Vec::new();
        for (name, slot) in self.slots.iter_mut().filter(|(_, s)| s.role() == role) {
            if slot.state.observe(alive(name)) {
                if role == Role::Sink {
                    slot.state = SlotState::Done;
                }
                gone.push((name.clone(), role.vanished().to_string()));
            }
        }
        gone
    }

    /// Feeds the stall tick to every running instrument; `pulse(name)` gives its stream's
    /// heartbeat count and whether it is waiting on its consumers. Returns each instrument
    /// that stalled, with the failure to record (its acquisition must be abandoned).
    pub(super) fn stalled(
        &mut self,
        now: Instant,
        pulse: impl Fn(&str) -> (u64, bool),
    ) -> Vec<(String, String)> {
        let mut stalled = Vec::new();
        for (name, slot) in &mut self.slots {
            let Memory::Instrument { stall, .. } = &mut slot.memory else {
                continue;
            };
            if !matches!(slot.state, SlotState::Running) {
                continue;
            }
            let (heartbeats, waiting) = pulse(name);
            if stall.observe(heartbeats, waiting, now) {
                let timeout = stall.timeout().unwrap_or_default();
                let reason = format!(
                    "stalled: no data and no sign of life for {timeout:?} while nothing pushed \
                     back (stall_timeout); its acquisition was abandoned"
                );
                stalled.push((name.clone(), reason));
            }
        }
        stalled
    }

    /// The grace period after a stop has passed: records every component still running
    /// (instruments, stages, then sinks), unless the run has finished.
    pub(super) fn name_stragglers(&mut self, grace: Duration) {
        if self.finished {
            return;
        }
        let running: Vec<String> = [Role::Instrument, Role::Stage, Role::Sink]
            .into_iter()
            .flat_map(|role| {
                self.slots
                    .iter()
                    .filter(move |(_, s)| s.role() == role && !s.state.is_done())
                    .map(|(n, _)| n.clone())
            })
            .collect();
        let detail = format!(
            "still draining after the grace period of {grace:?}; waiting (a second Ctrl-C exits \
             at once)"
        );
        for name in running {
            self.record(&name, RunEventKind::StillRunning, detail.clone());
        }
    }

    /// The run's outcome, once every component is done; handed out only once.
    pub(super) fn try_finish(&mut self) -> Option<RunOutcome> {
        if self.finished || !self.slots.values().all(|s| s.state.is_done()) {
            return None;
        }
        self.finished = true;
        let (status, stop_reason) = match &self.stopping {
            None => (RunStatus::Completed, None),
            Some(reason) => reason.status(),
        };
        let sinks = self
            .slots
            .iter()
            .filter_map(|(name, slot)| match &slot.memory {
                Memory::Sink { outcome } => Some((name.clone(), outcome.clone())),
                _ => None,
            })
            .collect();
        Some(RunOutcome {
            status,
            stop_reason,
            sinks,
            events: std::mem::take(&mut self.events),
        })
    }
}
