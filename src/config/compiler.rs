//! `RawExperiment` → [`Experiment`]: every key read, checked and defaulted, the graph checked.
//!
//! The compiler owns `type`, `inputs`, the link keys and the supervision keys; it splits them off
//! each component's table and hands the rest to the component's own config struct (serde with
//! `deny_unknown_fields`), then runs that struct's `check()` and points each problem at its key.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use ensemble_actors::instruments::sim::SimInstrumentConfig;
use ensemble_actors::link::Delivery;
use ensemble_actors::sinks::nats::NatsSinkConfig;
use ensemble_actors::sinks::null::NullSinkConfig;
use ensemble_actors::sinks::parquet::ParquetSinkConfig;
use serde::Deserialize;
use serde::de::IntoDeserializer;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use ensemble_actors::instruments::scpi::ScpiInstrumentConfig;

use super::error::{Diagnostics, line_col};
use super::experiment::{
    Experiment, InstrumentKind, InstrumentSpec, OnFailure, Plan, SinkKind, SinkSpec, Supervision,
};
use super::graph::{self, Kind, Node};
use super::plan::PlanRefs;
use super::profile::{ProfileSource, merge, shift_table};
use super::raw::{RawExperiment, Section};
use super::value::{self, Span, join, quoted_list};
use crate::plan::{PRIMARY_STREAM, PointKind};

/// Known instrument `type`s.
pub(crate) const INSTRUMENT_TYPES: &[&str] = &["sim", "scpi"];
/// Known sink `type`s.
pub(crate) const SINK_TYPES: &[&str] = &["parquet", "null", "nats"];
/// Plan types that exist now.
pub(crate) const PLAN_TYPES: &[&str] = &[
    "stream",
    "count",
    "scan",
    "grid",
    "list_scan",
    "rel_scan",
    "adaptive_scan",
];
/// Keys of `[experiment]`.
pub(crate) const EXPERIMENT_KEYS: &[&str] = &[
    "name",
    "description",
    "output",
    "duration",
    "grace_period",
    "max_memory_mb",
    "metadata",
];
/// Supervision keys every component takes.
pub(crate) const SUPERVISION_KEYS: &[&str] = &[
    "on_failure",
    "max_restarts",
    "restart_window",
    "restart_backoff",
];
/// Keys every sink takes besides its own and the supervision keys.
pub(crate) const SINK_LINK_KEYS: &[&str] = &["inputs", "delivery", "queue_batches"];

/// Default `[experiment] output`.
const DEFAULT_OUTPUT: &str = "runs";
/// Default `[experiment] max_memory_mb`.
pub const DEFAULT_MAX_MEMORY_MB: u64 = 1024;
/// Smallest `[experiment] max_memory_mb` accepted.
const MIN_MAX_MEMORY_MB: i128 = 32;
/// Default `stall_timeout` of a simulated instrument (SCPI instruments are not watched unless
/// they set one: a device that stops answering shows as read timeouts).
pub const DEFAULT_SIM_STALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `[experiment] grace_period`.
const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(10);
/// Default `queue_batches` of a sink's input links; also the capacity of every stage's input
/// link.
pub const DEFAULT_QUEUE_BATCHES: usize = 16;

