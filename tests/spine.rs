//! Runs end to end through the library API: exact rows, contiguous seq, the signal formula,
//! fan-out, a stop in the middle, and a slow best-effort sink beside a lossless one.

use std::f64::consts::TAU;
use std::time::Duration;

use ensemble::manifest::Manifest;

use crate::util::*;

fn sim_and_sink(rate: f64, duration: &str, pace: &str) -> String {
    format!(
        r#"
[experiment]
name = "t"
duration = "{duration}"

[instruments.sig]
type = "sim"
rate_hz = {rate}
channels = ["a", "b"]
unit = "mV"
pace = "{pace}"
signal = {{ shape = "sine", frequency_hz = 3.0, amplitude = 2.0, offset = 0.25, phase = [0.0, 0.5] }}

[sinks.store]
type = "parquet"
inputs = ["sig"]
"#
    )
}

#[test]
fn a_run_lands_in_parquet_with_exact_rows_seq_and_values() {
    let out = tempfile::tempdir().expect("tempdir");
    let report = run(experiment(
        &sim_and_sink(1000.0, "1500ms", "realtime"),
        out.path(),
    ));
    assert_eq!(report.manifest.status, "completed");
    let batches = read_stream(&report.run_dir, "sig");
    let seq = seqs(&batches);
    assert_contiguous(&seq, 1500);
    let ts = timestamps(&batches);
    let start = ts[0];
    for (i, t) in ts.iter().enumerate() {
        assert_eq!(
            *t - start,
            (i as f64 * 1e6).round() as i64,
            "timestamp of row {i}"
        );
    }
    for (column, phase) in [("a", 0.0), ("b", 0.5)] {
        for (i, v) in values(&batches, column).iter().enumerate() {
            let t = i as f64 / 1000.0;
            let expected = 0.25 + 2.0 * (TAU * 3.0 * t + phase).sin();
            assert!(
                (v - expected).abs() < 1e-9,
                "{column}[{i}] = {v}, expected {expected}"
            );
        }
    }
    // Units travel in the field metadata; file metadata names the run.
    let schema = batches[0].schema();
    assert_eq!(
        schema.field_with_name("a").expect("a").metadata()["unit"],
        "mV"
    );
    // The manifest on disk is the one returned, and it counts every row.
    let on_disk = Manifest::read(&report.run_dir).expect("manifest");
    assert_eq!(on_disk, report.manifest);
    let stream = &on_disk.streams["sig"];
    assert_eq!(
        (stream.rows, stream.first_seq, stream.last_seq),
        (1500, Some(0), Some(1499))
    );
    assert_eq!(stream.sinks["store"].rows_written, 1500);
    assert_eq!(stream.first_timestamp_ns, Some(start));
    assert!(on_disk.config.contains("[instruments.sig]"));
}

#[test]
fn file_metadata_names_run_experiment_stream_and_instrument() {
    let out = tempfile::tempdir().expect("tempdir");
    let report = run(experiment(&sim_and_sink(100.0, "200ms", "max"), out.path()));
    let part = &parts(&report.run_dir, "sig")[0];
    let get = |k: &str| file_metadata_value(part, k);
    assert_eq!(
        get("ensemble.run_id").as_deref(),
        Some(report.manifest.run_id.as_str())
    );
    assert_eq!(get("ensemble.experiment").as_deref(), Some("t"));
    assert_eq!(get("ensemble.stream").as_deref(), Some("sig"));
    assert_eq!(get("ensemble.instrument").as_deref(), Some("sig"));
}

#[test]
fn row_counts_are_exact_at_several_rates() {
    let out = tempfile::tempdir().expect("tempdir");
    for (rate, duration, pace, expected) in [
        (1.0, "2500ms", "realtime", 2),
        (7.0, "1s", "realtime", 7),
        (333.3, "900ms", "realtime", 299),
        (100_000.0, "1s", "realtime", 100_000),
        (1_000_000.0, "1500ms", "max", 1_500_000),
    ] {
        let report = run(experiment(&sim_and_sink(rate, duration, pace), out.path()));
        let seq = seqs(&read_stream(&report.run_dir, "sig"));
        assert_contiguous(&seq, expected);
        assert_eq!(report.manifest.streams["sig"].rows, expected, "rate {rate}");
    }
}

