//! `[stages.NAME]`: processing stages, compiled on their own, then checked against the stream
//! they read.
//!
//! A stage table has `type` (one of [`STAGE_TYPES`]), `inputs` and the supervision keys; the
//! rest is the stage's own config struct (`FftConfig`, `FirConfig`, `DecimateConfig`,
//! `StatsConfig`). Compiling happens in two steps:
//!
//! 1. [`compile_stage`]: the table alone (type, inputs, config and its `check()`).
//! 2. [`resolve`]: once every instrument is compiled and the graph has been checked, each stage
//!    is built against its upstream stream's schema (instruments first, then stages in
//!    topological order). This finds channels that do not exist, inputs without a fixed rate,
//!    and limits that depend on the rate (a cutoff above Nyquist, a window shorter than a
//!    sample). It plans FFTs and designs filters, but touches no device, file or network.

use std::collections::{HashMap, HashSet};

use arrow_schema::SchemaRef;
use ensemble_actors::batch::{ChannelSpec, stream_schema};
use ensemble_actors::instruments::sim::{SimFault, SimFaultKind, SimGenerator};
use ensemble_actors::stages::decimate::{DecimateConfig, DecimateStage};
use ensemble_actors::stages::fft::{FftConfig, FftStage};
use ensemble_actors::stages::fir::{FirConfig, FirStage};
use ensemble_actors::stages::stats::{StatsConfig, StatsStage, StatsWindow};
use ensemble_actors::stages::{InputSelection, Stage, StageError, StageInput};
use serde::Deserialize;
use serde::de::IntoDeserializer;
use toml::de::DeTable;

use super::component::{
    Checked, SUPERVISION_KEYS, component_config, report_serde_error, take_supervision, take_type,
};
use super::error::Diagnostics;
use super::experiment::{InstrumentKind, InstrumentSpec, Plan, Supervision};
use super::raw::Section;
use super::value::{self, Span, join};
use crate::plan::{PRIMARY_STREAM, PrimaryLayout};

/// Known stage `type`s.
pub(crate) const STAGE_TYPES: &[&str] = &["fft", "fir", "decimate", "stats"];

/// One `[stages.NAME]` table, compiled and checked against the stream it reads.
///
/// ```toml
/// [stages.spectrum]
/// type = "fft"
/// inputs = ["scope.ch0"]   # "scope" takes every channel of scope
/// size = 1024
/// on_failure = "continue"
/// ```
#[derive(Debug, Clone)]
pub struct StageSpec {
    /// The table's name; also the name of the stream the stage produces.
    pub name: String,
    /// `inputs` as written (`"scope"` or `"scope.ch0"` entries).
    pub inputs: Vec<String>,
    /// The one upstream stream and the channels taken from it (v1: one stream per stage).
    pub selection: InputSelection,
    /// The stage's own configuration, by `type`.
    pub kind: StageKind,
    /// What the coordinator does when it fails.
    pub supervision: Supervision,
    /// Testing aid: `fault = { kind = "panic" | "error", after_rows, times }` makes the stage
    /// fail on purpose, to rehearse supervision ([`ensemble_actors::stages::Faulty`]).
    pub fault: Option<SimFault>,
}

/// Stage types (closed: an unknown `type` is a config error).
#[derive(Debug, Clone)]
pub enum StageKind {
    /// `type = "fft"`.
    Fft(FftConfig),
    /// `type = "fir"`.
    Fir(FirConfig),
    /// `type = "decimate"`.
    Decimate(DecimateConfig),
    /// `type = "stats"`.
    Stats(StatsConfig),
}

