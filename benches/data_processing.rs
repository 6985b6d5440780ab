//! FIR filtering: the scalar reference, the SIMD loop (`wide::f64x4`) and the rayon-parallel
//! SIMD loop, plus the whole FIR stage, at 1k to 1M samples per block.
//!
//! `cargo bench --bench data_processing -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ensemble_actors::stages::Stage;
use ensemble_actors::stages::fir::kernel::{fir_parallel, fir_scalar, fir_simd};
use ensemble_actors::stages::fir::{FirConfig, FirStage};

const TAPS: usize = 64;
const SIZES: [usize; 4] = [1_000, 10_000, 100_000, 1_000_000];

fn signal(n: usize) -> Vec<f64> {
    (0..n)
        .map(|i| ((i as f64) * 0.01).sin() + ((i * 7919) % 1000) as f64 * 1e-4)
        .collect()
}

fn taps() -> Vec<f64> {
    (0..TAPS).map(|k| 1.0 / (1.0 + k as f64)).collect()
}

fn fir_kernels(c: &mut Criterion) {
    let h = taps();
    let mut group = c.benchmark_group("fir_64_taps");
    group.sample_size(10);
    for n in SIZES {
        let x = signal(n + TAPS - 1);
        let mut y = vec![0.0; n];
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("scalar", n), &n, |b, _| {
            b.iter(|| fir_scalar(black_box(&h), black_box(&x), &mut y))
        });
        group.bench_with_input(BenchmarkId::new("simd", n), &n, |b, _| {
            b.iter(|| fir_simd(black_box(&h), black_box(&x), &mut y))
        });
        group.bench_with_input(BenchmarkId::new("parallel", n), &n, |b, _| {
            b.iter(|| fir_parallel(black_box(&h), black_box(&x), &mut y, 16 * 1024))
        });
    }
    group.finish();
}

fn fir_stage(c: &mut Criterion) {
    use ensemble_actors::batch::with_rate;
    use ensemble_actors::batch::{ChannelSpec, DataBatch, stream_schema};
    use ensemble_actors::stages::StageInput;
    use std::sync::Arc;

    let mut group = c.benchmark_group("fir_stage_64_taps");
    group.sample_size(10);
    let config = FirConfig {
        taps: Some(taps()),
        design: None,
    };
    let input = StageInput::new("sim", &[("ch0", "V")], 1e6);
    for n in [10_000usize, 100_000] {
        let schema = with_rate(&stream_schema(&[ChannelSpec::new("ch0", "V")]), 1e6);
        let batch = arrow_array::RecordBatch::try_new(
            schema,
            vec![
                Arc::new(
                    arrow_array::TimestampNanosecondArray::from_iter_values(0..n as i64)
                        .with_timezone("UTC"),
                ),
                Arc::new(arrow_array::UInt64Array::from_iter_values(0..n as u64)),
                Arc::new(arrow_array::Float64Array::from(signal(n))),
            ],
        )
        .expect("valid batch");
        let batch = DataBatch::new("sim".into(), 0, batch);
        let mut stage = FirStage::new(&config, &input).expect("valid");
        let mut out = Vec::new();
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                stage.process(black_box(&batch), &mut out).expect("matches");
                out.clear();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, fir_kernels, fir_stage);
criterion_main!(benches);
