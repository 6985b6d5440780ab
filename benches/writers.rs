//! Writer properties and writers side by side, on the same batches, in one run.
//!
//! `cargo bench --bench writers` prints, for each variant, rows/s (min, median, max over the
//! repetitions, interleaved so that a noisy neighbour hits every variant alike) and file size:
//!
//! - `bare/<encodings>`: one `ArrowWriter` on one thread, zstd-1, no dictionary, with plain or
//!   BYTE_STREAM_SPLIT floats and plain or DELTA_BINARY_PACKED `timestamp`/`seq`;
//! - `pipeline`: the whole `ensemble` pipeline (a `pace = "max"` simulated instrument, link,
//!   sink actor, writer thread) with the sink's default properties (DELTA_BINARY_PACKED
//!   `timestamp`/`seq`, PLAIN floats, i.e. `bare/delta-ints`), generating the same rows.
//!
//! `cargo bench --bench writers -- --ipc FILE` instead writes the batches to an Arrow IPC file,
//! for `scripts/pyarrow_baseline.py` to time pyarrow on identical data.
//! Environment: `ROWS` (default 4,000,000), `REPEAT` (default 3).

use std::fs::File;
use std::path::Path;
use std::time::Instant;

use arrow_array::RecordBatch;
use ensemble::config::compile;
use ensemble::progress::ProgressMode;
use ensemble::run::{never, run_blocking};
use ensemble_actors::instruments::sim::{SimGenerator, SimInstrumentConfig};
use ensemble_actors::sinks::parquet::{ParquetSinkConfig, writer_properties_builder};
use parquet::arrow::ArrowWriter;
use parquet::basic::Encoding;
use parquet::schema::types::ColumnPath;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH_ROWS: usize = 8192;
const SIGNAL: &str = "{ shape = \"sine\", frequency_hz = 50, amplitude = 1.0, noise = 0.01 }";

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
}

fn bare(dir: &Path, batches: &[RecordBatch], v: Variant) -> (f64, u64) {
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
    let path = dir.join(format!("{}.parquet", v.name.replace('/', "-")));
    let started = Instant::now();
    let file = File::create(&path).expect("create");
    let mut writer =
        ArrowWriter::try_new(file, batches[0].schema(), Some(builder.build())).expect("writer");
    for batch in batches {
        writer.write(batch).expect("write");
    }
    writer.close().expect("close");
    let secs = started.elapsed().as_secs_f64();
    (secs, std::fs::metadata(&path).map_or(0, |m| m.len()))
}

fn pipeline(dir: &Path, rows: usize) -> (f64, u64) {
    let text = format!(
        "[experiment]\nname = \"bench\"\nduration = \"1s\"\n\
         [instruments.daq]\ntype = \"sim\"\nrate_hz = {rows}\nchannels = [\"a\", \"b\", \"c\", \"d\"]\n\
         pace = \"max\"\nmax_batch_rows = {BATCH_ROWS}\nsignal = {SIGNAL}\n\
         [sinks.store]\ntype = \"parquet\"\ninputs = [\"daq\"]\n"
    );
    let mut experiment = compile(Path::new("bench.toml"), &text).expect("bench compiles");
    experiment.output = dir.to_path_buf();
    let started = Instant::now();
    let report = run_blocking(experiment, never(), ProgressMode::Quiet).expect("run");
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(report.manifest.streams["daq"].rows, rows as u64);
    let bytes = std::fs::read_dir(report.run_dir.join("daq"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    (secs, bytes)
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
    let variants = [
        Variant {
            name: "bare/plain",
            float_bss: false,
            int_delta: false,
        },
        Variant {
            name: "bare/bss-floats",
            float_bss: true,
            int_delta: false,
        },
        Variant {
            name: "bare/delta-ints",
            float_bss: false,
            int_delta: true,
        },
        Variant {
            name: "bare/bss-floats+delta-ints",
            float_bss: true,
            int_delta: true,
        },
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let mut results: Vec<(&str, Vec<f64>, u64)> = variants
        .iter()
        .map(|v| (v.name, Vec::new(), 0))
        .chain(std::iter::once(("pipeline/default", Vec::new(), 0)))
        .collect();
    for _ in 0..repeat {
        for (i, v) in variants.iter().enumerate() {
            let (secs, bytes) = bare(dir.path(), &batches, *v);
            results[i].1.push(rows as f64 / secs);
            results[i].2 = bytes;
        }
        let (secs, bytes) = pipeline(dir.path(), rows);
        let last = results.len() - 1;
        results[last].1.push(rows as f64 / secs);
        results[last].2 = bytes;
    }
    println!("rows={rows} repeat={repeat} codec=zstd-1 dictionary=off");
    println!(
        "{:<30} {:>12} {:>12} {:>12} {:>12}",
        "variant", "min rows/s", "median", "max", "bytes"
    );
    for (name, mut rates, bytes) in results {
        rates.sort_by(f64::total_cmp);
        println!(
            "{:<30} {:>12.0} {:>12.0} {:>12.0} {:>12}",
            name,
            rates[0],
            rates[rates.len() / 2],
            rates[rates.len() - 1],
            bytes
        );
    }
}
