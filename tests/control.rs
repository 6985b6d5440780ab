//! Pause, resume and stop through the control socket (`ensemble pause|resume|stop RUN_DIR`),
//! suspenders on simulated temperatures, and the socket's refusals (issue 14).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use ensemble::run::RunReport;
use serde_json::Value;

use crate::util::*;

/// A constant simulated detector, and a `cryo` whose temperature follows `signal`.
fn experiment_text(plan: &str, cryo_signal: &str) -> String {
    format!(
        r#"
[experiment]
name = "control"

[instruments.meter]
type = "sim"
rate_hz = 50
channels = ["v"]
signal = {{ shape = "constant", amplitude = 0.0, offset = 0.0 }}

[instruments.cryo]
type = "sim"
rate_hz = 200
batch_interval = "10ms"
channels = ["temp"]
unit = "K"
signal = {cryo_signal}

[plan]
{plan}

[sinks.store]
type = "parquet"
inputs = ["primary", "cryo"]
"#
    )
}

const STEADY: &str = r#"{ shape = "constant", amplitude = 0.0, offset = 290.0 }"#;

/// Resumes the paused run through the socket and waits for it: it must complete.
fn resume_to_completion(handle: JoinHandle<RunReport>, run_dir: &Path) -> RunReport {
    ensemble(&["resume"], run_dir).expect("resume accepted");
    let report = handle.join().expect("run thread");
    assert_eq!(
        report.manifest.status, "completed",
        "{:?}",
        report.manifest.stop_reason
    );
    report
}

