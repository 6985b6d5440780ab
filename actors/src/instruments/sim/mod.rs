//! The simulated instrument (`type = "sim"`): deterministic signals at a fixed rate.

mod acquisition;
mod actor;
mod config;
mod generator;

pub use acquisition::SimAcquisition;
pub use actor::SimInstrumentActor;
pub use config::{Pace, Phase, Shape, SignalConfig, SimInstrumentConfig};
pub use generator::SimGenerator;
