//! The plain FFT stage: no actors.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, FixedSizeListArray, Float64Array, RecordBatch};
use arrow_buffer::ScalarBuffer;
use arrow_schema::{DataType, Field, FieldRef, SchemaRef};

use super::config::{FftConfig, SpectrumOutput};
use super::spectrum::WindowSpectrum;
use crate::batch::{DataBatch, UNIT_METADATA_KEY};
use crate::pool::BufferPool;
use crate::stages::carry::Carry;
use crate::stages::{LeadingColumns, Stage, StageError, StageInput, make_batch, output_schema};

/// Field metadata key of the FFT output: bin width in Hz (bin `k` is at `k · bin_width_hz`).
pub const BIN_WIDTH_METADATA_KEY: &str = "bin_width_hz";
/// Field metadata key of the FFT output: number of bins per spectrum (`size / 2 + 1`).
pub const BINS_METADATA_KEY: &str = "bins";

/// Spectra of windowed blocks of every selected channel, with a real-input FFT planned once.
///
/// Windows start every `hop` samples and span batch boundaries: the stage holds the input
/// buffers of the window in progress (shared with the input batches, not copied) until no later
/// window needs them. Each complete window gives one output row: `timestamp` of the window's
/// first sample, `seq` (from 0), then per channel a `FixedSizeList<Float64>` of `size / 2 + 1`
/// bins from 0 Hz to Nyquist. The field metadata carries `unit` (the input's unit, or unit²/Hz
/// for PSD), [`BIN_WIDTH_METADATA_KEY`], [`BINS_METADATA_KEY`], `fft_size`, `window` and
/// `output`; the schema metadata's `rate_hz` is the number of windows per second.
///
/// The per-window work (taper, transform, modulus) is [`WindowSpectrum`]'s; the stage reads each
/// window straight from the input buffers (one pass that copies and tapers), and writes each
/// spectrum straight into the output column.
///
/// # Limits
///
/// The last, incomplete window of a stream is dropped at the end (not zero-padded).
pub struct FftStage {
    /// What the stage reads.
    input: StageInput,
    /// Samples between window starts.
    hop: usize,
    /// The per-window work, planned once.
    spectrum: WindowSpectrum,
    /// Per channel: the samples not yet consumed by a complete window.
    carry: Vec<Carry<f64>>,
    /// The timestamps of those samples.
    carry_ts: Carry<i64>,
    /// One batch's channel buffers, all taken before any state changes (reused per batch).
    values: Vec<ScalarBuffer<f64>>,
    /// Buffers for inputs with nulls (replaced by NaN).
    nan_pool: BufferPool<f64>,
    /// The item field of the spectrum lists.
    item: FieldRef,
    /// The output schema, built once.
    schema: SchemaRef,
    /// Output `seq` counter and pooled leading columns.
    leading: LeadingColumns,
    /// Output spectrum buffers.
    pool: BufferPool<f64>,
}

impl FftStage {
    /// Plans the transform and precomputes window and scaling for `input`.
    pub fn new(config: &FftConfig, input: &StageInput) -> Result<Self, StageError> {
        if let Some(e) = StageError::from_check(config.check()) {
            return Err(e);
        }
        input.check_rate()?;
        let size = config.size;
        let hop = config.hop();
        let rate = input.rate_hz;
        let spectrum = WindowSpectrum::new(size, config.window, config.output, rate);
        let bins = spectrum.bins();
        let item: FieldRef = Arc::new(Field::new("item", DataType::Float64, false));
        let bin_width = rate / size as f64;
        let fields = input
            .channels
            .iter()
            .map(|c| {
                let unit = match config.output {
                    SpectrumOutput::Magnitude => c.unit.clone(),
                    SpectrumOutput::Psd if c.unit.is_empty() => "1/Hz".to_string(),
                    SpectrumOutput::Psd => format!("{}²/Hz", c.unit),
                };
                let metadata = HashMap::from([
                    (UNIT_METADATA_KEY.to_string(), unit),
                    (BIN_WIDTH_METADATA_KEY.to_string(), bin_width.to_string()),
                    (BINS_METADATA_KEY.to_string(), bins.to_string()),
                    ("fft_size".to_string(), size.to_string()),
                    ("window".to_string(), config.window.name().to_string()),
                    ("output".to_string(), config.output.name().to_string()),
                ]);
                Field::new(
                    &c.name,
                    DataType::FixedSizeList(item.clone(), bins as i32),
                    false,
                )
                .with_metadata(metadata)
            })
            .collect();
        let channels = input.channels.len();
        Ok(Self {
            hop,
            spectrum,
            carry: (0..channels).map(|_| Carry::new()).collect(),
            carry_ts: Carry::new(),
            values: Vec::with_capacity(channels),
            nan_pool: BufferPool::new(0),
            item,
            schema: output_schema(fields, rate / hop as f64),
            leading: LeadingColumns::new(),
            pool: BufferPool::new(2 * channels),
            input: input.clone(),
        })
    }

