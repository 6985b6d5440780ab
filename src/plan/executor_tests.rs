//! Tests of the plan executor against a fake instrument set.

use std::cell::RefCell;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, UInt64Type};
use ensemble_actors::batch::StreamEvent;
use ensemble_actors::link::{Delivery, link};
use ensemble_actors::stats::{LinkStats, StreamStats};

use super::*;
use crate::plan::{Axis, PointKind};
use arrow_array::RecordBatch;
use ensemble_actors::batch::{ChannelSpec, stream_schema};
use std::sync::Arc;

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
    async fn set(&self, _: &str, _: &str, value: f64) -> Result<f64, TargetError> {
        if self.fail_at == Some(value) {
            return Err("refused".into());
        }
        self.sets.borrow_mut().push(value);
        *self.value.borrow_mut() = value;
        Ok(value + 0.5)
    }
    async fn read(&self, _: &str) -> Result<Vec<Option<f64>>, TargetError> {
        let n = {
            let mut r = self.reads.borrow_mut();
            *r += 1;
            *r
        };
        let v = *self.value.borrow();
        Ok(vec![Some(v + n as f64), (n % 2 == 0).then_some(1.0)])
    }
    fn current(&self, _: &str, _: &str) -> Result<f64, String> {
        Ok(*self.value.borrow())
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
        adaptive: None,
        repeat: None,
        suspenders: Vec::new(),
    }
}

fn layout() -> PrimaryLayout {
    let channels = vec![
        ChannelSpec::new("x.p", ""),
        ChannelSpec::new("d.a", "V"),
        ChannelSpec::new("d.b", "V"),
    ];
    let _ = stream_schema(&channels);
    PrimaryLayout::from_channels(channels, vec![2], false)
}

/// The `primary` stream's outputs into one lossless link, and that link's receiving end.
fn primary() -> (Outputs, ensemble_actors::link::LinkReceiver) {
    let (tx, rx) = link(1024, Delivery::Lossless, Arc::new(LinkStats::default()));
    let outputs = Outputs::new(
        PRIMARY_STREAM.into(),
        vec![tx],
        Arc::new(StreamStats::default()),
    );
    (outputs, rx)
}

