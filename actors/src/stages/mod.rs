//! Processing stages (`[stages.NAME]`): FFT, FIR filter, decimation and windowed statistics.
//!
//! A stage consumes one upstream stream (an instrument's or another stage's) and produces a
//! stream of its own. Each stage is a plain struct implementing [`Stage`] (no actix inside), and
//! [`StageActor`] is the thin actix shell that feeds it [`StreamEvent`](crate::batch::StreamEvent)s
//! and emits what it returns.
//!
//! Layout: [`StageActor`] (`actor.rs`) is the one actor shell for every stage type, generic over
//! the stage, so a stage's folder (`fft/`, `fir/`, `decimate/`, `stats/`) holds only its
//! `config.rs` (the serde struct), `stage.rs` (the plain struct) with any kernels, and `mod.rs`
//! (re-exports and tests): no per-type actor.
//!
//! Building a stage takes three steps, the same for every type:
//! 1. [`InputSelection::parse`] reads the stage's `inputs` (`"dmm"` takes every channel,
//!    `"dmm.ch0"` one);
//! 2. [`StageInput::from_schema`] resolves them against the upstream stream's schema: names,
//!    units and the sample rate (schema metadata [`RATE_METADATA_KEY`]);
//! 3. `XxxStage::new(&config, &input)` checks the configuration against the input and plans the
//!    work (FFT plans, filter taps, scratch buffers): nothing is allocated per sample afterwards.
//!
//! # Output streams
//!
//! Every output starts with `timestamp` and `seq`; `seq` is the stage's own contiguous counter
//! from 0. The schema metadata carries the output rate under [`RATE_METADATA_KEY`], and every
//! channel field carries its unit. Null input samples are read as NaN.
//!
//! # Limits (v1)
//!
//! - All inputs of one stage come from one upstream stream ([`StageError::SeveralStreams`]).
//! - Gaps in the input (batches dropped on a best-effort link) are not detected: a stage
//!   processes the rows it receives as if they were contiguous.

mod actor;
mod carry;
pub mod decimate;
mod fault;
pub mod fft;
pub mod fir;
pub mod stats;
mod window;

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampNanosecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

pub use actor::StageActor;
pub use fault::Faulty;
pub use window::Window;

pub use crate::batch::RATE_METADATA_KEY;
use crate::batch::{
    DataBatch, SEQ_COLUMN, TIMESTAMP_COLUMN, UNIT_METADATA_KEY, field_unit, schema_rate_hz,
    seq_field, timestamp_field,
};

/// A processing stage: a plain, synchronous transform of one stream into another.
///
/// The contract, for the actor that drives it:
/// - [`process`](Stage::process) is called once per input batch, in stream order. It appends
///   zero or more output batches to `out` (never clears it); their rows continue the output
///   stream without gaps. `Err` means the input batch did not match the input the stage was
///   built for; nothing was appended and the stage's state is unchanged, so the caller may log
///   and skip the batch or fail the component.
/// - [`flush`](Stage::flush) is called once, after the last input batch; the stage appends what
///   it still holds and is not used afterwards.
pub trait Stage: Unpin + 'static {
    /// The schema of every batch the stage produces.
    fn output_schema(&self) -> SchemaRef;

    /// Processes one input batch, appending output batches to `out`.
    fn process(&mut self, input: &DataBatch, out: &mut Vec<RecordBatch>) -> Result<(), StageError>;

    /// Appends whatever the stage still holds at the end of the stream.
    fn flush(&mut self, out: &mut Vec<RecordBatch>) -> Result<(), StageError>;

    /// Makes `seq` the `seq` of the next output row. A stage built to replace a failed one calls
    /// this before its first batch, so that its stream continues without a repeated `seq`.
    fn continue_at(&mut self, seq: u64);
}