    /// Bins per spectrum (`size / 2 + 1`).
    pub fn bins(&self) -> usize {
        self.spectrum.bins()
    }

    /// Samples between window starts.
    pub fn hop(&self) -> usize {
        self.hop
    }

    /// Takes the batch's timestamps and every channel's values, or nothing if one is missing.
    fn take_inputs(&mut self, input: &DataBatch) -> Result<ScalarBuffer<i64>, StageError> {
        let batch = &input.batch;
        self.values.clear();
        let ts = self.input.timestamp_buffer(batch)?;
        for i in 0..self.input.channels.len() {
            match self.input.values_buffer(batch, i, &self.nan_pool) {
                Ok(v) => self.values.push(v),
                Err(e) => {
                    self.values.clear();
                    return Err(e);
                }
            }
        }
        Ok(ts)
    }

    /// The spectra of `windows` windows of `carry`, one after the other, as a list column.
    fn spectra(&mut self, channel: usize, windows: usize) -> ArrayRef {
        let bins = self.spectrum.bins();
        let size = self.spectrum.size();
        let carry = &self.carry[channel];
        let mut out = self.pool.take();
        out.reserve(windows * bins);
        let mut loaded = false;
        for k in 0..windows {
            if !loaded {
                carry.for_each_slice(k * self.hop, size, |at, s| self.spectrum.load(at, s));
            }
            let at = out.len();
            // Zeroes one spectrum's worth in cache, then overwrites it.
            out.resize(at + bins, 0.0);
            // When the next window lies in one input buffer, it is loaded in the same pass.
            let next = (k + 1 < windows)
                .then(|| carry.contiguous((k + 1) * self.hop, size))
                .flatten();
            loaded = next.is_some();
            match next {
                Some(next) => self.spectrum.spectrum_into_and_load(&mut out[at..], next),
                None => self.spectrum.spectrum_into(&mut out[at..]),
            }
        }
        let values = Arc::new(Float64Array::new(out.into_scalar_buffer(), None));
        Arc::new(FixedSizeListArray::new(
            self.item.clone(),
            bins as i32,
            values,
            None,
        ))
    }
}

impl Stage for FftStage {
    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, input: &DataBatch, out: &mut Vec<RecordBatch>) -> Result<(), StageError> {
        let ts = self.take_inputs(input)?;
        self.carry_ts.push(ts);
        for (carry, values) in self.carry.iter_mut().zip(self.values.drain(..)) {
            carry.push(values);
        }
        let size = self.spectrum.size();
        let total = self.carry_ts.len();
        if total < size {
            return Ok(());
        }
        let windows = (total - size) / self.hop + 1;
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.carry.len() + 2);
        let mut t = self.leading.timestamps.take();
        t.extend((0..windows).map(|k| self.carry_ts.get(k * self.hop)));
        columns.push(self.leading.timestamp_column(t));
        columns.push(self.leading.seq_column(windows));
        for channel in 0..self.carry.len() {
            columns.push(self.spectra(channel, windows));
        }
        let consumed = windows * self.hop;
        self.carry_ts.consume(consumed);
        for carry in &mut self.carry {
            carry.consume(consumed);
        }
        out.push(make_batch(&self.schema, columns)?);
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
