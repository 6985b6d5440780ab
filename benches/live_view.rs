//! Zero cost of the live view, measured: a `pace = "max"` lossless stream into Parquet, run
//! in turn without the view, with `--serve` and no client, and with `--serve` plus 8 clients
//! polling `/api/events` and `/api/streams` as fast as they can, in one invocation. Prints
//! each run's rows/s, the CPU seconds the view's thread took, the medians, their ratios and
//! the rows lost. Within a round the three variants take turns going first, every run starts
//! after a `sync` (outside its clock), and besides the ratio of the medians it prints the
//! median of the per-round ratios, which slow drifts of a shared machine do not move.
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
/// Name of the clients' threads, so their CPU time can be told apart.
const CLIENT_THREAD: &str = "bench-client";

/// CPU seconds (user + system) this process has used, exited threads included.
fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    s(usage.ru_utime) + s(usage.ru_stime)
}

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
    folded_share: Arc<AtomicU64>,
) {
    nice(19);
    let reader = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name(CLIENT_THREAD.into())
            .spawn(move || {
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
            .expect("a reader thread")
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
            if let Some(share) = json_number(&buf, "\"folded_share\":") {
                folded_share.store(share.to_bits(), Ordering::Relaxed);
            }
        } else {
            std::thread::sleep(Duration::from_millis(5));
        }
        k += 1;
    }
    let _ = reader.join();
}

/// The number after `key` in `body`, if there is one.
fn json_number(body: &[u8], key: &str) -> Option<f64> {
    let text = std::str::from_utf8(body).ok()?;
    let rest = &text[text.find(key)? + key.len()..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

/// CPU seconds (user + system) taken so far by this process's threads named `name`.
fn thread_cpu_seconds(name: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let ticks = 100.0; // USER_HZ on Linux
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim_end() == name)
        })
        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
        .map(|stat| {
            // Fields after the command's closing parenthesis; utime and stime are 14 and 15.
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let field = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
            (field(11).unwrap_or(0.0) + field(12).unwrap_or(0.0)) / ticks
        })
        .sum()
}

/// Name of the threads that sample CPU times (their own time is left out of every figure).
const SAMPLER_THREAD: &str = "bench-sampler";

/// Samples the CPU time of the threads named `name` every 100 ms until `stop`; the largest
/// sum seen (the view's thread ends with the run, so its last sample is at most 100 ms old).
fn watch_cpu(name: &'static str, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<f64> {
    std::thread::Builder::new()
        .name(SAMPLER_THREAD.into())
        .spawn(move || {
            let mut most = 0.0f64;
            while !stop.load(Ordering::Relaxed) {
                most = most.max(thread_cpu_seconds(name));
                std::thread::sleep(Duration::from_millis(100));
            }
            most.max(thread_cpu_seconds(name))
        })
        .expect("a sampler thread")
}

fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("a free port");
    l.local_addr().expect("bound")
}

/// What one run measured.
struct Measured {
    rows_per_s: f64,
    lost: u64,
    answers: u64,
    event_bytes: u64,
    /// The view's `folded_share` in the last plot answer a client read (1: every row folded).
    folded_share: f64,
    /// CPU seconds of the view's thread per million rows written.
    view_cpu_per_m_rows: f64,
    /// CPU seconds of everything else in the process (the run) per million rows written.
    acquisition_cpu_per_m_rows: f64,
}

