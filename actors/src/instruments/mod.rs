//! Instruments: components that produce streams.

pub mod scpi;
pub mod sim;
