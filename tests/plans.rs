//! Count, scan and grid plans through full runs: one `primary` row per point with the reached
//! setpoints and averaged readings, snake order, a stop after the current point, and a
//! 1,000-point scan over SCPI/TCP with three detectors.

use std::time::{Duration, Instant};

use crate::util::*;

/// A constant simulated instrument: a reading is exactly `offset + amplitude`.
const METER: &str = r#"
[instruments.meter]
type = "sim"
rate_hz = 50
channels = ["v", "w"]
unit = "V"
signal = { shape = "constant", amplitude = 0.0, offset = 0.0 }
"#;

fn with_plan(plan: &str) -> String {
    format!(
        "[experiment]\nname = \"plan\"\n{METER}\n[plan]\n{plan}\n\n[sinks.store]\ntype = \"parquet\"\ninputs = [\"primary\", \"meter\"]\n"
    )
}

#[test]
fn a_scan_writes_one_row_per_point_with_the_reached_setpoint_and_the_mean_reading() {
    let out = tempfile::tempdir().expect("tempdir");
    let text = with_plan(
        "type = \"scan\"\nsetpoint = \"meter.offset\"\nstart = 0.0\nstop = 2.0\nsteps = 5\nreadings_per_point = 3\ndetectors = [\"meter\"]",
    );
    let report = run(experiment(&text, out.path()));
    let m = &report.manifest;
    assert_eq!(m.status, "completed", "{:?}", m.stop_reason);
    let primary = &m.streams["primary"];
    assert_eq!((primary.rows, primary.expected_rows), (5, Some(5)));
    assert_eq!(primary.sinks["store"].rows_written, 5);
    let plan_report = primary.instrument_report.as_ref().expect("plan report");
    assert_eq!(plan_report["points_done"], 5);
    let batches = read_stream(&report.run_dir, "primary");
    assert_contiguous(&seqs(&batches), 5);
    assert_eq!(
        values(&batches, "meter.offset"),
        vec![0.0, 0.5, 1.0, 1.5, 2.0]
    );
    assert_eq!(values(&batches, "meter.v"), vec![0.0, 0.5, 1.0, 1.5, 2.0]);
    assert_eq!(values(&batches, "meter.w"), vec![0.0, 0.5, 1.0, 1.5, 2.0]);
    let schema = batches[0].schema();
    assert_eq!(
        schema
            .field_with_name("meter.v")
            .expect("column")
            .metadata()["unit"],
        "V"
    );
    // The free-running stream recorded too, following the scan's offset.
    assert!(m.streams["meter"].rows > 0);
}

#[test]
fn a_snake_grid_visits_every_point_turning_the_inner_axis_around() {
    let out = tempfile::tempdir().expect("tempdir");
    let text = with_plan(
        r#"type = "grid"
snake = true
detectors = ["meter"]

[[plan.axes]]
setpoint = "meter.offset"
points = [10.0, 20.0]

[[plan.axes]]
setpoint = "meter.amplitude"
start = 1.0
stop = 3.0
steps = 3"#,
    );
    let report = run(experiment(&text, out.path()));
    assert_eq!(report.manifest.status, "completed");
    let batches = read_stream(&report.run_dir, "primary");
    assert_eq!(
        values(&batches, "meter.offset"),
        vec![10.0, 10.0, 10.0, 20.0, 20.0, 20.0]
    );
    assert_eq!(
        values(&batches, "meter.amplitude"),
        vec![1.0, 2.0, 3.0, 3.0, 2.0, 1.0]
    );
    assert_eq!(
        values(&batches, "meter.v"),
        vec![11.0, 12.0, 13.0, 23.0, 22.0, 21.0]
    );
}

#[test]
fn a_count_reads_num_times_with_the_delay_between() {
    let out = tempfile::tempdir().expect("tempdir");
    let text = with_plan("type = \"count\"\nnum = 4\ndelay = \"30ms\"\ndetectors = [\"meter\"]");
    let report = run(experiment(&text, out.path()));
    assert_eq!(report.manifest.status, "completed");
    let batches = read_stream(&report.run_dir, "primary");
    let ts = timestamps(&batches);
    assert_eq!(ts.len(), 4);
    for w in ts.windows(2) {
        assert!(w[1] - w[0] >= 30_000_000, "delay kept: {ts:?}");
    }
}

#[test]
fn a_stop_during_a_plan_finishes_the_current_point_and_saves_everything() {
    let out = tempfile::tempdir().expect("tempdir");
    let text = with_plan("type = \"count\"\nnum = 1000\ndelay = \"10ms\"\ndetectors = [\"meter\"]");
    let report = run_and_stop(experiment(&text, out.path()), Duration::from_millis(400));
    let m = &report.manifest;
    assert_eq!(m.status, "stopped");
    let primary = &m.streams["primary"];
    assert!(
        primary.rows > 0 && primary.rows < 1000,
        "rows {}",
        primary.rows
    );
    assert_eq!(primary.sinks["store"].rows_written, primary.rows);
    let batches = read_stream(&report.run_dir, "primary");
    assert_contiguous(&seqs(&batches), primary.rows);
    let plan_report = primary.instrument_report.as_ref().expect("plan report");
    assert_eq!(plan_report["stopped_early"], true);
    assert_eq!(plan_report["points_done"], primary.rows);
}

