//! [`SimProbe`]: a simulated instrument's settable signal, shared between its actor and a plan.
//!
//! A plan that sets and reads a simulated instrument at every point would otherwise pay two
//! cross-thread actor round trips per point (about 45 µs each on this kind of machine). A sim
//! settles at once and a reading is a pure function of the signal and the time, so the plan
//! does both on its own thread through this handle; the acquisition loop picks up a new
//! signal from its next batch, as it does for [`SimSet`](super::SimSet).

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::config::SignalConfig;
use super::params::{SimParamError, SimParams, SimReading};

/// A cloneable handle on one simulated instrument's parameters. Every clone sets and reads
/// the same signal; the instrument's free-running stream follows each set from its next batch.
#[derive(Clone)]
pub struct SimProbe {
    shared: Arc<Shared>,
}

struct Shared {
    params: Mutex<SimParams>,
    /// Hands each new signal to the running acquisition loop.
    signal: watch::Sender<SignalConfig>,
}

impl SimProbe {
    /// A probe over `params`, announcing every new signal on `signal`.
    pub fn new(params: SimParams, signal: watch::Sender<SignalConfig>) -> Self {
        Self {
            shared: Arc::new(Shared {
                params: Mutex::new(params),
                signal,
            }),
        }
    }

    fn params(&self) -> MutexGuard<'_, SimParams> {
        // Every mutation is a whole `set`; a panic elsewhere cannot leave the signal half set.
        self.shared.params.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets `param` to `value` and returns the value reached (see [`SimParams::set`]).
    pub fn set(&self, param: &str, value: f64) -> Result<f64, SimParamError> {
        let mut params = self.params();
        let reached = params.set(param, value)?;
        let signal = params.signal();
        self.shared.signal.send_modify(|s| s.clone_from(signal));
        Ok(reached)
    }

    /// The current value of `param` (`offset`, `amplitude` or `frequency_hz`).
    pub fn get(&self, param: &str) -> Result<f64, SimParamError> {
        let params = self.params();
        let signal = params.signal();
        match param {
            "offset" => Ok(signal.offset),
            "amplitude" => Ok(signal.amplitude),
            "frequency_hz" => Ok(signal.frequency_hz),
            other => Err(SimParamError::Unknown(other.to_string())),
        }
    }

    /// Every channel's value now (allocates the reading's vector).
    pub fn read_now(&self) -> SimReading {
        self.params().read_at(now_ns())
    }

    /// Every channel's value now into `out` (one slot per channel; extra slots are left alone),
    /// without allocating. Returns how many channels the instrument has.
    pub fn read_into(&self, out: &mut [Option<f64>]) -> usize {
        self.params().read_into(now_ns(), out)
    }
}

fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instruments::sim::SimGenerator;
    use crate::instruments::sim::config::{Shape, SimInstrumentConfig};

    #[test]
    fn a_set_reaches_every_clone_and_the_acquisition_loop() {
        let mut cfg: SimInstrumentConfig =
            toml::from_str("rate_hz = 10\nchannels = [\"a\", \"b\"]").expect("valid sim config");
        cfg.signal.shape = Shape::Constant;
        let generator = SimGenerator::new(&cfg, 0, 0);
        let (tx, mut rx) = watch::channel(generator.signal().clone());
        let probe = SimProbe::new(SimParams::new(generator), tx);
        let other = probe.clone();
        assert_eq!(probe.set("offset", 2.0), Ok(2.0));
        let mut out = [None; 3];
        assert_eq!(other.read_into(&mut out), 2);
        assert_eq!(out, [Some(3.0), Some(3.0), None]);
        assert!(rx.has_changed().expect("sender alive"));
        assert_eq!(rx.borrow_and_update().offset, 2.0);
        assert!(probe.set("gain", 1.0).is_err());
    }
}