/// Why a stage cannot be built, or cannot process a batch. Each variant names what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StageError {
    /// The stage has no input.
    #[error("a stage needs at least one input")]
    NoInputs,
    /// The inputs name more than one upstream stream.
    #[error("all inputs of a stage must come from one stream, got {}", streams.join(", "))]
    SeveralStreams {
        /// The distinct streams named, in order.
        streams: Vec<String>,
    },
    /// An input names a channel the upstream stream does not have.
    #[error("stream `{stream}` has no channel `{channel}` (it has: {})", available.join(", "))]
    UnknownChannel {
        /// The upstream stream.
        stream: String,
        /// The channel asked for.
        channel: String,
        /// The channels the stream has.
        available: Vec<String>,
    },
    /// A selected channel is not a Float64 column.
    #[error("channel `{channel}` of stream `{stream}` is {data_type}, but stages need Float64")]
    NotFloat64 {
        /// The upstream stream.
        stream: String,
        /// The channel.
        channel: String,
        /// Its actual type.
        data_type: DataType,
    },
    /// The upstream schema has no usable `rate_hz`.
    #[error("stream `{stream}` has no positive `{RATE_METADATA_KEY}` in its schema metadata")]
    MissingRate {
        /// The upstream stream.
        stream: String,
    },
    /// A configuration value is invalid (for this input).
    #[error("`{key}` {message}")]
    Config {
        /// The key, e.g. `design.cutoff_hz`.
        key: &'static str,
        /// What is wrong, with the value.
        message: String,
    },
    /// An input batch lacks a column the stage reads, or has it with the wrong type.
    #[error("input batch of stream `{stream}`: column `{column}` is missing or not {expected}")]
    BadBatch {
        /// The stream of the batch.
        stream: String,
        /// The column.
        column: String,
        /// The type expected.
        expected: &'static str,
    },
    /// A `fault` table made the stage fail on purpose (a testing aid, see [`Faulty`]).
    #[error("injected fault after {rows} input rows")]
    InjectedFault {
        /// Input rows the stage processed in this start before failing.
        rows: u64,
    },
}

impl StageError {
    /// The first problem `check()` reported, as an error (`None` when there is none).
    pub fn from_check(problems: Vec<(&'static str, String)>) -> Option<Self> {
        problems
            .into_iter()
            .next()
            .map(|(key, message)| StageError::Config { key, message })
    }
}

/// Which channels of which stream a stage's `inputs` select.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSelection {
    /// The one upstream stream.
    pub stream: String,
    /// `None`: every channel; otherwise these, in the order given.
    pub channels: Option<Vec<String>>,
}

impl InputSelection {
    /// Parses `inputs`: `"dmm"` selects every channel of `dmm`, `"dmm.ch0"` the channel `ch0`
    /// (the stream name ends at the first dot). All entries must name the same stream; a bare
    /// stream name wins over channel picks of the same stream.
    pub fn parse<S: AsRef<str>>(inputs: &[S]) -> Result<Self, StageError> {
        let mut streams: Vec<String> = Vec::new();
        let mut channels = Some(Vec::new());
        for input in inputs {
            let input = input.as_ref();
            let (stream, channel) = match input.split_once('.') {
                Some((s, c)) => (s, Some(c)),
                None => (input, None),
            };
            if !streams.iter().any(|s| s == stream) {
                streams.push(stream.to_string());
            }
            match (channel, channels.as_mut()) {
                (None, _) => channels = None,
                (Some(c), Some(list)) if !list.iter().any(|x| x == c) => list.push(c.to_string()),
                _ => {}
            }
        }
        match streams.len() {
            0 => Err(StageError::NoInputs),
            1 => Ok(Self {
                stream: streams.remove(0),
                channels,
            }),
            _ => Err(StageError::SeveralStreams { streams }),
        }
    }
}

/// One selected input channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputChannel {
    /// Column name in the upstream stream (and, for most stages, in the output).
    pub name: String,
    /// Physical unit (empty when the upstream field carries none).
    pub unit: String,
    /// Index of the column in the upstream schema.
    pub column: usize,
}

