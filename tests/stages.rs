//! Processing stages end to end: a signal through fft, fir, decimate and stats into Parquet,
//! every stream read back (parquet crate, DuckDB) with exact rows, contiguous `seq`, units and
//! the spectrum's peak where the sine is.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, RecordBatch};

use ensemble::run::RunReport;

use crate::util::*;

/// 20,000 rows at 10 kHz of a 312.5 Hz sine (exactly bin 32 of a 1024-point FFT) plus noise.
const SPECTRUM: &str = r#"
[experiment]
name = "spectrum"
duration = "2s"

# Declared before the stages it reads: the compiler orders stages by their inputs.
[stages.summary]
type = "stats"
inputs = ["slow"]
window = 100

[instruments.sig]
type = "sim"
rate_hz = 10000
channels = ["ch0", "ch1"]
unit = "V"
pace = "max"
max_batch_rows = 700
signal = { shape = "sine", frequency_hz = 312.5, amplitude = 1.0, noise = 0.05, phase = [0.0, 1.0] }

[stages.spectrum]
type = "fft"
inputs = ["sig.ch0"]
size = 1024
overlap = 0.5
output = "psd"

[stages.lowpass]
type = "fir"
inputs = ["sig"]
design = { kind = "lowpass", cutoff_hz = 1000.0, taps = 101 }

[stages.slow]
type = "decimate"
inputs = ["lowpass"]
factor = 5

[sinks.store]
type = "parquet"
inputs = ["sig", "spectrum", "lowpass", "slow", "summary"]
rotate_rows = 1500
"#;

/// Rows of each stream: the input, whole FFT windows ((n - size) / hop + 1), one per FIR input
/// row, floor(n / factor) decimated rows, whole statistics windows.
const ROWS: [(&str, u64); 5] = [
    ("sig", 20_000),
    ("spectrum", (20_000 - 1024) / 512 + 1),
    ("lowpass", 20_000),
    ("slow", 20_000 / 5),
    ("summary", 20_000 / 5 / 100),
];

fn unit_of(batches: &[RecordBatch], column: &str) -> String {
    let schema = batches[0].schema();
    let field = schema
        .field_with_name(column)
        .unwrap_or_else(|_| panic!("column {column}"));
    field.metadata().get("unit").cloned().unwrap_or_default()
}

#[test]
fn a_signal_through_every_stage_lands_in_parquet_with_exact_rows_units_and_peak() {
    let out = tempfile::tempdir().expect("tempdir");
    let e = experiment(SPECTRUM, out.path());
    let order: Vec<&str> = e.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(order, ["spectrum", "lowpass", "slow", "summary"]);
    let report = run(e);
    assert_eq!(report.manifest.status, "completed", "{:?}", report.manifest);

    for (stream, rows) in ROWS {
        let batches = read_stream(&report.run_dir, stream);
        assert_contiguous(&seqs(&batches), rows);
        let entry = &report.manifest.streams[stream];
        assert_eq!(entry.rows, rows, "{stream}: rows in the manifest");
        assert_eq!(entry.expected_rows, Some(rows), "{stream}: expected rows");
        assert_eq!(entry.sinks["store"].rows_written, rows, "{stream}: written");
        assert_eq!(entry.dropped_rows, 0, "{stream}: nothing dropped");
    }

    // The manifest knows each stage's type and output rate.
    let streams = &report.manifest.streams;
    for (stream, ty, rate) in [
        ("spectrum", "fft", 10_000.0 / 512.0),
        ("lowpass", "fir", 10_000.0),
        ("slow", "decimate", 2_000.0),
        ("summary", "stats", 20.0),
    ] {
        assert_eq!(streams[stream].component_type, ty, "{stream}");
        assert_eq!(streams[stream].rate_hz, Some(rate), "{stream}");
    }
    assert!(
        !streams["sig"].sinks.contains_key("lowpass"),
        "stages are not sinks in the manifest"
    );

    // Units travel: FIR and decimation keep V, statistics keep V, the PSD is V²/Hz.
    let spectrum = read_stream(&report.run_dir, "spectrum");
    assert_eq!(unit_of(&spectrum, "ch0"), "V²/Hz");
    assert!(spectrum[0].schema().column_with_name("ch1").is_none());
    assert_eq!(
        unit_of(&read_stream(&report.run_dir, "lowpass"), "ch1"),
        "V"
    );
    assert_eq!(unit_of(&read_stream(&report.run_dir, "slow"), "ch0"), "V");
    let summary = read_stream(&report.run_dir, "summary");
    for column in ["ch0_mean", "ch0_std", "ch1_min", "ch1_max", "ch1_rms"] {
        assert_eq!(unit_of(&summary, column), "V", "{column}");
    }

    // 312.5 Hz at 10 kHz with 1024 points is bin 32, in every window.
    for batch in &spectrum {
        let lists = batch
            .column_by_name("ch0")
            .expect("ch0")
            .as_fixed_size_list();
        assert_eq!(lists.value_length(), 513);
        for row in 0..lists.len() {
            let bins = lists.value(row);
            let bins = bins.as_primitive::<Float64Type>();
            let peak = (0..bins.len())
                .max_by(|&a, &b| bins.value(a).total_cmp(&bins.value(b)))
                .expect("bins");
            assert_eq!(peak, 32, "window {row}");
        }
    }

    // After the filters settle, the statistics see the sine: mean ≈ 0, rms ≈ 1/√2.
    let rms = values(&summary, "ch0_rms");
    let mean = values(&summary, "ch0_mean");
    for (i, (rms, mean)) in rms.iter().zip(&mean).enumerate().skip(1) {
        assert!((rms - 0.5f64.sqrt()).abs() < 0.03, "window {i}: rms {rms}");
        // 50 ms is 15.6 periods: the partial period leaves a small mean.
        assert!(mean.abs() < 0.05, "window {i}: mean {mean}");
    }
}

