//! Instrument profiles: shared tables (`configs/instruments/NAME.toml`) an instrument table
//! names with `profile = "NAME"` and overrides key by key.
//!
//! Finding a profile reads files, but [`compile`](super::compile) stays pure: the caller passes
//! a [`ProfileSource`]. [`load`](super::load) uses [`DirProfiles`] (the experiment file's
//! `instruments/` directory, then `configs/instruments/` under the current directory);
//! [`compile`](super::compile) uses [`NoProfiles`].

use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::value::Value;

/// One profile's file and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileText {
    /// Where it was found (errors inside the profile point here).
    pub path: PathBuf,
    /// Its text.
    pub text: String,
}

/// Why a profile could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    /// No file of that name in any of the places looked.
    #[error("profile `{name}` not found; looked for {}", looked_in(.looked))]
    NotFound {
        /// The profile name.
        name: String,
        /// The files looked for, in order.
        looked: Vec<PathBuf>,
    },
    /// A file was found but could not be read.
    #[error("profile `{name}`: cannot read {}: {reason}", .path.display())]
    Unreadable {
        /// The profile name.
        name: String,
        /// The file.
        path: PathBuf,
        /// What the file system said.
        reason: String,
    },
    /// This compile has no access to profile files.
    #[error(
        "profile `{0}` cannot be read here: profiles are files, and this compile has none \
         (use `config::load`, `ensemble validate` or `compile_with` with a profile source)"
    )]
    NoSource(String),
}

fn looked_in(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where profiles come from.
///
/// `profile(name)` returns `Ok` with the profile's file and text, or `Err` saying why not (for
/// a missing profile, naming every place looked). The compiler calls it at most once per
/// instrument and reports an `Err` at the instrument's `profile` key.
pub trait ProfileSource {
    /// Finds profile `name` (a plain name: ASCII letters, digits, `_` and `-`).
    fn profile(&self, name: &str) -> Result<ProfileText, ProfileError>;
}

/// No profiles at all: every `profile` key is an error saying so. What
/// [`compile`](super::compile) uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProfiles;

impl ProfileSource for NoProfiles {
    fn profile(&self, name: &str) -> Result<ProfileText, ProfileError> {
        Err(ProfileError::NoSource(name.to_string()))
    }
}

/// Profiles as `NAME.toml` files in a list of directories, searched in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirProfiles {
    /// The directories, searched in order.
    pub dirs: Vec<PathBuf>,
}

impl DirProfiles {
    /// The directories for an experiment file: its own directory's `instruments/`, then
    /// `configs/instruments/` under the current directory.
    pub fn for_experiment(path: &Path) -> Self {
        let own = path
            .parent()
            .map_or_else(|| PathBuf::from("instruments"), |p| p.join("instruments"));
        let shared = PathBuf::from("configs").join("instruments");
        let mut dirs = vec![own];
        if dirs[0] != shared {
            dirs.push(shared);
        }
        Self { dirs }
    }
}

impl ProfileSource for DirProfiles {
    fn profile(&self, name: &str) -> Result<ProfileText, ProfileError> {
        let mut looked = Vec::new();
        for dir in &self.dirs {
            let path = dir.join(format!("{name}.toml"));
            match std::fs::read_to_string(&path) {
                Ok(text) => return Ok(ProfileText { path, text }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => looked.push(path),
                Err(e) => {
                    return Err(ProfileError::Unreadable {
                        name: name.to_string(),
                        path,
                        reason: e.to_string(),
                    });
                }
            }
        }
        Err(ProfileError::NotFound {
            name: name.to_string(),
            looked,
        })
    }
}

/// Profiles held in memory by name (tests, embedding).
#[derive(Debug, Clone, Default)]
pub struct MapProfiles(pub std::collections::BTreeMap<String, String>);

impl ProfileSource for MapProfiles {
    fn profile(&self, name: &str) -> Result<ProfileText, ProfileError> {
        self.0
            .get(name)
            .map(|text| ProfileText {
                path: PathBuf::from(format!("{name}.toml")),
                text: text.clone(),
            })
            .ok_or_else(|| ProfileError::NotFound {
                name: name.to_string(),
                looked: vec![PathBuf::from(format!("{name}.toml"))],
            })
    }
}

/// Moves every span of `value` by `base`, so that spans of a profile's values do not collide
/// with the experiment's and can be traced back to the profile file.
pub(crate) fn shift<'i>(value: Value<'i>, base: usize) -> Value<'i> {
    let span = value.span();
    let span = span.start + base..span.end + base;
    let inner = match value.into_inner() {
        DeValue::Table(t) => DeValue::Table(shift_table(t, base)),
        DeValue::Array(a) => DeValue::Array(a.into_iter().map(|v| shift(v, base)).collect()),
        other => other,
    };
    Spanned::new(span, inner)
}

