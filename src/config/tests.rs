//! Tests of the experiment compiler: the fixtures in `configs/`, and the plain pieces.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ensemble_actors::link::Delivery;
use ensemble_actors::sinks::parquet::Codec;

use super::error::{Diagnostics, line_col};
use super::graph::{self, Kind, Node, find_cycles};
use super::*;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `*.toml` files directly in `dir` (relative to the crate root), sorted.
fn toml_files(dir: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(manifest_dir().join(dir)) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "toml"))
        .map(|p| Path::new(dir).join(p.file_name().expect("a file has a name")))
        .collect();
    files.sort();
    files
}

/// The profiles in `configs/instruments/`.
fn repo_profiles() -> DirProfiles {
    DirProfiles {
        dirs: vec![manifest_dir().join("configs/instruments")],
    }
}

fn read(relative: &Path) -> String {
    std::fs::read_to_string(manifest_dir().join(relative)).expect("fixture is readable")
}

const MINIMAL: &str = r#"
[experiment]
name = "bench"
duration = "2s"

[instruments.scope]
type = "sim"
rate_hz = 1000

[sinks.store]
type = "parquet"
inputs = ["scope"]
"#;

fn compile_str(text: &str) -> Result<Experiment, ConfigErrors> {
    compile(Path::new("test.toml"), text)
}

