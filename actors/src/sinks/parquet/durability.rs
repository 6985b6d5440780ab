//! Group commit for a writer thread: every `flush_interval`, close the open row group of every
//! stream that got rows, hand the bytes to the OS, make them durable with one `syncfs` on a
//! syncer thread, and record how old each batch was by then (sample timestamp to durable
//! write). With write-ahead logs, rows are also handed to the syncer after every log append
//! (every `flush_interval / 4`, at most 250 ms), so the syncer runs `syncfs` back to back
//! while rows wait, at most one at a time: a batch waits for the next append, not the next
//! commit.
//!
//! One `syncfs` per thread and interval instead of one `fdatasync` per file: on this kind of VM
//! an `fdatasync` costs about 3.6 ms, so 1,000 streams synced file by file would need 3.6 s of
//! every second, while one `syncfs` after writing 1,000 files took about 75 ms.

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;

use crate::batch::{DataBatch, TIMESTAMP_COLUMN};
use crate::latency::{LatencyHistogram, now_ns};
use crate::sinks::WriteFailure;

/// Newest sample timestamps of the batches of one stream written since its last durable point.
#[derive(Debug, Default)]
pub(super) struct Pending {
    /// One entry per batch; the buffer is reused across commits.
    newest_ns: Vec<i64>,
}

impl Pending {
    /// Notes a batch taken by the writer, and records its age now into `arrivals`.
    pub(super) fn note(&mut self, batch: &DataBatch, arrivals: &mut LatencyHistogram) {
        if let Some(ts) = newest_timestamp(batch) {
            arrivals.record_since(ts, now_ns());
            self.newest_ns.push(ts);
        }
    }

    /// Whether rows were written since the last durable point.
    pub(super) fn is_empty(&self) -> bool {
        self.newest_ns.is_empty()
    }

    /// Everything noted is durable now: record each batch's age into `histogram`.
    pub(super) fn durable(&mut self, now_ns: i64, histogram: &mut LatencyHistogram) {
        for ts in self.newest_ns.drain(..) {
            histogram.record_since(ts, now_ns);
        }
    }
}

/// Where a writer thread hands batches to its syncer thread, and that thread.
type Syncer = (flume::Sender<Vec<i64>>, JoinHandle<Synced>);

/// What a syncer thread measured: each batch's age when its `syncfs` returned, and how long
/// each `syncfs` took.
#[derive(Debug, Default)]
struct Synced {
    durable: LatencyHistogram,
    syncs: LatencyHistogram,
}

/// When a writer thread commits next, the latencies it recorded, and its syncer thread.
///
/// The writer thread only closes row groups and hands the bytes to the OS; the `syncfs` runs on
/// a syncer thread, so encoding goes on while the disk catches up (on a shared disk one
/// `syncfs` also waits for everybody else's dirty pages). Batches handed to the syncer count as
/// durable when its `syncfs` returns.
#[derive(Debug)]
pub(super) struct GroupCommit {
    interval: Option<Duration>,
    next: Instant,
    histogram: LatencyHistogram,
    /// Where the thread's histogram is merged when it finishes, for the sink's report.
    shared: Arc<Mutex<LatencyHistogram>>,
    /// Newest timestamps of batches flushed to the OS, waiting for the syncer to be free.
    handed: Vec<i64>,
    syncer: Option<Syncer>,
    /// Where a batch's time goes, logged at `debug` when the thread finishes: its age when the
    /// writer took it, when it was handed to the syncer, and how long each `syncfs` took.
    arrivals: LatencyHistogram,
    hand_offs: LatencyHistogram,
}

impl GroupCommit {
    /// Commits every `interval` (never, if `None`: rows become durable when a part finishes).
    /// `run_dir` names the file system to sync; sync errors go to `failures`.
    pub(super) fn new(
        interval: Option<Duration>,
        run_dir: &Path,
        shared: Arc<Mutex<LatencyHistogram>>,
        failures: flume::Sender<WriteFailure>,
    ) -> Self {
        let syncer = interval.and_then(|_| spawn_syncer(run_dir, failures));
        Self {
            interval,
            next: Instant::now() + interval.unwrap_or(Duration::MAX / 4),
            histogram: LatencyHistogram::default(),
            shared,
            handed: Vec::new(),
            syncer,
            arrivals: LatencyHistogram::default(),
            hand_offs: LatencyHistogram::default(),
        }
    }

    /// Where the ages of batches are recorded as the writer takes them.
    pub(super) fn arrivals(&mut self) -> &mut LatencyHistogram {
        &mut self.arrivals
    }

    /// Whether a commit is due now.
    pub(super) fn due(&self) -> bool {
        self.interval.is_some() && Instant::now() >= self.next
    }

    /// Schedules the next commit one interval after the one just made.
    pub(super) fn committed(&mut self) {
        if let Some(interval) = self.interval {
            self.next += interval;
            let now = Instant::now();
            if self.next < now {
                self.next = now + interval;
            }
        }
    }

    /// Marks `pending` durable now (its part was just synced and closed).
    pub(super) fn durable(&mut self, pending: &mut Pending) {
        if !pending.is_empty() {
            pending.durable(now_ns(), &mut self.histogram);
        }
    }

    /// `pending` was handed to the OS: it becomes durable with the next background sync.
    pub(super) fn hand_off(&mut self, pending: &mut Pending) {
        self.handed.append(&mut pending.newest_ns);
    }

