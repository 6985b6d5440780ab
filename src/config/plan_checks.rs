//! Checks of a point plan's channel references once the instruments are compiled:
//! suspenders' `STREAM.CHANNEL`s, an adaptive scan's `target`, a `rel_scan`'s setpoint.

use super::error::Diagnostics;
use super::experiment::{InstrumentKind, InstrumentSpec};
use super::plan::PlanRefs;
use super::value::quoted_list;
use crate::plan::{PointKind, PointPlan};

/// The channels of instrument `name`'s stream, if it compiled.
fn stream_channels(instruments: &[InstrumentSpec], name: &str) -> Option<Vec<String>> {
    instruments
        .iter()
        .find(|i| i.name == name)
        .map(|i| match &i.kind {
            InstrumentKind::Sim(c) => c.channels.clone(),
            InstrumentKind::Scpi(c) => c.read.iter().map(|r| r.channel.clone()).collect(),
        })
}

/// Suspenders' channels, an adaptive scan's target, and a rel_scan's setpoint (which must be
/// a simulated instrument's, whose current value is known).
pub(super) fn check_channel_refs(
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
