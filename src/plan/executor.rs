//! The plan executor: sets each point's setpoints, waits, reads the detectors, and writes one
//! row per point to the `primary` stream, pausing and suspending as its [`RunControl`] says.
//!
//! It talks to instruments through a [`PlanTarget`], so the logic runs (and is tested) without
//! actors; in a run the target is [`Drivers`](super::Drivers).
//!
//! An instrument that cannot be reached (its connection lost) holds the plan like a
//! suspension, recorded in `run.json` as a `reconnect` interruption: the point in progress is
//! abandoned, the instrument is brought back ([`PlanTarget::recover`]: reconnected, and its
//! last commanded setpoints sent again and read back) and only then is the point taken again.
//!
//! Speed: a point whose instruments answer at once (simulated ones, through
//! [`PlanTarget::set_now`] and [`PlanTarget::read_now`]) takes no await, no allocation, no
//! syscall and no message to another thread: the per-point cost is a few lock-free checks,
//! the signal evaluation and a clock read. Rows are emitted in batches of [`FLUSH_ROWS`].

use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use super::cursor::Cursor;
use super::rows::{PRIMARY_STREAM, PrimaryLayout, RowBuffer};
use super::steps::{PointKind, PointPlan};
use super::target::{PlanTarget, TargetError};
use crate::control::{Gate, RunControl};
use ensemble_actors::outputs::Outputs;

/// Rows buffered before a batch is emitted...
const FLUSH_ROWS: usize = 4096;
/// ...or how long the oldest buffered row may wait.
const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

/// Why a plan ended early as a failure.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// A setpoint could not be set; the points before it are saved.
    #[error("plan: setting {instrument}.{param} to {value} failed at point {point}: {reason}")]
    Set {
        /// The instrument.
        instrument: String,
        /// The parameter.
        param: String,
        /// The target value.
        value: f64,
        /// The point (0-based).
        point: u64,
        /// Why.
        reason: String,
    },
    /// A `rel_scan` could not learn where its setpoint is.
    #[error("plan: the current value of {instrument}.{param} is unknown: {reason}")]
    Origin {
        /// The instrument.
        instrument: String,
        /// The parameter.
        param: String,
        /// Why.
        reason: String,
    },
}

/// What a plan did, for the run manifest (the `primary` stream's `instrument_report`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PlanReport {
    /// The plan type.
    pub plan: String,
    /// Points the plan has, if known up front.
    pub total_points: Option<u64>,
    /// Points done (rows written to `primary`).
    pub points_done: u64,
    /// Whether it stopped before the last point (on request or after a failure).
    pub stopped_early: bool,
    /// Repetitions begun (a `repeat`ed plan).
    pub repetitions: u64,
    /// Points abandoned by a pause `now` or a suspension, and taken again.
    pub points_retaken: u64,
    /// Per detector: readings that failed (written as nulls).
    pub read_failures: std::collections::BTreeMap<String, u64>,
    /// The last read failure, to say why.
    pub last_read_error: Option<String>,
    /// Why the plan failed, if it did.
    pub error: Option<String>,
    /// Seconds from the first point to the end of the last.
    pub seconds: f64,
}

/// How a point went.
enum Point {
    /// Taken: its row can be written.
    Taken(i64),
    /// Abandoned by a pause `now` or a suspension: take it again.
    Abandoned,
    /// A set failed: the plan ends.
    Failed(PlanError),
    /// An instrument cannot be reached: hold, recover it, take the point again.
    Lost {
        /// The instrument.
        instrument: String,
        /// Why.
        reason: String,
    },
}

/// Runs one point plan, writing to the `primary` stream's outputs.
pub struct PlanExecutor {
    plan: PointPlan,
    rows: RowBuffer,
    detector_widths: Vec<usize>,
    /// Index of an adaptive scan's target among the detector channels.
    target: Option<usize>,
}

