//! The decimation stage (`type = "decimate"`): one sample in `factor`, anti-aliased by default.

mod config;
mod stage;

pub use config::DecimateConfig;
pub use stage::DecimateStage;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stages::fir::tests::noise;
    use crate::stages::test_support::{batch_of, f64s, next_batch, seqs, sim, timestamps};
    use crate::stages::{RATE_METADATA_KEY, Stage, StageInput, Window};

    fn config(factor: usize, antialias: bool) -> DecimateConfig {
        DecimateConfig {
            factor,
            antialias,
            taps: None,
            window: Window::Hamming,
        }
    }

    #[test]
    fn without_filter_it_keeps_every_factor_th_sample_across_batches() {
        let x: Vec<f64> = (0..100).map(f64::from).collect();
        let input = StageInput::new("sim", &[("ch0", "V")], 1000.0);
        let mut stage = DecimateStage::new(&config(7, false), &input).expect("valid");
        let mut out = Vec::new();
        let mut start = 0;
        for len in [3, 1, 10, 6, 30, 50] {
            stage
                .process(
                    &batch_of(&[&x[start..start + len]], start as u64, 1000.0),
                    &mut out,
                )
                .expect("matches");
            start += len;
        }
        let y: Vec<f64> = out.iter().flat_map(|b| f64s(b, "ch0")).collect();
        let expected: Vec<f64> = (0..100).step_by(7).map(f64::from).collect();
        assert_eq!(y, expected);
        assert_eq!(seqs(&out), (0..expected.len() as u64).collect::<Vec<_>>());
        let ts: Vec<i64> = (0..100).step_by(7).map(|i| i * 1_000_000).collect();
        assert_eq!(
            timestamps(&out),
            ts,
            "the timestamp of the kept input sample"
        );
        assert_eq!(
            stage.output_schema().metadata()[RATE_METADATA_KEY],
            (1000.0 / 7.0).to_string()
        );
    }

    #[test]
    fn filtered_decimation_equals_filter_then_pick_and_is_batch_invariant() {
        let x = noise(5003, 5);
        let input = StageInput::new("sim", &[("ch0", "V")], 1000.0);
        let mut whole = DecimateStage::new(&config(4, true), &input).expect("valid");
        let mut a = Vec::new();
        whole
            .process(&batch_of(&[&x], 0, 1000.0), &mut a)
            .expect("matches");
        let mut cut = DecimateStage::new(&config(4, true), &input).expect("valid");
        let mut b = Vec::new();
        for (i, chunk) in x.chunks(333).enumerate() {
            cut.process(&batch_of(&[chunk], (i * 333) as u64, 1000.0), &mut b)
                .expect("matches");
        }
        let ya = f64s(&a[0], "ch0");
        let yb: Vec<f64> = b.iter().flat_map(|r| f64s(r, "ch0")).collect();
        assert_eq!(ya.len(), 5003usize.div_ceil(4));
        for (p, q) in ya.iter().zip(&yb) {
            assert!((p - q).abs() <= 1e-12 * p.abs().max(1.0));
        }
    }

    #[test]
    fn antialias_filter_removes_a_tone_above_the_output_nyquist() {
        let rate = 1000.0;
        let input = StageInput::new("sim", &[("ch0", "V")], rate);
        // Output rate 100 Hz: a 70 Hz tone would alias to 30 Hz.
        let mut stage = DecimateStage::new(&config(10, true), &input).expect("valid");
        let mut g = sim(rate, 1, 70.0, 1.0, 0.0);
        let mut out = Vec::new();
        for _ in 0..10 {
            stage
                .process(&next_batch(&mut g, 1000, rate), &mut out)
                .expect("matches");
        }
        let y: Vec<f64> = out.iter().flat_map(|b| f64s(b, "ch0")).collect();
        let peak = y[50..].iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(peak < 0.01, "alias left at {peak}");
    }

    #[test]
    fn zero_factor_is_rejected() {
        assert_eq!(
            config(0, true).check(),
            vec![("factor", "must be at least 1".to_string())]
        );
    }
}
