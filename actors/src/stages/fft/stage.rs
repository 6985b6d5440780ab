//! The plain FFT stage: no actors.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, FixedSizeListArray, Float64Array, RecordBatch};
use arrow_schema::{DataType, Field, FieldRef, SchemaRef};
use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use super::config::{FftConfig, SpectrumOutput};
use crate::batch::{DataBatch, UNIT_METADATA_KEY};
use crate::pool::BufferPool;
use crate::stages::{LeadingColumns, Stage, StageError, StageInput, make_batch, output_schema};

/// Field metadata key of the FFT output: bin width in Hz (bin `k` is at `k · bin_width_hz`).
pub const BIN_WIDTH_METADATA_KEY: &str = "bin_width_hz";
/// Field metadata key of the FFT output: number of bins per spectrum (`size / 2 + 1`).
pub const BINS_METADATA_KEY: &str = "bins";

/// Spectra of windowed blocks of every selected channel, with a real-input FFT planned once.
///
/// Windows start every `hop` samples and span batch boundaries: the stage keeps the samples of
/// the window in progress (fewer than `size`) between batches. Each complete window gives one
/// output row: `timestamp` of the window's first sample, `seq` (from 0), then per channel a
/// `FixedSizeList<Float64>` of `size / 2 + 1` bins from 0 Hz to Nyquist. The field metadata
/// carries `unit` (the input's unit, or unit²/Hz for PSD), [`BIN_WIDTH_METADATA_KEY`],
/// [`BINS_METADATA_KEY`], `fft_size`, `window` and `output`; the schema metadata's `rate_hz` is
/// the number of windows per second.
///
/// # Limits
///
/// The last, incomplete window of a stream is dropped at the end (not zero-padded).
pub struct FftStage {
    /// What the stage reads.
    input: StageInput,
    /// Samples per window.
    size: usize,
    /// Samples between window starts.
    hop: usize,
    /// Bins per spectrum.
    bins: usize,
    /// Magnitude or PSD.
    output: SpectrumOutput,
    /// The window coefficients.
    window: Vec<f64>,
    /// Per-bin factor applied to |X| (magnitude) or |X|² (PSD).
    scale: Vec<f64>,
    /// The plan, made once.
    fft: Arc<dyn RealToComplex<f64>>,
    /// Windowed input of one transform (the transform overwrites it).
    fft_in: Vec<f64>,
    /// Output of one transform.
    spectrum: Vec<Complex<f64>>,
    /// Scratch of the transform.
    scratch: Vec<Complex<f64>>,
    /// One spectrum's output values before they are appended to the output buffer.
    bins_scratch: Vec<f64>,
    /// Per channel: samples not yet consumed by a complete window (fewer than `size`).
    pending: Vec<Vec<f64>>,
    /// Timestamps of the pending samples.
    pending_ts: Vec<i64>,
    /// The item field of the spectrum lists.
    item: FieldRef,
    /// The output schema, built once.
    schema: SchemaRef,
    /// Output `seq` counter and pooled leading columns.
    leading: LeadingColumns,
    /// Output spectrum buffers.
    pool: BufferPool<f64>,
    /// Per channel: where null inputs are replaced by NaN.
    nulls: Vec<Vec<f64>>,
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
        let bins = size / 2 + 1;
        let window = config.window.coefficients(size, true);
        let rate = input.rate_hz;
        let sum_w: f64 = window.iter().sum();
        let sum_w2: f64 = window.iter().map(|w| w * w).sum();
        let scale = (0..bins)
            .map(|k| {
                // Single-sided: every bin but DC and (for even sizes) Nyquist holds both halves.
                let one_sided = if k == 0 || (size % 2 == 0 && k == bins - 1) {
                    1.0
                } else {
                    2.0
                };
                match config.output {
                    SpectrumOutput::Magnitude => one_sided / sum_w,
                    SpectrumOutput::Psd => one_sided / (rate * sum_w2),
                }
            })
            .collect();
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(size);
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
            fft_in: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            bins_scratch: vec![0.0; bins],
            fft,
            size,
            hop,
            bins,
            output: config.output,
            window,
            scale,
            pending: vec![Vec::with_capacity(size); channels],
            pending_ts: Vec::with_capacity(size),
            item,
            schema: output_schema(fields, rate / hop as f64),
            leading: LeadingColumns::new(),
            pool: BufferPool::new(2 * channels),
            nulls: vec![Vec::new(); channels],
            input: input.clone(),
        })
    }

    /// Bins per spectrum (`size / 2 + 1`).
    pub fn bins(&self) -> usize {
        self.bins
    }

    /// Samples between window starts.
    pub fn hop(&self) -> usize {
        self.hop
    }

    /// Windows `logical[start..start + size]` (pending then `x`) into `fft_in` and transforms it.
    fn transform(&mut self, pending: &[f64], x: &[f64], start: usize) {
        let size = self.size;
        let plen = pending.len();
        let split = plen.saturating_sub(start).min(size);
        let (win_a, win_b) = self.window.split_at(split);
        let (in_a, in_b) = self.fft_in.split_at_mut(split);
        if split > 0 {
            let src = &pending[start..start + split];
            for ((d, s), w) in in_a.iter_mut().zip(src).zip(win_a) {
                *d = s * w;
            }
        }
        let from = start + split - plen;
        let src = &x[from..from + (size - split)];
        for ((d, s), w) in in_b.iter_mut().zip(src).zip(win_b) {
            *d = s * w;
        }
        // Lengths come from the plan itself, so the transform cannot fail.
        let _ =
            self.fft
                .process_with_scratch(&mut self.fft_in, &mut self.spectrum, &mut self.scratch);
    }
}