/// [`shift`] for every key and value of a table.
pub(crate) fn shift_table(table: DeTable<'_>, base: usize) -> DeTable<'_> {
    let mut out = DeTable::new();
    for (key, value) in table {
        let span = key.span();
        let key = Spanned::new(span.start + base..span.end + base, key.into_inner());
        out.insert(key, shift(value, base));
    }
    out
}

/// Deep-merges `over` onto `base`: tables merge key by key; any other value in `over` (arrays
/// included) replaces the one in `base`.
pub(crate) fn merge<'i>(mut base: DeTable<'i>, over: DeTable<'i>) -> DeTable<'i> {
    for (key, value) in over {
        let merged = match (base.remove(key.get_ref().as_ref()), value) {
            (Some(old), new) if old.get_ref().is_table() && new.get_ref().is_table() => {
                let span = new.span();
                let (DeValue::Table(old), DeValue::Table(new)) =
                    (old.into_inner(), new.into_inner())
                else {
                    unreachable!("both checked to be tables just above")
                };
                Spanned::new(span, DeValue::Table(merge(old, new)))
            }
            (_, new) => new,
        };
        base.insert(key, merged);
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> DeTable<'_> {
        DeTable::parse(text).expect("valid toml").into_inner()
    }

    #[test]
    fn tables_merge_key_by_key_and_arrays_are_replaced() {
        let base = table("a = 1\ninit = [\"x\", \"y\"]\n[t]\nk = 1\nl = 2\n");
        let over = table("init = [\"z\"]\n[t]\nl = 3\nm = 4\n");
        let merged = merge(base, over);
        assert_eq!(
            merged
                .get("a")
                .and_then(|v| v.get_ref().as_integer())
                .map(|i| i.as_str().to_string()),
            Some("1".into())
        );
        let init = merged
            .get("init")
            .and_then(|v| v.get_ref().as_array())
            .expect("init");
        assert_eq!(init.len(), 1);
        let t = merged
            .get("t")
            .and_then(|v| v.get_ref().as_table())
            .expect("t");
        let keys: Vec<&str> = t.keys().map(|k| k.get_ref().as_ref()).collect();
        assert_eq!(keys, vec!["k", "l", "m"]);
        assert_eq!(
            t.get("l")
                .and_then(|v| v.get_ref().as_integer())
                .map(|i| i.as_str().to_string()),
            Some("3".into())
        );
    }

    #[test]
    fn shifted_spans_move_by_the_base() {
        let t = shift_table(table("a = 1\n"), 1000);
        let (k, v) = t.iter().next().expect("one key");
        assert_eq!(k.span(), 1000..1001);
        assert_eq!(v.span(), 1004..1005);
    }

    #[test]
    fn a_missing_profile_names_every_place_looked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = DirProfiles {
            dirs: vec![dir.path().join("a"), dir.path().join("b")],
        };
        let e = source.profile("nope").expect_err("missing").to_string();
        assert!(e.contains("profile `nope` not found"), "{e}");
        assert!(
            e.contains("a/nope.toml") && e.contains("b/nope.toml"),
            "{e}"
        );
        std::fs::create_dir(dir.path().join("b")).expect("mkdir");
        std::fs::write(dir.path().join("b/yes.toml"), "x = 1").expect("write");
        assert_eq!(source.profile("yes").expect("found").text, "x = 1");
    }
}
