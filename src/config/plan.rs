//! `[plan]` tables of type `count`, `scan`, `grid`, `list_scan`, `rel_scan` and
//! `adaptive_scan`: their keys, and where each name they give is written ([`PlanRefs`]), which
//! `plan_checks` checks once the instruments are compiled.

use std::time::Duration;

use toml::de::{DeTable, DeValue};

use super::error::Diagnostics;
use super::raw::Section;
use super::suspend::{SuspendRefs, compile_suspenders};
use super::value::{self, Span, Value, describe, quoted_list};
use crate::plan::{Adaptive, Axis, PointKind, PointPlan, Repeat, linspace};

/// Keys every point plan type has.
const COMMON_KEYS: &[&str] = &[
    "type",
    "detectors",
    "readings_per_point",
    "delay",
    "repeat",
    "suspend",
    "pause_streams",
];
/// Keys of each point plan type, besides [`COMMON_KEYS`].
const COUNT_KEYS: &[&str] = &["num"];
const SCAN_KEYS: &[&str] = &["setpoint", "start", "stop", "steps", "points", "settle"];
const GRID_KEYS: &[&str] = &["axes", "snake", "settle"];
const LIST_KEYS: &[&str] = &["axes", "settle"];
const ADAPTIVE_KEYS: &[&str] = &[
    "setpoint",
    "start",
    "stop",
    "settle",
    "target",
    "min_step",
    "max_step",
    "target_delta",
    "backstep",
    "threshold",
];
const AXIS_KEYS: &[&str] = &["setpoint", "start", "stop", "steps", "points"];
/// Most points a plan may have (its rows must be countable up front).
const MAX_POINTS: u64 = 100_000_000;

/// Where a plan's names are written, to check them against the instruments later.
#[derive(Debug, Default)]
pub(crate) struct PlanRefs {
    /// Each detector name and where it is written.
    pub(super) detectors: Vec<(String, Span)>,
    /// Per axis: the key path of its `setpoint` and where it is written.
    pub(super) setpoints: Vec<(String, Span)>,
    /// The channels suspenders read.
    pub(super) suspend: SuspendRefs,
    /// An adaptive scan's `target` and where it is written.
    pub(super) target: Option<(String, Span)>,
}

