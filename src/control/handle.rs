//! [`RunControl`]: pause, resume and stop a running plan, from any thread, and read its state.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use chrono::{DateTime, Utc};
use ensemble_actors::instruments::pauses::Pauses;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::record::{Interruption, InterruptionKind};

/// The control handle of one run: ask its plan to pause, resume or stop, and see where it is.
///
/// Cheap to clone; every clone controls the same run. Every method is synchronous and quick
/// (it takes a short lock and wakes the plan), so it can be called from a tokio task on any
/// thread, an HTTP handler, the control socket or a terminal reader. Who asked is named in
/// each call (`"socket"`, `"http"`, `"terminal"`) and recorded with the pause.
///
/// Semantics, as Bluesky users know them:
/// - [`pause`](Self::pause) takes effect at the next point boundary: the point in progress is
///   completed and written. With `now = true` the point in progress is abandoned (nothing of
///   it is written) and taken again after the resume.
/// - [`resume`](Self::resume) lets the plan go on with the next point; every remaining point
///   is taken.
/// - [`stop`](Self::stop) ends the run after the point in progress (at once while paused);
///   everything acquired is saved and the run's status is `stopped`.
/// - A suspender (`[[plan.suspend]]`) holds the plan like a pause-now while its condition
///   holds; the plan goes on by itself once it clears. [`resume`](Self::resume) cannot override
///   it.
///
/// ```
/// use ensemble::control::{Phase, RunControl};
///
/// let control = RunControl::new();
/// // No point plan has started: nothing to pause yet.
/// assert!(control.pause(false, "docs").is_err());
/// control.begin_plan(Some(10));
/// let state = control.pause(false, "docs").expect("a running plan can be paused");
/// assert_eq!(state.phase, Phase::Pausing);
/// assert_eq!(control.resume("docs").expect("pausing").phase, Phase::Running);
/// ```
#[derive(Clone)]
pub struct RunControl {
    shared: Arc<Shared>,
}

struct Shared {
    inner: Mutex<Inner>,
    /// Bumped on every change; the plan (and anyone watching the state) waits on it.
    wake: watch::Sender<u64>,
    /// Whether the plan must look at the state at its next point boundary: its only per-point
    /// cost when nobody asks for anything.
    attention: AtomicBool,
    points_done: AtomicU64,
    /// The pauses as the streaming instruments follow them ([`RunControl::pauses`]).
    pauses: watch::Sender<Pauses>,
}

#[derive(Default)]
struct Inner {
    /// Set once a point plan runs (its total points, if known up front).
    plan: Option<Option<u64>>,
    finished: bool,
    /// A pause asked for and not yet resumed, and whether it has taken effect.
    pause: Option<PauseRequest>,
    /// What holds the plan now besides a pause (suspenders, unreachable instruments), with
    /// the cause and its index in `log`.
    holds: BTreeMap<Hold, (String, usize)>,
    /// Suspenders that have not seen their first value yet (they hold the plan).
    unready: BTreeMap<usize, String>,
    stop: Option<String>,
    log: Vec<Interruption>,
}

/// What holds a plan like a pause-now until it clears by itself: [`RunControl::resume`] cannot
/// lift it. Suspenders sort before instruments, so a suspender's cause is the one shown.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Hold {
    /// `[[plan.suspend]]` number `i` tripped.
    Suspender(usize),
    /// This instrument cannot be reached.
    Instrument(String),
}

impl Hold {
    /// How `run.json` records it.
    fn kind(&self) -> InterruptionKind {
        match self {
            Hold::Suspender(_) => InterruptionKind::Suspend,
            Hold::Instrument(_) => InterruptionKind::Reconnect,
        }
    }
}

struct PauseRequest {
    by: String,
    now: bool,
    requested_at: DateTime<Utc>,
    /// Once it took effect: its index in `log`, and when.
    taken: Option<(usize, Instant)>,
}

