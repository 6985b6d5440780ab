//! The FFT stage's per-window loops, on either side of the transform: windowing on the way in,
//! magnitude or power on the way out, and both in one pass ([`spectrum_and_window`]). All run in
//! `wide::f64x4` lanes with a scalar tail.
//!
//! The output scaling is folded into the window coefficients (see
//! [`WindowSpectrum`](super::WindowSpectrum)), so these loops do no per-bin scaling: after the
//! transform, only the DC and Nyquist bins need a fix-up, which the caller applies.

use realfft::num_complex::Complex;
use wide::f64x4;

/// Lanes per vector.
const LANES: usize = 4;

/// Writes `dst[i] = src[i] · coeffs[i]`: copy from the input and window in one pass.
///
/// # Panics
///
/// If the three slices differ in length.
pub(super) fn window_into(dst: &mut [f64], src: &[f64], coeffs: &[f64]) {
    check_window(dst, src, coeffs);
    let body = dst.len() / LANES * LANES;
    let (dst_body, dst_tail) = dst.split_at_mut(body);
    for ((d, s), w) in dst_body
        .chunks_exact_mut(LANES)
        .zip(src.chunks_exact(LANES))
        .zip(coeffs.chunks_exact(LANES))
    {
        let v = lanes(s) * lanes(w);
        d.copy_from_slice(&v.to_array());
    }
    for ((d, s), w) in dst_tail.iter_mut().zip(&src[body..]).zip(&coeffs[body..]) {
        *d = s * w;
    }
}

/// Writes `out[k] = |spectrum[k]|` (the modulus).
///
/// # Panics
///
/// If the slices differ in length.
pub(super) fn magnitudes(spectrum: &[Complex<f64>], out: &mut [f64]) {
    map_norm_sqr(spectrum, out, f64x4::sqrt, f64::sqrt);
}

/// Writes `out[k] = |spectrum[k]|²` (the squared modulus).
///
/// # Panics
///
/// If the slices differ in length.
pub(super) fn powers(spectrum: &[Complex<f64>], out: &mut [f64]) {
    map_norm_sqr(spectrum, out, |v| v, |v| v);
}

/// [`magnitudes`] (or [`powers`], when `sqrt` is false) of `spectrum` into `out`, and in the same
/// pass [`window_into`]`(dst, src, coeffs)`: four bins and eight samples per step.
///
/// The two loops stall on different things (the square root unit; loading the next window from
/// memory), so one loop doing both overlaps the stalls instead of adding them.
///
/// # Panics
///
/// If `spectrum` and `out`, or `dst`, `src` and `coeffs`, differ in length.
pub(super) fn spectrum_and_window(
    spectrum: &[Complex<f64>],
    out: &mut [f64],
    sqrt: bool,
    dst: &mut [f64],
    src: &[f64],
    coeffs: &[f64],
) {
    if sqrt {
        fused(spectrum, out, f64x4::sqrt, f64::sqrt, dst, src, coeffs);
    } else {
        fused(spectrum, out, |v| v, |v| v, dst, src, coeffs);
    }
}

/// The loop of [`spectrum_and_window`], with the modulus function as in [`map_norm_sqr`].
#[inline(always)]
fn fused(
    spectrum: &[Complex<f64>],
    out: &mut [f64],
    vector: impl Fn(f64x4) -> f64x4,
    scalar: impl Fn(f64) -> f64,
    dst: &mut [f64],
    src: &[f64],
    coeffs: &[f64],
) {
    check_spectrum(spectrum, out);
    check_window(dst, src, coeffs);
    let steps = (out.len() / LANES).min(dst.len() / (2 * LANES));
    let (bins, samples) = (steps * LANES, steps * 2 * LANES);
    for (((o, c), d), (s, w)) in out[..bins]
        .chunks_exact_mut(LANES)
        .zip(spectrum.chunks_exact(LANES))
        .zip(dst[..samples].chunks_exact_mut(2 * LANES))
        .zip(
            src.chunks_exact(2 * LANES)
                .zip(coeffs.chunks_exact(2 * LANES)),
        )
    {
        o.copy_from_slice(&vector(norm_sqr4(c)).to_array());
        let (d0, d1) = d.split_at_mut(LANES);
        d0.copy_from_slice(&(lanes(&s[..LANES]) * lanes(&w[..LANES])).to_array());
        d1.copy_from_slice(&(lanes(&s[LANES..]) * lanes(&w[LANES..])).to_array());
    }
    map_norm_sqr(&spectrum[bins..], &mut out[bins..], vector, scalar);
    window_into(&mut dst[samples..], &src[samples..], &coeffs[samples..]);
}

