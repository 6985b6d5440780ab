//! The [`PlanTarget`] of a run: the running instrument actors, by name.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ensemble_actors::instruments::scpi::{ScpiError, ScpiProbe};
use ensemble_actors::instruments::sim::SimProbe;

use super::target::{PlanTarget, TargetError};

/// A running instrument a plan can drive.
#[derive(Clone)]
pub enum Driver {
    /// A simulated instrument (`offset`, `amplitude`, `frequency_hz`), set and read on the
    /// plan's own thread through its probe: no message round trip.
    Sim(SimProbe),
    /// An SCPI instrument (its `[set.NAME]` parameters, its `[[read]]` channels), driven
    /// through its probe from the plan's own task: the device's round trip, no message hops.
    Scpi(ScpiProbe),
}

/// The running instruments by name, shared between the coordinator (which registers each
/// instrument when it starts or restarts) and the plan executor (which looks it up at every
/// request, so a restarted instrument is used from its next request on).
#[derive(Clone, Default)]
pub struct Drivers(Arc<Mutex<HashMap<String, Driver>>>);

impl Drivers {
    /// Registers (or replaces) the instrument `name`.
    pub fn insert(&self, name: &str, driver: Driver) {
        self.lock().insert(name.to_string(), driver);
    }

    fn get(&self, name: &str) -> Result<Driver, String> {
        self.lock()
            .get(name)
            .cloned()
            .ok_or_else(|| format!("instrument `{name}` is not running"))
    }

    /// The probe of simulated instrument `name`, if it is one.
    fn sim(&self, name: &str) -> Option<SimProbe> {
        match self.lock().get(name) {
            Some(Driver::Sim(probe)) => Some(probe.clone()),
            _ => None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Driver>> {
        // Entries are replaced whole; a panic elsewhere cannot leave one half written.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl PlanTarget for Drivers {
    async fn set(&self, instrument: &str, param: &str, value: f64) -> Result<f64, TargetError> {
        match self.get(instrument)? {
            Driver::Sim(probe) => probe.set(param, value).map_err(failed),
            Driver::Scpi(probe) => probe.set(param, value).await.map_err(scpi_error),
        }
    }

    async fn read(&self, instrument: &str) -> Result<Vec<Option<f64>>, TargetError> {
        match self.get(instrument)? {
            Driver::Sim(probe) => Ok(probe.read_now().values.into_iter().map(Some).collect()),
            Driver::Scpi(probe) => probe.read().await.map(|r| r.values).map_err(scpi_error),
        }
    }

    async fn recover(&self, instrument: &str) -> Result<String, TargetError> {
        match self.get(instrument)? {
            Driver::Sim(_) => Ok("reachable".to_string()),
            Driver::Scpi(probe) => probe.recover().await.map_err(scpi_error),
        }
    }

    fn current(&self, instrument: &str, param: &str) -> Result<f64, String> {
        match self.get(instrument)? {
            Driver::Sim(probe) => probe.get(param).map_err(|e| e.to_string()),
            Driver::Scpi(_) => Err(format!(
                "`{instrument}` is an SCPI instrument, whose current value is not known"
            )),
        }
    }

    fn set_now(
        &self,
        instrument: &str,
        param: &str,
        value: f64,
    ) -> Option<Result<f64, TargetError>> {
        let probe = self.sim(instrument)?;
        Some(probe.set(param, value).map_err(failed))
    }

    fn read_now(
        &self,
        instrument: &str,
        out: &mut [Option<f64>],
    ) -> Option<Result<usize, TargetError>> {
        let probe = self.sim(instrument)?;
        Some(Ok(probe.read_into(out)))
    }
}

fn failed(e: impl std::fmt::Display) -> TargetError {
    TargetError::Failed(e.to_string())
}

/// A lost connection can be recovered; anything else is the instrument's answer.
fn scpi_error(e: ScpiError) -> TargetError {
    if e.is_connection_lost() {
        TargetError::Unreachable(e.to_string())
    } else {
        TargetError::Failed(e.to_string())
    }
}
