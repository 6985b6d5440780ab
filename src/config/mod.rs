//! Experiment files: parse, check and compile them into an [`Experiment`].
//!
//! An experiment is a TOML file with an `[experiment]` table, named `[instruments.NAME]`,
//! `[stages.NAME]` and `[sinks.NAME]` tables, and optionally a `[plan]`. [`compile`] turns its text into an
//! [`Experiment`] in three steps, without touching any device, file or network:
//!
//! 1. **Parse** (`raw`): TOML syntax, known top-level tables, one table per component.
//! 2. **Compile** (`compiler`): each key read and checked, defaults applied. The compiler owns
//!    the keys every component has (`type`, `inputs`, `delivery`, `queue_batches`, `on_failure`,
//!    `max_restarts`, `restart_window`, `restart_backoff`); the remaining keys go to the
//!    component's own config struct, which rejects unknown keys and checks its values.
//! 3. **Graph** (`graph`): names unique across kinds, every input exists and produces a stream,
//!    no input listed twice, no cycle.
//!
//! Every problem is collected, not just the first, and each points at its key or value:
//!
//! ```text
//! configs/invalid/x.toml:7:11: instruments.scope.rate_hz: must be a positive number, got -5
//! ```
//!
//! # Example
//!
//! ```
//! use std::path::Path;
//!
//! let text = r#"
//! [experiment]
//! name = "bench"
//! duration = "2s"
//!
//! [instruments.scope]
//! type = "sim"
//! rate_hz = 1000
//! channels = ["a", "b"]
//!
//! [sinks.store]
//! type = "parquet"
//! inputs = ["scope"]
//! "#;
//! let experiment = ensemble::config::compile(Path::new("bench.toml"), text).unwrap();
//! assert_eq!(experiment.instruments.len(), 1);
//! assert_eq!(experiment.sinks[0].queue_batches, 16);
//!
//! let broken = text.replace("1000", "-5");
//! let errors = ensemble::config::compile(Path::new("bench.toml"), &broken).unwrap_err();
//! assert_eq!(
//!     errors.to_string(),
//!     "bench.toml:8:11: instruments.scope.rate_hz: must be a positive number, got -5"
//! );
//! ```
//!
//! # Profiles
//!
//! An `scpi` instrument may name a `profile`: a table in `instruments/NAME.toml` that its own
//! keys override (tables merge key by key; arrays and other values replace). Finding it reads a
//! file, so it comes from a [`ProfileSource`] the caller passes to [`compile_with`]; [`load`]
//! looks in the experiment file's `instruments/` directory, then in `configs/instruments/`.
//! [`compile`] has no profiles.
//!
//! # Stages
//!
//! `[stages.NAME]` tables (`fft`, `fir`, `decimate`, `stats`) read one upstream stream and are
//! built against its schema while compiling, so a channel that does not exist or a cutoff above
//! Nyquist is a config error, not a run-time failure (see `docs/stages.md`).

use std::path::Path;

mod compiler;
mod component;
mod error;
mod experiment;
mod expr;
mod graph;
mod instrument;
pub mod metadata;
mod plan;
mod plan_checks;
mod profile;
mod raw;
mod sink;
mod stage_resolve;
mod stages;
mod summary;
mod suspend;
mod value;

#[cfg(test)]
mod tests;

pub use compiler::DEFAULT_MAX_MEMORY_MB;
pub use component::DEFAULT_QUEUE_BATCHES;
pub use error::{ConfigError, ConfigErrors};
pub use experiment::{
    Experiment, InstrumentKind, InstrumentSpec, OnFailure, Plan, SinkKind, SinkSpec, StageKind,
    StageSpec, Supervision, UseStage,
};
pub use instrument::DEFAULT_SIM_STALL_TIMEOUT;
pub use profile::{DirProfiles, MapProfiles, NoProfiles, ProfileError, ProfileSource, ProfileText};

/// Compiles the text of an experiment file; `path` is only used to label errors.
///
/// Pure: reads nothing, opens no device. On failure, returns every problem found, sorted by
/// position (see [`ConfigErrors`]). An instrument that names a `profile` is an error here: use
/// [`compile_with`] or [`load`].
pub fn compile(path: &Path, text: &str) -> Result<Experiment, ConfigErrors> {
    compile_with(path, text, &NoProfiles)
}

/// Compiles the text of an experiment file, taking the profiles that instruments name from
/// `profiles`. Otherwise as [`compile`]; errors inside a profile point into the profile's file.
pub fn compile_with(
    path: &Path,
    text: &str,
    profiles: &dyn ProfileSource,
) -> Result<Experiment, ConfigErrors> {
    let mut diagnostics = error::Diagnostics::default();
    let experiment = compiler::compile(path, text, profiles, &mut diagnostics);
    let mut errors = diagnostics.into_errors(path, text);
    match experiment {
        Some(experiment) if errors.is_empty() => Ok(experiment),
        _ => {
            if errors.is_empty() {
                // The compiler returns no experiment only after reporting why; keep that promise
                // visible rather than returning an empty error list.
                errors.push(ConfigError {
                    file: path.to_path_buf(),
                    line: 1,
                    column: 1,
                    message: "could not compile the experiment (an internal error: please \
                              report it)"
                        .to_string(),
                });
            }
            Err(ConfigErrors::new(errors))
        }
    }
}

/// Reads and compiles an experiment file, with profiles from [`DirProfiles::for_experiment`].
///
/// A file that cannot be read gives a single error, `FILE: cannot read: reason`.
pub fn load(path: &Path) -> Result<Experiment, ConfigErrors> {
    match std::fs::read_to_string(path) {
        Ok(text) => compile_with(path, &text, &DirProfiles::for_experiment(path)),
        Err(e) => Err(ConfigErrors::new(vec![ConfigError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("cannot read: {e}"),
        }])),
    }
}