    /// Hands everything handed off to the syncer: synced by its next `syncfs`, which starts at
    /// once or, if one is running, right after it (then covering everything queued meanwhile).
    /// Queueing behind a slow `syncfs` instead of waiting for the next commit saves up to one
    /// interval of latency when a `syncfs` takes longer than the interval (a shared disk).
    pub(super) fn sync_in_background(&mut self) {
        if self.handed.is_empty() {
            return;
        }
        // Without a syncer (it could not start or has ended) the batches become durable when
        // parts finish.
        if let Some((tx, _)) = self.syncer.as_ref().filter(|(tx, _)| !tx.is_disconnected()) {
            let now = now_ns();
            for &ts in &self.handed {
                self.hand_offs.record_since(ts, now);
            }
            let batch = std::mem::take(&mut self.handed);
            if let Err(flume::SendError(batch)) = tx.send(batch) {
                self.handed = batch;
            }
        }
    }

    /// Waits for the syncer and hands the thread's latencies to the sink's report. Batches
    /// still handed off are durable by now (every part was finished and synced before).
    pub(super) fn publish(&mut self) {
        let mut syncs = LatencyHistogram::default();
        if let Some((tx, thread)) = self.syncer.take() {
            drop(tx);
            if let Ok(synced) = thread.join() {
                self.histogram.merge(&synced.durable);
                syncs = synced.syncs;
            }
        }
        let now = now_ns();
        let late = self.handed.len();
        for ts in self.handed.drain(..) {
            self.histogram.record_since(ts, now);
        }
        tracing::debug!(
            taken = ?self.arrivals.summary(),
            handed = ?self.hand_offs.summary(),
            syncfs = ?syncs.summary(),
            durable = ?self.histogram.summary(),
            durable_at_finish = late,
            "Where the writer thread's batches spent their time (ages in ms)."
        );
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        shared.merge(&self.histogram);
        self.histogram = LatencyHistogram::default();
    }
}

/// A thread that runs `syncfs` on the run directory's file system for each batch it is given,
/// then records the batch's latencies.
fn spawn_syncer(run_dir: &Path, failures: flume::Sender<WriteFailure>) -> Option<Syncer> {
    let dir = File::open(run_dir).ok()?;
    let path = run_dir.to_path_buf();
    // Unbounded, but at most one entry per commit interval waits while a `syncfs` runs.
    let (tx, rx) = flume::unbounded::<Vec<i64>>();
    let thread = std::thread::Builder::new()
        .name("parquet-syncer".into())
        .spawn(move || {
            let mut synced = Synced::default();
            let mut reported = false;
            for mut batch in rx.iter() {
                // Everything queued so far was handed to the OS before this `syncfs` starts.
                for more in rx.try_iter() {
                    batch.extend(more);
                }
                let began = now_ns();
                match nix::unistd::syncfs(&dir) {
                    Ok(()) => {
                        let now = now_ns();
                        synced.syncs.record_since(began, now);
                        for ts in batch {
                            synced.durable.record_since(ts, now);
                        }
                    }
                    Err(errno) if !reported => {
                        reported = true;
                        tracing::error!(path = %path.display(), "Syncing failed: {errno}.");
                        let _ = failures.send(WriteFailure {
                            stream: "*".into(),
                            message: format!("cannot sync {}: {errno}", path.display()),
                        });
                    }
                    Err(_) => {}
                }
            }
            synced
        })
        .ok()?;
    Some((tx, thread))
}

/// The newest (last) timestamp of a batch, if it has a timestamp column.
fn newest_timestamp(batch: &DataBatch) -> Option<i64> {
    let ts = batch
        .batch
        .column_by_name(TIMESTAMP_COLUMN)?
        .as_primitive_opt::<TimestampNanosecondType>()?;
    (!ts.is_empty()).then(|| ts.value(ts.len() - 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instruments::sim::{SimGenerator, SimInstrumentConfig};

    #[test]
    fn pending_batches_are_recorded_once_when_durable() {
        let cfg: SimInstrumentConfig = serde_json::from_str(r#"{"rate_hz": 10.0}"#).expect("valid");
        let start = now_ns() - 2_000_000_000;
        let begun = std::time::Instant::now();
        let mut g = SimGenerator::new(&cfg, start, 0);
        let batch = DataBatch::new("s".into(), 0, g.generate(5));
        let mut pending = Pending::default();
        pending.note(&batch, &mut LatencyHistogram::default());
        let shared = Arc::new(Mutex::new(LatencyHistogram::default()));
        let dir = tempfile::tempdir().expect("tempdir");
        let (failures, _feed) = flume::unbounded();
        let interval = Some(Duration::from_secs(1));
        let mut commit = GroupCommit::new(interval, dir.path(), shared.clone(), failures);
        assert!(!commit.due());
        commit.hand_off(&mut pending);
        assert!(pending.is_empty());
        commit.sync_in_background();
        commit.durable(&mut pending);
        commit.publish();
        let h = shared.lock().expect("not poisoned");
        assert_eq!(h.count(), 1);
        // Newest row is 0.4 s after start, so 1.6 s old when the test began, plus however long
        // the hand-off and the `syncfs` took (seconds when other processes fill the disk).
        let age = h.max() as f64 / 1e9;
        let most = 1.6 + begun.elapsed().as_secs_f64() + 0.05;
        assert!(
            (1.55..most).contains(&age),
            "{age} s, expected 1.55..{most:.2}"
        );
    }
}
