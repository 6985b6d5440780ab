//! Points per second of point plans, end to end through `ensemble::run` (issue 14).
//!
//! `cargo bench --bench plan_points [-- --points N] [--repeat R] [--bluesky] [--scpi]
//! [--scpi-only]` (`--scpi-only`: just the SCPI scan and its bare loop, e.g. under `perf` or
//! `strace -c`):
//! - `scan_1det`: `scan` of one simulated detector's `offset`, N points, `settle = "0ms"`,
//!   `primary` stored by a Parquet sink (Bluesky's `scan([det], motor, 0, 10, N)`);
//! - `count_3det`: `count` of three simulated detectors, N points;
//! - with `--scpi`: a 1,000-point scan of the bundled SCPI simulator (psu) over loopback TCP,
//!   against a bare loop of the same query/answer round trips on one connection;
//! - with `--bluesky`: `scripts/bluesky_baseline.py` in the same invocation, and the ratio;
//! - `per_point`: the cause of the old cost, side by side: one point as the executor used to
//!   take it (a `SimSet` and a `SimReadNow` round trip to the instrument's actor on another
//!   thread) against the same set and read through the instrument's `SimProbe`.
//!
//! Each figure is the median of R runs. "plan" is the executor's own time from the first
//! point to the end of the last (what a plan costs per point); "run" is the whole run,
//! including starting the actors and writers and sealing the files.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Instant;

use ensemble::config::{DirProfiles, compile, compile_with};
use ensemble::progress::ProgressMode;
use ensemble::run::{never, run_blocking};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    points: u64,
    repeat: usize,
    bluesky: bool,
    scpi: bool,
    scpi_only: bool,
}

fn args() -> Args {
    let mut a = Args {
        points: 50_000,
        repeat: 5,
        bluesky: false,
        scpi: false,
        scpi_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--points" => a.points = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.points),
            "--repeat" => a.repeat = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.repeat),
            "--bluesky" => a.bluesky = true,
            "--scpi" => a.scpi = true,
            "--scpi-only" => (a.scpi, a.scpi_only) = (true, true),
            _ => {} // `--bench` and filters cargo passes
        }
    }
    a
}

fn sim(name: &str) -> String {
    format!(
        "[instruments.{name}]\ntype = \"sim\"\nrate_hz = 10\nchannels = [\"v\"]\nsignal = {{ shape = \"sine\", noise = 0.01 }}\n"
    )
}

fn experiment_text(plan: &str, instruments: &[&str]) -> String {
    let mut text = String::from("[experiment]\nname = \"plan-bench\"\n");
    for i in instruments {
        text.push_str(&sim(i));
    }
    text.push_str(&format!(
        "[plan]\n{plan}\n[sinks.store]\ntype = \"parquet\"\ninputs = [\"primary\"]\n"
    ));
    text
}

/// Runs `text` `repeat` times; medians of (plan points/s, run points/s).
fn measure(label: &str, text: &str, points: u64, repeat: usize, profiles: bool) -> (f64, f64) {
    let mut plan_rates = Vec::new();
    let mut run_rates = Vec::new();
    for _ in 0..repeat {
        let out = tempfile::tempdir().expect("tempdir");
        let mut e = if profiles {
            let source = DirProfiles {
                dirs: vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/instruments")],
            };
            compile_with(Path::new("bench.toml"), text, &source).expect("bench experiment")
        } else {
            compile(Path::new("bench.toml"), text).expect("bench experiment")
        };
        e.output = out.path().to_path_buf();
        let started = Instant::now();
        let report = run_blocking(e, never(), ProgressMode::Quiet).expect("run");
        let run_s = started.elapsed().as_secs_f64();
        let primary = &report.manifest.streams["primary"];
        assert_eq!(primary.rows, points, "{label}: every point written");
        let plan_s = primary
            .instrument_report
            .as_ref()
            .and_then(|r| r["seconds"].as_f64())
            .expect("plan report has seconds");
        plan_rates.push(points as f64 / plan_s);
        run_rates.push(points as f64 / run_s);
    }
    let (plan, run) = (median(&mut plan_rates), median(&mut run_rates));
    println!(
        "{label:<12} {points:>7} points  plan {plan:>9.0} points/s ({:>6.2} us/point)  run {run:>9.0} points/s   [plan runs: {}]",
        1e6 / plan,
        plan_rates
            .iter()
            .map(|r| format!("{r:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    (plan, run)
}

/// The 1,000-point scan of the psu simulator over loopback TCP, and the bare loop of the same
/// round trips against the same simulator.
fn scpi_scan(repeat: usize) {
    let port = spawn_simulator("psu");
    let points = 1000;
    let text = format!(
        "[experiment]\nname = \"scpi-bench\"\n[instruments.psu]\ntype = \"scpi\"\nprofile = \"psu\"\naddress = \"tcp://127.0.0.1:{port}\"\npoll_interval = \"1h\"\n[plan]\ntype = \"scan\"\nsetpoint = \"psu.voltage\"\nstart = 0.0\nstop = 9.99\nsteps = {points}\ndetectors = [\"psu\"]\n[sinks.store]\ntype = \"parquet\"\ninputs = [\"primary\"]\n"
    );
    let (plan, _) = measure("scan_scpi", &text, points, repeat, true);
    let bare = median(
        &mut (0..repeat)
            .map(|_| bare_tcp_loop(port, points))
            .collect::<Vec<_>>(),
    );
    println!(
        "scan_scpi    bare TCP loop of the same round trips: {bare:.0} points/s ({:.1} us/point); ensemble {:.1} us/point ({:.2}x the bare loop's time)",
        1e6 / bare,
        1e6 / plan,
        bare / plan
    );
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The bundled simulator on a free loopback port, served from this process.
fn spawn_simulator(profile: &str) -> u16 {
    use ensemble_actors::simulator::{SimulatorOptions, serve_tcp};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let options = SimulatorOptions {
        profile: profile.parse().expect("profile"),
        ..Default::default()
    };
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let _ = serve_tcp(listener, options).await;
        })
    });
    port
}

