//! The format writers of `ensemble export`: each takes batches of one stream and writes them
//! to a byte sink as they come.
//!
//! Values: a null is an empty CSV field and a JSON `null`; NaN and infinities are written as
//! `NaN`, `inf` and `-inf` (in NDJSON as those strings, JSON having no such numbers). Arrow and
//! Parquet keep them as they are.

use std::io::Write;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampNanosecondType, UInt64Type};
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use ensemble_actors::batch::{TIMESTAMP_COLUMN, UNIT_METADATA_KEY};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// Comma-separated text with a header row (and optionally a unit row).
    Csv,
    /// One JSON object per line.
    Ndjson,
    /// Arrow IPC file (Feather v2).
    Arrow,
    /// Parquet (zstd).
    Parquet,
}

impl ExportFormat {
    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Ndjson => "ndjson",
            Self::Arrow => "arrow",
            Self::Parquet => "parquet",
        }
    }
}

/// How times are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TimeFormat {
    /// RFC 3339 UTC with nanoseconds (`2026-12-02T17:12:34.123456789Z`); Arrow and Parquet
    /// keep their timestamp type.
    #[default]
    Rfc3339,
    /// Integer nanoseconds since the Unix epoch.
    Ns,
    /// Seconds (float) since the run started.
    #[value(name = "s-relative")]
    SRelative,
}

/// Writes one stream's batches.
pub trait BatchWriter {
    /// Writes a batch (its schema is the first batch's).
    fn write(&mut self, batch: &RecordBatch) -> std::io::Result<()>;
    /// Finishes the output (footers, flush).
    fn finish(self: Box<Self>) -> std::io::Result<()>;
}

/// The writer for `format`, writing to `out`. `t0` is the run start for
/// [`TimeFormat::SRelative`].
pub fn writer_for(
    format: ExportFormat,
    time: TimeFormat,
    t0: i64,
    unit_row: bool,
    schema: SchemaRef,
    out: Box<dyn Write + Send>,
) -> std::io::Result<Box<dyn BatchWriter>> {
    Ok(match format {
        ExportFormat::Csv => Box::new(TextWriter::new(out, time, t0, &schema, true, unit_row)?),
        ExportFormat::Ndjson => Box::new(TextWriter::new(out, time, t0, &schema, false, false)?),
        ExportFormat::Arrow => Box::new(ArrowIpc {
            inner: arrow_ipc::writer::FileWriter::try_new(out, &converted_schema(&schema, time))
                .map_err(std::io::Error::other)?,
            time,
            t0,
        }),
        ExportFormat::Parquet => {
            let props = parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::ZSTD(
                    parquet::basic::ZstdLevel::default(),
                ))
                .build();
            Box::new(ParquetOut {
                inner: parquet::arrow::ArrowWriter::try_new(
                    out,
                    Arc::new(converted_schema(&schema, time)),
                    Some(props),
                )
                .map_err(std::io::Error::other)?,
                time,
                t0,
            })
        }
    })
}

