//! Counters shared between the actors that update them and the coordinator that reports them.
//!
//! They live outside the actors so that they survive a restart and can be read for the progress
//! line without a message round trip. Updates happen once per batch, never per sample.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};

/// Sentinel for "no timestamp seen yet".
const NO_TIMESTAMP: i64 = i64::MIN;

/// Per-stream counters, updated by the stream's producer.
#[derive(Debug)]
pub struct StreamStats {
    /// Rows emitted so far; also the `seq` the next row will carry.
    rows: AtomicU64,
    /// Batches emitted so far.
    batches: AtomicU64,
    /// Timestamp (ns) of row 0, once emitted.
    first_timestamp_ns: AtomicI64,
    /// Timestamp (ns) of the newest row emitted.
    last_timestamp_ns: AtomicI64,
    /// Rows a producer could not acquire because the pipeline pushed back (a device buffer overflow).
    overflow_rows: AtomicU64,
    /// How often the producer was restarted.
    restarts: AtomicU64,
    /// Wall-clock time (ns since the Unix epoch) when the newest batch was emitted: with the
    /// run's start, it tells how long producing took (load tests compare it to the plan).
    last_emitted_at_ns: AtomicI64,
    /// Wall-clock time (ns since the Unix epoch) when the producer first started producing (a
    /// restart keeps the first): load tests report how long starting every instrument took.
    started_at_ns: AtomicI64,
    /// Wall-clock time (ns since the Unix epoch) when the stream was ended: load tests report
    /// how long stopping every instrument took.
    ended_at_ns: AtomicI64,
    /// Signs of life from the producer (a loop turn or a batch), for stall detection.
    heartbeats: AtomicU64,
    /// Whether the producer is waiting for its consumers or for memory (backpressure, which is
    /// not a stall).
    waiting: AtomicBool,
}

impl Default for StreamStats {
    fn default() -> Self {
        Self {
            rows: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            first_timestamp_ns: AtomicI64::new(NO_TIMESTAMP),
            last_timestamp_ns: AtomicI64::new(NO_TIMESTAMP),
            overflow_rows: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            last_emitted_at_ns: AtomicI64::new(NO_TIMESTAMP),
            started_at_ns: AtomicI64::new(NO_TIMESTAMP),
            ended_at_ns: AtomicI64::new(NO_TIMESTAMP),
            heartbeats: AtomicU64::new(0),
            waiting: AtomicBool::new(false),
        }
    }
}

