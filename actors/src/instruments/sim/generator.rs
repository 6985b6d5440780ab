//! The plain signal generator behind the simulated instrument: no actors, no clocks.

use std::f64::consts::TAU;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, RecordBatch, TimestampNanosecondArray, UInt64Array};
use arrow_schema::SchemaRef;

use super::config::{Shape, SignalConfig, SimInstrumentConfig};
use super::noise::{add_gaussian, gaussian};
use super::sine_steps::{SINE_ANCHOR, SineSteps, sine_steps};
use crate::batch::{ChannelSpec, stream_schema_with_rate};

/// Makes the rows of one simulated stream, batch after batch, from a given `seq` on.
///
/// The values depend only on the configuration and the row's `seq`, never on how the stream
/// is cut into batches, so a restarted generator continues the same signal.
#[derive(Debug, Clone)]
pub struct SimGenerator {
    config: SimInstrumentConfig,
    schema: SchemaRef,
    /// Per channel: the phase in radians.
    phases: Vec<f64>,
    /// `(sin, cos)` of `k` sine steps for `k` in `0..SINE_ANCHOR` (see `fill_channel`); follows
    /// the signal's frequency. Taken (shared with every generator of the same sine) by the first
    /// `generate`, so a copy that never generates (a plan's probe) holds none.
    sine_steps: Option<SineSteps>,
    /// Wall-clock time of row 0, ns since the Unix epoch.
    start_ns: i64,
    /// Nanoseconds from one row to the next, when that is a whole number (timestamps are then
    /// exact integer steps); otherwise `None` and `ns_per_row` is used.
    step_ns: Option<i64>,
    ns_per_row: f64,
    /// `seq` of the next row to generate.
    next_seq: u64,
}

impl SimGenerator {
    /// A generator whose row 0 is stamped `start_ns` and whose next row is `next_seq`.
    pub fn new(config: &SimInstrumentConfig, start_ns: i64, next_seq: u64) -> Self {
        let channels: Vec<_> = config
            .channels
            .iter()
            .map(|c| ChannelSpec::new(c, &config.unit))
            .collect();
        Self {
            schema: stream_schema_with_rate(&channels, config.rate_hz),
            phases: (0..config.channels.len())
                .map(|i| config.phase_of(i))
                .collect(),
            sine_steps: None,
            config: config.clone(),
            start_ns,
            step_ns: whole_step_ns(config.rate_hz),
            ns_per_row: 1e9 / config.rate_hz,
            next_seq,
        }
    }

    /// The schema of every batch this generator makes.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// `seq` of the next row.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Timestamp of row `seq`: `start + seq / rate_hz`, in ns (exact when `1e9 / rate_hz` is a
    /// whole number, otherwise rounded to the nearest ns).
    pub fn timestamp_ns(&self, seq: u64) -> i64 {
        self.start_ns
            + match self.step_ns {
                Some(step) => seq as i64 * step,
                // `+ 0.5` and truncation: rounding without a call into libm (the default x86-64
                // target has no rounding instruction); the offset is never negative.
                None => (seq as f64 * self.ns_per_row + 0.5) as i64,
            }
    }

    /// The value of channel `channel` at row `seq`.
    pub fn value(&self, channel: usize, seq: u64) -> f64 {
        self.value_at(channel, seq as f64 / self.config.rate_hz, seq)
    }

    /// The value of channel `channel` at `t` seconds after row 0, with the noise of row
    /// `noise_seq` (the row due at `t`, for a reading taken between rows).
    pub fn value_at(&self, channel: usize, t: f64, noise_seq: u64) -> f64 {
        let signal = &self.config.signal;
        let x = TAU * signal.frequency_hz * t + self.phases[channel];
        let wave = match signal.shape {
            Shape::Sine => x.sin(),
            Shape::Square => {
                if x.sin() >= 0.0 {
                    1.0
                } else {
                    -1.0
                }
            }
            Shape::Ramp => 2.0 * (x / TAU).rem_euclid(1.0) - 1.0,
            Shape::Noise => 0.0,
            Shape::Constant => 1.0,
        };
        signal.offset + signal.amplitude * wave + self.noise(channel, noise_seq)
    }

