//! Watching suspenders: the rows of the streams they name, checked as they arrive, trip and
//! clear suspensions on the run's [`RunControl`].
//!
//! Each watched stream has a lossless link into the watcher (a few microseconds of work per
//! batch, so it never holds up acquisition in practice). The check is level-triggered: a
//! condition that already holds when the plan starts suspends it at the first row (Bluesky's
//! edge-triggered suspenders miss that case, bluesky/bluesky#1970), and until every suspender
//! has seen a value the plan is held, so no point is taken before the conditions are known.

use std::collections::HashMap;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampNanosecondType};
use arrow_array::{Array, RecordBatch};
use ensemble_actors::batch::StreamEvent;
use ensemble_actors::link::LinkReceiver;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::condition::{Condition, Suspender};
use crate::control::RunControl;

/// The consumer name of the links that feed the suspender watcher.
pub const SUSPEND_CONSUMER: &str = "plan.suspend";

/// Which value slot of which suspender a channel feeds.
#[derive(Debug, Clone, Copy)]
struct Target {
    suspender: usize,
    resume: bool,
    slot: usize,
}

struct State {
    spec: Suspender,
    when: Vec<Option<f64>>,
    resume: Vec<Option<f64>>,
    ready: bool,
    tripped: bool,
    /// Data time (ns) since which `when` has held.
    true_since: Option<i64>,
    /// Wall time since which the resume condition has held.
    clear_since: Option<Instant>,
}

/// The suspenders of one plan and the state of each.
pub struct Watcher {
    states: Vec<State>,
    /// Per stream: for each channel it feeds, the targets.
    routes: HashMap<String, Vec<(String, Vec<Target>)>>,
    control: RunControl,
}

impl Watcher {
    /// A watcher of `suspenders` on `control`; holds the plan until each has its first value.
    pub fn new(suspenders: &[Suspender], control: RunControl) -> Self {
        let mut routes: HashMap<String, Vec<(String, Vec<Target>)>> = HashMap::new();
        let mut add = |c: &Condition, suspender: usize, resume: bool| {
            for (slot, r) in c.channels.iter().enumerate() {
                let stream = routes.entry(r.stream.clone()).or_default();
                let target = Target {
                    suspender,
                    resume,
                    slot,
                };
                match stream.iter_mut().find(|(ch, _)| *ch == r.channel) {
                    Some((_, targets)) => targets.push(target),
                    None => stream.push((r.channel.clone(), vec![target])),
                }
            }
        };
        for (i, s) in suspenders.iter().enumerate() {
            add(&s.when, i, false);
            if let Some(r) = &s.resume_when {
                add(r, i, true);
            }
            let names: Vec<String> = s.channels().iter().map(ToString::to_string).collect();
            control.await_first_value(i, &names.join(", "));
        }
        let states = suspenders
            .iter()
            .map(|s| State {
                when: vec![None; s.when.channels.len()],
                resume: vec![None; s.resume_when.as_ref().map_or(0, |r| r.channels.len())],
                spec: s.clone(),
                ready: false,
                tripped: false,
                true_since: None,
                clear_since: None,
            })
            .collect();
        Self {
            states,
            routes,
            control,
        }
    }

    /// The streams it reads.
    pub fn streams(&self) -> Vec<String> {
        self.routes.keys().cloned().collect()
    }

    /// Checks every row of a batch of `stream`, in order.
    pub fn observe(&mut self, stream: &str, batch: &RecordBatch) {
        let Some(routes) = self.routes.get(stream) else {
            return;
        };
        let columns: Vec<_> = routes
            .iter()
            .filter_map(|(channel, targets)| {
                let column = batch.column_by_name(channel)?;
                Some((
                    column.as_primitive_opt::<Float64Type>()?.clone(),
                    targets.clone(),
                ))
            })
            .collect();
        let timestamps = batch
            .column(0)
            .as_primitive_opt::<TimestampNanosecondType>()
            .cloned();
        for row in 0..batch.num_rows() {
            let ts = timestamps.as_ref().map_or(0, |t| t.value(row));
            for (values, targets) in &columns {
                let v = values.is_valid(row).then(|| values.value(row));
                for t in targets {
                    let state = &mut self.states[t.suspender];
                    let slots = if t.resume {
                        &mut state.resume
                    } else {
                        &mut state.when
                    };
                    if v.is_some() {
                        slots[t.slot] = v;
                    }
                }
            }
            for i in 0..self.states.len() {
                self.step(i, ts);
            }
        }
    }

    fn step(&mut self, i: usize, ts: i64) {
        let s = &mut self.states[i];
        if !s.ready {
            if s.when.iter().chain(&s.resume).any(Option::is_none) {
                return;
            }
            s.ready = true;
            // Trip first, then let the plan go: a condition already true at the first value
            // must hold the plan before it could take a point.
            self.check(i, ts);
            self.control.first_value_seen(i);
            return;
        }
        self.check(i, ts);
    }

    fn check(&mut self, i: usize, ts: i64) {
        let control = &self.control;
        let s = &mut self.states[i];
        if !s.tripped {
            if s.spec.when.eval(&s.when) == Some(true) {
                let since = *s.true_since.get_or_insert(ts);
                if ts.saturating_sub(since) >= s.spec.hold_for.as_nanos() as i64 {
                    s.tripped = true;
                    s.clear_since = None;
                    let cause = format!(
                        "{} ({})",
                        s.spec.when.text,
                        s.spec.when.describe_values(&s.when)
                    );
                    control.suspend(i, &format!("plan.suspend[{i}]"), &cause);
                }
            } else {
                s.true_since = None;
            }
            return;
        }
        let clear = match &s.spec.resume_when {
            Some(r) => r.eval(&s.resume) == Some(true),
            None => s.spec.when.eval(&s.when) == Some(false),
        };
        if !clear {
            s.clear_since = None;
        } else if s.spec.resume_after.is_zero() {
            self.release(i);
        } else {
            s.clear_since.get_or_insert_with(Instant::now);
        }
    }

