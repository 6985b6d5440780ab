//! Zero cost of the live view, measured: a `pace = "max"` lossless stream into Parquet, run
//! alternately without and with `--serve` plus 8 clients polling `/api/events` and
//! `/api/streams` as fast as they can, in one invocation. Prints each run's rows/s, the
//! medians, their ratio and the rows lost.
//!
//! `cargo bench --bench live_view` (rounds: `LIVE_BENCH_ROUNDS`, default 3 of each; rows:
//! `LIVE_BENCH_SECONDS` of a 1 MHz, 4-channel stream, default 10).
//!
//! The clients run in this process at nice 19, like the server's own thread runs at nice 10:
//! on a shared 2-core machine they stand for browsers on other machines, and must not be
//! measured as CPU taken from acquisition by the load generator itself.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ensemble::config::compile;
use ensemble::coordinator::StopReason;
use ensemble::progress::ProgressMode;
use ensemble::run::{RunReport, run_served_blocking};
use ensemble::web::ServeConfig;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CLIENTS: usize = 8;

fn experiment(seconds: u64, output: &std::path::Path) -> ensemble::config::Experiment {
    let text = format!(
        r#"
[experiment]
name = "live-bench"
duration = "{seconds}s"
[instruments.sig]
type = "sim"
rate_hz = 1000000
pace = "max"
channels = ["a", "b", "c", "d"]
signal = {{ shape = "sine", frequency_hz = 50, amplitude = 1.0 }}
[sinks.store]
type = "parquet"
inputs = ["sig"]
compression = "zstd"
delivery = "lossless"
"#
    );
    let mut e =
        compile(std::path::Path::new("live-bench.toml"), &text).expect("bench config compiles");
    e.output = output.to_path_buf();
    e
}

fn nice(n: i32) {
    // SAFETY: setpriority on this thread only reads its arguments.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, n);
    }
}

fn get(addr: SocketAddr, path: &str, buf: &mut Vec<u8>) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    buf.clear();
    s.read_to_end(buf).is_ok() && buf.starts_with(b"HTTP/1.1 200")
}

/// One client: an open event stream it reads, and back-to-back `/api/streams` and
/// `/api/status` requests.
fn client(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    event_bytes: Arc<AtomicU64>,
) {
    nice(19);
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            nice(19);
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut s) = TcpStream::connect(addr) else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let _ = write!(s, "GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n");
                let mut chunk = [0u8; 16 * 1024];
                while !stop.load(Ordering::Relaxed) {
                    match s.read(&mut chunk) {
                        Ok(0) => break,
                        Ok(n) => {
                            event_bytes.fetch_add(n as u64, Ordering::Relaxed);
                        }
                        Err(e)
                            if e.kind() == std::io::ErrorKind::WouldBlock
                                || e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => break,
                    }
                }
            }
        })
    };
    let mut buf = Vec::new();
    let paths = [
        "/api/streams/sig?seconds=10&points=2000",
        "/api/status",
        "/api/streams/sig?seconds=0&points=2000",
    ];
    let mut k = 0;
    while !stop.load(Ordering::Relaxed) {
        if get(addr, paths[k % paths.len()], &mut buf) {
            requests.fetch_add(1, Ordering::Relaxed);
        } else {
            std::thread::sleep(Duration::from_millis(5));
        }
        k += 1;
    }
    let _ = reader.join();
}

fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("bound")
}

/// One run; with `serve`, the view and 8 clients beside it. Rows/s, rows lost, requests.
fn one_run(seconds: u64, serve: bool) -> (f64, u64, u64, u64) {
    let out = tempfile::tempdir().expect("tempdir");
    let e = experiment(seconds, out.path());
    let addr = free_port();
    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    let event_bytes = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = if serve {
        (0..CLIENTS)
            .map(|_| {
                let (stop, r, b) = (stop.clone(), requests.clone(), event_bytes.clone());
                std::thread::spawn(move || client(addr, stop, r, b))
            })
            .collect()
    } else {
        Vec::new()
    };
    let config = serve.then(|| ServeConfig::new(addr, None).expect("loopback"));
    let report: RunReport = run_served_blocking(
        e,
        std::future::pending::<StopReason>(),
        ProgressMode::Quiet,
        config,
    )
    .expect("run carried out");
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.join();
    }
    let m = &report.manifest;
    let s = &m.streams["sig"];
    let wall = (m.stopped_at.expect("ended") - m.started_at)
        .num_microseconds()
        .expect("short") as f64
        / 1e6;
    let written = s.sinks["store"].rows_written;
    let lost = s.expected_rows.unwrap_or(0).saturating_sub(written) + s.dropped_rows;
    (
        written as f64 / wall,
        lost,
        requests.load(Ordering::Relaxed),
        event_bytes.load(Ordering::Relaxed),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::var("LIVE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let seconds: u64 = std::env::var("LIVE_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    println!(
        "live_view: {seconds} s of a 1 MHz x 4-channel pace=max lossless stream into Parquet (zstd), {rounds} rounds"
    );
    let (mut plain, mut viewed) = (Vec::new(), Vec::new());
    let mut lost_total = 0;
    for round in 0..rounds {
        let (a, lost_a, _, _) = one_run(seconds, false);
        let (b, lost_b, requests, bytes) = one_run(seconds, true);
        lost_total += lost_a + lost_b;
        println!(
            "round {round}: without view {:.2} M rows/s (lost {lost_a}); with view + {CLIENTS} clients {:.2} M rows/s (lost {lost_b}; {requests} API answers, {:.1} MiB of events read)",
            a / 1e6,
            b / 1e6,
            bytes as f64 / 1048576.0
        );
        plain.push(a);
        viewed.push(b);
    }
    let (a, b) = (median(plain), median(viewed));
    println!("median without view: {:.3} M rows/s", a / 1e6);
    println!(
        "median with view and {CLIENTS} clients: {:.3} M rows/s",
        b / 1e6
    );
    println!("ratio with/without: {:.3}", b / a);
    println!("rows lost in all runs: {lost_total}");
}
