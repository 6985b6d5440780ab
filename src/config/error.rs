//! Errors of the experiment compiler, each with the file position it points at.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in an experiment file, at a position in that file.
///
/// Prints as `FILE:LINE:COL: message`, the format editors and terminals link to. The message
/// starts with the key path it is about, e.g. `instruments.scope.rate_hz: must be a positive
/// number, got -5`.
///
/// A problem with the file as a whole (it cannot be read) has `line` and `column` 0 and prints
/// as `FILE: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", .file.display(), position(*.line, *.column))]
pub struct ConfigError {
    /// The experiment file, as the caller named it.
    pub file: PathBuf,
    /// 1-based line of the offending key or value (0: the whole file).
    pub line: usize,
    /// 1-based column, counted in characters, not bytes (0: the whole file).
    pub column: usize,
    /// What is wrong, starting with the key path it is about.
    pub message: String,
}

fn position(line: usize, column: usize) -> String {
    if line == 0 {
        String::new()
    } else {
        format!(":{line}:{column}")
    }
}

/// Every problem found in one experiment file, sorted by position.
///
/// The compiler does not stop at the first problem: it reports at least one error per broken
/// component, so one `ensemble validate` shows everything there is to fix. `Display` prints one
/// error per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", Lines(.errors))]
pub struct ConfigErrors {
    errors: Vec<ConfigError>,
}

struct Lines<'a>(&'a [ConfigError]);

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl ConfigErrors {
    /// Wraps errors that are already sorted.
    pub(crate) fn new(errors: Vec<ConfigError>) -> Self {
        Self { errors }
    }

    /// The errors, sorted by line and column.
    pub fn errors(&self) -> &[ConfigError] {
        &self.errors
    }

    /// How many errors the file has (never 0).
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Always false: a `ConfigErrors` holds at least one error. Present for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Collects problems by byte offset while compiling; turned into [`ConfigError`]s at the end.
#[derive(Debug, Default)]
pub(crate) struct Diagnostics {
    items: Vec<(usize, String)>,
}

impl Diagnostics {
    /// Records a problem at the start of `span`.
    pub(crate) fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.items.push((span.start, message.into()));
    }

    /// Records a problem about `path` (a key path like `sinks.store.inputs`).
    pub(crate) fn at(&mut self, span: Range<usize>, path: &str, message: impl fmt::Display) {
        self.items.push((span.start, format!("{path}: {message}")));
    }

    /// How many problems so far.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no problem was found.
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Converts offsets to lines and columns and sorts by position (stable: same-position
    /// errors keep the order they were found in). Identical errors are reported once.
    pub(crate) fn into_errors(self, file: &Path, text: &str) -> Vec<ConfigError> {
        let mut errors: Vec<ConfigError> = self
            .items
            .into_iter()
            .map(|(offset, message)| {
                let (line, column) = line_col(text, offset);
                ConfigError {
                    file: file.to_path_buf(),
                    line,
                    column,
                    message,
                }
            })
            .collect();
        errors.sort_by_key(|e| (e.line, e.column));
        errors.dedup();
        errors
    }
}

/// 1-based line and column of byte `offset` in `text`; the column counts characters.
///
/// An offset inside a multi-byte character points at that character. An offset at or past the
/// end of a text that ends with a newline points at the end of the last line, so every position
/// returned is one an editor can show.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    if offset == text.len() && text.ends_with('\n') {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}
