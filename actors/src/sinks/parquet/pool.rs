//! Writer threads of a Parquet sink: encoding, compression and file I/O happen here, never on
//! an actor's thread.
//!
//! Each input stream is pinned to one thread (so its rows stay in order); streams are spread
//! over the threads so that several streams encode in parallel. Every thread's queue is bounded:
//! a full queue makes the sending actor wait, which is how a slow disk pushes back.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use arrow_schema::SchemaRef;
use tokio::sync::oneshot;

use super::config::ParquetSinkConfig;
use super::durability::{GroupCommit, Pending};
use super::error::{SinkError, io_err};
use super::metadata::{RUN_METADATA_KEY, file_metadata};
use super::properties::PartSettings;
use super::seal::{SYNC_EACH_UP_TO, UnsealedPart, seal_parts};
use super::writer::StreamPartWriter;
use crate::batch::{DataBatch, StreamId};
use crate::control::StreamWriteReport;
use crate::latency::LatencyHistogram;
use crate::sinks::{FailureFeed, SinkContext, SinkInput, WriteFailure};

/// Batches a writer thread may hold queued before the sender waits: this many, or one per
/// stream it writes if that is more. With 10,000 slow streams a queue of 32 filled during every
/// group commit and stalled the sink actor, and with it every stream's delivery (BENCHMARKS.md,
/// section 0).
const WORKER_QUEUE: usize = 32;
/// How often an idle writer thread checks whether a part is due for rotation.
const IDLE_TICK: Duration = Duration::from_millis(100);
/// The longest rows wait before they are written to their part's log (a quarter of the flush
/// interval when that is shorter): long enough that a fast stream's rows mostly reach a
/// checkpointed row group first, short enough that the kill test's promise (nothing older than
/// `flush_interval` is lost) keeps its margin.
const MAX_LOG_DELAY: Duration = Duration::from_millis(250);
/// Memory a sink's open row groups may take together (their encoded pages stay in memory until
/// the row group closes): each stream's row groups close at this divided by the number of
/// streams, or at `row_group_rows`, whichever comes first. One fast stream keeps full row
/// groups; 1,000 streams close theirs at 128 KiB (without the limit, 1,000 streams × 4 channels
/// × 1 kHz held 3.9 GiB after 60 s).
const ROW_GROUP_BUDGET: usize = 128 << 20;
/// Unsealed parts that make a group commit seal them; fewer wait for the pool to finish (their
/// rows are durable in their logs meanwhile). Each seal costs two `syncfs`, which on a shared
/// disk wait for everybody's dirty pages.
const SEAL_AT: usize = 4096;
/// Ended streams whose last part is encoded between two looks at the queue.
const ENDED_PER_TURN: usize = 16;

enum Command {
    Write(DataBatch),
    End(StreamId),
    Finish(oneshot::Sender<Finished>),
}

/// What a writer thread hands back when the pool finishes: every stream's report, and the
/// parts it finished but left for the pool to seal together with the other threads' parts.
type Finished = (Vec<StreamWriteReport>, Vec<(StreamId, UnsealedPart)>);

/// The pool is gone (its threads have finished); nothing more can be written.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the sink's writer threads have finished")]
pub struct PoolClosed;

/// Handle to a sink's writer threads. Cheap to clone.
#[derive(Clone)]
pub struct WriterPool {
    workers: Arc<Vec<flume::Sender<Command>>>,
    route: Arc<HashMap<StreamId, usize>>,
    /// Sample-to-durable latencies of every thread, merged as each thread finishes.
    latency: Arc<Mutex<LatencyHistogram>>,
    /// The run directory (the file system that `seal_parts` syncs).
    run_dir: Arc<PathBuf>,
    /// Where a failure to seal the last parts is reported.
    failures: flume::Sender<WriteFailure>,
}