/// Compiles a `count`, `scan` or `grid` plan table; `None` after reporting its problems.
pub(crate) fn compile_points(
    section: &Section<'_>,
    kind: PointKind,
    d: &mut Diagnostics,
) -> Option<(PointPlan, PlanRefs)> {
    let before = d.len();
    let t = &section.table;
    let own = match kind {
        PointKind::Count => COUNT_KEYS,
        PointKind::Scan | PointKind::RelScan => SCAN_KEYS,
        PointKind::Grid => GRID_KEYS,
        PointKind::ListScan => LIST_KEYS,
        PointKind::AdaptiveScan => ADAPTIVE_KEYS,
    };
    let keys: Vec<&str> = COMMON_KEYS.iter().chain(own).copied().collect();
    value::reject_unknown_keys(t, "plan", &keys, d);
    let mut refs = PlanRefs::default();

    let detectors = match t.get("detectors") {
        None => {
            d.at(
                section.span.clone(),
                "plan.detectors",
                "missing; name the instruments to read at each point, e.g. detectors = [\"dmm\"]",
            );
            Vec::new()
        }
        Some(v) => {
            let list = value::string_list("plan.detectors", v, d).unwrap_or_default();
            if v.get_ref().as_array().is_some_and(|a| a.is_empty()) {
                d.at(
                    v.span(),
                    "plan.detectors",
                    "must name at least one instrument",
                );
            }
            list
        }
    };
    for det in detectors {
        let span = det.span();
        let name = det.into_inner();
        if let Some((_, first)) = refs.detectors.iter().find(|(n, _)| *n == name) {
            let _ = first;
            d.at(span, "plan.detectors", format!("`{name}` is listed twice"));
            continue;
        }
        refs.detectors.push((name, span));
    }

    let readings_per_point = t.get("readings_per_point").map_or(Some(1), |v| {
        value::integer("plan.readings_per_point", v, 1, 1_000_000, d).map(|n| n as u32)
    });
    let settle = duration_or_zero(t, "settle", d);
    let delay = duration_or_zero(t, "delay", d);
    let repeat = compile_repeat(t.get("repeat"), d);
    let suspenders = compile_suspenders(t.get("suspend"), &mut refs.suspend, d);

    let mut axes = Vec::new();
    let mut num = 1;
    let mut snake = false;
    let mut adaptive = None;
    match kind {
        PointKind::Count => match t.get("num") {
            None => d.at(
                section.span.clone(),
                "plan.num",
                "missing; the count plan needs the number of readings, e.g. num = 10",
            ),
            Some(v) => {
                if let Some(n) = value::integer("plan.num", v, 1, i128::from(MAX_POINTS), d) {
                    num = n as u64;
                }
            }
        },
        PointKind::Scan | PointKind::RelScan => {
            if let Some(axis) = compile_axis(t, section.span.clone(), "plan", &mut refs, d) {
                axes.push(axis);
            }
        }
        PointKind::AdaptiveScan => {
            if let Some((axis, rule)) = compile_adaptive(section, &mut refs, d) {
                axes.push(axis);
                adaptive = Some(rule);
            }
        }
        PointKind::Grid | PointKind::ListScan => {
            if let Some(v) = t.get("snake") {
                match v.get_ref() {
                    DeValue::Boolean(b) => snake = *b,
                    other => d.at(
                        v.span(),
                        "plan.snake",
                        format!("must be true or false, got {}", describe(other)),
                    ),
                }
            }
            match t.get("axes") {
                None => d.at(
                    section.span.clone(),
                    "plan.axes",
                    "missing; a grid needs at least one [[plan.axes]] table with `setpoint` and \
                     `start`/`stop`/`steps` or `points`",
                ),
                Some(v) => match v.get_ref() {
                    DeValue::Array(items) if items.is_empty() => d.at(
                        v.span(),
                        "plan.axes",
                        "must have at least one axis ([[plan.axes]] tables)",
                    ),
                    DeValue::Array(items) => {
                        for (i, item) in items.iter().enumerate() {
                            let path = format!("plan.axes[{i}]");
                            match item.get_ref() {
                                DeValue::Table(axis) => {
                                    value::reject_unknown_keys(axis, &path, AXIS_KEYS, d);
                                    if let Some(a) =
                                        compile_axis(axis, item.span(), &path, &mut refs, d)
                                    {
                                        axes.push(a);
                                    }
                                }
                                other => d.at(
                                    item.span(),
                                    &path,
                                    format!("must be a table, got {}", describe(other)),
                                ),
                            }
                        }
                    }
                    other => d.at(
                        v.span(),
                        "plan.axes",
                        format!(
                            "must be an array of tables ([[plan.axes]]), got {}",
                            describe(other)
                        ),
                    ),
                },
            }
        }
    }
    if kind == PointKind::ListScan {
        let lengths: Vec<usize> = axes.iter().map(|a| a.points.len()).collect();
        if lengths.windows(2).any(|w| w[0] != w[1]) {
            d.at(
                section.span.clone(),
                "plan.axes",
                format!(
                    "a list_scan moves its axes together, so every axis needs as many points; \
                     they have {lengths:?}"
                ),
            );
        }
    }
    if d.len() != before {
        return None;
    }
    let plan = PointPlan {
        kind,
        axes,
        snake,
        num,
        detectors: refs.detectors.iter().map(|(n, _)| n.clone()).collect(),
        readings_per_point: readings_per_point?,
        settle: settle?,
        delay: delay?,
        adaptive,
        repeat: repeat?,
        suspenders: suspenders?,
    };
    let total = if kind == PointKind::ListScan {
        plan.points_per_pass()
    } else {
        plan.axes
            .iter()
            .try_fold(plan.num, |acc, a| acc.checked_mul(a.points.len() as u64))
    };
    let total = match plan.repeat {
        Some(Repeat::Times(n)) => total.and_then(|t| t.checked_mul(n)),
        _ => total,
    };
    if total.is_none_or(|n| n > MAX_POINTS) {
        d.at(
            section.span.clone(),
            "plan",
            format!("has more than {MAX_POINTS} points"),
        );
        return None;
    }
    Some((plan, refs))
}