impl PauseRequest {
    /// Its index in `log`, once it took effect.
    fn logged(&self) -> Option<usize> {
        self.taken.map(|(index, _)| index)
    }
}

/// Where a run's plan is, for a status line or a web page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// No point plan runs (a stream plan, or the plan has not started).
    Idle,
    /// Taking points.
    Running,
    /// A pause was asked for; it takes effect at the next point boundary.
    Pausing,
    /// Paused until resumed.
    Paused,
    /// Held by a suspender until its condition clears.
    Suspended,
    /// A stop was asked for; the run is ending.
    Stopping,
    /// The plan has ended.
    Finished,
}

/// A snapshot of a run's control state ([`RunControl::state`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlState {
    /// Where the plan is.
    pub phase: Phase,
    /// Why it is held: who paused it, or the suspender's cause.
    pub cause: Option<String>,
    /// Points written so far.
    pub points_done: u64,
    /// Points the plan has, if known up front.
    pub points_total: Option<u64>,
    /// Every pause and suspension so far, in order.
    pub interruptions: Vec<Interruption>,
}

/// Why a control request was refused; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// There is no point plan running (a stream plan, or it has not started).
    #[error("this run has no point plan running, so there is nothing to pause or resume")]
    NoPlan,
    /// The plan has ended.
    #[error("the plan has already ended")]
    Finished,
    /// The run is stopping.
    #[error("the run is stopping (asked by {0})")]
    Stopping(String),
    /// Resume without a pause.
    #[error("the plan is not paused")]
    NotPaused,
    /// Resume while a suspender holds the plan: it goes on by itself once the cause clears.
    #[error("the plan is suspended ({0}); it resumes by itself once that clears")]
    Suspended(String),
}

/// What the plan does at a point boundary ([`RunControl::gate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Take the next point; `resumed` when the plan was held (paused or suspended) before it.
    Go {
        /// The plan was held before this point.
        resumed: bool,
    },
    /// End the plan: a stop was asked for.
    Stop,
}

impl std::fmt::Debug for RunControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.state();
        f.debug_struct("RunControl")
            .field("phase", &state.phase)
            .field("points_done", &state.points_done)
            .finish()
    }
}

impl Default for RunControl {
    fn default() -> Self {
        Self::new()
    }
}

