//! Configuration of the simulated instrument (`type = "sim"`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A simulated instrument: deterministic signals on any number of channels.
///
/// Sample `i` of a stream has timestamp `start + i / rate_hz` and value
/// `offset + amplitude * shape(2π · frequency_hz · i / rate_hz + phase) + noise`, where the noise
/// is Gaussian with standard deviation `noise`, drawn from `seed`, the channel and `i` alone, so
/// that a stream is the same however it is cut into batches and across restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimInstrumentConfig {
    /// Samples per second per channel. Must be positive.
    pub rate_hz: f64,
    /// Channel names, one Float64 column each.
    #[serde(default = "default_channels")]
    pub channels: Vec<String>,
    /// Physical unit of every channel.
    #[serde(default = "default_unit")]
    pub unit: String,
    /// Seed of the noise generator.
    #[serde(default)]
    pub seed: u64,
    /// Real time, or as fast as the pipeline accepts.
    #[serde(default)]
    pub pace: Pace,
    /// The signal every channel carries (channels differ by `phase`).
    #[serde(default)]
    pub signal: SignalConfig,
    /// In real time, how often a batch of the rows that came due is emitted.
    #[serde(default = "default_batch_interval", with = "humantime_serde")]
    pub batch_interval: Duration,
    /// Most rows in one batch (in `pace = "max"` every batch has this many, but the last).
    #[serde(default = "default_max_batch_rows")]
    pub max_batch_rows: usize,
    /// How much the simulated device can hold while the pipeline pushes back (real time only).
    /// Beyond it the oldest rows are skipped and counted as `overflow_rows`, as a real device's
    /// buffer would overflow; `seq` then has a gap exactly where rows were skipped.
    #[serde(default = "default_device_buffer", with = "humantime_serde")]
    pub device_buffer: Duration,
    /// Testing aid: fail on purpose, to rehearse supervision.
    #[serde(default)]
    pub fault: Option<SimFault>,
}

/// A failure injected into a simulated instrument, or into any stage (`[stages.NAME] fault`,
/// where `after_rows` counts input rows; see [`Faulty`](crate::stages::Faulty)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimFault {
    /// How it fails.
    pub kind: SimFaultKind,
    /// After how many rows (counted from each start) it fails.
    pub after_rows: u64,
    /// Fail only in the first `times` starts (default: every start).
    #[serde(default)]
    pub times: Option<u64>,
}

/// How an injected fault shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimFaultKind {
    /// The actor panics (its supervisor sees it gone without a report).
    Panic,
    /// The actor reports an error and stops.
    Error,
    /// The acquisition hangs: no more rows, no sign of life, deaf to a stop (as a device that
    /// stops answering). The coordinator's stall detection (`stall_timeout`) must notice it.
    Stall,
}

/// How fast a simulated instrument produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pace {
    /// One row every `1 / rate_hz` seconds of wall time.
    #[default]
    Realtime,
    /// As fast as the pipeline accepts; timestamps still advance by `1 / rate_hz` per row.
    Max,
}

/// The waveform of a simulated channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalConfig {
    /// The waveform.
    #[serde(default)]
    pub shape: Shape,
    /// Frequency of the waveform in Hz.
    #[serde(default = "default_frequency_hz")]
    pub frequency_hz: f64,
    /// Peak amplitude.
    #[serde(default = "default_amplitude")]
    pub amplitude: f64,
    /// Constant added to every sample.
    #[serde(default)]
    pub offset: f64,
    /// Standard deviation of the added Gaussian noise (0 for none).
    #[serde(default)]
    pub noise: f64,
    /// Phase in radians: one number for every channel, or one per channel.
    #[serde(default)]
    pub phase: Phase,
}

impl Default for SignalConfig {
    fn default() -> Self {
        Self {
            shape: Shape::default(),
            frequency_hz: default_frequency_hz(),
            amplitude: default_amplitude(),
            offset: 0.0,
            noise: 0.0,
            phase: Phase::default(),
        }
    }
}

/// Waveform shapes; `x` is the phase angle `2π f t + phase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// `sin(x)`.
    #[default]
    Sine,
    /// `+1` where `sin(x) >= 0`, else `-1`.
    Square,
    /// Sawtooth rising from -1 to 1 once per period: `2 · frac(x / 2π) - 1`.
    Ramp,
    /// Zero: only `offset` and `noise` remain.
    Noise,
    /// One: the value is `offset + amplitude` (plus noise).
    Constant,
}

/// Channel phases in radians.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Phase {
    /// The same phase on every channel.
    All(f64),
    /// One phase per channel, in channel order.
    PerChannel(Vec<f64>),
}

impl Default for Phase {
    fn default() -> Self {
        Phase::All(0.0)
    }
}

impl SimInstrumentConfig {
    /// Checks values serde cannot: returns `(key, message)` for each problem.
    pub fn check(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if !(self.rate_hz.is_finite() && self.rate_hz > 0.0) {
            problems.push((
                "rate_hz",
                format!("must be a positive number, got {}", self.rate_hz),
            ));
        }
        if self.channels.is_empty() {
            problems.push(("channels", "must name at least one channel".to_string()));
        }
        let mut seen = std::collections::HashSet::new();
        for name in &self.channels {
            if name.is_empty() {
                problems.push(("channels", "a channel name is empty".to_string()));
            } else if name == crate::batch::TIMESTAMP_COLUMN || name == crate::batch::SEQ_COLUMN {
                problems.push((
                    "channels",
                    format!("`{name}` is reserved for the leading column"),
                ));
            } else if !seen.insert(name) {
                problems.push(("channels", format!("channel `{name}` appears twice")));
            }
        }
        if self.batch_interval.is_zero() {
            problems.push(("batch_interval", "must be longer than zero".to_string()));
        }
        if self.device_buffer.is_zero() {
            problems.push(("device_buffer", "must be longer than zero".to_string()));
        }
        if self.max_batch_rows == 0 {
            problems.push(("max_batch_rows", "must be at least 1".to_string()));
        }
        let s = &self.signal;
        for (key, v) in [
            ("signal.frequency_hz", s.frequency_hz),
            ("signal.amplitude", s.amplitude),
            ("signal.offset", s.offset),
        ] {
            if !v.is_finite() {
                problems.push((key, format!("must be a finite number, got {v}")));
            }
        }
        if !(s.noise.is_finite() && s.noise >= 0.0) {
            problems.push((
                "signal.noise",
                format!("must be zero or positive, got {}", s.noise),
            ));
        }
        if let Phase::PerChannel(p) = &s.phase {
            if p.len() != self.channels.len() {
                problems.push((
                    "signal.phase",
                    format!(
                        "has {} values but the instrument has {} channels",
                        p.len(),
                        self.channels.len()
                    ),
                ));
            }
        }
        problems
    }

    /// Phase of channel `index` in radians.
    pub fn phase_of(&self, index: usize) -> f64 {
        match &self.signal.phase {
            Phase::All(p) => *p,
            Phase::PerChannel(p) => p.get(index).copied().unwrap_or(0.0),
        }
    }
}

const fn default_frequency_hz() -> f64 {
    1.0
}
const fn default_amplitude() -> f64 {
    1.0
}
fn default_channels() -> Vec<String> {
    vec!["ch0".to_string()]
}
fn default_unit() -> String {
    "V".to_string()
}
const fn default_batch_interval() -> Duration {
    Duration::from_millis(100)
}
const fn default_device_buffer() -> Duration {
    Duration::from_secs(10)
}
const fn default_max_batch_rows() -> usize {
    8192
}