impl StageKind {
    /// The `type` as written in the file; also the manifest's `component_type` of its stream.
    pub fn type_name(&self) -> &'static str {
        match self {
            StageKind::Fft(_) => "fft",
            StageKind::Fir(_) => "fir",
            StageKind::Decimate(_) => "decimate",
            StageKind::Stats(_) => "stats",
        }
    }

    /// The schema of the stream the stage produces from `input`: builds the stage (plans the
    /// FFT, designs the filter) and asks it. `Err` names what does not fit the input.
    pub fn output_schema(&self, input: &StageInput) -> Result<SchemaRef, StageError> {
        Ok(match self {
            StageKind::Fft(c) => FftStage::new(c, input)?.output_schema(),
            StageKind::Fir(c) => FirStage::new(c, input)?.output_schema(),
            StageKind::Decimate(c) => DecimateStage::new(c, input)?.output_schema(),
            StageKind::Stats(c) => StatsStage::new(c, input)?.output_schema(),
        })
    }

    /// Rows the stage emits for `input_rows` input rows from the start of its stream: whole
    /// FFT windows, one row per FIR input row, every `factor`-th row, whole statistics windows.
    pub fn expected_rows(&self, input: &StageInput, input_rows: u64) -> Option<u64> {
        match self {
            StageKind::Fft(c) => {
                let (size, hop) = (c.size as u64, c.hop() as u64);
                Some(if input_rows >= size {
                    (input_rows - size) / hop.max(1) + 1
                } else {
                    0
                })
            }
            StageKind::Fir(_) => Some(input_rows),
            StageKind::Decimate(c) => Some(input_rows.div_ceil(c.factor.max(1) as u64)),
            StageKind::Stats(c) => {
                let window = c.window_samples(input.rate_hz).ok()? as u64;
                Some(input_rows / window.max(1))
            }
        }
    }

    /// One line of the stage's own settings, for `ensemble validate`.
    pub fn describe(&self) -> String {
        match self {
            StageKind::Fft(c) => format!(
                "size {}, hop {}, {}, {}",
                c.size,
                c.hop(),
                c.window.name(),
                c.output.name()
            ),
            StageKind::Fir(c) => match (&c.taps, &c.design) {
                (Some(taps), _) => format!("{} taps", taps.len()),
                (None, Some(d)) => {
                    let kind = match d.kind {
                        ensemble_actors::stages::fir::FilterKind::Lowpass => "low-pass",
                        ensemble_actors::stages::fir::FilterKind::Highpass => "high-pass",
                        ensemble_actors::stages::fir::FilterKind::Bandpass => "band-pass",
                    };
                    let edges = match d.high_hz {
                        Some(h) => format!("{}–{h} Hz", d.cutoff_hz),
                        None => format!("{} Hz", d.cutoff_hz),
                    };
                    format!("{kind} {edges}, {} taps, {}", d.taps, d.window.name())
                }
                (None, None) => String::new(),
            },
            StageKind::Decimate(c) if c.antialias => format!(
                "factor {}, anti-alias {} taps",
                c.factor,
                c.antialias_taps()
            ),
            StageKind::Decimate(c) => format!("factor {}, no anti-alias", c.factor),
            StageKind::Stats(c) => match c.window {
                StatsWindow::Samples(n) => format!("window {n} samples"),
                StatsWindow::Duration(t) => {
                    format!("window {}", humantime::format_duration(t))
                }
            },
        }
    }
}

impl Checked for FftConfig {
    fn problems(&self) -> Vec<(&'static str, String)> {
        self.check()
    }
}

impl Checked for FirConfig {
    fn problems(&self) -> Vec<(&'static str, String)> {
        self.check()
    }
}

impl Checked for DecimateConfig {
    fn problems(&self) -> Vec<(&'static str, String)> {
        self.check()
    }
}

impl Checked for StatsConfig {
    fn problems(&self) -> Vec<(&'static str, String)> {
        self.check()
    }
}

/// A stage compiled on its own, waiting for its input to be resolved.
pub(super) struct PendingStage {
    /// The compiled stage.
    spec: StageSpec,
    /// Its entries of `inputs`, each where it is written (to point at a missing channel).
    entries: Vec<(String, Span)>,
    /// Where `inputs` is written.
    inputs_span: Span,
}

