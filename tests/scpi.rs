//! SCPI instruments through full runs against the in-process simulator: over TCP, over a
//! serial pseudo-terminal made with socat, and with injected faults (disconnects, garbage,
//! stalls) beside a simulated instrument that must complete regardless.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

fn scpi_and_sim(address: &str, extra: &str, duration: &str) -> String {
    let poll = if extra.contains("poll_interval") {
        ""
    } else {
        "poll_interval = \"50ms\""
    };
    format!(
        r#"
[experiment]
name = "scpi"
duration = "{duration}"

[instruments.dmm]
type = "scpi"
profile = "dmm"
address = "{address}"
{poll}
{extra}

[instruments.sig]
type = "sim"
rate_hz = 100
channels = ["a"]

[sinks.store]
type = "parquet"
inputs = ["dmm", "sig"]
"#
    )
}

fn report(manifest: &ensemble::manifest::Manifest, stream: &str) -> serde_json::Value {
    manifest.streams[stream]
        .instrument_report
        .clone()
        .unwrap_or_else(|| panic!("{stream} has an instrument report"))
}

fn channel_counter(report: &serde_json::Value, key: &str) -> u64 {
    report["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .map(|c| c[key].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn records_from_the_simulator_over_tcp() {
    let port = spawn_simulator(sim_options("dmm", ""));
    let out = tempfile::tempdir().expect("tempdir");
    let text = scpi_and_sim(&format!("tcp://127.0.0.1:{port}"), "", "1s");
    let report_ = run(experiment_with_profiles(&text, out.path()));
    let m = &report_.manifest;
    assert_eq!(m.status, "completed", "{:?}", m.stop_reason);
    let dmm = &m.streams["dmm"];
    assert_eq!(dmm.component_type, "scpi");
    assert!(dmm.rows >= 10, "about 20 polls in 1 s, got {}", dmm.rows);
    assert_eq!(dmm.sinks["store"].rows_written, dmm.rows);
    let batches = read_stream(&report_.run_dir, "dmm");
    assert_contiguous(&seqs(&batches), dmm.rows);
    let volts = nullable_values(&batches, "voltage");
    assert!(volts.iter().all(Option::is_some), "no nulls without faults");
    let r = report(m, "dmm");
    assert!(
        r["identity"].as_str().is_some_and(|id| !id.is_empty()),
        "{r}"
    );
    assert_eq!(channel_counter(&r, "timeouts"), 0);
    assert_eq!(m.streams["sig"].rows, 100);
}

#[test]
fn records_over_a_serial_pseudo_terminal_made_with_socat() {
    let has_socat = Command::new("socat")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !external_available("socat", has_socat) {
        return;
    }
    let port = spawn_simulator(sim_options("dmm", ""));
    let dir = tempfile::tempdir().expect("tempdir");
    let tty = dir.path().join("tty");
    let mut socat = Command::new("socat")
        .arg(format!("PTY,link={},raw,echo=0", tty.display()))
        .arg(format!("TCP:127.0.0.1:{port}"))
        .stderr(Stdio::null())
        .spawn()
        .expect("socat starts");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !tty.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(tty.exists(), "socat made no pty link");
    let text = scpi_and_sim(&format!("serial://{}", tty.display()), "", "1s");
    let out = tempfile::tempdir().expect("tempdir");
    let result = run(experiment_with_profiles(&text, out.path()));
    let _ = socat.kill();
    let _ = socat.wait();
    let m = &result.manifest;
    assert_eq!(m.status, "completed", "{:?}", m.stop_reason);
    assert!(m.streams["dmm"].rows >= 5, "rows {}", m.streams["dmm"].rows);
    let volts = nullable_values(&read_stream(&result.run_dir, "dmm"), "voltage");
    assert!(volts.iter().filter(|v| v.is_some()).count() >= 5);
}

#[test]
fn a_disconnect_mid_run_reconnects_records_a_gap_and_the_sim_completes() {
    let port = spawn_simulator(sim_options("dmm", "disconnect-after=20"));
    let out = tempfile::tempdir().expect("tempdir");
    let text = scpi_and_sim(
        &format!("tcp://127.0.0.1:{port}"),
        "poll_interval = \"20ms\"\nreconnect_min = \"50ms\"\nreconnect_max = \"200ms\"",
        "2s",
    );
    let result = run(experiment_with_profiles(&text, out.path()));
    let m = &result.manifest;
    assert_eq!(m.status, "completed", "{:?}", m.stop_reason);
    let r = report(m, "dmm");
    assert!(r["reconnects"].as_u64().unwrap_or(0) >= 1, "{r}");
    let gaps = r["gaps"].as_array().expect("gaps");
    assert!(!gaps.is_empty(), "{r}");
    assert!(gaps[0]["end_ns"].is_i64(), "the first gap closed: {r}");
    assert!(m.streams["dmm"].rows > 20, "rows after reconnecting");
    assert_eq!(m.streams["sig"].rows, 200, "the sim stream is whole");
    assert_eq!(m.streams["sig"].sinks["store"].rows_written, 200);
}

#[test]
fn garbage_answers_become_nulls_counted_in_the_manifest() {
    let port = spawn_simulator(sim_options("dmm", "garbage=0.3"));
    let out = tempfile::tempdir().expect("tempdir");
    let text = scpi_and_sim(
        &format!("tcp://127.0.0.1:{port}"),
        "poll_interval = \"20ms\"\nidentify = false",
        "1s",
    );
    let result = run(experiment_with_profiles(&text, out.path()));
    let m = &result.manifest;
    assert_eq!(m.status, "completed", "{:?}", m.stop_reason);
    let batches = read_stream(&result.run_dir, "dmm");
    let nulls = ["voltage", "resistance"]
        .iter()
        .map(|c| {
            nullable_values(&batches, c)
                .iter()
                .filter(|v| v.is_none())
                .count() as u64
        })
        .sum::<u64>();
    let r = report(m, "dmm");
    let parse_errors = channel_counter(&r, "parse_errors");
    assert!(nulls > 0, "some answers were garbage");
    assert_eq!(nulls, parse_errors, "every null is counted: {r}");
}

#[test]
fn a_stalled_device_gives_timeouts_and_the_run_still_completes() {
    let port = spawn_simulator(sim_options("dmm", "stall-after=10"));
    let out = tempfile::tempdir().expect("tempdir");
    let text = scpi_and_sim(
        &format!("tcp://127.0.0.1:{port}"),
        "timeout = \"100ms\"\nidentify = false",
        "1500ms",
    );
    let result = run(experiment_with_profiles(&text, out.path()));
    let m = &result.manifest;
    assert_eq!(m.status, "completed", "{:?}", m.stop_reason);
    let r = report(m, "dmm");
    assert!(channel_counter(&r, "timeouts") > 0, "{r}");
    let batches = read_stream(&result.run_dir, "dmm");
    assert!(
        nullable_values(&batches, "voltage")
            .iter()
            .any(Option::is_none)
    );
    assert_eq!(m.streams["sig"].rows, 150);
}

#[test]
fn sim_serve_prints_its_address_and_answers() {
    use std::io::{BufRead, BufReader, Write};
    let mut child = Command::new(ensemble_bin())
        .args([
            "sim",
            "serve",
            "--profile",
            "psu",
            "--listen",
            "127.0.0.1:0",
            "--seed",
            "3",
        ])
        .args(["--fault", "delay=1ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("ensemble sim serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("a line");
    let addr = line
        .strip_prefix("listening on tcp://")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_string();
    assert!(line.contains("(profile psu)"), "{line}");
    let mut stream = std::net::TcpStream::connect(&addr).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream.write_all(b"VOLT 2.5\nVOLT?\n").expect("write");
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .expect("answer");
    let _ = child.kill();
    let _ = child.wait();
    let v: f64 = answer.trim().parse().expect("a number");
    assert!((v - 2.5).abs() < 1e-9, "{answer}");
}
