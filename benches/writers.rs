//! Writer properties and writers side by side, on the same batches, in one run.
//!
//! `cargo bench --bench writers` prints, for each variant, rows/s (min, median, max over the
//! repetitions, interleaved so that a noisy neighbour hits every variant alike) and file size.
//!
//! CPU time (user + system, this process and its children) is printed beside wall-clock rates,
//! as a total and split into user and system time: on a machine shared with busy neighbours it
//! tells what each variant costs, independent of how much of the CPU it got.
//!
//! **Durability is the same on every side that is compared.** The pipeline syncs each part when
//! it seals it, so every bare variant and pyarrow sync their file (`fsync`) before their clock
//! stops, inside their timed and CPU-counted window. A writer that never syncs leaves the
//! write-back to the kernel's flusher threads, later and charged to nobody; `bare/delta-ints-
//! nosync` shows that writer for comparison (its file is synced after its clock stops, so that
//! it leaves no dirty pages for the next variant to write back).
//!
//! - `bare/<encodings>`: one `ArrowWriter` on one thread, zstd-1, no dictionary, with plain or
//!   BYTE_STREAM_SPLIT floats and plain or DELTA_BINARY_PACKED `timestamp`/`seq`;
//! - `pipeline`: the whole `ensemble` pipeline as users run it (`ensemble run` in its own
//!   process: a `pace = "max"` simulated instrument, link, sink actor, writer threads) with the
//!   sink's default properties (DELTA_BINARY_PACKED `timestamp`/`seq`, PLAIN floats, i.e.
//!   `bare/delta-ints`), generating the same rows, with the sink's defaults
//!   (`pipeline/default`, write-ahead log on) and with `write_ahead_log = false`
//!   (`pipeline/no-wal`), to show what the log costs.
//!
//! With `PYARROW=1`, every repetition also runs `scripts/pyarrow_baseline.py --repeat 1 --fsync` on the
//! same batches (written once as Arrow IPC), so pyarrow is timed interleaved with the rest.
//!
//! At the end it prints the ratios that matter, each as the ratio of the medians and the range
//! of the ratios within a repetition (the variants of one repetition run one after another, so
//! a busy neighbour hits both sides of a pair alike):
//! - `pipeline/default` / `bare/delta-ints` in rows/s and in CPU seconds per row;
//! - `pipeline/default` / `pyarrow/write_table` in rows/s (with `PYARROW=1`).
//!
//! `cargo bench --bench writers -- --check` also exits with status 1 unless, with the log on
//! (`pipeline/default`): its median rows/s is at least the bare writer's (`bare/delta-ints`), its
//! median CPU seconds per row at most 1.1 times the bare writer's, and (with `PYARROW=1`) its
//! median rows/s at least 1.2 times pyarrow's. It prints which of these failed.
//!
//! `cargo bench --bench writers -- --ipc FILE` instead writes the batches to an Arrow IPC file,
//! for `scripts/pyarrow_baseline.py` to time pyarrow on identical data.
//! Environment: `ROWS` (default 4,000,000), `REPEAT` (default 3), `VARIANTS` (comma-separated
//! names of the variants to run, e.g. `bare/delta-ints,pipeline/default`; default all).

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use arrow_array::RecordBatch;
use ensemble::manifest::Manifest;
use ensemble_actors::instruments::sim::{SimGenerator, SimInstrumentConfig};
use ensemble_actors::sinks::parquet::{ParquetSinkConfig, writer_properties_builder};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding};
use parquet::schema::types::ColumnPath;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH_ROWS: usize = 8192;
const SIGNAL: &str = "{ shape = \"sine\", frequency_hz = 50, amplitude = 1.0, noise = 0.01 }";