/// Compiles a stage table on its own. Also returns the streams its inputs name, each at its
/// first entry, for the graph check (even when the stage itself has errors).
pub(super) fn compile_stage(
    section: &Section<'_>,
    d: &mut Diagnostics,
) -> (Option<PendingStage>, Vec<(String, Span)>) {
    let path = join("stages", &section.name);
    let before = d.len();
    let mut rest = section.table.clone();
    let ty = take_type(&mut rest, section, &path, "stage", STAGE_TYPES, d);

    let inputs_path = format!("{path}.inputs");
    let (entries, inputs_span) = match rest.remove("inputs") {
        None => {
            d.at(
                section.span.clone(),
                &inputs_path,
                "missing; name the stream to process, e.g. inputs = [\"scope\"] (every \
                 channel) or [\"scope.ch0\"] (one channel)",
            );
            (Vec::new(), section.span.clone())
        }
        Some(v) => {
            let list = value::string_list(&inputs_path, &v, d).unwrap_or_default();
            if list.is_empty() && v.get_ref().as_array().is_some_and(|a| a.is_empty()) {
                d.at(v.span(), &inputs_path, "must name at least one input");
            }
            let entries: Vec<(String, Span)> = list
                .into_iter()
                .map(|s| {
                    let span = s.span();
                    (s.into_inner(), span)
                })
                .collect();
            (entries, v.span())
        }
    };

    let mut streams: Vec<(String, Span)> = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    for (entry, span) in &entries {
        if !seen.insert(entry.as_str()) {
            d.at(
                span.clone(),
                &inputs_path,
                format!("`{entry}` is listed twice"),
            );
            continue;
        }
        let (stream, channel) = match entry.split_once('.') {
            Some((s, c)) => (s, Some(c)),
            None => (entry.as_str(), None),
        };
        if stream.is_empty() || channel.is_some_and(str::is_empty) {
            d.at(
                span.clone(),
                &inputs_path,
                format!("`{entry}` must be a stream (`scope`) or a stream's channel (`scope.ch0`)"),
            );
            continue;
        }
        if !streams.iter().any(|(s, _)| s == stream) {
            streams.push((stream.to_string(), span.clone()));
        }
    }
    if streams.len() > 1 {
        let names: Vec<String> = streams.iter().map(|(s, _)| format!("`{s}`")).collect();
        d.at(
            inputs_span.clone(),
            &inputs_path,
            format!(
                "all inputs of a stage must come from one stream, got {}; use one stage per \
                 stream",
                names.join(", ")
            ),
        );
    }

    let supervision = take_supervision(&mut rest, &path, d);
    let fault = take_fault(&mut rest, section, &path, d);
    let mut common: Vec<&str> = vec!["type", "inputs", "fault"];
    common.extend_from_slice(SUPERVISION_KEYS);
    let kind = match ty.as_deref() {
        Some("fft") => {
            component_config::<FftConfig>(section, rest, &path, &common, d).map(StageKind::Fft)
        }
        Some("fir") => {
            component_config::<FirConfig>(section, rest, &path, &common, d).map(StageKind::Fir)
        }
        Some("decimate") => component_config::<DecimateConfig>(section, rest, &path, &common, d)
            .map(StageKind::Decimate),
        Some("stats") => {
            component_config::<StatsConfig>(section, rest, &path, &common, d).map(StageKind::Stats)
        }
        _ => None,
    };
    if d.len() != before {
        return (None, streams);
    }
    let names: Vec<&str> = entries.iter().map(|(e, _)| e.as_str()).collect();
    let selection = match InputSelection::parse(&names) {
        Ok(selection) => selection,
        // Reported above (no input, or several streams).
        Err(_) => return (None, streams),
    };
    let pending = kind.map(|kind| PendingStage {
        spec: StageSpec {
            name: section.name.clone(),
            inputs: entries.iter().map(|(e, _)| e.clone()).collect(),
            selection,
            kind,
            supervision,
            fault,
        },
        entries,
        inputs_span,
    });
    (pending, streams)
}

/// Takes the stage's `fault` table (the simulated instrument's, [`SimFault`]) out of `rest`.
fn take_fault(
    rest: &mut DeTable<'_>,
    section: &Section<'_>,
    path: &str,
    d: &mut Diagnostics,
) -> Option<SimFault> {
    let value = rest.remove("fault")?;
    let span = value.span();
    let fault = SimFault::deserialize(value.into_deserializer())
        .map_err(|e| report_serde_error(section, path, &[], &e, d))
        .ok()?;
    if fault.kind == SimFaultKind::Stall {
        d.at(
            span,
            &format!("{path}.fault.kind"),
            "`stall` is for instruments (stall_timeout watches them); a stage can \"panic\" or \"error\"",
        );
        return None;
    }
    Some(fault)
}

