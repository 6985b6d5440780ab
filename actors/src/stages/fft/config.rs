//! Configuration of the FFT stage (`type = "fft"`).

use serde::{Deserialize, Serialize};

use crate::stages::Window;

/// Spectra of overlapping, windowed blocks of every selected channel.
///
/// ```toml
/// [stages.spectrum]
/// type = "fft"
/// inputs = ["scope.ch0"]
/// size = 4096
/// overlap = 0.5
/// window = "hann"
/// output = "psd"
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FftConfig {
    /// Samples per window (at least 2). Any size works; products of small primes are fastest.
    #[serde(default = "default_size")]
    pub size: usize,
    /// Fraction of a window shared with the next one, in `[0, 1)`. The hop between window starts
    /// is `round(size · (1 - overlap))` samples (at least 1).
    #[serde(default = "default_overlap")]
    pub overlap: f64,
    /// The taper applied to each window before the transform.
    #[serde(default)]
    pub window: Window,
    /// What each output row holds.
    #[serde(default)]
    pub output: SpectrumOutput,
}

/// What the FFT stage writes per frequency bin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpectrumOutput {
    /// Single-sided amplitude spectrum in the input's unit, corrected for the window's coherent
    /// gain: a sine of amplitude `A` centred on a bin reads `A` there.
    #[default]
    Magnitude,
    /// Single-sided power spectral density in unit²/Hz, scaled so that Parseval holds:
    /// `Σ psd[k] · bin_width = Σ (x[i] · w[i])² / Σ w[i]²` (the window-weighted mean square).
    Psd,
}

impl SpectrumOutput {
    /// The name used in configuration files and metadata.
    pub fn name(self) -> &'static str {
        match self {
            SpectrumOutput::Magnitude => "magnitude",
            SpectrumOutput::Psd => "psd",
        }
    }
}

impl FftConfig {
    /// Checks values serde cannot: returns `(key, message)` for each problem.
    pub fn check(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.size < 2 {
            problems.push(("size", format!("must be at least 2, got {}", self.size)));
        }
        if !(self.overlap.is_finite() && (0.0..1.0).contains(&self.overlap)) {
            problems.push((
                "overlap",
                format!("must be in [0, 1), got {}", self.overlap),
            ));
        }
        problems
    }

    /// Samples between the starts of consecutive windows.
    pub fn hop(&self) -> usize {
        ((self.size as f64 * (1.0 - self.overlap)).round() as usize).clamp(1, self.size.max(1))
    }
}

const fn default_size() -> usize {
    1024
}

const fn default_overlap() -> f64 {
    0.5
}