fn python_has_duckdb() -> bool {
    Command::new("python3")
        .args(["-c", "import duckdb"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn duckdb_reads_every_stage_stream() {
    if !external_available("python3 with duckdb", python_has_duckdb()) {
        return;
    }
    let out = tempfile::tempdir().expect("tempdir");
    let report = run(experiment(SPECTRUM, out.path()));
    assert_eq!(report.manifest.status, "completed");
    let script = r#"
import sys, duckdb
run = sys.argv[1]
for arg in sys.argv[2:]:
    stream, rows = arg.split("=")
    rows = int(rows)
    got = duckdb.sql(
        f"select count(*), min(seq), max(seq), count(distinct seq) "
        f"from read_parquet('{run}/{stream}/*.parquet')"
    ).fetchall()[0]
    assert got == (rows, 0, rows - 1, rows), (stream, got)
n, = duckdb.sql(
    f"select count(*) from (select unnest(ch0) from read_parquet('{run}/spectrum/*.parquet'))"
).fetchall()[0]
assert n == 513 * 38, n
print("ok")
"#;
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&report.run_dir)
        .args(ROWS.iter().map(|(s, n)| format!("{s}={n}")))
        .output()
        .expect("python runs");
    assert!(
        output.status.success() && String::from_utf8_lossy(&output.stdout).trim() == "ok",
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_spectrum_example_validates_and_runs() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/spectrum.toml");
    let out = tempfile::tempdir().expect("tempdir");
    let mut e = ensemble::config::load(&path).expect("configs/spectrum.toml compiles");
    assert!(
        e.graph_summary().contains("\nstages\n"),
        "{}",
        e.graph_summary()
    );
    e.output = out.path().to_path_buf();
    e.duration = Duration::from_millis(600);
    let report = run(e);
    assert_eq!(report.manifest.status, "completed");
    for (stream, rows) in [
        ("sig", 6000),
        ("spectrum", (6000 - 1024) / 512 + 1),
        ("lowpass", 6000),
        ("slow", 600),
        ("summary", 6),
    ] {
        assert_contiguous(&seqs(&read_stream(&report.run_dir, stream)), rows);
    }
}

/// A FIR stage (`y[n] = (x[n] + x[n-1]) / 2`) on 2,000 rows that arrive in batches of 100, with
/// a `fault` table and a failure policy.
fn faulty_stage(fault: &str, policy: &str) -> String {
    format!(
        r#"
[experiment]
name = "stage-faults"
duration = "2s"

[instruments.sig]
type = "sim"
rate_hz = 1000
pace = "max"
max_batch_rows = 100

[stages.lowpass]
type = "fir"
inputs = ["sig"]
taps = [0.5, 0.5]
restart_backoff = "50ms"
{policy}
fault = {fault}

[sinks.store]
type = "parquet"
inputs = ["sig", "lowpass"]
"#
    )
}

/// The manifest's events of `component` named `event`, as their details.
fn stage_events(manifest: &ensemble::manifest::Manifest, event: &str) -> Vec<String> {
    manifest
        .events
        .iter()
        .filter(|e| e.component == "lowpass" && e.event == event)
        .map(|e| e.detail.clone())
        .collect()
}

/// Runs [`faulty_stage`] into `out` with a fault that fires once under the default policy
/// (restart), checks that the run completed after one restart, and returns the run with the
/// instrument's and the stage's `ch0`.
fn restarted_once(fault: &str, out: &Path) -> (RunReport, Vec<f64>, Vec<f64>) {
    let report = run(experiment(&faulty_stage(fault, ""), out));
    let m = &report.manifest;
    assert_eq!(m.status, "completed", "{:?}", m.events);
    assert_eq!(m.streams["lowpass"].restarts, 1);
    assert_eq!(stage_events(m, "failed").len(), 1, "{:?}", m.events);
    assert_eq!(stage_events(m, "restarted").len(), 1, "{:?}", m.events);
    let stored = read_stream(&report.run_dir, "lowpass");
    assert_contiguous(&seqs(&stored), m.streams["lowpass"].rows);
    let x = values(&read_stream(&report.run_dir, "sig"), "ch0");
    let y = values(&stored, "ch0");
    (report, x, y)
}

#[test]
fn a_stage_that_panics_once_is_restarted_and_its_batch_is_delivered_again() {
    let out = tempfile::tempdir().expect("tempdir");
    let fault = r#"{ kind = "panic", after_rows = 500, times = 1 }"#;
    let (report, x, y) = restarted_once(fault, out.path());
    let m = &report.manifest;
    assert!(
        stage_events(m, "failed")[0].contains("panicked"),
        "{:?}",
        m.events
    );
    // The panic left the batch in flight (rows 500..600) unanswered, so the feeder handed it to
    // the new stage: no row is lost and the stream is whole.
    let lowpass = &m.streams["lowpass"];
    assert_eq!(lowpass.rows, 2000);
    assert_eq!(lowpass.expected_rows, Some(2000));
    assert_eq!(lowpass.sinks["store"].rows_written, 2000);
    assert_eq!(m.streams["sig"].dropped_rows, 0);
    // What a restart loses is the filter's history: the new stage starts from silence.
    assert_eq!(y[499], 0.5 * (x[499] + x[498]), "before the panic");
    assert_eq!(y[500], 0.5 * x[500], "first row after the restart");
    assert_eq!(y[501], 0.5 * (x[501] + x[500]));
}

#[test]
fn a_stage_that_errors_once_is_restarted_and_only_the_failing_batch_is_lost() {
    let out = tempfile::tempdir().expect("tempdir");
    let fault = r#"{ kind = "error", after_rows = 500, times = 1 }"#;
    let (report, x, y) = restarted_once(fault, out.path());
    let m = &report.manifest;
    assert_eq!(
        stage_events(m, "failed"),
        ["injected fault after 500 input rows; its input batch (seq 500, 100 rows) is lost"]
    );
    // The stage rejected rows 500..600 and failed with them; the new stage continues the
    // output at seq 500 with input row 600. The loss shows as rows short of expected, and the
    // rejected batch is counted as dropped on the link into the stage.
    let lowpass = &m.streams["lowpass"];
    assert_eq!(lowpass.rows, 1900);
    assert_eq!(lowpass.expected_rows, Some(2000));
    assert_eq!(lowpass.sinks["store"].rows_written, 1900);
    assert_eq!(m.streams["sig"].dropped_rows, 100);
    assert_eq!(y[499], 0.5 * (x[499] + x[498]));
    assert_eq!(y[500], 0.5 * x[600], "row 600 first, from silence");
    assert_eq!(y[1899], 0.5 * (x[1999] + x[1998]));
    // Timestamps show the gap: they are the input rows' own.
    let ts = timestamps(&read_stream(&report.run_dir, "lowpass"));
    let sig_ts = timestamps(&read_stream(&report.run_dir, "sig"));
    assert_eq!((ts[499], ts[500]), (sig_ts[499], sig_ts[600]));
}

#[test]
fn a_stage_that_keeps_failing_gives_up_and_fails_the_run() {
    let out = tempfile::tempdir().expect("tempdir");
    let text = faulty_stage(
        r#"{ kind = "error", after_rows = 300 }"#,
        "max_restarts = 2\nrestart_window = \"1m\"",
    );
    let report = run(experiment(&text, out.path()));
    let m = &report.manifest;
    assert_eq!(m.status, "failed", "{:?}", m.events);
    let reason = m.stop_reason.as_deref().unwrap_or("");
    assert!(
        reason.contains("lowpass: more than 2 restarts within 60s: injected fault"),
        "{reason}"
    );
    assert_eq!(stage_events(m, "failed").len(), 3);
    assert_eq!(stage_events(m, "gave_up").len(), 1);
    assert_eq!(m.streams["lowpass"].restarts, 2);
    // Three starts of 300 rows each; each lost the batch it failed on.
    assert_contiguous(&seqs(&read_stream(&report.run_dir, "lowpass")), 900);
    assert_eq!(m.streams["lowpass"].rows, 900);
    // The instrument's own stream is stored whole up to the stop.
    let sig = seqs(&read_stream(&report.run_dir, "sig"));
    assert_contiguous(&sig, m.streams["sig"].rows);
}

#[test]
fn a_failed_stage_with_continue_ends_its_stream_and_the_run_completes() {
    let out = tempfile::tempdir().expect("tempdir");
    let text = faulty_stage(
        r#"{ kind = "panic", after_rows = 300 }"#,
        "on_failure = \"continue\"",
    );
    let report = run(experiment(&text, out.path()));
    let m = &report.manifest;
    assert_eq!(m.status, "completed", "{:?}", m.events);
    assert_eq!(m.streams["lowpass"].restarts, 0);
    assert_contiguous(&seqs(&read_stream(&report.run_dir, "lowpass")), 300);
    // The instrument goes on; what it still sent the stage is counted as dropped on that link
    // (all but the 300 rows processed and the batch in flight when the stage died).
    assert_contiguous(&seqs(&read_stream(&report.run_dir, "sig")), 2000);
    let sig = &m.streams["sig"];
    assert_eq!(sig.sinks["store"].rows_written, 2000);
    assert_eq!(sig.dropped_rows, 2000 - 300);
}