/// One run; with `serve`, the view and `clients` clients beside it.
fn one_run(seconds: u64, serve: bool, clients: usize) -> Measured {
    // Start from a clean page cache: the previous run's dirty pages are written back before
    // the clock starts, not during this run.
    // SAFETY: sync takes no arguments and only flushes the kernel's buffers.
    unsafe { libc::sync() };
    let out = tempfile::tempdir().expect("tempdir");
    let e = experiment(seconds, out.path());
    let addr = free_port();
    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    let event_bytes = Arc::new(AtomicU64::new(0));
    let folded_share = Arc::new(AtomicU64::new(f64::NAN.to_bits()));
    let cpu_before = process_cpu_seconds();
    let sampler = watch_cpu("web", stop.clone());
    let client_sampler = watch_cpu(CLIENT_THREAD, stop.clone());
    let clients: Vec<_> = if serve {
        (0..clients)
            .map(|_| {
                let (stop, r, b) = (stop.clone(), requests.clone(), event_bytes.clone());
                let share = folded_share.clone();
                std::thread::Builder::new()
                    .name(CLIENT_THREAD.into())
                    .spawn(move || client(addr, stop, r, b, share))
                    .expect("a client thread")
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
    let samplers_cpu = thread_cpu_seconds(SAMPLER_THREAD);
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
    let view_cpu = sampler.join().unwrap_or(0.0);
    let clients_cpu = client_sampler.join().unwrap_or(0.0);
    let acquisition_cpu =
        process_cpu_seconds() - cpu_before - view_cpu - clients_cpu - samplers_cpu;
    Measured {
        rows_per_s: written as f64 / wall,
        lost,
        answers: requests.load(Ordering::Relaxed),
        event_bytes: event_bytes.load(Ordering::Relaxed),
        folded_share: f64::from_bits(folded_share.load(Ordering::Relaxed)),
        view_cpu_per_m_rows: view_cpu / (written.max(1) as f64 / 1e6),
        acquisition_cpu_per_m_rows: acquisition_cpu / (written.max(1) as f64 / 1e6),
    }
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
    let (mut plain, mut idle, mut viewed) = (Vec::new(), Vec::new(), Vec::new());
    // Per round, each variant against the run without the view in the same round: slow drifts
    // of the machine (other tenants, writeback) cancel out of these.
    let (mut paired_idle, mut paired_viewed) = (Vec::new(), Vec::new());
    let mut lost_total = 0;
    for round in 0..rounds {
        // The variants take turns going first: a run leaves gigabytes of dirty pages behind,
        // and whatever runs next would otherwise always be the same variant.
        let mut measured: [Option<Measured>; 3] = [None, None, None];
        for k in 0..3 {
            let variant = (round + k) % 3;
            let (serve, clients) = [(false, 0), (true, 0), (true, CLIENTS)][variant];
            measured[variant] = Some(one_run(seconds, serve, clients));
        }
        let [Some(a), Some(b), Some(c)] = measured else {
            unreachable!("every variant ran once this round");
        };
        lost_total += a.lost + b.lost + c.lost;
        println!(
            "round {round}: without view {:.2} M rows/s (lost {}); view, no client {:.2} M rows/s (lost {}; view thread {:.4} CPU s per M rows); view + {CLIENTS} clients {:.2} M rows/s (lost {}; view thread {:.4} CPU s per M rows; {} API answers, {:.1} MiB of events read, folded share {:.3}); run's own CPU s per M rows {:.4} / {:.4} / {:.4}",
            a.rows_per_s / 1e6,
            a.lost,
            b.rows_per_s / 1e6,
            b.lost,
            b.view_cpu_per_m_rows,
            c.rows_per_s / 1e6,
            c.lost,
            c.view_cpu_per_m_rows,
            c.answers,
            c.event_bytes as f64 / 1048576.0,
            c.folded_share,
            a.acquisition_cpu_per_m_rows,
            b.acquisition_cpu_per_m_rows,
            c.acquisition_cpu_per_m_rows,
        );
        paired_idle.push(b.rows_per_s / a.rows_per_s);
        paired_viewed.push(c.rows_per_s / a.rows_per_s);
        plain.push(a.rows_per_s);
        idle.push(b.rows_per_s);
        viewed.push(c.rows_per_s);
    }
    let (a, b, c) = (median(plain), median(idle), median(viewed));
    println!("median without view: {:.3} M rows/s", a / 1e6);
    println!("median with view, no client: {:.3} M rows/s", b / 1e6);
    println!(
        "median with view and {CLIENTS} clients: {:.3} M rows/s",
        c / 1e6
    );
    println!("ratio view, no client / without: {:.3}", b / a);
    println!("ratio with/without: {:.3}", c / a);
    let range = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("{lo:.3}-{hi:.3}")
    };
    println!(
        "median of per-round ratios, view, no client / without: {:.3} (rounds {})",
        median(paired_idle.clone()),
        range(&paired_idle)
    );
    println!(
        "median of per-round ratios, with/without: {:.3} (rounds {})",
        median(paired_viewed.clone()),
        range(&paired_viewed)
    );
    println!("rows lost in all runs: {lost_total}");
}
