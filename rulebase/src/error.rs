//! Rulebase loading errors.

use std::fmt;

/// A rulebase could not be loaded: where (file, line, column) and why.
///
/// Displays as `rules.rb:12:7: unknown field type "nubmer"`, the format editors and
/// compilers use, so a rulebase author can jump straight to the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulebaseError {
    /// The file (or source name given to [`crate::Rulebase::parse_str`]).
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// 1-based column (in bytes) within that line.
    pub column: usize,
    /// Lowercase description of the problem.
    pub message: String,
}

impl RulebaseError {
    pub(crate) fn new(file: &str, line: usize, column: usize, message: impl Into<String>) -> Self {
        RulebaseError {
            file: file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }
}

impl fmt::Display for RulebaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

impl std::error::Error for RulebaseError {}