fn messages(text: &str) -> Vec<String> {
    match compile_str(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.errors().iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn every_invalid_fixture_fails_with_its_expected_messages() {
    let files = toml_files("configs/invalid");
    assert!(files.len() >= 28, "only {} invalid fixtures", files.len());
    for file in files {
        let text = read(&file);
        let expects: Vec<&str> = text
            .lines()
            .take_while(|l| l.starts_with('#'))
            .filter_map(|l| l.strip_prefix("# expect:"))
            .map(str::trim)
            .collect();
        assert!(
            text.starts_with("# expect: ") && !expects.is_empty(),
            "{}: the first line must be `# expect: ...`",
            file.display()
        );
        let errors = match compile_with(&file, &text, &repo_profiles()) {
            Ok(_) => panic!("{} compiled but must fail", file.display()),
            Err(errors) => errors,
        };
        let output = errors.to_string();
        for expect in &expects {
            assert!(
                output.contains(expect),
                "{}: expected `{expect}` in:\n{output}",
                file.display()
            );
        }
        let lines: Vec<&str> = text.lines().collect();
        let prefix = format!("{}:", file.display());
        // Indented lines continue the error above them (an expression and its caret).
        for line in output.lines().filter(|l| !l.starts_with("    ")) {
            let rest = line
                .strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("`{line}` does not start with `{prefix}`"));
            let mut parts = rest.splitn(3, ':');
            let row: usize = parts
                .next()
                .and_then(|s| s.parse().ok())
                .expect("a line number");
            let col: usize = parts.next().and_then(|s| s.parse().ok()).expect("a column");
            assert!(
                parts.next().is_some_and(|m| m.starts_with(' ')),
                "`{line}`: no message"
            );
            assert!(row >= 1 && row <= lines.len(), "`{line}`: no such line");
            assert!(
                col >= 1 && col <= lines[row - 1].chars().count() + 1,
                "`{line}`: no such column"
            );
        }
        // Sorted by position.
        let positions: Vec<(usize, usize)> =
            errors.errors().iter().map(|e| (e.line, e.column)).collect();
        let mut sorted = positions.clone();
        sorted.sort();
        assert_eq!(positions, sorted, "{}: errors not sorted", file.display());
    }
}

#[test]
fn every_experiment_in_configs_compiles() {
    let files = toml_files("configs");
    assert!(
        files.iter().any(|f| f.ends_with("minimal.toml")),
        "configs/minimal.toml is missing"
    );
    for file in files {
        let text = read(&file);
        if let Err(errors) = compile_with(&file, &text, &repo_profiles()) {
            panic!("{} must compile:\n{errors}", file.display());
        }
    }
}

#[test]
fn minimal_example_compiles_to_the_expected_experiment() {
    let text = read(Path::new("configs/minimal.toml"));
    let e = compile(Path::new("configs/minimal.toml"), &text).expect("minimal compiles");
    assert_eq!(e.name, "minimal");
    assert_eq!(e.duration, Duration::from_secs(2));
    assert_eq!(e.instruments.len(), 1);
    assert_eq!(e.sinks[0].inputs, vec!["scope".to_string()]);
    assert_eq!(e.source_text, text);
}

#[test]
fn line_and_column_count_characters_not_bytes() {
    let text = "ab\nµs = 1\n\n€€x";
    assert_eq!(line_col(text, 0), (1, 1));
    assert_eq!(line_col(text, 1), (1, 2));
    assert_eq!(line_col(text, 2), (1, 3), "the newline itself ends line 1");
    assert_eq!(line_col(text, 3), (2, 1));
    // `µ` is two bytes: `s` is at byte 5 but column 2.
    assert_eq!(line_col(text, 5), (2, 2));
    // Inside a multi-byte character: that character.
    assert_eq!(line_col(text, 4), (2, 1));
    assert_eq!(line_col(text, 12), (4, 1));
    // `€` is three bytes: `x` is at byte 18, column 3.
    assert_eq!(&text[18..], "x");
    assert_eq!(line_col(text, 18), (4, 3));
    assert_eq!(line_col(text, 19), (4, 4), "end of text");
    assert_eq!(line_col(text, 99), (4, 4), "past the end is clamped");
    assert_eq!(
        line_col("a\n", 2),
        (1, 2),
        "end after a final newline: end of last line"
    );
    assert_eq!(line_col("", 0), (1, 1));
}

#[test]
fn positions_point_at_the_offending_value_after_multibyte_text() {
    let text = MINIMAL
        .replace("\"bench\"", "\"Überprüfung\"")
        .replace("1000", "-5")
        .replace(
            "name = \"Überprüfung\"",
            "name = \"Überprüfung\"\ndescription = \"Ω → µ\"",
        );
    let errors = messages(&text);
    assert_eq!(
        errors,
        vec!["test.toml:9:11: instruments.scope.rate_hz: must be a positive number, got -5"]
    );
}

#[test]
fn defaults_are_applied() {
    let e = compile_str(MINIMAL).expect("compiles");
    assert_eq!(e.output, PathBuf::from("runs"));
    assert_eq!(e.grace_period, Duration::from_secs(10));
    assert_eq!(e.description, None);
    assert!(e.metadata.is_empty());
    assert_eq!(e.plan, Plan::Stream);
    let instrument = &e.instruments[0];
    assert_eq!(instrument.supervision, Supervision::default());
    assert_eq!(instrument.supervision.on_failure, OnFailure::Restart);
    assert_eq!(instrument.supervision.max_restarts, 5);
    assert_eq!(
        instrument.supervision.restart_window,
        Duration::from_secs(60)
    );
    assert_eq!(
        instrument.supervision.restart_backoff,
        Duration::from_millis(100)
    );
    let InstrumentKind::Sim(sim) = &instrument.kind else {
        panic!("a sim instrument")
    };
    assert_eq!(sim.channels, vec!["ch0".to_string()]);
    let sink = &e.sinks[0];
    assert_eq!(sink.delivery, Delivery::Lossless);
    assert_eq!(sink.queue_batches, 16);
    let SinkKind::Parquet(parquet) = &sink.kind else {
        panic!("a parquet sink")
    };
    assert_eq!(parquet.compression, Codec::Zstd);
}

#[test]
fn given_values_override_defaults() {
    let text = r#"
[experiment]
name = "full"
description = "every key"
output = "/data/runs"
duration = "2m"
grace_period = "250ms"

[plan]
type = "stream"

[instruments.scope]
type = "sim"
rate_hz = 2.5e3
channels = ["x", "y", "z"]
unit = "mV"
on_failure = "continue"
max_restarts = 0
restart_window = "5m"
restart_backoff = "0s"
signal = { shape = "square", phase = [0.0, 1.0, 2.0] }

[sinks.store]
type = "parquet"
inputs = ["scope"]
delivery = "best_effort"
queue_batches = 4
on_failure = "abort"
compression = "snappy"
rotate_interval = "1h"
"#;
    let e = compile_str(text).expect("compiles");
    assert_eq!(e.description.as_deref(), Some("every key"));
    assert_eq!(e.output, PathBuf::from("/data/runs"));
    assert_eq!(e.duration, Duration::from_secs(120));
    assert_eq!(e.grace_period, Duration::from_millis(250));
    let s = e.instruments[0].supervision;
    assert_eq!(s.on_failure, OnFailure::Continue);
    assert_eq!(s.max_restarts, 0);
    assert_eq!(s.restart_window, Duration::from_secs(300));
    assert_eq!(s.restart_backoff, Duration::ZERO);
    let sink = &e.sinks[0];
    assert_eq!(sink.delivery, Delivery::BestEffort);
    assert_eq!(sink.queue_batches, 4);
    assert_eq!(sink.supervision.on_failure, OnFailure::Abort);
    let SinkKind::Parquet(p) = &sink.kind else {
        panic!("a parquet sink")
    };
    assert_eq!(p.compression, Codec::Snappy);
    assert_eq!(p.rotate_interval, Some(Duration::from_secs(3600)));
}

#[test]
fn components_keep_file_order() {
    let text = r#"
[experiment]
name = "order"
duration = "1s"

[instruments.zeta]
type = "sim"
rate_hz = 1

[instruments.alpha]
type = "sim"
rate_hz = 1

[sinks.b]
type = "parquet"
inputs = ["zeta"]

[sinks.a]
type = "parquet"
inputs = ["alpha", "zeta"]
subdirectory = "a"
"#;
    let e = compile_str(text).expect("compiles");
    assert_eq!(
        e.component_names().collect::<Vec<_>>(),
        ["zeta", "alpha", "b", "a"]
    );
    assert_eq!(e.consumers_of("zeta"), ["b", "a"]);
    assert_eq!(e.consumers_of("alpha"), ["a"]);
}

#[test]
fn metadata_is_converted_to_json() {
    let text = MINIMAL.replace(
        "duration = \"2s\"\n",
        "duration = \"2s\"\n\n[experiment.metadata]\noperator = \"Ada\"\nsample = 42\nhex = 0xff\n\
         big = 18_446_744_073_709_551_615\ntemperature = -3.5\nok = true\n\
         started = 2024-05-27T07:32:00Z\nday = 2024-05-27\nweird = nan\n",
    );
    let e = compile_str(&text).expect("compiles");
    let m = serde_json::Value::Object(e.metadata.clone().into_iter().collect());
    assert_eq!(
        m,
        serde_json::json!({
            "operator": "Ada",
            "sample": 42,
            "hex": 255,
            "big": u64::MAX,
            "temperature": -3.5,
            "ok": true,
            "started": "2024-05-27T07:32:00Z",
            "day": "2024-05-27",
            "weird": "nan",
        })
    );
}

#[test]
fn metadata_values_must_be_scalars_and_keys_must_not_look_like_secrets() {
    let text = MINIMAL.replace(
        "duration = \"2s\"\n",
        "duration = \"2s\"\n\n[experiment.metadata]\ntags = [\"a\", 1]\n\
         nested = { depth = 2 }\napi_token = \"abc\"\nDB_Password = \"x\"\nsample = \"B7\"\n",
    );
    let errors = compile_str(&text).expect_err("refused").to_string();
    let lines: Vec<&str> = errors.lines().collect();
    assert_eq!(lines.len(), 4, "{errors}");
    assert!(
        lines[0].contains("experiment.metadata.tags: must be a scalar"),
        "{errors}"
    );
    assert!(
        lines[1].contains("experiment.metadata.nested: must be a scalar"),
        "{errors}"
    );
    assert!(
        lines[2].contains("experiment.metadata.api_token: `api_token` looks like a secret"),
        "{errors}"
    );
    assert!(
        lines[3].contains("DB_Password` looks like a secret (contains `password`)"),
        "{errors}"
    );
    // Each points at its line: file:line:col.
    let first_line = MINIMAL
        .lines()
        .position(|l| l.starts_with("duration"))
        .expect("duration")
        + 4;
    assert!(
        lines[0].starts_with(&format!("test.toml:{first_line}:")),
        "{errors}"
    );
}

#[test]
fn metadata_integer_beyond_64_bits_is_an_error() {
    // TOML itself limits integers to i64, so the parser reports it.
    let text = MINIMAL.replace(
        "duration = \"2s\"\n",
        "duration = \"2s\"\nmetadata = { n = 99999999999999999999 }\n",
    );
    assert_eq!(messages(&text).len(), 1);
}

fn node(name: &str, kind: Kind, at: usize, inputs: &[&str]) -> Node {
    Node {
        name: name.to_string(),
        kind,
        span: at..at + 1,
        inputs: inputs
            .iter()
            .enumerate()
            .map(|(i, s)| (s.to_string(), at + 10 + i..at + 11 + i))
            .collect(),
    }
}

#[test]
fn find_cycles_finds_every_kind_of_cycle() {
    assert!(find_cycles(&[]).is_empty());
    assert!(
        find_cycles(&[vec![1], vec![2], vec![]]).is_empty(),
        "a chain"
    );
    assert!(
        find_cycles(&[vec![1, 2], vec![3], vec![3], vec![]]).is_empty(),
        "a diamond"
    );
    assert_eq!(find_cycles(&[vec![0]]), vec![vec![0]], "a self loop");
    assert_eq!(
        find_cycles(&[vec![1], vec![2], vec![0]]),
        vec![vec![0, 1, 2]]
    );
    // Two separate cycles, one reached from an acyclic part.
    let cycles = find_cycles(&[vec![1], vec![2], vec![1], vec![4], vec![3]]);
    assert_eq!(cycles, vec![vec![1, 2], vec![3, 4]]);
}

#[test]
fn graph_check_reports_a_cycle_between_stages() {
    // The graph check alone, on nodes built by hand.
    let nodes = vec![
        node("scope", Kind::Instrument, 0, &[]),
        node("filter", Kind::Stage, 100, &["scope", "fft"]),
        node("fft", Kind::Stage, 200, &["filter"]),
        node("store", Kind::Sink, 300, &["fft"]),
    ];
    let mut d = Diagnostics::default();
    graph::check(&nodes, |_| (1, 1), &mut d);
    let errors = d.into_errors(Path::new("g.toml"), &" ".repeat(400));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0]
            .message
            .contains("inputs form a cycle: filter → fft → filter")
            || errors[0]
                .message
                .contains("inputs form a cycle: fft → filter → fft"),
        "{}",
        errors[0].message
    );
}

