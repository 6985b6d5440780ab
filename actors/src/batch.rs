//! The one data type of the data plane: a batch of rows of one stream, and its schema.
//!
//! Every stream has the same leading columns, `timestamp` (nanoseconds since the Unix epoch,
//! UTC) and `seq` (contiguous per stream from 0), followed by one column per channel. Channel
//! columns of acquired data are `Float64` with the channel's unit in the field metadata under
//! [`UNIT_METADATA_KEY`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use actix::Message;
use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::budget::Reservation;

/// Name of the timestamp column, present in every stream.
pub const TIMESTAMP_COLUMN: &str = "timestamp";
/// Name of the sequence-number column, present in every stream.
pub const SEQ_COLUMN: &str = "seq";
/// Field metadata key that carries a channel's physical unit.
pub const UNIT_METADATA_KEY: &str = "unit";

/// Schema metadata key that carries a stream's nominal sample rate in Hz, where it has one.
pub const RATE_METADATA_KEY: &str = "rate_hz";

/// A stream's name, shared cheaply between actors and reports.
pub type StreamId = Arc<str>;

/// One channel of a stream: its column name and physical unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelSpec {
    /// Column name in the batch (unique within the stream).
    pub name: String,
    /// Physical unit, e.g. `"V"`; written into the field metadata.
    pub unit: String,
}

impl ChannelSpec {
    /// A channel with a name and a unit.
    pub fn new(name: impl Into<String>, unit: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            unit: unit.into(),
        }
    }
}

/// The `timestamp` field: nanoseconds, UTC, never null.
pub fn timestamp_field() -> Field {
    Field::new(
        TIMESTAMP_COLUMN,
        DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        false,
    )
}

/// The `seq` field: UInt64, never null.
pub fn seq_field() -> Field {
    Field::new(SEQ_COLUMN, DataType::UInt64, false)
}

/// A nullable Float64 channel field carrying its unit in the field metadata.
///
/// Nullable because an instrument that fails to answer records a null, never a made-up number.
pub fn channel_field(channel: &ChannelSpec) -> Field {
    Field::new(&channel.name, DataType::Float64, true).with_metadata(HashMap::from([(
        UNIT_METADATA_KEY.to_string(),
        channel.unit.clone(),
    )]))
}

/// The schema of an acquired stream: `timestamp`, `seq`, then one Float64 column per channel.
pub fn stream_schema(channels: &[ChannelSpec]) -> SchemaRef {
    let mut fields = Vec::with_capacity(channels.len() + 2);
    fields.push(timestamp_field());
    fields.push(seq_field());
    fields.extend(channels.iter().map(channel_field));
    Arc::new(Schema::new(fields))
}

/// The schema of a fixed-rate stream: [`stream_schema`] plus its rate under [`RATE_METADATA_KEY`].
pub fn stream_schema_with_rate(channels: &[ChannelSpec], rate_hz: f64) -> SchemaRef {
    let schema = Arc::unwrap_or_clone(stream_schema(channels));
    Arc::new(schema.with_metadata(HashMap::from([(
        RATE_METADATA_KEY.to_string(),
        rate_hz.to_string(),
    )])))
}

/// The nominal sample rate of a stream, if its schema carries one that is finite and positive.
pub fn schema_rate_hz(schema: &Schema) -> Option<f64> {
    schema
        .metadata()
        .get(RATE_METADATA_KEY)?
        .parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && *r > 0.0)
}

/// `schema` with its rate set under [`RATE_METADATA_KEY`], other metadata kept.
pub fn with_rate(schema: &Schema, rate_hz: f64) -> SchemaRef {
    let mut metadata = schema.metadata().clone();
    metadata.insert(RATE_METADATA_KEY.to_string(), rate_hz.to_string());
    Arc::new(schema.clone().with_metadata(metadata))
}

/// The unit of a field, if it carries one.
pub fn field_unit(field: &Field) -> Option<&str> {
    field.metadata().get(UNIT_METADATA_KEY).map(String::as_str)
}