/// A bare loop of `points` set-and-read round trips, as the scan does per point (a set, its
/// readback, one read of each `[[read]]` query of the psu profile).
fn bare_tcp_loop(port: u16, points: u64) -> f64 {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut writer = stream;
    let mut line = String::new();
    let started = Instant::now();
    for i in 0..points {
        let v = i as f64 * 0.01;
        writer
            .write_all(format!("VOLT {v}\n").as_bytes())
            .expect("write");
        for q in ["VOLT?\n", "MEAS:VOLT?\n", "MEAS:CURR?\n"] {
            writer.write_all(q.as_bytes()).expect("write");
            line.clear();
            reader.read_line(&mut line).expect("answer");
        }
    }
    points as f64 / started.elapsed().as_secs_f64()
}

/// Exits at once: the per-point bench's actor reports to nobody.
struct Nobody;

impl actix::Actor for Nobody {
    type Context = actix::Context<Self>;
}

impl actix::Handler<ensemble_actors::control::ComponentExited> for Nobody {
    type Result = ();
    fn handle(&mut self, _: ensemble_actors::control::ComponentExited, _: &mut Self::Context) {}
}

/// Microseconds per point: actor round trips vs the probe, `points` each.
fn per_point(points: u64) -> (f64, f64) {
    use actix::Actor;
    use ensemble_actors::instruments::sim::{
        SimAcquisition, SimInstrumentActor, SimInstrumentConfig, SimReadNow, SimSet,
    };
    use ensemble_actors::outputs::Outputs;
    use ensemble_actors::stats::StreamStats;
    let system = actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime")
    });
    system.block_on(async move {
        let cfg: SimInstrumentConfig =
            toml::from_str("rate_hz = 10\nchannels = [\"v\"]").expect("sim config");
        let outputs = Outputs::new(
            "det".into(),
            Vec::new(),
            std::sync::Arc::new(StreamStats::default()),
        );
        let acquisition = SimAcquisition::new(&cfg, 0, tokio::time::Instant::now(), None, outputs);
        let me = Nobody.start().recipient();
        let actor = SimInstrumentActor::new("det".into(), acquisition, me);
        let probe = actor.probe();
        let arbiter = actix::Arbiter::new();
        let addr = SimInstrumentActor::start_in_arbiter(&arbiter.handle(), move |_| actor);
        // As the executor did: from a task on a worker thread, two round trips per point.
        let hops = tokio::spawn(async move {
            let started = Instant::now();
            for i in 0..points {
                let set = SimSet {
                    param: "offset".into(),
                    value: i as f64,
                };
                addr.send(set).await.expect("actor").expect("set");
                let r = addr.send(SimReadNow).await.expect("actor");
                std::hint::black_box(r);
            }
            started.elapsed().as_secs_f64() * 1e6 / points as f64
        })
        .await
        .expect("task");
        let direct = tokio::spawn(async move {
            let mut out = [None; 1];
            let started = Instant::now();
            for i in 0..points {
                probe.set("offset", i as f64).expect("set");
                std::hint::black_box(probe.read_into(&mut out));
            }
            started.elapsed().as_secs_f64() * 1e6 / points as f64
        })
        .await
        .expect("task");
        arbiter.stop();
        (hops, direct)
    })
}

fn main() {
    let a = args();
    println!("plan_points: load average {} before", load_average());
    if a.scpi_only {
        scpi_scan(a.repeat);
        println!("plan_points: load average {} after", load_average());
        return;
    }
    let mut hops = Vec::new();
    let mut direct = Vec::new();
    for _ in 0..a.repeat {
        let (h, d) = per_point(20_000);
        hops.push(h);
        direct.push(d);
    }
    println!(
        "per_point    set+read as actor round trips {:.2} us/point, through the probe {:.3} us/point (medians of {})",
        median(&mut hops),
        median(&mut direct),
        a.repeat
    );
    let n = a.points;
    let scan = format!(
        "type = \"scan\"\nsetpoint = \"det.offset\"\nstart = 0.0\nstop = 10.0\nsteps = {n}\nsettle = \"0ms\"\ndetectors = [\"det\"]\n"
    );
    let (scan_plan, _) = measure(
        "scan_1det",
        &experiment_text(&scan, &["det"]),
        n,
        a.repeat,
        false,
    );
    let count = format!("type = \"count\"\nnum = {n}\ndetectors = [\"d1\", \"d2\", \"d3\"]\n");
    measure(
        "count_3det",
        &experiment_text(&count, &["d1", "d2", "d3"]),
        n,
        a.repeat,
        false,
    );
    if a.scpi {
        scpi_scan(a.repeat);
    }
    if a.bluesky {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bluesky_baseline.py");
        let out = std::process::Command::new("python3")
            .arg(script)
            .args(["--points", "1000", "--repeat", "3"])
            .output()
            .expect("python3 runs");
        print!("{}", String::from_utf8_lossy(&out.stdout));
        let last = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .to_string();
        match serde_json::from_str::<serde_json::Value>(&last) {
            Ok(v) => {
                let bluesky = v["median_points_per_s"].as_f64().unwrap_or(f64::NAN);
                println!(
                    "ratio        ensemble scan_1det plan {scan_plan:.0} / bluesky {bluesky:.0} points/s = {:.0}x",
                    scan_plan / bluesky
                );
            }
            Err(_) => eprintln!(
                "bluesky baseline did not report: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
    println!("plan_points: load average {} after", load_average());
}
