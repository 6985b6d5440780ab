//! `ensemble plot`: a stream as a figure. A time series (a min/max band per pixel column when
//! there are more samples than pixels), the mean spectrum of an `fft` stream, or a scan's
//! detectors against its first setpoint for the `primary` stream. Axis labels carry the units
//! from the field metadata; the title names the experiment, the stream and the metadata.
//!
//! Reading is one pass, one batch at a time: memory grows with the plot's width, not the run.

use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampNanosecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, SchemaRef};
use ensemble_actors::batch::{SEQ_COLUMN, TIMESTAMP_COLUMN, UNIT_METADATA_KEY};
use ensemble_actors::stages::fft::BIN_WIDTH_METADATA_KEY;

use super::error::DataError;
use super::figure::{Figure, Series, SeriesData, render};
use super::read;
use super::rundir::{StreamFiles, check_run_dir, read_footer};
use super::stats::timestamp_range;
use crate::manifest::Manifest;

/// Default size of a plot in pixels.
pub const DEFAULT_SIZE: (u32, u32) = (1200, 675);

/// What to plot.
#[derive(Debug, Clone)]
pub struct PlotOptions {
    /// The stream.
    pub stream: String,
    /// Channels to draw (empty: all).
    pub channels: Vec<String>,
    /// Only rows at or after this time (ns).
    pub from: Option<i64>,
    /// Only rows at or before this time (ns).
    pub to: Option<i64>,
    /// Draw the mean spectrum (an `fft` stream is drawn so anyway).
    pub spectrum: bool,
    /// The output, `.png` or `.svg`.
    pub out: PathBuf,
    /// Width and height in pixels.
    pub size: (u32, u32),
}

/// What kind of figure a stream makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Series,
    Spectrum,
    /// A point plan's `primary` stream with this many setpoint columns first.
    Scan(usize),
}

/// Plots one stream of `run_dir` into `options.out` (written whole or not at all).
pub fn plot(run_dir: &Path, options: &PlotOptions) -> Result<(), DataError> {
    let ext = options
        .out
        .extension()
        .map(|x| x.to_string_lossy().to_lowercase());
    if !matches!(ext.as_deref(), Some("png" | "svg")) {
        return Err(DataError::Usage(format!(
            "{}: the output must end in .png or .svg",
            options.out.display()
        )));
    }
    if let (Some(f), Some(t)) = (options.from, options.to) {
        if f > t {
            return Err(DataError::Usage("--from is after --to".to_string()));
        }
    }
    let (manifest, streams) = check_run_dir(run_dir)?;
    let stream = streams
        .iter()
        .find(|s| s.stream == options.stream)
        .ok_or_else(|| {
            let names: Vec<&str> = streams.iter().map(|s| s.stream.as_str()).collect();
            DataError::Usage(format!(
                "{}: no stream `{}` (streams: {})",
                run_dir.display(),
                options.stream,
                names.join(", ")
            ))
        })?;
    let figure = figure_of(stream, manifest.as_ref(), options)?;
    render_atomically(&figure, &options.out, options.size)
}

/// Draws `figure` into `out` through a temporary file beside it (same extension, which picks
/// the image format), renamed into place once complete.
pub(crate) fn render_atomically(
    figure: &Figure,
    out: &Path,
    size: (u32, u32),
) -> Result<(), DataError> {
    let ext = out
        .extension()
        .map(|x| x.to_string_lossy().into_owned())
        .unwrap_or_default();
    super::export::write_atomically(out, |tmp| {
        let drawn_at = tmp.with_extension(format!("partial.{ext}"));
        let drawn = render(figure, &drawn_at, size)
            .map_err(|message| DataError::Plot {
                path: out.to_path_buf(),
                message,
            })
            .and_then(|()| std::fs::rename(&drawn_at, tmp).map_err(DataError::write(tmp)));
        if drawn.is_err() {
            let _ = std::fs::remove_file(&drawn_at);
        }
        drawn
    })
}

