//! The one error type of loading: where (file, line, column) and what.
use std::fmt;
use std::path::{Path, PathBuf};

/// What stage refused the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoadErrorKind {
    /// The file (or a file it names) could not be read.
    Io,
    /// Not TOML.
    Syntax,
    /// TOML, but not the scenario format (unknown key, wrong type, bad duration…).
    Format,
    /// Well-formed, but inconsistent (unknown client, missing capability, unknown mark…).
    Invalid,
    /// Another scenario of the same library has the same id.
    Duplicate,
}

impl fmt::Display for LoadErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            LoadErrorKind::Io => "io",
            LoadErrorKind::Syntax => "syntax",
            LoadErrorKind::Format => "format",
            LoadErrorKind::Invalid => "invalid",
            LoadErrorKind::Duplicate => "duplicate",
        })
    }
}

/// A scenario file that cannot be used, and exactly where it goes wrong. Lines and columns
/// count from 1; columns count characters. Errors about a whole file point at 1:1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", path.display())]
pub struct LoadError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub kind: LoadErrorKind,
    pub message: String,
    /// The text of the line the error points at, for [`LoadError::render`].
    pub source_line: Option<String>,
}

impl LoadError {
    pub(crate) fn whole_file(path: &Path, kind: LoadErrorKind, message: impl Into<String>) -> LoadError {
        LoadError {
            path: path.to_owned(),
            line: 1,
            column: 1,
            kind,
            message: message.into(),
            source_line: None,
        }
    }

    /// At byte `offset` of `text` (clamped to the text).
    pub(crate) fn at(path: &Path, text: &str, offset: usize, kind: LoadErrorKind, message: impl Into<String>) -> LoadError {
        let (line, column, source_line) = position(text, offset);
        LoadError {
            path: path.to_owned(),
            line,
            column,
            kind,
            message: message.into(),
            source_line: Some(source_line),
        }
    }

    /// The error with the offending line and a caret under the column, like a compiler:
    ///
    /// ```text
    /// error: unknown client `bobb`
    ///   --> library/connection/drop.toml:14:10
    ///    |
    /// 14 | client = "bobb"
    ///    |          ^
    /// ```
    pub fn render(&self) -> String {
        let mut out = format!(
            "error: {}\n  --> {}:{}:{}\n",
            self.message,
            self.path.display(),
            self.line,
            self.column
        );
        if let Some(text) = &self.source_line {
            let gutter = self.line.to_string().len();
            let pad = " ".repeat(gutter);
            let caret = " ".repeat(self.column.saturating_sub(1));
            out.push_str(&format!("{pad} |\n{} | {text}\n{pad} | {caret}^\n", self.line));
        }
        out
    }
}

/// 1-based line and character column of byte `offset`, and that line's text.
fn position(text: &str, offset: usize) -> (usize, usize, String) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = text[line_start..offset].chars().count() + 1;
    let line_end = text[line_start..].find('\n').map_or(text.len(), |i| line_start + i);
    (line, column, text[line_start..line_end].trim_end_matches('\r').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let text = "a = 1\nb = \"é\"x\n";
        assert_eq!(position(text, 0), (1, 1, "a = 1".into()));
        assert_eq!(position(text, 6), (2, 1, "b = \"é\"x".into()));
        // The byte after "é" (two bytes) is the 7th character of line 2.
        assert_eq!(position(text, 6 + 7), (2, 7, "b = \"é\"x".into()));
        assert_eq!(position(text, 999).0, 3);
    }

    #[test]
    fn renders_with_a_caret() {
        let e = LoadError::at(
            Path::new("x.toml"),
            "id = 1\nclient = \"bobb\"\n",
            16,
            LoadErrorKind::Invalid,
            "unknown client `bobb`",
        );
        assert_eq!(e.to_string(), "x.toml:2:10: unknown client `bobb`");
        assert_eq!(
            e.render(),
            "error: unknown client `bobb`\n  --> x.toml:2:10\n  |\n2 | client = \"bobb\"\n  |          ^\n"
        );
    }
}
