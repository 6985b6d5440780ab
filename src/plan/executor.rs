//! The plan executor: sets each point's setpoints, waits, reads the detectors, and writes one
//! row per point to the `primary` stream.
//!
//! It talks to instruments through a [`PlanTarget`], so the logic runs (and is tested) without
//! actors; in a run the target is [`Drivers`](super::Drivers).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, Float64Array, RecordBatch, TimestampNanosecondArray, UInt64Array};
use arrow_schema::SchemaRef;
use ensemble_actors::batch::{ChannelSpec, stream_schema};
use ensemble_actors::instruments::sim::SIM_SETTABLE;
use ensemble_actors::outputs::Outputs;
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

use super::steps::PointPlan;
use crate::config::{InstrumentKind, InstrumentSpec};

/// Name of the stream a count, scan or grid plan writes.
pub const PRIMARY_STREAM: &str = "primary";

/// Rows buffered before a batch is emitted...
const FLUSH_ROWS: usize = 256;
/// ...or how long the oldest buffered row may wait.
const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

/// What a plan asks of the instruments.
///
/// `set` returns the value reached (a readback where the instrument has one) or `Err` with a
/// sentence saying why not; the executor then ends the plan as failed. `read` returns one value
/// per channel of the instrument (null where it had none) or `Err`; the executor counts the
/// failure and writes nulls for that detector at that point.
pub trait PlanTarget {
    /// Sets `instrument`'s `param` to `value`.
    fn set(
        &self,
        instrument: &str,
        param: &str,
        value: f64,
    ) -> impl Future<Output = Result<f64, String>>;
    /// Reads every channel of `instrument` now.
    fn read(&self, instrument: &str) -> impl Future<Output = Result<Vec<Option<f64>>, String>>;
}

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
}

/// What a plan did, for the run manifest (the `primary` stream's `instrument_report`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PlanReport {
    /// `count`, `scan` or `grid`.
    pub plan: String,
    /// Points the plan has.
    pub total_points: u64,
    /// Points done (rows written to `primary`).
    pub points_done: u64,
    /// Whether it stopped before the last point (on request or after a failure).
    pub stopped_early: bool,
    /// Per detector: readings that failed (written as nulls).
    pub read_failures: std::collections::BTreeMap<String, u64>,
    /// The last read failure, to say why.
    pub last_read_error: Option<String>,
    /// Why the plan failed, if it did.
    pub error: Option<String>,
}

/// The columns of the `primary` stream.
#[derive(Debug, Clone)]
pub struct PrimaryLayout {
    /// `timestamp`, `seq`, one column per setpoint, then one per detector channel.
    pub schema: SchemaRef,
    /// The columns after `timestamp` and `seq`, with units.
    pub channels: Vec<ChannelSpec>,
    /// Channels per detector, in detector order.
    pub detector_widths: Vec<usize>,
}

impl PrimaryLayout {
    /// The layout for `plan` over the compiled `instruments`: setpoints as `INSTRUMENT.PARAM`
    /// (the unit of a sim's `offset` and `amplitude` is the instrument's, of `frequency_hz`
    /// `Hz`; SCPI parameters have none), then each detector's channels as
    /// `INSTRUMENT.CHANNEL`.
    pub fn new(plan: &PointPlan, instruments: &[InstrumentSpec]) -> Self {
        let find = |name: &str| instruments.iter().find(|i| i.name == name);
        let mut channels = Vec::new();
        for axis in &plan.axes {
            let unit = match find(&axis.instrument).map(|i| &i.kind) {
                Some(InstrumentKind::Sim(_)) if axis.param == SIM_SETTABLE[2] => "Hz".to_string(),
                Some(InstrumentKind::Sim(c)) => c.unit.clone(),
                _ => String::new(),
            };
            channels.push(ChannelSpec::new(axis.column(), unit));
        }
        let mut detector_widths = Vec::new();
        for name in &plan.detectors {
            let own: Vec<ChannelSpec> = match find(name).map(|i| &i.kind) {
                Some(InstrumentKind::Sim(c)) => c
                    .channels
                    .iter()
                    .map(|ch| ChannelSpec::new(ch, &c.unit))
                    .collect(),
                Some(InstrumentKind::Scpi(c)) => c
                    .read
                    .iter()
                    .map(|r| ChannelSpec::new(&r.channel, &r.unit))
                    .collect(),
                None => Vec::new(),
            };
            detector_widths.push(own.len());
            channels.extend(
                own.into_iter()
                    .map(|c| ChannelSpec::new(format!("{name}.{}", c.name), c.unit)),
            );
        }
        Self {
            schema: stream_schema(&channels),
            channels,
            detector_widths,
        }
    }
}