/// The figure of `stream` as `options` ask.
pub fn figure_of(
    stream: &StreamFiles,
    manifest: Option<&Manifest>,
    options: &PlotOptions,
) -> Result<Figure, DataError> {
    let first = stream.parts.first().ok_or_else(|| {
        DataError::Usage(format!(
            "stream `{}` has no finished part to plot (run `ensemble recover` on a killed run)",
            stream.stream
        ))
    })?;
    let schema = read::part_schema(first)?;
    let channels: Vec<usize> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| f.name() != TIMESTAMP_COLUMN && f.name() != SEQ_COLUMN)
        // Values only: a plan's `resumed` flag and `repeat` number are not channels.
        .filter(|(_, f)| {
            matches!(
                f.data_type(),
                DataType::Float64 | DataType::FixedSizeList(..)
            )
        })
        .filter(|(_, f)| options.channels.is_empty() || options.channels.contains(f.name()))
        .map(|(i, _)| i)
        .collect();
    for wanted in &options.channels {
        if schema.field_with_name(wanted).is_err() {
            return Err(DataError::Usage(format!(
                "{}: no channel `{wanted}` in stream `{}`",
                first.display(),
                stream.stream
            )));
        }
    }
    let lists = channels
        .iter()
        .any(|&i| matches!(schema.field(i).data_type(), DataType::FixedSizeList(..)));
    let kind = if lists {
        Kind::Spectrum
    } else if options.spectrum {
        return Err(DataError::Usage(format!(
            "stream `{}` holds no spectra (--spectrum plots the output of an `fft` stage)",
            stream.stream
        )));
    } else {
        match scan_axes(stream, manifest) {
            Some(axes) if axes > 0 && axes < channels.len() => Kind::Scan(axes),
            _ => Kind::Series,
        }
    };
    let mut figure = match kind {
        Kind::Series => series_figure(stream, &schema, &channels, manifest, options)?,
        Kind::Spectrum => spectrum_figure(stream, &schema, &channels, options)?,
        Kind::Scan(axes) => scan_figure(stream, &schema, &channels, axes, options)?,
    };
    figure.title = title(stream, manifest);
    Ok(figure)
}

/// Setpoint columns of a point plan's `primary` stream, from the experiment in the manifest.
fn scan_axes(stream: &StreamFiles, manifest: Option<&Manifest>) -> Option<usize> {
    if stream.stream != "primary" {
        return None;
    }
    let m = manifest?;
    match crate::config::compile(&m.config_path, &m.config).ok()?.plan {
        crate::config::Plan::Points(p) => Some(p.axes.len()),
        crate::config::Plan::Stream => None,
    }
}

fn title(stream: &StreamFiles, manifest: Option<&Manifest>) -> String {
    let Some(m) = manifest else {
        return stream.stream.clone();
    };
    let mut title = format!("{}: {}", m.experiment, stream.stream);
    let metadata: Vec<String> = m
        .metadata
        .iter()
        .map(|(k, v)| format!("{k}={}", super::catalog::scalar_text(v)))
        .collect();
    if !metadata.is_empty() {
        let mut joined = metadata.join(", ");
        if joined.chars().count() > 70 {
            joined = joined.chars().take(67).collect::<String>() + "...";
        }
        title.push_str(&format!(" ({joined})"));
    }
    title
}

fn unit_of(schema: &SchemaRef, i: usize) -> String {
    schema
        .field(i)
        .metadata()
        .get(UNIT_METADATA_KEY)
        .cloned()
        .unwrap_or_default()
}

/// `NAME (UNIT)`, or `NAME` without a unit.
fn with_unit(name: &str, unit: &str) -> String {
    if unit.is_empty() {
        name.to_string()
    } else {
        format!("{name} ({unit})")
    }
}

/// The y label for `channels`: their shared unit, or each name with its unit.
fn y_label(schema: &SchemaRef, channels: &[usize], what: &str) -> String {
    let units: Vec<String> = channels.iter().map(|&i| unit_of(schema, i)).collect();
    let names: Vec<&str> = channels
        .iter()
        .map(|&i| schema.field(i).name().as_str())
        .collect();
    if names.len() == 1 {
        return with_unit(names[0], &units[0]);
    }
    if units.windows(2).all(|w| w[0] == w[1]) {
        return with_unit(what, &units[0]);
    }
    let labelled: Vec<String> = names
        .iter()
        .zip(&units)
        .map(|(n, u)| with_unit(n, u))
        .collect();
    labelled.join(", ")
}

/// Calls `each` with every batch of the stream's parts that may hold times in `from..=to`
/// (row groups outside skipped by statistics), reading only `columns` and `timestamp`.
fn for_each_batch(
    stream: &StreamFiles,
    schema: &SchemaRef,
    columns: &[usize],
    from: Option<i64>,
    to: Option<i64>,
    mut each: impl FnMut(&RecordBatch),
) -> Result<(), DataError> {
    let names: Vec<&str> = columns
        .iter()
        .map(|&i| schema.field(i).name().as_str())
        .collect();
    let keep = |name: &str| name == TIMESTAMP_COLUMN || names.contains(&name);
    read::for_each_batch(&stream.parts, &keep, from, to, |batch| {
        each(batch);
        Ok::<(), DataError>(())
    })?;
    Ok(())
}