/// The 1,000-point scan of the acceptance criteria: a power supply's voltage (with readback)
/// over SCPI/TCP, three SCPI detectors. Prints the points per second.
#[test]
fn a_scan_of_1000_points_over_tcp_with_three_scpi_detectors_writes_1000_rows() {
    let psu = spawn_simulator(sim_options("psu", ""));
    let dmm = spawn_simulator(sim_options("dmm", ""));
    let cryo = spawn_simulator(sim_options("tempctl", ""));
    let text = format!(
        r#"
[experiment]
name = "scan1000"

[instruments.psu]
type = "scpi"
profile = "psu"
address = "tcp://127.0.0.1:{psu}"
poll_interval = "1h"

[instruments.dmm]
type = "scpi"
profile = "dmm"
address = "tcp://127.0.0.1:{dmm}"
poll_interval = "1h"

[instruments.cryo]
type = "scpi"
profile = "tempctl"
address = "tcp://127.0.0.1:{cryo}"
poll_interval = "1h"

[plan]
type = "scan"
setpoint = "psu.voltage"
start = 0.0
stop = 9.99
steps = 1000
detectors = ["psu", "dmm", "cryo"]

[sinks.store]
type = "parquet"
inputs = ["primary"]
"#
    );
    let out = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let report = run(experiment_with_profiles(&text, out.path()));
    let elapsed = started.elapsed();
    let m = &report.manifest;
    assert_eq!(m.status, "completed", "{:?}", m.stop_reason);
    assert_eq!(m.streams["primary"].rows, 1000);
    let batches = read_stream(&report.run_dir, "primary");
    assert_contiguous(&seqs(&batches), 1000);
    let reached = values(&batches, "psu.voltage");
    assert!(
        (reached[999] - 9.99).abs() < 1e-6,
        "readback of the last point"
    );
    for column in [
        "psu.voltage",
        "psu.current",
        "dmm.voltage",
        "cryo.temperature",
    ] {
        let v = nullable_values(&batches, column);
        assert!(v.iter().all(Option::is_some), "{column} has nulls");
    }
    // The supply's current follows its voltage into the 10 Ω load.
    let current = values(&batches, "psu.current");
    assert!((current[500] - reached[500] / 10.0).abs() < 0.01);
    eprintln!(
        "scan: 1000 points, 3 SCPI detectors over TCP in {elapsed:.2?}: {:.0} points/s (whole run)",
        1000.0 / elapsed.as_secs_f64()
    );
}

/// Item 5 of the plans issue: the supply loses power every 40 answers (the simulator closes the
/// connection and forgets its setpoint). Each loss holds the scan, the session reconnects and
/// puts the commanded voltage back (read back) before the interrupted point is taken again,
/// and run.json records each hold as a `reconnect` interruption saying what was restored.
/// Without the restore, the re-taken point's current would be the power-on 0 A.
#[test]
fn a_scan_over_a_power_cycling_scpi_supply_restores_its_setpoint_before_each_retaken_point() {
    let psu = spawn_simulator(sim_options("psu", "disconnect-after=40"));
    let text = format!(
        r#"
[experiment]
name = "restore"

[instruments.psu]
type = "scpi"
profile = "psu"
address = "tcp://127.0.0.1:{psu}"
poll_interval = "1h"
reconnect_min = "20ms"
reconnect_max = "100ms"

[plan]
type = "scan"
setpoint = "psu.voltage"
start = 1.0
stop = 3.9
steps = 30
detectors = ["psu"]

[sinks.store]
type = "parquet"
inputs = ["primary"]
"#
    );
    let out = tempfile::tempdir().expect("tempdir");
    let report = run(experiment_with_profiles(&text, out.path()));
    let m = &report.manifest;
    assert_eq!(m.status, "completed", "{:?}", m.stop_reason);
    assert_eq!(m.streams["primary"].rows, 30);
    let batches = read_stream(&report.run_dir, "primary");
    assert_contiguous(&seqs(&batches), 30);
    let reached = values(&batches, "psu.voltage");
    let current = values(&batches, "psu.current");
    for (k, (v, i)) in reached.iter().zip(&current).enumerate() {
        let want = 1.0 + 0.1 * k as f64;
        assert!((v - want).abs() < 1e-6, "point {k}: reached {v}");
        assert!(
            (i - v / 10.0).abs() < 0.01,
            "point {k}: {i} A at {v} V: the supply is not at its commanded voltage"
        );
    }
    let holds: Vec<_> = m
        .interruptions
        .iter()
        .filter(|h| h.kind == ensemble::control::InterruptionKind::Reconnect)
        .collect();
    assert!(!holds.is_empty(), "{:?}", m.interruptions);
    for h in &holds {
        assert_eq!(h.by, "psu");
        let how = h.resumed_by.as_deref().unwrap_or_default();
        assert!(
            how.starts_with("psu reconnected; restored voltage = "),
            "{how}"
        );
    }
    let resumed = crate::control::resumed_flags(&batches)
        .into_iter()
        .filter(|r| *r)
        .count();
    assert_eq!(resumed, holds.len(), "each re-taken point is marked");
    let session = &m.streams["psu"].instrument_report;
    let restores = session.as_ref().expect("session report")["restores"]
        .as_array()
        .expect("restores")
        .len();
    assert!(restores >= holds.len(), "{session:?}");
}
