//! Diagnostics: `FILE:LINE:COL: message` errors and warnings.

use core::fmt;
use core::ops::Range;

/// How serious a [`Diagnostic`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The configuration is rejected.
    Error,
    /// The configuration is accepted, but something looks wrong.
    Warning,
}

/// One problem found in a configuration file, with its position.
///
/// `Display` prints `FILE:LINE:COL: message` for errors and
/// `FILE:LINE:COL: warning: message` for warnings (`FILE: message` when the problem has no
/// position, e.g. the file cannot be read). Lines and columns are 1-based; columns count
/// Unicode scalar values, not bytes. Messages never contain PSK material.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file name as given to [`crate::Config::from_str`] / [`crate::Config::from_path`].
    pub file: String,
    /// 1-based line, if the problem has a position.
    pub line: Option<usize>,
    /// 1-based column (in characters), if the problem has a position.
    pub col: Option<usize>,
    /// Byte span in the file, if known.
    pub span: Option<Range<usize>>,
    /// What is wrong (lower case, no trailing period).
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let (Some(line), Some(col)) = (self.line, self.col) {
            write!(f, ":{line}:{col}")?;
        }
        match self.severity {
            Severity::Error => write!(f, ": {}", self.message),
            Severity::Warning => write!(f, ": warning: {}", self.message),
        }
    }
}

/// All errors found in a configuration (at least one), plus any warnings.
///
/// `Display` prints one `FILE:LINE:COL: message` line per diagnostic, errors and
/// warnings interleaved in file order, lines separated by `\n` (no trailing newline).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Errors {
    diagnostics: Vec<Diagnostic>,
}

impl Errors {
    pub(crate) fn new(mut diagnostics: Vec<Diagnostic>) -> Self {
        sort(&mut diagnostics);
        Errors { diagnostics }
    }

    /// Every diagnostic (errors and warnings), in file order.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// Only the errors, in file order.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    /// Number of errors (warnings not counted).
    pub fn error_count(&self) -> usize {
        self.errors().count()
    }
}

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i != 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}

/// Sorts diagnostics by position (unpositioned first), keeping insertion order for ties.
pub(crate) fn sort(d: &mut [Diagnostic]) {
    d.sort_by_key(|d| (d.line.unwrap_or(0), d.col.unwrap_or(0)));
}

/// Collects diagnostics for one file and maps byte offsets to LINE:COL.
pub(crate) struct Sink<'a> {
    file: &'a str,
    text: &'a str,
    pub(crate) diagnostics: Vec<Diagnostic>,
}

impl<'a> Sink<'a> {
    pub(crate) fn new(file: &'a str, text: &'a str) -> Self {
        Sink {
            file,
            text,
            diagnostics: Vec::new(),
        }
    }

    /// Adds an error at `span` (its start is what LINE:COL shows).
    pub(crate) fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.push(Severity::Error, Some(span), message.into());
    }

    /// Adds a warning at `span`.
    pub(crate) fn warning(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.push(Severity::Warning, Some(span), message.into());
    }

    /// Adds an error without a position.
    pub(crate) fn error_nopos(&mut self, message: impl Into<String>) {
        self.push(Severity::Error, None, message.into());
    }

    fn push(&mut self, severity: Severity, span: Option<Range<usize>>, message: String) {
        let (line, col) = match &span {
            Some(s) => {
                let (l, c) = line_col(self.text, s.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        self.diagnostics.push(Diagnostic {
            severity,
            file: self.file.to_string(),
            line,
            col,
            span,
            message,
        });
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }
}

/// 1-based line and column (in characters) of byte offset `pos` in `text`.
///
/// Offsets past the end map to the end; offsets inside a multi-byte character map to
/// that character.
pub fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let mut pos = pos.min(text.len());
    while pos > 0 && !text.is_char_boundary(pos) {
        pos -= 1;
    }
    let before = &text[..pos];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_chars() {
        let t = "ab\ncd\u{e9}f\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 1), (1, 2));
        assert_eq!(line_col(t, 3), (2, 1));
        // 'f' is after the two-byte é.
        assert_eq!(line_col(t, 7), (2, 4));
        // Inside é maps to é.
        assert_eq!(line_col(t, 6), (2, 3));
        assert_eq!(line_col(t, 100), (3, 1));
    }

    #[test]
    fn display_formats() {
        let mut s = Sink::new("f.toml", "a = 1\nb = 2\n");
        s.error(6..7, "bad b");
        s.warning(0..1, "odd a");
        s.error_nopos("whole file");
        let e = Errors::new(s.diagnostics);
        assert_eq!(
            e.to_string(),
            "f.toml: whole file\nf.toml:1:1: warning: odd a\nf.toml:2:1: bad b"
        );
        assert_eq!(e.error_count(), 2);
    }
}
