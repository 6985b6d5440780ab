//! Test helpers: simulated input streams with their rate in the schema.

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampNanosecondType, UInt64Type};

use crate::batch::{DataBatch, with_rate};
use crate::instruments::sim::{Phase, Shape, SignalConfig, SimGenerator, SimInstrumentConfig};

/// A simulated sine (with optional noise) on `channels` channels.
pub(crate) fn sim(
    rate_hz: f64,
    channels: usize,
    freq: f64,
    amplitude: f64,
    noise: f64,
) -> SimGenerator {
    let config = SimInstrumentConfig {
        rate_hz,
        channels: (0..channels).map(|i| format!("ch{i}")).collect(),
        unit: "V".into(),
        seed: 3,
        pace: Default::default(),
        signal: SignalConfig {
            shape: Shape::Sine,
            frequency_hz: freq,
            amplitude,
            offset: 0.0,
            noise,
            phase: Phase::All(0.0),
        },
        batch_interval: std::time::Duration::from_millis(100),
        max_batch_rows: 8192,
        device_buffer: std::time::Duration::from_secs(10),
        fault: None,
    };
    SimGenerator::new(&config, 1_700_000_000_000_000_000, 0)
}

/// The next `rows` rows of `generator` as a batch whose schema carries the rate.
pub(crate) fn next_batch(generator: &mut SimGenerator, rows: usize, rate_hz: f64) -> DataBatch {
    let first = generator.next_seq();
    let batch = generator.generate(rows);
    let schema = with_rate(batch.schema_ref(), rate_hz);
    let batch = batch.with_schema(schema).expect("only metadata was added");
    DataBatch::new("sim".into(), first, batch)
}

/// A batch of one or more channels from raw values (timestamps 1 ms apart from `t0`).
pub(crate) fn batch_of(columns: &[&[f64]], first_seq: u64, rate_hz: f64) -> DataBatch {
    use crate::batch::{ChannelSpec, stream_schema};
    use arrow_array::{ArrayRef, Float64Array, TimestampNanosecondArray, UInt64Array};
    use std::sync::Arc;
    let n = columns.first().map_or(0, |c| c.len());
    let specs: Vec<_> = (0..columns.len())
        .map(|i| ChannelSpec::new(format!("ch{i}"), "V"))
        .collect();
    let schema = with_rate(&stream_schema(&specs), rate_hz);
    let step = (1e9 / rate_hz) as i64;
    let mut arrays: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampNanosecondArray::from_iter_values(
                (0..n as u64).map(|i| (first_seq + i) as i64 * step),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(UInt64Array::from_iter_values(
            first_seq..first_seq + n as u64,
        )),
    ];
    for c in columns {
        arrays.push(Arc::new(Float64Array::from(c.to_vec())));
    }
    DataBatch::new(
        "sim".into(),
        first_seq,
        RecordBatch::try_new(schema, arrays).expect("valid"),
    )
}

/// Column `name` of `batch` as f64 values.
pub(crate) fn f64s(batch: &RecordBatch, name: &str) -> Vec<f64> {
    batch
        .column_by_name(name)
        .expect("column exists")
        .as_primitive::<Float64Type>()
        .values()
        .to_vec()
}

/// `seq` of every row of `batches`, concatenated.
pub(crate) fn seqs(batches: &[RecordBatch]) -> Vec<u64> {
    batches
        .iter()
        .flat_map(|b| b.column(1).as_primitive::<UInt64Type>().values().to_vec())
        .collect()
}

/// `timestamp` of every row of `batches`, concatenated.
pub(crate) fn timestamps(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_primitive::<TimestampNanosecondType>()
                .values()
                .to_vec()
        })
        .collect()
}
