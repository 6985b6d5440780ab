//! The FIR inner loops: a scalar reference, the SIMD version (`wide::f64x4`), and a
//! rayon-parallel SIMD version for large blocks.
//!
//! All three compute, for `i in 0..out.len()`,
//! `out[i] = Σ_j taps_rev[j] · input[i + j]` with `j` ascending, where `taps_rev` is the impulse
//! response reversed and `input` holds `taps_rev.len() - 1` samples of history followed by the
//! new samples (so `input.len() == out.len() + taps_rev.len() - 1`).
//!
//! The SIMD loop computes 16 consecutive outputs at once (four `f64x4` accumulators) and adds the
//! products in the same order as the scalar loop, with separate multiply and add (no fused
//! multiply-add), so both give bit-identical results.

use rayon::prelude::*;
use wide::f64x4;

/// Outputs per block of the SIMD loop (four vectors of four).
const BLOCK: usize = 16;

/// Checks the length contract shared by the kernels.
///
/// # Panics
///
/// If `input.len() != out.len() + taps_rev.len() - 1` or `taps_rev` is empty.
#[inline]
fn check_lengths(taps_rev: &[f64], input: &[f64], out: &[f64]) {
    assert!(!taps_rev.is_empty(), "an FIR filter needs at least one tap");
    assert_eq!(
        input.len(),
        out.len() + taps_rev.len() - 1,
        "FIR input must hold taps - 1 samples of history plus one sample per output"
    );
}

/// The scalar reference: one output at a time, one tap at a time.
///
/// # Panics
///
/// See the module docs for the length contract.
pub fn fir_scalar(taps_rev: &[f64], input: &[f64], out: &mut [f64]) {
    check_lengths(taps_rev, input, out);
    for (i, y) in out.iter_mut().enumerate() {
        let window = &input[i..i + taps_rev.len()];
        let mut acc = 0.0;
        for (h, x) in taps_rev.iter().zip(window) {
            acc += h * x;
        }
        *y = acc;
    }
}

/// The SIMD loop: 16 outputs per pass over the taps; the tail goes through the scalar loop.
///
/// # Panics
///
/// See the module docs for the length contract.
pub fn fir_simd(taps_rev: &[f64], input: &[f64], out: &mut [f64]) {
    check_lengths(taps_rev, input, out);
    let taps = taps_rev.len();
    let blocks = out.len() / BLOCK;
    for (b, chunk) in out.chunks_exact_mut(BLOCK).enumerate() {
        let base = b * BLOCK;
        // The samples this block reads: outputs base..base+16 need input base..base+16+taps-1.
        let span = &input[base..base + BLOCK + taps - 1];
        let mut acc = [f64x4::ZERO; 4];
        for (j, &h) in taps_rev.iter().enumerate() {
            let h = f64x4::splat(h);
            let x = &span[j..j + BLOCK];
            for (k, a) in acc.iter_mut().enumerate() {
                let v = f64x4::new([x[4 * k], x[4 * k + 1], x[4 * k + 2], x[4 * k + 3]]);
                *a += h * v;
            }
        }
        for (k, a) in acc.iter().enumerate() {
            chunk[4 * k..4 * k + 4].copy_from_slice(&a.to_array());
        }
    }
    let done = blocks * BLOCK;
    fir_scalar(taps_rev, &input[done..], &mut out[done..]);
}

/// The SIMD loop split over rayon's thread pool in chunks of at least `min_chunk` outputs.
///
/// Worth it only for blocks much larger than a typical batch (see the `data_processing`
/// bench): below about 100k samples the thread hand-off costs more than it saves.
///
/// # Panics
///
/// See the module docs for the length contract.
pub fn fir_parallel(taps_rev: &[f64], input: &[f64], out: &mut [f64], min_chunk: usize) {
    check_lengths(taps_rev, input, out);
    let threads = rayon::current_num_threads().max(1);
    let chunk = out.len().div_ceil(threads).max(min_chunk.max(BLOCK));
    let taps = taps_rev.len();
    out.par_chunks_mut(chunk).enumerate().for_each(|(c, part)| {
        let start = c * chunk;
        fir_simd(taps_rev, &input[start..start + part.len() + taps - 1], part);
    });
}

/// Dot product of two equal-length slices with four `f64x4` accumulators.
///
/// Used by the decimator, which needs one output every `factor` inputs.
pub fn dot_simd(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [f64x4::ZERO; 4];
    let mut ca = a.chunks_exact(BLOCK);
    let mut cb = b.chunks_exact(BLOCK);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for (k, s) in acc.iter_mut().enumerate() {
            let vx = f64x4::new([x[4 * k], x[4 * k + 1], x[4 * k + 2], x[4 * k + 3]]);
            let vy = f64x4::new([y[4 * k], y[4 * k + 1], y[4 * k + 2], y[4 * k + 3]]);
            *s += vx * vy;
        }
    }
    let total = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    let tail: f64 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    total.reduce_add() + tail
}