impl WriterPool {
    /// Starts the writer threads for `inputs`; write failures are reported on the returned feed
    /// as soon as they happen.
    pub fn start(
        config: &ParquetSinkConfig,
        context: &SinkContext,
        inputs: &[SinkInput],
    ) -> Result<(Self, FailureFeed), SinkError> {
        super::c_heap::keep_c_heap();
        let (failures, feed) = flume::unbounded();
        let threads = config
            .writer_threads
            .unwrap_or_else(|| thread::available_parallelism().map_or(2, |n| n.get()))
            .clamp(1, inputs.len().max(1));
        let mut assigned: Vec<Vec<StreamAssignment>> = (0..threads).map(|_| Vec::new()).collect();
        let mut route = HashMap::new();
        let row_group_bytes = ROW_GROUP_BUDGET / inputs.len().max(1);
        for (i, input) in inputs.iter().enumerate() {
            let mut metadata = file_metadata(
                &context.run_id,
                &context.experiment,
                &input.stream,
                &input.component,
            );
            metadata.push((RUN_METADATA_KEY.to_string(), context.metadata.clone()));
            let mut settings = PartSettings::from_config(config, metadata)?;
            settings.props = settings
                .props
                .into_builder()
                .set_max_row_group_bytes(Some(row_group_bytes))
                .build();
            let directory = match &config.subdirectory {
                Some(sub) => PathBuf::from(sub).join(&*input.stream),
                None => PathBuf::from(&*input.stream),
            };
            assigned[i % threads].push(StreamAssignment {
                stream: input.stream.clone(),
                directory,
                schema: input.schema.clone(),
                settings,
            });
            route.insert(input.stream.clone(), i % threads);
        }
        let latency = Arc::new(Mutex::new(LatencyHistogram::default()));
        let mut workers = Vec::with_capacity(threads);
        for (index, streams) in assigned.into_iter().enumerate() {
            let (tx, rx) = flume::bounded(WORKER_QUEUE.max(streams.len()));
            let run_dir = context.run_dir.clone();
            let failures = failures.clone();
            let throttle = config.throttle_rows_per_s;
            let log_every = config
                .flush_interval
                .map_or(MAX_LOG_DELAY, |f| (f / 4).min(MAX_LOG_DELAY));
            let commit = GroupCommit::new(
                config.flush_interval,
                &context.run_dir,
                latency.clone(),
                failures.clone(),
            );
            thread::Builder::new()
                .name(format!("parquet-writer-{index}"))
                .spawn(move || {
                    let mut worker =
                        Worker::new(&run_dir, streams, throttle, failures, commit, log_every);
                    worker.run(rx);
                })
                .map_err(io_err(&context.run_dir))?;
            workers.push(tx);
        }
        let pool = Self {
            workers: Arc::new(workers),
            route: Arc::new(route),
            latency,
            run_dir: Arc::new(context.run_dir.clone()),
            failures,
        };
        Ok((pool, feed))
    }

