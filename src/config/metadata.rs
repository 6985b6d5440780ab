//! Run metadata (`[experiment.metadata]` and `ensemble run --meta KEY=VALUE`): what a key and
//! a value may be.
//!
//! Metadata is copied into `run.json` and into every Parquet file (`ensemble.metadata`), and
//! those files get shared. So values are scalars (string, integer, float, boolean, date), which
//! `ensemble runs --where` can match, and a key that looks like a credential (it contains
//! `password`, `token` or `secret`, in any case) is refused: secrets come from files or the
//! environment, never from the experiment.

use std::collections::BTreeMap;

/// Words that make a metadata key look like a credential.
pub const SECRET_WORDS: [&str; 3] = ["password", "token", "secret"];

/// Why a metadata key is refused, if it is: `None` for a good key.
pub fn key_problem(key: &str) -> Option<String> {
    if key.trim().is_empty() {
        return Some("a metadata key must not be empty".to_string());
    }
    let lower = key.to_lowercase();
    SECRET_WORDS.iter().find(|w| lower.contains(*w)).map(|w| {
        format!(
            "`{key}` looks like a secret (contains `{w}`); metadata is copied into run.json \
                 and every Parquet file, so credentials must come from a file or the environment"
        )
    })
}

/// A bad `--meta KEY=VALUE` argument.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--meta {argument}: {problem}")]
pub struct MetaArgError {
    /// The argument as given.
    pub argument: String,
    /// What is wrong with it.
    pub problem: String,
}

/// Parses one `--meta KEY=VALUE`. The value is read as a TOML scalar where it is one
/// (`42`, `-3.5`, `true`, `2026-12-01`), otherwise kept as the string given, so
/// `--meta sample=B7` and `--meta sample="B7"` mean the same.
pub fn parse_meta_arg(argument: &str) -> Result<(String, serde_json::Value), MetaArgError> {
    let err = |problem: String| MetaArgError {
        argument: argument.to_string(),
        problem,
    };
    let Some((key, value)) = argument.split_once('=') else {
        return Err(err("expected KEY=VALUE".to_string()));
    };
    let key = key.trim();
    if let Some(problem) = key_problem(key) {
        return Err(err(problem));
    }
    Ok((key.to_string(), scalar_from_text(value)))
}

/// A command-line value as JSON: a TOML scalar where the text is one, else the text itself.
fn scalar_from_text(text: &str) -> serde_json::Value {
    use serde_json::Value as J;
    let parsed: Option<toml::Value> = toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut t| t.remove("v"));
    match parsed {
        Some(toml::Value::Integer(i)) => J::from(i),
        Some(toml::Value::Float(f)) => {
            serde_json::Number::from_f64(f).map_or_else(|| J::String(text.to_string()), J::Number)
        }
        Some(toml::Value::Boolean(b)) => J::Bool(b),
        Some(toml::Value::String(s)) => J::String(s),
        Some(toml::Value::Datetime(d)) => J::String(d.to_string()),
        _ => J::String(text.to_string()),
    }
}

/// Applies `--meta` overrides on top of the file's metadata (later arguments win).
pub fn apply_meta_args(
    metadata: &mut BTreeMap<String, serde_json::Value>,
    arguments: &[String],
) -> Result<(), MetaArgError> {
    for argument in arguments {
        let (key, value) = parse_meta_arg(argument)?;
        metadata.insert(key, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_typed_like_toml_scalars_or_kept_as_text() {
        let cases = [
            ("n=42", json!(42)),
            ("t=-3.5", json!(-3.5)),
            ("ok=true", json!(true)),
            ("day=2026-12-01", json!("2026-12-01")),
            ("sample=B7", json!("B7")),
            ("quoted=\"B7\"", json!("B7")),
            ("spaces=a b=c", json!("a b=c")),
            ("empty=", json!("")),
        ];
        for (arg, want) in cases {
            let (_, got) = parse_meta_arg(arg).expect(arg);
            assert_eq!(got, want, "{arg}");
        }
    }

    #[test]
    fn secret_looking_and_malformed_arguments_are_refused() {
        for arg in ["api_token=x", "Password=x", "mySecret=1"] {
            let e = parse_meta_arg(arg).expect_err(arg);
            assert!(e.to_string().contains("looks like a secret"), "{e}");
        }
        assert!(parse_meta_arg("novalue").is_err());
        assert!(parse_meta_arg("=v").is_err());
    }

    #[test]
    fn later_arguments_override_the_file() {
        let mut m = BTreeMap::from([("sample".to_string(), json!("A1"))]);
        apply_meta_args(&mut m, &["sample=B7".into(), "run=3".into()]).expect("valid");
        assert_eq!(m["sample"], json!("B7"));
        assert_eq!(m["run"], json!(3));
    }
}
