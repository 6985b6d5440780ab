//! Window functions shared by the FFT stage and FIR design.

use std::f64::consts::TAU;

use serde::{Deserialize, Serialize};

/// A window function (a taper applied to a block of samples).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// Hann (raised cosine): good general-purpose leakage, -31 dB first side lobe.
    #[default]
    Hann,
    /// Hamming: lower first side lobe (-43 dB), slower fall-off.
    Hamming,
    /// Blackman: -58 dB side lobes, wider main lobe.
    Blackman,
    /// Rectangular (no taper): best resolution, worst leakage.
    Rect,
}

impl Window {
    /// The name used in configuration files and metadata.
    pub fn name(self) -> &'static str {
        match self {
            Window::Hann => "hann",
            Window::Hamming => "hamming",
            Window::Blackman => "blackman",
            Window::Rect => "rect",
        }
    }

    /// `n` coefficients. `periodic` (DFT-even, for spectral analysis) divides by `n`, otherwise
    /// the window is symmetric (divides by `n - 1`, for filter design).
    pub fn coefficients(self, n: usize, periodic: bool) -> Vec<f64> {
        let denom = if periodic { n } else { n.saturating_sub(1) }.max(1) as f64;
        (0..n)
            .map(|i| {
                let x = TAU * i as f64 / denom;
                match self {
                    Window::Hann => 0.5 - 0.5 * x.cos(),
                    Window::Hamming => 0.54 - 0.46 * x.cos(),
                    Window::Blackman => 0.42 - 0.5 * x.cos() + 0.08 * (2.0 * x).cos(),
                    Window::Rect => 1.0,
                }
            })
            .collect()
    }
}