/// Starts the run in its own thread; returns it and the run directory once its control
/// socket is there.
fn start(text: String, out: &Path) -> (JoinHandle<RunReport>, PathBuf) {
    let e = experiment(&text, out);
    let handle = std::thread::spawn(move || run(e));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(dir) = only_run_dir(out) {
            if dir.join("control.sock").exists() {
                return (handle, dir);
            }
        }
        assert!(
            Instant::now() < deadline,
            "the control socket never appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `ensemble ARGS RUN_DIR`; its stdout, or its stderr as the error.
fn ensemble(args: &[&str], run_dir: &Path) -> Result<String, String> {
    let out = Command::new(ensemble_bin())
        .args(args)
        .arg(run_dir)
        .output()
        .expect("ensemble runs");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn status(run_dir: &Path) -> Value {
    let text = ensemble(&["status"], run_dir).expect("status");
    serde_json::from_str(&text).expect("status is JSON")
}

fn wait_for_phase(run_dir: &Path, phase: &str) -> Value {
    wait_until(run_dir, phase, |_| true)
}

/// The state once its phase is `phase` and `also` holds.
fn wait_until(run_dir: &Path, phase: &str, also: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = status(run_dir);
        if state["phase"] == phase && also(&state) {
            return state;
        }
        assert!(Instant::now() < deadline, "never {phase}: {state}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn manifest(run_dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(run_dir.join("run.json")).expect("run.json"))
        .expect("run.json is JSON")
}

/// The `resumed` column of `primary`'s batches, in order.
pub(crate) fn resumed_flags(batches: &[RecordBatch]) -> Vec<bool> {
    batches
        .iter()
        .flat_map(|b| {
            let c = b.column_by_name("resumed").expect("resumed column");
            c.as_boolean()
                .iter()
                .map(|v| v == Some(true))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn ns(v: &Value) -> i64 {
    let text = v.as_str().expect("a timestamp");
    chrono::DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339")
        .timestamp_nanos_opt()
        .expect("in range")
}

/// The rows taken inside `[at, resumed_at]` of every interruption.
fn rows_inside(batches: &[RecordBatch], interruptions: &[Value]) -> usize {
    let ts = timestamps(batches);
    interruptions
        .iter()
        .map(|i| {
            let (from, to) = (ns(&i["at"]), ns(&i["resumed_at"]));
            ts.iter().filter(|&&t| t > from && t < to).count()
        })
        .sum()
}

#[test]
fn a_pause_through_the_socket_holds_a_1000_point_scan_and_every_point_is_taken_after_the_resume() {
    let out = tempfile::tempdir().expect("tempdir");
    let plan = "type = \"scan\"\nsetpoint = \"meter.offset\"\nstart = 0.0\nstop = 999.0\nsteps = 1000\ndelay = \"2ms\"\ndetectors = [\"meter\"]";
    let (handle, run_dir) = start(experiment_text(plan, STEADY), out.path());
    let sock = run_dir.join("control.sock");
    let mode = std::fs::metadata(&sock)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the socket is 0600");
    std::thread::sleep(Duration::from_millis(300));
    let said = ensemble(&["pause"], &run_dir).expect("pause accepted");
    assert!(said.contains("pause"), "{said}");
    let paused = wait_for_phase(&run_dir, "paused");
    let held_at = paused["points_done"].as_u64().expect("points_done");
    assert!(
        held_at > 0 && held_at < 1000,
        "paused mid-scan at {held_at}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        status(&run_dir)["points_done"],
        held_at,
        "no point taken while paused"
    );
    let report = resume_to_completion(handle, &run_dir);
    assert!(!sock.exists(), "the socket is removed at the end");

    let batches = read_stream(&report.run_dir, "primary");
    assert_contiguous(&seqs(&batches), 1000);
    let m = manifest(&run_dir);
    let pauses = m["interruptions"]
        .as_array()
        .expect("interruptions in run.json");
    assert_eq!(pauses.len(), 1, "{pauses:?}");
    let p = &pauses[0];
    assert_eq!(p["kind"], "pause");
    assert!(
        p["by"].as_str().is_some_and(|b| b.starts_with("socket")),
        "{p}"
    );
    assert_eq!(p["point"], held_at);
    assert!(p["seconds"].as_f64().is_some_and(|s| s >= 1.0), "{p}");
    assert_eq!(
        rows_inside(&batches, pauses),
        0,
        "no row taken during the pause"
    );
    let resumed = resumed_flags(&batches);
    assert_eq!(resumed.iter().filter(|r| **r).count(), 1);
    assert!(
        resumed[held_at as usize],
        "the first row after the resume is marked"
    );
    // Streams kept recording during the pause.
    let cryo_ts = timestamps(&read_stream(&report.run_dir, "cryo"));
    let (from, to) = (ns(&p["at"]), ns(&p["resumed_at"]));
    assert!(cryo_ts.iter().filter(|&&t| t > from && t < to).count() > 100);
}

#[test]
fn a_pause_now_abandons_the_point_in_progress_and_takes_it_again() {
    let out = tempfile::tempdir().expect("tempdir");
    let plan = "type = \"scan\"\nsetpoint = \"meter.offset\"\nstart = 1.0\nstop = 6.0\nsteps = 6\nsettle = \"400ms\"\ndetectors = [\"meter\"]";
    let (handle, run_dir) = start(experiment_text(plan, STEADY), out.path());
    // Halfway into a point's settle.
    std::thread::sleep(Duration::from_millis(600));
    ensemble(&["pause", "--now"], &run_dir).expect("pause --now accepted");
    let paused = wait_for_phase(&run_dir, "paused");
    let k = paused["points_done"].as_u64().expect("points_done");
    std::thread::sleep(Duration::from_millis(300));
    let report = resume_to_completion(handle, &run_dir);
    let batches = read_stream(&report.run_dir, "primary");
    assert_contiguous(&seqs(&batches), 6);
    assert_eq!(
        values(&batches, "meter.v"),
        vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    );
    let m = manifest(&run_dir);
    let p = &m["interruptions"][0];
    assert_eq!(p["now"], true);
    assert_eq!(p["abandoned_point"], k, "{p}");
    let plan_report = &m["streams"]["primary"]["instrument_report"];
    assert_eq!(plan_report["points_retaken"], 1);
    // The abandoned point's row was taken after the resume.
    let ts = timestamps(&batches);
    assert!(ts[k as usize] > ns(&p["resumed_at"]));
    assert!(resumed_flags(&batches)[k as usize]);
}

#[test]
fn a_suspender_on_a_ramping_temperature_suspends_and_resumes_the_scan() {
    let out = tempfile::tempdir().expect("tempdir");
    // 290 K rising to 310 K every 2 s, then back to 290 K.
    let ramp = r#"{ shape = "ramp", frequency_hz = 0.5, amplitude = 10.0, offset = 300.0 }"#;
    let plan = r#"type = "count"
num = 300
delay = "10ms"
detectors = ["meter"]

[[plan.suspend]]
when = "cryo.temp > 306"
resume_when = "cryo.temp < 296""#;
    let (handle, run_dir) = start(experiment_text(plan, ramp), out.path());
    let report = handle.join().expect("run thread");
    assert_eq!(
        report.manifest.status, "completed",
        "{:?}",
        report.manifest.stop_reason
    );
    let batches = read_stream(&report.run_dir, "primary");
    assert_contiguous(&seqs(&batches), 300);
    let m = manifest(&run_dir);
    let suspensions = m["interruptions"].as_array().expect("interruptions");
    assert!(!suspensions.is_empty());
    for s in suspensions {
        assert_eq!(s["kind"], "suspend");
        assert_eq!(s["by"], "plan.suspend[0]");
        assert!(
            s["cause"]
                .as_str()
                .is_some_and(|c| c.contains("cryo.temp > 306")),
            "{s}"
        );
        // About 0.4 s above 306 K per ramp, ended by the drop to 290 K.
        let seconds = s["seconds"].as_f64().expect("closed with an interval");
        assert!((0.2..1.5).contains(&seconds), "{s}");
    }
    assert_eq!(
        rows_inside(&batches, suspensions),
        0,
        "no row while suspended"
    );
    let marked = resumed_flags(&batches).iter().filter(|r| **r).count();
    assert_eq!(marked, suspensions.len());
}

#[test]
fn a_suspender_already_true_when_the_plan_starts_holds_it_until_it_clears() {
    let out = tempfile::tempdir().expect("tempdir");
    // Starts at 318 K, drops to 280 K after 0.5 s, then rises 4 K/s (back above 310 K at 8 s).
    let ramp = r#"{ shape = "ramp", frequency_hz = 0.1, amplitude = 20.0, offset = 300.0, phase = 5.969 }"#;
    let plan = r#"type = "count"
num = 20
detectors = ["meter"]

[[plan.suspend]]
when = "cryo.temp > 310"
resume_when = "cryo.temp < 305""#;
    let (handle, run_dir) = start(experiment_text(plan, ramp), out.path());
    let report = handle.join().expect("run thread");
    assert_eq!(report.manifest.status, "completed");
    let batches = read_stream(&report.run_dir, "primary");
    assert_contiguous(&seqs(&batches), 20);
    let m = manifest(&run_dir);
    let s = &m["interruptions"][0];
    assert_eq!(s["kind"], "suspend");
    assert_eq!(s["point"], 0, "tripped before the first point: {s}");
    let first = timestamps(&batches)[0];
    assert!(
        first > ns(&s["resumed_at"]),
        "no point before the condition cleared"
    );
    assert!(resumed_flags(&batches)[0]);
}

#[test]
fn a_suspender_that_never_clears_plus_stop_ends_the_run_stopped_with_everything_saved() {
    let out = tempfile::tempdir().expect("tempdir");
    // Rises from 280 K through 300 K after 2.5 s, and stays above it for the test.
    let ramp = r#"{ shape = "ramp", frequency_hz = 0.05, amplitude = 20.0, offset = 300.0 }"#;
    let plan = r#"type = "count"
num = 100000
delay = "5ms"
detectors = ["meter"]

[[plan.suspend]]
when = "cryo.temp > 285"
resume_when = "cryo.temp < 200""#;
    let (handle, run_dir) = start(experiment_text(plan, ramp), out.path());
    // (Before its first value the plan shows as suspended too, with no point taken.)
    let suspended = wait_until(&run_dir, "suspended", |s| {
        s["points_done"].as_u64().is_some_and(|n| n > 0)
    });
    let refused = ensemble(&["resume"], &run_dir).expect_err("a suspension is not resumed by hand");
    assert!(refused.contains("suspended"), "{refused}");
    ensemble(&["stop"], &run_dir).expect("stop accepted");
    let report = handle.join().expect("run thread");
    let m = &report.manifest;
    assert_eq!(m.status, "stopped");
    assert!(
        m.stop_reason
            .as_deref()
            .is_some_and(|r| r.contains("socket")),
        "{:?}",
        m.stop_reason
    );
    for stream in ["primary", "cryo"] {
        let entry = &m.streams[stream];
        assert_eq!(
            entry.sinks["store"].rows_written, entry.rows,
            "{stream} saved whole"
        );
        let rows: usize = read_stream(&report.run_dir, stream)
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert_eq!(rows as u64, entry.rows, "{stream} read back");
    }
    assert_eq!(
        m.streams["primary"].rows,
        suspended["points_done"].as_u64().unwrap_or(0)
    );
    let s = &m.interruptions[0];
    assert!(s.ended_by_stop && s.resumed_at.is_none(), "{s:?}");
}

#[test]
fn the_control_socket_answers_malformed_commands_with_an_error_and_refuses_other_users() {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixStream;
    let out = tempfile::tempdir().expect("tempdir");
    let plan = "type = \"count\"\nnum = 100000\ndelay = \"5ms\"\ndetectors = [\"meter\"]";
    let (handle, run_dir) = start(experiment_text(plan, STEADY), out.path());
    wait_for_phase(&run_dir, "running");
    let sock = run_dir.join("control.sock");
    let ask = |bytes: &[u8]| -> Value {
        let mut s = UnixStream::connect(&sock).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s.write_all(bytes).expect("write");
        let mut line = String::new();
        BufReader::new(&s)
            .read_line(&mut line)
            .expect("a reply line");
        serde_json::from_str(&line).expect("the reply is JSON")
    };
    for bad in [
        &b"launch\n"[..],
        b"\xff\xfe\n",
        b"\n",
        b"pause maybe\n",
        &[b'x'; 4000][..],
    ] {
        let reply = ask(bad);
        assert_eq!(reply["ok"], false, "{reply}");
        assert!(
            reply["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{reply}"
        );
    }
    assert_eq!(
        ask(b"status\n")["state"]["phase"],
        "running",
        "still serving"
    );

    if is_root() {
        // Another user cannot even open the socket (mode 0600)...
        let dirs = [out.path(), run_dir.as_path()];
        for d in dirs {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let as_nobody = |args: &[&str]| {
            use std::os::unix::process::CommandExt;
            let o = Command::new(ensemble_bin())
                .args(args)
                .arg(&run_dir)
                .uid(65534)
                .gid(65534)
                .output()
                .expect("runs as nobody");
            (
                o.status.success(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        };
        let (ok, err) = as_nobody(&["stop"]);
        assert!(!ok && err.contains("ermission denied"), "{err}");
        // ...and if the mode is widened by hand, the peer check still refuses it.
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        let (ok, err) = as_nobody(&["stop"]);
        assert!(
            !ok && err.contains("refused") && err.contains("uid 65534"),
            "{err}"
        );
        assert_eq!(
            ask(b"status\n")["state"]["phase"],
            "running",
            "nobody stopped it"
        );
    } else {
        eprintln!("skipped the other-user part: it needs root to run a process as another uid");
    }
    ensemble(&["stop"], &run_dir).expect("stop");
    let report = handle.join().expect("run thread");
    assert_eq!(report.manifest.status, "stopped");
}

/// Whether this process runs as root (reads `/proc/self/status`).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// A `duration` plan of one 100 Hz simulated stream (2 s), `extra` added to its `[plan]`.
fn stream_plan_text(extra: &str) -> String {
    format!(
        r#"
[experiment]
name = "stream-pause"
duration = "2s"

[instruments.meter]
type = "sim"
rate_hz = 100
batch_interval = "20ms"
channels = ["v"]

[plan]
type = "stream"
{extra}

[sinks.store]
type = "parquet"
inputs = ["meter"]
"#
    )
}

/// Starts a stream plan, pauses it through the socket after 0.5 s for 1.5 s (past the
/// plan's whole duration), resumes it; the report, the run's one interruption and the
/// meter's timestamps (and the output directory, which holds the run).
fn pause_a_stream_plan(extra: &str) -> (tempfile::TempDir, RunReport, Value, Vec<i64>) {
    let out = tempfile::tempdir().expect("tempdir");
    let (handle, run_dir) = start(stream_plan_text(extra), out.path());
    wait_for_phase(&run_dir, "running");
    std::thread::sleep(Duration::from_millis(500));
    ensemble(&["pause"], &run_dir).expect("a stream plan can be paused");
    wait_for_phase(&run_dir, "paused");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(status(&run_dir)["phase"], "paused", "the clock held");
    let report = resume_to_completion(handle, &run_dir);
    let m = manifest(&run_dir);
    let pauses = m["interruptions"].as_array().expect("interruptions");
    assert_eq!(pauses.len(), 1, "{pauses:?}");
    assert_eq!(pauses[0]["kind"], "pause");
    assert!(pauses[0]["seconds"].as_f64().is_some_and(|s| s >= 1.5));
    let ts = timestamps(&read_stream(&report.run_dir, "meter"));
    let pause = pauses[0].clone();
    (out, report, pause, ts)
}

#[test]
fn a_paused_stream_plan_holds_its_clock_while_its_streams_keep_recording() {
    let (_out, report, pause, ts) = pause_a_stream_plan("");
    let rows = report.manifest.streams["meter"].rows;
    let paused = pause["seconds"].as_f64().expect("seconds");
    // 2 s of plan time plus the time paused, at 100 Hz (the pause's edges within 10 rows).
    let want = 200.0 + 100.0 * paused;
    assert!(
        (rows as f64 - want).abs() < 10.0,
        "{rows} rows, {want} expected"
    );
    assert_contiguous(&seqs(&read_stream(&report.run_dir, "meter")), rows);
    let (from, to) = (ns(&pause["at"]), ns(&pause["resumed_at"]));
    let during = ts.iter().filter(|&&t| t > from && t < to).count();
    assert!(during >= 140, "recorded while paused: {during}");
    let after = ts.iter().filter(|&&t| t >= to).count();
    assert!(
        after >= 140,
        "the remaining 1.5 s ran after the resume: {after}"
    );
}

#[test]
fn with_pause_streams_a_paused_stream_plan_records_nothing_until_resumed() {
    let (_out, report, pause, ts) = pause_a_stream_plan("pause_streams = true");
    let meter = &report.manifest.streams["meter"];
    assert_eq!(
        meter.rows, 200,
        "2 s of plan time at 100 Hz, the pause excluded"
    );
    assert_eq!(meter.sinks["store"].rows_written, 200);
    assert_contiguous(&seqs(&read_stream(&report.run_dir, "meter")), 200);
    let (from, to) = (ns(&pause["at"]), ns(&pause["resumed_at"]));
    let slack = 30_000_000; // a tick of the loop on each side
    let during = ts
        .iter()
        .filter(|&&t| t > from + slack && t < to - slack)
        .count();
    assert_eq!(during, 0, "no row stamped inside the pause");
    let after = ts.iter().filter(|&&t| t >= to).count();
    assert!(
        after >= 140,
        "rows go on after the resume, in wall-clock time: {after}"
    );
    assert!(ts.windows(2).all(|w| w[0] < w[1]), "timestamps increase");
}

#[test]
fn with_pause_streams_a_paused_scan_holds_the_sim_and_scpi_streams_too() {
    let dmm = spawn_simulator(sim_options("dmm", ""));
    let plan = "type = \"scan\"\nsetpoint = \"meter.offset\"\nstart = 0.0\nstop = 999.0\nsteps = 1000\ndelay = \"2ms\"\ndetectors = [\"meter\"]\npause_streams = true";
    let text = experiment_text(plan, STEADY).replace(
        "[plan]",
        &format!(
            "[instruments.dmm]\ntype = \"scpi\"\nprofile = \"dmm\"\naddress = \"tcp://127.0.0.1:{dmm}\"\npoll_interval = \"10ms\"\n\n[plan]"
        ),
    );
    let text = text.replace(
        "inputs = [\"primary\", \"cryo\"]",
        "inputs = [\"primary\", \"cryo\", \"dmm\"]",
    );
    let out = tempfile::tempdir().expect("tempdir");
    let e = experiment_with_profiles(&text, out.path());
    let handle = std::thread::spawn(move || run(e));
    let deadline = Instant::now() + Duration::from_secs(20);
    let run_dir = loop {
        if let Some(dir) = only_run_dir(out.path()).filter(|d| d.join("control.sock").exists()) {
            break dir;
        }
        assert!(Instant::now() < deadline, "no control socket");
        std::thread::sleep(Duration::from_millis(5));
    };
    std::thread::sleep(Duration::from_millis(300));
    ensemble(&["pause"], &run_dir).expect("pause accepted");
    wait_for_phase(&run_dir, "paused");
    std::thread::sleep(Duration::from_secs(1));
    let report = resume_to_completion(handle, &run_dir);
    assert_contiguous(&seqs(&read_stream(&report.run_dir, "primary")), 1000);
    let m = manifest(&run_dir);
    let pauses = m["interruptions"].as_array().expect("interruptions");
    assert_eq!(pauses.len(), 1, "{pauses:?}");
    let (from, to) = (ns(&pauses[0]["at"]), ns(&pauses[0]["resumed_at"]));
    let slack = 50_000_000;
    for stream in ["cryo", "dmm"] {
        let ts = timestamps(&read_stream(&report.run_dir, stream));
        let during = ts
            .iter()
            .filter(|&&t| t > from + slack && t < to - slack)
            .count();
        assert_eq!(during, 0, "{stream} recorded while paused");
        assert!(
            ts.iter().any(|&t| t > to),
            "{stream} recorded after the resume"
        );
    }
}

/// Item 4 of the plans issue: `ensemble run` with its stdin on a pseudo-terminal reads keys:
/// `p` pauses the scan, `r` resumes it; the pause is recorded as the terminal's, and the
/// terminal has its line editing and echo back once the run has ended.
#[test]
fn p_and_r_on_the_terminal_pause_and_resume_a_scan_and_the_terminal_is_restored() {
    use std::io::Write;
    use std::os::fd::{FromRawFd, OwnedFd};

    let (mut master, slave) = {
        let (mut m, mut s) = (0, 0);
        // SAFETY: openpty writes two descriptors into `m` and `s`; the other arguments may be
        // null.
        let rc = unsafe {
            libc::openpty(
                &mut m,
                &mut s,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty");
        // SAFETY: both descriptors were just opened and are owned here alone.
        unsafe { (std::fs::File::from_raw_fd(m), OwnedFd::from_raw_fd(s)) }
    };
    let out = tempfile::tempdir().expect("tempdir");
    let plan = "type = \"scan\"\nsetpoint = \"meter.offset\"\nstart = 0.0\nstop = 999.0\nsteps = 1000\ndelay = \"2ms\"\ndetectors = [\"meter\"]";
    let file = out.path().join("keys.toml");
    std::fs::write(&file, experiment_text(plan, STEADY)).expect("experiment file");
    let runs = out.path().join("runs");
    let mut child = Command::new(ensemble_bin())
        .arg("run")
        .arg(&file)
        .arg("--output")
        .arg(&runs)
        .stdin(std::process::Stdio::from(slave.try_clone().expect("dup")))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("ensemble run");
    let deadline = Instant::now() + Duration::from_secs(30);
    let run_dir = loop {
        if let Some(dir) = only_run_dir(&runs).filter(|d| d.join("control.sock").exists()) {
            break dir;
        }
        assert!(Instant::now() < deadline, "no control socket");
        std::thread::sleep(Duration::from_millis(5));
    };
    wait_for_phase(&run_dir, "running");
    master.write_all(b"p").expect("key p");
    let paused = wait_for_phase(&run_dir, "paused");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(status(&run_dir)["points_done"], paused["points_done"]);
    master.write_all(b"r").expect("key r");
    let code = child.wait().expect("run ends");
    assert!(code.success(), "{code:?}");
    let m = manifest(&run_dir);
    let pauses = m["interruptions"].as_array().expect("interruptions");
    assert_eq!(pauses.len(), 1, "{pauses:?}");
    assert_eq!(pauses[0]["by"], "terminal");
    assert_eq!(pauses[0]["resumed_by"], "terminal");
    assert_contiguous(&seqs(&read_stream(&run_dir, "primary")), 1000);
    // SAFETY: tcgetattr writes the terminal's settings into `t`.
    let t = unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        assert_eq!(
            libc::tcgetattr(std::os::fd::AsRawFd::as_raw_fd(&slave), &mut t),
            0
        );
        t
    };
    assert_eq!(
        t.c_lflag & (libc::ICANON | libc::ECHO),
        libc::ICANON | libc::ECHO,
        "line editing and echo are back"
    );
}
