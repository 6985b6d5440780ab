//! Reading spanned TOML values: typed getters that report problems where they are, key paths,
//! and the conversion of free-form metadata to JSON.

use std::ops::Range;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::Diagnostics;

/// A byte range in the experiment file.
pub(crate) type Span = Range<usize>;

/// A value as it appears in a table of the parsed document.
pub(crate) type Value<'i> = Spanned<DeValue<'i>>;

/// Joins a key path, quoting keys that are not bare TOML keys: `instruments."my scope".unit`.
pub(crate) fn join(path: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

/// Describes a value for a message: strings quoted, numbers as written, containers by kind.
pub(crate) fn describe(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(s) => format!("{s:?}"),
        DeValue::Integer(i) => i.to_string(),
        DeValue::Float(f) => f.to_string(),
        DeValue::Boolean(b) => b.to_string(),
        DeValue::Datetime(d) => d.to_string(),
        DeValue::Array(_) => "an array".to_string(),
        DeValue::Table(_) => "a table".to_string(),
    }
}

/// The entries of a table in file order (the parsed map itself is sorted by key).
pub(crate) fn in_file_order<'t, 'i>(
    table: &'t DeTable<'i>,
) -> Vec<(&'t Spanned<std::borrow::Cow<'i, str>>, &'t Value<'i>)> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    entries
}

/// The value of an integer, whatever its radix, or `None` if it does not fit an `i128`.
pub(crate) fn integer_value(value: &DeValue<'_>) -> Option<i128> {
    match value {
        DeValue::Integer(i) => i128::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok(),
        _ => None,
    }
}

/// The value of a float or an integer as `f64`.
pub(crate) fn number_value(value: &DeValue<'_>) -> Option<f64> {
    match value {
        DeValue::Float(f) => f.as_str().replace('_', "").parse().ok(),
        DeValue::Integer(_) => integer_value(value).map(|i| i as f64),
        _ => None,
    }
}

/// Reads a string; reports a type error and returns `None` otherwise.
pub(crate) fn string(path: &str, value: &Value<'_>, d: &mut Diagnostics) -> Option<String> {
    match value.get_ref() {
        DeValue::String(s) => Some(s.to_string()),
        other => {
            d.at(
                value.span(),
                path,
                format!("must be a string, got {}", describe(other)),
            );
            None
        }
    }
}

/// A boolean, or an error naming what was given.
pub(crate) fn boolean(path: &str, value: &Value<'_>, d: &mut Diagnostics) -> Option<bool> {
    match value.get_ref() {
        DeValue::Boolean(b) => Some(*b),
        other => {
            d.at(
                value.span(),
                path,
                format!("must be true or false, got {}", describe(other)),
            );
            None
        }
    }
}

/// Reads a non-empty string.
pub(crate) fn non_empty_string(
    path: &str,
    value: &Value<'_>,
    d: &mut Diagnostics,
) -> Option<String> {
    let s = string(path, value, d)?;
    if s.trim().is_empty() {
        d.at(value.span(), path, "must not be empty");
        return None;
    }
    Some(s)
}

/// Reads a whole number in `min..=max`.
pub(crate) fn integer(
    path: &str,
    value: &Value<'_>,
    min: i128,
    max: i128,
    d: &mut Diagnostics,
) -> Option<i128> {
    let v = value.get_ref();
    let Some(n) = integer_value(v) else {
        let got = describe(v);
        let hint = if matches!(v, DeValue::Float(_)) {
            " (write it without a decimal point)"
        } else {
            ""
        };
        d.at(
            value.span(),
            path,
            format!("must be a whole number, got {got}{hint}"),
        );
        return None;
    };
    if n < min {
        d.at(
            value.span(),
            path,
            format!("must be at least {min}, got {n}"),
        );
        return None;
    }
    if n > max {
        d.at(
            value.span(),
            path,
            format!("must be at most {max}, got {n}"),
        );
        return None;
    }
    Some(n)
}

/// Reads a duration written as a humantime string (`"10s"`, `"250ms"`, `"2m"`).
///
/// With `allow_zero` false the duration must be longer than zero.
pub(crate) fn duration(
    path: &str,
    value: &Value<'_>,
    allow_zero: bool,
    d: &mut Diagnostics,
) -> Option<Duration> {
    let text = match value.get_ref() {
        DeValue::String(s) => s.trim().to_string(),
        other @ (DeValue::Integer(_) | DeValue::Float(_)) => {
            let n = describe(other);
            d.at(
                value.span(),
                path,
                format!(
                    "must be a duration string with a unit, like \"{n}s\" or \"{n}ms\", got {n}"
                ),
            );
            return None;
        }
        other => {
            d.at(
                value.span(),
                path,
                format!(
                    "must be a duration string like \"10s\" or \"250ms\", got {}",
                    describe(other)
                ),
            );
            return None;
        }
    };
    if text.starts_with('-') {
        let what = if allow_zero {
            "must not be negative"
        } else {
            "must be a positive duration"
        };
        d.at(value.span(), path, format!("{what}, got \"{text}\""));
        return None;
    }
    match humantime::parse_duration(&text) {
        Ok(dur) if dur.is_zero() && !allow_zero => {
            d.at(
                value.span(),
                path,
                format!("must be longer than zero, got \"{text}\""),
            );
            None
        }
        Ok(dur) => Some(dur),
        Err(e) => {
            d.at(
                value.span(),
                path,
                format!("is not a duration like \"10s\", \"250ms\" or \"2m\": \"{text}\" ({e})"),
            );
            None
        }
    }
}