#[test]
fn graph_check_accepts_a_valid_graph() {
    let nodes = vec![
        node("scope", Kind::Instrument, 0, &[]),
        node("fft", Kind::Stage, 100, &["scope"]),
        node("store", Kind::Sink, 200, &["scope", "fft"]),
    ];
    let mut d = Diagnostics::default();
    graph::check(&nodes, |_| (1, 1), &mut d);
    assert!(d.is_empty());
}

#[test]
fn all_errors_are_collected_and_sorted() {
    let text = r#"[experiment]
name = ""
duration = "soon"
colour = "blue"

[instruments.scope]
type = "sim"
rate_hz = 0
channels = []

[instruments.probe]
type = "laser"

[sinks.store]
type = "parquet"
inputs = ["scope", "nothing"]
delivery = "always"
zstd_level = 0

[sinks.scope]
type = "parquet"
inputs = ["store"]
"#;
    let errors = messages(text);
    let expected = [
        "test.toml:2:8: experiment.name: must not be empty",
        "test.toml:3:12: experiment.duration: is not a duration",
        "test.toml:4:1: experiment.colour: unknown key",
        "test.toml:8:11: instruments.scope.rate_hz: must be a positive number, got 0",
        "test.toml:9:12: instruments.scope.channels: must name at least one channel",
        "test.toml:12:8: instruments.probe.type: unknown instrument type `laser`",
        "test.toml:16:20: sinks.store.inputs: `nothing` (referenced by sinks.store) does not \
         exist; components that produce a stream: instruments.scope, instruments.probe",
        "test.toml:17:12: sinks.store.delivery: unknown value `always`",
        "test.toml:18:14: sinks.store.zstd_level: must be 1 to 22, got 0",
        "test.toml:20:8: sinks.scope: the name `scope` is already used by instruments.scope \
         (line 6)",
        "test.toml:22:11: sinks.scope.inputs: `store` is a sink",
    ];
    for (got, want) in errors.iter().zip(expected) {
        assert!(
            got.starts_with(want),
            "got  `{got}`\nwant `{want}…`\nall:\n{errors:#?}"
        );
    }
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
}

