//! The whole pipeline (a `pace = "max"` simulated instrument → link → Parquet sink actor →
//! writer thread) against a bare single-threaded `ArrowWriter` loop writing the same batches
//! with the same writer properties.
//!
//! `cargo bench --bench sink_throughput` — the ratio of the two throughputs is the figure of merit.

use std::fs::File;
use std::path::Path;
use std::time::Duration;

use arrow_array::RecordBatch;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ensemble::config::compile;
use ensemble::progress::ProgressMode;
use ensemble::run::{never, run_blocking};
use ensemble_actors::instruments::sim::{SimGenerator, SimInstrumentConfig};
use ensemble_actors::sinks::parquet::{ParquetSinkConfig, writer_properties};
use parquet::arrow::ArrowWriter;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROWS: u64 = 2_000_000;
const BATCH_ROWS: usize = 8192;

fn experiment_text(codec: &str) -> String {
    format!(
        r#"
[experiment]
name = "bench"
duration = "1s"

[instruments.daq]
type = "sim"
rate_hz = {ROWS}
channels = ["a", "b", "c", "d"]
pace = "max"
max_batch_rows = {BATCH_ROWS}
signal = {{ shape = "sine", frequency_hz = 50, amplitude = 1.0, noise = 0.01 }}

[sinks.store]
type = "parquet"
inputs = ["daq"]
compression = "{codec}"
"#
    )
}

fn same_batches() -> Vec<RecordBatch> {
    let config: SimInstrumentConfig = toml::from_str(&format!(
        "rate_hz = {ROWS}\nchannels = [\"a\", \"b\", \"c\", \"d\"]\n\
         signal = {{ shape = \"sine\", frequency_hz = 50, amplitude = 1.0, noise = 0.01 }}"
    ))
    .expect("valid sim config");
    let mut generator = SimGenerator::new(&config, 0, 0);
    let mut batches = Vec::new();
    let mut left = ROWS;
    while left > 0 {
        let rows = left.min(BATCH_ROWS as u64);
        batches.push(generator.generate(rows as usize));
        left -= rows;
    }
    batches
}

fn bare_writer(dir: &Path, batches: &[RecordBatch], config: &ParquetSinkConfig) {
    let props = writer_properties(config, vec![]).expect("valid properties");
    let file = File::create(dir.join("bare.parquet")).expect("create");
    let mut writer = ArrowWriter::try_new(file, batches[0].schema(), Some(props)).expect("writer");
    for batch in batches {
        writer.write(batch).expect("write");
    }
    writer.close().expect("close");
}

fn sink_vs_bare_writer(c: &mut Criterion) {
    let batches = same_batches();
    let mut group = c.benchmark_group("sink_vs_bare_writer");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(ROWS));
    for codec in ["zstd", "none"] {
        let text = experiment_text(codec);
        let sink_config: ParquetSinkConfig =
            toml::from_str(&format!("compression = \"{codec}\"")).expect("valid sink config");
        group.bench_function(format!("bare_arrow_writer/{codec}"), |b| {
            let dir = tempfile::tempdir().expect("tempdir");
            b.iter(|| bare_writer(dir.path(), &batches, &sink_config));
        });
        group.bench_function(format!("ensemble_pipeline/{codec}"), |b| {
            let dir = tempfile::tempdir().expect("tempdir");
            b.iter(|| {
                let mut experiment =
                    compile(Path::new("bench.toml"), &text).expect("bench experiment compiles");
                experiment.output = dir.path().to_path_buf();
                let report = run_blocking(experiment, never(), ProgressMode::Quiet).expect("run");
                assert_eq!(report.manifest.streams["daq"].rows, ROWS);
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // No plots: criterion's plotter needs system fonts, which a minimal machine lacks.
    config = Criterion::default().without_plots();
    targets = sink_vs_bare_writer
}
criterion_main!(benches);