/// Compiles `text`; returns `Some` exactly when nothing was reported to `d`.
///
/// `profiles` supplies the tables named by `profile` keys.
pub(crate) fn compile(
    path: &Path,
    text: &str,
    profiles: &dyn ProfileSource,
    d: &mut Diagnostics,
) -> Option<Experiment> {
    let raw = RawExperiment::parse(text, d)?;
    let (plan, plan_refs) = match compile_plan(raw.plan.as_ref(), d) {
        Some((plan, refs)) => (Some(plan), refs),
        None => (None, None),
    };
    let header = if raw.experiment_given || raw.experiment.is_some() {
        raw.experiment
            .as_ref()
            .and_then(|section| compile_header(Some(section), plan.as_ref(), d))
    } else {
        compile_header(None, plan.as_ref(), d)
    };

    let mut nodes = Vec::new();
    let mut instruments = Vec::new();
    for section in &raw.instruments {
        check_name("instruments", section, d);
        nodes.push(Node {
            name: section.name.clone(),
            kind: Kind::Instrument,
            span: section.key.clone(),
            inputs: Vec::new(),
        });
        instruments.extend(compile_instrument(section, profiles, d));
    }
    if let (Some(Plan::Points(points)), Some(refs)) = (&plan, &plan_refs) {
        let names: Vec<String> = raw.instruments.iter().map(|s| s.name.clone()).collect();
        super::plan::check_refs(points, refs, &instruments, &names, d);
    }
    if let (Some(Plan::Points(_)), Some(section)) = (&plan, &raw.plan) {
        // The plan's rows form the `primary` stream, which sinks may take as an input.
        if !raw
            .instruments
            .iter()
            .chain(&raw.sinks)
            .any(|s| s.name == PRIMARY_STREAM)
        {
            nodes.push(Node {
                name: PRIMARY_STREAM.to_string(),
                kind: Kind::Plan,
                span: section.key.clone(),
                inputs: Vec::new(),
            });
        }
    }
    let mut pending_stages = Vec::new();
    for section in &raw.stages {
        check_name("stages", section, d);
        let (pending, inputs) = super::stages::compile_stage(section, d);
        nodes.push(Node {
            name: section.name.clone(),
            kind: Kind::Stage,
            span: section.key.clone(),
            inputs,
        });
        pending_stages.extend(pending);
    }
    let mut sinks = Vec::new();
    // (subdirectory, stream) → the Parquet sink that already writes there.
    let mut parquet_targets: std::collections::HashMap<(Option<String>, String), String> =
        std::collections::HashMap::new();
    for section in &raw.sinks {
        check_name("sinks", section, d);
        let (spec, inputs) = compile_sink(section, d);
        if let Some(SinkSpec {
            kind: SinkKind::Parquet(cfg),
            inputs: names,
            ..
        }) = &spec
        {
            for input in names {
                let target = (cfg.subdirectory.clone(), input.clone());
                if let Some(first) = parquet_targets.insert(target, section.name.clone()) {
                    d.at(
                        section.key.clone(),
                        &join("sinks", &section.name),
                        format!(
                            "stream `{input}` is already stored by Parquet sink `{first}` in the \
                             same directory; give one of them a `subdirectory`"
                        ),
                    );
                }
            }
        }
        nodes.push(Node {
            name: section.name.clone(),
            kind: Kind::Sink,
            span: section.key.clone(),
            inputs,
        });
        sinks.extend(spec);
    }
    graph::check(&nodes, |offset| line_col(text, offset), d);
    let schemas = super::stages::source_schemas(&instruments, plan.as_ref());
    let stages = super::stages::resolve(pending_stages, &raw.stages, schemas, d);

    let header = header?;
    let plan = plan?;
    if !d.is_empty() {
        return None;
    }
    Some(Experiment {
        name: header.name,
        description: header.description,
        output: header.output.into(),
        metadata: header.metadata,
        duration: header.duration,
        grace_period: header.grace_period,
        max_memory_mb: header.max_memory_mb,
        plan,
        instruments,
        stages,
        sinks,
        source_path: path.to_path_buf(),
        source_text: text.to_string(),
    })
}

/// `[experiment]`, compiled.
struct Header {
    name: String,
    description: Option<String>,
    output: String,
    duration: Duration,
    grace_period: Duration,
    max_memory_mb: u64,
    metadata: BTreeMap<String, serde_json::Value>,
}