impl Stage for FftStage {
    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, input: &DataBatch, out: &mut Vec<RecordBatch>) -> Result<(), StageError> {
        let batch = &input.batch;
        let n = batch.num_rows();
        let ts = self.input.timestamps(batch)?;
        let mut nulls = std::mem::take(&mut self.nulls);
        let mut values = Vec::with_capacity(nulls.len());
        let mut failed = None;
        for (i, scratch) in nulls.iter_mut().enumerate() {
            match self.input.values(batch, i, scratch) {
                Ok(v) => values.push(v),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            drop(values);
            self.nulls = nulls;
            return Err(e);
        }
        let plen = self.pending_ts.len();
        let total = plen + n;
        let windows = if total >= self.size {
            (total - self.size) / self.hop + 1
        } else {
            0
        };
        let consumed = windows * self.hop;
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(values.len() + 2);
        if windows > 0 {
            let mut t = self.leading.timestamps.take();
            t.extend((0..windows).map(|k| {
                let s = k * self.hop;
                if s < plen {
                    self.pending_ts[s]
                } else {
                    ts[s - plen]
                }
            }));
            columns.push(self.leading.timestamp_column(t));
            columns.push(self.leading.seq_column(windows));
        }
        let mut pending_all = std::mem::take(&mut self.pending);
        for (pending, x) in pending_all.iter_mut().zip(&values) {
            if windows > 0 {
                let mut spectra = self.pool.take();
                spectra.reserve(windows * self.bins);
                for k in 0..windows {
                    self.transform(pending, x, k * self.hop);
                    // Into an in-cache scratch first (a plain slice loop the compiler
                    // vectorises), then one copy into the output buffer.
                    let bins = &mut self.bins_scratch;
                    let pairs = bins.iter_mut().zip(&self.spectrum).zip(&self.scale);
                    match self.output {
                        SpectrumOutput::Magnitude => {
                            for ((d, c), s) in pairs {
                                *d = (c.re * c.re + c.im * c.im).sqrt() * s;
                            }
                        }
                        SpectrumOutput::Psd => {
                            for ((d, c), s) in pairs {
                                *d = (c.re * c.re + c.im * c.im) * s;
                            }
                        }
                    }
                    spectra.extend_from_slice(bins);
                }
                let values = Arc::new(Float64Array::new(spectra.into_scalar_buffer(), None));
                columns.push(Arc::new(FixedSizeListArray::new(
                    self.item.clone(),
                    self.bins as i32,
                    values,
                    None,
                )));
            }
            keep_tail(pending, x, consumed);
        }
        keep_tail(&mut self.pending_ts, ts, consumed);
        self.pending = pending_all;
        drop(values);
        self.nulls = nulls;
        if windows > 0 {
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

/// Keeps `(pending ++ x)[consumed..]` in `pending`.
fn keep_tail<T: Copy>(pending: &mut Vec<T>, x: &[T], consumed: usize) {
    let plen = pending.len();
    if consumed >= plen {
        pending.clear();
        pending.extend_from_slice(&x[consumed - plen..]);
    } else {
        pending.drain(..consumed);
        pending.extend_from_slice(x);
    }
}