    /// The signal the generator makes now.
    pub fn signal(&self) -> &SignalConfig {
        &self.config.signal
    }

    /// Replaces the signal (a scan changed `offset`, `amplitude` or `frequency_hz`); rows made
    /// from now on follow the new one.
    /// The step table depends on the frequency alone, and only `generate` reads it: a new
    /// frequency empties it and the next batch rebuilds it, so a plan's probe that sets and
    /// reads single values point by point never pays for it.
    pub fn set_signal(&mut self, signal: SignalConfig) {
        if signal.frequency_hz != self.config.signal.frequency_hz {
            self.sine_steps = None;
        }
        self.config.signal = signal;
    }

    /// The wall-clock start of row 0, ns since the Unix epoch.
    pub fn start_ns(&self) -> i64 {
        self.start_ns
    }

    /// Nominal rate in Hz.
    pub fn rate_hz(&self) -> f64 {
        self.config.rate_hz
    }

    /// Number of channels.
    pub fn channel_count(&self) -> usize {
        self.phases.len()
    }

    /// Skips `rows` rows without making them (a device buffer overflow).
    pub fn skip(&mut self, rows: u64) {
        self.next_seq += rows;
    }

    /// Stamps the rows not generated yet `by` later (the device was held that long).
    pub fn delay(&mut self, by: std::time::Duration) {
        self.start_ns += i64::try_from(by.as_nanos()).unwrap_or(i64::MAX);
    }

    /// Appends the values of channel `channel` for rows `first..first + rows` to `out`.
    ///
    /// The same numbers as [`value`](Self::value), made faster: a sine is computed exactly at
    /// an anchor every [`SINE_ANCHOR`] rows (absolute `seq`, so batch boundaries do not change a
    /// value) and from there by the angle-sum identity with the precomputed `sine_steps`, so the
    /// rows of a block do not depend on each other and vectorize; the noise is added in one
    /// pass per block of the noise table (see `noise.rs`).
    fn fill_channel(&self, channel: usize, first: u64, rows: usize, out: &mut Vec<f64>) {
        let signal = &self.config.signal;
        let end = first + rows as u64;
        match signal.shape {
            Shape::Sine => {
                let (offset, amplitude) = (signal.offset, signal.amplitude);
                let mut seq = first;
                while seq < end {
                    let anchor = seq - seq % SINE_ANCHOR;
                    let block_end = (anchor + SINE_ANCHOR).min(end);
                    let t = anchor as f64 / self.config.rate_hz;
                    let x = TAU * signal.frequency_hz * t + self.phases[channel];
                    let (s, c) = x.sin_cos();
                    let steps = &self
                        .sine_steps
                        .as_deref()
                        .expect("`generate` takes the table before it fills a channel")
                        [(seq - anchor) as usize..(block_end - anchor) as usize];
                    out.extend(
                        steps
                            .iter()
                            .map(|&(sk, ck)| offset + amplitude * (s * ck + c * sk)),
                    );
                    seq = block_end;
                }
            }
            _ => out.extend(
                (first..end).map(|seq| self.value(channel, seq) - self.noise(channel, seq)),
            ),
        }
        if signal.noise > 0.0 {
            let base = out.len() - rows;
            add_gaussian(
                self.config.seed,
                channel as u64,
                first,
                signal.noise,
                &mut out[base..],
            );
        }
    }

    /// The noise term of [`value`](Self::value).
    fn noise(&self, channel: usize, seq: u64) -> f64 {
        let noise = self.config.signal.noise;
        if noise > 0.0 {
            noise * gaussian(self.config.seed, channel as u64, seq)
        } else {
            0.0
        }
    }

