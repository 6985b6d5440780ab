//! The plain statistics stage: no actors.

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::SchemaRef;

use super::config::StatsConfig;
use crate::batch::DataBatch;
use crate::pool::{BufferPool, PooledVec};
use crate::stages::{
    LeadingColumns, Stage, StageError, StageInput, f64_column, make_batch, output_schema,
    unit_field,
};

/// The statistics written per channel, in column order (`{channel}_{name}`).
pub const STATISTICS: [&str; 5] = ["mean", "std", "min", "max", "rms"];

/// One channel's running sums over the open window.
#[derive(Debug, Clone, Copy, Default)]
struct Accumulator {
    /// The window's first sample: sums are taken of `x - shift`, which keeps the variance exact
    /// for signals with a large offset.
    shift: f64,
    /// Σ (x - shift).
    sum: f64,
    /// Σ (x - shift)².
    sum_sq_shifted: f64,
    /// Σ x².
    sum_sq: f64,
    /// Smallest sample (NaN ignored).
    min: f64,
    /// Largest sample (NaN ignored).
    max: f64,
}

/// Windowed statistics of every selected channel.
///
/// Windows are consecutive and do not overlap; they span batch boundaries. Each complete window
/// gives one row: `timestamp` of its first sample, `seq` (from 0), then for each channel five
/// Float64 columns `{channel}_mean`, `_std` (population, dividing by the window length), `_min`,
/// `_max` and `_rms`, all in the channel's unit. The schema metadata's `rate_hz` is the input
/// rate divided by the window length.
///
/// # Limits
///
/// - The last, incomplete window is dropped at the end of the stream.
/// - A NaN (or null) sample makes the window's mean, std and rms NaN; min and max skip it.
pub struct StatsStage {
    /// What the stage reads.
    input: StageInput,
    /// Samples per window.
    window: usize,
    /// Samples already in the open window.
    filled: usize,
    /// Timestamp of the open window's first sample.
    open_ts: i64,
    /// Per channel: sums of the open window.
    acc: Vec<Accumulator>,
    /// The output schema, built once.
    schema: SchemaRef,
    /// Output `seq` counter and pooled leading columns.
    leading: LeadingColumns,
    /// Output column buffers.
    pool: BufferPool<f64>,
    /// Per channel: where null inputs are replaced by NaN.
    nulls: Vec<Vec<f64>>,
}

impl StatsStage {
    /// Builds the stage; a duration window is converted to samples at the input's rate.
    pub fn new(config: &StatsConfig, input: &StageInput) -> Result<Self, StageError> {
        if let Some(e) = StageError::from_check(config.check()) {
            return Err(e);
        }
        input.check_rate()?;
        let window = config
            .window_samples(input.rate_hz)
            .map_err(|(key, message)| StageError::Config { key, message })?;
        let mut fields = Vec::with_capacity(input.channels.len() * STATISTICS.len());
        for c in &input.channels {
            for stat in STATISTICS {
                let extra = [
                    ("statistic", stat.to_string()),
                    ("window_samples", window.to_string()),
                ];
                fields.push(unit_field(&format!("{}_{stat}", c.name), &c.unit, &extra));
            }
        }
        let channels = input.channels.len();
        Ok(Self {
            window,
            filled: 0,
            open_ts: 0,
            acc: vec![Accumulator::default(); channels],
            schema: output_schema(fields, input.rate_hz / window as f64),
            leading: LeadingColumns::new(),
            pool: BufferPool::new(2 * STATISTICS.len() * channels),
            nulls: vec![Vec::new(); channels],
            input: input.clone(),
        })
    }

    /// Samples per window.
    pub fn window_samples(&self) -> usize {
        self.window
    }
}

impl Stage for StatsStage {
    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, input: &DataBatch, out: &mut Vec<RecordBatch>) -> Result<(), StageError> {
        let batch = &input.batch;
        let ts = self.input.timestamps(batch)?;
        let mut values = Vec::with_capacity(self.acc.len());
        for (i, scratch) in self.nulls.iter_mut().enumerate() {
            values.push(self.input.values(batch, i, scratch)?);
        }
        let w = self.window;
        let start = self.filled;
        let mut starts = self.leading.timestamps.take();
        let mut filled = start;
        for &t in ts {
            if filled == 0 {
                self.open_ts = t;
            }
            filled += 1;
            if filled == w {
                starts.push(self.open_ts);
                filled = 0;
            }
        }
        self.filled = filled;
        let rows = starts.len();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(2 + STATISTICS.len() * self.acc.len());
        if rows > 0 {
            columns.push(self.leading.timestamp_column(starts));
            columns.push(self.leading.seq_column(rows));
        }
        for (acc, x) in self.acc.iter_mut().zip(values) {
            let mut cols: [PooledVec<f64>; 5] = std::array::from_fn(|_| self.pool.take());
            let mut count = start;
            for &v in x {
                if count == 0 {
                    *acc = Accumulator {
                        shift: v,
                        min: f64::INFINITY,
                        max: f64::NEG_INFINITY,
                        ..Default::default()
                    };
                }
                let d = v - acc.shift;
                acc.sum += d;
                acc.sum_sq_shifted += d * d;
                acc.sum_sq += v * v;
                acc.min = acc.min.min(v);
                acc.max = acc.max.max(v);
                count += 1;
                if count == w {
                    let n = w as f64;
                    let mean_d = acc.sum / n;
                    let var = (acc.sum_sq_shifted / n - mean_d * mean_d).max(0.0);
                    cols[0].push(acc.shift + mean_d);
                    cols[1].push(var.sqrt());
                    cols[2].push(acc.min);
                    cols[3].push(acc.max);
                    cols[4].push((acc.sum_sq / n).sqrt());
                    count = 0;
                }
            }
            if rows > 0 {
                columns.extend(cols.into_iter().map(f64_column));
            }
        }
        if rows > 0 {
            out.push(make_batch(&self.schema, columns)?);
        }
        Ok(())
    }

    fn flush(&mut self, _out: &mut Vec<RecordBatch>) -> Result<(), StageError> {
        // An incomplete window is dropped (documented on the type).
        Ok(())
    }

    fn continue_at(&mut self, seq: u64) {
        self.leading.next_seq = seq;
    }
}