fn timestamps(batch: &RecordBatch) -> Option<&arrow_array::TimestampNanosecondArray> {
    batch
        .column_by_name(TIMESTAMP_COLUMN)
        .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
}

fn series_figure(
    stream: &StreamFiles,
    schema: &SchemaRef,
    channels: &[usize],
    manifest: Option<&Manifest>,
    options: &PlotOptions,
) -> Result<Figure, DataError> {
    let mut range: Option<(i64, i64)> = None;
    let mut rows = 0u64;
    for part in &stream.parts {
        let footer = read_footer(part)?;
        rows += footer.file_metadata().num_rows().max(0) as u64;
        if let Some((a, b)) = timestamp_range(&footer) {
            range = Some(range.map_or((a, b), |(x, y)| (x.min(a), y.max(b))));
        }
    }
    let (first, last) = range.unwrap_or((0, 1));
    let (lo, hi) = (
        options.from.unwrap_or(first).max(first),
        options.to.unwrap_or(last).min(last),
    );
    // Rows in the window, estimated from its share of the stream's time (to pick line or band).
    let share = (hi - lo).max(0) as f64 / (last - first).max(1) as f64;
    let rows = (rows as f64 * share.min(1.0)) as u64;
    let (t0, origin) = match manifest.and_then(|m| m.started_at.timestamp_nanos_opt()) {
        Some(start) => (start, "run start"),
        None => (lo, "first row"),
    };
    let pixels = (options.size.0 as usize).saturating_sub(120).max(16);
    let names: Vec<String> = channels
        .iter()
        .map(|&i| schema.field(i).name().clone())
        .collect();
    let envelope = rows > 2 * pixels as u64;
    let mut lines: Vec<Vec<(f64, f64)>> = vec![Vec::new(); channels.len()];
    let mut bands: Vec<Vec<(f64, f64)>> = vec![vec![(f64::NAN, f64::NAN); pixels]; channels.len()];
    let span = (hi - lo).max(1) as f64;
    for_each_batch(stream, schema, channels, Some(lo), Some(hi), |batch| {
        let Some(ts) = timestamps(batch) else {
            return;
        };
        for (c, name) in names.iter().enumerate() {
            let Some(values) = batch
                .column_by_name(name)
                .and_then(|a| a.as_primitive_opt::<Float64Type>())
            else {
                continue;
            };
            for (row, &t) in ts.values().iter().enumerate() {
                if t < lo || t > hi || values.is_null(row) {
                    continue;
                }
                let v = values.value(row);
                if !v.is_finite() {
                    continue;
                }
                if envelope {
                    let b = (((t - lo) as f64 / span) * pixels as f64) as usize;
                    let cell = &mut bands[c][b.min(pixels - 1)];
                    *cell = if cell.0.is_nan() {
                        (v, v)
                    } else {
                        (cell.0.min(v), cell.1.max(v))
                    };
                } else {
                    lines[c].push(((t - t0) as f64 / 1e9, v));
                }
            }
        }
    })?;
    let series = names
        .iter()
        .enumerate()
        .map(|(c, name)| Series {
            name: name.clone(),
            data: if envelope {
                SeriesData::Envelope(joined_bands(&bands[c], |i| {
                    let t = lo as f64 + (i as f64 + 0.5) * span / pixels as f64;
                    (t - t0 as f64) / 1e9
                }))
            } else {
                SeriesData::Line(std::mem::take(&mut lines[c]))
            },
        })
        .collect();
    Ok(Figure {
        title: String::new(),
        x_label: format!("time since {origin} (s)"),
        y_label: y_label(schema, channels, &stream.stream),
        series,
    })
}

/// The non-empty pixel columns as `(x, min, max)`, each widened to reach its left neighbour's
/// range, so that the band is one connected trace (a slow signal's columns would otherwise be
/// separate dots).
fn joined_bands(bands: &[(f64, f64)], x: impl Fn(usize) -> f64) -> Vec<(f64, f64, f64)> {
    let mut joined = Vec::with_capacity(bands.len());
    let mut previous: Option<(f64, f64)> = None;
    for (i, &(min, max)) in bands.iter().enumerate() {
        if min.is_nan() {
            continue;
        }
        let (lo, hi) = match previous {
            Some((p_min, p_max)) => (min.min(p_max), max.max(p_min)),
            None => (min, max),
        };
        joined.push((x(i), lo, hi));
        previous = Some((min, max));
    }
    joined
}

