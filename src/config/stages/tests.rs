//! Compiling `[stages.NAME]` tables: order, faults, channels, rate-dependent limits, inputs.

use std::path::Path;

use ensemble_actors::batch::schema_rate_hz;
use ensemble_actors::instruments::sim::{SimFault, SimFaultKind};

use crate::config::{StageKind, compile, compile_with};

const HEAD: &str = r#"
[experiment]
name = "t"
duration = "1s"

[instruments.dmm]
type = "sim"
rate_hz = 1000
channels = ["a", "b"]
unit = "mV"
"#;

/// Two stages in a chain, written downstream first: `dmm.b` → `slow` → `summary`.
const CHAIN: &str = r#"
[stages.summary]
type = "stats"
inputs = ["slow"]
window = "50ms"

[stages.slow]
type = "decimate"
inputs = ["dmm.b"]
factor = 4

[sinks.store]
type = "parquet"
inputs = ["summary", "dmm"]
"#;

fn errors(stages: &str) -> String {
    match compile(Path::new("t.toml"), &format!("{HEAD}{stages}")) {
        Ok(_) => panic!("compiles:\n{stages}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn stages_compile_in_topological_order_and_show_in_the_summary() {
    let e = compile(Path::new("t.toml"), &format!("{HEAD}{CHAIN}")).expect("compiles");
    let names: Vec<&str> = e.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["slow", "summary"]);
    assert_eq!(e.stages[0].selection.stream, "dmm");
    assert_eq!(e.stages[0].selection.channels, Some(vec!["b".to_string()]));
    assert!(matches!(e.stages[1].kind, StageKind::Stats(_)));
    assert_eq!(e.consumers_of("dmm"), ["slow", "store"]);
    let summary = e.graph_summary();
    assert!(summary.contains("→ slow, store"), "{summary}");
    assert!(
        summary.contains("slow     decimate  ← dmm.b  factor 4, anti-alias 81 taps  → summary"),
        "{summary}"
    );
    assert!(summary.contains("window 50ms"), "{summary}");
}

#[test]
fn a_compiled_stage_carries_its_resolved_input_and_output_schema() {
    let e = compile(Path::new("t.toml"), &format!("{HEAD}{CHAIN}")).expect("compiles");
    let slow = &e.stages[0];
    assert_eq!(slow.input.stream, "dmm");
    assert_eq!(slow.input.rate_hz, 1000.0);
    assert_eq!(slow.input.channels.len(), 1);
    let columns: Vec<&str> = slow
        .schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(columns, ["timestamp", "seq", "b"]);
    assert_eq!(schema_rate_hz(&slow.schema), Some(250.0));
    // The stage downstream was resolved against the schema the first one produces.
    let summary = &e.stages[1];
    assert_eq!(summary.input.stream, "slow");
    assert_eq!(summary.input.rate_hz, 250.0);
}

#[test]
fn a_fault_table_is_read_and_a_bad_one_is_reported_at_its_key() {
    let stage = "\n[stages.f]\ntype = \"fir\"\ninputs = [\"dmm\"]\ntaps = [1.0]\n";
    let text = format!(
        "{HEAD}{stage}fault = {{ kind = \"panic\", after_rows = 10, times = 1 }}\n\n\
         [sinks.store]\ntype = \"parquet\"\ninputs = [\"f\"]\n"
    );
    let e = compile(Path::new("t.toml"), &text).expect("compiles");
    assert_eq!(
        e.stages[0].fault,
        Some(SimFault {
            kind: SimFaultKind::Panic,
            after_rows: 10,
            times: Some(1)
        })
    );
    let e = errors(&format!(
        "{stage}fault = {{ kind = \"explode\", after_rows = 10 }}\n"
    ));
    assert!(
        e.contains("stages.f.fault.kind: unknown variant `explode`"),
        "{e}"
    );
    let e = errors(&format!("{stage}fault = {{ kind = \"error\" }}\n"));
    assert!(e.contains("stages.f.fault.after_rows: missing"), "{e}");
    let e = errors(&format!(
        "{stage}fault = {{ kind = \"stall\", after_rows = 10 }}\n"
    ));
    assert!(
        e.contains("stages.f.fault.kind: `stall` is for instruments"),
        "{e}"
    );
}

#[test]
fn a_missing_channel_is_reported_at_its_entry() {
    let text = "\n[stages.f]\ntype = \"fir\"\ninputs = [\"dmm.a\", \"dmm.nope\"]\ntaps = [1.0]\n";
    let e = errors(text);
    assert_eq!(
        e,
        "t.toml:14:20: stages.f.inputs: stream `dmm` has no channel `nope` (it has: a, b)"
    );
}

#[test]
fn rate_dependent_limits_are_checked_against_the_input() {
    let e = errors("\n[stages.s]\ntype = \"stats\"\ninputs = [\"dmm\"]\nwindow = \"100us\"\n");
    assert!(
        e.contains("stages.s.window: 100us is shorter than one sample at 1000 Hz"),
        "{e}"
    );
    // Against a stage's output: the decimated rate is 100 Hz, Nyquist 50 Hz.
    let e = errors(
        "\n[stages.d]\ntype = \"decimate\"\ninputs = [\"dmm\"]\nfactor = 10\n\n\
         [stages.f]\ntype = \"fir\"\ninputs = [\"d.a\"]\n\
         design = { kind = \"lowpass\", cutoff_hz = 60.0 }\n",
    );
    assert!(
        e.contains("stages.f.design.cutoff_hz: must be below the input's Nyquist frequency 50 Hz"),
        "{e}"
    );
}

#[test]
fn inputs_without_a_rate_duplicates_and_bad_names_are_reported() {
    let profiles = crate::config::MapProfiles::default();
    let text = format!(
        r#"{HEAD}
[instruments.meter]
type = "scpi"
address = "tcp://127.0.0.1:5025"
read = [{{ channel = "v", query = "MEAS:VOLT?", unit = "V" }}]

[stages.s]
type = "stats"
inputs = ["meter"]
window = 10

[stages.t]
type = "stats"
inputs = ["dmm.a", "dmm.a", "dmm."]
window = 10
"#
    );
    let e = compile_with(Path::new("t.toml"), &text, &profiles)
        .expect_err("does not compile")
        .to_string();
    assert!(
        e.contains("stages.s.inputs: `meter` has no fixed sample rate"),
        "{e}"
    );
    assert!(
        e.contains("stages.t.inputs: `dmm.a` is listed twice"),
        "{e}"
    );
    assert!(
        e.contains("stages.t.inputs: `dmm.` must be a stream"),
        "{e}"
    );
}

#[test]
fn build_hands_each_stage_type_its_own_struct_built_for_the_input() {
    /// Names the struct it was handed, with its output schema's field count.
    struct Name;
    impl crate::config::UseStage for Name {
        type Output = (&'static str, usize);
        fn stage<S: ensemble_actors::stages::Stage + Send>(self, stage: S) -> Self::Output {
            let name = std::any::type_name::<S>().rsplit("::").next().unwrap_or("");
            (name, stage.output_schema().fields().len())
        }
    }
    let all = r#"
[stages.spectrum]
type = "fft"
inputs = ["dmm.a"]
size = 64

[stages.lp]
type = "fir"
inputs = ["dmm"]
taps = [0.5, 0.5]

[stages.slow]
type = "decimate"
inputs = ["dmm.b"]
factor = 4

[stages.summary]
type = "stats"
inputs = ["dmm.a"]
window = "50ms"
"#;
    let e = compile(Path::new("t.toml"), &format!("{HEAD}{all}")).expect("compiles");
    for stage in &e.stages {
        let (name, fields) = stage.kind.build(&stage.input, Name).expect("builds");
        let expected = match stage.name.as_str() {
            "spectrum" => "FftStage",
            "lp" => "FirStage",
            "slow" => "DecimateStage",
            _ => "StatsStage",
        };
        assert_eq!(name, expected, "{}", stage.name);
        // What `build` hands out is what the compiler resolved the stage's stream with.
        assert_eq!(fields, stage.schema.fields().len(), "{}", stage.name);
    }
}
