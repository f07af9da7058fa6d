//! Diagnostics located in a policy file: what is wrong, where (file, line,
//! column) and, where one is clear, what would fix it.

use std::fmt;
use std::path::{Path, PathBuf};

/// Error or warning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// The policy is refused.
    Error,
    /// The policy compiles, but something is probably not what was meant.
    Warning,
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diag {
    /// Error or warning.
    pub severity: Severity,
    /// The policy file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// What is wrong.
    pub message: String,
    /// What would fix it.
    pub help: Option<String>,
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {sev}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )?;
        if let Some(h) = &self.help {
            write!(f, "\n  help: {h}")?;
        }
        Ok(())
    }
}

/// A policy file's text, for turning byte offsets into lines.
pub struct Source<'a> {
    /// Path as given.
    pub path: &'a Path,
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    /// Indexes `text`.
    pub fn new(path: &'a Path, text: &str) -> Source<'a> {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Source { path, line_starts }
    }

    /// 1-based line and column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        (line, offset - self.line_starts[line - 1] + 1)
    }

    /// A diagnostic at a byte offset.
    pub fn diag(
        &self,
        severity: Severity,
        offset: usize,
        message: String,
        help: Option<String>,
    ) -> Diag {
        let (line, col) = self.line_col(offset);
        Diag {
            severity,
            file: self.path.to_path_buf(),
            line,
            col,
            message,
            help,
        }
    }
}

/// The closest candidate to `name` by edit distance, if close enough to be
/// a plausible typo.
pub fn suggest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.len() / 3).max(2).min(name.len().saturating_sub(1));
    candidates
        .map(|c| (edit_distance(&name.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_suggestions() {
        let s = Source::new(Path::new("p.toml"), "a\nbc\n\nd");
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(3), (2, 2));
        assert_eq!(s.line_col(6), (4, 1));
        assert_eq!(
            suggest("SPEDE", ["SPEED", "GEAR"].into_iter()),
            Some("SPEED")
        );
        assert_eq!(suggest("XYZ", ["SPEED", "GEAR"].into_iter()), None);
    }
}
