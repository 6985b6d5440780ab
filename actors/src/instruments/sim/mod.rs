//! The simulated instrument (`type = "sim"`): deterministic signals at a fixed rate, with
//! `offset`, `amplitude` and `frequency_hz` settable by plans.

mod acquisition;
mod actor;
mod config;
mod generator;
mod noise;
mod params;
mod probe;
mod sine_steps;

pub use acquisition::SimAcquisition;
pub use actor::{SimInstrumentActor, SimReadNow, SimSet};
pub use config::{Pace, Phase, Shape, SignalConfig, SimFault, SimFaultKind, SimInstrumentConfig};
pub use generator::SimGenerator;
pub use params::{SIM_SETTABLE, SimParamError, SimParams, SimReading};
pub use probe::SimProbe;