/// CPU seconds used so far by this process and its finished children: (user, system).
fn cpu_seconds() -> (f64, f64) {
    use nix::sys::resource::{UsageWho, getrusage};
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    [UsageWho::RUSAGE_SELF, UsageWho::RUSAGE_CHILDREN]
        .into_iter()
        .filter_map(|who| getrusage(who).ok())
        .fold((0.0, 0.0), |(user, sys), u| {
            (user + secs(u.user_time()), sys + secs(u.system_time()))
        })
}

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn batches(rows: usize) -> Vec<RecordBatch> {
    let config: SimInstrumentConfig = toml::from_str(&format!(
        "rate_hz = {rows}\nchannels = [\"a\", \"b\", \"c\", \"d\"]\nsignal = {SIGNAL}"
    ))
    .expect("valid sim config");
    let mut generator = SimGenerator::new(&config, 1_764_000_000_000_000_000, 0);
    let mut out = Vec::new();
    let mut left = rows;
    while left > 0 {
        let n = left.min(BATCH_ROWS);
        out.push(generator.generate(n));
        left -= n;
    }
    out
}

#[derive(Clone, Copy)]
struct Variant {
    name: &'static str,
    float_bss: bool,
    int_delta: bool,
    /// Sync the file before the clock stops, as the pipeline does when it seals a part.
    sync: bool,
    /// Store the float columns uncompressed (zstd kept for the others).
    raw_floats: bool,
}

fn bare_path(dir: &Path, v: Variant) -> std::path::PathBuf {
    dir.join(format!("{}.parquet", v.name.replace('/', "-")))
}

/// One repetition of one variant: wall-clock seconds and CPU seconds (user, system) of its timed
/// part, and the bytes it wrote.
struct Sample {
    secs: f64,
    user: f64,
    sys: f64,
    bytes: u64,
}

/// Runs `f` with the clock and the CPU counters around it, and nothing else.
fn timed(f: impl FnOnce()) -> (f64, f64, f64) {
    let (user, sys) = cpu_seconds();
    let started = Instant::now();
    f();
    let secs = started.elapsed().as_secs_f64();
    let (user_after, sys_after) = cpu_seconds();
    (secs, user_after - user, sys_after - sys)
}

fn bare(dir: &Path, batches: &[RecordBatch], v: Variant) -> Sample {
    let mut builder =
        writer_properties_builder(&ParquetSinkConfig::default()).expect("valid properties");
    if v.float_bss {
        for c in ["a", "b", "c", "d"] {
            builder = builder.set_column_encoding(ColumnPath::from(c), Encoding::BYTE_STREAM_SPLIT);
        }
    }
    let int_encoding = if v.int_delta {
        Encoding::DELTA_BINARY_PACKED
    } else {
        Encoding::PLAIN
    };
    for c in ["timestamp", "seq"] {
        builder = builder.set_column_encoding(ColumnPath::from(c), int_encoding);
    }
    if v.raw_floats {
        for c in ["a", "b", "c", "d"] {
            builder =
                builder.set_column_compression(ColumnPath::from(c), Compression::UNCOMPRESSED);
        }
    }
    let path = bare_path(dir, v);
    // The last repetition's file goes before the clock starts (freeing its pages is not writing).
    let _ = std::fs::remove_file(&path);
    let props = builder.build();
    let (secs, user, sys) = timed(|| {
        let file = File::create(&path).expect("create");
        let mut writer =
            ArrowWriter::try_new(&file, batches[0].schema(), Some(props)).expect("writer");
        for batch in batches {
            writer.write(batch).expect("write");
        }
        writer.close().expect("close");
        if v.sync {
            file.sync_all().expect("sync");
        }
    });
    let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
    if !v.sync {
        // After the clock: the next variant should not write this file's dirty pages back.
        let _ = File::open(&path).and_then(|f| f.sync_all());
    }
    Sample {
        secs,
        user,
        sys,
        bytes,
    }
}

