//! Supervision under injected faults, and a disk that fills up.

use std::process::Command;

use ensemble::manifest::Manifest;

use crate::util::*;

fn faulty(fault: &str, policy: &str) -> String {
    format!(
        r#"
[experiment]
name = "faults"
duration = "2s"

[instruments.flaky]
type = "sim"
rate_hz = 1000
restart_backoff = "50ms"
{policy}
fault = {fault}

[instruments.steady]
type = "sim"
rate_hz = 500

[sinks.store]
type = "parquet"
inputs = ["flaky", "steady"]
"#
    )
}

fn events(manifest: &Manifest, component: &str, event: &str) -> usize {
    manifest
        .events
        .iter()
        .filter(|e| e.component == component && e.event == event)
        .count()
}

#[test]
fn an_erroring_instrument_is_restarted_and_its_stream_stays_whole() {
    let out = tempfile::tempdir().expect("tempdir");
    let text = faulty(r#"{ kind = "error", after_rows = 300, times = 2 }"#, "");
    let report = run(experiment(&text, out.path()));
    let m = &report.manifest;
    assert_eq!(m.status, "completed", "{:?}", m.events);
    assert_eq!(m.streams["flaky"].restarts, 2);
    assert_eq!(events(m, "flaky", "failed"), 2);
    assert_eq!(events(m, "flaky", "restarted"), 2);
    // A restart continues the stream where it stopped: nothing lost, nothing repeated.
    assert_contiguous(&seqs(&read_stream(&report.run_dir, "flaky")), 2000);
    assert_contiguous(&seqs(&read_stream(&report.run_dir, "steady")), 1000);
}

#[test]
fn a_panicking_instrument_is_detected_and_restarted() {
    let out = tempfile::tempdir().expect("tempdir");
    let text = faulty(r#"{ kind = "panic", after_rows = 500, times = 1 }"#, "");
    let report = run(experiment(&text, out.path()));
    let m = &report.manifest;
    assert_eq!(m.status, "completed", "{:?}", m.events);
    assert_eq!(m.streams["flaky"].restarts, 1);
    assert!(
        m.events.iter().any(|e| e.detail.contains("panicked")),
        "{:?}",
        m.events
    );
    assert_contiguous(&seqs(&read_stream(&report.run_dir, "flaky")), 2000);
}

#[test]
fn too_many_restarts_escalate_to_a_clean_abort() {
    let out = tempfile::tempdir().expect("tempdir");
    let text = faulty(
        r#"{ kind = "error", after_rows = 100 }"#,
        "max_restarts = 2\nrestart_window = \"1m\"",
    );
    let report = run(experiment(&text, out.path()));
    let m = &report.manifest;
    assert_eq!(m.status, "failed");
    assert_eq!(events(m, "flaky", "gave_up"), 1);
    assert_eq!(m.streams["flaky"].restarts, 2);
    assert!(m.stop_reason.as_deref().unwrap_or("").contains("flaky"));
    // Everything acquired before the abort is stored, in order, for both instruments.
    let flaky = seqs(&read_stream(&report.run_dir, "flaky"));
    assert_contiguous(&flaky, 300);
    let steady = seqs(&read_stream(&report.run_dir, "steady"));
    assert_contiguous(&steady, m.streams["steady"].rows);
    assert!(!steady.is_empty());
}

#[test]
fn continue_leaves_the_failed_instrument_out_and_the_run_goes_on() {
    let out = tempfile::tempdir().expect("tempdir");
    let text = faulty(
        r#"{ kind = "error", after_rows = 100 }"#,
        "on_failure = \"continue\"",
    );
    let report = run(experiment(&text, out.path()));
    let m = &report.manifest;
    assert_eq!(m.status, "completed");
    assert_contiguous(&seqs(&read_stream(&report.run_dir, "flaky")), 100);
    assert_contiguous(&seqs(&read_stream(&report.run_dir, "steady")), 1000);
}

#[test]
fn abort_stops_the_run_cleanly_at_the_first_failure() {
    let out = tempfile::tempdir().expect("tempdir");
    let text = faulty(
        r#"{ kind = "error", after_rows = 100 }"#,
        "on_failure = \"abort\"",
    );
    let report = run(experiment(&text, out.path()));
    assert_eq!(report.manifest.status, "failed");
    assert_eq!(report.manifest.streams["flaky"].restarts, 0);
    assert_contiguous(&seqs(&read_stream(&report.run_dir, "flaky")), 100);
}

#[test]
fn a_stalled_instrument_is_detected_abandoned_and_restarted() {
    let out = tempfile::tempdir().expect("tempdir");
    // Hangs after 300 rows in its first start: no rows, no heartbeat, deaf to a stop.
    let text = faulty(
        r#"{ kind = "stall", after_rows = 300, times = 1 }"#,
        "stall_timeout = \"1s\"",
    )
    .replace("duration = \"2s\"", "duration = \"4s\"");
    let report = run(experiment(&text, out.path()));
    let m = &report.manifest;
    assert_eq!(m.status, "completed", "{:?}", m.events);
    assert_eq!(m.streams["flaky"].restarts, 1);
    let stalled: Vec<_> = m
        .events
        .iter()
        .filter(|e| e.component == "flaky" && e.event == "failed")
        .collect();
    assert_eq!(stalled.len(), 1, "{:?}", m.events);
    assert!(stalled[0].detail.contains("stalled"), "{stalled:?}");
    // The simulated device kept what came due during the stall (its buffer is 10 s), so the
    // restarted loop delivers every row: nothing lost, nothing repeated.
    assert_eq!(m.streams["flaky"].overflow_rows, 0);
    assert_contiguous(&seqs(&read_stream(&report.run_dir, "flaky")), 4000);
    assert_contiguous(&seqs(&read_stream(&report.run_dir, "steady")), 2000);
}

#[test]
fn a_stall_under_abort_ends_the_run_instead_of_hanging_it() {
    let out = tempfile::tempdir().expect("tempdir");
    let text = faulty(
        r#"{ kind = "stall", after_rows = 200 }"#,
        "stall_timeout = \"500ms\"\non_failure = \"abort\"",
    )
    .replace("duration = \"2s\"", "duration = \"30s\"");
    let started = std::time::Instant::now();
    let report = run(experiment(&text, out.path()));
    let m = &report.manifest;
    assert_eq!(m.status, "failed");
    let reason = m.stop_reason.as_deref().unwrap_or("");
    assert!(
        reason.contains("flaky") && reason.contains("stalled"),
        "{reason}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "the run stopped at the stall, not at the end of its 30 s plan"
    );
    assert_contiguous(&seqs(&read_stream(&report.run_dir, "flaky")), 200);
    let steady = seqs(&read_stream(&report.run_dir, "steady"));
    assert_contiguous(&steady, m.streams["steady"].rows);
    assert!(!steady.is_empty());
}

#[test]
fn a_full_disk_stops_the_run_with_an_error_naming_the_file_and_keeps_what_was_written() {
    let work = tempfile::tempdir().expect("tempdir");
    let file = work.path().join("full.toml");
    // `a` rotates into small parts; `b` grows one file until the file-size limit (the "disk")
    // refuses it.
    std::fs::write(
        &file,
        r#"
[experiment]
name = "full"
duration = "30s"

[instruments.a]
type = "sim"
rate_hz = 20000
channels = ["x", "y", "z", "w"]

[instruments.b]
type = "sim"
rate_hz = 100000
channels = ["x", "y", "z", "w"]

[sinks.rotating]
type = "parquet"
inputs = ["a"]
compression = "none"
rotate_rows = 2000

[sinks.unbounded]
type = "parquet"
inputs = ["b"]
subdirectory = "big"
compression = "none"
row_group_rows = 10000
"#,
    )
    .expect("write experiment");
    let out = work.path().join("out");
    // A 2 MB limit per file; SIGXFSZ ignored so that writes fail with EFBIG instead.
    let output = Command::new("bash")
        .arg("-c")
        .arg(r#"ulimit -f 2048; trap '' XFSZ; exec "$0" run "$1" --output "$2" --quiet"#)
        .arg(ensemble_bin())
        .arg(&file)
        .arg(&out)
        .output()
        .expect("bash runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let run_dir = only_run_dir(&out).expect("a run directory");
    let m = Manifest::read(&run_dir).expect("manifest");
    assert_eq!(m.status, "failed");
    let reason = m.stop_reason.clone().unwrap_or_default();
    assert!(
        reason.contains("big/b/part-000000"),
        "the error names the file: {reason}"
    );
    assert!(reason.contains("unbounded"), "{reason}");
    // What was finished before the failure stays readable, in order.
    let a = seqs(&read_stream(&run_dir, "a"));
    // `a` finishes a part every 0.1 s; `b` fills its 2 MB file in about 0.6 s.
    assert!(a.len() >= 2_000, "{} rows of a", a.len());
    assert_contiguous(&a, a.len() as u64);
    assert_eq!(
        m.streams["a"].sinks["rotating"].rows_written,
        a.len() as u64
    );
}

#[test]
fn a_stream_directory_that_disappears_stops_the_run_with_an_error_naming_the_path() {
    let out = tempfile::tempdir().expect("tempdir");
    let text = r#"
[experiment]
name = "gone"
duration = "30s"

[instruments.b]
type = "sim"
rate_hz = 10000

[sinks.store]
type = "parquet"
inputs = ["b"]
rotate_rows = 5000
"#;
    // Once the first part is finished, the stream's directory is moved away (as an operator's
    // cleanup script or an unmounted share would): the next part cannot be created.
    let watched = out.path().to_path_buf();
    let mover = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Some(run_dir) = only_run_dir(&watched) {
                if run_dir.join("b/part-000000.parquet").exists() {
                    std::fs::rename(run_dir.join("b"), run_dir.join("b-moved"))
                        .expect("move the directory");
                    return Some(run_dir);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    });
    let started = std::time::Instant::now();
    let report = run(experiment(text, out.path()));
    let run_dir = mover
        .join()
        .expect("mover")
        .expect("the first part appeared");
    assert_eq!(run_dir, report.run_dir);
    let m = &report.manifest;
    assert_eq!(m.status, "failed", "{:?}", m.events);
    let reason = m.stop_reason.clone().unwrap_or_default();
    assert!(
        reason.contains("store") && reason.contains("b/part-0000"),
        "the error names the sink and the file: {reason}"
    );
    eprintln!("stop reason: {reason}");
    assert!(started.elapsed() < std::time::Duration::from_secs(25));
    // The parts finished before stay readable where they went, in order from seq 0.
    let moved = seqs(&read_stream(&run_dir, "b-moved"));
    assert!(
        moved.len() >= 5000,
        "at least the first part: {}",
        moved.len()
    );
    assert_eq!(moved.len() % 5000, 0, "only whole, finished parts");
    assert_contiguous(&moved, moved.len() as u64);
}