fn compile_header(
    section: Option<&Section<'_>>,
    plan: Option<&Plan>,
    d: &mut Diagnostics,
) -> Option<Header> {
    let Some(section) = section else {
        d.error(
            0..0,
            "experiment: missing [experiment] table; it needs at least `name` and `duration`",
        );
        return None;
    };
    let before = d.len();
    let t = &section.table;
    value::reject_unknown_keys(t, "experiment", EXPERIMENT_KEYS, d);

    let name = match t.get("name") {
        Some(v) => value::non_empty_string("experiment.name", v, d),
        None => {
            d.at(
                section.span.clone(),
                "experiment.name",
                "missing; every experiment needs a name",
            );
            None
        }
    };
    let description = t
        .get("description")
        .and_then(|v| value::string("experiment.description", v, d));
    let output = t
        .get("output")
        .map_or(Some(DEFAULT_OUTPUT.to_string()), |v| {
            value::non_empty_string("experiment.output", v, d)
        });
    let duration = match t.get("duration") {
        Some(v) => value::duration("experiment.duration", v, false, d),
        // A point plan ends when its points are done; `duration` is not used.
        None if matches!(plan, Some(Plan::Points(_))) => Some(Duration::ZERO),
        None => {
            if plan == Some(&Plan::Stream) {
                d.at(
                    section.span.clone(),
                    "experiment.duration",
                    "missing; the stream plan needs a duration like \"10s\" or \"2m\"",
                );
            }
            None
        }
    };
    let grace_period = t
        .get("grace_period")
        .map_or(Some(DEFAULT_GRACE_PERIOD), |v| {
            value::duration("experiment.grace_period", v, false, d)
        });
    let max_memory_mb = t
        .get("max_memory_mb")
        .map_or(Some(DEFAULT_MAX_MEMORY_MB), |v| {
            value::integer(
                "experiment.max_memory_mb",
                v,
                MIN_MAX_MEMORY_MB,
                i128::from(u32::MAX),
                d,
            )
            // In range: checked against u32::MAX just above.
            .map(|n| u64::try_from(n).unwrap_or(DEFAULT_MAX_MEMORY_MB))
        });
    let mut metadata = BTreeMap::new();
    if let Some(v) = t.get("metadata") {
        match v.get_ref() {
            DeValue::Table(table) => {
                for (key, item) in value::in_file_order(table) {
                    let path = join("experiment.metadata", key.get_ref());
                    metadata.insert(key.get_ref().to_string(), value::to_json(&path, item, d));
                }
            }
            other => d.at(
                v.span(),
                "experiment.metadata",
                format!(
                    "must be a table of free-form values, got {}",
                    value::describe(other)
                ),
            ),
        }
    }
    if d.len() != before {
        return None;
    }
    Some(Header {
        name: name?,
        description,
        output: output?,
        duration: duration?,
        grace_period: grace_period?,
        max_memory_mb: max_memory_mb?,
        metadata,
    })
}

fn compile_plan(
    section: Option<&Section<'_>>,
    d: &mut Diagnostics,
) -> Option<(Plan, Option<PlanRefs>)> {
    let Some(section) = section else {
        return Some((Plan::Stream, None));
    };
    let Some(ty) = section.table.get("type") else {
        d.at(
            section.span.clone(),
            "plan.type",
            format!("missing; known plan types: {}", quoted_list(PLAN_TYPES)),
        );
        return None;
    };
    let ty_name = value::string("plan.type", ty, d)?;
    match ty_name.as_str() {
        "stream" => {
            let before = d.len();
            value::reject_unknown_keys(&section.table, "plan", &["type"], d);
            (d.len() == before).then_some((Plan::Stream, None))
        }
        points @ ("count" | "scan" | "grid" | "list_scan" | "rel_scan" | "adaptive_scan") => {
            let kind = match points {
                "count" => PointKind::Count,
                "scan" => PointKind::Scan,
                "grid" => PointKind::Grid,
                "list_scan" => PointKind::ListScan,
                "rel_scan" => PointKind::RelScan,
                _ => PointKind::AdaptiveScan,
            };
            let (plan, refs) = super::plan::compile_points(section, kind, d)?;
            Some((Plan::Points(plan), Some(refs)))
        }
        other => {
            d.at(
                ty.span(),
                "plan.type",
                format!(
                    "unknown plan type `{other}`; known plan types: {}",
                    quoted_list(PLAN_TYPES)
                ),
            );
            None
        }
    }
}

