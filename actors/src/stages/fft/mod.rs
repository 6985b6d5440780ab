//! The FFT stage (`type = "fft"`): windowed spectra (magnitude or PSD) with a real-input FFT.

mod config;
mod kernel;
mod spectrum;
mod stage;

pub use config::{FftConfig, SpectrumOutput};
pub use spectrum::WindowSpectrum;
pub use stage::{BIN_WIDTH_METADATA_KEY, BINS_METADATA_KEY, FftStage};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::field_unit;
    use crate::stages::fir::tests::noise;
    use crate::stages::test_support::{batch_of, next_batch, seqs, sim, timestamps};
    use crate::stages::{RATE_METADATA_KEY, Stage, StageInput, Window};
    use arrow_array::cast::AsArray;
    use arrow_array::types::Float64Type;
    use arrow_array::{Array, RecordBatch};

    fn config(size: usize, overlap: f64, window: Window, output: SpectrumOutput) -> FftConfig {
        FftConfig {
            size,
            overlap,
            window,
            output,
        }
    }

    /// Spectra of channel `name`, one vector per row.
    fn spectra(batches: &[RecordBatch], name: &str) -> Vec<Vec<f64>> {
        batches
            .iter()
            .flat_map(|b| {
                let list = b
                    .column_by_name(name)
                    .expect("column")
                    .as_fixed_size_list()
                    .clone();
                (0..list.len())
                    .map(move |i| {
                        list.value(i)
                            .as_primitive::<Float64Type>()
                            .values()
                            .to_vec()
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn a_sine_peaks_at_its_bin_with_its_amplitude() {
        let rate = 1024.0;
        for window in [
            Window::Hann,
            Window::Hamming,
            Window::Blackman,
            Window::Rect,
        ] {
            let input = StageInput::new("sim", &[("ch0", "V")], rate);
            let mut stage = FftStage::new(
                &config(1024, 0.5, window, SpectrumOutput::Magnitude),
                &input,
            )
            .expect("valid");
            // 100 Hz at 1 Hz per bin: bin 100; amplitude 3 V.
            let mut g = sim(rate, 1, 100.0, 3.0, 0.0);
            let mut out = Vec::new();
            for _ in 0..5 {
                stage
                    .process(&next_batch(&mut g, 700, rate), &mut out)
                    .expect("matches");
            }
            let rows = spectra(&out, "ch0");
            assert_eq!(rows.len(), (3500 - 1024) / 512 + 1);
            for spectrum in &rows {
                assert_eq!(spectrum.len(), 513);
                let (peak, value) = spectrum
                    .iter()
                    .enumerate()
                    .fold((0, 0.0), |m, (k, &v)| if v > m.1 { (k, v) } else { m });
                assert_eq!(peak, 100, "{window:?}");
                assert!((value - 3.0).abs() < 1e-9, "{window:?}: {value}");
            }
        }
    }

    #[test]
    fn psd_satisfies_parseval() {
        let rate = 2000.0;
        for (window, size) in [
            (Window::Rect, 256),
            (Window::Hann, 1000),
            (Window::Blackman, 255),
        ] {
            let x = noise(4 * size, 11);
            let input = StageInput::new("sim", &[("ch0", "V")], rate);
            let mut stage = FftStage::new(&config(size, 0.0, window, SpectrumOutput::Psd), &input)
                .expect("valid");
            let mut out = Vec::new();
            stage
                .process(&batch_of(&[&x], 0, rate), &mut out)
                .expect("matches");
            let w = window.coefficients(size, true);
            let sum_w2: f64 = w.iter().map(|v| v * v).sum();
            let bin_width = rate / size as f64;
            for (k, psd) in spectra(&out, "ch0").iter().enumerate() {
                let block = &x[k * size..(k + 1) * size];
                let power: f64 = block
                    .iter()
                    .zip(&w)
                    .map(|(s, w)| (s * w).powi(2))
                    .sum::<f64>()
                    / sum_w2;
                let parseval: f64 = psd.iter().sum::<f64>() * bin_width;
                assert!(
                    ((parseval - power) / power).abs() < 1e-9,
                    "{window:?} {size}: {parseval} vs {power}"
                );
            }
            let field = stage.output_schema().field(2).clone();
            assert_eq!(field_unit(&field), Some("V²/Hz"));
            assert_eq!(
                field.metadata()[BIN_WIDTH_METADATA_KEY],
                bin_width.to_string()
            );
            assert_eq!(
                field.metadata()[BINS_METADATA_KEY],
                (size / 2 + 1).to_string()
            );
        }
    }

    #[test]
    fn windows_span_batches_with_exact_timestamps_and_contiguous_seq() {
        let rate = 1000.0;
        let x0 = noise(5000, 1);
        let x1 = noise(5000, 2);
        let input = StageInput::new("sim", &[("ch0", "V"), ("ch1", "V")], rate);
        let cfg = config(300, 0.25, Window::Hann, SpectrumOutput::Magnitude);
        let mut whole = FftStage::new(&cfg, &input).expect("valid");
        let mut a = Vec::new();
        whole
            .process(&batch_of(&[&x0, &x1], 0, rate), &mut a)
            .expect("matches");
        let mut cut = FftStage::new(&cfg, &input).expect("valid");
        let mut b = Vec::new();
        let mut start = 0;
        for len in [1usize, 299, 7, 450, 1000, 13, 3230] {
            let end = start + len;
            cut.process(
                &batch_of(&[&x0[start..end], &x1[start..end]], start as u64, rate),
                &mut b,
            )
            .expect("matches");
            start = end;
        }
        assert_eq!(start, 5000);
        assert_eq!(spectra(&a, "ch0"), spectra(&b, "ch0"));
        assert_eq!(spectra(&a, "ch1"), spectra(&b, "ch1"));
        let windows = (5000 - 300) / 225 + 1;
        assert_eq!(seqs(&b), (0..windows as u64).collect::<Vec<_>>());
        let expected: Vec<i64> = (0..windows as i64).map(|k| k * 225 * 1_000_000).collect();
        assert_eq!(
            timestamps(&b),
            expected,
            "timestamp of each window's first sample"
        );
        let schema = cut.output_schema();
        assert_eq!(
            schema.metadata()[RATE_METADATA_KEY],
            (1000.0 / 225.0).to_string()
        );
        assert_eq!(field_unit(schema.field(3)), Some("V"));
    }

    #[test]
    fn a_null_sample_reads_as_nan_in_its_window_only() {
        let rate = 1000.0;
        let x = noise(64, 5);
        let input = StageInput::new("sim", &[("ch0", "V")], rate);
        let cfg = config(16, 0.0, Window::Hann, SpectrumOutput::Psd);
        let mut stage = FftStage::new(&cfg, &input).expect("valid");
        let plain = batch_of(&[&x], 0, rate);
        let with_null: arrow_array::Float64Array =
            (0..x.len()).map(|i| (i != 20).then_some(x[i])).collect();
        let mut columns = plain.batch.columns().to_vec();
        columns[2] = std::sync::Arc::new(with_null);
        let batch = RecordBatch::try_new(plain.batch.schema(), columns).expect("valid");
        let mut out = Vec::new();
        stage
            .process(
                &crate::batch::DataBatch::new("sim".into(), 0, batch),
                &mut out,
            )
            .expect("matches");
        let rows = spectra(&out, "ch0");
        assert_eq!(rows.len(), 4);
        for (k, row) in rows.iter().enumerate() {
            // Sample 20 lies in window 1 (samples 16..32).
            let expected = if k == 1 { f64::is_nan } else { f64::is_finite };
            assert!(row.iter().all(|v| expected(*v)), "window {k}: {row:?}");
        }
    }

    #[test]
    fn bad_overlap_and_size_are_reported() {
        let cfg = config(1, 1.0, Window::Hann, SpectrumOutput::Psd);
        assert_eq!(
            cfg.check(),
            vec![
                ("size", "must be at least 2, got 1".to_string()),
                ("overlap", "must be in [0, 1), got 1".to_string()),
            ]
        );
        let parsed: FftConfig =
            serde_json::from_str(r#"{"size": 8, "window": "blackman", "output": "psd"}"#)
                .expect("parses");
        assert_eq!(parsed.overlap, 0.5);
        assert!(serde_json::from_str::<FftConfig>(r#"{"window": "kaiser"}"#).is_err());
    }
}

/// Stage versus bare plans, in turns so that a busy machine slows all alike; prints the best run
/// of each (no assertion: speed is measured in `benches/fft.rs`, not asserted). Run
/// with `cargo test --release -p ensemble-actors --lib fft_speed -- --ignored --nocapture`.
#[cfg(test)]
mod speed {
    use super::*;
    use crate::stages::fir::tests::noise;
    use crate::stages::test_support::batch_of;
    use crate::stages::{Stage, StageInput, Window};
    use realfft::RealFftPlanner;
    use realfft::num_complex::Complex;
    use rustfft::FftPlanner;
    use std::time::Instant;

    /// Feeds every batch to `stage`, dropping the output.
    fn run_stage(stage: &mut FftStage, batches: &[crate::batch::DataBatch]) {
        let mut out = Vec::new();
        for b in batches {
            stage.process(b, &mut out).expect("matches");
            out.clear();
        }
    }

    /// Seconds of the fastest run of each closure: `passes` times over all closures in turn,
    /// each one run `rounds` times in a row (so that it runs with its own data in cache, as in a
    /// criterion bench, while a busy machine slows all of them alike).
    fn best_of(passes: usize, rounds: usize, runs: &mut [&mut dyn FnMut()]) -> Vec<f64> {
        let mut best = vec![f64::MAX; runs.len()];
        for _ in 0..passes {
            for (run, best) in runs.iter_mut().zip(&mut best) {
                for _ in 0..rounds {
                    let t = Instant::now();
                    run();
                    *best = best.min(t.elapsed().as_secs_f64());
                }
            }
        }
        best
    }

    #[test]
    #[ignore = "timing; run in release"]
    fn fft_speed() {
        let x = noise(1 << 20, 3);
        let batches: Vec<_> = x
            .chunks(8192)
            .enumerate()
            .map(|(i, c)| batch_of(&[c], (i * 8192) as u64, 1e6))
            .collect();
        let input = StageInput::new("sim", &[("ch0", "V")], 1e6);
        for size in [1024usize, 65536] {
            let stage = |output| {
                let cfg = FftConfig {
                    size,
                    overlap: 0.0,
                    window: Window::Hann,
                    output,
                };
                FftStage::new(&cfg, &input).expect("valid")
            };
            let (mut mag, mut psd) = (stage(SpectrumOutput::Magnitude), stage(SpectrumOutput::Psd));
            let real = RealFftPlanner::<f64>::new().plan_fft_forward(size);
            let (mut buf, mut spec, mut scratch) = (
                real.make_input_vec(),
                real.make_output_vec(),
                real.make_scratch_vec(),
            );
            let complex = FftPlanner::<f64>::new().plan_fft_forward(size);
            let mut cbuf = vec![Complex::new(0.0, 0.0); size];
            let mut cscratch = vec![Complex::new(0.0, 0.0); complex.get_inplace_scratch_len()];
            let best = best_of(
                3,
                10,
                &mut [
                    &mut || run_stage(&mut mag, &batches),
                    &mut || run_stage(&mut psd, &batches),
                    &mut || {
                        for w in x.chunks_exact(size) {
                            buf.copy_from_slice(w);
                            real.process_with_scratch(&mut buf, &mut spec, &mut scratch)
                                .expect("sized");
                        }
                        std::hint::black_box(&spec);
                    },
                    &mut || {
                        for w in x.chunks_exact(size) {
                            for (d, s) in cbuf.iter_mut().zip(w) {
                                *d = Complex::new(*s, 0.0);
                            }
                            complex.process_with_scratch(&mut cbuf, &mut cscratch);
                        }
                        std::hint::black_box(&cbuf);
                    },
                ],
            );
            let ms = |s: f64| s * 1e3;
            eprintln!(
                "size {size}: stage {:.3} ms, stage_psd {:.3} ms, bare realfft {:.3} ms, \
                 bare rustfft complex {:.3} ms; stage/complex {:.3}, stage/realfft {:.3}, \
                 stage_psd/complex {:.3}, stage_psd/realfft {:.3}",
                ms(best[0]),
                ms(best[1]),
                ms(best[2]),
                ms(best[3]),
                best[0] / best[3],
                best[0] / best[2],
                best[1] / best[3],
                best[1] / best[2],
            );
        }
    }
}