impl RunControl {
    /// A handle for a run whose plan has not started.
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner::default()),
                wake: watch::channel(0).0,
                attention: AtomicBool::new(false),
                points_done: AtomicU64::new(0),
                pauses: watch::channel(Pauses::default()).0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every mutation below is completed under the lock; a panic elsewhere cannot leave the
        // state half changed.
        self.shared.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the plan and watchers; `attention` says whether the plan must look.
    fn changed(&self, inner: &Inner) {
        let attention = inner.stop.is_some()
            || inner.pause.is_some()
            || !inner.holds.is_empty()
            || !inner.unready.is_empty();
        self.shared.attention.store(attention, Ordering::Release);
        self.shared.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Asks the plan to pause at the next point boundary, or at once with `now` (the point in
    /// progress is abandoned and taken again after the resume). `by` names who asked.
    ///
    /// A pause while one is pending or in effect is accepted (a `now` upgrades a pending one).
    /// Errors: no point plan runs, it has ended, or the run is stopping.
    pub fn pause(&self, now: bool, by: &str) -> Result<ControlState, ControlError> {
        let mut inner = self.lock();
        inner.refuse_unless_running()?;
        match &mut inner.pause {
            Some(p) => p.now |= now && p.taken.is_none(),
            None => {
                inner.pause = Some(PauseRequest {
                    by: by.to_string(),
                    now,
                    requested_at: Utc::now(),
                    taken: None,
                })
            }
        }
        self.changed(&inner);
        Ok(self.snapshot(&inner))
    }

    /// Resumes a paused plan (or cancels a pause that has not taken effect yet). `by` names
    /// who asked. Errors: not paused, held by a suspender, ended, or stopping.
    pub fn resume(&self, by: &str) -> Result<ControlState, ControlError> {
        let mut inner = self.lock();
        inner.refuse_unless_running()?;
        let Some(pause) = inner.pause.take() else {
            return Err(match inner.holds.values().next() {
                Some((cause, _)) => ControlError::Suspended(cause.clone()),
                None => ControlError::NotPaused,
            });
        };
        if let Some(i) = pause.logged() {
            inner.log[i].close(by);
        }
        self.pause_ended(&pause);
        self.changed(&inner);
        Ok(self.snapshot(&inner))
    }

    /// A pause that had taken effect has ended: its time counts, the streams go on. The time
    /// paused is kept only in the published [`Pauses`].
    fn pause_ended(&self, pause: &PauseRequest) {
        if let Some((_, since)) = pause.taken {
            self.shared.pauses.send_modify(|p| {
                p.paused = false;
                p.paused_for += since.elapsed();
                p.since = None;
            });
        }
    }

    /// A pause has taken effect now (it is `log[index]`): the streams that follow pauses
    /// hold.
    fn pause_began(&self, inner: &mut Inner, index: usize) {
        let now = Instant::now();
        if let Some(p) = inner.pause.as_mut() {
            p.taken = Some((index, now));
        }
        self.shared.pauses.send_modify(|p| {
            p.paused = true;
            p.since = Some(now);
        });
    }

    /// The plan's pauses as its streaming instruments follow them: whether one is in effect,
    /// and how long the ended ones lasted (suspensions and reconnections are not pauses).
    pub fn pauses(&self) -> watch::Receiver<Pauses> {
        self.shared.pauses.subscribe()
    }

    /// Asks the run to stop: after the point in progress, or at once while paused or
    /// suspended. Everything acquired is saved; the status is `stopped`. `by` names who asked.
    /// Works for every plan (a stream plan stops too). Errors: the plan has already ended.
    pub fn stop(&self, by: &str) -> Result<ControlState, ControlError> {
        let mut inner = self.lock();
        if inner.finished {
            return Err(ControlError::Finished);
        }
        inner.stop.get_or_insert_with(|| by.to_string());
        self.changed(&inner);
        Ok(self.snapshot(&inner))
    }

    /// The state now.
    pub fn state(&self) -> ControlState {
        let inner = self.lock();
        self.snapshot(&inner)
    }

    /// Waits until the state changes (a request, a suspension, a point boundary that took a
    /// pause, the plan's end). Points taken do not count as changes.
    pub async fn changed_state(&self) {
        let mut rx = self.shared.wake.subscribe();
        let _ = rx.changed().await;
    }

    /// Who asked for a stop, if anyone has.
    pub fn stop_asked(&self) -> Option<String> {
        self.lock().stop.clone()
    }

    /// Resolves with who asked once a stop is asked for.
    pub async fn stop_requested(&self) -> String {
        let mut rx = self.shared.wake.subscribe();
        loop {
            if let Some(by) = self.lock().stop.clone() {
                return by;
            }
            if rx.changed().await.is_err() {
                // The sender lives in `self`; it cannot be gone while we hold `self`.
                std::future::pending::<()>().await;
            }
        }
    }

    fn snapshot(&self, inner: &Inner) -> ControlState {
        let (phase, cause) = if inner.finished {
            (Phase::Finished, None)
        } else if let Some(by) = &inner.stop {
            (Phase::Stopping, Some(format!("stop asked by {by}")))
        } else if let Some((cause, _)) = inner.holds.values().next() {
            (Phase::Suspended, Some(cause.clone()))
        } else if let Some(what) = inner.unready.values().next() {
            (
                Phase::Suspended,
                Some(format!("waiting for the first value of {what}")),
            )
        } else {
            match (&inner.pause, inner.plan) {
                (Some(p), _) if p.taken.is_some() => {
                    (Phase::Paused, Some(format!("paused by {}", p.by)))
                }
                (Some(p), _) => (Phase::Pausing, Some(format!("pause asked by {}", p.by))),
                (None, Some(_)) => (Phase::Running, None),
                (None, None) => (Phase::Idle, None),
            }
        };
        ControlState {
            phase,
            cause,
            points_done: self.shared.points_done.load(Ordering::Relaxed),
            points_total: inner.plan.flatten(),
            interruptions: inner.log.clone(),
        }
    }

    /// Every pause and suspension so far, for the manifest.
    pub fn interruptions(&self) -> Vec<Interruption> {
        self.lock().log.clone()
    }

    // ---- The plan's side. ----

    /// Called by a point plan when it starts, with its points if known up front; from now on
    /// it can be paused.
    pub fn begin_plan(&self, total: Option<u64>) {
        let mut inner = self.lock();
        inner.plan = Some(total);
        self.changed(&inner);
    }

    /// Called by a `duration` (stream) plan's clock when it starts: from now on it can be
    /// paused. A pause takes effect at once (there is no point in progress), and `now` makes
    /// no difference.
    pub fn begin_stream(&self) {
        self.begin_plan(None);
    }

    /// Resolves once the plan must call [`gate`](Self::gate): a pause, stop or suspension is
    /// asked for.
    pub async fn attention(&self) {
        let mut rx = self.shared.wake.subscribe();
        while !self.needs_attention() {
            if rx.changed().await.is_err() {
                // The sender lives in `self`; it cannot be gone while we hold `self`.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Holds the plan until suspender `id` has seen its first value (`what` names it).
    pub fn await_first_value(&self, id: usize, what: &str) {
        let mut inner = self.lock();
        inner.unready.insert(id, what.to_string());
        self.changed(&inner);
    }

    /// Suspender `id` has seen its first value.
    pub fn first_value_seen(&self, id: usize) {
        let mut inner = self.lock();
        if inner.unready.remove(&id).is_some() {
            self.changed(&inner);
        }
    }

    /// Records that `points` points are done.
    pub fn set_points_done(&self, points: u64) {
        self.shared.points_done.store(points, Ordering::Relaxed);
    }

    /// Whether the plan must call [`gate`](Self::gate) before its next point (a pause, stop or
    /// suspension waits). One atomic load.
    pub fn needs_attention(&self) -> bool {
        self.shared.attention.load(Ordering::Acquire)
    }

    /// Called by the plan at a point boundary, before taking point `point`: holds it while a
    /// pause or suspension is in effect, and tells it whether to go on or stop.
    pub async fn gate(&self, point: u64) -> Gate {
        let mut rx = self.shared.wake.subscribe();
        let mut held = false;
        loop {
            {
                let mut inner = self.lock();
                if inner.stop.is_some() {
                    return Gate::Stop;
                }
                let Inner { pause, log, .. } = &mut *inner;
                if let Some(p) = pause.as_ref().filter(|p| p.taken.is_none()) {
                    log.push(Interruption::pause(&p.by, p.now, p.requested_at, point));
                    let index = log.len() - 1;
                    self.pause_began(&mut inner, index);
                    self.changed(&inner);
                }
                let holding =
                    inner.pause.is_some() || !inner.holds.is_empty() || !inner.unready.is_empty();
                if !holding {
                    return Gate::Go { resumed: held };
                }
                held |= inner.pause.is_some() || !inner.holds.is_empty();
            }
            if rx.changed().await.is_err() {
                return Gate::Stop;
            }
        }
    }

    /// Resolves when the point in progress must be abandoned: a pause with `now`, or a
    /// suspension. A plan selects on it while it takes a point.
    pub async fn interrupted(&self) {
        let mut rx = self.shared.wake.subscribe();
        loop {
            {
                let inner = self.lock();
                let pause_now = inner.pause.as_ref().is_some_and(|p| p.now);
                if pause_now || !inner.holds.is_empty() {
                    return;
                }
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Records that point `point` was abandoned (to be taken again) by the interruptions now
    /// in effect.
    pub fn abandoned(&self, point: u64) {
        let mut inner = self.lock();
        // A pause `now` takes effect here, before the gate sees it.
        let Inner { pause, log, .. } = &mut *inner;
        if let Some(p) = pause.as_ref().filter(|p| p.taken.is_none() && p.now) {
            log.push(Interruption::pause(&p.by, true, p.requested_at, point));
            let index = log.len() - 1;
            self.pause_began(&mut inner, index);
        }
        let open: BTreeSet<usize> = inner
            .holds
            .values()
            .map(|(_, i)| *i)
            .chain(inner.pause.as_ref().and_then(PauseRequest::logged))
            .collect();
        for i in open {
            inner.log[i].abandoned_point.get_or_insert(point);
        }
    }

    /// Suspender `id` tripped: holds the plan (abandoning the point in progress) until
    /// [`clear_suspension`](Self::clear_suspension). `cause` says why, `point` is the next
    /// point the plan will take.
    pub fn suspend(&self, id: usize, by: &str, cause: &str) {
        self.hold(Hold::Suspender(id), by, cause);
    }

    /// Suspender `id`'s condition cleared (`why`): the plan may go on.
    pub fn clear_suspension(&self, id: usize, why: &str) {
        self.release(&Hold::Suspender(id), why);
    }

    /// Holds the plan while `instrument` cannot be reached (`cause` says why), recorded as a
    /// `reconnect` interruption, until [`release_instrument`](Self::release_instrument).
    pub fn hold_for_instrument(&self, instrument: &str, cause: &str) {
        let hold = Hold::Instrument(instrument.to_string());
        self.hold(hold, instrument, &format!("{instrument}: {cause}"));
    }

    /// `instrument` is back (`why`: reconnected, setpoints restored): the plan may go on.
    pub fn release_instrument(&self, instrument: &str, why: &str) {
        self.release(&Hold::Instrument(instrument.to_string()), why);
    }

    /// Holds the plan for `hold` (abandoning the point in progress), logged as asked by `by`
    /// for `cause`; nothing when it already holds or the plan has ended.
    fn hold(&self, hold: Hold, by: &str, cause: &str) {
        let mut inner = self.lock();
        if inner.holds.contains_key(&hold) || inner.finished {
            return;
        }
        let point = self.shared.points_done.load(Ordering::Relaxed);
        inner
            .log
            .push(Interruption::hold(hold.kind(), by, cause, point));
        let index = inner.log.len() - 1;
        inner.holds.insert(hold, (cause.to_string(), index));
        self.changed(&inner);
    }

    /// `hold` cleared (`why`): its log entry is closed and the plan may go on.
    fn release(&self, hold: &Hold, why: &str) {
        let mut inner = self.lock();
        if let Some((_, i)) = inner.holds.remove(hold) {
            inner.log[i].close(why);
            self.changed(&inner);
        }
    }

    /// Called once when the plan has ended: closes what is still open (a stop while paused).
    pub fn finish(&self) {
        let mut inner = self.lock();
        inner.finished = true;
        if let Some(pause) = inner.pause.take() {
            self.pause_ended(&pause);
        }
        inner.holds.clear();
        inner.unready.clear();
        for entry in inner.log.iter_mut().filter(|e| e.resumed_at.is_none()) {
            entry.ended_by_stop = true;
        }
        self.changed(&inner);
    }
}

impl Inner {
    fn refuse_unless_running(&self) -> Result<(), ControlError> {
        if self.finished {
            return Err(ControlError::Finished);
        }
        if let Some(by) = &self.stop {
            return Err(ControlError::Stopping(by.clone()));
        }
        if self.plan.is_none() {
            return Err(ControlError::NoPlan);
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "handle_tests.rs"]
mod tests;