    /// Sample-to-durable latency of every batch written by threads that have finished (all of
    /// them once [`finish`](Self::finish) has returned).
    pub fn latency(&self) -> LatencyHistogram {
        self.latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn worker_of(&self, stream: &StreamId) -> Option<&flume::Sender<Command>> {
        self.route.get(stream).and_then(|&i| self.workers.get(i))
    }

    /// Queues a batch for its stream's thread, waiting while that thread's queue is full.
    /// Batches of streams this sink does not take are ignored.
    pub async fn write(&self, batch: DataBatch) -> Result<(), PoolClosed> {
        match self.worker_of(&batch.stream) {
            Some(w) => w
                .send_async(Command::Write(batch))
                .await
                .map_err(|_| PoolClosed),
            None => Ok(()),
        }
    }

    /// Queues a batch for its stream's thread if its queue has room; gives the batch back when
    /// it is full (then [`write`](Self::write) waits for room). Batches of streams this sink
    /// does not take, and batches for a closed pool, are dropped here (a closed pool has
    /// reported its failure already).
    pub fn try_write(&self, batch: DataBatch) -> Result<(), DataBatch> {
        let Some(w) = self.worker_of(&batch.stream) else {
            return Ok(());
        };
        match w.try_send(Command::Write(batch)) {
            Err(flume::TrySendError::Full(Command::Write(batch))) => Err(batch),
            _ => Ok(()),
        }
    }

    /// Finishes a stream's open part (after every batch queued before).
    pub async fn end(&self, stream: StreamId) -> Result<(), PoolClosed> {
        match self.worker_of(&stream) {
            Some(w) => w
                .send_async(Command::End(stream))
                .await
                .map_err(|_| PoolClosed),
            None => Ok(()),
        }
    }

    /// Finishes every stream and stops the threads; returns what each stream wrote.
    ///
    /// The threads encode their last parts, then the parts of all threads are sealed together
    /// (two `syncfs` in all): a thread that deleted its logs while another still created its
    /// files made ext4 skip the freshly freed inodes one by one (`recently_deleted`), which
    /// was most of the time 10,000 streams took to finish.
    pub async fn finish(&self) -> Result<Vec<StreamWriteReport>, PoolClosed> {
        let mut replies = Vec::with_capacity(self.workers.len());
        for w in self.workers.iter() {
            let (tx, rx) = oneshot::channel();
            w.send_async(Command::Finish(tx))
                .await
                .map_err(|_| PoolClosed)?;
            replies.push(rx);
        }
        let mut reports = Vec::new();
        let mut unsealed = Vec::new();
        for rx in replies {
            let (r, u) = rx.await.map_err(|_| PoolClosed)?;
            reports.extend(r);
            unsealed.extend(u);
        }
        if unsealed.is_empty() {
            return Ok(reports);
        }
        let (streams, parts): (Vec<StreamId>, Vec<UnsealedPart>) = unsealed.into_iter().unzip();
        // Sealing waits on the disk: on its own thread, never the caller's (an actor's).
        let (tx, rx) = oneshot::channel();
        let run_dir = self.run_dir.clone();
        thread::Builder::new()
            .name("parquet-sealer".into())
            .spawn(move || {
                let _ = tx.send(seal_parts(&run_dir, parts));
            })
            .map_err(|_| PoolClosed)?;
        if let Err(e) = rx.await.map_err(|_| PoolClosed)? {
            // The parts stay recoverable from their logs (`ensemble recover`).
            for report in reports.iter_mut().filter(|r| streams.contains(&r.stream)) {
                report.error.get_or_insert_with(|| e.to_string());
            }
            report_failure(&self.failures, &streams[0], &e);
        }
        Ok(reports)
    }
}

/// What a writer thread needs to start writing one stream.
struct StreamAssignment {
    stream: StreamId,
    directory: PathBuf,
    schema: SchemaRef,
    settings: PartSettings,
}

/// A stream's writer on its thread, or what is left of it after it finished or failed.
struct Slot {
    writer: Option<StreamPartWriter>,
    report: StreamWriteReport,
    /// Batches written but not yet durable.
    pending: Pending,
}

struct Worker {
    slots: HashMap<StreamId, Slot>,
    /// The run directory (the file system that `seal_parts` syncs).
    run_dir: PathBuf,
    /// Streams that ended but whose last part is not encoded yet: that is done when the queue
    /// is empty, so that other streams' batches never wait behind it (their rows are durable in
    /// the write-ahead log meanwhile).
    ending: Vec<(StreamId, StreamPartWriter)>,
    /// Parts of ended streams, finished but not yet synced and renamed: sealed together when
    /// the pool finishes (or at a group commit once there are [`SEAL_AT`] of them).
    unsealed: Vec<(StreamId, UnsealedPart)>,
    failures: flume::Sender<WriteFailure>,
    throttle: Option<Throttle>,
    commit: GroupCommit,
    /// How often taken rows are written to the logs, and when next.
    log_every: Duration,
    next_log: Instant,
}

impl Worker {
    fn new(
        run_dir: &std::path::Path,
        streams: Vec<StreamAssignment>,
        throttle_rows_per_s: Option<f64>,
        failures: flume::Sender<WriteFailure>,
        commit: GroupCommit,
        log_every: Duration,
    ) -> Self {
        let mut worker = Self {
            slots: HashMap::new(),
            run_dir: run_dir.to_path_buf(),
            ending: Vec::new(),
            unsealed: Vec::new(),
            failures,
            throttle: throttle_rows_per_s.map(Throttle::new),
            commit,
            log_every,
            next_log: Instant::now() + log_every,
        };
        for StreamAssignment {
            stream,
            directory,
            schema,
            settings,
        } in streams
        {
            let report = StreamWriteReport {
                stream: stream.clone(),
                rows: 0,
                parts: Vec::new(),
                rows_lost: 0,
                error: None,
            };
            let writer =
                match StreamPartWriter::new(run_dir, directory, stream.clone(), schema, settings) {
                    Ok(w) => Some(w),
                    Err(e) => {
                        worker.fail(&stream, &e);
                        None
                    }
                };
            let mut slot = Slot {
                writer,
                report,
                pending: Pending::default(),
            };
            if slot.writer.is_none() {
                slot.report.error = Some(format!("{stream}: cannot start writing"));
            }
            worker.slots.insert(stream, slot);
        }
        worker
    }