#[test]
fn one_instrument_fans_out_to_two_sinks() {
    let out = tempfile::tempdir().expect("tempdir");
    let text = r#"
[experiment]
name = "fan"
duration = "1s"

[instruments.sig]
type = "sim"
rate_hz = 50000
pace = "max"
max_batch_rows = 1000

[sinks.first]
type = "parquet"
inputs = ["sig"]

[sinks.second]
type = "parquet"
inputs = ["sig"]
subdirectory = "copy"
compression = "snappy"
rotate_rows = 7000
"#;
    let report = run(experiment(text, out.path()));
    assert_eq!(report.manifest.status, "completed");
    // Both sinks write into the same run layout; each records its own parts.
    let stream = &report.manifest.streams["sig"];
    assert_eq!(stream.sinks["first"].rows_written, 50_000);
    assert_eq!(stream.sinks["second"].rows_written, 50_000);
    assert_eq!(
        stream.sinks["second"].parts.len(),
        8,
        "50,000 rows in parts of 7,000"
    );
    assert_eq!(stream.dropped_rows, 0);
}

#[test]
fn a_stop_in_the_middle_keeps_every_acquired_row() {
    let out = tempfile::tempdir().expect("tempdir");
    let report = run_and_stop(
        experiment(&sim_and_sink(2000.0, "60s", "realtime"), out.path()),
        Duration::from_millis(1200),
    );
    assert_eq!(report.manifest.status, "stopped");
    let produced = report.manifest.streams["sig"].rows;
    assert!(
        (2000..120_000).contains(&produced),
        "{produced} rows in about 1.2 s"
    );
    let seq = seqs(&read_stream(&report.run_dir, "sig"));
    assert_contiguous(&seq, produced);
    assert_eq!(
        report.manifest.streams["sig"].sinks["store"].rows_written,
        produced
    );
    assert!(report.manifest.stopped_at.is_some());
}

#[test]
fn a_slow_best_effort_sink_drops_and_counts_while_lossless_loses_nothing() {
    let out = tempfile::tempdir().expect("tempdir");
    let text = r#"
[experiment]
name = "overload"
duration = "2s"

[instruments.fast]
type = "sim"
rate_hz = 100000
batch_interval = "10ms"

[sinks.archive]
type = "parquet"
inputs = ["fast"]
delivery = "lossless"

[sinks.preview]
type = "parquet"
inputs = ["fast"]
delivery = "best_effort"
subdirectory = "preview"
queue_batches = 2
throttle_rows_per_s = 20000
"#;
    let started = std::time::Instant::now();
    let report = run(experiment(text, out.path()));
    let elapsed = started.elapsed();
    let stream = &report.manifest.streams["fast"];
    assert_eq!(stream.rows, 200_000);
    // The lossless sink has everything, in order.
    assert_eq!(stream.sinks["archive"].rows_written, 200_000);
    // The best-effort sink dropped, and every row is either written or counted as dropped.
    let preview = &stream.sinks["preview"];
    assert!(
        preview.dropped_rows > 0,
        "a sink at a fifth of the rate must drop"
    );
    assert_eq!(preview.rows_written + preview.dropped_rows, 200_000);
    // The slow sink did not hold up the instrument: the run did not take ten times as long.
    assert!(elapsed < Duration::from_secs(8), "took {elapsed:?}");
    let archive_seq = seqs(&read_stream(&report.run_dir, "fast"));
    assert_contiguous(&archive_seq, 200_000);
    let preview_seq = seqs(&read_stream(&report.run_dir.join("preview"), "fast"));
    assert_eq!(preview_seq.len() as u64, preview.rows_written);
    assert!(
        preview_seq.windows(2).all(|w| w[0] < w[1]),
        "drops keep the order"
    );
}
