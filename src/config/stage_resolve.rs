//! Resolving stages against the streams they read: each stage compiled on its own (a
//! [`PendingStage`]) is built against its upstream stream's schema, instruments' streams first,
//! then stages in topological order, and becomes a [`StageSpec`] carrying its input and output
//! schema. What does not fit is reported at the key or input it is about.

use std::collections::HashMap;

use arrow_schema::SchemaRef;
use ensemble_actors::stages::StageError;

use super::error::Diagnostics;
use super::experiment::{InstrumentSpec, Plan};
use super::raw::Section;
use super::stages::{PendingStage, StageSpec};
use super::value::{self, join};
use crate::plan::{PRIMARY_STREAM, PrimaryLayout};

/// The schema of each instrument's stream (and of the `primary` stream of a point plan), as
/// the coordinator will plan them.
pub(super) fn source_schemas(
    instruments: &[InstrumentSpec],
    plan: Option<&Plan>,
) -> HashMap<String, SchemaRef> {
    let mut schemas: HashMap<String, SchemaRef> = instruments
        .iter()
        .map(|i| (i.name.clone(), i.kind.schema()))
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
            match p.spec.build(upstream) {
                Ok((input, schema)) => {
                    schemas.insert(p.spec.name.clone(), schema.clone());
                    ordered.push(p.spec.into_spec(input, schema));
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