/// Runs the pipeline as users do: `ensemble run` (the release binary) in its own process. In this
/// process it would share memory with the bare writers' ready batches (4 M rows are 192 MB,
/// 16 M rows 768 MB, which its memory governor counts as the run's own), the rayon pool and the
/// allocator's state. The time includes starting and ending the run (about 30–40 ms of wall-clock
/// time and 12–15 ms of CPU time for a 1,000-row run here, 2026-12-04).
fn pipeline(dir: &Path, rows: usize, wal: bool) -> Sample {
    let text = format!(
        "[experiment]\nname = \"bench\"\nduration = \"1s\"\n\
         [instruments.daq]\ntype = \"sim\"\nrate_hz = {rows}\nchannels = [\"a\", \"b\", \"c\", \"d\"]\n\
         pace = \"max\"\nmax_batch_rows = {BATCH_ROWS}\nsignal = {SIGNAL}\n\
         [sinks.store]\ntype = \"parquet\"\ninputs = [\"daq\"]\nwrite_ahead_log = {wal}\n"
    );
    let file = dir.join("bench.toml");
    std::fs::write(&file, text).expect("write the experiment");
    let out = dir.join(format!("run-{}", ulid::Ulid::new()));
    let mut status = None;
    let (secs, user, sys) = timed(|| {
        status = Some(
            Command::new(env!("CARGO_BIN_EXE_ensemble"))
                .arg("run")
                .arg(&file)
                .arg("--output")
                .arg(&out)
                .arg("--quiet")
                .stdout(Stdio::null())
                .status()
                .expect("ensemble starts"),
        );
    });
    let status = status.expect("set by the timed run");
    assert!(status.success(), "ensemble run failed: {status}");
    let run_dir = std::fs::read_dir(&out)
        .expect("output directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.is_dir())
        .expect("a run directory");
    let manifest = Manifest::read(&run_dir).expect("manifest");
    assert_eq!(manifest.streams["daq"].rows, rows as u64);
    let bytes = std::fs::read_dir(run_dir.join("daq"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    // After the clock: 5 repetitions would otherwise leave 1.2 GB behind.
    let _ = std::fs::remove_dir_all(&out);
    Sample {
        secs,
        user,
        sys,
        bytes,
    }
}

fn write_ipc(path: &Path, batches: &[RecordBatch]) {
    let file = File::create(path).expect("create IPC file");
    let mut writer =
        arrow_ipc::writer::FileWriter::try_new(file, &batches[0].schema()).expect("IPC writer");
    for b in batches {
        writer.write(b).expect("IPC write");
    }
    writer.finish().expect("IPC finish");
}

/// Runs `scripts/pyarrow_baseline.py` once on `ipc`: rows/s (timed by the script), the CPU
/// time of the whole script (Python's start and reading the batches included) and file bytes.
fn pyarrow(ipc: &Path, rows: usize) -> Option<Sample> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pyarrow_baseline.py");
    let mut out = None;
    let (_, user, sys) = timed(|| {
        out = std::process::Command::new("python3")
            .arg(script)
            .arg(ipc)
            .args(["--repeat", "1", "--fsync"])
            .output()
            .ok();
    });
    let out = out?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("pyarrow/write_table"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |key: &str| -> Option<&str> {
        let i = words.iter().position(|w| *w == key)?;
        words.get(i + 1).copied()
    };
    let rate: f64 = after("median")?.parse().ok()?;
    Some(Sample {
        secs: rows as f64 / rate,
        user,
        sys,
        bytes: after("bytes")?.parse().ok()?,
    })
}

fn main() {
    let rows = env_usize("ROWS", 4_000_000);
    let repeat = env_usize("REPEAT", 3);
    let args: Vec<String> = std::env::args().collect();
    let batches = batches(rows);
    if let Some(i) = args.iter().position(|a| a == "--ipc") {
        let path = args.get(i + 1).expect("--ipc FILE");
        write_ipc(Path::new(path), &batches);
        println!("wrote {rows} rows in {} batches to {path}", batches.len());
        return;
    }
    let only: Option<Vec<String>> = std::env::var("VARIANTS")
        .ok()
        .map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    let wanted = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|w| w == name));
    let check = args.iter().any(|a| a == "--check");
    let variant = |name, float_bss, int_delta, sync| Variant {
        name,
        float_bss,
        int_delta,
        sync,
        raw_floats: false,
    };
    // The unsynced variant first: the file it leaves dirty is synced right after its
    // measurement, so that no later variant's sync writes it back.
    let variants = [
        variant(BARE_NO_SYNC, false, true, false),
        variant("bare/plain", false, false, true),
        variant("bare/bss-floats", true, false, true),
        variant(BARE, false, true, true),
        variant("bare/bss-floats+delta-ints", true, true, true),
        Variant {
            raw_floats: true,
            ..variant(BARE_RAW_FLOATS, false, true, true)
        },
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let ipc = (std::env::var("PYARROW").as_deref() == Ok("1")).then(|| {
        let path = dir.path().join("batches.arrow");
        write_ipc(&path, &batches);
        path
    });
    let mut results: Vec<Measured> = variants
        .iter()
        .map(|v| v.name)
        .chain(PIPELINES)
        .chain([PYARROW])
        .map(Measured::new)
        .collect();
    let per_mrow = |s: f64| s / (rows as f64 / 1e6);
    let mut record = |i: usize, run: &mut dyn FnMut() -> Option<Sample>| {
        if !wanted(results[i].name) {
            return;
        }
        if let Some(sample) = run() {
            let r = &mut results[i];
            r.rates.push(rows as f64 / sample.secs);
            r.user.push(per_mrow(sample.user));
            r.sys.push(per_mrow(sample.sys));
            r.cpu.push(per_mrow(sample.user + sample.sys));
            r.bytes = sample.bytes;
        }
    };
    for _ in 0..repeat {
        for (i, v) in variants.iter().enumerate() {
            record(i, &mut || Some(bare(dir.path(), &batches, *v)));
        }
        for (i, wal) in [(variants.len(), true), (variants.len() + 1, false)] {
            record(i, &mut || Some(pipeline(dir.path(), rows, wal)));
        }
        record(variants.len() + 2, &mut || {
            ipc.as_deref().and_then(|p| pyarrow(p, rows))
        });
    }
    results.retain(|r| !r.rates.is_empty());
    let ratios = Ratios::of(&results);
    println!(
        "rows={rows} repeat={repeat} codec=zstd-1 dictionary=off rayon_threads={}",
        rayon::current_num_threads()
    );
    println!(
        "durability: every variant but {BARE_NO_SYNC} has its file synced (fsync) before its \
         clock stops, as the pipeline syncs each part when it seals it"
    );
    println!(
        "{:<30} {:>10} {:>10} {:>10} {:>9} {:>9} {:>9} {:>11}",
        "variant", "min rows/s", "median", "max", "cpu s/M", "user s/M", "sys s/M", "bytes"
    );
    for r in &results {
        let rates = sorted(&r.rates);
        println!(
            "{:<30} {:>10.0} {:>10.0} {:>10.0} {:>9.3} {:>9.3} {:>9.3} {:>11}",
            r.name,
            rates[0],
            median(&rates),
            rates[rates.len() - 1],
            median(&r.cpu),
            median(&r.user),
            median(&r.sys),
            r.bytes
        );
    }
    let failed = ratios.print();
    if check {
        if failed.is_empty() {
            println!("check: passed");
        } else {
            println!("check: FAILED: {}", failed.join("; "));
            std::process::exit(1);
        }
    }
}

const BARE: &str = "bare/delta-ints";
/// The bare writer as it was measured before 2026-12-04 17:00: its file is never synced, so the
/// kernel writes it back later, outside its clock and its CPU time (for comparison only).
const BARE_NO_SYNC: &str = "bare/delta-ints-nosync";
/// The bare writer with the float columns stored uncompressed.
const BARE_RAW_FLOATS: &str = "bare/delta-ints+raw-floats";
const PIPELINES: [&str; 2] = ["pipeline/default", "pipeline/no-wal"];
const PYARROW: &str = "pyarrow/write_table";
/// `--check`: the pipeline's rows/s at least this times the bare writer's ...
const MIN_VS_BARE: f64 = 1.0;
/// ... its CPU per row at most this times the bare writer's ...
const MAX_CPU_VS_BARE: f64 = 1.1;
/// ... and its rows/s at least this times pyarrow's.
const MIN_VS_PYARROW: f64 = 1.2;

/// What one variant measured, one entry per repetition (CPU figures per million rows).
struct Measured {
    name: &'static str,
    rates: Vec<f64>,
    cpu: Vec<f64>,
    user: Vec<f64>,
    sys: Vec<f64>,
    bytes: u64,
}

impl Measured {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            rates: Vec::new(),
            cpu: Vec::new(),
            user: Vec::new(),
            sys: Vec::new(),
            bytes: 0,
        }
    }
}

