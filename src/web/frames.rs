//! From Arrow batches to what the page draws: time envelopes, the latest spectrum, scan points.
//! Shared by the live view (tapped batches) and `ensemble serve` (batches read from Parquet).

use std::borrow::Cow;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int32Type, Int64Type, TimestampNanosecondType, UInt32Type, UInt64Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Schema};
use ensemble_actors::batch::{SEQ_COLUMN, TIMESTAMP_COLUMN, field_unit};

use super::api::{ChannelInfo, DEFAULT_CHANNELS, StreamKind};
use super::decimate::{Decimator, Trace};
use super::error::ApiError;

/// Field metadata key of an fft stage's bin width (Hz), as the stage writes it.
const BIN_WIDTH_KEY: &str = "bin_width_hz";

/// The channels of a schema: every column but `timestamp` and `seq`.
pub fn channel_infos(schema: &Schema) -> Vec<ChannelInfo> {
    schema
        .fields()
        .iter()
        .filter(|f| f.name() != TIMESTAMP_COLUMN && f.name() != SEQ_COLUMN)
        .map(|f| ChannelInfo {
            name: f.name().clone(),
            unit: field_unit(f).unwrap_or_default().to_string(),
        })
        .collect()
}

/// How a stream is drawn: spectra for list columns, points for the plan's `primary`.
pub fn stream_kind(name: &str, schema: &Schema) -> StreamKind {
    if schema.fields().iter().any(|f| {
        matches!(
            f.data_type(),
            DataType::FixedSizeList(..) | DataType::List(_)
        )
    }) {
        StreamKind::Spectrum
    } else if name == crate::plan::PRIMARY_STREAM {
        StreamKind::Scan
    } else {
        StreamKind::Time
    }
}

