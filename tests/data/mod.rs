//! The data tools end to end (issue 13): run metadata, `runs`, `inspect`, `export`, `plot`,
//! thumbnails, and their errors on bad input.

mod catalog;
mod export;
mod inspect;
mod metadata;
mod plot;
mod synthetic;

use std::path::Path;
use std::process::{Command, Output};

use crate::util::*;

/// Runs `ensemble ARGS...` and returns what it did.
fn ensemble(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut command = Command::new(ensemble_bin());
    for a in args {
        command.arg(a);
    }
    command.output().expect("ensemble starts")
}

/// Its standard output as text, asserting it succeeded.
fn ok_stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Whether python3 can import `modules`.
fn python_has(modules: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs a Python script with arguments; panics with its output if it fails.
fn python(script: &str, args: &[&Path]) -> String {
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A short real run of one 200 Hz two-channel instrument, with metadata.
fn small_run(out: &Path) -> std::path::PathBuf {
    let text = r#"
[experiment]
name = "small"
duration = "500ms"

[experiment.metadata]
sample = "B7"
operator = "Ada"

[instruments.probe]
type = "sim"
rate_hz = 200
channels = ["x", "y"]
unit = "V"
signal = { shape = "sine", frequency_hz = 2, amplitude = 1.0 }

[sinks.store]
type = "parquet"
inputs = ["probe"]
"#;
    run(experiment(text, out)).run_dir
}
