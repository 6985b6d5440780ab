//! Scale-out over NATS JetStream (issue 7), against a real `nats-server -js` on a free loopback
//! port with a temporary store: acquire → JetStream → ingest → Parquet equals the local Parquet
//! sink; a SIGKILLed ingest worker and a restarted server lose nothing; two workers share one
//! durable consumer. Skipped (with a message) when `nats-server` is missing.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use ensemble::ingest::{IngestError, IngestOptions, IngestSummary, RunCheck, check_run};
use ensemble::manifest::Manifest;
use tokio::sync::oneshot;

use crate::util::*;

/// A `nats-server -js` child on 127.0.0.1, killed when dropped.
struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
}

impl NatsServer {
    /// Starts a server, or returns `None` (after `external_available` said so) without one.
    fn start() -> Option<Self> {
        if !crate::nats_cluster::nats_server_available() {
            return None;
        }
        let port = free_port();
        let mut server = Self {
            child: None,
            port,
            store: tempfile::tempdir().expect("tempdir"),
        };
        server.spawn();
        Some(server)
    }

    fn spawn(&mut self) {
        let child = Command::new("nats-server")
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen");
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server gracefully (SIGTERM) and waits for it to exit.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// An in-process ingest worker on its own runtime; stopped (drained) by [`Worker::stop`].
pub(crate) struct Worker {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<IngestSummary, IngestError>>>,
}

impl Worker {
    pub(crate) fn start(options: IngestOptions) -> Self {
        // Logs show with `RUST_LOG=info cargo test ... -- --nocapture`.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(ensemble::ingest::run(options, async {
                let _ = stopped.await;
            }))
        });
        Self {
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub(crate) fn stop(mut self) -> IngestSummary {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.thread
            .take()
            .expect("joined once")
            .join()
            .expect("ingest thread")
            .expect("ingest ends cleanly")
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub(crate) fn ingest_options(
    url: &str,
    stream: &str,
    output: &Path,
    worker: &str,
) -> IngestOptions {
    let mut o = IngestOptions::new(url, stream, output.to_path_buf(), "ingest");
    o.worker = worker.to_string();
    o.commit_interval = Duration::from_millis(200);
    o.ack_wait = Duration::from_secs(2);
    o
}

/// An experiment: one sim instrument `sig` into a local Parquet sink `local` and a nats sink.
fn experiment_text(url: &str, stream: &str, rate: u32, duration: &str, pace: &str) -> String {
    format!(
        r#"
[experiment]
name = "nats-test"
duration = "{duration}"

[instruments.sig]
type = "sim"
rate_hz = {rate}
channels = ["a", "b"]
unit = "V"
pace = "{pace}"
batch_interval = "20ms"
signal = {{ shape = "sine", frequency_hz = 3.0 }}

[instruments.slow]
type = "sim"
rate_hz = 50
channels = ["t"]
unit = "K"
pace = "{pace}"

[sinks.local]
type = "parquet"
inputs = ["sig", "slow"]

[sinks.bus]
type = "nats"
inputs = ["sig", "slow"]
url = "{url}"
stream = "{stream}"
retry_for = "30s"
ack_timeout = "2s"
"#
    )
}

/// Waits until ingest holds the whole run (every published row exactly once).
pub(crate) fn wait_complete(run_dir: &Path, within: Duration) -> RunCheck {
    let deadline = Instant::now() + within;
    loop {
        let check = if run_dir.exists() {
            check_run(run_dir).ok()
        } else {
            None
        };
        if let Some(c) = &check {
            if c.is_complete() {
                return c.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "ingest did not complete {}: {check:?}",
            run_dir.display()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

type Row = (u64, i64, Vec<Option<u64>>);

/// Every row as (seq, timestamp, channel values as bits), in file order.
fn rows(batches: &[RecordBatch]) -> Vec<Row> {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::Float64Type;
    let s = seqs(batches);
    let t = timestamps(batches);
    let mut channels: Vec<Vec<Option<u64>>> = Vec::new();
    for b in batches {
        for i in 0..b.num_rows() {
            channels.push(
                (2..b.num_columns())
                    .map(|c| {
                        let col = b.column(c).as_primitive::<Float64Type>();
                        col.is_valid(i).then(|| col.value(i).to_bits())
                    })
                    .collect(),
            );
        }
    }
    s.into_iter()
        .zip(t)
        .zip(channels)
        .map(|((s, t), c)| (s, t, c))
        .collect()
}

pub(crate) fn ingest_run_dir(output: &Path, report_dir: &Path) -> PathBuf {
    output.join(report_dir.file_name().expect("run dir name"))
}

fn assert_same_rows(local_run: &Path, ingest_run: &Path, stream: &str) {
    let local = read_stream(local_run, stream);
    let remote = read_stream(ingest_run, stream);
    assert_eq!(
        local[0].schema(),
        remote[0].schema(),
        "same schema (with units and rate metadata)"
    );
    assert_eq!(rows(&local), rows(&remote), "same rows, same order");
}

#[test]
fn issue_7_nats_round_trip_equals_the_local_parquet_sink() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let out = tempfile::tempdir().expect("tempdir");
    let ingest_out = out.path().join("ingested");
    let worker = Worker::start(ingest_options(&server.url(), "RT", &ingest_out, "w1"));
    let report = run(experiment(
        &experiment_text(&server.url(), "RT", 20_000, "1s", "max"),
        &out.path().join("runs"),
    ));
    assert_eq!(report.manifest.status, "completed", "{:?}", report.manifest);
    let bus = &report.manifest.streams["sig"].sinks["bus"];
    assert_eq!(bus.rows_written, 20_000);
    assert_eq!(bus.rows_lost, 0);

    let ingest_run = ingest_run_dir(&ingest_out, &report.run_dir);
    let check = wait_complete(&ingest_run, Duration::from_secs(30));
    assert_eq!(check.streams["sig"].rows, 20_000);
    assert_eq!(check.streams["slow"].rows, 50);
    for stream in ["sig", "slow"] {
        assert_contiguous(
            &seqs(&read_stream(&ingest_run, stream)),
            if stream == "sig" { 20_000 } else { 50 },
        );
        assert_same_rows(&report.run_dir, &ingest_run, stream);
    }
    // The final manifest reaches ingest shortly after the run ends.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if Manifest::read(&ingest_run).is_ok_and(|m| m.status == "completed") {
            break;
        }
        assert!(Instant::now() < deadline, "final manifest never arrived");
        thread::sleep(Duration::from_millis(100));
    }
    let summary = worker.stop();
    assert_eq!(summary.rejected, 0);
    assert!(summary.stored > 0);
}

#[test]
fn issue_7_two_workers_share_one_durable_and_write_every_row_once() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let out = tempfile::tempdir().expect("tempdir");
    let ingest_out = out.path().join("ingested");
    let mut a = ingest_options(&server.url(), "TWO", &ingest_out, "w1");
    let mut b = ingest_options(&server.url(), "TWO", &ingest_out, "w2");
    a.commit_messages = 10;
    b.commit_messages = 10;
    // A message redelivered to the other worker (its ack wait passed on a loaded machine)
    // would be written by both: this test is about sharing, not redelivery.
    a.ack_wait = Duration::from_secs(20);
    b.ack_wait = Duration::from_secs(20);
    let (wa, wb) = (Worker::start(a), Worker::start(b));
    let report = run(experiment(
        &experiment_text(&server.url(), "TWO", 10_000, "2s", "realtime"),
        &out.path().join("runs"),
    ));
    assert_eq!(report.manifest.status, "completed");
    let ingest_run = ingest_run_dir(&ingest_out, &report.run_dir);
    let check = wait_complete(&ingest_run, Duration::from_secs(30));
    assert_eq!(check.streams["sig"].rows, 20_000);
    let (sa, sb) = (wa.stop(), wb.stop());
    assert!(
        sa.stored > 0 && sb.stored > 0,
        "both workers got messages: {sa:?} {sb:?}"
    );
    let mut seq = seqs(&read_stream(&ingest_run, "sig"));
    seq.sort_unstable();
    assert_contiguous(&seq, 20_000);
    assert_same_rows_sorted(&report.run_dir, &ingest_run, "sig");
}

/// Same rows as the local sink, compared by `seq` (rows from two workers interleave by file).
fn assert_same_rows_sorted(local_run: &Path, ingest_run: &Path, stream: &str) {
    let mut l = rows(&read_stream(local_run, stream));
    let mut r = rows(&read_stream(ingest_run, stream));
    l.sort_unstable();
    r.sort_unstable();
    assert_eq!(l.len(), r.len());
    assert!(l == r, "same rows");
}

#[test]
fn issue_7_sigkilled_ingest_worker_restarts_without_loss_or_duplicates() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let out = tempfile::tempdir().expect("tempdir");
    let ingest_out = out.path().join("ingested");
    let spawn_ingest = || {
        Command::new(ensemble_bin())
            .args([
                "ingest",
                "--url",
                &server.url(),
                "--stream",
                "KILL",
                "--worker",
                "w1",
            ])
            .args(["--commit-interval", "200ms", "--ack-wait", "2s", "--output"])
            .arg(&ingest_out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ingest starts")
    };
    let mut child = ChildGuard(spawn_ingest());
    let text = experiment_text(&server.url(), "KILL", 10_000, "3s", "realtime");
    let runs = out.path().join("runs");
    let acquisition = thread::spawn(move || run(experiment(&text, &runs)));
    thread::sleep(Duration::from_millis(1500));
    child.0.kill().expect("SIGKILL");
    let _ = child.0.wait();
    thread::sleep(Duration::from_millis(300));
    child = ChildGuard(spawn_ingest());
    let report = acquisition.join().expect("run thread");
    assert_eq!(report.manifest.status, "completed");
    let ingest_run = ingest_run_dir(&ingest_out, &report.run_dir);
    let check = wait_complete(&ingest_run, Duration::from_secs(30));
    assert_eq!(check.streams["sig"].rows, 30_000, "{check:?}");
    assert_eq!(check.streams["sig"].distinct, 30_000, "{check:?}");
    let _ = Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status();
    let status = child.0.wait().expect("ingest exits");
    assert!(status.success(), "ingest exits cleanly on SIGINT: {status}");
    assert_same_rows_sorted(&report.run_dir, &ingest_run, "sig");
}

struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn issue_7_restarted_nats_server_loses_nothing() {
    let Some(mut server) = NatsServer::start() else {
        return;
    };
    let out = tempfile::tempdir().expect("tempdir");
    let ingest_out = out.path().join("ingested");
    let worker = Worker::start(ingest_options(&server.url(), "RESTART", &ingest_out, "w1"));
    let text = experiment_text(&server.url(), "RESTART", 10_000, "4s", "realtime");
    let runs = out.path().join("runs");
    let acquisition = thread::spawn(move || run(experiment(&text, &runs)));
    thread::sleep(Duration::from_millis(1500));
    server.stop();
    thread::sleep(Duration::from_millis(1000));
    server.spawn();
    let report = acquisition.join().expect("run thread");
    assert_eq!(
        report.manifest.status, "completed",
        "{:?}",
        report.manifest.events
    );
    let bus = &report.manifest.streams["sig"].sinks["bus"];
    assert_eq!((bus.rows_written, bus.rows_lost), (40_000, 0));
    let ingest_run = ingest_run_dir(&ingest_out, &report.run_dir);
    let check = wait_complete(&ingest_run, Duration::from_secs(40));
    assert_eq!(check.streams["sig"].rows, 40_000, "{check:?}");
    worker.stop();
    assert_same_rows_sorted(&report.run_dir, &ingest_run, "sig");
}

/// Loopback throughput: the same run through a local Parquet sink alone, then through a nats
/// sink with one ingest worker (until ingest holds every row).
///
/// `cargo test --release --test tests nats::throughput -- --ignored --nocapture`
#[test]
#[ignore = "measurement; prints rows/s"]
fn throughput() {
    let Some(server) = NatsServer::start() else {
        return;
    };
    let rows: u64 = std::env::var("ENSEMBLE_THROUGHPUT_ROWS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5_000_000);
    let text = |sink: &str| {
        format!(
            r#"
[experiment]
name = "throughput"
duration = "{rows}ms"

[instruments.sig]
type = "sim"
rate_hz = 1000
channels = ["a", "b", "c", "d"]
pace = "max"

{sink}
"#
        )
    };
    let out = tempfile::tempdir().expect("tempdir");
    let local = text("[sinks.local]\ntype = \"parquet\"\ninputs = [\"sig\"]\n");
    let t = Instant::now();
    let report = run(experiment(&local, &out.path().join("local")));
    let local_s = t.elapsed().as_secs_f64();
    assert_eq!(report.manifest.streams["sig"].rows, rows);

    let ingest_out = out.path().join("ingested");
    let mut o = ingest_options(&server.url(), "TP", &ingest_out, "w1");
    o.commit_interval = Duration::from_secs(1);
    o.ack_wait = Duration::from_secs(30);
    let worker = Worker::start(o);
    let nats = text(&format!(
        "[sinks.bus]\ntype = \"nats\"\ninputs = [\"sig\"]\nurl = \"{}\"\nstream = \"TP\"\n",
        server.url()
    ));
    let t = Instant::now();
    let report = run(experiment(&nats, &out.path().join("remote")));
    let publish_s = t.elapsed().as_secs_f64();
    let check = wait_complete(
        &ingest_run_dir(&ingest_out, &report.run_dir),
        Duration::from_secs(600),
    );
    let ingest_s = t.elapsed().as_secs_f64();
    worker.stop();
    assert_eq!(check.streams["sig"].rows, rows);
    let rate = |s: f64| rows as f64 / s / 1e6;
    println!("rows: {rows} (timestamp, seq, 4 x f64; batches of 8192 rows)");
    println!(
        "local parquet sink:        {local_s:.2} s  {:.2} M rows/s",
        rate(local_s)
    );
    println!(
        "nats sink (acquire+ack):   {publish_s:.2} s  {:.2} M rows/s",
        rate(publish_s)
    );
    println!(
        "nats → ingest → parquet:   {ingest_s:.2} s  {:.2} M rows/s",
        rate(ingest_s)
    );
}

/// The compose setup's experiments (`configs/nats/`, not checked with `configs/`), plain and
/// secured, compile.
#[test]
fn issue_7_compose_configs_validate() {
    for dir in ["configs/nats", "configs/nats/secure"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).expect("configs/nats") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|x| x == "toml") {
                if let Err(errors) = ensemble::config::load(&path) {
                    panic!("{} does not validate:\n{errors}", path.display());
                }
                n += 1;
            }
        }
        assert!(n >= 2, "{n} configs in {}", dir.display());
    }
}

/// No server at all: the sink gives up after `retry_for`, the run fails, and the manifest counts
/// every row that reached the sink as lost (nothing is dropped silently). Needs no nats-server.
#[test]
fn issue_7_unreachable_server_counts_every_row_as_lost() {
    let out = tempfile::tempdir().expect("tempdir");
    let url = format!("nats://127.0.0.1:{}", free_port());
    let text = format!(
        r#"
[experiment]
name = "unreachable"
duration = "300ms"

[instruments.sig]
type = "sim"
rate_hz = 1000
pace = "max"

[sinks.bus]
type = "nats"
inputs = ["sig"]
url = "{url}"
ack_timeout = "200ms"
retry_for = "500ms"
"#
    );
    let report = run(experiment(&text, out.path()));
    assert_eq!(report.manifest.status, "failed");
    let stream = &report.manifest.streams["sig"];
    let bus = &stream.sinks["bus"];
    assert_eq!(bus.rows_written, 0);
    assert_eq!(
        bus.rows_lost + bus.dropped_rows,
        stream.rows,
        "every row is accounted for: {bus:?}"
    );
    assert!(
        report.manifest.sinks["bus"]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("connect")),
        "{:?}",
        report.manifest.sinks["bus"]
    );
}