/// Buffers of one point, reused for every point.
struct Scratch {
    setpoints: Vec<f64>,
    last_set: Vec<Option<f64>>,
    reached: Vec<Option<f64>>,
    sums: Vec<(f64, u32)>,
    reading: Vec<Option<f64>>,
    pending: Vec<usize>,
}

impl PlanExecutor {
    /// An executor for `plan`, whose rows have `layout`, writing to `outputs`.
    pub fn new(plan: PointPlan, layout: PrimaryLayout, outputs: Outputs) -> Self {
        let setpoints = plan.axes.len();
        let target = plan.adaptive.as_ref().and_then(|a| {
            layout
                .channels
                .iter()
                .position(|c| c.name == a.target)
                .and_then(|i| i.checked_sub(setpoints))
        });
        Self {
            detector_widths: layout.detector_widths.clone(),
            rows: RowBuffer::new(layout, outputs, FLUSH_ROWS),
            plan,
            target,
        }
    }

    /// Visits every point in order until the plan is done, a stop is asked for (`stop` turns
    /// true, or `control` is asked: the current point is always finished), or a set fails;
    /// then emits what is buffered and ends the stream.
    ///
    /// Each point: the setpoints that changed since the previous point are set in axis order
    /// (outermost first; after a pause or suspension, all of them) and their reached values
    /// kept; then `settle`; then `readings_per_point` rounds, each reading every detector at
    /// once; the row holds the time of the first round, the reached setpoints, per channel the
    /// mean of the readings that gave a value (null if none did), whether it is the first row
    /// after a pause or suspension, and the repetition. `delay` is waited before every point
    /// but the first, and a stop cuts it short.
    ///
    /// Before each point the executor passes `control`'s gate: a pause or suspension holds it
    /// there. A pause `now` or a suspension that comes while a point is in progress abandons
    /// that point (nothing of it is written) and it is taken again after the resume.
    pub async fn run<T: PlanTarget>(
        mut self,
        target: &T,
        mut stop: watch::Receiver<bool>,
        control: RunControl,
    ) -> (PlanReport, Result<(), PlanError>) {
        let total = self.plan.total_points();
        let mut report = PlanReport {
            plan: self.plan.kind.name().to_string(),
            total_points: total,
            ..Default::default()
        };
        control.begin_plan(total);
        let started = std::time::Instant::now();
        let result = self.points(target, &mut stop, &control, &mut report).await;
        report.seconds = started.elapsed().as_secs_f64();
        report.stopped_early = total.is_none_or(|t| report.points_done < t);
        if let Err(e) = &result {
            tracing::error!(stream = PRIMARY_STREAM, "{e}.");
            report.error = Some(e.to_string());
        }
        control.finish();
        self.rows.end().await;
        (report, result)
    }

