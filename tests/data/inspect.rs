//! `ensemble inspect`: figures equal to DuckDB's over the same files, gaps equal to the
//! manifest's overflow; on a SIGKILLed run, exactly what `recover` restores, nothing changed.

use std::time::Duration;

use ensemble::manifest::Manifest;

use super::synthetic::snapshot;
use super::*;

/// An instrument offering 20 kHz into a sink throttled to 8 kHz through a short lossless link,
/// with a device that holds 50 ms: it overflows, leaving counted holes in `seq`.
const OVERFLOWING: &str = r#"
[experiment]
name = "gaps"
duration = "2s"

[experiment.metadata]
sample = "G1"

[instruments.fast]
type = "sim"
rate_hz = 20000
channels = ["a"]
unit = "V"
device_buffer = "50ms"

[instruments.calm]
type = "sim"
rate_hz = 100
channels = ["t"]
unit = "K"

[sinks.slow]
type = "parquet"
inputs = ["fast", "calm"]
delivery = "lossless"
queue_batches = 2
throttle_rows_per_s = 8000
row_group_rows = 4096
"#;

#[test]
fn inspect_json_equals_duckdb_and_gaps_equal_the_manifests_overflow() {
    let duckdb = python_has("duckdb");
    let work = tempfile::tempdir().expect("tempdir");
    let report = run(experiment(OVERFLOWING, work.path()));
    let run_dir = report.run_dir;
    let manifest = Manifest::read(&run_dir).expect("manifest");
    let overflow = manifest.streams["fast"].overflow_rows;
    assert!(
        overflow > 0,
        "the instrument overflowed: {:?}",
        manifest.streams["fast"]
    );

    let before = snapshot(&run_dir);
    let json: serde_json::Value =
        serde_json::from_str(&ok_stdout(&ensemble(&[&"inspect", &run_dir, &"--json"])))
            .expect("inspect --json is JSON");
    assert_eq!(snapshot(&run_dir), before, "inspect changes nothing");
    assert_eq!(json["status"], "completed");
    assert_eq!(json["metadata"]["sample"], "G1");
    let streams = json["streams"].as_array().expect("streams");
    let fast = streams
        .iter()
        .find(|s| s["stream"] == "fast")
        .expect("fast");
    let calm = streams
        .iter()
        .find(|s| s["stream"] == "calm")
        .expect("calm");

    let gaps = fast["gaps"].as_array().expect("gaps");
    let missing: u64 = gaps
        .iter()
        .map(|g| g["missing"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        missing, overflow,
        "the holes in seq are exactly the overflow"
    );
    assert_eq!(fast["missing_rows"], overflow);
    assert_eq!(fast["causes"]["overflow_rows"], overflow);
    assert_eq!(fast["causes"]["unexplained_rows"], 0);
    assert!(gaps.iter().all(|g| g["cause"] == "overflow"), "{gaps:?}");
    assert_eq!(calm["gaps"].as_array().map(Vec::len), Some(0));
    assert_eq!(fast["rows"], manifest.streams["fast"].rows);
    assert_eq!(fast["channels"][0]["unit"], "V");
    assert_eq!(calm["channels"][0]["unit"], "K");
    assert!(fast["compression_ratio"].as_f64().unwrap_or(0.0) > 1.0);
    let rate = calm["effective_rate_hz"].as_f64().expect("rate");
    assert!((rate - 100.0).abs() < 1.0, "calm at 100 Hz: {rate}");

    if !external_available("python3 with duckdb", duckdb) {
        return;
    }
    let script = r#"
import sys, json, duckdb
run = sys.argv[1]
out = {}
for s in ("fast", "calm"):
    rows, lo, hi, first, last = duckdb.sql(
        f"select count(*), epoch_ns(min(timestamp)), epoch_ns(max(timestamp)), min(seq), max(seq) "
        f"from read_parquet('{run}/{s}/*.parquet')").fetchall()[0]
    ngaps, missing = duckdb.sql(
        f"select count(*), coalesce(sum(seq - prev - 1), 0) from (select seq, lag(seq) over (order by seq) prev "
        f"from read_parquet('{run}/{s}/*.parquet')) where seq - prev > 1").fetchall()[0]
    out[s] = [rows, lo, hi, first, last, ngaps, int(missing)]
print(json.dumps(out))
"#;
    let counted: serde_json::Value =
        serde_json::from_str(&python(script, &[&run_dir])).expect("python printed JSON");
    for s in [fast, calm] {
        let name = s["stream"].as_str().expect("name");
        let mine = serde_json::json!([
            s["rows"],
            s["first_timestamp_ns"],
            s["last_timestamp_ns"],
            s["first_seq"],
            s["last_seq"],
            s["gaps"].as_array().map(Vec::len),
            s["missing_rows"],
        ]);
        assert_eq!(mine, counted[name], "{name}: inspect vs DuckDB");
    }
}

const KILLED: &str = r#"
[experiment]
name = "killed"
duration = "60s"

[instruments.daq]
type = "sim"
rate_hz = 1000
channels = ["a", "b"]

[instruments.fast]
type = "sim"
rate_hz = 20000

[sinks.store]
type = "parquet"
inputs = ["daq", "fast"]
rotate_interval = "1s"
row_group_rows = 4096
flush_interval = "500ms"
"#;

#[test]
fn inspect_on_a_killed_run_reports_what_recover_restores_and_changes_nothing() {
    let work = tempfile::tempdir().expect("tempdir");
    let file = work.path().join("killed.toml");
    std::fs::write(&file, KILLED).expect("write config");
    let out = work.path().join("runs");
    let mut child = std::process::Command::new(ensemble_bin())
        .args(["run", "--quiet", "--output"])
        .arg(&out)
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ensemble starts");
    std::thread::sleep(Duration::from_millis(2600));
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let run_dir = only_run_dir(&out).expect("the run made its directory");

    let before = snapshot(&run_dir);
    let text = ok_stdout(&ensemble(&[&"inspect", &run_dir]));
    let json: serde_json::Value =
        serde_json::from_str(&ok_stdout(&ensemble(&[&"inspect", &run_dir, &"--json"])))
            .expect("JSON");
    assert_eq!(snapshot(&run_dir), before, "byte for byte unchanged");
    assert_eq!(json["status"], "crashed-unrecovered", "{text}");
    assert!(text.contains("would restore"), "{text}");
    let recoverable = json["recoverable_rows"].as_u64().expect("count");
    assert!(recoverable > 0, "the open parts hold rows: {text}");
    let mut predicted = std::collections::BTreeMap::new();
    for s in json["streams"].as_array().expect("streams") {
        let unfinished: u64 = s["unfinished"]
            .as_array()
            .expect("unfinished")
            .iter()
            .map(|u| u["rows"].as_u64().unwrap_or(0))
            .sum();
        let name = s["stream"].as_str().expect("name").to_string();
        predicted.insert(name, s["rows"].as_u64().unwrap_or(0) + unfinished);
    }

    recover(&run_dir).expect("recover");
    for (stream, rows) in &predicted {
        let restored = seqs(&read_stream(&run_dir, stream)).len() as u64;
        assert_eq!(
            restored, *rows,
            "{stream}: inspect's prediction vs what recover restored"
        );
    }
    let after: serde_json::Value =
        serde_json::from_str(&ok_stdout(&ensemble(&[&"inspect", &run_dir, &"--json"])))
            .expect("JSON");
    assert_eq!(after["status"], "crashed");
    assert_eq!(after["recoverable_rows"], 0);
}
