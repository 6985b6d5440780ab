//! The live web view (issue 12): `run --serve`, its API, a real browser, slow clients, tokens,
//! and `ensemble serve` over finished and killed runs.

mod cdp;
mod hostile;
mod views;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{assert_contiguous, ensemble_bin, external_available, read_stream, seqs};

/// One HTTP/1.1 request (`Connection: close`); returns the status and the body.
pub fn http(addr: &str, method: &str, path: &str, bearer: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("server accepts");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let auth = bearer.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("request sent");
    let raw = read_response(&mut stream);
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// An HTTP response's bytes: up to `Content-Length` past the headers when it is given (some
/// servers, Chromium's DevTools among them, keep the connection open after answering), else
/// until the server closes.
fn read_response(stream: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if length.is_some_and(|n| raw.len() >= end + 4 + n) {
                return raw;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return raw,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
        }
    }
}

fn get_json(addr: &str, path: &str) -> Value {
    let (status, body) = http(addr, "GET", path, None);
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// A child `ensemble` that serves: its address, and its stderr so far.
struct Served {
    child: Child,
    addr: String,
    stderr: Arc<std::sync::Mutex<String>>,
}

impl Served {
    /// Starts `ensemble ARGS` and waits for `serving http://ADDR/`.
    fn start(args: &[&str]) -> Served {
        let mut child = Command::new(ensemble_bin())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ensemble starts");
        let stderr = child.stderr.take().expect("piped");
        let log = Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("serving http://") {
                    let _ = tx.send(addr.trim_end_matches('/').to_string());
                }
                let mut log = sink.lock().expect("log");
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("no `serving` line: {}", log.lock().expect("log"));
            }
        };
        Served {
            child,
            addr,
            stderr: log,
        }
    }

    /// `ensemble run CONFIG --serve 127.0.0.1:0 EXTRA.. --quiet --output OUTPUT`.
    fn run(config: &str, output: &str, extra: &[&str]) -> Served {
        let mut args = vec!["run", config, "--serve", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--quiet", "--output", output]);
        Served::start(&args)
    }

    /// `ensemble serve DIR --listen 127.0.0.1:0`: finished runs.
    fn files(dir: &Path) -> Served {
        Served::start(&[
            "serve",
            &dir.display().to_string(),
            "--listen",
            "127.0.0.1:0",
        ])
    }

    /// Waits for the process to end (at most `timeout`); its exit code and stdout.
    fn wait(mut self, timeout: Duration) -> (i32, String) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                let mut out = String::new();
                if let Some(mut o) = self.child.stdout.take() {
                    let _ = o.read_to_string(&mut out);
                }
                return (status.code().unwrap_or(-1), out);
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                panic!(
                    "did not end in {timeout:?}: {}",
                    self.stderr.lock().expect("log")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(path)
        .display()
        .to_string()
}

/// The single run directory under `output`.
fn run_dir(output: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(output)
        .expect("output exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

/// Every stream of a finished run holds exactly the rows its manifest counts, `seq` 0..n.
fn assert_every_row_saved(run: &Path) -> Value {
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).expect("manifest"))
            .expect("json");
    for (name, s) in manifest["streams"].as_object().expect("streams") {
        let rows = s["rows"].as_u64().expect("rows");
        assert!(rows > 0, "{name} acquired rows");
        assert_eq!(s["dropped_rows"], 0, "{name}");
        assert_contiguous(&seqs(&read_stream(run, name)), rows);
    }
    manifest
}

/// A scan of `steps` points over one simulated meter, `settle` apart.
fn scan_config(name: &str, steps: u32, settle: &str) -> String {
    format!(
        r#"
[experiment]
name = "{name}"

[instruments.meter]
type = "sim"
rate_hz = 1000
channels = ["v"]
unit = "V"
signal = {{ shape = "noise", noise = 0.01 }}

[plan]
type = "scan"
setpoint = "meter.offset"
start = 0.0
stop = 1.0
steps = {steps}
settle = "{settle}"
detectors = ["meter"]

[sinks.store]
type = "parquet"
inputs = ["primary", "meter"]
"#
    )
}

/// The one run under `output` completed with every row and `points` contiguous `primary`
/// rows, after exactly one pause asked from the web view; returns that pause's record.
fn assert_scan_completed_after_one_web_pause(output: &Path, points: u64) -> Value {
    let run = run_dir(output);
    let manifest = assert_every_row_saved(&run);
    assert_eq!(manifest["status"], "completed");
    assert_contiguous(&seqs(&read_stream(&run, "primary")), points);
    let pauses = manifest["interruptions"].as_array().expect("interruptions");
    assert_eq!(pauses.len(), 1, "{pauses:?}");
    assert_eq!(pauses[0]["kind"], "pause");
    assert!(
        pauses[0]["by"]
            .as_str()
            .is_some_and(|b| b.starts_with("web view")),
        "{}",
        pauses[0]
    );
    pauses[0].clone()
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_non_loopback_bind_without_a_token_is_refused_with_a_clear_message() {
    let out = tempfile::tempdir().expect("tempdir");
    let result = Command::new(ensemble_bin())
        .args([
            "run",
            &repo("configs/quickstart.toml"),
            "--serve",
            "0.0.0.0:0",
            "--quiet",
        ])
        .arg("--output")
        .arg(out.path())
        .env_remove("ENSEMBLE_SERVE_TOKEN")
        .output()
        .expect("runs");
    assert_eq!(result.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("refusing to serve on 0.0.0.0:0 without a token"),
        "{stderr}"
    );
    assert!(stderr.contains("--serve-token"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(out.path()).expect("dir").count(),
        0,
        "no run started"
    );
}

#[test]
fn requests_without_the_token_get_401_and_stop_via_the_api_saves_every_row() {
    let out = tempfile::tempdir().expect("tempdir");
    let output = out.path().display().to_string();
    let served = Served::run(
        &repo("configs/quickstart.toml"),
        &output,
        &["--serve-token", "s3cret", "--duration", "60s"],
    );
    let addr = served.addr.clone();
    let (status, body) = http(&addr, "GET", "/api/status", None);
    assert_eq!(status, 401, "{body}");
    assert_eq!(http(&addr, "GET", "/", Some("wrong")).0, 401);
    assert_eq!(http(&addr, "POST", "/api/stop", None).0, 401);
    assert_eq!(http(&addr, "GET", "/api/status?token=s3cret", None).0, 200);
    let (status, body) = http(&addr, "GET", "/api/status", Some("s3cret"));
    assert_eq!(status, 200);
    let mut s: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(s["mode"], "live");
    assert_eq!(s["components"].as_array().expect("components").len(), 3);
    // A stream plan can be paused once it runs (its clock holds; the streams keep recording).
    let deadline = Instant::now() + Duration::from_secs(20);
    while s["can_pause"] != true {
        assert!(Instant::now() < deadline, "never pausable: {s}");
        std::thread::sleep(Duration::from_millis(20));
        let (_, body) = http(&addr, "GET", "/api/status", Some("s3cret"));
        s = serde_json::from_str(&body).expect("json");
    }
    let (status, body) = http(&addr, "POST", "/api/pause", Some("s3cret"));
    assert_eq!(status, 202, "a stream plan's clock pauses: {body}");
    let (status, body) = http(&addr, "POST", "/api/resume", Some("s3cret"));
    assert_eq!(status, 202, "{body}");
    std::thread::sleep(Duration::from_secs(1));
    let (status, _) = http(&addr, "POST", "/api/stop", Some("s3cret"));
    assert_eq!(status, 202);
    let (code, _) = served.wait(Duration::from_secs(60));
    assert_eq!(code, 0, "a stopped run is clean");
    let manifest = assert_every_row_saved(&run_dir(out.path()));
    assert_eq!(manifest["status"], "stopped");
}

#[test]
fn pause_and_resume_from_the_api_hold_a_scan_and_every_point_is_taken() {
    let out = tempfile::tempdir().expect("tempdir");
    let config = out.path().join("scan.toml");
    std::fs::write(&config, scan_config("api-pause", 400, "10ms")).expect("config written");
    let output = out.path().join("runs").display().to_string();
    let served = Served::run(&config.display().to_string(), &output, &[]);
    let addr = served.addr.clone();
    let plan = |addr: &str| get_json(addr, "/api/status")["plan"].clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    while plan(&addr)["phase"] != "running" {
        assert!(Instant::now() < deadline, "the scan never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, body) = http(&addr, "POST", "/api/pause", None);
    assert_eq!(status, 202, "{body}");
    while plan(&addr)["phase"] != "paused" {
        assert!(Instant::now() < deadline, "the pause never took effect");
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = get_json(&addr, "/api/status");
    assert_eq!(s["paused"], true, "{s}");
    let held = s["plan"]["points_done"].as_u64().expect("points done");
    assert!(held < 400, "paused before the end: {held}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        plan(&addr)["points_done"].as_u64(),
        Some(held),
        "no point taken while paused"
    );
    let (status, body) = http(&addr, "POST", "/api/resume", None);
    assert_eq!(status, 202, "{body}");
    let (code, _) = served.wait(Duration::from_secs(60));
    assert_eq!(code, 0, "the scan completes");
    let pause = assert_scan_completed_after_one_web_pause(&out.path().join("runs"), 400);
    assert!(pause["seconds"].as_f64().is_some_and(|t| t >= 1.0));
}

#[test]
fn api_streams_scope_at_1_mhz_returns_at_most_points_buckets_holding_a_single_sample_spike() {
    use ensemble::coordinator::{ReportSlot, StreamView};
    use ensemble::web::live::{LiveRun, LiveSource};
    use ensemble::web::{ServeConfig, WebServer};
    use ensemble_actors::batch::{ChannelSpec, stream_schema};
    use ensemble_actors::stats::StreamStats;
    use ensemble_actors::tap::Tap;

    // Two seconds of a 1 MHz scope, in 100 batches of 20,000 rows, with one spike.
    let tap = Arc::new(Tap::new(256 << 20, 4096));
    let stats = Arc::new(StreamStats::default());
    let schema = stream_schema(&[ChannelSpec::new("signal", "V")]);
    let t0: i64 = 1_800_000_000_000_000_000;
    let spike_row = 1_234_567u64;
    for b in 0..100u64 {
        let first = b * 20_000;
        let rows = first..first + 20_000;
        let ts: Vec<i64> = rows.clone().map(|i| t0 + i as i64 * 1_000).collect();
        let v: Vec<f64> = rows
            .clone()
            .map(|i| {
                if i == spike_row {
                    42.0
                } else {
                    (i as f64 * 0.006).sin()
                }
            })
            .collect();
        let batch = arrow_array::RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(
                    arrow_array::TimestampNanosecondArray::from(ts.clone()).with_timezone("UTC"),
                ),
                Arc::new(arrow_array::UInt64Array::from_iter_values(rows)),
                Arc::new(arrow_array::Float64Array::from(v)),
            ],
        )
        .expect("batch");
        stats.record_batch(20_000, ts[0], ts[19_999]);
        tap.offer(first, &Arc::new(batch));
    }
    let view = StreamView {
        name: "scope".into(),
        component: "scope".into(),
        component_type: "sim",
        channels: vec![ChannelSpec::new("signal", "V")],
        rate_hz: Some(1e6),
        expected_rows: None,
        stats,
        links: Vec::new(),
        stage_links: Vec::new(),
        report: ReportSlot::default(),
        tap: Some(tap),
    };
    let live = LiveSource::new(LiveRun {
        run_id: "test".into(),
        run_dir: PathBuf::from("/nonexistent"),
        experiment: "spike".into(),
        started_at: chrono::Utc::now(),
        duration: None,
        max_memory_mb: 1024,
        streams: vec![view],
        budget: ensemble_actors::budget::MemoryBudget::new(1 << 30),
        view_budget_bytes: 256 << 20,
    });
    let config = ServeConfig::new("127.0.0.1:0".parse().expect("addr"), None).expect("loopback");
    let port = ensemble::control::RunControl::new();
    let server = WebServer::start(&config, Arc::new(live), Arc::new(port)).expect("serves");
    let addr = server.addr().to_string();
    for points in [2000usize, 500, 37] {
        let d = get_json(
            &addr,
            &format!("/api/streams/scope?seconds=10&points={points}"),
        );
        let t = d["t_ns"].as_array().expect("bucket times");
        assert!(
            !t.is_empty() && t.len() <= points,
            "{} buckets for {points}",
            t.len()
        );
        let max = &d["series"][0]["max"];
        let min = &d["series"][0]["min"];
        assert_eq!(max.as_array().expect("max").len(), t.len());
        let spike_t = t0 + spike_row as i64 * 1_000;
        let bucket = d["bucket_ns"].as_i64().expect("bucket width");
        let k = t
            .iter()
            .position(|b| {
                let b = b.as_i64().expect("ns");
                b <= spike_t && spike_t < b + bucket
            })
            .expect("a bucket holds the spike");
        assert_eq!(max[k].as_f64(), Some(42.0), "points={points}");
        assert!(min[k].as_f64().expect("min") < 1.0);
        let others = max
            .as_array()
            .expect("max")
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != k);
        assert!(others.filter_map(|(_, v)| v.as_f64()).all(|v| v <= 1.0));
        assert_eq!(d["rows"], 2_000_000);
        // 2 M samples are within the view's folding budget: every row was folded, so the
        // spike is there because the view saw it, not by luck of a sample.
        assert_eq!(d["folded_share"], 1.0);
        assert_eq!(
            d["source"], "recent",
            "answered from the fine rings, not the tap"
        );
    }
    let (status, body) = http(&addr, "GET", "/api/streams/nope", None);
    assert_eq!(status, 404);
    assert!(body.contains("scope"), "names the streams: {body}");
    assert_eq!(
        http(&addr, "GET", "/api/streams/scope?points=0", None).0,
        400
    );
}

#[test]
fn clients_that_never_read_or_read_1_byte_per_second_do_not_grow_memory_or_slow_the_run() {
    let out = tempfile::tempdir().expect("tempdir");
    // The quickstart at a 256 MiB cap: the view's budget is 32 MiB (an eighth).
    let quickstart = std::fs::read_to_string(repo("configs/quickstart.toml")).expect("quickstart");
    let file = out.path().join("capped.toml");
    std::fs::write(
        &file,
        quickstart.replace(
            "duration = \"10s\"",
            "duration = \"10s\"\nmax_memory_mb = 256",
        ),
    )
    .expect("config");
    let output = out.path().join("runs").display().to_string();
    let served = Served::run(&file.display().to_string(), &output, &["--duration", "45s"]);
    let addr = served.addr.clone();
    let pid = served.child.id();
    let open = |path: &str| {
        let mut s = TcpStream::connect(&addr).expect("connects");
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("request");
        s
    };
    let status = get_json(&addr, "/api/status");
    let view_budget_mib = status["memory"]["view_budget_bytes"]
        .as_u64()
        .expect("budget")
        >> 20;
    assert_eq!(view_budget_mib, 32);
    // Stalled clients from the start; the baseline once the run has ramped up (writers' row
    // groups, the fast stream's tap at its budget).
    let never: Vec<TcpStream> = (0..8).map(|_| open("/api/events")).collect();
    let mut trickle = open("/api/events");
    std::thread::sleep(Duration::from_secs(10));
    let start_rss = rss_kib(pid).expect("VmRSS") / 1024;
    let mut peak = start_rss;
    let mut timeline = Vec::new();
    for _ in 0..30 {
        let mut byte = [0u8; 1];
        let _ = trickle.read(&mut byte);
        std::thread::sleep(Duration::from_secs(1));
        let rss = rss_kib(pid).unwrap_or(0) / 1024;
        timeline.push(rss);
        peak = peak.max(rss);
    }
    eprintln!("RSS MiB from {start_rss}: {timeline:?}");
    // The server cuts event streams whose writes made no progress for its stall timeout.
    for mut s in never {
        assert!(
            hostile::closed_by_server(&mut s, Duration::from_secs(20)),
            "a client that never reads is disconnected"
        );
    }
    // Everything the view may hold (its taps fill during these 30 s) plus what 9 stalled
    // connections hold (one event each, socket buffers): the view's budget and 16 MiB.
    let grown = peak.saturating_sub(start_rss);
    assert!(
        grown <= view_budget_mib + 16,
        "RSS grew {grown} MiB: {timeline:?}"
    );
    assert!(peak < 256, "peak RSS {peak} MiB under the run's cap");
    let (code, _) = served.wait(Duration::from_secs(90));
    assert_eq!(code, 0);
    let manifest = assert_every_row_saved(&run_dir(&out.path().join("runs")));
    assert_eq!(manifest["status"], "completed");
    for (name, s) in manifest["streams"].as_object().expect("streams") {
        assert_eq!(s["rows"], s["expected_rows"], "{name}: every planned row");
        assert_eq!(
            s["overflow_rows"], 0,
            "{name}: the device never had to skip rows"
        );
    }
}

#[test]
fn the_page_in_a_real_browser_plots_every_stream_and_its_stop_saves_every_row() {
    if !external_available("chromium", Path::new(cdp::CHROMIUM).exists()) {
        return;
    }
    let out = tempfile::tempdir().expect("tempdir");
    let output = out.path().display().to_string();
    let served = Served::run(
        &repo("configs/quickstart.toml"),
        &output,
        &["--duration", "120s"],
    );
    let mut browser = cdp::Browser::open(&format!("http://{}/", served.addr));
    // Every stream's plot exists, holds data, and its canvas has drawn pixels in it.
    let ready = "(() => { const p = [...document.querySelectorAll('.plot')];
        if (p.length !== 3) return false;
        return p.every(e => {
          if (Number(e.dataset.points) < 2) return false;
          const c = e.querySelector('canvas'); if (!c) return false;
          const g = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let inked = 0; for (let i = 3; i < g.length; i += 4) if (g[i] > 0) inked++;
          return inked > 500;
        }); })()";
    assert!(
        browser.wait_for(ready, Duration::from_secs(60)),
        "plots with data"
    );
    let streams = browser.eval(
        "[...document.querySelectorAll('.plot')].map(e => e.dataset.stream).sort().join(',')",
    );
    assert_eq!(streams, "daq,scope,thermometer");
    let rows = browser.eval("document.querySelectorAll('#status tbody tr').length");
    assert_eq!(rows, 3, "a status row per component");
    assert_eq!(
        browser.eval("document.getElementById('pause').disabled"),
        false,
        "a stream plan's clock can be paused"
    );
    // Let the traces span a few seconds before the picture.
    std::thread::sleep(Duration::from_secs(3));
    let png = browser.screenshot();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "a real screenshot"
    );
    if let Ok(path) = std::env::var("ENSEMBLE_LIVE_SCREENSHOT") {
        std::fs::write(&path, &png).expect("screenshot written");
    }
    std::fs::write(out.path().join("live.png"), &png).expect("screenshot kept with the run");
    browser.eval("document.getElementById('stop').click(), true");
    let (code, _) = served.wait(Duration::from_secs(60));
    assert_eq!(code, 0);
    let manifest = assert_every_row_saved(&run_dir(out.path()));
    assert_eq!(manifest["status"], "stopped");
    assert!(
        manifest["stop_reason"]
            .as_str()
            .unwrap_or("")
            .contains("web view")
    );
}

