//! A whole run through a stage: a `pace = "max"` simulated instrument → FIR stage actor (on its
//! own arbiter) → Parquet sink actor, side by side with the same run without the stage
//! (instrument → sink). Both store the same number of rows, so the throughputs compare the cost
//! of one stage hop (link, feeder, filter, fan-out) against the bare pipeline.
//!
//! `cargo bench --bench stage_pipeline` — rows per second of the stored stream, per variant.

use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ensemble::config::compile;
use ensemble::progress::ProgressMode;
use ensemble::run::{never, run_blocking};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Rows of the instrument (one second at this rate).
const ROWS: u64 = 500_000;

/// The experiment; `with_stage` stores the FIR stage's stream instead of the instrument's.
fn experiment_text(with_stage: bool) -> String {
    let (stage, stored) = if with_stage {
        (
            r#"
[stages.lowpass]
type = "fir"
inputs = ["daq"]
design = { kind = "lowpass", cutoff_hz = 10000.0, taps = 31 }
"#,
            "lowpass",
        )
    } else {
        ("", "daq")
    };
    format!(
        r#"
[experiment]
name = "bench"
duration = "1s"

[instruments.daq]
type = "sim"
rate_hz = {ROWS}
channels = ["a", "b"]
pace = "max"
max_batch_rows = 8192
signal = {{ shape = "sine", frequency_hz = 50, amplitude = 1.0, noise = 0.01 }}
{stage}
[sinks.store]
type = "parquet"
inputs = ["{stored}"]
compression = "snappy"
"#
    )
}

fn stage_vs_no_stage(c: &mut Criterion) {
    let mut group = c.benchmark_group("stage_pipeline");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(ROWS));
    for (name, with_stage, stored) in [
        ("instrument_sink", false, "daq"),
        ("instrument_fir_sink", true, "lowpass"),
    ] {
        let text = experiment_text(with_stage);
        group.bench_function(name, |b| {
            let dir = tempfile::tempdir().expect("tempdir");
            b.iter(|| {
                let mut experiment =
                    compile(Path::new("bench.toml"), &text).expect("bench experiment compiles");
                experiment.output = dir.path().to_path_buf();
                let report = run_blocking(experiment, never(), ProgressMode::Quiet).expect("run");
                assert_eq!(report.manifest.streams[stored].rows, ROWS);
            });
        });
    }
    group.finish();
}

criterion_group!(benches, stage_vs_no_stage);
criterion_main!(benches);
