//! What every component table has, and how its own keys are read: the name check, `type`, the
//! supervision keys, and deserializing the rest into the component's config with every problem
//! reported at its key. The per-kind compilers (`instrument`, `stage`, `sink`) build on these.

use ensemble_actors::instruments::scpi::ScpiInstrumentConfig;
use ensemble_actors::instruments::sim::SimInstrumentConfig;
use ensemble_actors::sinks::nats::NatsSinkConfig;
use ensemble_actors::sinks::null::NullSinkConfig;
use ensemble_actors::sinks::parquet::ParquetSinkConfig;
use serde::Deserialize;
use serde::de::IntoDeserializer;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::Diagnostics;
use super::experiment::{OnFailure, Supervision};
use super::raw::Section;
use super::value::{self, join, quoted_list};
use crate::plan::PRIMARY_STREAM;

/// Supervision keys every component takes.
pub(crate) const SUPERVISION_KEYS: &[&str] = &[
    "on_failure",
    "max_restarts",
    "restart_window",
    "restart_backoff",
];

/// Default `queue_batches` of a sink's input links; also the capacity of every stage's input
/// link.
pub const DEFAULT_QUEUE_BATCHES: usize = 16;

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
