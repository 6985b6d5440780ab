//! Settable parameters of a simulated instrument and readings on request: plain, no actors.
//!
//! Scan plans drive a simulated instrument like a real one: they set `offset`, `amplitude` or
//! `frequency_hz` of its signal and read every channel at the current time. The free-running
//! stream follows the new signal from its next batch on.

use super::config::SignalConfig;
use super::generator::SimGenerator;

/// The parameters of a simulated instrument that a plan may set.
pub const SIM_SETTABLE: &[&str] = &["offset", "amplitude", "frequency_hz"];

/// A set that could not be applied; nothing was changed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimParamError {
    /// Not one of [`SIM_SETTABLE`].
    #[error("unknown parameter `{0}`; settable parameters: offset, amplitude, frequency_hz")]
    Unknown(String),
    /// Not a finite number.
    #[error("value {value} for `{param}` is not a finite number")]
    NotFinite {
        /// The parameter.
        param: String,
        /// The refused value.
        value: f64,
    },
}

/// One reading of every channel, taken on request.
#[derive(Debug, Clone, PartialEq)]
pub struct SimReading {
    /// When, ns since the Unix epoch, UTC.
    pub timestamp_ns: i64,
    /// One value per channel, in channel order.
    pub values: Vec<f64>,
}

/// The plan-facing side of a simulated instrument: its current signal and a generator to read
/// it at any time.
#[derive(Debug, Clone)]
pub struct SimParams {
    probe: SimGenerator,
}

impl SimParams {
    /// Parameters starting from the signal of `generator`.
    pub fn new(generator: SimGenerator) -> Self {
        Self { probe: generator }
    }

    /// The current signal.
    pub fn signal(&self) -> &SignalConfig {
        self.probe.signal()
    }

    /// Sets `param` to `value` and returns the value reached (always `value`: a simulated
    /// instrument settles at once).
    pub fn set(&mut self, param: &str, value: f64) -> Result<f64, SimParamError> {
        if !SIM_SETTABLE.contains(&param) {
            return Err(SimParamError::Unknown(param.to_string()));
        }
        if !value.is_finite() {
            return Err(SimParamError::NotFinite {
                param: param.to_string(),
                value,
            });
        }
        let mut signal = self.probe.signal().clone();
        match param {
            "offset" => signal.offset = value,
            "amplitude" => signal.amplitude = value,
            _ => signal.frequency_hz = value,
        }
        self.probe.set_signal(signal);
        Ok(value)
    }

    /// Every channel's value at wall-clock time `now_ns` (ns since the Unix epoch), with the
    /// noise of the row due then.
    pub fn read_at(&self, now_ns: i64) -> SimReading {
        let (t, seq) = self.time_of(now_ns);
        SimReading {
            timestamp_ns: now_ns,
            values: (0..self.probe.channel_count())
                .map(|c| self.probe.value_at(c, t, seq))
                .collect(),
        }
    }

    /// As [`read_at`](Self::read_at), into `out` (one slot per channel, extra slots left
    /// alone) without allocating; returns the number of channels.
    pub fn read_into(&self, now_ns: i64, out: &mut [Option<f64>]) -> usize {
        let (t, seq) = self.time_of(now_ns);
        for (c, slot) in out.iter_mut().take(self.probe.channel_count()).enumerate() {
            *slot = Some(self.probe.value_at(c, t, seq));
        }
        self.probe.channel_count()
    }

    /// Seconds since the stream's start, and the row due then (for its noise).
    fn time_of(&self, now_ns: i64) -> (f64, u64) {
        let t = (now_ns - self.probe.start_ns()).max(0) as f64 / 1e9;
        (t, (t * self.probe.rate_hz()).floor() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instruments::sim::config::{Shape, SimInstrumentConfig};

    fn params() -> SimParams {
        let mut cfg: SimInstrumentConfig =
            toml::from_str("rate_hz = 10\nchannels = [\"a\", \"b\"]").expect("valid sim config");
        cfg.signal.shape = Shape::Constant;
        SimParams::new(SimGenerator::new(&cfg, 1_000_000_000, 0))
    }

    #[test]
    fn set_changes_the_reading_and_refuses_unknown_or_infinite_values() {
        let mut p = params();
        assert_eq!(p.read_at(2_000_000_000).values, vec![1.0, 1.0]);
        assert_eq!(p.set("offset", 2.5), Ok(2.5));
        assert_eq!(p.set("amplitude", 0.5), Ok(0.5));
        let r = p.read_at(2_000_000_000);
        assert_eq!((r.timestamp_ns, r.values), (2_000_000_000, vec![3.0, 3.0]));
        assert_eq!(
            p.set("gain", 1.0),
            Err(SimParamError::Unknown("gain".into()))
        );
        assert!(matches!(
            p.set("frequency_hz", f64::NAN),
            Err(SimParamError::NotFinite { .. })
        ));
        assert_eq!(p.signal().offset, 2.5);
    }
}