async fn run_plan(
    p: PointPlan,
    target: &Fake,
    stop: bool,
) -> (PlanReport, Result<(), PlanError>, Vec<RecordBatch>) {
    let (outputs, rx) = primary();
    let (_stop_tx, stop_rx) = watch::channel(stop);
    let (report, result) = PlanExecutor::new(p, layout(), outputs)
        .run(target, stop_rx, RunControl::new())
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
    assert_eq!((report.points_done, report.total_points), (3, Some(3)));
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
    let (report, result, batches) = run_plan(plan(vec![1.0, 2.0, 3.0, 4.0], 1), &fake, false).await;
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

#[tokio::test]
async fn a_repeated_plan_numbers_its_repetitions_and_marks_nothing_resumed() {
    let fake = Fake::default();
    let mut p = plan(vec![1.0, 2.0], 1);
    p.repeat = Some(crate::plan::Repeat::Times(3));
    let (outputs, rx) = primary();
    let channels = vec![
        ChannelSpec::new("x.p", ""),
        ChannelSpec::new("d.a", "V"),
        ChannelSpec::new("d.b", "V"),
    ];
    let layout = PrimaryLayout::from_channels(channels, vec![2], true);
    let (_stop_tx, stop_rx) = watch::channel(false);
    let (report, _) = PlanExecutor::new(p, layout, outputs)
        .run(&fake, stop_rx, RunControl::new())
        .await;
    assert_eq!((report.points_done, report.repetitions), (6, 3));
    let StreamEvent::Data(b) = rx.pop().await else {
        panic!("a batch");
    };
    let repeat = b.batch.column_by_name("repeat").expect("repeat column");
    assert_eq!(
        repeat.as_primitive::<UInt64Type>().values().to_vec(),
        vec![0, 0, 1, 1, 2, 2]
    );
    let resumed = b.batch.column_by_name("resumed").expect("resumed column");
    assert_eq!(resumed.as_boolean().true_count(), 0);
}

#[tokio::test]
async fn a_pause_holds_the_plan_and_every_remaining_point_is_taken_after_the_resume() {
    let fake = Fake::default();
    let control = RunControl::new();
    control.begin_plan(Some(5));
    control.pause(false, "test").expect("pause");
    let resume = {
        let control = control.clone();
        async move {
            while control.state().phase != crate::control::Phase::Paused {
                tokio::task::yield_now().await;
            }
            control.resume("test").expect("resume");
        }
    };
    let (outputs, rx) = primary();
    let (_stop_tx, stop_rx) = watch::channel(false);
    let run = PlanExecutor::new(plan(vec![1.0, 2.0, 3.0, 4.0, 5.0], 1), layout(), outputs).run(
        &fake,
        stop_rx,
        control.clone(),
    );
    let ((report, result), ()) = tokio::join!(run, resume);
    assert_eq!(result, Ok(()));
    assert_eq!(report.points_done, 5);
    let StreamEvent::Data(b) = rx.pop().await else {
        panic!("a batch");
    };
    let resumed = b.batch.column_by_name("resumed").expect("resumed column");
    assert!(
        resumed.as_boolean().value(0),
        "the first row follows the resume"
    );
    assert_eq!(resumed.as_boolean().true_count(), 1);
    assert_eq!(control.interruptions().len(), 1);
}

/// A motor and a detector peaked at the motor's position 0 (a Gaussian of width 1).
#[derive(Default)]
struct Peak {
    position: RefCell<f64>,
}

impl PlanTarget for Peak {
    async fn set(&self, _: &str, _: &str, value: f64) -> Result<f64, TargetError> {
        *self.position.borrow_mut() = value;
        Ok(value)
    }
    async fn read(&self, _: &str) -> Result<Vec<Option<f64>>, TargetError> {
        let x = *self.position.borrow();
        Ok(vec![Some((-x * x / 2.0).exp()), None])
    }
    fn current(&self, _: &str, _: &str) -> Result<f64, String> {
        Ok(*self.position.borrow())
    }
}

#[tokio::test]
async fn an_adaptive_scan_over_a_peak_takes_more_points_near_it_than_in_the_tails() {
    let mut p = plan(vec![-10.0, 10.0], 1);
    p.kind = PointKind::AdaptiveScan;
    p.adaptive = Some(crate::plan::Adaptive {
        target: "d.a".into(),
        min_step: 0.05,
        max_step: 1.0,
        target_delta: 0.05,
        backstep: true,
        threshold: 0.8,
    });
    let (outputs, rx) = primary();
    let (_stop_tx, stop_rx) = watch::channel(false);
    let (report, result) = PlanExecutor::new(p, layout(), outputs)
        .run(&Peak::default(), stop_rx, RunControl::new())
        .await;
    assert_eq!(result, Ok(()));
    assert_eq!(report.total_points, None, "not known up front");
    let mut xs = Vec::new();
    while let StreamEvent::Data(b) = rx.pop().await {
        xs.extend(
            b.batch
                .column(2)
                .as_primitive::<Float64Type>()
                .values()
                .iter()
                .copied(),
        );
    }
    assert_eq!(xs.len() as u64, report.points_done);
    let near = xs.iter().filter(|x| x.abs() < 2.0).count();
    let tails = xs.iter().filter(|x| x.abs() > 6.0).count();
    assert!(
        near > 3 * tails,
        "near the peak {near}, in the tails {tails}: {xs:?}"
    );
    assert!(xs.iter().all(|x| (-10.0..=10.0 + 1e-9).contains(x)));
}

/// An instrument whose connection drops once, at its `drop_at`-th request (1-based), and is
/// only back once `recover` has been called twice.
#[derive(Default)]
struct Flaky {
    inner: Fake,
    requests: RefCell<u64>,
    drop_at: u64,
    recovers: RefCell<u64>,
}

impl Flaky {
    fn request(&self) -> Result<(), TargetError> {
        let mut n = self.requests.borrow_mut();
        *n += 1;
        let down = *n == self.drop_at || (*n > self.drop_at && *self.recovers.borrow() < 2);
        if down && self.drop_at > 0 {
            return Err(TargetError::Unreachable("connection lost".into()));
        }
        Ok(())
    }
}

impl PlanTarget for Flaky {
    async fn set(&self, i: &str, p: &str, value: f64) -> Result<f64, TargetError> {
        self.request()?;
        self.inner.set(i, p, value).await
    }
    async fn read(&self, i: &str) -> Result<Vec<Option<f64>>, TargetError> {
        self.request()?;
        self.inner.read(i).await
    }
    async fn recover(&self, _: &str) -> Result<String, TargetError> {
        *self.recovers.borrow_mut() += 1;
        if *self.recovers.borrow() < 2 {
            return Err(TargetError::Unreachable("refused".into()));
        }
        Ok("reconnected; restored p = 2".into())
    }
    fn current(&self, _: &str, _: &str) -> Result<f64, String> {
        Ok(0.0)
    }
}

#[tokio::test]
async fn an_unreachable_instrument_holds_the_plan_until_recovered_and_the_point_is_taken_again() {
    // Requests: set 1, read, set 2, read (detector `d` drops: point 1 is abandoned), then
    // `d` is recovered on the second try; point 1 is read again without setting p again.
    let flaky = Flaky {
        drop_at: 4,
        ..Default::default()
    };
    let control = RunControl::new();
    let (outputs, rx) = primary();
    let (_stop_tx, stop_rx) = watch::channel(false);
    let (report, result) = PlanExecutor::new(plan(vec![1.0, 2.0, 3.0], 1), layout(), outputs)
        .run(&flaky, stop_rx, control.clone())
        .await;
    assert_eq!(result, Ok(()));
    assert_eq!((report.points_done, report.points_retaken), (3, 1));
    assert_eq!(*flaky.recovers.borrow(), 2);
    assert_eq!(
        *flaky.inner.sets.borrow(),
        vec![1.0, 2.0, 3.0],
        "the restored setpoint is trusted, not set again"
    );
    assert!(
        report.read_failures.is_empty(),
        "a lost connection is not a failed read"
    );
    let StreamEvent::Data(b) = rx.pop().await else {
        panic!("a batch");
    };
    assert_eq!(b.batch.num_rows(), 3);
    let resumed = b.batch.column_by_name("resumed").expect("resumed column");
    assert!(
        resumed.as_boolean().value(1),
        "the re-taken point follows the hold"
    );
    assert_eq!(resumed.as_boolean().true_count(), 1);
    let log = control.interruptions();
    assert_eq!(log.len(), 1);
    let hold = &log[0];
    assert_eq!(hold.kind, crate::control::InterruptionKind::Reconnect);
    assert_eq!(hold.by, "d");
    assert_eq!(hold.cause.as_deref(), Some("d: connection lost"));
    assert_eq!((hold.point, hold.abandoned_point), (1, Some(1)));
    assert_eq!(
        hold.resumed_by.as_deref(),
        Some("d reconnected; restored p = 2")
    );
}
