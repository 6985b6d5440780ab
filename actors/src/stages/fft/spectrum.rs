//! [`WindowSpectrum`]: the per-window work of the FFT stage, planned once.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use super::config::SpectrumOutput;
use super::kernel;
use crate::stages::Window;

/// One window of samples → its single-sided spectrum (magnitude or PSD): taper, real FFT,
/// modulus. Plans the transform and allocates every buffer once, in [`new`](Self::new).
///
/// The output scale is folded into the window coefficients (the transform is linear), so the
/// only per-sample work besides the FFT is one multiply on the way in and one modulus (plus a
/// square root for magnitudes) on the way out. Every bin but DC and (for even sizes) Nyquist
/// holds both halves of the two-sided spectrum; those two get half the scale afterwards.
///
/// ```
/// use ensemble_actors::stages::Window;
/// use ensemble_actors::stages::fft::{SpectrumOutput, WindowSpectrum};
///
/// // A 3 V sine on bin 8 of a 64-point window reads 3 V there.
/// let mut spectrum = WindowSpectrum::new(64, Window::Hann, SpectrumOutput::Magnitude, 64.0);
/// let x: Vec<f64> = (0..64)
///     .map(|i| 3.0 * (std::f64::consts::TAU * 8.0 * i as f64 / 64.0).sin())
///     .collect();
/// let mut bins = vec![0.0; spectrum.bins()];
/// spectrum.process(&x, &mut bins);
/// assert!((bins[8] - 3.0).abs() < 1e-12);
/// ```
pub struct WindowSpectrum {
    /// Samples per window.
    size: usize,
    /// What each bin holds.
    output: SpectrumOutput,
    /// The window times the interior bins' scale `c`: `c = 2 / Σw` for magnitudes (coherent
    /// gain), `c = √(2 / (rate · Σw²))` for PSD (so that `|c·X|²` is unit²/Hz).
    coeffs: Vec<f64>,
    /// Bins that hold one half of the spectrum only (DC; Nyquist for an even size).
    edge_bins: Vec<usize>,
    /// The plan, made once.
    fft: Arc<dyn RealToComplex<f64>>,
    /// The windowed samples of one transform (the transform overwrites them).
    fft_in: Vec<f64>,
    /// The transform's output.
    spectrum: Vec<Complex<f64>>,
    /// The transform's scratch.
    scratch: Vec<Complex<f64>>,
}

impl WindowSpectrum {
    /// Plans a `size`-point transform (at least 2) with `window`, for samples at `rate_hz`.
    pub fn new(size: usize, window: Window, output: SpectrumOutput, rate_hz: f64) -> Self {
        let window = window.coefficients(size, true);
        let c = match output {
            SpectrumOutput::Magnitude => 2.0 / window.iter().sum::<f64>(),
            SpectrumOutput::Psd => {
                (2.0 / (rate_hz * window.iter().map(|w| w * w).sum::<f64>())).sqrt()
            }
        };
        let bins = size / 2 + 1;
        let mut edge_bins = vec![0];
        if size % 2 == 0 {
            edge_bins.push(bins - 1);
        }
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(size);
        Self {
            size,
            output,
            coeffs: window.iter().map(|w| w * c).collect(),
            edge_bins,
            fft_in: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
        }
    }

    /// Bins per spectrum (`size / 2 + 1`), from 0 Hz to Nyquist.
    pub fn bins(&self) -> usize {
        self.spectrum.len()
    }

    /// Samples per window.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Loads `samples` as window positions `at..at + samples.len()`, tapered on the way (one
    /// pass: copy and multiply). A window that spans several input buffers is loaded piece by
    /// piece; every position must be loaded before [`spectrum_into`](Self::spectrum_into).
    ///
    /// # Panics
    ///
    /// If the samples run past the end of the window.
    pub fn load(&mut self, at: usize, samples: &[f64]) {
        let end = at + samples.len();
        kernel::window_into(&mut self.fft_in[at..end], samples, &self.coeffs[at..end]);
    }

    /// Transforms the loaded window and writes its spectrum to `out`.
    ///
    /// # Panics
    ///
    /// If `out.len()` is not [`bins`](Self::bins).
    pub fn spectrum_into(&mut self, out: &mut [f64]) {
        // Lengths come from the plan itself, so the transform cannot fail.
        let _ =
            self.fft
                .process_with_scratch(&mut self.fft_in, &mut self.spectrum, &mut self.scratch);
        match self.output {
            SpectrumOutput::Magnitude => kernel::magnitudes(&self.spectrum, out),
            SpectrumOutput::Psd => kernel::powers(&self.spectrum, out),
        }
        for &k in &self.edge_bins {
            out[k] *= 0.5;
        }
    }

    /// Like [`spectrum_into`](Self::spectrum_into), and loads `next` (a whole window) in the same
    /// pass over memory, ready for the next call: the way to transform a run of windows that
    /// lie in one slice.
    ///
    /// # Panics
    ///
    /// If `out.len()` is not [`bins`](Self::bins) or `next.len()` not [`size`](Self::size).
    pub fn spectrum_into_and_load(&mut self, out: &mut [f64], next: &[f64]) {
        assert_eq!(next.len(), self.size, "one whole window");
        let _ =
            self.fft
                .process_with_scratch(&mut self.fft_in, &mut self.spectrum, &mut self.scratch);
        // The transform used `fft_in` as scratch: it is free for the next window.
        let sqrt = self.output == SpectrumOutput::Magnitude;
        kernel::spectrum_and_window(
            &self.spectrum,
            out,
            sqrt,
            &mut self.fft_in,
            next,
            &self.coeffs,
        );
        for &k in &self.edge_bins {
            out[k] *= 0.5;
        }
    }

    /// [`load`](Self::load)s a whole window and writes its spectrum to `out`.
    ///
    /// # Panics
    ///
    /// If `window.len()` is not [`size`](Self::size) or `out.len()` not [`bins`](Self::bins).
    pub fn process(&mut self, window: &[f64], out: &mut [f64]) {
        assert_eq!(window.len(), self.size, "one whole window");
        self.load(0, window);
        self.spectrum_into(out);
    }
}