impl StreamStats {
    /// Records one emitted batch of `rows` rows spanning the given timestamps.
    pub fn record_batch(&self, rows: u64, first_ts_ns: i64, last_ts_ns: i64) {
        if rows == 0 {
            return;
        }
        let _ = self.first_timestamp_ns.compare_exchange(
            NO_TIMESTAMP,
            first_ts_ns,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        self.last_timestamp_ns.store(last_ts_ns, Ordering::Relaxed);
        self.last_emitted_at_ns
            .store(crate::latency::now_ns(), Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(rows, Ordering::Release);
    }

    /// Records that the producer started producing now (the first start only; a restart keeps
    /// it).
    pub fn record_started(&self) {
        let _ = self.started_at_ns.compare_exchange(
            NO_TIMESTAMP,
            crate::latency::now_ns(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// Records that the stream was ended now.
    pub fn record_ended(&self) {
        self.ended_at_ns
            .store(crate::latency::now_ns(), Ordering::Relaxed);
    }

    /// When the producer first started (wall clock, ns since the Unix epoch), if it did.
    pub fn started_at_ns(&self) -> Option<i64> {
        Some(self.started_at_ns.load(Ordering::Relaxed)).filter(|&t| t != NO_TIMESTAMP)
    }

    /// When the stream was ended (wall clock, ns since the Unix epoch), if it was.
    pub fn ended_at_ns(&self) -> Option<i64> {
        Some(self.ended_at_ns.load(Ordering::Relaxed)).filter(|&t| t != NO_TIMESTAMP)
    }

    /// Records a sign of life from the producer: it is acquiring, even if no row came due.
    pub fn heartbeat(&self) {
        self.heartbeats.fetch_add(1, Ordering::Relaxed);
    }

    /// Signs of life so far; a producer whose count stops moving while it is not
    /// [waiting](Self::is_waiting) has stalled.
    pub fn heartbeats(&self) -> u64 {
        self.heartbeats.load(Ordering::Relaxed)
    }

    /// Marks the producer as waiting for its consumers (or not any more).
    pub fn set_waiting(&self, waiting: bool) {
        self.waiting.store(waiting, Ordering::Relaxed);
    }

    /// Whether the producer is waiting for its consumers right now.
    pub fn is_waiting(&self) -> bool {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Records rows that could not be acquired because the pipeline pushed back.
    pub fn record_overflow(&self, rows: u64) {
        self.overflow_rows.fetch_add(rows, Ordering::Relaxed);
    }

    /// Records a restart of the producer.
    pub fn record_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    /// Rows emitted so far (the next `seq`).
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Acquire)
    }

    /// Batches emitted so far.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Timestamp of the first row, if any row was emitted.
    pub fn first_timestamp_ns(&self) -> Option<i64> {
        Some(self.first_timestamp_ns.load(Ordering::Relaxed)).filter(|&t| t != NO_TIMESTAMP)
    }

    /// Timestamp of the newest row, if any row was emitted.
    pub fn last_timestamp_ns(&self) -> Option<i64> {
        Some(self.last_timestamp_ns.load(Ordering::Relaxed)).filter(|&t| t != NO_TIMESTAMP)
    }

    /// When the newest batch was emitted (wall clock, ns since the Unix epoch), if any was.
    pub fn last_emitted_at_ns(&self) -> Option<i64> {
        Some(self.last_emitted_at_ns.load(Ordering::Relaxed)).filter(|&t| t != NO_TIMESTAMP)
    }

    /// Rows lost to overflow at the source.
    pub fn overflow_rows(&self) -> u64 {
        self.overflow_rows.load(Ordering::Relaxed)
    }

    /// Restarts so far.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }
}

/// Per-link counters: one link carries one stream to one consumer.
#[derive(Debug, Default)]
pub struct LinkStats {
    /// Events waiting in the link's queue now.
    depth: AtomicUsize,
    /// Largest depth seen.
    max_depth: AtomicUsize,
    /// Data batches dropped (best-effort overflow, or consumer gone).
    dropped_batches: AtomicU64,
    /// Rows in those dropped batches.
    dropped_rows: AtomicU64,
    /// Rows handed to the consumer.
    delivered_rows: AtomicU64,
}

impl LinkStats {
    /// Sets the current queue depth and tracks the maximum.
    pub fn set_depth(&self, depth: usize) {
        self.depth.store(depth, Ordering::Relaxed);
        self.max_depth.fetch_max(depth, Ordering::Relaxed);
    }

    /// Counts a dropped batch of `rows` rows.
    pub fn record_drop(&self, rows: u64) {
        self.dropped_batches.fetch_add(1, Ordering::Relaxed);
        self.dropped_rows.fetch_add(rows, Ordering::Relaxed);
    }

    /// Counts rows handed to the consumer.
    pub fn record_delivered(&self, rows: u64) {
        self.delivered_rows.fetch_add(rows, Ordering::Relaxed);
    }

    /// Events queued now.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// Largest queue depth seen.
    pub fn max_depth(&self) -> usize {
        self.max_depth.load(Ordering::Relaxed)
    }

    /// Batches dropped.
    pub fn dropped_batches(&self) -> u64 {
        self.dropped_batches.load(Ordering::Relaxed)
    }

    /// Rows dropped.
    pub fn dropped_rows(&self) -> u64 {
        self.dropped_rows.load(Ordering::Relaxed)
    }

    /// Rows handed to the consumer.
    pub fn delivered_rows(&self) -> u64 {
        self.delivered_rows.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_stats_track_first_and_last_timestamp() {
        let s = StreamStats::default();
        assert_eq!(s.first_timestamp_ns(), None);
        s.record_batch(3, 10, 30);
        s.record_batch(2, 40, 50);
        s.record_batch(0, 99, 99);
        assert_eq!(s.rows(), 5);
        assert_eq!(s.batches(), 2);
        assert_eq!(s.first_timestamp_ns(), Some(10));
        assert_eq!(s.last_timestamp_ns(), Some(50));
    }

    #[test]
    fn link_stats_keep_the_maximum_depth() {
        let l = LinkStats::default();
        l.set_depth(4);
        l.set_depth(1);
        assert_eq!(l.depth(), 1);
        assert_eq!(l.max_depth(), 4);
        l.record_drop(7);
        assert_eq!((l.dropped_batches(), l.dropped_rows()), (1, 7));
    }
}
