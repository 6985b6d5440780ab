//! The fan-out of one stream to every link that consumes it.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;

use crate::batch::{DataBatch, EndOfStream, StreamEvent, StreamId, TIMESTAMP_COLUMN};
use crate::budget::{MemoryBudget, Reservation};
use crate::link::{Delivery, LinkSender};
use crate::stats::StreamStats;
use crate::tap::Tap;

/// How a stream's batches take memory from the run's [`MemoryBudget`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetRole {
    /// An acquiring stream (instrument, plan): waits for memory if any consumer is lossless;
    /// otherwise makes room by dropping its own oldest queued batches, or drops the new one.
    Source,
    /// A derived stream (stage): takes what it needs without waiting (its input already holds
    /// budget; waiting could deadlock on its own input queue).
    Derived,
}

/// A producer's view of its stream: where batches go, and the counters they update.
///
/// Cloned into a restarted producer, it continues the same stream on the same links.
#[derive(Clone)]
pub struct Outputs {
    stream: StreamId,
    links: Vec<LinkSender>,
    stats: Arc<StreamStats>,
    budget: Option<(Arc<MemoryBudget>, BudgetRole)>,
    /// A viewer's copy of the newest batches, offered without waiting (see [`Tap`]).
    tap: Option<Arc<Tap>>,
}

impl Outputs {
    /// The outputs of `stream`: one link per consumer.
    pub fn new(stream: StreamId, links: Vec<LinkSender>, stats: Arc<StreamStats>) -> Self {
        Self {
            stream,
            links,
            stats,
            budget: None,
            tap: None,
        }
    }

    /// The same outputs, also offering every batch to `tap` (never waiting on it).
    pub fn with_tap(mut self, tap: Arc<Tap>) -> Self {
        self.tap = Some(tap);
        self
    }

    /// The same outputs, taking memory for every batch from `budget` in the given role.
    pub fn with_budget(mut self, budget: Arc<MemoryBudget>, role: BudgetRole) -> Self {
        self.budget = Some((budget, role));
        self
    }

    /// The stream's name.
    pub fn stream(&self) -> &StreamId {
        &self.stream
    }

    /// The stream's counters.
    pub fn stats(&self) -> &Arc<StreamStats> {
        &self.stats
    }

    /// Sends a batch whose first row is `first_seq` to every link, sharing one copy.
    ///
    /// Waits while a lossless link is full, or while the run's memory budget is used up and a
    /// consumer is lossless; best-effort links never make it wait. A link whose consumer is gone
    /// counts the batch as dropped and does not hold up the others.
    pub async fn emit(&self, first_seq: u64, batch: RecordBatch) {
        let rows = batch.num_rows() as u64;
        if rows == 0 {
            return;
        }
        let (first_ts, last_ts) = timestamp_range(&batch);
        self.stats.record_batch(rows, first_ts, last_ts);
        self.stats.heartbeat();
        let mut data = DataBatch::new(self.stream.clone(), first_seq, batch);
        if let Some((budget, role)) = &self.budget {
            let bytes = data.batch.get_array_memory_size() as u64;
            match self.reserve(budget, *role, bytes).await {
                Some(memory) => data = data.holding(memory),
                None => {
                    // Every consumer is best-effort and nothing of ours was queued to make room.
                    for link in &self.links {
                        link.record_drop(rows);
                    }
                    return;
                }
            }
        }
        if let Some(tap) = &self.tap {
            tap.offer(first_seq, &data.batch);
        }
        let event = StreamEvent::Data(data);
        self.stats.set_waiting(true);
        for link in &self.links {
            // A closed link has already counted the loss; the other consumers still get the data.
            let _ = link.push(event.clone()).await;
        }
        self.stats.set_waiting(false);
    }

    /// Takes `bytes` of the run's budget as `role` allows; `None` when a best-effort stream
    /// could not make room (the caller drops the batch and counts it).
    async fn reserve(
        &self,
        budget: &Arc<MemoryBudget>,
        role: BudgetRole,
        bytes: u64,
    ) -> Option<Reservation> {
        if role == BudgetRole::Derived {
            return Some(budget.force_reserve(bytes));
        }
        let lossless = self
            .links
            .iter()
            .any(|l| l.delivery() == Delivery::Lossless);
        if lossless {
            self.stats.set_waiting(true);
            let memory = budget.reserve(bytes).await;
            self.stats.set_waiting(false);
            return Some(memory);
        }
        loop {
            if let Some(memory) = budget.try_reserve(bytes) {
                return Some(memory);
            }
            // Oldest first: drop one queued batch per link, then try again.
            let mut evicted = false;
            for link in &self.links {
                evicted |= link.evict_oldest();
            }
            if !evicted {
                return None;
            }
        }
    }

    /// Ends the stream on every link, after everything emitted before.
    pub async fn end(&self) {
        let event = StreamEvent::End(EndOfStream {
            stream: self.stream.clone(),
            rows: self.stats.rows(),
        });
        for link in &self.links {
            let _ = link.push(event.clone()).await;
        }
        self.stats.record_ended();
    }

