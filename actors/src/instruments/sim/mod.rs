//! The simulated instrument (`type = "sim"`): deterministic signals at a fixed rate.

mod config;
mod generator;

pub use config::{Pace, Phase, Shape, SignalConfig, SimInstrumentConfig};
pub use generator::SimGenerator;
