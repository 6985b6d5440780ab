//! Instruments: components that produce streams.

pub mod sim;
