//! The FFT stage against bare plans on the same data, side by side in one run, at window sizes
//! 1024 and 65536 (no overlap, Hann window, 1 Mi samples per iteration):
//!
//! - `stage`: [`FftStage::process`] fed batches of 8,192 rows (the simulator's default batch),
//!   as in a pipeline, magnitude output: windowing, transform, magnitude, timestamps, `seq` and
//!   the Arrow batch. Windows of 65,536 samples span eight batches (read across the held input
//!   buffers, not copied).
//! - `stage_psd`: the same with PSD output (no square root).
//! - `bare_realfft`: copy each window into the plan's input and transform it (realfft, the
//!   transform the stage uses): the stricter baseline.
//! - `bare_rustfft_complex`: convert each window to `Complex` and transform it in place with a
//!   complex rustfft plan of the same size (what the issue names).
//!
//! `cargo bench --bench fft` (add `-- --warm-up-time 1 --measurement-time 3` for a quick run).

use std::hint::black_box;
use std::sync::Arc;

use arrow_array::{Float64Array, RecordBatch, TimestampNanosecondArray, UInt64Array};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ensemble_actors::batch::with_rate;
use ensemble_actors::batch::{ChannelSpec, DataBatch, stream_schema};
use ensemble_actors::stages::fft::{FftConfig, FftStage, SpectrumOutput};
use ensemble_actors::stages::{Stage, StageInput, Window};
use realfft::RealFftPlanner;
use rustfft::FftPlanner;
use rustfft::num_complex::Complex;

const SAMPLES: usize = 1 << 20;
const RATE: f64 = 1e6;

fn signal() -> Vec<f64> {
    (0..SAMPLES)
        .map(|i| ((i as f64) * 0.013).sin() + ((i * 7919) % 1000) as f64 * 1e-4)
        .collect()
}

const BATCH_ROWS: usize = 8192;

fn batch(x: &[f64], first: usize) -> DataBatch {
    let schema = with_rate(&stream_schema(&[ChannelSpec::new("ch0", "V")]), RATE);
    let n = x.len();
    let (t0, t1) = (first as i64, (first + n) as i64);
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(TimestampNanosecondArray::from_iter_values(t0..t1).with_timezone("UTC")),
            Arc::new(UInt64Array::from_iter_values(t0 as u64..t1 as u64)),
            Arc::new(Float64Array::from(x.to_vec())),
        ],
    )
    .expect("valid batch");
    DataBatch::new("sim".into(), first as u64, batch)
}

fn fft(c: &mut Criterion) {
    let x = signal();
    let batches: Vec<DataBatch> = x
        .chunks(BATCH_ROWS)
        .enumerate()
        .map(|(i, c)| batch(c, i * BATCH_ROWS))
        .collect();
    let input = StageInput::new("sim", &[("ch0", "V")], RATE);
    let mut group = c.benchmark_group("fft");
    group.sample_size(10);
    group.throughput(Throughput::Elements(SAMPLES as u64));
    for size in [1024usize, 65536] {
        let config = FftConfig {
            size,
            overlap: 0.0,
            window: Window::Hann,
            output: SpectrumOutput::Magnitude,
        };
        let mut out = Vec::new();
        for (name, output) in [
            ("stage", SpectrumOutput::Magnitude),
            ("stage_psd", SpectrumOutput::Psd),
        ] {
            let mut stage = FftStage::new(
                &FftConfig {
                    output,
                    ..config.clone()
                },
                &input,
            )
            .expect("valid");
            group.bench_with_input(BenchmarkId::new(name, size), &size, |b, _| {
                b.iter(|| {
                    for batch in &batches {
                        stage.process(black_box(batch), &mut out).expect("matches");
                        out.clear();
                    }
                })
            });
        }

        let plan = RealFftPlanner::<f64>::new().plan_fft_forward(size);
        let mut buf = plan.make_input_vec();
        let mut spectrum = plan.make_output_vec();
        let mut scratch = plan.make_scratch_vec();
        group.bench_with_input(BenchmarkId::new("bare_realfft", size), &size, |b, _| {
            b.iter(|| {
                for window in black_box(&x).chunks_exact(size) {
                    buf.copy_from_slice(window);
                    plan.process_with_scratch(&mut buf, &mut spectrum, &mut scratch)
                        .expect("lengths from the plan");
                }
                black_box(spectrum[1])
            })
        });

        let plan = FftPlanner::<f64>::new().plan_fft_forward(size);
        let mut cbuf = vec![Complex::new(0.0, 0.0); size];
        let mut cscratch = vec![Complex::new(0.0, 0.0); plan.get_inplace_scratch_len()];
        group.bench_with_input(
            BenchmarkId::new("bare_rustfft_complex", size),
            &size,
            |b, _| {
                b.iter(|| {
                    for window in black_box(&x).chunks_exact(size) {
                        for (d, s) in cbuf.iter_mut().zip(window) {
                            *d = Complex::new(*s, 0.0);
                        }
                        plan.process_with_scratch(&mut cbuf, &mut cscratch);
                    }
                    black_box(cbuf[1])
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, fft);
criterion_main!(benches);