/// Component names become stream and directory names: keep them plain.
pub(super) fn check_name(section_name: &str, section: &Section<'_>, d: &mut Diagnostics) {
    if section.name == PRIMARY_STREAM {
        d.at(
            section.key.clone(),
            &join(section_name, &section.name),
            "the name `primary` is reserved for the stream a count, scan or grid plan writes; \
             choose another name",
        );
        return;
    }
    let ok = !section.name.is_empty()
        && section
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        d.at(
            section.key.clone(),
            &join(section_name, &section.name),
            "a component name may use only ASCII letters, digits, `_` and `-` (it names the \
             stream and its directory)",
        );
    }
}

/// Takes `type` out of a component's table and checks it is one of `known`.
pub(super) fn take_type(
    rest: &mut DeTable<'_>,
    section: &Section<'_>,
    path: &str,
    what: &str,
    known: &[&str],
    d: &mut Diagnostics,
) -> Option<String> {
    let type_path = format!("{path}.type");
    let Some(ty) = rest.remove("type") else {
        d.at(
            section.span.clone(),
            &type_path,
            format!("missing; known {what} types: {}", quoted_list(known)),
        );
        return None;
    };
    let name = value::string(&type_path, &ty, d)?;
    if !known.contains(&name.as_str()) {
        d.at(
            ty.span(),
            &type_path,
            format!(
                "unknown {what} type `{name}`; known {what} types: {}",
                quoted_list(known)
            ),
        );
        return None;
    }
    Some(name)
}

/// Takes the supervision keys out of a component's table; defaults where absent.
pub(super) fn take_supervision(
    rest: &mut DeTable<'_>,
    path: &str,
    d: &mut Diagnostics,
) -> Supervision {
    let mut s = Supervision::default();
    if let Some(v) = rest.remove("on_failure") {
        let key = format!("{path}.on_failure");
        if let Some(text) = value::string(&key, &v, d) {
            match text.as_str() {
                "restart" => s.on_failure = OnFailure::Restart,
                "abort" => s.on_failure = OnFailure::Abort,
                "continue" => s.on_failure = OnFailure::Continue,
                other => d.at(
                    v.span(),
                    &key,
                    format!(
                        "unknown value `{other}`; expected one of {}",
                        quoted_list(&["restart", "abort", "continue"])
                    ),
                ),
            }
        }
    }
    if let Some(v) = rest.remove("max_restarts") {
        let key = format!("{path}.max_restarts");
        if let Some(n) = value::integer(&key, &v, 0, i128::from(u32::MAX), d) {
            // In range: checked against u32::MAX just above.
            s.max_restarts = u32::try_from(n).unwrap_or(u32::MAX);
        }
    }
    if let Some(v) = rest.remove("restart_window") {
        if let Some(t) = value::duration(&format!("{path}.restart_window"), &v, false, d) {
            s.restart_window = t;
        }
    }
    if let Some(v) = rest.remove("restart_backoff") {
        if let Some(t) = value::duration(&format!("{path}.restart_backoff"), &v, true, d) {
            s.restart_backoff = t;
        }
    }
    s
}