#[test]
fn an_experiment_that_is_not_a_table_is_one_error() {
    let text = MINIMAL.replace(
        "[experiment]\nname = \"bench\"\nduration = \"2s\"\n",
        "experiment = 5\n",
    );
    assert_eq!(
        messages(&text),
        vec!["test.toml:2:14: experiment: must be a table ([experiment]), got 5"]
    );
}

#[test]
fn a_stream_plan_and_no_plan_are_the_same() {
    let with_plan = format!("{MINIMAL}\n[plan]\ntype = \"stream\"\n");
    assert_eq!(
        compile_str(&with_plan).expect("compiles").plan,
        Plan::Stream
    );
    let errors = messages(&format!(
        "{MINIMAL}\n[plan]\ntype = \"stream\"\nsteps = 3\n"
    ));
    assert!(errors[0].contains("plan.steps: unknown key"), "{errors:?}");
}

#[test]
fn unreadable_file_is_one_error_without_position() {
    let path = manifest_dir().join("configs/does-not-exist.toml");
    let errors = load(&path).expect_err("missing file");
    assert_eq!(errors.len(), 1);
    let line = errors.to_string();
    assert!(
        line.starts_with(&format!("{}: cannot read: ", path.display())),
        "{line}"
    );
}

#[test]
fn load_reads_and_compiles() {
    let e = load(&manifest_dir().join("configs/minimal.toml")).expect("compiles");
    assert_eq!(e.name, "minimal");
}

