//! Diagnostics: located, actionable messages about a system description.
//!
//! Rendered the way compilers do, so editors can jump to them:
//!
//! ```text
//! system.xml:12:5: error: <map>: memory region "guest_rma" is not defined
//!   help: did you mean "guest_ram"?
//! ```

use serde::Serialize;

use crate::model::Pos;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The system cannot be built as written.
    Error,
    /// Probably a mistake, but the system can be built.
    Warning,
}

/// One finding, located in the source file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file, as given to [`crate::parse`].
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// The element concerned (`map`, `channel`, ...), empty for the whole
    /// document (e.g. XML that is not well formed).
    pub element: String,
    /// What is wrong.
    pub message: String,
    /// What would fix it, when we can say.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error at `pos` about `element`.
    pub fn error(file: &str, pos: Pos, element: &str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file: file.to_string(),
            line: pos.line,
            column: pos.column,
            element: element.to_string(),
            message: message.into(),
            help: None,
        }
    }

    /// A warning at `pos` about `element`.
    pub fn warning(file: &str, pos: Pos, element: &str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Self::error(file, pos, element, message)
        }
    }

    /// Adds a help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Adds a help line when `help` is some.
    pub fn with_help_opt(mut self, help: Option<String>) -> Self {
        self.help = help;
        self
    }

    /// The position as a [`Pos`].
    pub fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.column,
        }
    }

    /// Whether this is an error (not a warning).
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl core::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}:{}:{}: {sev}: ", self.file, self.line, self.column)?;
        if !self.element.is_empty() {
            write!(f, "<{}>: ", self.element)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// Edit distance between two strings (in chars): insertions, deletions,
/// substitutions and transpositions of neighbours each count 1, so the
/// usual typos ("rma" for "ram") are one edit away.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: distance between a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a typo
/// (at most a third of the word's length, and at least 1, edits away).
pub fn closest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `did you mean "x"?` for the closest candidate, if any.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    closest(word, candidates).map(|c| format!("did you mean \"{c}\"?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("vaddr", "vadr"), 1);
        assert_eq!(edit_distance("rma", "ram"), 1);
        assert_eq!(edit_distance("ab", "ba"), 1);
    }

    #[test]
    fn suggestions() {
        let c = ["vaddr", "perms", "cached", "mr"];
        assert_eq!(closest("vadr", c), Some("vaddr"));
        assert_eq!(closest("perm", c), Some("perms"));
        assert_eq!(closest("colour", c), None);
        assert_eq!(
            did_you_mean("cahced", c).as_deref(),
            Some("did you mean \"cached\"?")
        );
    }

    #[test]
    fn rendering() {
        let d = Diagnostic::error("s.xml", Pos { line: 3, column: 9 }, "map", "bad")
            .with_help("fix it");
        assert_eq!(
            d.to_string(),
            "s.xml:3:9: error: <map>: bad\n  help: fix it"
        );
    }
}
