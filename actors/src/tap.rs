//! A best-effort copy of a stream's newest batches for viewers (the live web view).
//!
//! A [`Tap`] is a fixed-size ring of the stream's most recent batches, shared (`Arc`) with the
//! batches that go to the sinks, so tapping copies no data. The producer offers every batch it
//! emits with [`Tap::offer`], which never waits: it takes the ring's lock with `try_lock`, and
//! if a reader holds it at that moment the batch is not tapped and counted as
//! [skipped](Tap::skipped). The oldest batches are overwritten once the ring holds its byte
//! budget or its batch count, so a tap never holds more than its budget, whatever a reader does.
//!
//! ```
//! use std::sync::Arc;
//! use ensemble_actors::tap::Tap;
//! # use arrow_array::{Float64Array, RecordBatch};
//! let tap = Tap::new(1 << 20, 4);
//! let batch = Arc::new(RecordBatch::try_from_iter([(
//!     "v",
//!     Arc::new(Float64Array::from(vec![1.0, 2.0])) as _,
//! )]).unwrap());
//! tap.offer(0, &batch);
//! let held = tap.since(0);
//! assert_eq!(held.len(), 1);
//! assert_eq!(held[0].first_seq, 0);
//! ```
//!
//! # Limits
//!
//! A viewer sees what the ring still holds: a reader that comes back less often than the ring
//! turns over misses batches (a gap in its picture, never in the recorded data). A single batch
//! larger than the whole budget is never held.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, TryLockError};

use arrow_array::RecordBatch;

/// One tapped batch: its first row's `seq` and the shared rows.
#[derive(Debug, Clone)]
pub struct TappedBatch {
    /// `seq` of the first row.
    pub first_seq: u64,
    /// The rows (shared with the batch the sinks got).
    pub batch: Arc<RecordBatch>,
}

/// The ring behind the lock.
#[derive(Debug)]
struct Ring {
    /// Batches, oldest first, with their size in bytes.
    batches: VecDeque<(TappedBatch, u64)>,
    /// Bytes held by `batches`.
    bytes: u64,
}

/// A fixed-size, overwritten ring of a stream's newest batches, fed without waiting.
#[derive(Debug)]
pub struct Tap {
    ring: Mutex<Ring>,
    /// Most bytes the ring holds: the tap's share of the run's memory budget.
    budget_bytes: u64,
    /// Most batches the ring holds (its `VecDeque` is allocated once at this size).
    max_batches: usize,
    /// Batches not tapped because a reader held the lock (or the batch exceeded the budget).
    skipped: AtomicU64,
    /// Batches tapped.
    offered: AtomicU64,
}

impl Tap {
    /// A tap holding at most `budget_bytes` in at most `max_batches` batches (at least one).
    pub fn new(budget_bytes: u64, max_batches: usize) -> Self {
        let max_batches = max_batches.max(1);
        Self {
            ring: Mutex::new(Ring {
                batches: VecDeque::with_capacity(max_batches),
                bytes: 0,
            }),
            budget_bytes,
            max_batches,
            skipped: AtomicU64::new(0),
            offered: AtomicU64::new(0),
        }
    }

    /// Offers a batch; never waits. Skips it (and counts it) when a reader holds the ring now.
    pub fn offer(&self, first_seq: u64, batch: &Arc<RecordBatch>) {
        let bytes = batch.get_array_memory_size() as u64;
        if bytes > self.budget_bytes {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let mut ring = match self.ring.try_lock() {
            Ok(ring) => ring,
            // A reader panicked while holding it: the ring is whole (pushes and pops are
            // single steps), keep using it.
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => {
                self.skipped.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        while ring.batches.len() >= self.max_batches || ring.bytes + bytes > self.budget_bytes {
            match ring.batches.pop_front() {
                Some((_, old)) => ring.bytes -= old,
                None => break,
            }
        }
        ring.bytes += bytes;
        ring.batches.push_back((
            TappedBatch {
                first_seq,
                batch: batch.clone(),
            },
            bytes,
        ));
        drop(ring);
        self.offered.fetch_add(1, Ordering::Relaxed);
    }

    /// The held batches whose rows reach `seq` or later, oldest first (readers only: it takes
    /// the lock, holding it just long enough to clone the `Arc`s).
    pub fn since(&self, seq: u64) -> Vec<TappedBatch> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.batches
            .iter()
            .filter(|(b, _)| b.first_seq + b.batch.num_rows() as u64 > seq)
            .map(|(b, _)| b.clone())
            .collect()
    }

    /// Bytes held now.
    pub fn held_bytes(&self) -> u64 {
        self.ring.lock().unwrap_or_else(|e| e.into_inner()).bytes
    }

    /// The most bytes this tap ever holds.
    pub fn budget_bytes(&self) -> u64 {
        self.budget_bytes
    }

    /// Batches not tapped (a reader held the ring, or the batch was larger than the budget).
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Batches tapped so far.
    pub fn offered(&self) -> u64 {
        self.offered.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Float64Array;

    fn batch(n: usize) -> Arc<RecordBatch> {
        let values = Float64Array::from(vec![0.0; n]);
        Arc::new(RecordBatch::try_from_iter([("v", Arc::new(values) as _)]).expect("one column"))
    }

    #[test]
    fn the_oldest_batches_are_overwritten_at_the_batch_count() {
        let tap = Tap::new(u64::MAX, 3);
        for k in 0..5u64 {
            tap.offer(k * 10, &batch(10));
        }
        let seqs: Vec<u64> = tap.since(0).iter().map(|b| b.first_seq).collect();
        assert_eq!(seqs, vec![20, 30, 40]);
        assert_eq!(tap.offered(), 5);
        assert_eq!(tap.skipped(), 0);
    }

    #[test]
    fn the_ring_never_holds_more_than_its_byte_budget() {
        let one = batch(1000).get_array_memory_size() as u64;
        let tap = Tap::new(one * 5 / 2, 100);
        for k in 0..10u64 {
            tap.offer(k * 1000, &batch(1000));
            assert!(tap.held_bytes() <= tap.budget_bytes());
        }
        assert_eq!(tap.since(0).len(), 2);
        let too_big = Tap::new(one / 2, 100);
        too_big.offer(0, &batch(1000));
        assert_eq!(too_big.since(0).len(), 0);
        assert_eq!(too_big.skipped(), 1);
    }

    #[test]
    fn a_reader_holding_the_ring_makes_the_producer_skip_not_wait() {
        let tap = Tap::new(u64::MAX, 8);
        let guard = tap.ring.lock().expect("not poisoned");
        tap.offer(0, &batch(10));
        drop(guard);
        assert_eq!(tap.skipped(), 1);
        assert!(tap.since(0).is_empty());
        tap.offer(10, &batch(10));
        assert_eq!(tap.since(0).len(), 1);
    }

    #[test]
    fn since_returns_batches_that_reach_the_seq() {
        let tap = Tap::new(u64::MAX, 8);
        tap.offer(0, &batch(10));
        tap.offer(10, &batch(10));
        assert_eq!(tap.since(5).len(), 2);
        assert_eq!(tap.since(10).len(), 1);
        assert_eq!(tap.since(20).len(), 0);
    }
}
