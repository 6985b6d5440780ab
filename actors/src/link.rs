//! Links: the bounded queue between one producer's stream and one consumer.
//!
//! A producer pushes [`StreamEvent`]s into a [`LinkSender`]; a pump task pops them from the
//! [`LinkReceiver`] and hands them to the consumer actor with `send().await`, so the consumer's
//! mailbox bound and the link's capacity together bound the memory a stream can hold.
//!
//! The [`Delivery`] policy decides what happens when the queue is full:
//! - [`Delivery::Lossless`]: the producer waits (backpressure all the way to the instrument).
//! - [`Delivery::BestEffort`]: the oldest queued data batch of this link is dropped and counted;
//!   the producer never waits, so a slow best-effort consumer stalls nobody.
//!
//! The end marker is always accepted, even on a full queue, so a stream can always end.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use actix::Recipient;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

use crate::batch::StreamEvent;
use crate::stats::LinkStats;

/// What a link does when its consumer falls behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Never drop: the producer waits for room.
    #[default]
    Lossless,
    /// Drop the oldest queued batch and count it; never make the producer wait.
    BestEffort,
}

/// The consumer of a link is gone; nothing pushed now can be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the consumer of this link has stopped")]
pub struct LinkClosed;

struct Queue {
    items: VecDeque<StreamEvent>,
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    not_empty: Notify,
    not_full: Notify,
    capacity: usize,
    delivery: Delivery,
    stats: Arc<LinkStats>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A poisoned lock only means another thread panicked while holding it; the queue itself
        // is always left consistent (every mutation is a single push or pop).
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes the oldest queued data batch and counts it as dropped; `false` if none is queued.
    fn drop_oldest(&self, q: &mut Queue) -> bool {
        let oldest = q
            .items
            .iter()
            .position(|e| matches!(e, StreamEvent::Data(_)));
        match oldest.and_then(|i| q.items.remove(i)) {
            Some(StreamEvent::Data(dropped)) => {
                self.stats.record_drop(dropped.rows() as u64);
                true
            }
            _ => false,
        }
    }
}

/// Creates a link with room for `capacity` events (at least 1).
pub fn link(
    capacity: usize,
    delivery: Delivery,
    stats: Arc<LinkStats>,
) -> (LinkSender, LinkReceiver) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue {
            // Grows as needed: a long queue costs memory only when it fills.
            items: VecDeque::with_capacity(capacity.clamp(1, 64)),
            closed: false,
        }),
        not_empty: Notify::new(),
        not_full: Notify::new(),
        capacity: capacity.max(1),
        delivery,
        stats,
    });
    (
        LinkSender {
            shared: shared.clone(),
        },
        LinkReceiver { shared },
    )
}

/// The producer's end of a link. Cheap to clone (a restarted producer takes over the same link).
#[derive(Clone)]
pub struct LinkSender {
    shared: Arc<Shared>,
}

impl LinkSender {
    /// Queues an event, applying the link's delivery policy when the queue is full.
    ///
    /// Returns `Err(LinkClosed)` when the consumer is gone; the event's rows are then counted as
    /// dropped on this link.
    pub async fn push(&self, event: StreamEvent) -> Result<(), LinkClosed> {
        let mut event = Some(event);
        loop {
            {
                let mut q = self.shared.lock();
                let Some(ev) = event.take() else {
                    return Ok(());
                };
                if q.closed {
                    if let StreamEvent::Data(b) = &ev {
                        self.shared.stats.record_drop(b.rows() as u64);
                    }
                    return Err(LinkClosed);
                }
                let full = q.items.len() >= self.shared.capacity;
                let is_end = matches!(ev, StreamEvent::End(_));
                if full && !is_end && self.shared.delivery == Delivery::BestEffort {
                    self.shared.drop_oldest(&mut q);
                }
                if !full || is_end || self.shared.delivery == Delivery::BestEffort {
                    q.items.push_back(ev);
                    self.shared.stats.set_depth(q.items.len());
                    drop(q);
                    self.shared.not_empty.notify_one();
                    return Ok(());
                }
                event = Some(ev);
            }
            self.shared.not_full.notified().await;
        }
    }

    /// Drops the oldest queued data batch, counting it as dropped on this link. Returns whether
    /// there was one (used to make room in the run's memory budget for best-effort streams).
    pub fn evict_oldest(&self) -> bool {
        let mut q = self.shared.lock();
        if !self.shared.drop_oldest(&mut q) {
            return false;
        }
        self.shared.stats.set_depth(q.items.len());
        drop(q);
        self.shared.not_full.notify_one();
        true
    }

    /// Counts a batch of `rows` that was dropped before it reached this link.
    pub fn record_drop(&self, rows: u64) {
        self.shared.stats.record_drop(rows);
    }

