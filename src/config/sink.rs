//! Compiling `[sinks.NAME]` tables: type, inputs, delivery, queue size and the sink's own config.

use ensemble_actors::link::Delivery;
use ensemble_actors::sinks::nats::NatsSinkConfig;
use ensemble_actors::sinks::null::NullSinkConfig;
use ensemble_actors::sinks::parquet::ParquetSinkConfig;

use super::component::{
    DEFAULT_QUEUE_BATCHES, SUPERVISION_KEYS, component_config, take_supervision, take_type,
};
use super::error::Diagnostics;
use super::experiment::{SinkKind, SinkSpec};
use super::raw::Section;
use super::value::{self, Span, join, quoted_list};

/// Known sink `type`s.
pub(crate) const SINK_TYPES: &[&str] = &["parquet", "null", "nats"];
/// Keys every sink takes besides its own and the supervision keys.
pub(crate) const SINK_LINK_KEYS: &[&str] = &["inputs", "delivery", "queue_batches"];

/// Compiles a sink; also returns its inputs (as written) for the graph check, even when the sink
/// itself has errors.
pub(super) fn compile_sink(
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