fn spectrum_figure(
    stream: &StreamFiles,
    schema: &SchemaRef,
    channels: &[usize],
    options: &PlotOptions,
) -> Result<Figure, DataError> {
    let names: Vec<String> = channels
        .iter()
        .map(|&i| schema.field(i).name().clone())
        .collect();
    let mut sums: Vec<Vec<f64>> = vec![Vec::new(); channels.len()];
    let mut counts = vec![0u64; channels.len()];
    for_each_batch(
        stream,
        schema,
        channels,
        options.from,
        options.to,
        |batch| {
            for (c, name) in names.iter().enumerate() {
                let Some(list) = batch
                    .column_by_name(name)
                    .and_then(|a| a.as_fixed_size_list_opt())
                else {
                    continue;
                };
                let bins = list.value_length() as usize;
                if sums[c].is_empty() {
                    sums[c] = vec![0.0; bins];
                }
                for row in 0..list.len() {
                    let spectrum = list.value(row);
                    let Some(values) = spectrum.as_primitive_opt::<Float64Type>() else {
                        continue;
                    };
                    if list.is_null(row) {
                        continue;
                    }
                    for (sum, v) in sums[c].iter_mut().zip(values.values().iter()) {
                        *sum += v;
                    }
                    counts[c] += 1;
                }
            }
        },
    )?;
    let bin_width = |i: usize| -> f64 {
        schema
            .field(i)
            .metadata()
            .get(BIN_WIDTH_METADATA_KEY)
            .and_then(|w| w.parse().ok())
            .unwrap_or(1.0)
    };
    let series = names
        .iter()
        .enumerate()
        .map(|(c, name)| {
            let width = bin_width(channels[c]);
            let n = counts[c].max(1) as f64;
            Series {
                name: name.clone(),
                data: SeriesData::Line(
                    sums[c]
                        .iter()
                        .enumerate()
                        .map(|(b, s)| (b as f64 * width, s / n))
                        .collect(),
                ),
            }
        })
        .collect();
    Ok(Figure {
        title: String::new(),
        x_label: "frequency (Hz)".to_string(),
        y_label: format!("mean {}", y_label(schema, channels, "spectrum")),
        series,
    })
}

fn scan_figure(
    stream: &StreamFiles,
    schema: &SchemaRef,
    channels: &[usize],
    axes: usize,
    options: &PlotOptions,
) -> Result<Figure, DataError> {
    let setpoint = channels[0];
    let detectors = &channels[axes..];
    let x_name = schema.field(setpoint).name().clone();
    let names: Vec<String> = detectors
        .iter()
        .map(|&i| schema.field(i).name().clone())
        .collect();
    let mut points: Vec<Vec<(f64, f64)>> = vec![Vec::new(); detectors.len()];
    let mut columns = vec![setpoint];
    columns.extend_from_slice(detectors);
    for_each_batch(
        stream,
        schema,
        &columns,
        options.from,
        options.to,
        |batch| {
            let Some(x) = batch
                .column_by_name(&x_name)
                .and_then(|a| a.as_primitive_opt::<Float64Type>())
            else {
                return;
            };
            for (d, name) in names.iter().enumerate() {
                let Some(y) = batch
                    .column_by_name(name)
                    .and_then(|a| a.as_primitive_opt::<Float64Type>())
                else {
                    continue;
                };
                for row in 0..batch.num_rows() {
                    if !x.is_null(row) && !y.is_null(row) {
                        points[d].push((x.value(row), y.value(row)));
                    }
                }
            }
        },
    )?;
    Ok(Figure {
        title: String::new(),
        x_label: with_unit(&x_name, &unit_of(schema, setpoint)),
        y_label: y_label(schema, detectors, "detectors"),
        series: names
            .into_iter()
            .zip(points)
            .map(|(name, p)| Series {
                name,
                data: SeriesData::Markers(p),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_join_their_neighbours_and_skip_empty_columns() {
        let nan = (f64::NAN, f64::NAN);
        let bands = [(0.0, 0.1), (0.5, 0.6), nan, (0.2, 0.3)];
        let joined = joined_bands(&bands, |i| i as f64);
        assert_eq!(
            joined,
            vec![(0.0, 0.0, 0.1), (1.0, 0.1, 0.6), (3.0, 0.2, 0.5)]
        );
    }
}