/// What a stage reads: the upstream stream, its selected channels and its sample rate.
#[derive(Debug, Clone, PartialEq)]
pub struct StageInput {
    /// The upstream stream's name.
    pub stream: String,
    /// The selected channels, in output order.
    pub channels: Vec<InputChannel>,
    /// Rows per second of the upstream stream.
    pub rate_hz: f64,
}

impl StageInput {
    /// Resolves a selection against the upstream stream's schema.
    ///
    /// Channels are the schema's Float64 columns after `timestamp` and `seq`; the rate comes from
    /// the schema metadata key [`RATE_METADATA_KEY`].
    pub fn from_schema(selection: &InputSelection, schema: &Schema) -> Result<Self, StageError> {
        let stream = selection.stream.clone();
        let available: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|n| n != TIMESTAMP_COLUMN && n != SEQ_COLUMN)
            .collect();
        let names: Vec<String> = match &selection.channels {
            Some(list) => list.clone(),
            // The whole stream, without flag and counter columns (a plan's `resumed` and
            // `repeat`), which are not measurements.
            None => schema
                .fields()
                .iter()
                .filter(|f| {
                    available.contains(f.name())
                        && !matches!(f.data_type(), DataType::Boolean | DataType::UInt64)
                })
                .map(|f| f.name().clone())
                .collect(),
        };
        if names.is_empty() {
            return Err(StageError::NoInputs);
        }
        let mut channels = Vec::with_capacity(names.len());
        for name in names {
            let column = match schema.index_of(&name) {
                Ok(i) if available.contains(&name) => i,
                _ => {
                    return Err(StageError::UnknownChannel {
                        stream,
                        channel: name,
                        available,
                    });
                }
            };
            let field = schema.field(column);
            if field.data_type() != &DataType::Float64 {
                return Err(StageError::NotFloat64 {
                    stream,
                    channel: name,
                    data_type: field.data_type().clone(),
                });
            }
            channels.push(InputChannel {
                unit: field_unit(field).unwrap_or_default().to_string(),
                name,
                column,
            });
        }
        let rate_hz = schema_rate_hz(schema).ok_or(StageError::MissingRate {
            stream: stream.clone(),
        })?;
        Ok(Self {
            stream,
            channels,
            rate_hz,
        })
    }

    /// An input built directly (for tests and benches): channels are columns `2..`.
    pub fn new(stream: &str, channels: &[(&str, &str)], rate_hz: f64) -> Self {
        Self {
            stream: stream.to_string(),
            channels: channels
                .iter()
                .enumerate()
                .map(|(i, (name, unit))| InputChannel {
                    name: name.to_string(),
                    unit: unit.to_string(),
                    column: i + 2,
                })
                .collect(),
            rate_hz,
        }
    }

    /// Rejects a non-finite or non-positive rate.
    fn check_rate(&self) -> Result<(), StageError> {
        if self.rate_hz.is_finite() && self.rate_hz > 0.0 {
            Ok(())
        } else {
            Err(StageError::MissingRate {
                stream: self.stream.clone(),
            })
        }
    }

    /// The `timestamp` array of a batch of this input.
    fn timestamp_array<'a>(
        &self,
        batch: &'a RecordBatch,
    ) -> Result<&'a arrow_array::TimestampNanosecondArray, StageError> {
        batch
            .column_by_name(TIMESTAMP_COLUMN)
            .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
            .ok_or_else(|| StageError::BadBatch {
                stream: self.stream.clone(),
                column: TIMESTAMP_COLUMN.to_string(),
                expected: "Timestamp(ns)",
            })
    }

    /// The timestamps of a batch of this input, as raw nanoseconds.
    fn timestamps<'a>(&self, batch: &'a RecordBatch) -> Result<&'a [i64], StageError> {
        self.timestamp_array(batch).map(|a| &a.values()[..])
    }

    /// The `timestamp` column of a batch of this input, shared.
    fn timestamp_column(&self, batch: &RecordBatch) -> Result<arrow_array::ArrayRef, StageError> {
        self.timestamps(batch)?;
        batch
            .column_by_name(TIMESTAMP_COLUMN)
            .cloned()
            .ok_or_else(|| StageError::BadBatch {
                stream: self.stream.clone(),
                column: TIMESTAMP_COLUMN.to_string(),
                expected: "Timestamp(ns)",
            })
    }

    /// Channel `index`'s column in a batch.
    fn column<'a>(
        &self,
        batch: &'a RecordBatch,
        index: usize,
    ) -> Result<&'a arrow_array::Float64Array, StageError> {
        let ch = &self.channels[index];
        batch
            .columns()
            .get(ch.column)
            .filter(|_| batch.schema_ref().field(ch.column).name() == &ch.name)
            .and_then(|c| c.as_primitive_opt::<Float64Type>())
            .ok_or_else(|| StageError::BadBatch {
                stream: self.stream.clone(),
                column: ch.name.clone(),
                expected: "Float64",
            })
    }

    /// Channel `index`'s values in a batch; nulls are replaced by NaN in `scratch`.
    fn values<'a>(
        &self,
        batch: &'a RecordBatch,
        index: usize,
        scratch: &'a mut Vec<f64>,
    ) -> Result<&'a [f64], StageError> {
        let array = self.column(batch, index)?;
        if array.null_count() == 0 {
            return Ok(&array.values()[..]);
        }
        scratch.clear();
        scratch.extend(array.iter().map(|v: Option<f64>| v.unwrap_or(f64::NAN)));
        Ok(&scratch[..])
    }

    /// Channel `index`'s values in a batch as a shared buffer: the batch's own (no copy), or,
    /// when it has nulls, a buffer from `pool` with NaN in their place.
    fn values_buffer(
        &self,
        batch: &RecordBatch,
        index: usize,
        pool: &crate::pool::BufferPool<f64>,
    ) -> Result<arrow_buffer::ScalarBuffer<f64>, StageError> {
        let array = self.column(batch, index)?;
        if array.null_count() == 0 {
            return Ok(array.values().clone());
        }
        let mut v = pool.take();
        v.extend(array.iter().map(|v: Option<f64>| v.unwrap_or(f64::NAN)));
        Ok(v.into_scalar_buffer())
    }

    /// The timestamps of a batch of this input as a shared buffer (no copy).
    fn timestamp_buffer(
        &self,
        batch: &RecordBatch,
    ) -> Result<arrow_buffer::ScalarBuffer<i64>, StageError> {
        self.timestamp_array(batch).map(|a| a.values().clone())
    }
}

