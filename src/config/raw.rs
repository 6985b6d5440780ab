//! The experiment as written: the parsed document split into its sections, with spans.
//!
//! This is the first of the three stages (`RawExperiment` → [`Experiment`](super::Experiment) →
//! running topology). It only checks the shape of the document: valid TOML, known top-level
//! tables, and a table for each component. Everything inside a section is left to the compiler.

use toml::de::{DeTable, DeValue};

use super::error::Diagnostics;
use super::value::{Span, Value, describe, join, quoted_list};

/// The top-level tables an experiment file may have.
pub(crate) const TOP_LEVEL: &[&str] = &["experiment", "plan", "instruments", "stages", "sinks"];

/// One table of the document: `[experiment]`, `[plan]`, or a named component.
#[derive(Debug, Clone)]
pub(crate) struct Section<'i> {
    /// The table's name: `experiment`, `plan`, or the component's name.
    pub(crate) name: String,
    /// Where the name is written (in the table header, or before the `=`).
    pub(crate) key: Span,
    /// Where the table is written: its header (`[instruments.scope]`) or the inline table.
    pub(crate) span: Span,
    /// The table's contents.
    pub(crate) table: DeTable<'i>,
}

impl<'i> Section<'i> {
    /// Makes a section from a value, or gives the value back if it is not a table.
    fn new(name: String, key: Span, value: Value<'i>) -> Result<Self, Value<'i>> {
        let span = value.span();
        // Implicit tables (`[a.b]` without `[a]`) have no text of their own: point at the name.
        let span = if span.is_empty() { key.clone() } else { span };
        match value.into_inner() {
            DeValue::Table(table) => Ok(Self {
                name,
                key,
                span,
                table,
            }),
            other => Err(Value::new(span, other)),
        }
    }
}

/// An experiment file as written, split into sections in file order.
#[derive(Debug, Default)]
pub(crate) struct RawExperiment<'i> {
    /// `[experiment]`, if present.
    pub(crate) experiment: Option<Section<'i>>,
    /// Whether the file has an `experiment` key at all (even one that is not a table, which is
    /// reported here, so the compiler does not also call it missing).
    pub(crate) experiment_given: bool,
    /// `[plan]`, if present.
    pub(crate) plan: Option<Section<'i>>,
    /// `[instruments.NAME]` tables.
    pub(crate) instruments: Vec<Section<'i>>,
    /// `[stages.NAME]` tables.
    pub(crate) stages: Vec<Section<'i>>,
    /// `[sinks.NAME]` tables.
    pub(crate) sinks: Vec<Section<'i>>,
}

impl<'i> RawExperiment<'i> {
    /// Parses the document and splits it into sections.
    ///
    /// Returns `None` when the text is not valid TOML (the syntax errors are reported); shape
    /// problems are reported and the offending tables left out.
    pub(crate) fn parse(text: &'i str, d: &mut Diagnostics) -> Option<Self> {
        let (doc, errors) = DeTable::parse_recoverable(text);
        if !errors.is_empty() {
            for e in errors {
                d.error(
                    e.span().unwrap_or(0..0),
                    format!("invalid TOML: {}", e.message()),
                );
            }
            return None;
        }
        let mut entries: Vec<_> = doc.into_inner().into_iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);

        let mut raw = RawExperiment::default();
        for (key, value) in entries {
            let name = key.get_ref().to_string();
            let key = key.span();
            raw.experiment_given |= name == "experiment";
            match name.as_str() {
                "experiment" | "plan" => {
                    let section = match Section::new(name.clone(), key, value) {
                        Ok(section) => Some(section),
                        Err(value) => {
                            d.at(
                                value.span(),
                                &name,
                                format!(
                                    "must be a table ([{name}]), got {}",
                                    describe(value.get_ref())
                                ),
                            );
                            continue;
                        }
                    };
                    if name == "experiment" {
                        raw.experiment = section;
                    } else {
                        raw.plan = section;
                    }
                }
                "instruments" | "stages" | "sinks" => {
                    let DeValue::Table(components) = value.into_inner() else {
                        d.at(
                            key,
                            &name,
                            format!("must be a table of named components like [{name}.example]"),
                        );
                        continue;
                    };
                    let mut components: Vec<_> = components.into_iter().collect();
                    components.sort_by_key(|(k, _)| k.span().start);
                    let list = match name.as_str() {
                        "instruments" => &mut raw.instruments,
                        "stages" => &mut raw.stages,
                        _ => &mut raw.sinks,
                    };
                    for (ckey, cvalue) in components {
                        let cname = ckey.get_ref().to_string();
                        let path = join(&name, &cname);
                        match Section::new(cname, ckey.span(), cvalue) {
                            Ok(section) => list.push(section),
                            Err(value) => d.at(
                                value.span(),
                                &path,
                                format!(
                                    "must be a table ([{path}]), got {}",
                                    describe(value.get_ref())
                                ),
                            ),
                        }
                    }
                }
                _ => d.at(
                    key,
                    &join("", &name),
                    format!(
                        "unknown top-level table; expected one of {}",
                        quoted_list(TOP_LEVEL)
                    ),
                ),
            }
        }
        Some(raw)
    }
}
