//! The FIR filter stage (`type = "fir"`): explicit taps or a windowed-sinc design, SIMD inner
//! loop, state carried across batches.

mod config;
pub mod kernel;
mod stage;

pub use config::{FilterKind, FirConfig, FirDesign};
pub use stage::{FirFilter, FirStage};

#[cfg(test)]
pub(crate) mod tests {
    use super::kernel::{dot_simd, fir_parallel, fir_scalar, fir_simd};
    use super::*;
    use crate::stages::test_support::{batch_of, f64s, next_batch, seqs, sim, timestamps};
    use crate::stages::{RATE_METADATA_KEY, Stage, StageInput, Window};
    use arrow_array::Array;

    /// Deterministic uniform noise in [-1, 1).
    pub(crate) fn noise(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 11) as f64 / (1u64 << 52) as f64 - 1.0
            })
            .collect()
    }

    fn rel_close(a: &[f64], b: &[f64], tol: f64) {
        assert_eq!(a.len(), b.len());
        let scale = b
            .iter()
            .fold(0.0f64, |m, x| m.max(x.abs()))
            .max(f64::MIN_POSITIVE);
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol * scale, "at {i}: {x} vs {y}");
        }
    }

    #[test]
    fn simd_and_parallel_equal_the_scalar_reference_on_odd_lengths() {
        for (taps, n) in [
            (1, 1),
            (3, 17),
            (7, 1001),
            (31, 333),
            (64, 4097),
            (101, 12345),
        ] {
            let h = noise(taps, taps as u64);
            let x = noise(n + taps - 1, n as u64);
            let mut reference = vec![0.0; n];
            let mut simd = vec![0.0; n];
            let mut par = vec![0.0; n];
            fir_scalar(&h, &x, &mut reference);
            fir_simd(&h, &x, &mut simd);
            fir_parallel(&h, &x, &mut par, 64);
            rel_close(&simd, &reference, 1e-12);
            rel_close(&par, &reference, 1e-12);
        }
        let a = noise(1003, 1);
        let b = noise(1003, 2);
        let plain: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot_simd(&a, &b) - plain).abs() < 1e-12 * plain.abs().max(1.0));
    }

    #[test]
    fn batch_by_batch_equals_the_whole_signal() {
        let x = noise(10_007, 9);
        let cfg = FirConfig {
            taps: Some(noise(37, 4)),
            design: None,
        };
        let input = StageInput::new("sim", &[("ch0", "V")], 1000.0);
        let mut whole = FirStage::new(&cfg, &input).expect("valid");
        let mut out_whole = Vec::new();
        whole
            .process(&batch_of(&[&x], 0, 1000.0), &mut out_whole)
            .expect("matches");
        let mut cut = FirStage::new(&cfg, &input).expect("valid");
        let mut out_cut = Vec::new();
        let mut start = 0;
        for len in [1usize, 5, 36, 37, 38, 1000, 3, 4000].iter().cycle() {
            if start >= x.len() {
                break;
            }
            let end = (start + len).min(x.len());
            cut.process(
                &batch_of(&[&x[start..end]], start as u64, 1000.0),
                &mut out_cut,
            )
            .expect("matches");
            start = end;
        }
        let joined: Vec<f64> = out_cut.iter().flat_map(|b| f64s(b, "ch0")).collect();
        assert_eq!(joined, f64s(&out_whole[0], "ch0"), "bit-identical");
        assert_eq!(seqs(&out_cut), (0..x.len() as u64).collect::<Vec<_>>());
        // Against a direct convolution of the whole signal from silence.
        let h = cfg.taps.as_ref().expect("taps");
        let mut padded = vec![0.0; h.len() - 1];
        padded.extend_from_slice(&x);
        let rev: Vec<f64> = h.iter().rev().copied().collect();
        let mut direct = vec![0.0; x.len()];
        fir_scalar(&rev, &padded, &mut direct);
        rel_close(&joined, &direct, 1e-12);
    }

    fn tone_rms(stage: &mut FirStage, freq: f64) -> f64 {
        let rate = 1000.0;
        let mut g = sim(rate, 1, freq, 1.0, 0.0);
        let mut out = Vec::new();
        for _ in 0..8 {
            stage
                .process(&next_batch(&mut g, 500, rate), &mut out)
                .expect("matches");
        }
        let y: Vec<f64> = out.iter().flat_map(|b| f64s(b, "ch0")).collect();
        let settled = &y[1000..];
        (settled.iter().map(|v| v * v).sum::<f64>() / settled.len() as f64).sqrt()
    }

    #[test]
    fn designed_lowpass_passes_below_and_attenuates_above_cutoff_by_40_db() {
        let cfg = FirConfig {
            taps: None,
            design: Some(FirDesign {
                kind: FilterKind::Lowpass,
                cutoff_hz: 50.0,
                high_hz: None,
                taps: 101,
                window: Window::Hamming,
            }),
        };
        let input = StageInput::new("sim", &[("ch0", "V")], 1000.0);
        let pass = tone_rms(&mut FirStage::new(&cfg, &input).expect("valid"), 10.0);
        let stop = tone_rms(&mut FirStage::new(&cfg, &input).expect("valid"), 150.0);
        let unfiltered = 1.0 / 2f64.sqrt();
        assert!(
            (pass / unfiltered - 1.0).abs() < 0.01,
            "pass band gain {}",
            pass / unfiltered
        );
        let attenuation_db = 20.0 * (unfiltered / stop).log10();
        assert!(attenuation_db >= 40.0, "only {attenuation_db:.1} dB");
    }

    #[test]
    fn highpass_and_bandpass_designs_have_unit_gain_in_their_band() {
        let rate = 1000.0;
        let input = StageInput::new("sim", &[("ch0", "V")], rate);
        let design = |kind, cutoff_hz, high_hz| FirConfig {
            taps: None,
            design: Some(FirDesign {
                kind,
                cutoff_hz,
                high_hz,
                taps: 201,
                window: Window::Blackman,
            }),
        };
        let hp = design(FilterKind::Highpass, 100.0, None);
        let g = tone_rms(&mut FirStage::new(&hp, &input).expect("valid"), 300.0) * 2f64.sqrt();
        assert!((g - 1.0).abs() < 0.01, "high-pass gain {g}");
        let g = tone_rms(&mut FirStage::new(&hp, &input).expect("valid"), 10.0) * 2f64.sqrt();
        assert!(g < 0.01, "high-pass leaks {g}");
        let bp = design(FilterKind::Bandpass, 100.0, Some(200.0));
        let g = tone_rms(&mut FirStage::new(&bp, &input).expect("valid"), 150.0) * 2f64.sqrt();
        assert!((g - 1.0).abs() < 0.01, "band-pass gain {g}");
    }

    #[test]
    fn output_shares_timestamps_keeps_units_and_rate() {
        let cfg = FirConfig {
            taps: Some(vec![0.5, 0.5]),
            design: None,
        };
        let input = StageInput::new("sim", &[("ch0", "V"), ("ch1", "V")], 1000.0);
        let mut stage = FirStage::new(&cfg, &input).expect("valid");
        let batch = batch_of(&[&[1.0, 2.0, 3.0], &[0.0, 2.0, 4.0]], 40, 1000.0);
        let mut out = Vec::new();
        stage.process(&batch, &mut out).expect("matches");
        assert_eq!(f64s(&out[0], "ch0"), [0.5, 1.5, 2.5]);
        assert_eq!(f64s(&out[0], "ch1"), [0.0, 1.0, 3.0]);
        assert_eq!(
            out[0].column(0).to_data().buffers()[0].as_ptr(),
            batch.batch.column(0).to_data().buffers()[0].as_ptr(),
            "the timestamp column is shared, not copied"
        );
        assert_eq!(timestamps(&out), timestamps(&[(*batch.batch).clone()]));
        let schema = stage.output_schema();
        assert_eq!(schema.metadata()[RATE_METADATA_KEY], "1000");
        assert_eq!(crate::batch::field_unit(schema.field(2)), Some("V"));
    }

    #[test]
    fn bad_configs_give_exact_errors() {
        let both: FirConfig = serde_json::from_str(
            r#"{"taps": [1.0], "design": {"kind": "lowpass", "cutoff_hz": 5}}"#,
        )
        .expect("parses");
        assert_eq!(
            both.check(),
            vec![("taps", "and `design` are exclusive: give one".to_string())]
        );
        let unknown =
            serde_json::from_str::<FirConfig>(r#"{"tap": [1.0]}"#).expect_err("unknown key");
        assert!(
            unknown.to_string().contains("unknown field `tap`"),
            "{unknown}"
        );
        let even: FirConfig = serde_json::from_str(
            r#"{"design": {"kind": "bandpass", "cutoff_hz": 50, "taps": 10}}"#,
        )
        .expect("parses");
        assert_eq!(
            even.check(),
            vec![
                (
                    "design.taps",
                    "must be odd (a linear-phase filter with a centre tap), got 10".to_string()
                ),
                ("design.high_hz", "is required for a band-pass".to_string()),
            ]
        );
        let above: FirConfig =
            serde_json::from_str(r#"{"design": {"kind": "lowpass", "cutoff_hz": 600}}"#)
                .expect("parses");
        let input = StageInput::new("sim", &[("ch0", "V")], 1000.0);
        assert_eq!(
            FirStage::new(&above, &input).err().map(|e| e.to_string()),
            Some(
                "`design.cutoff_hz` must be below the input's Nyquist frequency 500 Hz, got 600"
                    .to_string()
            )
        );
    }

    #[test]
    fn a_batch_that_does_not_match_is_rejected_without_panicking() {
        let cfg = FirConfig {
            taps: Some(vec![1.0]),
            design: None,
        };
        let input = StageInput::new("sim", &[("volts", "V")], 1000.0);
        let mut stage = FirStage::new(&cfg, &input).expect("valid");
        let mut out = Vec::new();
        let err = stage
            .process(&batch_of(&[&[1.0]], 0, 1000.0), &mut out)
            .expect_err("wrong column");
        assert!(err.to_string().contains("column `volts`"), "{err}");
        assert!(out.is_empty());
        assert_eq!(out.first().map(|b| b.column(0).len()), None);
    }
}