    async fn points<T: PlanTarget>(
        &mut self,
        target: &T,
        stop: &mut watch::Receiver<bool>,
        control: &RunControl,
        report: &mut PlanReport,
    ) -> Result<(), PlanError> {
        let origin = self.origin(target)?;
        let mut cursor = Cursor::new(&self.plan, origin);
        let width: usize = self.detector_widths.iter().sum();
        let axes = self.plan.axes.len();
        let mut s = Scratch {
            setpoints: vec![0.0; axes],
            last_set: vec![None; axes],
            reached: vec![None; axes],
            sums: vec![(0.0, 0); width],
            reading: vec![None; self.detector_widths.iter().copied().max().unwrap_or(0)],
            pending: Vec::with_capacity(self.plan.detectors.len()),
        };
        let mut resumed = false;
        let mut first = true;
        let mut last_pass = None;
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            if control.needs_attention() {
                match control.gate(report.points_done).await {
                    Gate::Stop => return Ok(()),
                    Gate::Go { resumed: true } => {
                        resumed = true;
                        // Set everything again: the instruments may have moved meanwhile.
                        s.last_set.fill(None);
                    }
                    Gate::Go { resumed: false } => {}
                }
            }
            if !cursor.fill(&self.plan, &mut s.setpoints) {
                return Ok(());
            }
            if last_pass != Some(cursor.repetition()) {
                last_pass = Some(cursor.repetition());
                report.repetitions += 1;
            }
            if !first && !self.plan.delay.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(self.plan.delay) => {}
                    _ = stop.wait_for(|s| *s) => return Ok(()),
                    _ = control.interrupted() => continue,
                }
            }
            first = false;
            let k = report.points_done;
            let outcome = tokio::select! {
                biased;
                outcome = self.take_point(target, k, &mut s, report) => outcome,
                _ = control.interrupted() => Point::Abandoned,
            };
            match outcome {
                Point::Failed(e) => return Err(e),
                Point::Abandoned => {
                    control.abandoned(k);
                    report.points_retaken += 1;
                    s.last_set.fill(None);
                    continue;
                }
                Point::Lost { instrument, reason } => {
                    control.hold_for_instrument(&instrument, &reason);
                    control.abandoned(k);
                    report.points_retaken += 1;
                    match recover(target, &instrument, stop, control).await {
                        Some(what) => control.release_instrument(&instrument, &what),
                        None => return Ok(()),
                    }
                    // The instrument is back in its last commanded state (what `last_set`
                    // says); a pause or suspension meanwhile makes the gate set everything.
                    resumed = true;
                    continue;
                }
                Point::Taken(timestamp) => {
                    self.rows
                        .push(timestamp, &s.reached, &s.sums, resumed, cursor.repetition());
                    resumed = false;
                }
            }
            report.points_done += 1;
            control.set_points_done(report.points_done);
            let steer = self
                .target
                .and_then(|i| s.sums.get(i))
                .and_then(|&(sum, n)| (n > 0).then(|| sum / f64::from(n)));
            cursor.advance(steer);
            if self.rows.len() >= FLUSH_ROWS
                || self
                    .rows
                    .oldest()
                    .is_some_and(|t| t.elapsed() >= FLUSH_INTERVAL)
            {
                self.rows.flush().await;
                // A plan of instant points never waits otherwise: let the thread's other
                // tasks run once per batch.
                tokio::task::yield_now().await;
            }
        }
    }

    /// A `rel_scan`'s origin: each setpoint's current value (zeros for other plans).
    fn origin<T: PlanTarget>(&self, target: &T) -> Result<Vec<f64>, PlanError> {
        if self.plan.kind != PointKind::RelScan {
            return Ok(vec![0.0; self.plan.axes.len()]);
        }
        self.plan
            .axes
            .iter()
            .map(|a| {
                target
                    .current(&a.instrument, &a.param)
                    .map_err(|reason| PlanError::Origin {
                        instrument: a.instrument.clone(),
                        param: a.param.clone(),
                        reason,
                    })
            })
            .collect()
    }

    /// Takes point `k`: sets what changed, settles, reads; the sums of the readings land in
    /// `s.sums`. Returns the row's timestamp.
    async fn take_point<T: PlanTarget>(
        &self,
        target: &T,
        k: u64,
        s: &mut Scratch,
        report: &mut PlanReport,
    ) -> Point {
        for (a, axis) in self.plan.axes.iter().enumerate() {
            let value = s.setpoints[a];
            if s.last_set[a].is_some_and(|v| v.to_bits() == value.to_bits()) {
                continue;
            }
            let set = match target.set_now(&axis.instrument, &axis.param, value) {
                Some(r) => r,
                None => target.set(&axis.instrument, &axis.param, value).await,
            };
            match set {
                Ok(v) => {
                    s.reached[a] = Some(v);
                    s.last_set[a] = Some(value);
                }
                Err(TargetError::Unreachable(reason)) => {
                    s.last_set[a] = None;
                    return Point::Lost {
                        instrument: axis.instrument.clone(),
                        reason,
                    };
                }
                Err(TargetError::Failed(reason)) => {
                    return Point::Failed(PlanError::Set {
                        instrument: axis.instrument.clone(),
                        param: axis.param.clone(),
                        value,
                        point: k,
                        reason,
                    });
                }
            }
        }
        if !self.plan.settle.is_zero() {
            tokio::time::sleep(self.plan.settle).await;
        }
        let timestamp = now_ns();
        s.sums.fill((0.0, 0));
        for _ in 0..self.plan.readings_per_point.max(1) {
            if let Some((d, reason)) = self.read_round(target, s, report).await {
                return Point::Lost {
                    instrument: self.plan.detectors[d].clone(),
                    reason,
                };
            }
        }
        Point::Taken(timestamp)
    }

    /// One round: every detector read once (the ones that answer at once first, the others
    /// concurrently), each reading added to `s.sums`. Returns the first detector that could
    /// not be reached, and why.
    async fn read_round<T: PlanTarget>(
        &self,
        target: &T,
        s: &mut Scratch,
        report: &mut PlanReport,
    ) -> Option<(usize, String)> {
        s.pending.clear();
        let mut offset = 0;
        for (d, (name, &w)) in self
            .plan
            .detectors
            .iter()
            .zip(&self.detector_widths)
            .enumerate()
        {
            let out = &mut s.reading[..w];
            match target.read_now(name, out) {
                Some(Ok(n)) if n == w => add(&mut s.sums[offset..offset + w], out),
                Some(Ok(n)) => read_failed(report, name, format!("{n} values for {w} channels")),
                Some(Err(TargetError::Unreachable(why))) => return Some((d, why)),
                Some(Err(TargetError::Failed(e))) => read_failed(report, name, e),
                None => s.pending.push(d),
            }
            offset += w;
        }
        if s.pending.is_empty() {
            return None;
        }
        let reads = futures::future::join_all(
            s.pending
                .iter()
                .map(|&d| target.read(&self.plan.detectors[d])),
        )
        .await;
        let mut lost = None;
        for (&d, result) in s.pending.iter().zip(reads) {
            let name = &self.plan.detectors[d];
            let w = self.detector_widths[d];
            let offset: usize = self.detector_widths[..d].iter().sum();
            match result {
                Ok(values) if values.len() == w => add(&mut s.sums[offset..offset + w], &values),
                Ok(values) => read_failed(
                    report,
                    name,
                    format!("{} values for {w} channels", values.len()),
                ),
                Err(TargetError::Unreachable(why)) => {
                    lost.get_or_insert((d, why));
                }
                Err(TargetError::Failed(e)) => read_failed(report, name, e),
            }
        }
        lost
    }
}

