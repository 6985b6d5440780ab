//! Experiment files: parse, check and compile (placeholder until the compiler lands).

mod experiment;

pub use experiment::*;