    /// The link's delivery policy.
    pub fn delivery(&self) -> Delivery {
        self.shared.delivery
    }

    /// Events queued now.
    pub fn depth(&self) -> usize {
        self.shared.lock().items.len()
    }
}

/// The consumer's end of a link, driven by [`run_pump`].
pub struct LinkReceiver {
    shared: Arc<Shared>,
}

impl LinkReceiver {
    /// Takes the oldest event, waiting for one.
    pub async fn pop(&self) -> StreamEvent {
        loop {
            {
                let mut q = self.shared.lock();
                if let Some(ev) = q.items.pop_front() {
                    self.shared.stats.set_depth(q.items.len());
                    drop(q);
                    self.shared.not_full.notify_one();
                    return ev;
                }
            }
            self.shared.not_empty.notified().await;
        }
    }

    /// Marks the consumer gone: queued data is counted as dropped and producers stop waiting.
    pub fn close(&self) {
        let mut q = self.shared.lock();
        q.closed = true;
        for ev in q.items.drain(..) {
            if let StreamEvent::Data(b) = ev {
                self.shared.stats.record_drop(b.rows() as u64);
            }
        }
        self.shared.stats.set_depth(0);
        drop(q);
        self.shared.not_full.notify_one();
    }
}

/// Who a link's pump hands its events to.
pub enum Consumer {
    /// One actor for the link's whole life (a sink): once it is gone, the link closes.
    Fixed(Recipient<StreamEvent>),
    /// Whichever actor runs the consumer now (a stage, which a restart replaces), as its
    /// supervisor last set it; `None` once no consumer will ever read the link again.
    ///
    /// While the actor is gone, the event in hand waits for the next one; an event the old
    /// actor never answered (it panicked on it) is delivered again to the new one.
    Replaceable(watch::Receiver<Option<Recipient<StreamEvent>>>),
}

impl From<Recipient<StreamEvent>> for Consumer {
    fn from(recipient: Recipient<StreamEvent>) -> Self {
        Consumer::Fixed(recipient)
    }
}

impl Consumer {
    /// Hands `event` to the consumer; `false` once no consumer will take it.
    async fn deliver(&mut self, event: StreamEvent) -> bool {
        match self {
            Consumer::Fixed(recipient) => recipient.send(event).await.is_ok(),
            Consumer::Replaceable(current) => loop {
                let target = current.borrow_and_update().clone();
                let Some(target) = target else {
                    return false;
                };
                if target.send(event.clone()).await.is_ok() {
                    return true;
                }
                // The actor is gone: wait for the supervisor's decision, then try again.
                if current.changed().await.is_err() {
                    return false;
                }
            },
        }
    }
}