    /// Deepest queue among the links right now.
    pub fn max_queue_depth(&self) -> usize {
        self.links.iter().map(LinkSender::depth).max().unwrap_or(0)
    }
}

/// First and last timestamp of a batch (0, 0 if it has no timestamp column).
fn timestamp_range(batch: &RecordBatch) -> (i64, i64) {
    let Some(col) = batch.column_by_name(TIMESTAMP_COLUMN) else {
        return (0, 0);
    };
    let Some(ts) = col.as_primitive_opt::<TimestampNanosecondType>() else {
        return (0, 0);
    };
    let n = ts.len();
    if n == 0 {
        return (0, 0);
    }
    (ts.value(0), ts.value(n - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::{LinkReceiver, link};
    use crate::stages::test_support::batch_of;
    use crate::stats::LinkStats;
    use std::time::Duration;

    /// A 1,000-row, one-channel batch starting at `first_seq`.
    fn rows(first_seq: u64) -> RecordBatch {
        let values = vec![0.5; 1000];
        (*batch_of(&[&values], first_seq, 1000.0).batch).clone()
    }

    fn bytes_of_one() -> u64 {
        rows(0).get_array_memory_size() as u64
    }

    fn outputs(
        delivery: Delivery,
        budget: &Arc<MemoryBudget>,
    ) -> (Outputs, LinkReceiver, Arc<LinkStats>) {
        let link_stats = Arc::new(LinkStats::default());
        let (tx, rx) = link(100, delivery, link_stats.clone());
        let outputs = Outputs::new("s".into(), vec![tx], Arc::new(StreamStats::default()))
            .with_budget(budget.clone(), BudgetRole::Source);
        (outputs, rx, link_stats)
    }

    fn first_seq(event: &StreamEvent) -> Option<u64> {
        match event {
            StreamEvent::Data(b) => Some(b.first_seq),
            StreamEvent::End(_) => None,
        }
    }

    #[tokio::test]
    async fn a_lossless_stream_waits_for_memory_and_loses_nothing() {
        // Room for one batch in flight; the link itself has room for 100.
        let budget = MemoryBudget::new(bytes_of_one() * 3 / 2);
        let (outputs, rx, link_stats) = outputs(Delivery::Lossless, &budget);
        outputs.emit(0, rows(0)).await;
        let producer = {
            let outputs = outputs.clone();
            tokio::spawn(async move { outputs.emit(1000, rows(1000)).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!producer.is_finished(), "the budget holds one batch");
        assert!(
            outputs.stats().is_waiting(),
            "waiting for memory is backpressure"
        );
        let first = rx.pop().await;
        assert_eq!(first_seq(&first), Some(0));
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), producer)
            .await
            .expect("released memory lets it go on")
            .expect("joined");
        assert_eq!(first_seq(&rx.pop().await), Some(1000));
        assert_eq!(link_stats.dropped_rows(), 0);
        assert_eq!(budget.waits(), 1);
        assert!(budget.peak() <= budget.limit());
    }

    #[tokio::test]
    async fn a_best_effort_stream_drops_its_oldest_then_the_new_batch_and_counts_them() {
        let budget = MemoryBudget::new(bytes_of_one() * 3 / 2);
        let (outputs, rx, link_stats) = outputs(Delivery::BestEffort, &budget);
        outputs.emit(0, rows(0)).await;
        // No room: the queued batch 0 is dropped to make room for batch 1.
        outputs.emit(1000, rows(1000)).await;
        assert_eq!(link_stats.dropped_rows(), 1000);
        let held = rx.pop().await;
        assert_eq!(first_seq(&held), Some(1000));
        // The consumer holds batch 1 and nothing is queued: batch 2 itself is dropped.
        outputs.emit(2000, rows(2000)).await;
        assert_eq!(link_stats.dropped_rows(), 2000);
        assert_eq!(outputs.max_queue_depth(), 0);
        drop(held);
        outputs.emit(3000, rows(3000)).await;
        assert_eq!(first_seq(&rx.pop().await), Some(3000));
        // Offered = delivered to the consumer + dropped, exactly.
        assert_eq!(outputs.stats().rows(), 4000);
        assert_eq!(link_stats.dropped_rows() + 2000, 4000);
        assert_eq!(budget.waits(), 0, "best effort never waits");
    }

    #[tokio::test]
    async fn a_derived_stream_never_waits_for_memory() {
        let budget = MemoryBudget::new(1);
        let link_stats = Arc::new(LinkStats::default());
        let (tx, rx) = link(100, Delivery::Lossless, link_stats);
        let outputs = Outputs::new("d".into(), vec![tx], Arc::new(StreamStats::default()))
            .with_budget(budget.clone(), BudgetRole::Derived);
        outputs.emit(0, rows(0)).await;
        outputs.emit(1000, rows(1000)).await;
        assert_eq!(budget.used(), 2 * bytes_of_one());
        drop((rx.pop().await, rx.pop().await));
        assert_eq!(budget.used(), 0);
    }
}