    fn run(&mut self, rx: flume::Receiver<Command>) {
        loop {
            let next = if self.ending.is_empty() {
                rx.recv_timeout(IDLE_TICK)
            } else {
                rx.try_recv().map_err(|e| match e {
                    flume::TryRecvError::Empty => flume::RecvTimeoutError::Timeout,
                    flume::TryRecvError::Disconnected => flume::RecvTimeoutError::Disconnected,
                })
            };
            match next {
                Ok(Command::Write(batch)) => self.write(&batch),
                Ok(Command::End(stream)) => self.end(&stream),
                Ok(Command::Finish(reply)) => {
                    let streams: Vec<StreamId> = self.slots.keys().cloned().collect();
                    for s in &streams {
                        self.end(s);
                    }
                    self.finish_ended(usize::MAX);
                    self.commit.publish();
                    let reports = self.slots.drain().map(|(_, slot)| slot.report).collect();
                    let unsealed = std::mem::take(&mut self.unsealed);
                    if let Err((_, unsealed)) = reply.send((reports, unsealed)) {
                        // Nobody waits for them: seal them here.
                        self.unsealed = unsealed;
                        self.seal();
                    }
                    return;
                }
                Err(flume::RecvTimeoutError::Timeout) if self.ending.is_empty() => self.tick(),
                Err(flume::RecvTimeoutError::Timeout) => self.finish_ended(ENDED_PER_TURN),
                Err(flume::RecvTimeoutError::Disconnected) => {
                    let streams: Vec<StreamId> = self.slots.keys().cloned().collect();
                    for s in &streams {
                        self.end(s);
                    }
                    self.finish_ended(usize::MAX);
                    self.seal();
                    self.commit.publish();
                    return;
                }
            }
            if self.commit.due() {
                self.group_commit();
            } else if Instant::now() >= self.next_log {
                self.log_pending();
            }
        }
    }

    /// Writes every stream's rows taken since the last time to its log (see
    /// `StreamPartWriter::log_pending`) and hands them to the syncer at once, like a group
    /// commit does: its next `syncfs` (at once, or right after the running one) makes them
    /// durable. With 10,000 slow streams, waiting for the next commit added up to a whole
    /// interval to the latency of every batch (p99 2.3 s against a 2 s target).
    fn log_pending(&mut self) {
        self.next_log = Instant::now() + self.log_every;
        let commit = &mut self.commit;
        each_writer(&mut self.slots, &self.failures, |w, pending| {
            // With a log, every row taken is now either logged or in a checkpointed row group
            // (handed to the OS either way), unless a fast stream skipped the tick.
            if w.log_pending()? && w.logs_ahead() && !pending.is_empty() {
                commit.hand_off(pending);
            }
            Ok(())
        });
        commit.sync_in_background();
    }

    /// Closes the row groups of every stream written since the last commit and hands them to
    /// the syncer thread, which makes them durable with one `syncfs` (see `durability`).
    fn group_commit(&mut self) {
        self.commit.committed();
        self.next_log = Instant::now() + self.log_every;
        each_writer(&mut self.slots, &self.failures, |w, pending| {
            if !pending.is_empty() {
                w.flush_to_os()?;
                self.commit.hand_off(pending);
            }
            Ok(())
        });
        self.commit.sync_in_background();
        if self.unsealed.len() >= SEAL_AT {
            self.seal();
        }
        self.tick();
    }

    /// Seals the parts of every stream that ended since the last time, with two `syncfs` in all.
    fn seal(&mut self) {
        if self.unsealed.is_empty() {
            return;
        }
        let (streams, parts): (Vec<StreamId>, Vec<UnsealedPart>) =
            std::mem::take(&mut self.unsealed).into_iter().unzip();
        if let Err(e) = seal_parts(&self.run_dir, parts) {
            // The parts stay recoverable from their logs (`ensemble recover`).
            for stream in &streams {
                if let Some(slot) = self.slots.get_mut(stream) {
                    slot.report.error.get_or_insert_with(|| e.to_string());
                }
            }
            self.fail(&streams[0], &e);
        }
    }

    fn write(&mut self, batch: &DataBatch) {
        let Some(slot) = self.slots.get_mut(&batch.stream) else {
            return;
        };
        let rows = batch.rows() as u64;
        let Some(writer) = slot.writer.as_mut() else {
            slot.report.rows_lost += rows;
            return;
        };
        if let Err(e) = writer.write(batch) {
            slot.report.rows_lost += rows;
            let stream = batch.stream.clone();
            // Keep what was written: try to finish the open part so it stays readable.
            if let Some(w) = slot.writer.take() {
                if let Ok(partial) = w.finish() {
                    slot.report.rows = partial.rows;
                    slot.report.parts = partial.parts;
                }
            }
            slot.report.error.get_or_insert_with(|| e.to_string());
            self.fail(&stream, &e);
            return;
        }
        slot.pending.note(batch, self.commit.arrivals());
        if let Some(t) = self.throttle.as_mut() {
            t.pace(rows);
        }
    }