    /// Makes the next `rows` rows as one batch and advances.
    pub fn generate(&mut self, rows: usize) -> RecordBatch {
        if self.sine_steps.is_none() {
            let signal = &self.config.signal;
            self.sine_steps = Some(sine_steps(signal.frequency_hz, self.config.rate_hz));
        }
        let seqs = self.next_seq..self.next_seq + rows as u64;
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.phases.len() + 2);
        let timestamps: Vec<i64> = match self.step_ns {
            // Integer steps from the first row's timestamp: no conversion per row.
            Some(step) => {
                let first = self.timestamp_ns(self.next_seq);
                (0..rows as i64).map(|i| first + i * step).collect()
            }
            None => seqs.clone().map(|s| self.timestamp_ns(s)).collect(),
        };
        columns.push(Arc::new(
            TimestampNanosecondArray::from(timestamps).with_timezone("UTC"),
        ));
        columns.push(Arc::new(UInt64Array::from_iter_values(seqs.clone())));
        for channel in 0..self.phases.len() {
            let mut values = Vec::with_capacity(rows);
            self.fill_channel(channel, self.next_seq, rows, &mut values);
            columns.push(Arc::new(Float64Array::from(values)));
        }
        self.next_seq += rows as u64;
        // The columns are built from the schema's own field list, so their number, types and
        // lengths always match it.
        RecordBatch::try_new(self.schema.clone(), columns)
            .expect("generated columns match the generator's schema")
    }
}

