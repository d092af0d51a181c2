//! Configuration errors, and how a TOML or serde error becomes one.
//!
//! toml reports a byte span; an operator wants a line and a key path. The
//! document is parsed once more into toml's spanned tree so that the span can
//! be mapped to the key it falls on (`server.listen[1]`).

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

/// One problem in the configuration file.
///
/// Displays as `file:line: path: message`; the line is present when the
/// error comes from the TOML reader (syntax, unknown key, wrong type), the
/// key path whenever the error belongs to a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The configuration file, as the operator named it.
    pub file: PathBuf,
    /// 1-based line, when known.
    pub line: Option<u32>,
    /// Key path such as `server.listen[1]`, when the error belongs to a key.
    pub path: Option<String>,
    /// What is wrong, in words an operator can act on.
    pub message: String,
}

impl ConfigError {
    /// An error about the value at `path`, found while validating.
    pub(crate) fn at(file: &Path, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line: None,
            path: Some(path.into()),
            message: message.into(),
        }
    }

    /// An error about the file as a whole (for example, it cannot be read).
    pub(crate) fn file(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line: None,
            path: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(formatter, ":{line}")?;
        }
        if let Some(path) = &self.path {
            write!(formatter, ": {path}")?;
        }
        write!(formatter, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every syntax error in `text`, in file order, or the spanned document.
pub(crate) fn parse_document<'text>(
    file: &Path,
    text: &'text str,
) -> Result<DeTable<'text>, Vec<ConfigError>> {
    let (document, mut errors) = DeTable::parse_recoverable(text);
    if errors.is_empty() {
        return Ok(document.into_inner());
    }
    // The recovering parser may report a consequence before its cause; file
    // order reads better.
    errors.sort_by_key(|error| error.span().map_or(0, |span| span.start));
    let mut reported: Vec<ConfigError> = Vec::new();
    for error in errors {
        let converted = ConfigError {
            file: file.to_path_buf(),
            line: error.span().map(|span| line_of(text, span.start)),
            path: None,
            message: error.message().trim().to_string(),
        };
        if !reported.contains(&converted) {
            reported.push(converted);
        }
    }
    Err(reported)
}

/// Turns serde's first structural error (unknown key, missing key, wrong
/// type) into a [`ConfigError`] with its line and key path.
pub(crate) fn from_serde(
    file: &Path,
    text: &str,
    document: &DeTable<'_>,
    error: &toml::de::Error,
) -> ConfigError {
    let message = error.message().trim();
    // A missing top-level key has an empty span at offset 0: no line to show.
    let span = error
        .span()
        .filter(|span| !(span.is_empty() && span.start == 0));
    let line = span.as_ref().map(|span| line_of(text, span.start));
    let located = span.and_then(|span| locate_in_table(document, &span, ""));

    if let Some(rest) = message.strip_prefix("unknown field ") {
        // serde: "unknown field `listn`, expected one of `listen`, `zones`".
        let hint = rest.split_once(", ").map(|(_, hint)| hint.replace('`', ""));
        let key =
            located.unwrap_or_else(|| rest.split(',').next().unwrap_or(rest).replace('`', ""));
        let message = match hint {
            Some(hint) => format!("unknown key {key}, {hint}"),
            None => format!("unknown key {key}"),
        };
        return ConfigError {
            file: file.to_path_buf(),
            line,
            path: None,
            message,
        };
    }
    if let Some(rest) = message.strip_prefix("missing field ") {
        // serde: "missing field `listen`", spanned on the table that lacks it.
        let field = rest.replace('`', "");
        let key = match located {
            Some(table) => format!("{table}.{field}"),
            None => field,
        };
        return ConfigError {
            file: file.to_path_buf(),
            line,
            path: None,
            message: format!("missing key {key}"),
        };
    }
    ConfigError {
        file: file.to_path_buf(),
        line,
        path: located,
        message: message.to_string(),
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> u32 {
    let end = offset.min(text.len());
    let newlines = text.as_bytes()[..end]
        .iter()
        .filter(|byte| **byte == b'\n')
        .count();
    u32::try_from(newlines).map_or(u32::MAX, |count| count.saturating_add(1))
}

fn locate_in_table(table: &DeTable<'_>, span: &Range<usize>, prefix: &str) -> Option<String> {
    for (key, value) in table.iter() {
        let path = join_key(prefix, key.get_ref());
        if key.span().contains(&span.start) {
            return Some(path);
        }
        // A `[section]` header's span covers only the header, not the keys
        // below it, so look inside every value before checking its own span.
        if let Some(inner) = locate_in_value(value.get_ref(), span, &path) {
            return Some(inner);
        }
        if value.span().contains(&span.start) || value.span() == *span {
            return Some(path);
        }
    }
    None
}

fn locate_in_value(value: &DeValue<'_>, span: &Range<usize>, path: &str) -> Option<String> {
    match value {
        DeValue::Table(table) => locate_in_table(table, span, path),
        DeValue::Array(items) => items.iter().enumerate().find_map(|(index, item)| {
            let item_path = format!("{path}[{index}]");
            locate_in_value(item.get_ref(), span, &item_path).or_else(|| {
                let item_span = item.span();
                (item_span.contains(&span.start) || item_span == *span).then_some(item_path)
            })
        }),
        _ => None,
    }
}

/// `prefix.key`, quoting a key that is not a bare TOML key.
fn join_key(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key.chars().all(|character| {
            character.is_ascii_alphanumeric() || character == '_' || character == '-'
        });
    let key = if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}
