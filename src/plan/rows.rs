//! The `primary` stream's columns ([`PrimaryLayout`]) and the rows a plan buffers before it
//! emits them as one batch ([`RowBuffer`]).

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Float64Array, RecordBatch, TimestampNanosecondArray, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use ensemble_actors::batch::{ChannelSpec, stream_schema};
use ensemble_actors::instruments::sim::SIM_SETTABLE;
use ensemble_actors::outputs::Outputs;
use tokio::time::Instant;

use super::steps::PointPlan;
use crate::config::{InstrumentKind, InstrumentSpec};

/// Name of the stream a point plan writes.
pub const PRIMARY_STREAM: &str = "primary";
/// The `primary` column that marks the first row taken after a pause or suspension.
pub const RESUMED_COLUMN: &str = "resumed";
/// The `primary` column numbering the repetitions of a `repeat`ed plan (from 0).
pub const REPEAT_COLUMN: &str = "repeat";

/// The columns of the `primary` stream.
#[derive(Debug, Clone)]
pub struct PrimaryLayout {
    /// `timestamp`, `seq`, one column per setpoint, one per detector channel, then
    /// `resumed` (and `repeat` for a repeated plan).
    pub schema: SchemaRef,
    /// The Float64 columns after `timestamp` and `seq`, with units.
    pub channels: Vec<ChannelSpec>,
    /// Channels per detector, in detector order.
    pub detector_widths: Vec<usize>,
    /// Whether the plan is repeated (so there is a `repeat` column).
    pub repeated: bool,
}

impl PrimaryLayout {
    /// The layout for `plan` over the compiled `instruments`: setpoints as `INSTRUMENT.PARAM`
    /// (the unit of a sim's `offset` and `amplitude` is the instrument's, of `frequency_hz`
    /// `Hz`; SCPI parameters have none), then each detector's channels as
    /// `INSTRUMENT.CHANNEL`, then `resumed` (Boolean: the first row after a pause or
    /// suspension), then `repeat` (UInt64) if the plan repeats.
    pub fn new(plan: &PointPlan, instruments: &[InstrumentSpec]) -> Self {
        let find = |name: &str| instruments.iter().find(|i| i.name == name);
        let mut channels = Vec::new();
        for axis in &plan.axes {
            let unit = match find(&axis.instrument).map(|i| &i.kind) {
                Some(InstrumentKind::Sim(_)) if axis.param == SIM_SETTABLE[2] => "Hz".to_string(),
                Some(InstrumentKind::Sim(c)) => c.unit.clone(),
                _ => String::new(),
            };
            channels.push(ChannelSpec::new(axis.column(), unit));
        }
        let mut detector_widths = Vec::new();
        for name in &plan.detectors {
            let own = find(name).map_or_else(Vec::new, |i| i.kind.channels());
            detector_widths.push(own.len());
            channels.extend(
                own.into_iter()
                    .map(|c| ChannelSpec::new(format!("{name}.{}", c.name), c.unit)),
            );
        }
        Self::from_channels(channels, detector_widths, plan.repeat.is_some())
    }

    /// A layout from its Float64 channels (setpoints, then detector channels).
    pub fn from_channels(
        channels: Vec<ChannelSpec>,
        detector_widths: Vec<usize>,
        repeated: bool,
    ) -> Self {
        let base = stream_schema(&channels);
        let mut fields: Vec<Field> = base.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(RESUMED_COLUMN, DataType::Boolean, false));
        if repeated {
            fields.push(Field::new(REPEAT_COLUMN, DataType::UInt64, false));
        }
        Self {
            schema: Arc::new(Schema::new_with_metadata(fields, base.metadata().clone())),
            channels,
            detector_widths,
            repeated,
        }
    }
}

/// Rows buffered for the next batch: column vectors reused between batches.
pub struct RowBuffer {
    layout: PrimaryLayout,
    outputs: Outputs,
    timestamps: Vec<i64>,
    columns: Vec<Vec<Option<f64>>>,
    resumed: Vec<bool>,
    repeat: Vec<u64>,
    next_seq: u64,
    /// When the oldest buffered row was pushed.
    oldest: Option<Instant>,
}

impl RowBuffer {
    /// An empty buffer for rows of `layout`, emitted to `outputs`, with room for `rows`.
    pub fn new(layout: PrimaryLayout, outputs: Outputs, rows: usize) -> Self {
        let width = layout.channels.len();
        Self {
            layout,
            outputs,
            timestamps: Vec::with_capacity(rows),
            columns: vec![Vec::with_capacity(rows); width],
            resumed: Vec::with_capacity(rows),
            repeat: Vec::with_capacity(rows),
            next_seq: 0,
            oldest: None,
        }
    }

    /// Rows buffered.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// Whether no row is buffered.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// When the oldest buffered row was pushed.
    pub fn oldest(&self) -> Option<Instant> {
        self.oldest
    }

    /// Buffers one row: the reached setpoints, then per detector channel `(sum, count)` of its
    /// readings (written as the mean, null if none gave a value).
    pub fn push(
        &mut self,
        timestamp: i64,
        reached: &[Option<f64>],
        sums: &[(f64, u32)],
        resumed: bool,
        repetition: u64,
    ) {
        self.oldest.get_or_insert_with(Instant::now);
        self.timestamps.push(timestamp);
        let values = reached.iter().copied().chain(
            sums.iter()
                .map(|&(sum, n)| (n > 0).then(|| sum / f64::from(n))),
        );
        for (column, v) in self.columns.iter_mut().zip(values) {
            column.push(v);
        }
        self.resumed.push(resumed);
        self.repeat.push(repetition);
    }

    /// Emits the buffered rows as one batch (waiting while a lossless consumer is full).
    pub async fn flush(&mut self) {
        self.oldest = None;
        let rows = self.timestamps.len();
        if rows == 0 {
            return;
        }
        let first = self.next_seq;
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len() + 4);
        arrays.push(Arc::new(
            TimestampNanosecondArray::from(std::mem::take(&mut self.timestamps))
                .with_timezone("UTC"),
        ));
        arrays.push(Arc::new(UInt64Array::from_iter_values(
            first..first + rows as u64,
        )));
        for column in &mut self.columns {
            arrays.push(Arc::new(Float64Array::from(std::mem::take(column))));
        }
        arrays.push(Arc::new(BooleanArray::from(std::mem::take(
            &mut self.resumed,
        ))));
        let repeat = std::mem::take(&mut self.repeat);
        if self.layout.repeated {
            arrays.push(Arc::new(UInt64Array::from(repeat)));
        }
        self.next_seq += rows as u64;
        match RecordBatch::try_new(self.layout.schema.clone(), arrays) {
            Ok(batch) => self.outputs.emit(first, batch).await,
            // The columns are built from the layout's own channel list; this cannot happen.
            Err(e) => {
                tracing::error!(stream = PRIMARY_STREAM, error = %e, "Could not build a batch; rows lost.")
            }
        }
        let capacity = self.timestamps.capacity().max(rows);
        self.timestamps.reserve(capacity);
        for column in &mut self.columns {
            column.reserve(capacity);
        }
        self.resumed.reserve(capacity);
        self.repeat.reserve(capacity);
    }

    /// Emits what is buffered and ends the stream.
    pub async fn end(mut self) {
        self.flush().await;
        self.outputs.end().await;
    }
}