/// Writes `out[k] = f(re² + im²)` of `spectrum[k]`, four bins at a time through `vector` and
/// the tail through `scalar` (which must compute the same function).
#[inline(always)]
fn map_norm_sqr(
    spectrum: &[Complex<f64>],
    out: &mut [f64],
    vector: impl Fn(f64x4) -> f64x4,
    scalar: impl Fn(f64) -> f64,
) {
    check_spectrum(spectrum, out);
    let body = out.len() / LANES * LANES;
    let (out_body, out_tail) = out.split_at_mut(body);
    for (o, c) in out_body
        .chunks_exact_mut(LANES)
        .zip(spectrum.chunks_exact(LANES))
    {
        o.copy_from_slice(&vector(norm_sqr4(c)).to_array());
    }
    for (o, c) in out_tail.iter_mut().zip(&spectrum[body..]) {
        *o = scalar(c.re * c.re + c.im * c.im);
    }
}

/// `re² + im²` of four bins.
#[inline(always)]
fn norm_sqr4(c: &[Complex<f64>]) -> f64x4 {
    let re = f64x4::new([c[0].re, c[1].re, c[2].re, c[3].re]);
    let im = f64x4::new([c[0].im, c[1].im, c[2].im, c[3].im]);
    re * re + im * im
}

/// Checks the length contract of the modulus loops.
#[inline(always)]
fn check_spectrum(spectrum: &[Complex<f64>], out: &[f64]) {
    assert_eq!(
        spectrum.len(),
        out.len(),
        "spectrum and output lengths differ"
    );
}

/// Checks the length contract of the windowing loops.
#[inline(always)]
fn check_window(dst: &[f64], src: &[f64], coeffs: &[f64]) {
    assert!(
        dst.len() == src.len() && src.len() == coeffs.len(),
        "window_into: lengths differ"
    );
}

/// Four consecutive values as a vector.
#[inline(always)]
fn lanes(s: &[f64]) -> f64x4 {
    f64x4::new([s[0], s[1], s[2], s[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complex(n: usize) -> Vec<Complex<f64>> {
        (0..n)
            .map(|i| Complex::new((i as f64 * 0.7).sin() * 3.0, (i as f64 * 1.3).cos() - 0.5))
            .collect()
    }

    #[test]
    fn windowing_equals_the_product_at_every_length() {
        for n in [0usize, 1, 3, 4, 5, 8, 1023] {
            let src: Vec<f64> = (0..n).map(|i| i as f64 - 7.5).collect();
            let w: Vec<f64> = (0..n).map(|i| 1.0 / (i as f64 + 2.0)).collect();
            let mut dst = vec![f64::NAN; n];
            window_into(&mut dst, &src, &w);
            let expected: Vec<f64> = src.iter().zip(&w).map(|(s, w)| s * w).collect();
            assert_eq!(dst, expected, "n = {n}");
        }
    }

    #[test]
    fn magnitudes_and_powers_equal_the_scalar_norm_at_every_length() {
        for n in [0usize, 1, 2, 4, 5, 7, 513] {
            let c = complex(n);
            let mut mag = vec![f64::NAN; n];
            let mut pow = vec![f64::NAN; n];
            magnitudes(&c, &mut mag);
            powers(&c, &mut pow);
            for k in 0..n {
                // Same operations in the same order: bit-identical to the scalar formula.
                assert_eq!(
                    mag[k],
                    (c[k].re * c[k].re + c[k].im * c[k].im).sqrt(),
                    "{k}"
                );
                assert_eq!(pow[k], c[k].re * c[k].re + c[k].im * c[k].im, "{k}");
                assert!((mag[k] - c[k].norm()).abs() <= 1e-15 * c[k].norm().max(1.0));
            }
        }
    }

    #[test]
    fn the_fused_pass_equals_the_two_loops_at_every_length() {
        for (bins, n) in [
            (0usize, 0usize),
            (1, 2),
            (5, 8),
            (9, 16),
            (513, 1024),
            (8, 15),
            (3, 40),
        ] {
            let c = complex(bins);
            let src: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).cos()).collect();
            let w: Vec<f64> = (0..n).map(|i| 1.0 + i as f64 / 7.0).collect();
            for sqrt in [true, false] {
                let (mut out, mut dst) = (vec![f64::NAN; bins], vec![f64::NAN; n]);
                spectrum_and_window(&c, &mut out, sqrt, &mut dst, &src, &w);
                let (mut out2, mut dst2) = (vec![0.0; bins], vec![0.0; n]);
                if sqrt {
                    magnitudes(&c, &mut out2);
                } else {
                    powers(&c, &mut out2);
                }
                window_into(&mut dst2, &src, &w);
                assert_eq!((out, dst), (out2, dst2), "{bins} bins, {n} samples, {sqrt}");
            }
        }
    }

    #[test]
    #[should_panic(expected = "lengths differ")]
    fn mismatched_lengths_panic() {
        window_into(&mut [0.0; 4], &[1.0; 4], &[1.0; 3]);
    }
}
