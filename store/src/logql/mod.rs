//! LogQL, the query language of Loki, for the Loki-compatible query API: the subset Grafana's
//! Loki data source and scripts use most. A query is parsed ([`parse`]) into an [`ast`], and
//! compiled ([`compile`]) to filters of the same query engine SQL runs on, so selectors and
//! filters are pushed into the store's scans and a tenant sees only its own events.
//!
//! Supported: stream selectors (`=`, `!=`, `=~`, `!~`), line filters (`|=`, `!=`, `|~`, `!~`),
//! `| json`, `| logfmt`, label filters (`=`, `!=`, `=~`, `!~`, and `>`, `>=`, `<`, `<=` on
//! numbers, joined by `,` or `and`), the range functions `count_over_time`, `rate`,
//! `bytes_over_time`, `bytes_rate`, the aggregations `sum`, `count`, `min`, `max`, `avg`
//! (with `by`/`without`), and `topk`/`bottomk`. Anything else is refused with
//! [`LogqlError::Unsupported`] naming it.

pub mod ast;
pub mod compile;
pub mod fields;
pub mod parse;
pub mod print;

pub use parse::{parse, parse_duration};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LogqlError {
    /// Not LogQL: the message says where and what was expected.
    #[error("{0}")]
    Syntax(String),
    /// LogQL that Meniscus does not answer; names the construct.
    #[error(
        "unsupported LogQL: {0} is not supported by Meniscus (see the README's LogQL section)"
    )]
    Unsupported(String),
}