#[test]
fn serve_shows_what_a_killed_unrecovered_run_holds_and_says_it_is_unrecovered() {
    let work = tempfile::tempdir().expect("tempdir");
    let file = work.path().join("killed.toml");
    std::fs::write(
        &file,
        r#"
[experiment]
name = "killed"
duration = "60s"
[instruments.scope]
type = "sim"
rate_hz = 20000
channels = ["signal"]
unit = "V"
signal = { shape = "sine", frequency_hz = 50, amplitude = 1.0 }
[sinks.store]
type = "parquet"
inputs = ["scope"]
rotate_interval = "300ms"
"#,
    )
    .expect("config");
    let output = work.path().join("runs");
    let mut child = Command::new(ensemble_bin())
        .args(["run", &file.display().to_string(), "--quiet", "--output"])
        .arg(&output)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    std::thread::sleep(Duration::from_secs(3));
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let run = run_dir(&output);
    let served = Served::files(&output);
    let addr = served.addr.clone();
    let list = get_json(&addr, "/api/status");
    assert_eq!(list["mode"], "runs");
    let id = list["runs"][0]["run_id"].as_str().expect("id").to_string();
    assert_eq!(list["runs"][0]["status"], "running");
    assert_eq!(list["runs"][0]["unrecovered"], true);
    assert!(
        list["runs"][0]["rows"].as_u64().expect("rows") > 0,
        "finished parts count"
    );
    let s = get_json(&addr, &format!("/api/status?run={id}"));
    assert_eq!(s["mode"], "files");
    assert!(
        s["unrecovered"]
            .as_str()
            .expect("note")
            .contains("unrecovered"),
        "{s}"
    );
    let on_disk = s["components"][0]["rows"].as_u64().expect("rows");
    assert!(on_disk > 0);
    let d = get_json(
        &addr,
        &format!("/api/streams/scope?run={id}&seconds=0&points=300"),
    );
    assert_eq!(d["rows"].as_u64(), Some(on_disk));
    assert!(
        !d["t_ns"].as_array().expect("t").is_empty(),
        "plots what the parts hold"
    );
    let max = d["series"][0]["max"].as_array().expect("max");
    assert!(max.iter().filter_map(Value::as_f64).any(|v| v > 0.9));
    assert!(http(&addr, "GET", "/", None).1.contains("uPlot"));
    // The run on disk is left as it was.
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).expect("m"))
            .expect("j");
    assert_eq!(manifest["status"], "running");
}
