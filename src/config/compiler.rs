//! `RawExperiment` → [`Experiment`]: every key read, checked and defaulted, the graph checked.
//!
//! The compiler owns `type`, `inputs`, the link keys and the supervision keys; it splits them off
//! each component's table and hands the rest to the component's own config struct (serde with
//! `deny_unknown_fields`), then runs that struct's `check()` and points each problem at its key.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use toml::de::DeValue;

use super::component::check_name;
use super::error::{Diagnostics, line_col};
use super::experiment::{Experiment, Plan, SinkKind, SinkSpec};
use super::graph::{self, Kind, Node};
use super::instrument::compile_instrument;
use super::plan::PlanRefs;
use super::profile::ProfileSource;
use super::raw::{RawExperiment, Section};
use super::sink::compile_sink;
use super::value::{self, join, quoted_list};
use crate::plan::{PRIMARY_STREAM, PointKind};

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
    "thumbnails",
];
/// Default `[experiment] output`.
const DEFAULT_OUTPUT: &str = "runs";
/// Default `[experiment] max_memory_mb`.
pub const DEFAULT_MAX_MEMORY_MB: u64 = 1024;
/// Smallest `[experiment] max_memory_mb` accepted.
const MIN_MAX_MEMORY_MB: i128 = 32;
/// Default `[experiment] grace_period`.
const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(10);
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
    let (plan, plan_refs, pause_streams) = match compile_plan(raw.plan.as_ref(), d) {
        Some(c) => (Some(c.plan), c.refs, Some(c.pause_streams)),
        None => (None, None, None),
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
        super::plan_checks::check_refs(points, refs, &instruments, &names, d);
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
    let schemas = super::stage_resolve::source_schemas(&instruments, plan.as_ref());
    let stages = super::stage_resolve::resolve(pending_stages, &raw.stages, schemas, d);

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
        thumbnails: header.thumbnails,
        plan,
        pause_streams: pause_streams?,
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
    thumbnails: bool,
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
    let thumbnails = t.get("thumbnails").map_or(Some(false), |v| {
        value::boolean("experiment.thumbnails", v, d)
    });
    let mut metadata = BTreeMap::new();
    if let Some(v) = t.get("metadata") {
        match v.get_ref() {
            DeValue::Table(table) => {
                for (key, item) in value::in_file_order(table) {
                    let path = join("experiment.metadata", key.get_ref());
                    if let Some(problem) = super::metadata::key_problem(key.get_ref()) {
                        d.at(key.span(), &path, problem);
                        continue;
                    }
                    if matches!(item.get_ref(), DeValue::Array(_) | DeValue::Table(_)) {
                        d.at(
                            item.span(),
                            &path,
                            format!(
                                "must be a scalar (string, number, boolean or date), got {};                                  metadata is matched by `ensemble runs --where KEY=VALUE`",
                                value::describe(item.get_ref())
                            ),
                        );
                        continue;
                    }
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
        thumbnails: thumbnails?,
    })
}

/// `[plan]`, compiled.
struct CompiledPlan {
    /// What the run does.
    plan: Plan,
    /// Where a point plan's names are written, to check them once the instruments are
    /// compiled.
    refs: Option<PlanRefs>,
    /// `pause_streams` (default false).
    pause_streams: bool,
}

/// Compiles `[plan]` (a stream plan when there is none); `None` after reporting its problems.
fn compile_plan(section: Option<&Section<'_>>, d: &mut Diagnostics) -> Option<CompiledPlan> {
    let Some(section) = section else {
        return Some(CompiledPlan {
            plan: Plan::Stream,
            refs: None,
            pause_streams: false,
        });
    };
    let plan = compile_plan_type(section, d);
    let pause_streams = section
        .table
        .get("pause_streams")
        .map_or(Some(false), |v| value::boolean("plan.pause_streams", v, d));
    let (plan, refs) = plan?;
    Some(CompiledPlan {
        plan,
        refs,
        pause_streams: pause_streams?,
    })
}

/// Compiles `[plan]`'s `type` and the keys of that type.
fn compile_plan_type(
    section: &Section<'_>,
    d: &mut Diagnostics,
) -> Option<(Plan, Option<PlanRefs>)> {
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
            value::reject_unknown_keys(&section.table, "plan", &["type", "pause_streams"], d);
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