/// The output schema of a stage: `timestamp`, `seq`, the given channel fields, and the rate.
fn output_schema(channels: Vec<Field>, rate_hz: f64) -> SchemaRef {
    let mut fields = Vec::with_capacity(channels.len() + 2);
    fields.push(timestamp_field());
    fields.push(seq_field());
    fields.extend(channels);
    let metadata = HashMap::from([(RATE_METADATA_KEY.to_string(), rate_hz.to_string())]);
    Arc::new(Schema::new(fields).with_metadata(metadata))
}

/// A nullable Float64 field with a unit (and extra metadata).
fn unit_field(name: &str, unit: &str, extra: &[(&str, String)]) -> Field {
    let mut metadata = HashMap::from([(UNIT_METADATA_KEY.to_string(), unit.to_string())]);
    for (k, v) in extra {
        metadata.insert((*k).to_string(), v.clone());
    }
    Field::new(name, DataType::Float64, true).with_metadata(metadata)
}

/// Builds the `timestamp` and `seq` columns of a stage's output from pooled buffers, and keeps
/// the output's `seq` counter.
struct LeadingColumns {
    /// Buffers of output timestamps (for stages that pick timestamps, not pass them through).
    timestamps: crate::pool::BufferPool<i64>,
    /// Buffers of output `seq` values.
    seqs: crate::pool::BufferPool<u64>,
    /// The timezone of `timestamp`, allocated once.
    tz: Arc<str>,
    /// `seq` of the next output row.
    next_seq: u64,
}

