//! `[stages.NAME]`: processing stages, compiled on their own, then checked against the stream
//! they read.
//!
//! A stage table has `type` (one of [`STAGE_TYPES`]), `inputs` and the supervision keys; the
//! rest is the stage's own config struct (`FftConfig`, `FirConfig`, `DecimateConfig`,
//! `StatsConfig`). Compiling happens in two steps:
//!
//! 1. [`compile_stage`]: the table alone (type, inputs, config and its `check()`).
//! 2. `stage_resolve::resolve`: once every instrument is compiled and the graph has been
//!    checked, each stage is built against its upstream stream's schema (instruments first,
//!    then stages in topological order). This finds channels that do not exist, inputs without
//!    a fixed rate, and limits that depend on the rate (a cutoff above Nyquist, a window shorter
//!    than a sample). It plans FFTs and designs filters, but touches no device, file or
//!    network. The resolved input and output schema stay in the [`StageSpec`], so the
//!    coordinator plans the stage's stream without building the stage again.

use std::collections::HashSet;

use arrow_schema::{Schema, SchemaRef};
use ensemble_actors::instruments::sim::{SimFault, SimFaultKind};
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
use super::experiment::Supervision;
use super::raw::Section;
use super::value::{self, Span, join};

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
    /// What the stage reads (its upstream's selected channels and rate), resolved against the
    /// upstream stream's schema when compiling; every launch builds the stage for it.
    pub input: StageInput,
    /// The schema of the stream the stage produces, found once when compiling (by building
    /// the stage for `input`); the coordinator plans the stream with it.
    pub schema: SchemaRef,
}

/// What to do with a stage once [`StageKind::build`] has built it (a closure cannot be
/// generic over the stage's type): ask its schema, start its actor.
pub trait UseStage {
    /// What using the stage gives.
    type Output;
    /// Uses the built `stage`.
    fn stage<S: Stage + Send>(self, stage: S) -> Self::Output;
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

    /// Builds the stage for `input` (plans the FFT, designs the filter) and hands it to `use_`:
    /// the one place that maps a stage type to its struct. `Err` names what does not fit the
    /// input.
    pub fn build<U: UseStage>(&self, input: &StageInput, use_: U) -> Result<U::Output, StageError> {
        Ok(match self {
            StageKind::Fft(c) => use_.stage(FftStage::new(c, input)?),
            StageKind::Fir(c) => use_.stage(FirStage::new(c, input)?),
            StageKind::Decimate(c) => use_.stage(DecimateStage::new(c, input)?),
            StageKind::Stats(c) => use_.stage(StatsStage::new(c, input)?),
        })
    }

    /// The schema of the stream the stage produces from `input`: builds the stage and asks
    /// it. `Err` names what does not fit the input.
    pub fn output_schema(&self, input: &StageInput) -> Result<SchemaRef, StageError> {
        struct Schema;
        impl UseStage for Schema {
            type Output = SchemaRef;
            fn stage<S: Stage + Send>(self, stage: S) -> SchemaRef {
                stage.output_schema()
            }
        }
        self.build(input, Schema)
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

/// A stage table compiled on its own: everything of a [`StageSpec`] but what depends on its
/// input stream.
pub(super) struct StageTable {
    /// The table's name.
    pub(super) name: String,
    /// `inputs` as written.
    pub(super) inputs: Vec<String>,
    /// The one upstream stream and the channels taken from it.
    pub(super) selection: InputSelection,
    /// The stage's own configuration.
    pub(super) kind: StageKind,
    /// Its failure policy.
    pub(super) supervision: Supervision,
    /// Its injected fault, if any.
    pub(super) fault: Option<SimFault>,
}

impl StageTable {
    /// Builds the stage against its `upstream` stream's schema: what it reads and the schema it
    /// produces. `Err` names what does not fit.
    pub(super) fn build(&self, upstream: &Schema) -> Result<(StageInput, SchemaRef), StageError> {
        let input = StageInput::from_schema(&self.selection, upstream)?;
        let schema = self.kind.output_schema(&input)?;
        Ok((input, schema))
    }

    /// The compiled stage, once built against its input.
    pub(super) fn into_spec(self, input: StageInput, schema: SchemaRef) -> StageSpec {
        StageSpec {
            name: self.name,
            inputs: self.inputs,
            selection: self.selection,
            kind: self.kind,
            supervision: self.supervision,
            fault: self.fault,
            input,
            schema,
        }
    }
}

/// A stage compiled on its own, waiting for its input to be resolved.
pub(super) struct PendingStage {
    /// The compiled table.
    pub(super) spec: StageTable,
    /// Its entries of `inputs`, each where it is written (to point at a missing channel).
    pub(super) entries: Vec<(String, Span)>,
    /// Where `inputs` is written.
    pub(super) inputs_span: Span,
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
        spec: StageTable {
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

#[cfg(test)]
mod tests;