/// The schema after `time` is applied to the timestamp column.
fn converted_schema(schema: &Schema, time: TimeFormat) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match (f.name() == TIMESTAMP_COLUMN, time) {
            (true, TimeFormat::Ns) => f.as_ref().clone().with_data_type(DataType::Int64),
            (true, TimeFormat::SRelative) => f.as_ref().clone().with_data_type(DataType::Float64),
            _ => f.as_ref().clone(),
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// `batch` with `time` applied to its timestamp column.
fn convert(batch: &RecordBatch, time: TimeFormat, t0: i64) -> std::io::Result<RecordBatch> {
    if time == TimeFormat::Rfc3339 {
        return Ok(batch.clone());
    }
    let schema = Arc::new(converted_schema(batch.schema_ref(), time));
    let columns: Vec<ArrayRef> = batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .map(
            |(f, c)| match c.as_primitive_opt::<TimestampNanosecondType>() {
                Some(ts) if f.name() == TIMESTAMP_COLUMN => match time {
                    TimeFormat::Ns => {
                        Arc::new(Int64Array::new(ts.values().clone(), ts.nulls().cloned()))
                            as ArrayRef
                    }
                    _ => Arc::new(Float64Array::from_iter_values(
                        ts.values().iter().map(|&t| (t - t0) as f64 / 1e9),
                    )) as ArrayRef,
                },
                _ => c.clone(),
            },
        )
        .collect();
    RecordBatch::try_new(schema, columns).map_err(std::io::Error::other)
}

struct ArrowIpc {
    inner: arrow_ipc::writer::FileWriter<Box<dyn Write + Send>>,
    time: TimeFormat,
    t0: i64,
}

impl BatchWriter for ArrowIpc {
    fn write(&mut self, batch: &RecordBatch) -> std::io::Result<()> {
        let batch = convert(batch, self.time, self.t0)?;
        self.inner.write(&batch).map_err(std::io::Error::other)
    }
    fn finish(mut self: Box<Self>) -> std::io::Result<()> {
        self.inner.finish().map_err(std::io::Error::other)?;
        self.inner.get_mut().flush()
    }
}

struct ParquetOut {
    inner: parquet::arrow::ArrowWriter<Box<dyn Write + Send>>,
    time: TimeFormat,
    t0: i64,
}

impl BatchWriter for ParquetOut {
    fn write(&mut self, batch: &RecordBatch) -> std::io::Result<()> {
        let batch = convert(batch, self.time, self.t0)?;
        self.inner.write(&batch).map_err(std::io::Error::other)
    }
    fn finish(self: Box<Self>) -> std::io::Result<()> {
        let mut out = self.inner.into_inner().map_err(std::io::Error::other)?;
        out.flush()
    }
}

/// CSV and NDJSON: rows formatted by hand into a reused line buffer (no allocation per value).
struct TextWriter {
    out: Box<dyn Write + Send>,
    csv: bool,
    time: TimeFormat,
    t0: i64,
    names: Vec<String>,
    line: Vec<u8>,
    floats: zmij::Buffer,
    ints: itoa::Buffer,
    /// The `YYYY-MM-DDTHH:MM:SS` of the last whole second formatted, and that second.
    second: (i64, String),
}

impl TextWriter {
    fn new(
        mut out: Box<dyn Write + Send>,
        time: TimeFormat,
        t0: i64,
        schema: &Schema,
        csv: bool,
        unit_row: bool,
    ) -> std::io::Result<Self> {
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        if csv {
            let header: Vec<String> = names.iter().map(|n| csv_field(n)).collect();
            writeln!(out, "{}", header.join(","))?;
            if unit_row {
                let units: Vec<String> = schema
                    .fields()
                    .iter()
                    .map(|f| match (f.name() == TIMESTAMP_COLUMN, time) {
                        (true, TimeFormat::Rfc3339) => "UTC".to_string(),
                        (true, TimeFormat::Ns) => "ns".to_string(),
                        (true, TimeFormat::SRelative) => "s".to_string(),
                        _ => csv_field(
                            f.metadata()
                                .get(UNIT_METADATA_KEY)
                                .map_or("", String::as_str),
                        ),
                    })
                    .collect();
                writeln!(out, "{}", units.join(","))?;
            }
        }
        Ok(Self {
            out,
            csv,
            time,
            t0,
            names,
            line: Vec::with_capacity(256),
            floats: zmij::Buffer::new(),
            ints: itoa::Buffer::new(),
            second: (i64::MIN, String::new()),
        })
    }

    fn timestamp(&mut self, ns: i64) {
        match self.time {
            TimeFormat::Ns => self.line.extend_from_slice(self.ints.format(ns).as_bytes()),
            TimeFormat::SRelative => {
                let s = (ns - self.t0) as f64 / 1e9;
                self.line
                    .extend_from_slice(self.floats.format(s).as_bytes());
            }
            TimeFormat::Rfc3339 => {
                let (second, nanos) = (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
                if second != self.second.0 {
                    let t = chrono::DateTime::from_timestamp(second, 0).unwrap_or_default();
                    self.second = (second, t.format("%Y-%m-%dT%H:%M:%S").to_string());
                }
                if !self.csv {
                    self.line.push(b'"');
                }
                self.line.extend_from_slice(self.second.1.as_bytes());
                let digits = self.ints.format(nanos + 1_000_000_000).as_bytes();
                self.line.push(b'.');
                self.line.extend_from_slice(&digits[1..]);
                self.line.push(b'Z');
                if !self.csv {
                    self.line.push(b'"');
                }
            }
        }
    }

    fn float(&mut self, v: f64) {
        let text = self.floats.format(v);
        if !self.csv && !v.is_finite() {
            self.line.push(b'"');
            self.line.extend_from_slice(text.as_bytes());
            self.line.push(b'"');
        } else {
            self.line.extend_from_slice(text.as_bytes());
        }
    }
}

impl BatchWriter for TextWriter {
    fn write(&mut self, batch: &RecordBatch) -> std::io::Result<()> {
        let columns: Vec<Column<'_>> = batch.columns().iter().map(Column::of).collect();
        for row in 0..batch.num_rows() {
            self.line.clear();
            if !self.csv {
                self.line.push(b'{');
            }
            for (i, column) in columns.iter().enumerate() {
                if i > 0 {
                    self.line.push(b',');
                }
                if !self.csv {
                    self.line.push(b'"');
                    self.line.extend_from_slice(self.names[i].as_bytes());
                    self.line.extend_from_slice(b"\":");
                }
                let null = column.array().is_null(row);
                match column {
                    _ if null => {
                        if !self.csv {
                            self.line.extend_from_slice(b"null");
                        }
                    }
                    Column::Time(t) => self.timestamp(t.value(row)),
                    Column::Unsigned(u) => {
                        let v = u.value(row);
                        self.line.extend_from_slice(self.ints.format(v).as_bytes());
                    }
                    Column::Float(f) => self.float(f.value(row)),
                    Column::Other(a) => {
                        let text = other_value(a.as_ref(), row);
                        if self.csv {
                            self.line.extend_from_slice(csv_field(&text).as_bytes());
                        } else {
                            self.line.extend_from_slice(
                                serde_json::Value::String(text).to_string().as_bytes(),
                            );
                        }
                    }
                }
            }
            if !self.csv {
                self.line.push(b'}');
            }
            self.line.push(b'\n');
            self.out.write_all(&self.line)?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// A column, typed once per batch.
enum Column<'a> {
    Time(&'a arrow_array::TimestampNanosecondArray),
    Unsigned(&'a arrow_array::UInt64Array),
    Float(&'a arrow_array::Float64Array),
    Other(&'a ArrayRef),
}

impl<'a> Column<'a> {
    fn of(array: &'a ArrayRef) -> Self {
        match array.data_type() {
            DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                Self::Time(array.as_primitive::<TimestampNanosecondType>())
            }
            DataType::UInt64 => Self::Unsigned(array.as_primitive::<UInt64Type>()),
            DataType::Float64 => Self::Float(array.as_primitive::<Float64Type>()),
            _ => Self::Other(array),
        }
    }

    fn array(&self) -> &dyn Array {
        match self {
            Self::Time(a) => *a,
            Self::Unsigned(a) => *a,
            Self::Float(a) => *a,
            Self::Other(a) => a.as_ref(),
        }
    }
}

/// A value of a column type without a fast path (a spectrum's list of bins, a string): lists
/// as `[a;b;c]`, others through their debug form.
fn other_value(array: &dyn Array, row: usize) -> String {
    if let Some(list) = array.as_fixed_size_list_opt() {
        let values = list.value(row);
        if let Some(f) = values.as_primitive_opt::<Float64Type>() {
            let items: Vec<String> = f.values().iter().map(|v| v.to_string()).collect();
            return format!("[{}]", items.join(";"));
        }
    }
    if let Some(s) = array.as_string_opt::<i32>() {
        return s.value(row).to_string();
    }
    format!("{:?}", array.slice(row, 1))
}

/// A CSV field, quoted when it holds a comma, quote or line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A byte sink the test can read afterwards.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("not poisoned").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn batch() -> RecordBatch {
        let channel = ensemble_actors::batch::ChannelSpec::new("v", "V");
        let schema = ensemble_actors::batch::stream_schema(&[channel]);
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(
                    arrow_array::TimestampNanosecondArray::from(vec![
                        1_764_694_354_000_000_001,
                        1_764_694_355_500_000_000,
                        1_764_694_355_500_000_000,
                        1_764_694_356_000_000_000,
                    ])
                    .with_timezone("UTC"),
                ),
                Arc::new(arrow_array::UInt64Array::from(vec![0, 1, 2, 3])),
                Arc::new(Float64Array::from(vec![
                    Some(1.5),
                    None,
                    Some(f64::NAN),
                    Some(f64::NEG_INFINITY),
                ])),
            ],
        )
        .expect("valid")
    }

    fn text(format: ExportFormat, time: TimeFormat, unit_row: bool) -> String {
        let sink = Shared::default();
        let b = batch();
        let t0 = 1_764_694_354_000_000_000;
        let mut w = writer_for(
            format,
            time,
            t0,
            unit_row,
            b.schema(),
            Box::new(sink.clone()),
        )
        .expect("writer");
        w.write(&b).expect("write");
        w.finish().expect("finish");
        let bytes = sink.0.lock().expect("not poisoned").clone();
        String::from_utf8(bytes).expect("utf-8")
    }

    #[test]
    fn csv_writes_nulls_empty_and_nan_inf_as_words() {
        assert_eq!(
            text(ExportFormat::Csv, TimeFormat::Rfc3339, true),
            "timestamp,seq,v\nUTC,,V\n\
             2025-12-02T16:52:34.000000001Z,0,1.5\n\
             2025-12-02T16:52:35.500000000Z,1,\n\
             2025-12-02T16:52:35.500000000Z,2,NaN\n\
             2025-12-02T16:52:36.000000000Z,3,-inf\n"
        );
        assert_eq!(
            text(ExportFormat::Csv, TimeFormat::SRelative, false),
            "timestamp,seq,v\n1e-9,0,1.5\n1.5,1,\n1.5,2,NaN\n2.0,3,-inf\n"
        );
    }

    #[test]
    fn ndjson_is_valid_json_per_line() {
        let out = text(ExportFormat::Ndjson, TimeFormat::Ns, false);
        let rows: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).expect(l))
            .collect();
        assert_eq!(rows[0]["timestamp"], 1_764_694_354_000_000_001_i64);
        assert_eq!(rows[0]["v"], 1.5);
        assert!(rows[1]["v"].is_null());
        assert_eq!(rows[2]["v"], "NaN");
        assert_eq!(rows[3]["v"], "-inf");
    }
}