/// The schema of each instrument's stream (and of the `primary` stream of a point plan), as
/// the coordinator will plan them.
pub(crate) fn source_schemas(
    instruments: &[InstrumentSpec],
    plan: Option<&Plan>,
) -> HashMap<String, SchemaRef> {
    let mut schemas: HashMap<String, SchemaRef> = instruments
        .iter()
        .map(|i| {
            let schema = match &i.kind {
                InstrumentKind::Sim(cfg) => SimGenerator::new(cfg, 0, 0).schema().clone(),
                InstrumentKind::Scpi(cfg) => stream_schema(
                    &cfg.read
                        .iter()
                        .map(|r| ChannelSpec::new(&r.channel, &r.unit))
                        .collect::<Vec<_>>(),
                ),
            };
            (i.name.clone(), schema)
        })
        .collect();
    if let Some(Plan::Points(points)) = plan {
        let layout = PrimaryLayout::new(points, instruments);
        schemas.insert(PRIMARY_STREAM.to_string(), layout.schema);
    }
    schemas
}

/// Builds each stage against its upstream stream's schema, upstream stages first, reporting
/// what does not fit at the key or input it is about. Returns the stages in topological order
/// (every stage after the stage it reads).
///
/// Stages whose upstream is missing, failed to compile or lies on a cycle are left out: that
/// problem has been reported already.
pub(super) fn resolve(
    pending: Vec<PendingStage>,
    sections: &[Section<'_>],
    mut schemas: HashMap<String, SchemaRef>,
    d: &mut Diagnostics,
) -> Vec<StageSpec> {
    let mut waiting = pending;
    let mut ordered = Vec::new();
    loop {
        let (ready, rest): (Vec<_>, Vec<_>) = waiting
            .into_iter()
            .partition(|p| schemas.contains_key(&p.spec.selection.stream));
        waiting = rest;
        if ready.is_empty() {
            break;
        }
        for p in ready {
            let upstream = &schemas[&p.spec.selection.stream];
            let built = StageInput::from_schema(&p.spec.selection, upstream)
                .and_then(|input| p.spec.kind.output_schema(&input));
            match built {
                Ok(schema) => {
                    schemas.insert(p.spec.name.clone(), schema);
                    ordered.push(p.spec);
                }
                Err(e) => report(&p, sections, &e, d),
            }
        }
    }
    if d.is_empty() {
        if let Some(p) = waiting.first() {
            // Not expected: every unresolved input is reported by the graph check.
            d.at(
                p.inputs_span.clone(),
                &join(&join("stages", &p.spec.name), "inputs"),
                format!(
                    "cannot resolve the input stream `{}`",
                    p.spec.selection.stream
                ),
            );
        }
    }
    ordered
}

/// Reports why a stage does not fit its input.
fn report(p: &PendingStage, sections: &[Section<'_>], e: &StageError, d: &mut Diagnostics) {
    let path = join("stages", &p.spec.name);
    let inputs_path = join(&path, "inputs");
    match e {
        StageError::Config { key, message } => {
            let span = sections
                .iter()
                .find(|s| s.name == p.spec.name)
                .and_then(|s| value::span_of(&s.table, key).or_else(|| Some(s.span.clone())))
                .unwrap_or_else(|| p.inputs_span.clone());
            d.at(span, &format!("{path}.{key}"), message);
        }
        StageError::UnknownChannel {
            stream, channel, ..
        } => {
            let entry = format!("{stream}.{channel}");
            let span = p
                .entries
                .iter()
                .find(|(e, _)| *e == entry)
                .map_or_else(|| p.inputs_span.clone(), |(_, s)| s.clone());
            d.at(span, &inputs_path, e);
        }
        StageError::MissingRate { stream } => d.at(
            p.inputs_span.clone(),
            &inputs_path,
            format!(
                "`{stream}` has no fixed sample rate (SCPI instruments and the plan's `primary` \
                 stream have none); stages need a fixed-rate input such as a sim instrument or \
                 another stage"
            ),
        ),
        _ => d.at(p.inputs_span.clone(), &inputs_path, e),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

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

    fn errors(stages: &str) -> String {
        match compile(Path::new("t.toml"), &format!("{HEAD}{stages}")) {
            Ok(_) => panic!("compiles:\n{stages}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn stages_compile_in_topological_order_and_show_in_the_summary() {
        let text = format!(
            r#"{HEAD}
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
"#
        );
        let e = compile(Path::new("t.toml"), &text).expect("compiles");
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
        let text =
            "\n[stages.f]\ntype = \"fir\"\ninputs = [\"dmm.a\", \"dmm.nope\"]\ntaps = [1.0]\n";
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
            e.contains(
                "stages.f.design.cutoff_hz: must be below the input's Nyquist frequency 50 Hz"
            ),
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
}
