//! Instruments: components that produce streams.

pub mod pacing;
pub mod scpi;
pub mod sim;