/// The channels a request asked for (all must exist), or the first [`DEFAULT_CHANNELS`].
pub fn pick(
    channels: &[ChannelInfo],
    asked: Option<Vec<String>>,
) -> Result<Vec<ChannelInfo>, ApiError> {
    match asked {
        None => Ok(channels.iter().take(DEFAULT_CHANNELS).cloned().collect()),
        Some(names) => names
            .iter()
            .map(|n| {
                channels
                    .iter()
                    .find(|c| &c.name == n)
                    .cloned()
                    .ok_or_else(|| {
                        ApiError::NotFound(format!(
                            "no channel `{n}`; channels: {}",
                            channels
                                .iter()
                                .map(|c| c.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    })
            })
            .collect(),
    }
}

/// A numeric column as f64 (nulls as NaN); `None` for other types.
pub fn f64_values(array: &dyn Array) -> Option<Cow<'_, [f64]>> {
    fn widen<T: arrow_array::ArrowPrimitiveType>(
        a: &dyn Array,
        f: impl Fn(T::Native) -> f64,
    ) -> Option<Cow<'static, [f64]>> {
        let p = a.as_primitive_opt::<T>()?;
        Some(Cow::Owned(
            (0..p.len())
                .map(|i| {
                    if p.is_null(i) {
                        f64::NAN
                    } else {
                        f(p.value(i))
                    }
                })
                .collect(),
        ))
    }
    match array.data_type() {
        DataType::Float64 => {
            let p = array.as_primitive::<Float64Type>();
            if p.null_count() == 0 {
                Some(Cow::Borrowed(p.values()))
            } else {
                widen::<Float64Type>(array, |v| v)
            }
        }
        DataType::Float32 => widen::<Float32Type>(array, f64::from),
        DataType::Int64 => widen::<Int64Type>(array, |v| v as f64),
        DataType::Int32 => widen::<Int32Type>(array, f64::from),
        DataType::UInt64 => widen::<UInt64Type>(array, |v| v as f64),
        DataType::UInt32 => widen::<UInt32Type>(array, f64::from),
        _ => None,
    }
}

/// The timestamp column of a batch (ns), if it has one.
pub fn timestamps(batch: &RecordBatch) -> Option<&[i64]> {
    let col = batch.column_by_name(TIMESTAMP_COLUMN)?;
    Some(col.as_primitive_opt::<TimestampNanosecondType>()?.values())
}

/// Adds every sample of the picked channels in `batch` to `d` (channel `i` of `d` is
/// `picked[i]`). Batches entirely outside the window cost one comparison.
pub fn decimate_batch(d: &mut Decimator, batch: &RecordBatch, picked: &[ChannelInfo]) {
    let Some(ts) = timestamps(batch) else {
        return;
    };
    let values: Vec<(usize, Cow<'_, [f64]>)> = picked
        .iter()
        .enumerate()
        .filter_map(|(i, channel)| {
            let column = batch.column_by_name(&channel.name)?;
            Some((i, f64_values(column)?))
        })
        .collect();
    let columns: Vec<(usize, &[f64])> = values.iter().map(|(i, v)| (*i, &**v)).collect();
    d.add_columns(ts, &columns);
}

/// The last spectrum in `batch` of each picked channel, decimated to `points` bins with
/// min/max per bucket: `(frequencies, traces)`.
pub fn latest_spectrum(
    batch: &RecordBatch,
    picked: &[ChannelInfo],
    points: usize,
) -> (Vec<f64>, Vec<Trace>) {
    let mut x = Vec::new();
    let mut traces = Vec::new();
    let row = batch.num_rows().checked_sub(1);
    for channel in picked {
        let (Some(row), Some(col)) = (row, batch.column_by_name(&channel.name)) else {
            traces.push(Trace::default());
            continue;
        };
        let width = batch
            .schema()
            .field_with_name(&channel.name)
            .ok()
            .and_then(|f| {
                f.metadata()
                    .get(BIN_WIDTH_KEY)
                    .and_then(|v| v.parse::<f64>().ok())
            })
            .unwrap_or(1.0);
        let Some(list) = col.as_fixed_size_list_opt() else {
            traces.push(Trace::default());
            continue;
        };
        let bins = list.value(row);
        let Some(values) = f64_values(bins.as_ref()) else {
            traces.push(Trace::default());
            continue;
        };
        let n = values.len() as i64;
        let mut d = Decimator::new(0, n, points, 1);
        for (k, v) in values.iter().enumerate() {
            d.add(0, k as i64, *v);
        }
        let out = d.finish();
        if x.is_empty() {
            x = out.t_ns.iter().map(|&k| k as f64 * width).collect();
        }
        traces.extend(out.series);
    }
    (x, traces)
}

/// A scan's points: the first channel (the first setpoint) as x, the picked channels as
/// traces (one value per point: min = max = last).
pub fn scan_points(
    batches: &[&RecordBatch],
    x_name: &str,
    picked: &[ChannelInfo],
) -> (Vec<f64>, Vec<Trace>) {
    let mut x = Vec::new();
    let mut traces = vec![Trace::default(); picked.len()];
    for batch in batches {
        let Some(xs) = batch.column_by_name(x_name).and_then(|c| f64_values(c)) else {
            continue;
        };
        x.extend_from_slice(&xs);
        for (trace, channel) in traces.iter_mut().zip(picked) {
            let values = batch
                .column_by_name(&channel.name)
                .and_then(|c| f64_values(c));
            for i in 0..xs.len() {
                let v = values.as_ref().map(|v| v[i]).filter(|v| !v.is_nan());
                trace.min.push(v);
                trace.max.push(v);
                trace.last.push(v);
            }
        }
    }
    (x, traces)
}

/// A one-channel (`ch0`, V) stream batch: rows `first_seq..`, 1 ms apart from 0 (tests).
#[cfg(test)]
pub(crate) fn test_batch(values: &[f64], first_seq: u64) -> RecordBatch {
    use arrow_array::{ArrayRef, Float64Array, TimestampNanosecondArray, UInt64Array};
    use ensemble_actors::batch::{ChannelSpec, stream_schema};
    use std::sync::Arc;
    let schema = stream_schema(&[ChannelSpec::new("ch0", "V")]);
    let n = values.len() as u64;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampNanosecondArray::from_iter_values(
                (first_seq..first_seq + n).map(|i| i as i64 * 1_000_000),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(UInt64Array::from_iter_values(first_seq..first_seq + n)),
        Arc::new(Float64Array::from(values.to_vec())),
    ];
    RecordBatch::try_new(schema, columns).expect("matches the schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_decimates_by_its_timestamps_and_unknown_channels_are_named() {
        let values: Vec<f64> = (0..1000)
            .map(|i| if i == 500 { 5.0 } else { 0.0 })
            .collect();
        let batch = test_batch(&values, 0);
        let channels = channel_infos(&batch.schema());
        assert_eq!(channels.len(), 1);
        assert_eq!(channels[0].unit, "V");
        let picked = pick(&channels, None).expect("default");
        let ts = timestamps(&batch).expect("timestamps");
        let mut d = Decimator::new(ts[0], ts[999] + 1, 10, 1);
        decimate_batch(&mut d, &batch, &picked);
        let out = d.finish();
        assert_eq!(out.t_ns.len(), 10);
        assert_eq!(out.series[0].max[5], Some(5.0));
        let err = pick(&channels, Some(vec!["nope".into()])).expect_err("unknown");
        assert!(err.to_string().contains("ch0"), "{err}");
    }
}
