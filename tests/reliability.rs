//! Damage done on purpose: SIGKILL at random moments then `ensemble recover`, signals.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ensemble::manifest::Manifest;

use crate::util::*;

const KILL_EXPERIMENT: &str = r#"
[experiment]
name = "kill"
duration = "60s"

[instruments.daq]
type = "sim"
rate_hz = 1000
channels = ["a", "b"]

[instruments.fast]
type = "sim"
rate_hz = 10000

[instruments.slow]
type = "sim"
rate_hz = 50

[sinks.store]
type = "parquet"
inputs = ["daq", "fast", "slow"]
rotate_interval = "3s"
flush_interval = "1s"
"#;

fn spawn_run(file: &Path, out: &Path) -> Child {
    Command::new(ensemble_bin())
        .arg("run")
        .arg(file)
        .arg("--output")
        .arg(out)
        .arg("--quiet")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ensemble starts")
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos() as i64
}

/// Kill moments from a seed, printed so a failure can be replayed with ENSEMBLE_KILL_SEED.
fn kill_moments() -> Vec<Duration> {
    let mut seed: u64 = std::env::var("ENSEMBLE_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| now_ns() as u64 | 1);
    eprintln!("kill moments from ENSEMBLE_KILL_SEED={seed}");
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // One early kill (during start-up), then moments spread over a few seconds.
    let mut moments = vec![Duration::from_millis(20 + next() % 200)];
    moments.extend((0..3).map(|_| Duration::from_millis(800 + next() % 2700)));
    moments
}

#[test]
fn sigkill_at_random_moments_then_recover_loses_nothing_older_than_the_flush_interval() {
    let work = tempfile::tempdir().expect("tempdir");
    let file = work.path().join("kill.toml");
    std::fs::write(&file, KILL_EXPERIMENT).expect("write experiment");
    for (i, moment) in kill_moments().into_iter().enumerate() {
        let out = work.path().join(format!("out-{i}"));
        let mut child = spawn_run(&file, &out);
        std::thread::sleep(moment);
        let killed_at = now_ns();
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");

        let Some(run_dir) = only_run_dir(&out) else {
            assert!(
                moment < Duration::from_secs(1),
                "no run directory after {moment:?}"
            );
            continue;
        };
        let Ok(before) = Manifest::read(&run_dir) else {
            assert!(
                moment < Duration::from_secs(1),
                "no manifest after {moment:?}"
            );
            continue;
        };
        if let Err(stderr) = recover(&run_dir) {
            panic!("recover after {moment:?}: {stderr}");
        }
        let manifest = Manifest::read(&run_dir).expect("manifest after recovery");
        assert_eq!(manifest.status, "crashed");
        let start_ns = before.started_at.timestamp_nanos_opt().expect("in range");
        for (stream, rate) in [("daq", 1000.0), ("fast", 10_000.0), ("slow", 50.0)] {
            // Nothing unfinished is left, and every file opens.
            for entry in std::fs::read_dir(run_dir.join(stream)).expect("stream dir") {
                let path = entry.expect("entry").path();
                let name = path.to_string_lossy();
                assert!(
                    name.ends_with(".parquet"),
                    "left over after recovery: {name}"
                );
            }
            let batches = read_stream(&run_dir, stream);
            let seq = seqs(&batches);
            assert_contiguous(&seq, seq.len() as u64);
            // Every sample older than the flush interval before the kill is there.
            let old_enough = (killed_at - 1_000_000_000 - start_ns) as f64 / 1e9;
            let required = if old_enough > 0.0 {
                (old_enough * rate).floor() as u64
            } else {
                0
            };
            assert!(
                seq.len() as u64 >= required,
                "{stream} after a kill at {moment:?}: {} rows, {required} required",
                seq.len()
            );
            assert_eq!(manifest.streams[stream].rows, seq.len() as u64);
            assert_eq!(
                manifest.streams[stream].sinks["store"].rows_written,
                seq.len() as u64
            );
        }
    }
}

#[test]
fn recover_refuses_a_run_that_finished() {
    let out = tempfile::tempdir().expect("tempdir");
    let text = KILL_EXPERIMENT.replace("60s", "200ms");
    let report = run(experiment(&text, out.path()));
    let result = Command::new(ensemble_bin())
        .arg("recover")
        .arg(&report.run_dir)
        .output()
        .expect("recover runs");
    assert_eq!(result.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&result.stderr).contains("nothing to recover"));
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[test]
fn first_sigterm_drains_and_saves_everything() {
    let work = tempfile::tempdir().expect("tempdir");
    let file = work.path().join("kill.toml");
    std::fs::write(&file, KILL_EXPERIMENT).expect("write experiment");
    let out = work.path().join("out");
    let child = spawn_run(&file, &out);
    std::thread::sleep(Duration::from_millis(1500));
    signal(&child, "TERM");
    let output = child.wait_with_output().expect("exits");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let run_dir = only_run_dir(&out).expect("run dir");
    let manifest = Manifest::read(&run_dir).expect("manifest");
    assert_eq!(manifest.status, "stopped");
    for (name, stream) in &manifest.streams {
        let seq = seqs(&read_stream(&run_dir, name));
        assert_contiguous(&seq, stream.rows);
        assert!(stream.rows > 0);
    }
}

#[test]
fn a_second_sigint_exits_at_once_and_recover_still_yields_readable_data() {
    let work = tempfile::tempdir().expect("tempdir");
    let file = work.path().join("slow.toml");
    // A sink far slower than its instrument, so the graceful drain takes long.
    let text = KILL_EXPERIMENT.replace(
        "flush_interval = \"1s\"",
        "flush_interval = \"1s\"\nthrottle_rows_per_s = 2000",
    );
    std::fs::write(&file, text).expect("write experiment");
    let out = work.path().join("out");
    let child = spawn_run(&file, &out);
    std::thread::sleep(Duration::from_millis(1500));
    signal(&child, "INT");
    std::thread::sleep(Duration::from_millis(300));
    let second = Instant::now();
    signal(&child, "INT");
    let output = child.wait_with_output().expect("exits");
    assert!(second.elapsed() < Duration::from_secs(3), "exited at once");
    assert_eq!(output.status.code(), Some(130));
    let run_dir = only_run_dir(&out).expect("run dir");
    if let Err(stderr) = recover(&run_dir) {
        panic!("recover: {stderr}");
    }
    for stream in ["daq", "fast", "slow"] {
        let seq = seqs(&read_stream(&run_dir, stream));
        assert_contiguous(&seq, seq.len() as u64);
    }
}
