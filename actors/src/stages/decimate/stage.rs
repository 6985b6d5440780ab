//! The plain decimation stage: no actors.

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::SchemaRef;

use super::config::DecimateConfig;
use crate::batch::DataBatch;
use crate::pool::BufferPool;
use crate::stages::fir::kernel::dot_simd;
use crate::stages::fir::{FilterKind, FirDesign};
use crate::stages::{
    LeadingColumns, Stage, StageError, StageInput, f64_column, make_batch, output_schema,
    unit_field,
};

/// Decimates every selected channel by `factor`.
///
/// Output row `k` is input sample `k · factor` of the stream (counting from the first sample the
/// stage saw), filtered by the anti-alias low-pass if enabled; its `timestamp` is that input
/// sample's. Only the kept outputs are computed (one dot product of the taps per output row).
/// Output: `timestamp`, `seq`, one Float64 column per channel (input name and unit), schema
/// metadata `rate_hz` = input rate / `factor`.
pub struct DecimateStage {
    /// What the stage reads.
    input: StageInput,
    /// Keep one sample in `factor`.
    factor: usize,
    /// The anti-alias impulse response reversed (`[1.0]` without filtering).
    taps_rev: Vec<f64>,
    /// Per channel: the last `taps - 1` inputs, then the current batch while processing.
    work: Vec<Vec<f64>>,
    /// Input samples seen so far (decides which samples of a batch are kept).
    consumed: u64,
    /// The output schema, built once.
    schema: SchemaRef,
    /// Output `seq` counter and pooled leading columns.
    leading: LeadingColumns,
    /// Output channel buffers.
    pool: BufferPool<f64>,
    /// Per channel: where null inputs are replaced by NaN.
    nulls: Vec<Vec<f64>>,
}

impl DecimateStage {
    /// Builds the decimator (and designs its anti-alias filter) for `input`.
    pub fn new(config: &DecimateConfig, input: &StageInput) -> Result<Self, StageError> {
        if let Some(e) = StageError::from_check(config.check()) {
            return Err(e);
        }
        input.check_rate()?;
        let factor = config.factor;
        let taps = if config.antialias && factor > 1 {
            let design = FirDesign {
                kind: FilterKind::Lowpass,
                cutoff_hz: 0.8 * input.rate_hz / 2.0 / factor as f64,
                high_hz: None,
                taps: config.antialias_taps(),
                window: config.window,
            };
            design
                .coefficients(input.rate_hz)
                .map_err(|(key, message)| StageError::Config { key, message })?
        } else {
            vec![1.0]
        };
        let out_rate = input.rate_hz / factor as f64;
        let extra = [
            ("decimation_factor", factor.to_string()),
            ("antialias_taps", taps.len().to_string()),
        ];
        let fields = input
            .channels
            .iter()
            .map(|c| unit_field(&c.name, &c.unit, &extra))
            .collect();
        let channels = input.channels.len();
        Ok(Self {
            factor,
            work: vec![vec![0.0; taps.len() - 1]; channels],
            taps_rev: taps.into_iter().rev().collect(),
            consumed: 0,
            schema: output_schema(fields, out_rate),
            leading: LeadingColumns::new(),
            pool: BufferPool::new(2 * channels),
            nulls: vec![Vec::new(); channels],
            input: input.clone(),
        })
    }
}

impl Stage for DecimateStage {
    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, input: &DataBatch, out: &mut Vec<RecordBatch>) -> Result<(), StageError> {
        let batch = &input.batch;
        let n = batch.num_rows();
        let ts = self.input.timestamps(batch)?;
        let mut values = Vec::with_capacity(self.work.len());
        for (i, scratch) in self.nulls.iter_mut().enumerate() {
            values.push(self.input.values(batch, i, scratch)?);
        }
        let f = self.factor;
        let skip = (f - (self.consumed % f as u64) as usize) % f;
        self.consumed += n as u64;
        let kept = if skip < n { (n - skip).div_ceil(f) } else { 0 };
        let taps = self.taps_rev.len();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.work.len() + 2);
        if kept > 0 {
            let mut t = self.leading.timestamps.take();
            t.extend((skip..n).step_by(f).map(|i| ts[i]));
            columns.push(self.leading.timestamp_column(t));
            columns.push(self.leading.seq_column(kept));
        }
        for (work, x) in self.work.iter_mut().zip(values) {
            work.extend_from_slice(x);
            if kept > 0 {
                let mut y = self.pool.take();
                y.extend(
                    (skip..n)
                        .step_by(f)
                        .map(|i| dot_simd(&self.taps_rev, &work[i..i + taps])),
                );
                columns.push(f64_column(y));
            }
            work.copy_within(n.., 0);
            work.truncate(taps - 1);
        }
        if kept > 0 {
            out.push(make_batch(&self.schema, columns)?);
        }
        Ok(())
    }

    fn flush(&mut self, _out: &mut Vec<RecordBatch>) -> Result<(), StageError> {
        Ok(())
    }

    fn continue_at(&mut self, seq: u64) {
        self.leading.next_seq = seq;
    }
}
