//! Instruments: components that produce streams.

pub mod pacing;
pub mod sim;