/// `1e9 / rate_hz` if it is a whole number of nanoseconds (most configured rates), else `None`.
fn whole_step_ns(rate_hz: f64) -> Option<i64> {
    let ns = 1e9 / rate_hz;
    (ns >= 1.0 && ns < (1u64 << 53) as f64 && ns.fract() == 0.0).then_some(ns as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instruments::sim::config::{Phase, SignalConfig};
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, UInt64Type};

    fn config(shape: Shape, noise: f64) -> SimInstrumentConfig {
        SimInstrumentConfig {
            rate_hz: 1000.0,
            channels: vec!["a".into(), "b".into()],
            unit: "V".into(),
            seed: 7,
            pace: Default::default(),
            signal: SignalConfig {
                shape,
                frequency_hz: 5.0,
                amplitude: 2.0,
                offset: 0.5,
                noise,
                phase: Phase::PerChannel(vec![0.0, 1.0]),
            },
            batch_interval: std::time::Duration::from_millis(100),
            max_batch_rows: 8192,
            device_buffer: std::time::Duration::from_secs(10),
            fault: None,
        }
    }

    #[test]
    fn sine_follows_the_formula_and_seq_is_contiguous() {
        let mut g = SimGenerator::new(&config(Shape::Sine, 0.0), 1_000, 0);
        let batch = g.generate(10);
        let seq = batch.column(1).as_primitive::<UInt64Type>();
        assert_eq!(seq.values().to_vec(), (0..10).collect::<Vec<u64>>());
        let b = batch.column(3).as_primitive::<Float64Type>();
        let t = 3.0 / 1000.0;
        let expected = 0.5 + 2.0 * (TAU * 5.0 * t + 1.0).sin();
        assert!((b.value(3) - expected).abs() < 1e-12);
        assert_eq!(g.timestamp_ns(3), 1_000 + 3_000_000);
        assert_eq!(g.next_seq(), 10);
    }

    #[test]
    fn timestamps_are_start_plus_seq_over_rate_in_batches_and_alone() {
        // 1 kHz: a whole 1,000,000 ns step; 3 Hz: 333,333,333.3 ns, rounded per row.
        for (rate_hz, whole) in [(1000.0, true), (3.0, false)] {
            let cfg = SimInstrumentConfig {
                rate_hz,
                ..config(Shape::Sine, 0.0)
            };
            assert_eq!(whole_step_ns(rate_hz).is_some(), whole);
            let start = 1_700_000_000_000_000_000;
            let mut g = SimGenerator::new(&cfg, start, 5);
            let batch = g.generate(300);
            let ts = batch
                .column(0)
                .as_primitive::<arrow_array::types::TimestampNanosecondType>();
            for (i, t) in ts.values().iter().enumerate() {
                let seq = 5 + i as u64;
                let want = start + (seq as f64 * 1e9 / rate_hz).round() as i64;
                assert_eq!(*t, want, "rate {rate_hz}, seq {seq}");
                assert_eq!(g.timestamp_ns(seq), want);
            }
        }
        // Far into a fast run the whole-step stamps stay exact (no f64 rounding of seq * 1e9).
        let cfg = SimInstrumentConfig {
            rate_hz: 1e6,
            ..config(Shape::Sine, 0.0)
        };
        let g = SimGenerator::new(&cfg, 0, 0);
        assert_eq!(g.timestamp_ns(123_456_789_012), 123_456_789_012_000);
    }

    #[test]
    fn batches_do_not_change_the_signal() {
        let cfg = config(Shape::Ramp, 0.3);
        let whole = SimGenerator::new(&cfg, 0, 0).generate(100);
        let mut g = SimGenerator::new(&cfg, 0, 0);
        let first = g.generate(37);
        let second = SimGenerator::new(&cfg, 0, 37).generate(63);
        for col in 2..4 {
            let w = whole.column(col).as_primitive::<Float64Type>();
            let a = first.column(col).as_primitive::<Float64Type>();
            let b = second.column(col).as_primitive::<Float64Type>();
            let joined: Vec<f64> = a
                .values()
                .iter()
                .chain(b.values().iter())
                .copied()
                .collect();
            assert_eq!(w.values().to_vec(), joined);
        }
    }

    #[test]
    fn generated_batches_match_value_wherever_they_are_cut() {
        for shape in [Shape::Sine, Shape::Ramp, Shape::Square] {
            let cfg = config(shape, 0.2);
            let reference = SimGenerator::new(&cfg, 0, 0);
            let mut g = SimGenerator::new(&cfg, 0, 0);
            let mut seq = 0u64;
            for rows in [1usize, 63, 64, 65, 130, 7, 1000] {
                let batch = g.generate(rows);
                for ch in 0..2 {
                    let col = batch.column(2 + ch).as_primitive::<Float64Type>();
                    for i in 0..rows {
                        let want = reference.value(ch, seq + i as u64);
                        let got = col.value(i);
                        assert!(
                            (got - want).abs() < 1e-12,
                            "{shape:?} {seq}+{i}: {got} vs {want}"
                        );
                    }
                }
                seq += rows as u64;
            }
        }
    }

    #[test]
    fn shapes_take_their_documented_values() {
        let sq = SimGenerator::new(&config(Shape::Square, 0.0), 0, 0);
        assert_eq!(sq.value(0, 1), 0.5 + 2.0);
        assert_eq!(sq.value(0, 150), 0.5 - 2.0);
        let c = SimGenerator::new(&config(Shape::Constant, 0.0), 0, 0);
        assert_eq!(c.value(1, 12345), 2.5);
        let r = SimGenerator::new(&config(Shape::Ramp, 0.0), 0, 0);
        assert!((r.value(0, 0) - (0.5 - 2.0)).abs() < 1e-12);
        assert!(
            (r.value(0, 100) - 0.5).abs() < 1e-9,
            "half a period at 5 Hz is 100 ms"
        );
    }

    #[test]
    fn noise_has_the_configured_spread_and_is_reproducible() {
        let cfg = config(Shape::Noise, 1.5);
        let g = SimGenerator::new(&cfg, 0, 0);
        let n = 20_000;
        let values: Vec<f64> = (0..n).map(|s| g.value(0, s) - 0.5).collect();
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!((var.sqrt() - 1.5).abs() < 0.05, "std {}", var.sqrt());
        assert_eq!(g.value(0, 99), SimGenerator::new(&cfg, 0, 0).value(0, 99));
        assert_ne!(
            g.value(0, 99),
            g.value(1, 99),
            "channels draw different noise"
        );
    }
}
