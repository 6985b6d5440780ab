//! The JSON the API answers with (stable keys; documented in `docs/live.md`).

use serde::{Deserialize, Serialize};

use super::decimate::Trace;

/// Default plot window of `/api/streams` (s).
pub const DEFAULT_SECONDS: f64 = 10.0;
/// Default buckets per channel.
pub const DEFAULT_POINTS: usize = 2000;
/// Most buckets per channel a request may ask for.
pub const MAX_POINTS: usize = 10_000;
/// Channels returned when a request names none (wide streams: pick with `channels=`).
pub const DEFAULT_CHANNELS: usize = 8;

/// `GET /api/streams/{name}` query.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamQuery {
    /// Window length in seconds back from the newest row; `0` for the whole run.
    pub seconds: Option<f64>,
    /// Most buckets per channel (default 2000, at most 10,000).
    pub points: Option<usize>,
    /// Comma-separated channel names (default: the first 8).
    pub channels: Option<String>,
    /// `ensemble serve` over an output directory: which run.
    pub run: Option<String>,
}

impl StreamQuery {
    /// The window in ns (`None`: whole run), checked.
    pub fn window_ns(&self) -> Result<Option<i64>, super::error::ApiError> {
        let s = self.seconds.unwrap_or(DEFAULT_SECONDS);
        if !s.is_finite() || s < 0.0 {
            return Err(super::error::ApiError::BadRequest(format!(
                "seconds must be 0 (whole run) or positive, not {s}"
            )));
        }
        Ok((s > 0.0).then_some((s * 1e9) as i64))
    }

    /// Buckets per channel, checked.
    pub fn points(&self) -> Result<usize, super::error::ApiError> {
        match self.points.unwrap_or(DEFAULT_POINTS) {
            p @ 1..=MAX_POINTS => Ok(p),
            p => Err(super::error::ApiError::BadRequest(format!(
                "points must be 1 to {MAX_POINTS}, not {p}"
            ))),
        }
    }

    /// The channels asked for by name, if any.
    pub fn channel_names(&self) -> Option<Vec<String>> {
        self.channels.as_ref().map(|c| {
            c.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
    }
}

/// A channel of a stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelInfo {
    /// Column name.
    pub name: String,
    /// Unit (may be empty).
    pub unit: String,
}

/// How the page draws a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    /// Values over time (min/max envelopes per bucket).
    Time,
    /// An fft stage: the latest spectrum, magnitude vs frequency.
    Spectrum,
    /// A scan's `primary` stream: detectors vs the first setpoint, point by point.
    Scan,
}

/// `GET /api/streams/{name}`: one stream's decimated data.
#[derive(Debug, Clone, Serialize)]
pub struct StreamData {
    /// The stream.
    pub stream: String,
    /// How to draw it.
    pub kind: StreamKind,
    /// Every channel of the stream (for the channel picker).
    pub channels: Vec<ChannelInfo>,
    /// The channels in `series`, in order.
    pub picked: Vec<ChannelInfo>,
    /// The window (ns since the Unix epoch); for `time` streams.
    pub from_ns: i64,
    /// End of the window.
    pub to_ns: i64,
    /// Width of a bucket (ns); 0 when not bucketed by time.
    pub bucket_ns: i64,
    /// `time`: start of each bucket (ns since the Unix epoch).
    pub t_ns: Vec<i64>,
    /// `spectrum`: frequency (Hz) of each point; `scan`: the first setpoint of each point.
    pub x: Vec<f64>,
    /// What `x` is (`frequency` or the setpoint's column name).
    pub x_label: String,
    /// Unit of `x`.
    pub x_unit: String,
    /// One trace per picked channel: min, max, last per bucket (or per point).
    pub series: Vec<Trace>,
    /// Where the data came from: `recent` (the view's fine rings of the last minutes),
    /// `history` (its whole-run envelope), `tap` (the newest batches themselves), `parquet`,
    /// `parquet statistics`.
    pub source: String,
    /// `time`: share of the stream's rows the view folded (1: every row, so every spike
    /// shows; less when the stream outran the view's folding budget and the trace is drawn
    /// from an even sample of its batches). The recorded data is complete either way.
    pub folded_share: f64,
    /// Rows of the stream so far.
    pub rows: u64,
    /// `scan`: points done.
    pub points_done: Option<u64>,
    /// `scan`: points planned.
    pub points_total: Option<u64>,
}

impl StreamData {
    /// A stream with no data yet, from `source`.
    pub fn empty(stream: &str, source: &str) -> Self {
        Self {
            stream: stream.to_string(),
            kind: StreamKind::Time,
            channels: Vec::new(),
            picked: Vec::new(),
            from_ns: 0,
            to_ns: 0,
            bucket_ns: 0,
            t_ns: Vec::new(),
            x: Vec::new(),
            x_label: String::new(),
            x_unit: String::new(),
            series: Vec::new(),
            source: source.to_string(),
            folded_share: 1.0,
            rows: 0,
            points_done: None,
            points_total: None,
        }
    }
}