fn sorted(values: &[f64]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

/// The median (the upper one of an even count).
fn median(values: &[f64]) -> f64 {
    let v = sorted(values);
    v[v.len() / 2]
}

/// One ratio `a / b`: of the medians, and the lowest and highest within a repetition (NaN when
/// the two sides ran a different number of times).
struct Ratio {
    label: String,
    of_medians: f64,
    low: f64,
    high: f64,
}

impl Ratio {
    fn new(label: String, a: &[f64], b: &[f64]) -> Option<Self> {
        if a.is_empty() || b.is_empty() {
            return None;
        }
        // Pairs of one repetition; if a run of either side failed (pyarrow can), the
        // repetitions no longer pair up and there is no range.
        let pairs: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
        let pairs = sorted(&pairs);
        let (low, high) = if a.len() == b.len() {
            (pairs[0], pairs[pairs.len() - 1])
        } else {
            (f64::NAN, f64::NAN)
        };
        Some(Self {
            label,
            of_medians: median(a) / median(b),
            low,
            high,
        })
    }
}

/// The ratios printed at the end and checked by `--check`.
struct Ratios {
    vs_bare: Option<Ratio>,
    cpu_vs_bare: Option<Ratio>,
    vs_pyarrow: Option<Ratio>,
    others: Vec<Ratio>,
}

impl Ratios {
    fn of(results: &[Measured]) -> Self {
        let find = |name: &str| results.iter().find(|r| r.name == name);
        let ratio = |a: &str, b: &str, cpu: bool| {
            let (x, y) = (find(a)?, find(b)?);
            let (x, y) = if cpu {
                (&x.cpu, &y.cpu)
            } else {
                (&x.rates, &y.rates)
            };
            let what = if cpu { "CPU s per row" } else { "rows/s" };
            Ratio::new(format!("{a} / {b}, {what}"), x, y)
        };
        Self {
            vs_bare: ratio(PIPELINES[0], BARE, false),
            cpu_vs_bare: ratio(PIPELINES[0], BARE, true),
            vs_pyarrow: ratio(PIPELINES[0], PYARROW, false),
            others: [
                ratio(PIPELINES[1], BARE, false),
                ratio(PIPELINES[1], BARE, true),
                ratio(PIPELINES[1], PYARROW, false),
                ratio(PIPELINES[0], BARE_NO_SYNC, false),
                ratio(PIPELINES[0], BARE_NO_SYNC, true),
                ratio(PIPELINES[0], BARE_RAW_FLOATS, false),
                ratio(PIPELINES[0], BARE_RAW_FLOATS, true),
            ]
            .into_iter()
            .flatten()
            .collect(),
        }
    }

    /// Prints every ratio; returns the checks that failed (see the module docs).
    fn print(&self) -> Vec<String> {
        println!(
            "{:<58} {:>9} {:>18}",
            "ratio", "medians", "range in a repeat"
        );
        let mut failed = Vec::new();
        let checks = [
            (&self.vs_bare, MIN_VS_BARE, true),
            (&self.cpu_vs_bare, MAX_CPU_VS_BARE, false),
            (&self.vs_pyarrow, MIN_VS_PYARROW, true),
        ];
        for (ratio, limit, at_least) in checks {
            let Some(r) = ratio else { continue };
            let ok = if at_least {
                r.of_medians >= limit
            } else {
                r.of_medians <= limit
            };
            let sign = if at_least { ">=" } else { "<=" };
            println!(
                "{:<58} {:>8.2}x {:>8.2}x-{:.2}x  (check {sign} {limit}: {})",
                r.label,
                r.of_medians,
                r.low,
                r.high,
                if ok { "ok" } else { "MISSED" }
            );
            if !ok {
                failed.push(format!(
                    "{} is {:.2}x, not {sign} {limit}",
                    r.label, r.of_medians
                ));
            }
        }
        for r in &self.others {
            println!(
                "{:<58} {:>8.2}x {:>8.2}x-{:.2}x",
                r.label, r.of_medians, r.low, r.high
            );
        }
        if self.vs_bare.is_none() || self.cpu_vs_bare.is_none() {
            failed.push(format!("{} and {BARE} must both run", PIPELINES[0]));
        }
        failed
    }
}
