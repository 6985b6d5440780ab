//! The simulator's Gaussian noise: a value for every `(seed, channel, seq)`, cheap enough that
//! making rows costs a small fraction of writing them.
//!
//! Drawing a fresh normal variate per sample (a hash and a ziggurat step) made the generator
//! about a fifth of the whole pipeline's CPU at `pace = "max"` (BENCHMARKS.md, section 1:
//! `SimGenerator::generate` 20–24% of `perf` samples); with this table it is 9.7% of the samples
//! and 54 instructions per 4-channel row (BENCHMARKS.md, issue 16).
//! Instead, the noise of a block of [`BLOCK`] rows is read from one process-wide table of
//! [`TABLE`] standard normal draws, at an offset and with a sign hashed from `(seed, channel,
//! block)`: a contiguous read that vectorizes, one hash per block.
//!
//! # What that gives, and what not
//! - Every value is a standard normal draw (scaled by the signal's `noise`); values within a
//!   block are independent; the table is normalized to mean 0 and variance 1 exactly.
//! - A value depends only on `(seed, channel, seq)`, so batches and restarts do not change it.
//! - Blocks are independent windows of one table: two blocks (of one channel, of two channels or
//!   of two instruments) can read overlapping windows, so a stretch of noise can repeat
//!   elsewhere in the run (with a chance of about `2 · BLOCK / TABLE` ≈ 0.8% for any given pair
//!   of blocks). Statistics over many blocks are those of the table's `TABLE` draws, not of
//!   independent ones: do not use the simulator as a source of random numbers.

use std::sync::OnceLock;

use rand_core::RngCore;
use rand_distr::{Distribution, StandardNormal};

/// Rows that read one contiguous window of the table.
const BLOCK: u64 = 1024;
/// Standard normal draws in the table (2 MiB of `f64`, made once per process on first use).
const TABLE: usize = 1 << 18;
/// Key of the table's own draws (fixed: the table is the same in every process).
const TABLE_KEY: u64 = 0x05EE_D0F7_AB1E;

/// The table of standard normal draws, made on first use.
fn table() -> &'static [f64] {
    static TABLE_DRAWS: OnceLock<Vec<f64>> = OnceLock::new();
    TABLE_DRAWS.get_or_init(|| {
        let mut rng = SplitMix64(TABLE_KEY);
        let mut draws: Vec<f64> = (0..TABLE)
            .map(|_| StandardNormal.sample(&mut rng))
            .collect();
        let n = draws.len() as f64;
        let mean = draws.iter().sum::<f64>() / n;
        let sd = (draws.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        for v in &mut draws {
            *v = (*v - mean) / sd;
        }
        draws
    })
}

/// Where block `block` of `channel` reads the table, and its sign.
fn window(seed: u64, channel: u64, block: u64) -> (usize, f64) {
    let mut rng = SplitMix64(
        seed ^ channel.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ block.wrapping_mul(0xD1B5_4A32_D192_ED03),
    );
    let h = rng.next_u64();
    let offset = (h >> 32) as usize % (TABLE - BLOCK as usize + 1);
    let sign = if h & 1 == 0 { 1.0 } else { -1.0 };
    (offset, sign)
}

/// The standard normal noise value of row `seq` of `channel`.
pub(super) fn gaussian(seed: u64, channel: u64, seq: u64) -> f64 {
    let (offset, sign) = window(seed, channel, seq / BLOCK);
    sign * table()[offset + (seq % BLOCK) as usize]
}

/// Adds `scale` times the noise of rows `first..first + out.len()` of `channel` to `out`.
pub(super) fn add_gaussian(seed: u64, channel: u64, first: u64, scale: f64, out: &mut [f64]) {
    let table = table();
    let mut seq = first;
    let mut rest = out;
    while !rest.is_empty() {
        let block = seq / BLOCK;
        let within = (seq % BLOCK) as usize;
        let take = rest.len().min(BLOCK as usize - within);
        let (offset, sign) = window(seed, channel, block);
        let k = sign * scale;
        let (head, tail) = rest.split_at_mut(take);
        let draws = &table[offset + within..offset + within + take];
        for (v, z) in head.iter_mut().zip(draws) {
            *v += k * z;
        }
        rest = tail;
        seq += take as u64;
    }
}

/// SplitMix64 as a random source: a counter through a 64-bit mixer, so a fresh stream per key
/// costs nothing to set up.
struct SplitMix64(u64);

impl RngCore for SplitMix64 {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut x = self.0;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(values: &[f64]) -> (f64, f64, f64) {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let kurt = values.iter().map(|v| (v - mean).powi(4)).sum::<f64>() / n / (var * var);
        (mean, var.sqrt(), kurt)
    }

    #[test]
    fn a_long_stretch_is_standard_normal() {
        let mut values = vec![0.0; 1 << 20];
        add_gaussian(3, 1, 12_345, 1.0, &mut values);
        let (mean, sd, kurt) = moments(&values);
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((sd - 1.0).abs() < 0.01, "sd {sd}");
        assert!((kurt - 3.0).abs() < 0.05, "kurtosis {kurt}");
        // The share within one and two standard deviations, as for a normal distribution.
        let within = |k: f64| values.iter().filter(|v| v.abs() < k).count() as f64 / 1048576.0;
        assert!((within(1.0) - 0.6827).abs() < 0.005, "{}", within(1.0));
        assert!((within(2.0) - 0.9545).abs() < 0.003, "{}", within(2.0));
    }

    #[test]
    fn rows_are_the_same_wherever_a_batch_is_cut() {
        let mut whole = vec![0.0; 5000];
        add_gaussian(9, 2, 1000, 0.5, &mut whole);
        let mut cut = vec![0.0; 5000];
        let (a, b) = cut.split_at_mut(1777);
        add_gaussian(9, 2, 1000, 0.5, a);
        add_gaussian(9, 2, 2777, 0.5, b);
        assert_eq!(whole, cut);
        for (i, v) in whole.iter().enumerate() {
            assert_eq!(*v, 0.5 * gaussian(9, 2, 1000 + i as u64));
        }
    }

    #[test]
    fn channels_seeds_and_neighbouring_rows_are_uncorrelated() {
        let n = 1 << 16;
        let draw = |seed, channel| {
            let mut v = vec![0.0; n];
            add_gaussian(seed, channel, 0, 1.0, &mut v);
            v
        };
        let correlation = |a: &[f64], b: &[f64]| {
            a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>() / a.len() as f64
        };
        let a = draw(1, 0);
        for other in [draw(1, 1), draw(2, 0), a[1..].to_vec()] {
            let r = correlation(&a[..other.len()], &other);
            assert!(r.abs() < 0.02, "correlation {r}");
        }
    }
}