/// Prints what every invalid fixture produces: `cargo test -p ensemble --lib show_invalid --
/// --ignored --nocapture`.
#[test]
#[ignore = "prints the messages for review"]
fn show_invalid_fixture_messages() {
    for file in toml_files("configs/invalid") {
        if let Err(e) = compile(&file, &read(&file)) {
            println!("{e}");
        }
    }
}

#[test]
fn graph_summary_shows_components_and_links() {
    let text = MINIMAL.replace(
        "rate_hz = 1000",
        "rate_hz = 1000\nchannels = [\"a\", \"b\"]",
    ) + "\n[sinks.archive]\ntype = \"parquet\"\ninputs = [\"scope\"]\nsubdirectory = \"archive\"\ncompression = \"none\"\n\
           delivery = \"best_effort\"\n";
    let summary = compile_str(&text).expect("compiles").graph_summary();
    println!("{summary}");
    assert!(
        summary.starts_with("experiment  bench: stream for 2s"),
        "{summary}"
    );
    assert!(
        summary.contains("scope  sim  1 kHz  2 ch  V  → store, archive"),
        "{summary}"
    );
    assert!(
        summary.contains("store    parquet  ← scope  lossless     zstd level 1"),
        "{summary}"
    );
    assert!(
        summary.contains("archive  parquet  ← scope  best effort  uncompressed"),
        "{summary}"
    );
}

