//! Checks of a point plan's references once the instruments are compiled: its detectors and
//! setpoints (instruments that exist, parameters that are settable, values within limits),
//! suspenders' `STREAM.CHANNEL`s, an adaptive scan's `target`, a `rel_scan`'s setpoint.

use ensemble_actors::instruments::sim::SIM_SETTABLE;

use super::error::Diagnostics;
use super::experiment::{InstrumentKind, InstrumentSpec};
use super::plan::PlanRefs;
use super::value::quoted_list;
use crate::plan::{PointKind, PointPlan};

/// Checks the instruments and parameters a plan names against the compiled instruments.
pub(crate) fn check_refs(
    plan: &PointPlan,
    refs: &PlanRefs,
    instruments: &[InstrumentSpec],
    all_names: &[String],
    d: &mut Diagnostics,
) {
    let not_an_instrument = |name: &str| {
        format!(
            "`{name}` is not an instrument; instruments: {}",
            if all_names.is_empty() {
                "none".to_string()
            } else {
                quoted_list(all_names)
            }
        )
    };
    for (name, span) in &refs.detectors {
        if !all_names.contains(name) {
            d.at(span.clone(), "plan.detectors", not_an_instrument(name));
            continue;
        }
        if let Some(InstrumentSpec {
            kind: InstrumentKind::Scpi(cfg),
            ..
        }) = instruments.iter().find(|i| i.name == *name)
        {
            if cfg.read.is_empty() {
                d.at(
                    span.clone(),
                    "plan.detectors",
                    format!("`{name}` has no [[read]] channels, so there is nothing to read"),
                );
            }
        }
    }
    for (axis, (text, span)) in plan.axes.iter().zip(&refs.setpoints) {
        let name = &axis.instrument;
        if !all_names.contains(name) {
            d.at(span.clone(), "plan.setpoint", not_an_instrument(name));
            continue;
        }
        // An instrument that failed to compile was reported already.
        let Some(spec) = instruments.iter().find(|i| i.name == *name) else {
            continue;
        };
        let settable: Vec<String> = match &spec.kind {
            InstrumentKind::Sim(_) => SIM_SETTABLE.iter().map(|s| s.to_string()).collect(),
            InstrumentKind::Scpi(cfg) => cfg.set.keys().cloned().collect(),
        };
        if !settable.contains(&axis.param) {
            let known = if settable.is_empty() {
                "it has no [set.NAME] tables".to_string()
            } else {
                format!(
                    "settable parameters of `{name}`: {}",
                    quoted_list(&settable)
                )
            };
            d.at(
                span.clone(),
                "plan.setpoint",
                format!("`{text}`: `{}` is not settable; {known}", axis.param),
            );
            continue;
        }
        if let InstrumentKind::Scpi(cfg) = &spec.kind {
            if let Some(set) = cfg.set.get(&axis.param) {
                for v in &axis.points {
                    let low = set.min.filter(|m| v < m).map(|m| ("below the min", m));
                    let high = set.max.filter(|m| v > m).map(|m| ("above the max", m));
                    if let Some((what, limit)) = low.or(high) {
                        d.at(
                            span.clone(),
                            "plan.setpoint",
                            format!("`{text}` would be set to {v}, {what} {limit}"),
                        );
                        break;
                    }
                }
            }
        }
    }
    check_channel_refs(plan, refs, instruments, all_names, d);
}

/// The channels of instrument `name`'s stream, if it compiled.
fn stream_channels(instruments: &[InstrumentSpec], name: &str) -> Option<Vec<String>> {
    instruments
        .iter()
        .find(|i| i.name == name)
        .map(|i| i.kind.channels().into_iter().map(|c| c.name).collect())
}

/// Suspenders' channels, an adaptive scan's target, and a rel_scan's setpoint (which must be
/// a simulated instrument's, whose current value is known).
fn check_channel_refs(
    plan: &PointPlan,
    refs: &PlanRefs,
    instruments: &[InstrumentSpec],
    all_names: &[String],
    d: &mut Diagnostics,
) {
    for (channel, span, path) in &refs.suspend.channels {
        if !all_names.contains(&channel.stream) {
            d.at(
                span.clone(),
                path,
                format!(
                    "`{channel}`: `{}` is not an instrument; instruments: {}",
                    channel.stream,
                    quoted_list(all_names)
                ),
            );
            continue;
        }
        if let Some(channels) = stream_channels(instruments, &channel.stream) {
            if !channels.contains(&channel.channel) {
                d.at(
                    span.clone(),
                    path,
                    format!(
                        "`{channel}`: `{}` has no channel `{}`; its channels: {}",
                        channel.stream,
                        channel.channel,
                        quoted_list(&channels)
                    ),
                );
            }
        }
    }
    if let Some((target, span)) = &refs.target {
        let known: Vec<String> = plan
            .detectors
            .iter()
            .flat_map(|det| {
                stream_channels(instruments, det)
                    .unwrap_or_default()
                    .into_iter()
                    .map(move |c| format!("{det}.{c}"))
            })
            .collect();
        if !known.contains(target) {
            d.at(
                span.clone(),
                "plan.target",
                format!(
                    "`{target}` is not a channel of the detectors; detector channels: {}",
                    quoted_list(&known)
                ),
            );
        }
    }
    if plan.kind == PointKind::RelScan {
        for (axis, (text, span)) in plan.axes.iter().zip(&refs.setpoints) {
            let scpi = instruments
                .iter()
                .any(|i| i.name == axis.instrument && matches!(i.kind, InstrumentKind::Scpi(_)));
            if scpi {
                d.at(
                    span.clone(),
                    "plan.setpoint",
                    format!(
                        "`{text}`: a rel_scan needs the setpoint's current value, which only a \
                         simulated instrument reports so far; use a scan with absolute values"
                    ),
                );
            }
        }
    }
}