    /// Takes an ended stream's writer aside; its last part is encoded later (`finish_ended`).
    fn end(&mut self, stream: &StreamId) {
        let Some(slot) = self.slots.get_mut(stream) else {
            return;
        };
        let Some(mut writer) = slot.writer.take() else {
            return;
        };
        // With a log, its rows are durable with the next group commit's `syncfs` once handed to
        // the OS (a failure here shows again when the part is finished).
        if writer.logs_ahead() && writer.flush_to_os().is_ok() {
            self.commit.hand_off(&mut slot.pending);
            // With many streams, synced at once, not at the next commit: at the end of a run the
            // commits wait until every ended stream's last part is encoded. With a few, their
            // parts are sealed with an `fsync` each right after they are encoded; a `syncfs` now
            // would wait for every other process's dirty pages on the file system (0.7–0.9 s
            // beside other engineers' test runs, at the end of a 0.4 s run; BENCHMARKS.md).
            if self.slots.len() > SYNC_EACH_UP_TO {
                self.commit.sync_in_background();
            }
        }
        self.ending.push((stream.clone(), writer));
    }

    /// Encodes the last part of up to `limit` ended streams; parts with a log are left for
    /// [`seal`](Self::seal).
    fn finish_ended(&mut self, limit: usize) {
        let start = self.ending.len().saturating_sub(limit);
        for (stream, writer) in self.ending.split_off(start) {
            let Some(slot) = self.slots.get_mut(&stream) else {
                continue;
            };
            match writer.finish_unsealed() {
                Ok((report, unsealed)) => {
                    slot.report.rows = report.rows;
                    slot.report.parts = report.parts;
                    match unsealed {
                        Some(part) => self.unsealed.push((stream, part)),
                        None => self.commit.durable(&mut slot.pending),
                    }
                }
                Err(e) => {
                    slot.report.error.get_or_insert_with(|| e.to_string());
                    self.fail(&stream, &e);
                }
            }
        }
    }

    fn tick(&mut self) {
        for stream in each_writer(&mut self.slots, &self.failures, |w, _| w.tick()) {
            if let Some(slot) = self.slots.get_mut(&stream) {
                slot.writer = None;
            }
        }
    }

    fn fail(&self, stream: &StreamId, error: &SinkError) {
        report_failure(&self.failures, stream, error);
    }
}

/// Logs a stream's write failure and sends it to the sink.
fn report_failure(failures: &flume::Sender<WriteFailure>, stream: &StreamId, error: &SinkError) {
    tracing::error!(stream = %stream, "Writing failed: {error}.");
    let _ = failures.send(WriteFailure {
        stream: stream.clone(),
        message: error.to_string(),
    });
}

/// Runs `op` on every stream's writer, with the stream's batches not yet durable; a failure is
/// recorded in the stream's report and reported. Returns the streams that failed.
fn each_writer(
    slots: &mut HashMap<StreamId, Slot>,
    failures: &flume::Sender<WriteFailure>,
    mut op: impl FnMut(&mut StreamPartWriter, &mut Pending) -> Result<(), SinkError>,
) -> Vec<StreamId> {
    let mut failed = Vec::new();
    for (stream, slot) in slots.iter_mut() {
        if let Some(w) = slot.writer.as_mut() {
            if let Err(e) = op(w, &mut slot.pending) {
                slot.report.error.get_or_insert_with(|| e.to_string());
                report_failure(failures, stream, &e);
                failed.push(stream.clone());
            }
        }
    }
    failed
}

/// Limits a writer thread to a number of rows per second (a testing aid).
struct Throttle {
    rows_per_s: f64,
    since: Instant,
    rows: u64,
}

impl Throttle {
    fn new(rows_per_s: f64) -> Self {
        Self {
            rows_per_s,
            since: Instant::now(),
            rows: 0,
        }
    }

    fn pace(&mut self, rows: u64) {
        self.rows += rows;
        let target = self.since + Duration::from_secs_f64(self.rows as f64 / self.rows_per_s);
        let now = Instant::now();
        if target > now {
            thread::sleep(target - now);
        }
    }
}
