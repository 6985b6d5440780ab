//! Configuration of the FIR filter stage (`type = "fir"`).

use serde::{Deserialize, Serialize};

use crate::stages::Window;

/// An FIR filter applied to every selected channel: explicit `taps`, or a windowed-sinc `design`.
///
/// ```toml
/// [stages.lowpass]
/// type = "fir"
/// inputs = ["dmm.ch0"]
/// design = { kind = "lowpass", cutoff_hz = 50.0, taps = 101, window = "hamming" }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirConfig {
    /// The impulse response, oldest coefficient first (`y[n] = Σ taps[k] · x[n-k]`).
    /// Exactly one of `taps` and `design` must be given.
    #[serde(default)]
    pub taps: Option<Vec<f64>>,
    /// A filter designed from a specification.
    #[serde(default)]
    pub design: Option<FirDesign>,
}

/// A windowed-sinc filter design, normalised to unit gain in the pass band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirDesign {
    /// Low-, high- or band-pass.
    pub kind: FilterKind,
    /// The cutoff in Hz (the lower edge for a band-pass); below the input's Nyquist frequency.
    pub cutoff_hz: f64,
    /// The upper edge of a band-pass in Hz; only for `kind = "bandpass"`.
    #[serde(default)]
    pub high_hz: Option<f64>,
    /// Number of taps; odd (a symmetric, linear-phase filter with a centre tap).
    #[serde(default = "default_design_taps")]
    pub taps: usize,
    /// The window applied to the ideal (sinc) response.
    #[serde(default = "default_design_window")]
    pub window: Window,
}

/// The kind of a designed filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterKind {
    /// Passes below `cutoff_hz`.
    Lowpass,
    /// Passes above `cutoff_hz`.
    Highpass,
    /// Passes between `cutoff_hz` and `high_hz`.
    Bandpass,
}

impl FirConfig {
    /// Checks values serde cannot: returns `(key, message)` for each problem. Limits that
    /// depend on the input's rate (Nyquist) are checked when the stage is built.
    pub fn check(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        match (&self.taps, &self.design) {
            (Some(_), Some(_)) => {
                problems.push(("taps", "and `design` are exclusive: give one".to_string()))
            }
            (None, None) => problems.push(("taps", "or `design` is required".to_string())),
            (Some(taps), None) => {
                if taps.is_empty() {
                    problems.push(("taps", "must hold at least one coefficient".to_string()));
                }
                if let Some(bad) = taps.iter().find(|t| !t.is_finite()) {
                    problems.push(("taps", format!("must be finite numbers, got {bad}")));
                }
            }
            (None, Some(d)) => problems.extend(d.check()),
        }
        problems
    }
}

impl FirDesign {
    /// Checks the design on its own (see [`FirConfig::check`]).
    pub fn check(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if !(self.cutoff_hz.is_finite() && self.cutoff_hz > 0.0) {
            problems.push((
                "design.cutoff_hz",
                format!("must be a positive number, got {}", self.cutoff_hz),
            ));
        }
        if self.taps == 0 || self.taps % 2 == 0 {
            problems.push((
                "design.taps",
                format!(
                    "must be odd (a linear-phase filter with a centre tap), got {}",
                    self.taps
                ),
            ));
        }
        match (self.kind, self.high_hz) {
            (FilterKind::Bandpass, None) => {
                problems.push(("design.high_hz", "is required for a band-pass".to_string()))
            }
            (FilterKind::Bandpass, Some(h)) if !(h.is_finite() && h > self.cutoff_hz) => problems
                .push((
                    "design.high_hz",
                    format!("must be above cutoff_hz ({}), got {h}", self.cutoff_hz),
                )),
            (FilterKind::Lowpass | FilterKind::Highpass, Some(_)) => problems.push((
                "design.high_hz",
                "is only for kind = \"bandpass\"".to_string(),
            )),
            _ => {}
        }
        problems
    }

    /// The coefficients for an input sampled at `rate_hz`; `Err((key, message))` when an edge
    /// is not below the Nyquist frequency.
    pub fn coefficients(&self, rate_hz: f64) -> Result<Vec<f64>, (&'static str, String)> {
        let nyquist = rate_hz / 2.0;
        for (key, f) in [
            ("design.cutoff_hz", Some(self.cutoff_hz)),
            ("design.high_hz", self.high_hz),
        ] {
            if let Some(f) = f {
                if f >= nyquist {
                    return Err((
                        key,
                        format!(
                            "must be below the input's Nyquist frequency {nyquist} Hz, got {f}"
                        ),
                    ));
                }
            }
        }
        let low = lowpass(self.cutoff_hz / rate_hz, self.taps, self.window);
        Ok(match self.kind {
            FilterKind::Lowpass => low,
            FilterKind::Highpass => invert(&low),
            FilterKind::Bandpass => {
                let high = lowpass(
                    self.high_hz.unwrap_or(nyquist) / rate_hz,
                    self.taps,
                    self.window,
                );
                // band = lowpass(high) - lowpass(low), normalised at the band's centre.
                let band: Vec<f64> = high.iter().zip(&low).map(|(h, l)| h - l).collect();
                let centre = (self.cutoff_hz + self.high_hz.unwrap_or(nyquist)) / 2.0 / rate_hz;
                normalise_at(band, centre)
            }
        })
    }
}

/// Windowed-sinc low-pass with cutoff `fc` in cycles per sample, unit gain at DC.
fn lowpass(fc: f64, taps: usize, window: Window) -> Vec<f64> {
    let w = window.coefficients(taps, false);
    let mid = (taps as f64 - 1.0) / 2.0;
    let h: Vec<f64> = (0..taps)
        .map(|i| {
            let x = i as f64 - mid;
            let sinc = if x == 0.0 {
                2.0 * fc
            } else {
                (std::f64::consts::TAU * fc * x).sin() / (std::f64::consts::PI * x)
            };
            sinc * w[i]
        })
        .collect();
    normalise_at(h, 0.0)
}

/// Spectral inversion: a high-pass from a unit-DC-gain low-pass of odd length.
fn invert(low: &[f64]) -> Vec<f64> {
    let mid = low.len() / 2;
    low.iter()
        .enumerate()
        .map(|(i, &h)| if i == mid { 1.0 - h } else { -h })
        .collect()
}

/// Scales `h` to unit gain at frequency `f` (cycles per sample).
fn normalise_at(mut h: Vec<f64>, f: f64) -> Vec<f64> {
    let (re, im) = h.iter().enumerate().fold((0.0, 0.0), |(re, im), (n, &c)| {
        let phi = std::f64::consts::TAU * f * n as f64;
        (re + c * phi.cos(), im - c * phi.sin())
    });
    let gain = re.hypot(im);
    if gain > 0.0 {
        h.iter_mut().for_each(|c| *c /= gain);
    }
    h
}

const fn default_design_taps() -> usize {
    101
}

const fn default_design_window() -> Window {
    Window::Hamming
}