impl LeadingColumns {
    fn new() -> Self {
        Self {
            timestamps: crate::pool::BufferPool::new(4),
            seqs: crate::pool::BufferPool::new(4),
            tz: Arc::from("UTC"),
            next_seq: 0,
        }
    }

    /// The next `rows` values of `seq`.
    fn seq_column(&mut self, rows: usize) -> arrow_array::ArrayRef {
        let mut v = self.seqs.take();
        v.extend(self.next_seq..self.next_seq + rows as u64);
        self.next_seq += rows as u64;
        Arc::new(arrow_array::UInt64Array::new(v.into_scalar_buffer(), None))
    }

    /// A timestamp column from pooled values.
    fn timestamp_column(&self, values: crate::pool::PooledVec<i64>) -> arrow_array::ArrayRef {
        Arc::new(
            arrow_array::TimestampNanosecondArray::new(values.into_scalar_buffer(), None)
                .with_timezone(self.tz.clone()),
        )
    }
}

/// A Float64 column from pooled values.
fn f64_column(values: crate::pool::PooledVec<f64>) -> arrow_array::ArrayRef {
    Arc::new(arrow_array::Float64Array::new(
        values.into_scalar_buffer(),
        None,
    ))
}

/// Assembles an output batch; the columns are built by the stage from its own schema.
fn make_batch(
    schema: &SchemaRef,
    columns: Vec<arrow_array::ArrayRef>,
) -> Result<RecordBatch, StageError> {
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| StageError::Config {
        key: "output",
        message: format!("internal error: output batch does not match its schema: {e}"),
    })
}

#[cfg(test)]
pub(crate) mod test_support;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{ChannelSpec, stream_schema, with_rate};

    #[test]
    fn selection_takes_all_or_named_channels_of_one_stream() {
        let all = InputSelection::parse(&["dmm"]).expect("valid");
        assert_eq!(all.channels, None);
        let some = InputSelection::parse(&["dmm.ch1", "dmm.ch0"]).expect("valid");
        assert_eq!(some.stream, "dmm");
        assert_eq!(some.channels, Some(vec!["ch1".into(), "ch0".into()]));
        assert_eq!(
            InputSelection::parse(&["dmm.ch0", "scope"]),
            Err(StageError::SeveralStreams {
                streams: vec!["dmm".into(), "scope".into()]
            })
        );
        assert_eq!(
            InputSelection::parse::<&str>(&[]),
            Err(StageError::NoInputs)
        );
    }

    #[test]
    fn input_resolves_units_columns_and_rate() {
        let schema = stream_schema(&[ChannelSpec::new("a", "V"), ChannelSpec::new("b", "A")]);
        let schema = with_rate(&schema, 250.0);
        let sel = InputSelection::parse(&["dmm.b"]).expect("valid");
        let input = StageInput::from_schema(&sel, &schema).expect("resolves");
        assert_eq!(input.rate_hz, 250.0);
        assert_eq!(
            input.channels,
            vec![InputChannel {
                name: "b".into(),
                unit: "A".into(),
                column: 3
            }]
        );
        let all =
            StageInput::from_schema(&InputSelection::parse(&["dmm"]).expect("valid"), &schema)
                .expect("resolves");
        assert_eq!(all.channels.len(), 2);
        let err =
            StageInput::from_schema(&InputSelection::parse(&["dmm.zz"]).expect("valid"), &schema)
                .expect_err("unknown channel");
        assert_eq!(
            err.to_string(),
            "stream `dmm` has no channel `zz` (it has: a, b)"
        );
        let no_rate = stream_schema(&[ChannelSpec::new("a", "V")]);
        assert!(matches!(
            StageInput::from_schema(&sel, &no_rate),
            Err(StageError::UnknownChannel { .. })
        ));
        let sel_a = InputSelection::parse(&["dmm"]).expect("valid");
        assert_eq!(
            StageInput::from_schema(&sel_a, &no_rate),
            Err(StageError::MissingRate {
                stream: "dmm".into()
            })
        );
    }
}
