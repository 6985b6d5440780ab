//! `[[plan.suspend]]` tables: conditions that hold a point plan while they are true.
//!
//! ```toml
//! [[plan.suspend]]
//! when = "cryo.temp > 310"         # suspend when this holds...
//! for = "2s"                       # ...continuously this long (default 0)
//! resume_when = "cryo.temp < 305"  # resume when this holds (default: `when` no longer does)...
//! resume_after = "30s"             # ...for this long (default 0)
//! ```
//!
//! A bad expression is reported at its file position with a caret under the token.

use std::time::Duration;

use toml::de::DeValue;

use super::error::Diagnostics;
use super::expr;
use super::value::{self, Span, Value, describe};
use crate::plan::{ChannelRef, Condition, Suspender};

const SUSPEND_KEYS: &[&str] = &["when", "for", "resume_when", "resume_after"];

/// Where each channel a suspender names is written, to check it against the instruments.
#[derive(Debug, Default)]
pub(crate) struct SuspendRefs {
    /// Per channel mention: the channel, where it is written, and the key path.
    pub(crate) channels: Vec<(ChannelRef, Span, String)>,
}

/// Compiles the plan's `suspend` array (absent: none); `None` after reporting problems.
pub(crate) fn compile_suspenders(
    value: Option<&Value<'_>>,
    refs: &mut SuspendRefs,
    d: &mut Diagnostics,
) -> Option<Vec<Suspender>> {
    let Some(value) = value else {
        return Some(Vec::new());
    };
    let before = d.len();
    let DeValue::Array(items) = value.get_ref() else {
        d.at(
            value.span(),
            "plan.suspend",
            format!(
                "must be an array of tables ([[plan.suspend]]), got {}",
                describe(value.get_ref())
            ),
        );
        return None;
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("plan.suspend[{i}]");
        let DeValue::Table(t) = item.get_ref() else {
            d.at(
                item.span(),
                &path,
                format!("must be a table, got {}", describe(item.get_ref())),
            );
            continue;
        };
        value::reject_unknown_keys(t, &path, SUSPEND_KEYS, d);
        let when = match t.get("when") {
            Some(v) => condition(&format!("{path}.when"), v, refs, d),
            None => {
                d.at(
                    item.span(),
                    &format!("{path}.when"),
                    "missing; say when to suspend, e.g. when = \"cryo.temp > 310\"",
                );
                None
            }
        };
        let resume_when = match t.get("resume_when") {
            Some(v) => condition(&format!("{path}.resume_when"), v, refs, d).map(Some),
            None => Some(None),
        };
        let hold_for = duration(t.get("for"), &format!("{path}.for"), d);
        let resume_after = duration(t.get("resume_after"), &format!("{path}.resume_after"), d);
        if let (Some(when), Some(resume_when), Some(hold_for), Some(resume_after)) =
            (when, resume_when, hold_for, resume_after)
        {
            out.push(Suspender {
                when,
                hold_for,
                resume_when,
                resume_after,
            });
        }
    }
    (d.len() == before).then_some(out)
}

fn duration(value: Option<&Value<'_>>, path: &str, d: &mut Diagnostics) -> Option<Duration> {
    value.map_or(Some(Duration::ZERO), |v| value::duration(path, v, true, d))
}

/// Parses one condition string, reporting a bad one at its token with a caret.
fn condition(
    path: &str,
    v: &Value<'_>,
    refs: &mut SuspendRefs,
    d: &mut Diagnostics,
) -> Option<Condition> {
    let text = value::string(path, v, d)?;
    // The expression starts after the string's opening quote.
    let base = v.span().start + 1;
    match expr::parse(&text) {
        Ok(c) => {
            for (channel, (offset, len)) in c.channels.iter().zip(expr::channel_spans(&text)) {
                refs.channels.push((
                    channel.clone(),
                    base + offset..base + offset + len,
                    path.to_string(),
                ));
            }
            Some(c)
        }
        Err(e) => {
            d.at(
                base + e.offset..base + e.offset + e.len,
                path,
                e.with_caret(&text),
            );
            None
        }
    }
}
