//! Configuration of the decimation stage (`type = "decimate"`).

use serde::{Deserialize, Serialize};

use crate::stages::Window;

/// Keeps one sample in `factor`, after an anti-alias low-pass filter by default.
///
/// ```toml
/// [stages.slow]
/// type = "decimate"
/// inputs = ["dmm"]
/// factor = 10
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecimateConfig {
    /// Keep one sample in `factor` (at least 1). The output rate is the input rate / `factor`.
    pub factor: usize,
    /// Low-pass filter before decimating, cutting at 80% of the output's Nyquist frequency.
    /// `false` picks every `factor`-th sample as it is (aliasing whatever lies above).
    #[serde(default = "default_antialias")]
    pub antialias: bool,
    /// Taps of the anti-alias filter; odd. Default `20 · factor + 1`.
    #[serde(default)]
    pub taps: Option<usize>,
    /// Window of the anti-alias design.
    #[serde(default = "default_window")]
    pub window: Window,
}

impl DecimateConfig {
    /// Checks values serde cannot: returns `(key, message)` for each problem.
    pub fn check(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.factor == 0 {
            problems.push(("factor", "must be at least 1".to_string()));
        }
        if let Some(taps) = self.taps {
            if taps % 2 == 0 {
                problems.push(("taps", format!("must be odd, got {taps}")));
            }
            if !self.antialias {
                problems.push(("taps", "is only used with antialias = true".to_string()));
            }
        }
        problems
    }

    /// Taps of the anti-alias filter in use.
    pub fn antialias_taps(&self) -> usize {
        self.taps.unwrap_or(20 * self.factor + 1)
    }
}

const fn default_antialias() -> bool {
    true
}

const fn default_window() -> Window {
    Window::Hamming
}
