//! The statistics stage (`type = "stats"`): mean, std, min, max and RMS per window.

mod config;
mod stage;

pub use config::{StatsConfig, StatsWindow};
pub use stage::{STATISTICS, StatsStage};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::field_unit;
    use crate::stages::test_support::{batch_of, f64s, seqs, timestamps};
    use crate::stages::{RATE_METADATA_KEY, Stage, StageInput};
    use std::time::Duration;

    #[test]
    fn statistics_of_windows_spanning_batches() {
        // Two windows of 4: [1, 2, 3, 4] and [10, 10, 10, 10]; then 2 samples left open.
        let x = [1.0, 2.0, 3.0, 4.0, 10.0, 10.0, 10.0, 10.0, 5.0, 5.0];
        let input = StageInput::new("sim", &[("ch0", "K")], 1000.0);
        let cfg = StatsConfig {
            window: StatsWindow::Samples(4),
        };
        let mut stage = StatsStage::new(&cfg, &input).expect("valid");
        let mut out = Vec::new();
        for (start, end) in [(0, 3), (3, 6), (6, 10)] {
            stage
                .process(&batch_of(&[&x[start..end]], start as u64, 1000.0), &mut out)
                .expect("matches");
        }
        stage.flush(&mut out).expect("flushes");
        let col = |name: &str| out.iter().flat_map(|b| f64s(b, name)).collect::<Vec<_>>();
        assert_eq!(col("ch0_mean"), [2.5, 10.0]);
        assert!((col("ch0_std")[0] - 1.25f64.sqrt()).abs() < 1e-15);
        assert_eq!(col("ch0_std")[1], 0.0);
        assert_eq!(col("ch0_min"), [1.0, 10.0]);
        assert_eq!(col("ch0_max"), [4.0, 10.0]);
        assert!((col("ch0_rms")[0] - 7.5f64.sqrt()).abs() < 1e-15);
        assert_eq!(seqs(&out), [0, 1]);
        assert_eq!(timestamps(&out), [0, 4_000_000]);
        let schema = stage.output_schema();
        assert_eq!(schema.metadata()[RATE_METADATA_KEY], "250");
        assert!(
            schema.fields()[2..]
                .iter()
                .all(|f| field_unit(f) == Some("K")),
            "stats keep the unit"
        );
    }

    #[test]
    fn std_is_exact_with_a_large_offset() {
        let x: Vec<f64> = (0..1000)
            .map(|i| 1e9 + if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        let input = StageInput::new("sim", &[("ch0", "V")], 100.0);
        let mut stage = StatsStage::new(
            &StatsConfig {
                window: StatsWindow::Duration(Duration::from_secs(10)),
            },
            &input,
        )
        .expect("valid");
        assert_eq!(stage.window_samples(), 1000);
        let mut out = Vec::new();
        stage
            .process(&batch_of(&[&x], 0, 100.0), &mut out)
            .expect("matches");
        assert_eq!(f64s(&out[0], "ch0_std"), [1.0]);
        assert_eq!(f64s(&out[0], "ch0_mean"), [1e9]);
    }

    #[test]
    fn windows_parse_as_samples_or_durations_and_bad_ones_are_named() {
        let s: StatsConfig = serde_json::from_str(r#"{"window": 500}"#).expect("parses");
        assert_eq!(s.window, StatsWindow::Samples(500));
        let d: StatsConfig = serde_json::from_str(r#"{"window": "250ms"}"#).expect("parses");
        assert_eq!(d.window, StatsWindow::Duration(Duration::from_millis(250)));
        assert_eq!(
            StatsConfig {
                window: StatsWindow::Samples(0)
            }
            .check(),
            vec![("window", "must be at least 1 sample".to_string())]
        );
        let input = StageInput::new("sim", &[("ch0", "V")], 10.0);
        let short = StatsConfig {
            window: StatsWindow::Duration(Duration::from_millis(10)),
        };
        assert_eq!(
            StatsStage::new(&short, &input).err().map(|e| e.to_string()),
            Some("`window` 10ms is shorter than one sample at 10 Hz".to_string())
        );
    }
}