/// Runs one point plan, writing to the `primary` stream's outputs.
pub struct PlanExecutor {
    plan: PointPlan,
    layout: PrimaryLayout,
    outputs: Outputs,
    /// Buffered rows: timestamps and one column per channel, reused between batches.
    timestamps: Vec<i64>,
    columns: Vec<Vec<Option<f64>>>,
    next_seq: u64,
    oldest: Option<Instant>,
}

impl PlanExecutor {
    /// An executor for `plan`, whose rows have `layout`, writing to `outputs`.
    pub fn new(plan: PointPlan, layout: PrimaryLayout, outputs: Outputs) -> Self {
        let width = layout.channels.len();
        Self {
            plan,
            layout,
            outputs,
            timestamps: Vec::with_capacity(FLUSH_ROWS),
            columns: vec![Vec::with_capacity(FLUSH_ROWS); width],
            next_seq: 0,
            oldest: None,
        }
    }

    /// Visits every point in order until the plan is done or `stop` turns true (checked before
    /// each point: the current point is always finished), then emits what is buffered and
    /// ends the stream.
    ///
    /// Each point: the setpoints that changed since the previous point are set in axis order
    /// (outermost first) and their reached values kept; then `settle`; then
    /// `readings_per_point` rounds, each reading every detector at once; the row holds the
    /// time of the first round, the reached setpoints, and per channel the mean of the
    /// readings that gave a value (null if none did). `delay` is waited before every point
    /// but the first, and a stop cuts it short.
    ///
    /// Returns the report, and `Err` if a set failed (the plan ends there; earlier points are
    /// written).
    pub async fn run<T: PlanTarget>(
        mut self,
        target: &T,
        mut stop: watch::Receiver<bool>,
    ) -> (PlanReport, Result<(), PlanError>) {
        let total = self.plan.total_points();
        let mut report = PlanReport {
            plan: self.plan.kind.name().to_string(),
            total_points: total,
            ..Default::default()
        };
        let axes = self.plan.axes.clone();
        let mut reached: Vec<Option<f64>> = vec![None; axes.len()];
        let mut previous: Option<Vec<usize>> = None;
        let mut result = Ok(());
        let rounds = self.plan.readings_per_point.max(1);
        let width: usize = self.layout.detector_widths.iter().sum();
        let mut sums = vec![(0.0f64, 0u32); width];
        'points: for k in 0..total {
            if *stop.borrow() {
                break;
            }
            if k > 0 && !self.plan.delay.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(self.plan.delay) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
            }
            let indices = self.plan.indices(k);
            for (a, axis) in axes.iter().enumerate() {
                if previous.as_ref().is_some_and(|p| p[a] == indices[a]) {
                    continue;
                }
                let value = axis.points[indices[a]];
                match target.set(&axis.instrument, &axis.param, value).await {
                    Ok(v) => reached[a] = Some(v),
                    Err(reason) => {
                        let e = PlanError::Set {
                            instrument: axis.instrument.clone(),
                            param: axis.param.clone(),
                            value,
                            point: k,
                            reason,
                        };
                        tracing::error!(stream = PRIMARY_STREAM, "{e}.");
                        report.error = Some(e.to_string());
                        result = Err(e);
                        break 'points;
                    }
                }
            }
            previous = Some(indices);
            if !self.plan.settle.is_zero() {
                tokio::time::sleep(self.plan.settle).await;
            }
            let timestamp = now_ns();
            sums.iter_mut().for_each(|s| *s = (0.0, 0));
            for _ in 0..rounds {
                let reads =
                    futures::future::join_all(self.plan.detectors.iter().map(|d| target.read(d)))
                        .await;
                let mut offset = 0;
                for ((name, result), &w) in self
                    .plan
                    .detectors
                    .iter()
                    .zip(reads)
                    .zip(&self.layout.detector_widths)
                {
                    match result {
                        Ok(values) if values.len() == w => {
                            for (s, v) in sums[offset..offset + w].iter_mut().zip(values) {
                                if let Some(v) = v {
                                    s.0 += v;
                                    s.1 += 1;
                                }
                            }
                        }
                        Ok(values) => {
                            *report.read_failures.entry(name.clone()).or_default() += 1;
                            report.last_read_error =
                                Some(format!("{name}: {} values for {w} channels", values.len()));
                        }
                        Err(e) => {
                            *report.read_failures.entry(name.clone()).or_default() += 1;
                            report.last_read_error = Some(format!("{name}: {e}"));
                        }
                    }
                    offset += w;
                }
            }
            self.push_row(timestamp, &reached, &sums);
            report.points_done += 1;
            if self.timestamps.len() >= FLUSH_ROWS
                || self.oldest.is_some_and(|t| t.elapsed() >= FLUSH_INTERVAL)
            {
                self.flush().await;
            }
        }
        report.stopped_early = report.points_done < total;
        self.flush().await;
        self.outputs.end().await;
        (report, result)
    }

    fn push_row(&mut self, timestamp: i64, reached: &[Option<f64>], sums: &[(f64, u32)]) {
        self.oldest.get_or_insert_with(Instant::now);
        self.timestamps.push(timestamp);
        let values = reached.iter().copied().chain(
            sums.iter()
                .map(|&(sum, n)| (n > 0).then(|| sum / f64::from(n))),
        );
        for (column, v) in self.columns.iter_mut().zip(values) {
            column.push(v);
        }
    }

    async fn flush(&mut self) {
        self.oldest = None;
        let rows = self.timestamps.len();
        if rows == 0 {
            return;
        }
        let first = self.next_seq;
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len() + 2);
        arrays.push(Arc::new(
            TimestampNanosecondArray::from(std::mem::take(&mut self.timestamps))
                .with_timezone("UTC"),
        ));
        arrays.push(Arc::new(UInt64Array::from_iter_values(
            first..first + rows as u64,
        )));
        for column in &mut self.columns {
            arrays.push(Arc::new(Float64Array::from(std::mem::take(column))));
        }
        self.next_seq += rows as u64;
        match RecordBatch::try_new(self.layout.schema.clone(), arrays) {
            Ok(batch) => self.outputs.emit(first, batch).await,
            // The columns are built from the layout's own channel list; this cannot happen.
            Err(e) => {
                tracing::error!(stream = PRIMARY_STREAM, error = %e, "Could not build a batch; rows lost.")
            }
        }
    }
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, UInt64Type};
    use ensemble_actors::batch::StreamEvent;
    use ensemble_actors::link::{Delivery, link};
    use ensemble_actors::stats::{LinkStats, StreamStats};

    use super::*;
    use crate::plan::{Axis, PointKind};

    /// A fake instrument set: `x.p` is settable (reached value = target + 0.5, or an error at
    /// `fail_at`); `d` reads two channels: the last set value, and null every other reading.
    #[derive(Default)]
    struct Fake {
        value: RefCell<f64>,
        reads: RefCell<u64>,
        sets: RefCell<Vec<f64>>,
        fail_at: Option<f64>,
    }

    impl PlanTarget for Fake {
        async fn set(&self, _: &str, _: &str, value: f64) -> Result<f64, String> {
            if self.fail_at == Some(value) {
                return Err("refused".into());
            }
            self.sets.borrow_mut().push(value);
            *self.value.borrow_mut() = value;
            Ok(value + 0.5)
        }
        async fn read(&self, _: &str) -> Result<Vec<Option<f64>>, String> {
            let n = {
                let mut r = self.reads.borrow_mut();
                *r += 1;
                *r
            };
            let v = *self.value.borrow();
            Ok(vec![Some(v + n as f64), (n % 2 == 0).then_some(1.0)])
        }
    }

    fn plan(points: Vec<f64>, rounds: u32) -> PointPlan {
        PointPlan {
            kind: PointKind::Scan,
            axes: vec![Axis::new("x", "p", points)],
            snake: false,
            num: 1,
            detectors: vec!["d".into()],
            readings_per_point: rounds,
            settle: Duration::ZERO,
            delay: Duration::ZERO,
        }
    }

    fn layout() -> PrimaryLayout {
        let channels = vec![
            ChannelSpec::new("x.p", ""),
            ChannelSpec::new("d.a", "V"),
            ChannelSpec::new("d.b", "V"),
        ];
        PrimaryLayout {
            schema: stream_schema(&channels),
            channels,
            detector_widths: vec![2],
        }
    }

    async fn run_plan(
        p: PointPlan,
        target: &Fake,
        stop: bool,
    ) -> (PlanReport, Result<(), PlanError>, Vec<RecordBatch>) {
        let stats = Arc::new(LinkStats::default());
        let (tx, rx) = link(1024, Delivery::Lossless, stats);
        let outputs = Outputs::new(
            PRIMARY_STREAM.into(),
            vec![tx],
            Arc::new(StreamStats::default()),
        );
        let (_stop_tx, stop_rx) = watch::channel(stop);
        let (report, result) = PlanExecutor::new(p, layout(), outputs)
            .run(target, stop_rx)
            .await;
        let mut batches = Vec::new();
        while let StreamEvent::Data(b) = rx.pop().await {
            batches.push((*b.batch).clone());
        }
        (report, result, batches)
    }

    #[tokio::test]
    async fn one_row_per_point_with_reached_setpoints_and_averaged_readings() {
        let fake = Fake::default();
        let (report, result, batches) = run_plan(plan(vec![1.0, 2.0, 3.0], 2), &fake, false).await;
        assert_eq!(result, Ok(()));
        assert_eq!((report.points_done, report.total_points), (3, 3));
        assert!(!report.stopped_early);
        let b = &batches[0];
        assert_eq!(b.num_rows(), 3);
        assert_eq!(
            b.column(1).as_primitive::<UInt64Type>().values().to_vec(),
            vec![0, 1, 2]
        );
        let sp = b.column(2).as_primitive::<Float64Type>();
        assert_eq!(
            sp.values().to_vec(),
            vec![1.5, 2.5, 3.5],
            "the reached values"
        );
        // Point 0 reads n = 1, 2: a = (1+1 + 1+2) / 2; b: only n = 2 gives a value.
        let a = b.column(3).as_primitive::<Float64Type>();
        assert_eq!(a.values().to_vec(), vec![2.5, 5.5, 8.5]);
        let nb = b.column(4).as_primitive::<Float64Type>();
        assert_eq!(nb.value(0), 1.0);
        assert_eq!(*fake.sets.borrow(), vec![1.0, 2.0, 3.0]);
    }

    #[tokio::test]
    async fn a_setpoint_is_only_set_when_it_changes() {
        let fake = Fake::default();
        let mut p = plan(vec![1.0, 2.0], 1);
        p.kind = PointKind::Grid;
        p.axes.push(Axis::new("x", "q", vec![7.0, 8.0, 9.0]));
        let (report, _, _) = run_plan(p, &fake, false).await;
        assert_eq!(report.points_done, 6);
        assert_eq!(
            *fake.sets.borrow(),
            vec![1.0, 7.0, 8.0, 9.0, 2.0, 7.0, 8.0, 9.0]
        );
    }

    #[tokio::test]
    async fn a_failed_set_ends_the_plan_with_the_points_before_it_saved() {
        let fake = Fake {
            fail_at: Some(3.0),
            ..Default::default()
        };
        let (report, result, batches) =
            run_plan(plan(vec![1.0, 2.0, 3.0, 4.0], 1), &fake, false).await;
        assert!(
            matches!(result, Err(PlanError::Set { point: 2, .. })),
            "{result:?}"
        );
        assert_eq!(report.points_done, 2);
        assert!(report.stopped_early);
        assert_eq!(batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 2);
        assert!(report.error.is_some_and(|e| e.contains("x.p to 3")));
    }

    #[tokio::test]
    async fn a_stop_before_the_first_point_writes_nothing_and_ends_the_stream() {
        let fake = Fake::default();
        let (report, result, batches) = run_plan(plan(vec![1.0, 2.0], 1), &fake, true).await;
        assert_eq!(result, Ok(()));
        assert_eq!(report.points_done, 0);
        assert!(report.stopped_early);
        assert!(batches.is_empty());
    }
}