/// The pump of every link: forwards the link's events to its consumer, one at a time and in
/// order, until the end marker.
///
/// Each event is handed over with `send().await`, so the pump waits while the consumer's
/// mailbox is full (a busy consumer pushes back through a lossless link to its producer). Once
/// no consumer will take an event, the link is closed and what was lost is counted as dropped.
pub async fn run_pump(rx: LinkReceiver, consumer: impl Into<Consumer>) {
    let mut consumer = consumer.into();
    loop {
        let event = rx.pop().await;
        let rows = event.rows() as u64;
        let is_end = matches!(event, StreamEvent::End(_));
        if !consumer.deliver(event).await {
            rx.shared.stats.record_drop(rows);
            rx.close();
            return;
        }
        rx.shared.stats.record_delivered(rows);
        if is_end {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::batch::{ChannelSpec, DataBatch, EndOfStream, stream_schema};
    use arrow_array::RecordBatch;

    fn data(seq: u64) -> StreamEvent {
        let batch = RecordBatch::new_empty(stream_schema(&[ChannelSpec::new("x", "V")]));
        StreamEvent::Data(DataBatch::new("s".into(), seq, batch))
    }

    fn end(rows: u64) -> StreamEvent {
        StreamEvent::End(EndOfStream {
            stream: "s".into(),
            rows,
        })
    }

    fn seq_of(ev: &StreamEvent) -> Option<u64> {
        match ev {
            StreamEvent::Data(b) => Some(b.first_seq),
            StreamEvent::End(_) => None,
        }
    }

    #[tokio::test]
    async fn best_effort_drops_oldest_and_counts() {
        let stats = Arc::new(LinkStats::default());
        let (tx, rx) = link(2, Delivery::BestEffort, stats.clone());
        for seq in 0..5 {
            tx.push(data(seq)).await.expect("open link");
        }
        tx.push(end(5)).await.expect("open link");
        assert_eq!(stats.dropped_batches(), 3);
        assert_eq!(seq_of(&rx.pop().await), Some(3));
        assert_eq!(seq_of(&rx.pop().await), Some(4));
        assert_eq!(seq_of(&rx.pop().await), None);
        assert_eq!(stats.max_depth(), 3);
    }

    #[tokio::test]
    async fn lossless_waits_for_room_and_keeps_order() {
        let stats = Arc::new(LinkStats::default());
        let (tx, rx) = link(1, Delivery::Lossless, stats.clone());
        let producer = tokio::spawn(async move {
            for seq in 0..50 {
                tx.push(data(seq)).await.expect("open link");
            }
        });
        for expected in 0..50 {
            assert_eq!(seq_of(&rx.pop().await), Some(expected));
        }
        producer.await.expect("producer finished");
        assert_eq!(stats.dropped_batches(), 0);
        assert!(stats.max_depth() <= 1);
    }

    /// Stands in for a consumer actor: reports each event it gets (its own name and the
    /// event's `seq`, `None` for the end) and stops once it has handled `stop_after`.
    struct Recorder {
        name: &'static str,
        seen: tokio::sync::mpsc::UnboundedSender<(&'static str, Option<u64>)>,
        stop_after: Option<u64>,
    }

    impl actix::Actor for Recorder {
        type Context = actix::Context<Self>;
    }

    /// Starts a [`Recorder`] named `name`; the address the pump delivers to.
    fn recorder(
        name: &'static str,
        seen: &tokio::sync::mpsc::UnboundedSender<(&'static str, Option<u64>)>,
        stop_after: Option<u64>,
    ) -> Recipient<StreamEvent> {
        let seen = seen.clone();
        actix::Actor::start(Recorder {
            name,
            seen,
            stop_after,
        })
        .recipient()
    }

    impl actix::Handler<StreamEvent> for Recorder {
        type Result = ();
        fn handle(&mut self, event: StreamEvent, ctx: &mut actix::Context<Self>) {
            let seq = seq_of(&event);
            let _ = self.seen.send((self.name, seq));
            if seq.is_some() && seq == self.stop_after {
                actix::ActorContext::stop(ctx);
            }
        }
    }

    #[actix::test]
    async fn a_replaceable_consumer_hands_the_event_in_hand_to_the_next_actor() {
        let stats = Arc::new(LinkStats::default());
        let (tx, rx) = link(8, Delivery::Lossless, stats.clone());
        for seq in 0..3 {
            tx.push(data(seq)).await.expect("open link");
        }
        tx.push(end(3)).await.expect("open link");
        let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
        let first = recorder("first", &seen_tx, Some(0));
        let (current, watched) = watch::channel(Some(first));
        let pump = tokio::spawn(run_pump(rx, Consumer::Replaceable(watched)));
        assert_eq!(seen.recv().await, Some(("first", Some(0))));
        // The first actor is gone; the pump holds seq 1 until the supervisor names the next.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!pump.is_finished(), "the pump waits for a new actor");
        current.send_replace(Some(recorder("second", &seen_tx, None)));
        pump.await.expect("the pump ends after the end marker");
        let mut rest = Vec::new();
        while let Ok(event) = seen.try_recv() {
            rest.push(event);
        }
        assert_eq!(
            rest,
            [("second", Some(1)), ("second", Some(2)), ("second", None)]
        );
        assert_eq!((stats.dropped_batches(), stats.dropped_rows()), (0, 0));
    }

    #[actix::test]
    async fn a_replaceable_consumer_set_to_none_closes_the_link_and_counts_the_loss() {
        let stats = Arc::new(LinkStats::default());
        let (tx, rx) = link(8, Delivery::Lossless, stats.clone());
        tx.push(data(0)).await.expect("open link");
        tx.push(data(1)).await.expect("open link");
        let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
        let only = recorder("only", &seen_tx, Some(0));
        let (current, watched) = watch::channel(Some(only));
        let pump = tokio::spawn(run_pump(rx, Consumer::Replaceable(watched)));
        assert_eq!(seen.recv().await, Some(("only", Some(0))));
        // The supervisor gives up on the consumer: nothing will read the link again.
        current.send_replace(None);
        pump.await.expect("the pump ends");
        assert_eq!(stats.dropped_batches(), 1, "seq 1 was in hand");
        assert_eq!(tx.push(data(2)).await, Err(LinkClosed));
    }

    #[tokio::test]
    async fn closing_releases_a_waiting_producer() {
        let stats = Arc::new(LinkStats::default());
        let (tx, rx) = link(1, Delivery::Lossless, stats.clone());
        tx.push(data(0)).await.expect("open link");
        let waiting = tokio::spawn(async move { tx.push(data(1)).await });
        tokio::task::yield_now().await;
        rx.close();
        assert_eq!(waiting.await.expect("joined"), Err(LinkClosed));
        assert_eq!(stats.dropped_rows(), 0, "empty batches carry no rows");
        assert_eq!(stats.dropped_batches(), 2);
    }
}