/// `repeat = N` (N ≥ 1) or `repeat = "forever"`; absent: once.
fn compile_repeat(v: Option<&Value<'_>>, d: &mut Diagnostics) -> Option<Option<Repeat>> {
    let Some(v) = v else {
        return Some(None);
    };
    match v.get_ref() {
        DeValue::String(s) if s.trim() == "forever" => Some(Some(Repeat::UntilStopped)),
        DeValue::Integer(_) => value::integer("plan.repeat", v, 1, i128::from(MAX_POINTS), d)
            .map(|n| Some(Repeat::Times(n as u64))),
        other => {
            d.at(
                v.span(),
                "plan.repeat",
                format!(
                    "must be a number of repetitions (1 or more) or \"forever\", got {}",
                    describe(other)
                ),
            );
            None
        }
    }
}

/// An adaptive scan's axis (`setpoint`, `start`, `stop`) and step rule.
fn compile_adaptive(
    section: &Section<'_>,
    refs: &mut PlanRefs,
    d: &mut Diagnostics,
) -> Option<(Axis, Adaptive)> {
    let t = &section.table;
    let before = d.len();
    let required = |key: &str, d: &mut Diagnostics| match t.get(key) {
        Some(v) => number(&format!("plan.{key}"), v, d),
        None => {
            d.at(
                section.span.clone(),
                &format!("plan.{key}"),
                "missing; an adaptive_scan needs `setpoint`, `start`, `stop`, `target`, \
                 `min_step`, `max_step` and `target_delta`",
            );
            None
        }
    };
    let start = required("start", d);
    let stop = required("stop", d);
    let min_step = required("min_step", d);
    let max_step = required("max_step", d);
    let target_delta = required("target_delta", d);
    let threshold = t
        .get("threshold")
        .map_or(Some(0.8), |v| number("plan.threshold", v, d));
    let backstep = match t.get("backstep").map(|v| (v, v.get_ref())) {
        None => Some(true),
        Some((_, DeValue::Boolean(b))) => Some(*b),
        Some((v, other)) => {
            d.at(
                v.span(),
                "plan.backstep",
                format!("must be true or false, got {}", describe(other)),
            );
            None
        }
    };
    let target = match t.get("target") {
        Some(v) => value::string("plan.target", v, d).inspect(|name| {
            refs.target = Some((name.clone(), v.span()));
        }),
        None => {
            d.at(
                section.span.clone(),
                "plan.target",
                "missing; name the detector column that steers the step, e.g. \"dmm.voltage\"",
            );
            None
        }
    };
    let (Some(min), Some(max)) = (min_step, max_step) else {
        return None;
    };
    if !(min > 0.0 && max >= min) {
        d.at(
            section.span.clone(),
            "plan.min_step",
            format!("need 0 < min_step <= max_step, got min_step = {min}, max_step = {max}"),
        );
    }
    if target_delta.is_some_and(|x| x <= 0.0) {
        d.at(
            section.span.clone(),
            "plan.target_delta",
            "must be positive",
        );
    }
    let setpoint = compile_setpoint(t, section.span.clone(), "plan", refs, d);
    if d.len() != before {
        return None;
    }
    let (instrument, param) = setpoint?;
    let axis = Axis::new(&instrument, &param, vec![start?, stop?]);
    let rule = Adaptive {
        target: target?,
        min_step: min,
        max_step: max,
        target_delta: target_delta?,
        backstep: backstep?,
        threshold: threshold?,
    };
    Some((axis, rule))
}

fn duration_or_zero(t: &DeTable<'_>, key: &str, d: &mut Diagnostics) -> Option<Duration> {
    t.get(key).map_or(Some(Duration::ZERO), |v| {
        value::duration(&format!("plan.{key}"), v, true, d)
    })
}

fn number(path: &str, v: &Value<'_>, d: &mut Diagnostics) -> Option<f64> {
    match value::number_value(v.get_ref()) {
        Some(x) if x.is_finite() => Some(x),
        _ => {
            d.at(
                v.span(),
                path,
                format!("must be a finite number, got {}", describe(v.get_ref())),
            );
            None
        }
    }
}