/// A batch of consecutive rows of one stream.
///
/// Cloning is cheap: the rows sit behind an [`Arc`], so one batch fanned out to several
/// consumers is shared, never copied. `Debug` prints the shape, not the data.
#[derive(Clone)]
pub struct DataBatch {
    /// The stream the rows belong to (an instrument's or a stage's name).
    pub stream: StreamId,
    /// `seq` of the first row; the rows carry `first_seq..first_seq + rows()`.
    pub first_seq: u64,
    /// The rows.
    pub batch: Arc<RecordBatch>,
    /// The run's memory held by these rows, given back when the last clone is dropped.
    memory: Option<Arc<Reservation>>,
}

impl DataBatch {
    /// Wraps a record batch whose first row has sequence number `first_seq`.
    pub fn new(stream: StreamId, first_seq: u64, batch: RecordBatch) -> Self {
        Self {
            stream,
            first_seq,
            batch: Arc::new(batch),
            memory: None,
        }
    }

    /// The same batch, holding `memory` of the run's budget until its last clone is dropped.
    pub fn holding(mut self, memory: Reservation) -> Self {
        self.memory = Some(Arc::new(memory));
        self
    }

    /// Bytes of the run's memory budget this batch holds (0 if none).
    pub fn held_bytes(&self) -> u64 {
        self.memory.as_ref().map_or(0, |m| m.bytes())
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.batch.num_rows()
    }
}

impl fmt::Debug for DataBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataBatch")
            .field("stream", &self.stream)
            .field("first_seq", &self.first_seq)
            .field("rows", &self.batch.num_rows())
            .field("columns", &self.batch.num_columns())
            .finish()
    }
}

/// What travels on a link: data, then exactly one end marker.
///
/// Data and the end marker share one channel so that the end can never overtake data.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub enum StreamEvent {
    /// Rows of a stream.
    Data(DataBatch),
    /// The stream has ended: no more data will follow on this link.
    End(EndOfStream),
}

/// The end of one stream, with the totals its producer reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndOfStream {
    /// The stream that ended.
    pub stream: StreamId,
    /// Total rows the producer emitted (the next `seq` it would have used).
    pub rows: u64,
}

impl StreamEvent {
    /// The stream this event belongs to.
    pub fn stream(&self) -> &StreamId {
        match self {
            StreamEvent::Data(b) => &b.stream,
            StreamEvent::End(e) => &e.stream,
        }
    }

    /// Number of rows carried (0 for the end marker).
    pub fn rows(&self) -> usize {
        match self {
            StreamEvent::Data(b) => b.rows(),
            StreamEvent::End(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_has_timestamp_seq_then_channels_with_units() {
        let schema = stream_schema(&[ChannelSpec::new("ch0", "V"), ChannelSpec::new("t", "K")]);
        let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["timestamp", "seq", "ch0", "t"]);
        assert_eq!(field_unit(schema.field(2)), Some("V"));
        assert_eq!(field_unit(schema.field(3)), Some("K"));
        assert_eq!(field_unit(schema.field(0)), None);
        assert_eq!(
            schema.field(0).data_type(),
            &DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
        );
    }

    #[test]
    fn rate_travels_in_schema_metadata() {
        let schema = stream_schema_with_rate(&[ChannelSpec::new("x", "V")], 1000.0);
        assert_eq!(schema_rate_hz(&schema), Some(1000.0));
        assert_eq!(schema_rate_hz(&stream_schema(&[])), None);
        let zero = with_rate(&stream_schema(&[]), 0.0);
        assert_eq!(schema_rate_hz(&zero), None, "a zero rate is no rate");
        assert_eq!(schema_rate_hz(&with_rate(&schema, 5.0)), Some(5.0));
    }

    #[test]
    fn debug_prints_shape_not_data() {
        let schema = stream_schema(&[ChannelSpec::new("x", "V")]);
        let batch = RecordBatch::new_empty(schema);
        let text = format!("{:?}", DataBatch::new("s".into(), 7, batch));
        assert!(text.contains("first_seq: 7"), "{text}");
        assert!(text.contains("rows: 0"), "{text}");
    }
}