/// Reads an array of strings, keeping each element's span.
pub(crate) fn string_list(
    path: &str,
    value: &Value<'_>,
    d: &mut Diagnostics,
) -> Option<Vec<Spanned<String>>> {
    let DeValue::Array(items) = value.get_ref() else {
        d.at(
            value.span(),
            path,
            format!(
                "must be an array of names like [\"scope\"], got {}",
                describe(value.get_ref())
            ),
        );
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    for item in items {
        match item.get_ref() {
            DeValue::String(s) => out.push(Spanned::new(item.span(), s.to_string())),
            other => {
                d.at(
                    item.span(),
                    path,
                    format!("must contain only names (strings), got {}", describe(other)),
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// Reports every key of `table` not in `known`, at the key.
pub(crate) fn reject_unknown_keys(
    table: &DeTable<'_>,
    path: &str,
    known: &[&str],
    d: &mut Diagnostics,
) {
    for (key, _) in in_file_order(table) {
        if !known.contains(&key.get_ref().as_ref()) {
            d.at(
                key.span(),
                &join(path, key.get_ref()),
                format!("unknown key; expected one of {}", quoted_list(known)),
            );
        }
    }
}

/// `a`, `b`, `c`.
pub(crate) fn quoted_list<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|s| format!("`{}`", s.as_ref()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The span of the value at a dotted key (`signal.noise`), following nested tables; when only
/// part of the path exists, the span of the deepest part that does.
pub(crate) fn span_of(table: &DeTable<'_>, dotted: &str) -> Option<Span> {
    let mut parts = dotted.split('.');
    let mut current = table.get(parts.next()?)?;
    for part in parts {
        match current.get_ref().as_table().and_then(|t| t.get(part)) {
            Some(next) => current = next,
            None => break,
        }
    }
    Some(current.span())
}

/// The key path (relative to `table`) of the key or value that `span` points into, deepest first.
///
/// Used to name the key a serde error is about: the error carries only a span.
pub(crate) fn locate(table: &DeTable<'_>, span: &Span) -> Option<Vec<String>> {
    let inside = |outer: Span| outer.start <= span.start && span.end <= outer.end;
    for (key, value) in table {
        if let DeValue::Table(inner) = value.get_ref() {
            if let Some(mut path) = locate(inner, span) {
                path.insert(0, key.get_ref().to_string());
                return Some(path);
            }
        }
        // Arrays of tables (`[[read]]`): the element's index as its own `[i]` part.
        if let DeValue::Array(items) = value.get_ref() {
            for (i, item) in items.iter().enumerate() {
                if let DeValue::Table(inner) = item.get_ref() {
                    if let Some(mut path) = locate(inner, span) {
                        path.insert(0, format!("[{i}]"));
                        path.insert(0, key.get_ref().to_string());
                        return Some(path);
                    }
                }
            }
        }
    }
    for (key, value) in table {
        if inside(key.span()) || inside(value.span()) {
            return Some(vec![key.get_ref().to_string()]);
        }
    }
    None
}

/// Converts free-form metadata to JSON for the run manifest.
///
/// Datetimes become their TOML text (RFC 3339). Floats that JSON cannot hold (`nan`, `inf`)
/// become strings as written. Integers beyond 64 bits are reported as errors.
pub(crate) fn to_json(path: &str, value: &Value<'_>, d: &mut Diagnostics) -> serde_json::Value {
    use serde_json::Value as J;
    match value.get_ref() {
        DeValue::String(s) => J::String(s.to_string()),
        DeValue::Integer(_) => match integer_value(value.get_ref()) {
            Some(i) if i64::try_from(i).is_ok() => J::from(i as i64),
            Some(i) if u64::try_from(i).is_ok() => J::from(i as u64),
            _ => {
                d.at(value.span(), path, "integer does not fit in 64 bits");
                J::Null
            }
        },
        DeValue::Float(f) => number_value(value.get_ref())
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| J::String(f.to_string()), J::Number),
        DeValue::Boolean(b) => J::Bool(*b),
        DeValue::Datetime(dt) => J::String(dt.to_string()),
        DeValue::Array(items) => J::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| to_json(&format!("{path}[{i}]"), item, d))
                .collect(),
        ),
        DeValue::Table(table) => J::Object(
            in_file_order(table)
                .into_iter()
                .map(|(k, v)| {
                    (
                        k.get_ref().to_string(),
                        to_json(&join(path, k.get_ref()), v, d),
                    )
                })
                .collect(),
        ),
    }
}