/// How long to wait before asking an instrument that could not be recovered again.
const RECOVER_RETRY: Duration = Duration::from_millis(100);

/// Brings `instrument` back, trying until it works; `None` if a stop comes first.
async fn recover<T: PlanTarget>(
    target: &T,
    instrument: &str,
    stop: &mut watch::Receiver<bool>,
    control: &RunControl,
) -> Option<String> {
    loop {
        let attempt = async {
            match target.recover(instrument).await {
                Ok(what) => Some(what),
                Err(e) => {
                    tracing::debug!(component_id = %instrument, "Not recovered yet: {e}.");
                    tokio::time::sleep(RECOVER_RETRY).await;
                    None
                }
            }
        };
        tokio::select! {
            done = attempt => if let Some(what) = done {
                return Some(format!("{instrument} {what}"));
            },
            _ = stop.wait_for(|s| *s) => return None,
            _ = control.stop_requested() => return None,
        }
    }
}

fn add(sums: &mut [(f64, u32)], values: &[Option<f64>]) {
    for (s, v) in sums.iter_mut().zip(values) {
        if let Some(v) = v {
            s.0 += v;
            s.1 += 1;
        }
    }
}

fn read_failed(report: &mut PlanReport, name: &str, why: String) {
    match report.read_failures.get_mut(name) {
        Some(n) => *n += 1,
        None => {
            report.read_failures.insert(name.to_string(), 1);
        }
    }
    report.last_read_error = Some(format!("{name}: {why}"));
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

#[cfg(test)]
#[path = "executor_tests.rs"]
mod tests;