    fn release(&mut self, i: usize) {
        let s = &mut self.states[i];
        s.tripped = false;
        s.true_since = None;
        s.clear_since = None;
        let why = match &s.spec.resume_when {
            Some(r) => format!("{} ({})", r.text, r.describe_values(&s.resume)),
            None => format!(
                "not ({}) ({})",
                s.spec.when.text,
                s.spec.when.describe_values(&s.when)
            ),
        };
        let after = if s.spec.resume_after.is_zero() {
            String::new()
        } else {
            format!(" for {:?}", s.spec.resume_after)
        };
        self.control.clear_suspension(i, &format!("{why}{after}"));
    }

    /// The next moment a `resume_after` may elapse.
    fn next_deadline(&self) -> Option<Instant> {
        self.states
            .iter()
            .filter(|s| s.tripped)
            .filter_map(|s| s.clear_since.map(|t| t + s.spec.resume_after))
            .min()
    }

    /// Releases every suspension whose `resume_after` has elapsed.
    fn check_deadlines(&mut self) {
        let now = Instant::now();
        for i in 0..self.states.len() {
            let s = &self.states[i];
            if s.tripped
                && s.clear_since
                    .is_some_and(|t| now >= t + s.spec.resume_after)
            {
                self.release(i);
            }
        }
    }

    /// Runs until every feed has ended: each `(stream, link)` is drained to its end, whatever
    /// the plan does meanwhile, so no producer is ever held up by a watcher that is gone.
    pub async fn run(mut self, feeds: Vec<(String, LinkReceiver)>) {
        let (tx, mut rx) = mpsc::channel::<(usize, std::sync::Arc<RecordBatch>)>(64);
        let names: Vec<String> = feeds.iter().map(|(n, _)| n.clone()).collect();
        for (i, (_, link)) in feeds.into_iter().enumerate() {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut tx = Some(tx);
                while let StreamEvent::Data(batch) = link.pop().await {
                    if let Some(sender) = &tx {
                        if sender.send((i, batch.batch.clone())).await.is_err() {
                            tx = None;
                        }
                    }
                }
            });
        }
        drop(tx);
        loop {
            let deadline = self.next_deadline();
            let sleep = async {
                match deadline {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                next = rx.recv() => match next {
                    Some((i, batch)) => self.observe(&names[i], &batch),
                    None => return,
                },
                _ = sleep => self.check_deadlines(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Float64Array, TimestampNanosecondArray};
    use arrow_schema::{DataType, Field, Schema, TimeUnit};

    use std::time::Duration;

    use super::*;
    use crate::control::Phase;
    use crate::plan::{ChannelRef, CmpOp, Node, Operand};

    fn cond(text: &str, op: CmpOp, x: f64) -> Condition {
        Condition {
            text: text.into(),
            root: Node::Compare(Operand::Channel(0), op, Operand::Number(x)),
            channels: vec![ChannelRef {
                stream: "cryo".into(),
                channel: "temp".into(),
            }],
        }
    }

    fn batch(start_ns: i64, temps: &[f64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "timestamp",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                false,
            ),
            Field::new("temp", DataType::Float64, true),
        ]));
        let ts: Vec<i64> = (0..temps.len() as i64)
            .map(|i| start_ns + i * 1_000_000_000)
            .collect();
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(TimestampNanosecondArray::from(ts).with_timezone("UTC")),
                Arc::new(Float64Array::from(temps.to_vec())),
            ],
        )
        .expect("batch")
    }

    #[test]
    fn a_condition_true_from_the_first_row_suspends_and_clears_with_hysteresis() {
        let control = RunControl::new();
        control.begin_plan(Some(10));
        let s = Suspender {
            when: cond("cryo.temp > 310", CmpOp::Gt, 310.0),
            hold_for: Duration::from_secs(2),
            resume_when: Some(cond("cryo.temp < 305", CmpOp::Lt, 305.0)),
            resume_after: Duration::ZERO,
        };
        let mut w = Watcher::new(&[s], control.clone());
        assert_eq!(
            control.state().phase,
            Phase::Suspended,
            "held until a first value"
        );
        // Above the threshold from the start: trips once it held for 2 s of data time.
        w.observe("cryo", &batch(0, &[311.0, 312.0]));
        assert_eq!(control.state().phase, Phase::Running, "1 s is not 2 s");
        w.observe("cryo", &batch(2_000_000_000, &[313.0]));
        assert_eq!(control.state().phase, Phase::Suspended);
        // Below 310 but not below 305: still suspended.
        w.observe("cryo", &batch(3_000_000_000, &[308.0]));
        assert_eq!(control.state().phase, Phase::Suspended);
        w.observe("cryo", &batch(4_000_000_000, &[304.0]));
        assert_eq!(control.state().phase, Phase::Running);
        let log = control.interruptions();
        assert_eq!(log.len(), 1);
        assert!(
            log[0]
                .cause
                .as_deref()
                .is_some_and(|c| c.contains("cryo.temp = 313"))
        );
        assert!(
            log[0]
                .resumed_by
                .as_deref()
                .is_some_and(|c| c.contains("cryo.temp < 305"))
        );
    }
}
