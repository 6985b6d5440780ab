//! The command line: `validate` on every fixture, `run` end to end, exit codes.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::ensemble_bin;

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs")
}

fn tomls(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("configs directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_experiment_under_configs_validates() {
    let files = tomls(&configs_dir());
    assert!(files.iter().any(|f| f.ends_with("quickstart.toml")));
    for file in files {
        let out = Command::new(ensemble_bin())
            .arg("validate")
            .arg(&file)
            .output()
            .expect("ensemble runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}: {stderr}", file.display());
        assert!(
            stdout.contains("instruments"),
            "{}: {stdout}",
            file.display()
        );
    }
}

#[test]
fn every_invalid_fixture_fails_validate_with_exit_code_2_and_creates_nothing() {
    let files = tomls(&configs_dir().join("invalid"));
    assert!(files.len() >= 25, "{} fixtures", files.len());
    for file in files {
        let text = std::fs::read_to_string(&file).expect("fixture");
        let out = Command::new(ensemble_bin())
            .arg("run")
            .arg(&file)
            .arg("--output")
            .arg(std::env::temp_dir().join("ensemble-must-not-exist"))
            .output()
            .expect("ensemble runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", file.display());
        for expect in text.lines().filter_map(|l| l.strip_prefix("# expect: ")) {
            assert!(
                stderr.contains(expect.trim()),
                "{}: wanted {expect:?} in\n{stderr}",
                file.display()
            );
        }
        assert!(
            !std::env::temp_dir()
                .join("ensemble-must-not-exist")
                .exists()
        );
    }
}

#[test]
fn run_prints_a_summary_and_the_run_directory_last() {
    let out_dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(ensemble_bin())
        .arg("run")
        .arg(configs_dir().join("quickstart.toml"))
        .arg("--duration")
        .arg("300ms")
        .arg("--output")
        .arg(out_dir.path())
        .output()
        .expect("ensemble runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().expect("some output");
    let run_dir = PathBuf::from(last);
    assert!(run_dir.starts_with(out_dir.path()), "{last}");
    assert!(run_dir.join("run.json").exists());
    assert!(stdout.contains("status: completed"), "{stdout}");
    // Not a terminal: progress comes as plain lines on stderr.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("scope rows="), "{stderr}");
}

#[test]
fn a_missing_file_and_bad_flags_exit_with_2() {
    let out = Command::new(ensemble_bin())
        .args(["validate", "/nonexistent/experiment.toml"])
        .output()
        .expect("ensemble runs");
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(ensemble_bin())
        .args(["run", "configs/quickstart.toml", "--duration", "0s"])
        .output()
        .expect("ensemble runs");
    assert_eq!(out.status.code(), Some(2));
}