const SCPI_WITH_PROFILE: &str = r#"
[experiment]
name = "p"
duration = "1s"

[instruments.dmm]
type = "scpi"
profile = "meter"
address = "tcp://127.0.0.1:5025"
init = ["*RST"]
"#;

fn meter_profile(text: &str) -> MapProfiles {
    MapProfiles([("meter".to_string(), text.to_string())].into())
}

#[test]
fn a_profile_is_merged_under_the_instrument_table() {
    let profile = "timeout = \"2s\"\ninit = [\"*CLS\", \"CONF\"]\n[[read]]\nchannel = \"v\"\nquery = \"V?\"\nunit = \"V\"\n";
    let e = compile_with(
        Path::new("t.toml"),
        SCPI_WITH_PROFILE,
        &meter_profile(profile),
    )
    .expect("compiles");
    let InstrumentKind::Scpi(c) = &e.instruments[0].kind else {
        panic!("an scpi instrument")
    };
    assert_eq!(c.timeout, Duration::from_secs(2), "from the profile");
    assert_eq!(
        c.init,
        vec!["*RST".to_string()],
        "arrays are replaced, not appended"
    );
    assert_eq!(c.read[0].channel, "v");
    assert_eq!(c.address, "tcp://127.0.0.1:5025");
}

#[test]
fn an_error_inside_a_profile_points_into_the_profile_file() {
    let profile = "timeout = \"2s\"\n\n[[read]]\nchannel = \"v\"\nquery = \"V?\"\nunits = \"V\"\n";
    let errors = compile_with(
        Path::new("t.toml"),
        SCPI_WITH_PROFILE,
        &meter_profile(profile),
    )
    .expect_err("unknown key in the profile");
    let e = &errors.errors()[0];
    assert_eq!(e.file, PathBuf::from("meter.toml"));
    assert_eq!((e.line, e.column), (6, 1), "{e}");
    assert!(
        e.message
            .contains("instruments.dmm.read[0].units: unknown key"),
        "{e}"
    );
}

#[test]
fn compile_without_a_profile_source_says_why_a_profile_fails() {
    let errors = messages(SCPI_WITH_PROFILE);
    assert!(
        errors[0].contains("instruments.dmm.profile: profile `meter` cannot be read here"),
        "{errors:?}"
    );
}

#[test]
fn a_scan_compiles_to_its_points_and_primary_is_an_input() {
    let text = r#"
[experiment]
name = "s"

[instruments.meter]
type = "sim"
rate_hz = 10

[plan]
type = "scan"
setpoint = "meter.offset"
start = 0
stop = 1
steps = 3
readings_per_point = 4
settle = "5ms"
detectors = ["meter"]

[sinks.store]
type = "parquet"
inputs = ["primary"]
"#;
    let e = compile_str(text).expect("compiles");
    let Plan::Points(p) = &e.plan else {
        panic!("a point plan")
    };
    assert_eq!(p.axes[0].points, vec![0.0, 0.5, 1.0]);
    assert_eq!(
        (p.readings_per_point, p.settle),
        (4, Duration::from_millis(5))
    );
    assert_eq!(p.total_points(), Some(3));
    assert_eq!(e.sinks[0].inputs, vec!["primary".to_string()]);
}

#[test]
fn plan_pause_streams_is_compiled_with_the_plan() {
    let stream = format!("{MINIMAL}\n[plan]\ntype = \"stream\"\npause_streams = true\n");
    assert!(compile_str(&stream).expect("compiles").pause_streams);
    assert!(!compile_str(MINIMAL).expect("compiles").pause_streams);
    // A wrong value is reported beside the plan's own problems (here a missing `type`).
    let both = format!("{MINIMAL}\n[plan]\npause_streams = \"yes\"\n");
    let m = messages(&both);
    assert!(m.iter().any(|e| e.contains("plan.type")), "{m:?}");
    assert!(m.iter().any(|e| e.contains("plan.pause_streams")), "{m:?}");
}
