//! TOML source files and errors that name the file, the line and the offending key.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// One problem in one config file, with where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based line and column, when the problem has a place in the file.
    pub line: Option<u32>,
    pub column: Option<u32>,
    /// The key at that place, when there is one.
    pub key: Option<String>,
    pub message: String,
    /// The text of the offending line.
    pub excerpt: Option<String>,
}

impl ConfigError {
    /// A problem with the file as a whole (unreadable, missing).
    pub fn whole_file(file: &str, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_string(),
            line: None,
            column: None,
            key: None,
            message: message.into(),
            excerpt: None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": ")?;
        if let Some(key) = &self.key {
            write!(f, "key `{key}`: ")?;
        }
        write!(f, "{}", self.message)?;
        if let (Some(line), Some(excerpt)) = (self.line, &self.excerpt) {
            write!(f, "\n  {line:>4} | {excerpt}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// All the problems found in a config, reported together so one edit fixes them all.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        ConfigErrors(vec![error])
    }
}

/// A TOML file's name and text, kept so that errors can point into it.
#[derive(Debug, Clone)]
pub struct Source {
    /// As shown in errors: the path given, or `built-in:NAME` for embedded defaults.
    pub name: String,
    /// The directory relative paths in the file are resolved against.
    pub dir: Option<PathBuf>,
    pub text: String,
}

impl Source {
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::whole_file(&name, format!("cannot read: {e}")))?;
        Ok(Source {
            name,
            dir: path.parent().map(Path::to_path_buf),
            text,
        })
    }

    pub fn built_in(name: &str, text: &str) -> Self {
        Source {
            name: format!("built-in:{name}"),
            dir: None,
            text: text.to_string(),
        }
    }

    /// Deserialises the whole file; a syntax, unknown-key or type error names its line.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        toml::from_str(&self.text).map_err(|e| {
            let message = e.message().trim().to_string();
            match e.span() {
                Some(span) => {
                    let mut error = self.error_at(span, &message);
                    // An unknown or missing field is itself the key at fault: for a table
                    // (`[alarm]`) or a missing key the line holds no `key =`, or another one.
                    if let Some(field) = field_named_by(&message) {
                        error.key = Some(field);
                    }
                    error
                }
                None => ConfigError::whole_file(&self.name, message),
            }
        })
    }

    /// An error at a byte span of the file.
    pub fn error_at(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        let start = span.start.min(self.text.len());
        let line_start = self.text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |i| start + i);
        let line = self.text[..start].matches('\n').count() + 1;
        let column = self.text[line_start..start].chars().count() + 1;
        let (line, column) = (u32::try_from(line).ok(), u32::try_from(column).ok());
        let excerpt = self.text[line_start..line_end].trim_end().to_string();
        ConfigError {
            file: self.name.clone(),
            line,
            column,
            key: key_of_line(&excerpt),
            message: message.into(),
            excerpt: Some(excerpt),
        }
    }

    /// An error about `key` inside the table spanning `table`: points at the key's own line
    /// when it is written there, else at the table.
    pub fn error_at_key(
        &self,
        table: Range<usize>,
        key: &str,
        message: impl Into<String>,
    ) -> ConfigError {
        let table = self.table_extent(table);
        let (start, end) = (table.start, table.end);
        let body = &self.text[start..end];
        let mut offset = start;
        for line in body.split_inclusive('\n') {
            if key_of_line(line.trim_end()).as_deref() == Some(key) {
                let indent = line.len() - line.trim_start().len();
                let mut error = self.error_at(offset + indent..offset + line.len(), message);
                error.key = Some(key.to_string());
                return error;
            }
            offset += line.len();
        }
        let mut error = self.error_at(table, message);
        error.key = Some(key.to_string());
        error
    }

    /// A table's whole text: toml's span of an `[[array]]` entry covers only its header, so
    /// extend it to the next table header (or the end of the file).
    fn table_extent(&self, span: Range<usize>) -> Range<usize> {
        let end = span.end.min(self.text.len());
        let start = span.start.min(end);
        let offset = match self.text[end..].find('\n') {
            None => self.text.len(),
            Some(first_newline) => {
                let body = end + first_newline + 1;
                let mut offset = body;
                for line in self.text[body..].split_inclusive('\n') {
                    if line.trim_start().starts_with('[') {
                        break;
                    }
                    offset += line.len();
                }
                offset
            }
        };
        start..offset.max(end)
    }

    /// Resolves a path written in this file.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        match &self.dir {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }
}

/// The field an `unknown field `x`` or `missing field `x`` message names.
fn field_named_by(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `"))?;
    rest.split_once('`').map(|(field, _)| field.to_string())
}

/// The key a `key = value` line sets (dotted keys and inline-table starts included).
fn key_of_line(line: &str) -> Option<String> {
    let line = line.trim_start().trim_start_matches('{').trim_start();
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    let plausible = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    plausible.then(|| key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
        speed: f64,
    }

    #[test]
    fn an_unknown_key_names_its_line_and_key() {
        let source = Source::built_in("t", "name = \"a\"\nspeed = 1.0\nsped = 2\n");
        let error = source.parse::<Sample>().unwrap_err();
        assert_eq!(error.line, Some(3));
        assert_eq!(error.key.as_deref(), Some("sped"));
        assert!(error.message.contains("unknown field"), "{error}");
        assert!(
            error
                .to_string()
                .starts_with("built-in:t:3:1: key `sped`: "),
            "{error}"
        );
    }

    #[test]
    fn a_wrong_type_names_its_line_and_key() {
        let source = Source::built_in("t", "name = \"a\"\n\nspeed = \"fast\"\n");
        let error = source.parse::<Sample>().unwrap_err();
        assert_eq!(error.line, Some(3));
        assert_eq!(error.key.as_deref(), Some("speed"));
        assert!(error.to_string().contains("speed = \"fast\""), "{error}");
    }

    #[test]
    fn a_missing_field_is_the_key_named_not_the_one_on_the_line() {
        // The span of a missing top-level field is the file's start, whose line sets `name`.
        let source = Source::built_in("t", "name = \"a\"\n");
        let error = source.parse::<Sample>().unwrap_err();
        assert_eq!(error.line, Some(1));
        assert_eq!(error.key.as_deref(), Some("speed"), "{error}");
        assert!(error.message.contains("missing field `speed`"), "{error}");
    }

    #[test]
    fn an_unknown_table_is_the_key_named() {
        let source = Source::built_in("t", "name = \"a\"\nspeed = 1.0\n\n[sped]\nx = 1\n");
        let error = source.parse::<Sample>().unwrap_err();
        assert_eq!(error.line, Some(4));
        assert_eq!(error.key.as_deref(), Some("sped"), "{error}");
    }

    #[test]
    fn a_key_inside_a_table_is_found_on_its_own_line() {
        let text = "[a]\nx = 1\n\n[b]\nx = 2\ny = 3\n";
        let source = Source::built_in("t", text);
        let table = text.find("[b]").unwrap()..text.len();
        let error = source.error_at_key(table, "y", "bad y");
        assert_eq!(error.line, Some(6));
        let missing = source.error_at_key(text.find("[b]").unwrap()..text.len(), "z", "no z");
        assert_eq!(missing.line, Some(4));
    }
}