/// A component config that checks what serde cannot.
pub(super) trait Checked {
    /// `(key, message)` for each problem serde cannot find.
    fn problems(&self) -> Vec<(&'static str, String)>;
}

impl Checked for SimInstrumentConfig {
    fn problems(&self) -> Vec<(&'static str, String)> {
        self.check()
    }
}

impl Checked for ScpiInstrumentConfig {
    fn problems(&self) -> Vec<(&'static str, String)> {
        self.check()
    }
}

impl Checked for NullSinkConfig {
    fn problems(&self) -> Vec<(&'static str, String)> {
        self.check()
    }
}

impl Checked for ParquetSinkConfig {
    fn problems(&self) -> Vec<(&'static str, String)> {
        self.check()
    }
}

impl Checked for NatsSinkConfig {
    fn problems(&self) -> Vec<(&'static str, String)> {
        self.check()
    }
}

/// Deserializes the component's own keys (`rest`) into `T` and runs its checks, reporting every
/// problem at the key it is about in the component's `full` table.
pub(super) fn component_config<'i, T: Deserialize<'i> + Checked>(
    section: &Section<'i>,
    rest: DeTable<'i>,
    path: &str,
    common_keys: &[&str],
    d: &mut Diagnostics,
) -> Option<T> {
    let value = Spanned::new(section.span.clone(), DeValue::Table(rest));
    let config = match T::deserialize(value.into_deserializer()) {
        Ok(config) => config,
        Err(e) => {
            report_serde_error(section, path, common_keys, &e, d);
            return None;
        }
    };
    let problems = config.problems();
    if problems.is_empty() {
        return Some(config);
    }
    for (key, message) in problems {
        let span = value::span_of(&section.table, key).unwrap_or_else(|| section.span.clone());
        d.at(span, &format!("{path}.{key}"), message);
    }
    None
}

/// Reports a serde error at the key it is about, with the component's `path` in front.
pub(super) fn report_serde_error(
    section: &Section<'_>,
    path: &str,
    common_keys: &[&str],
    e: &toml::de::Error,
    d: &mut Diagnostics,
) {
    let span = e
        .span()
        .filter(|s| !s.is_empty() || s.start > 0)
        .unwrap_or_else(|| section.span.clone());
    let keys = value::locate(&section.table, &span).unwrap_or_default();
    let mut full = path.to_string();
    for k in &keys {
        if k.starts_with('[') {
            full.push_str(k);
        } else {
            full = join(&full, k);
        }
    }
    let message = e.message().trim();
    let message = if let Some(rest) = message.strip_prefix("unknown field `") {
        // "unknown field `x`, expected one of `a`, `b`" → "unknown key; expected one of ..."
        let expected = rest.split_once(", ").map_or("", |(_, e)| e);
        if keys.len() <= 1 {
            format!(
                "unknown key; {expected}, or a common key: {}",
                quoted_list(common_keys)
            )
        } else {
            format!("unknown key; {expected}")
        }
    } else if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.trim_end_matches('`');
        full = join(&full, field);
        "missing; this key is required".to_string()
    } else {
        humanize(message)
    };
    d.at(span, &full, message);
}

