//! The coordinator's side of plans: the stream plan's timer and the point plan's executor.
//!
//! A stream plan whose instruments all have a row limit ends when the last one finishes; one
//! with an instrument that has none (SCPI) also stops with status `completed` once its clock
//! has run `duration` (pauses hold the clock, and lengthen the row limits by as much).
//!
//! A point plan's executor runs as a tokio task on the runtime's worker threads, never on an
//! actor's thread; the coordinator waits for it as a future. When it ends, the run stops
//! (`completed`; `failed` if a set failed). A Ctrl-C or a control `stop` while it runs is
//! deferred: the executor finishes its current point, ends the `primary` stream, and only then
//! are the instruments stopped (status `stopped`). Suspenders get their own task, fed by the
//! links `wiring` planned into it.

use actix::prelude::*;
use tokio::sync::watch;

use super::{Coordinator, StopReason};
use crate::config::Plan;
use crate::plan::{
    ClockEnd, Drivers, PRIMARY_STREAM, PlanExecutor, PrimaryLayout, SUSPEND_CONSUMER, Watcher,
    run_stream_clock,
};

/// What the coordinator keeps for a plan.
#[derive(Default)]
pub(super) struct PlanState {
    /// The running instruments, for the executor.
    pub(super) drivers: Drivers,
    /// Set while the executor runs: sending `true` makes it stop after the current point.
    stop: Option<watch::Sender<bool>>,
    /// A stop requested while the executor finishes its current point.
    pending: Option<StopReason>,
}

impl PlanState {
    /// Asks a running executor to stop after its current point.
    pub(super) fn stop_executor(&self) {
        if let Some(stop) = &self.stop {
            stop.send_replace(true);
        }
    }

    /// Whether a requested stop waits for the executor's current point (then it is applied
    /// when the executor ends).
    pub(super) fn defer_stop(&mut self, reason: &StopReason) -> bool {
        match (&self.stop, reason) {
            (Some(stop), StopReason::Requested(_)) => {
                stop.send_replace(true);
                self.pending.get_or_insert_with(|| reason.clone());
                true
            }
            _ => false,
        }
    }
}

impl Coordinator {
    /// Starts the plan's own part once every component runs: the stream plan's timer or the
    /// point plan's executor.
    pub(super) fn start_plan(&mut self, ctx: &mut Context<Self>) {
        if self.supervisor.is_finished() || self.supervisor.stopping().is_some() {
            return;
        }
        match &self.experiment.plan {
            Plan::Stream => {
                // Instruments with a row limit end by themselves (a pause lengthens it); the
                // clock ends the others.
                let timed = self.streams.iter().any(|s| s.expected_rows.is_none());
                let control = self.run.control.clone();
                let duration = self.experiment.duration;
                let clock = async move { run_stream_clock(duration, &control).await };
                ctx.spawn(clock.into_actor(self).map(move |end, act, ctx| {
                    if timed && end == ClockEnd::Elapsed && act.supervisor.stopping().is_none() {
                        act.begin_stop(StopReason::PlanEnded, ctx);
                    }
                }));
            }
            Plan::Points(plan) => {
                let Some(stream) = self.streams.iter().find(|s| &*s.name == PRIMARY_STREAM) else {
                    return;
                };
                let layout = PrimaryLayout::new(plan, &self.experiment.instruments);
                let outputs = stream.outputs();
                let executor = PlanExecutor::new(plan.clone(), layout, outputs.clone());
                let slot = stream.report.clone();
                let (stop, stop_rx) = watch::channel(false);
                self.plan.stop = Some(stop);
                let control = self.run.control.clone();
                if !plan.suspenders.is_empty() {
                    let watcher = Watcher::new(&plan.suspenders, control.clone());
                    let feeds: Vec<_> = self
                        .streams
                        .iter_mut()
                        .flat_map(|s| {
                            let name = s.name.to_string();
                            s.links
                                .iter_mut()
                                .filter(|l| l.sink == SUSPEND_CONSUMER)
                                .filter_map(move |l| l.receiver.take().map(|r| (name.clone(), r)))
                        })
                        .collect();
                    tokio::spawn(watcher.run(feeds));
                }
                let drivers = self.plan.drivers.clone();
                let task = tokio::spawn({
                    let control = control.clone();
                    async move { executor.run(&drivers, stop_rx, control).await }
                });
                ctx.spawn(task.into_actor(self).map(move |joined, act, ctx| {
                    act.plan.stop = None;
                    let (report, result) = match joined {
                        Ok(done) => done,
                        Err(e) => {
                            // The task panicked: its buffered rows are gone; end the stream.
                            actix::spawn(async move { outputs.end().await });
                            let reason = format!("the plan's task ended abnormally: {e}");
                            act.begin_stop(StopReason::Failure(reason), ctx);
                            return;
                        }
                    };
                    tracing::info!(
                        run_id = %act.run.run_id,
                        points = report.points_done,
                        "The plan ended."
                    );
                    slot.set_value(serde_json::to_value(&report).unwrap_or_default());
                    let asked = control
                        .stop_asked()
                        .map(|by| StopReason::Requested(format!("stop asked by {by}")));
                    let reason = match result {
                        Err(e) => StopReason::Failure(e.to_string()),
                        Ok(()) => act
                            .plan
                            .pending
                            .take()
                            .or(asked)
                            .unwrap_or(StopReason::PlanEnded),
                    };
                    act.begin_stop(reason, ctx);
                }));
            }
        }
    }
}