/// One axis: `setpoint` plus `start`/`stop`/`steps` or `points`, from `t` (the plan table for
/// a scan, an `[[plan.axes]]` table for a grid).
fn compile_axis(
    t: &DeTable<'_>,
    span: Span,
    path: &str,
    refs: &mut PlanRefs,
    d: &mut Diagnostics,
) -> Option<Axis> {
    let (instrument, param) = compile_setpoint(t, span.clone(), path, refs, d)?;
    let points = compile_points_of(t, span, path, d)?;
    Some(Axis::new(&instrument, &param, points))
}

/// `setpoint = "INSTRUMENT.PARAMETER"` of an axis, recorded in `refs`.
fn compile_setpoint(
    t: &DeTable<'_>,
    span: Span,
    path: &str,
    refs: &mut PlanRefs,
    d: &mut Diagnostics,
) -> Option<(String, String)> {
    let setpoint_path = format!("{path}.setpoint");
    let Some(sp) = t.get("setpoint") else {
        d.at(
            span,
            &setpoint_path,
            "missing; name the parameter to scan as \"INSTRUMENT.PARAMETER\", e.g. \"psu.voltage\"",
        );
        return None;
    };
    let text = value::string(&setpoint_path, sp, d)?;
    let Some((instrument, param)) = text
        .split_once('.')
        .filter(|(i, p)| !i.is_empty() && !p.is_empty())
    else {
        d.at(
            sp.span(),
            &setpoint_path,
            format!("`{text}` must be written \"INSTRUMENT.PARAMETER\", e.g. \"psu.voltage\""),
        );
        return None;
    };
    if let Some((_, _)) = refs.setpoints.iter().find(|(s, _)| *s == text) {
        d.at(
            sp.span(),
            &setpoint_path,
            format!("`{text}` is scanned by two axes"),
        );
        return None;
    }
    refs.setpoints.push((text.clone(), sp.span()));
    Some((instrument.to_string(), param.to_string()))
}

/// An axis's values: `points`, or `start`, `stop` and `steps`.
fn compile_points_of(
    t: &DeTable<'_>,
    span: Span,
    path: &str,
    d: &mut Diagnostics,
) -> Option<Vec<f64>> {
    let points = match (
        t.get("points"),
        t.get("start"),
        t.get("stop"),
        t.get("steps"),
    ) {
        (Some(p), None, None, None) => {
            let ppath = format!("{path}.points");
            let DeValue::Array(items) = p.get_ref() else {
                d.at(
                    p.span(),
                    &ppath,
                    format!("must be an array of numbers, got {}", describe(p.get_ref())),
                );
                return None;
            };
            if items.is_empty() {
                d.at(p.span(), &ppath, "must have at least one value");
                return None;
            }
            let values: Vec<Option<f64>> = items.iter().map(|v| number(&ppath, v, d)).collect();
            values.into_iter().collect::<Option<Vec<f64>>>()?
        }
        (Some(p), _, _, _) => {
            d.at(
                p.span(),
                &format!("{path}.points"),
                "give either `points` or `start`, `stop` and `steps`, not both",
            );
            return None;
        }
        (None, start, stop, steps) => {
            let mut missing = Vec::new();
            for (key, v) in [("start", start), ("stop", stop), ("steps", steps)] {
                if v.is_none() {
                    missing.push(key);
                }
            }
            if !missing.is_empty() {
                d.at(
                    span,
                    path,
                    format!(
                        "missing {}; an axis needs `start`, `stop` and `steps`, or `points`",
                        quoted_list(&missing)
                    ),
                );
                return None;
            }
            let (start, stop, steps) = (start?, stop?, steps?);
            let start = number(&format!("{path}.start"), start, d);
            let stop = number(&format!("{path}.stop"), stop, d);
            let steps = value::integer(
                &format!("{path}.steps"),
                steps,
                1,
                i128::from(MAX_POINTS),
                d,
            );
            linspace(start?, stop?, steps? as u64)
        }
    };
    Some(points)
}