/// Rewrites serde's Rust type names in messages into words.
fn humanize(message: &str) -> String {
    let mut m = message.to_string();
    for (from, to) in [
        ("expected f64", "expected a number"),
        ("expected u64", "expected a whole number, zero or more"),
        ("expected usize", "expected a whole number, zero or more"),
        ("expected u32", "expected a whole number, zero or more"),
        ("expected i32", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected a string", "expected a string"),
    ] {
        m = m.replace(from, to);
    }
    if m.contains("untagged enum ParseSpec") {
        return "must be \"number\", { regex = \"...\", group = N } or { csv = INDEX }".to_string();
    }
    if m.contains("untagged enum Identify") {
        return "must be true, false or a query string".to_string();
    }
    if m.contains("untagged enum Phase") {
        return "must be a number or an array of numbers, one per channel".to_string();
    }
    m
}

fn compile_instrument(
    section: &Section<'_>,
    profiles: &dyn ProfileSource,
    d: &mut Diagnostics,
) -> Option<InstrumentSpec> {
    let path = join("instruments", &section.name);
    let before = d.len();
    let mut rest = section.table.clone();
    let ty = take_type(&mut rest, section, &path, "instrument", INSTRUMENT_TYPES, d);
    let supervision = take_supervision(&mut rest, &path, d);
    let stall_timeout = rest.remove("stall_timeout").map(|v| {
        (
            v.span(),
            value::duration(&format!("{path}.stall_timeout"), &v, true, d),
        )
    });
    let mut common: Vec<&str> = vec!["type", "stall_timeout"];
    common.extend_from_slice(SUPERVISION_KEYS);
    let kind = match ty.as_deref() {
        Some("sim") => component_config::<SimInstrumentConfig>(section, rest, &path, &common, d)
            .map(InstrumentKind::Sim),
        Some("scpi") => compile_scpi(section, rest, &path, profiles, d).map(InstrumentKind::Scpi),
        _ => None,
    };
    if d.len() != before {
        return None;
    }
    let kind = kind?;
    let stall_timeout = match stall_timeout {
        // "0s" turns the watch off.
        Some((span, set)) => {
            let set = set.filter(|t| !t.is_zero());
            check_stall_timeout(&kind, set, span, &path, d)?;
            set
        }
        None => match &kind {
            InstrumentKind::Sim(cfg) => Some(DEFAULT_SIM_STALL_TIMEOUT.max(cfg.batch_interval * 4)),
            InstrumentKind::Scpi(_) => None,
        },
    };
    Some(InstrumentSpec {
        name: section.name.clone(),
        kind,
        supervision,
        stall_timeout,
    })
}

/// A `stall_timeout` must leave room for the instrument's own rhythm, and needs rows to watch.
fn check_stall_timeout(
    kind: &InstrumentKind,
    timeout: Option<Duration>,
    span: Span,
    path: &str,
    d: &mut Diagnostics,
) -> Option<()> {
    let Some(timeout) = timeout else {
        return Some(());
    };
    let key = format!("{path}.stall_timeout");
    let (rhythm, what) = match kind {
        InstrumentKind::Sim(cfg) => (cfg.batch_interval, "batch_interval"),
        InstrumentKind::Scpi(cfg) if cfg.read.is_empty() => {
            d.at(
                span,
                &key,
                "the instrument has no `read` channels, so there is nothing to watch for a stall",
            );
            return None;
        }
        InstrumentKind::Scpi(cfg) => (cfg.poll_interval, "poll_interval"),
    };
    if timeout <= rhythm * 2 {
        d.at(
            span,
            &key,
            format!(
                "{timeout:?} is too short: it must be longer than twice `{what}` ({rhythm:?}), or \"0s\" to turn stall detection off"
            ),
        );
        return None;
    }
    Some(())
}

/// Compiles a sink; also returns its inputs (as written) for the graph check, even when the sink
/// itself has errors.
fn compile_sink(
    section: &Section<'_>,
    d: &mut Diagnostics,
) -> (Option<SinkSpec>, Vec<(String, Span)>) {
    let path = join("sinks", &section.name);
    let before = d.len();
    let mut rest = section.table.clone();
    let ty = take_type(&mut rest, section, &path, "sink", SINK_TYPES, d);

    let inputs_path = format!("{path}.inputs");
    let inputs = match rest.remove("inputs") {
        None => {
            d.at(
                section.span.clone(),
                &inputs_path,
                "missing; name the instruments to store, e.g. inputs = [\"scope\"]",
            );
            Vec::new()
        }
        Some(v) => {
            let list = value::string_list(&inputs_path, &v, d).unwrap_or_default();
            if list.is_empty() && v.get_ref().as_array().is_some_and(|a| a.is_empty()) {
                d.at(v.span(), &inputs_path, "must name at least one input");
            }
            list
        }
    };
    let inputs: Vec<(String, Span)> = inputs
        .into_iter()
        .map(|s| {
            let span = s.span();
            (s.into_inner(), span)
        })
        .collect();

    let mut delivery = Delivery::default();
    if let Some(v) = rest.remove("delivery") {
        let key = format!("{path}.delivery");
        if let Some(text) = value::string(&key, &v, d) {
            match text.as_str() {
                "lossless" => delivery = Delivery::Lossless,
                "best_effort" => delivery = Delivery::BestEffort,
                other => d.at(
                    v.span(),
                    &key,
                    format!(
                        "unknown value `{other}`; expected one of {}",
                        quoted_list(&["lossless", "best_effort"])
                    ),
                ),
            }
        }
    }
    let mut queue_batches = DEFAULT_QUEUE_BATCHES;
    if let Some(v) = rest.remove("queue_batches") {
        let key = format!("{path}.queue_batches");
        if let Some(n) = value::integer(&key, &v, 1, 1 << 20, d) {
            // In range: checked against 1..=2^20 just above.
            queue_batches = usize::try_from(n).unwrap_or(DEFAULT_QUEUE_BATCHES);
        }
    }
    let supervision = take_supervision(&mut rest, &path, d);
    let mut common: Vec<&str> = vec!["type"];
    common.extend_from_slice(SINK_LINK_KEYS);
    common.extend_from_slice(SUPERVISION_KEYS);
    let kind = match ty.as_deref() {
        Some("parquet") => component_config::<ParquetSinkConfig>(section, rest, &path, &common, d)
            .map(SinkKind::Parquet),
        Some("null") => {
            component_config::<NullSinkConfig>(section, rest, &path, &common, d).map(SinkKind::Null)
        }
        Some("nats") => {
            component_config::<NatsSinkConfig>(section, rest, &path, &common, d).map(SinkKind::Nats)
        }
        _ => None,
    };
    if d.len() != before {
        return (None, inputs);
    }
    let spec = kind.map(|kind| SinkSpec {
        name: section.name.clone(),
        inputs: inputs.iter().map(|(name, _)| name.clone()).collect(),
        delivery,
        queue_batches,
        kind,
        supervision,
    });
    (spec, inputs)
}

/// An SCPI instrument: its `profile` (if named) merged under its own keys, then compiled like
/// any component. Values that come from the profile are reported in the profile's file.
fn compile_scpi(
    section: &Section<'_>,
    mut rest: DeTable<'_>,
    path: &str,
    profiles: &dyn ProfileSource,
    d: &mut Diagnostics,
) -> Option<ScpiInstrumentConfig> {
    let mut common: Vec<&str> = vec!["type", "profile"];
    common.extend_from_slice(SUPERVISION_KEYS);
    let Some(profile_value) = rest.remove("profile") else {
        return component_config::<ScpiInstrumentConfig>(section, rest, path, &common, d);
    };
    let key = format!("{path}.profile");
    let name = value::non_empty_string(&key, &profile_value, d)?;
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        d.at(
            profile_value.span(),
            &key,
            format!("`{name}` must be a plain name (letters, digits, `_`, `-`), not a path"),
        );
        return None;
    }
    let profile = match profiles.profile(&name) {
        Ok(p) => p,
        Err(e) => {
            d.at(profile_value.span(), &key, e);
            return None;
        }
    };
    let (parsed, errors) = DeTable::parse_recoverable(&profile.text);
    if !errors.is_empty() {
        let first = errors
            .first()
            .map(|e| e.message().trim().to_string())
            .unwrap_or_default();
        d.at(
            profile_value.span(),
            &key,
            format!(
                "profile `{name}` ({}) is not valid TOML: {first}",
                profile.path.display()
            ),
        );
        return None;
    }
    let base = d.add_source(profile.path.clone(), profile.text.clone());
    let mut profile_table = shift_table(parsed.into_inner(), base);
    for reserved in ["type", "profile"] {
        if let Some(v) = profile_table.remove(reserved) {
            d.at(
                v.span(),
                &format!("{path}.{reserved}"),
                format!("a profile may not set `{reserved}`"),
            );
        }
    }
    let merged = merge(profile_table, rest);
    let merged_section = Section {
        name: section.name.clone(),
        key: section.key.clone(),
        span: section.span.clone(),
        table: merged.clone(),
    };
    component_config::<ScpiInstrumentConfig>(&merged_section, merged, path, &common, d)
}
