//! The plain FIR filter stage: no actors.

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::SchemaRef;

use super::config::FirConfig;
use super::kernel::fir_simd;
use crate::batch::DataBatch;
use crate::pool::BufferPool;
use crate::stages::{
    LeadingColumns, Stage, StageError, StageInput, f64_column, make_batch, output_schema,
    unit_field,
};

/// One channel's FIR filter with its state, so that a stream filtered batch by batch equals the
/// whole stream filtered at once.
///
/// The filter starts from silence (zero history): the first `taps - 1` outputs contain the
/// filter's start-up transient.
#[derive(Debug, Clone)]
pub struct FirFilter {
    /// The impulse response reversed, the order the kernels read it in.
    taps_rev: Vec<f64>,
    /// The last `taps - 1` inputs between calls; during a call, history plus the new block.
    work: Vec<f64>,
}

impl FirFilter {
    /// A filter with impulse response `taps` (oldest coefficient first).
    ///
    /// # Panics
    ///
    /// If `taps` is empty.
    pub fn new(taps: &[f64]) -> Self {
        assert!(!taps.is_empty(), "an FIR filter needs at least one tap");
        Self {
            taps_rev: taps.iter().rev().copied().collect(),
            work: vec![0.0; taps.len() - 1],
        }
    }

    /// The impulse response, oldest coefficient first.
    pub fn taps(&self) -> impl Iterator<Item = f64> + '_ {
        self.taps_rev.iter().rev().copied()
    }

    /// Filters `input`, appending one output per input sample to `out`.
    pub fn process(&mut self, input: &[f64], out: &mut Vec<f64>) {
        let history = self.taps_rev.len() - 1;
        self.work.extend_from_slice(input);
        let start = out.len();
        out.resize(start + input.len(), 0.0);
        fir_simd(&self.taps_rev, &self.work, &mut out[start..]);
        self.work.copy_within(input.len().., 0);
        self.work.truncate(history);
    }

    /// Forgets the history (back to silence).
    pub fn reset(&mut self) {
        self.work.iter_mut().for_each(|x| *x = 0.0);
    }
}

/// Filters every selected channel with the same FIR filter.
///
/// Output: `timestamp` (the input's, shared without a copy), `seq` (from 0), then one Float64
/// column per channel with the input's name and unit. One output row per input row, so the output
/// rate is the input rate. The filter is causal: the group delay of a symmetric design is
/// `(taps - 1) / 2` samples, and it is not compensated.
pub struct FirStage {
    /// What the stage reads.
    input: StageInput,
    /// One filter per channel (same taps, own history).
    filters: Vec<FirFilter>,
    /// The output schema, built once.
    schema: SchemaRef,
    /// Output `seq` counter and pooled leading columns.
    leading: LeadingColumns,
    /// Output channel buffers.
    pool: BufferPool<f64>,
    /// Per channel: where null inputs are replaced by NaN.
    nulls: Vec<Vec<f64>>,
}

impl FirStage {
    /// Builds the filter for `input`: explicit taps, or the design at the input's rate.
    pub fn new(config: &FirConfig, input: &StageInput) -> Result<Self, StageError> {
        if let Some(e) = StageError::from_check(config.check()) {
            return Err(e);
        }
        input.check_rate()?;
        let taps = match (&config.taps, &config.design) {
            (Some(taps), _) => taps.clone(),
            (None, Some(design)) => design
                .coefficients(input.rate_hz)
                .map_err(|(key, message)| StageError::Config { key, message })?,
            (None, None) => unreachable!("check() requires taps or design"),
        };
        let fields = input
            .channels
            .iter()
            .map(|c| unit_field(&c.name, &c.unit, &[("fir_taps", taps.len().to_string())]))
            .collect();
        Ok(Self {
            filters: vec![FirFilter::new(&taps); input.channels.len()],
            schema: output_schema(fields, input.rate_hz),
            leading: LeadingColumns::new(),
            pool: BufferPool::new(2 * input.channels.len()),
            nulls: vec![Vec::new(); input.channels.len()],
            input: input.clone(),
        })
    }

    /// The impulse response in use, oldest coefficient first.
    pub fn taps(&self) -> Vec<f64> {
        self.filters
            .first()
            .map(|f| f.taps().collect())
            .unwrap_or_default()
    }
}

impl Stage for FirStage {
    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, input: &DataBatch, out: &mut Vec<RecordBatch>) -> Result<(), StageError> {
        let batch = &input.batch;
        let rows = batch.num_rows();
        let timestamps = self.input.timestamp_column(batch)?;
        let mut values = Vec::with_capacity(self.filters.len());
        for (i, scratch) in self.nulls.iter_mut().enumerate() {
            values.push(self.input.values(batch, i, scratch)?);
        }
        if rows == 0 {
            return Ok(());
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.filters.len() + 2);
        // The timestamps pass through: the output shares the input's column.
        columns.push(timestamps);
        columns.push(self.leading.seq_column(rows));
        for (filter, x) in self.filters.iter_mut().zip(values) {
            let mut y = self.pool.take();
            filter.process(x, &mut y);
            columns.push(f64_column(y));
        }
        out.push(make_batch(&self.schema, columns)?);
        Ok(())
    }

    fn flush(&mut self, _out: &mut Vec<RecordBatch>) -> Result<(), StageError> {
        // Every input row has produced its output already.
        Ok(())
    }

    fn continue_at(&mut self, seq: u64) {
        self.leading.next_seq = seq;
    }
}
