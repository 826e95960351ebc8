//! A log query as query-engine expressions over the `events` columns: the stream selector,
//! line filters and label filters all become filters of one plan, so they are pushed into the
//! store's scans like a SQL `WHERE`.
//!
//! Labels, as LogQL sees an event:
//! - `host`, `pname`, `severity` and `facility` (by name: `err`, `local0`), `transport` and
//!   `producer`: the event's own fields;
//! - every label an agent pushed with Loki (`native.labels`), e.g. `app`, `job`, `namespace`;
//! - after `| json` or `| logfmt`, the line's fields (an event field of the same name wins).

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::DataType;
use datafusion::logical_expr::expr::{Like, TryCast};
use datafusion::logical_expr::{binary_expr, case, col, lit, Expr, Operator};
use meniscus_grid::event::{parse_facility, parse_severity, FACILITY_NAMES, SEVERITY_NAMES};

use super::ast::*;
use super::fields::{line_field_expr, native_label_expr, native_labels_expr};

/// The event fields that are labels, in the order streams list them.
pub const EVENT_LABELS: [&str; 6] = [
    "host",
    "pname",
    "severity",
    "facility",
    "transport",
    "producer",
];

/// One filter expression for a log query's selector and pipeline.
pub fn filter(query: &LogQuery) -> Expr {
    let mut filters: Vec<Expr> = query.selector.iter().map(matcher).collect();
    let mut parser = None;
    for stage in &query.stages {
        match stage {
            Stage::Line(line) => filters.push(line_filter(line)),
            Stage::Parser(format) => parser = Some(*format),
            Stage::Labels(labels) => {
                filters.extend(labels.iter().map(|filter| label_filter(filter, parser)))
            }
        }
    }
    filters
        .into_iter()
        .reduce(Expr::and)
        .unwrap_or_else(|| lit(true))
}

/// Any of several selectors (`/series` takes `match[]` more than once).
pub fn any_selector(selectors: &[Vec<Matcher>]) -> Expr {
    selectors
        .iter()
        .map(|matchers| {
            matchers
                .iter()
                .map(matcher)
                .reduce(Expr::and)
                .unwrap_or_else(|| lit(true))
        })
        .reduce(Expr::or)
        .unwrap_or_else(|| lit(true))
}

/// A label's value as text; null where the event does not have it. `parser`: the line's
/// fields are labels too (after `| json` / `| logfmt`).
pub fn label_value(name: &str, parser: Option<LineFormat>) -> Expr {
    match name {
        "severity" => code_names(col("severity"), &SEVERITY_NAMES),
        "facility" => code_names(col("facility"), &FACILITY_NAMES),
        "host" | "pname" | "transport" | "producer" => col(name),
        _ => match parser {
            Some(format) => line_field_expr(col("msg"), format, name),
            None => native_label_expr(col("native"), name),
        },
    }
}

/// What to group by for a label: [`label_value`], except that severity and facility stay
/// codes (grouping 10 M rows by a name computed per row took four times as long as by the
/// code); [`label_text`] names them once per group.
pub fn group_value(name: &str, parser: Option<LineFormat>) -> Expr {
    match name {
        "severity" | "facility" => col(name),
        _ => label_value(name, parser),
    }
}

/// A label's value as LogQL shows it, from a [`group_value`] read as text.
pub fn label_text(name: &str, value: &str) -> String {
    let names: &[&str] = match name {
        "severity" => &SEVERITY_NAMES,
        "facility" => &FACILITY_NAMES,
        _ => return value.to_string(),
    };
    value
        .parse::<usize>()
        .ok()
        .and_then(|code| names.get(code))
        .map_or_else(|| value.to_string(), |name| name.to_string())
}

/// The expressions that identify an event's stream: its event labels (see [`group_value`])
/// and its pushed Loki labels (as one JSON object text), aliased `label_<name>` and
/// `loki_labels`.
pub fn stream_key() -> Vec<Expr> {
    let mut key: Vec<Expr> = EVENT_LABELS
        .iter()
        .map(|name| group_value(name, None).alias(format!("label_{name}")))
        .collect();
    key.push(native_labels_expr(col("native")).alias("loki_labels"));
    key
}

/// The label set of a stream from the values of [`stream_key`] read as text (empty values
/// are no label, as in Loki).
pub fn stream_labels(key: &[Option<&str>]) -> BTreeMap<String, String> {
    let (event_labels, loki_labels) = key.split_at(EVENT_LABELS.len().min(key.len()));
    let loki_labels = loki_labels.first().copied().flatten();
    let mut labels = BTreeMap::new();
    if let Some(pushed) = loki_labels.and_then(|text| {
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text).ok()
    }) {
        for (name, value) in pushed {
            let value = match value {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            };
            labels.insert(name, value);
        }
    }
    for (name, value) in EVENT_LABELS.iter().zip(event_labels) {
        if let Some(value) = value.filter(|value| !value.is_empty()) {
            labels.insert(name.to_string(), label_text(name, value));
        }
    }
    labels
}

fn code_names(code: Expr, names: &[&str]) -> Expr {
    let mut builder = case(code);
    for (index, name) in names.iter().enumerate() {
        builder = builder.when(lit(index as u8), lit(*name));
    }
    builder
        .end()
        .unwrap_or_else(|_| lit(datafusion::common::ScalarValue::Utf8(None)))
}

fn matcher(matcher: &Matcher) -> Expr {
    // `severity="err"` and `facility="local0"`: compared as codes, which the store can prune.
    if matcher.op == MatchOp::Eq || matcher.op == MatchOp::Ne {
        let code = match matcher.name.as_str() {
            "severity" => Some(parse_severity(&matcher.value)),
            "facility" => Some(parse_facility(&matcher.value)),
            _ => None,
        };
        if let Some(code) = code {
            let equal = match code {
                Some(code) => col(matcher.name.as_str()).eq(lit(code)),
                None => lit(false),
            };
            return if matcher.op == MatchOp::Eq {
                equal.is_true()
            } else {
                equal.is_not_true()
            };
        }
    }
    text_match(label_value(&matcher.name, None), matcher.op, &matcher.value)
}

/// `value op "text"` with Loki's rules: a missing label is the empty value; regular
/// expressions match the whole value.
fn text_match(value: Expr, op: MatchOp, text: &str) -> Expr {
    // Where the empty value cannot match, a missing label fails as null does: no coalesce,
    // so the comparison stays one the scans can use.
    match op {
        MatchOp::Eq if !text.is_empty() => return value.eq(lit(text.to_string())).is_true(),
        MatchOp::Re if !regex_matches_empty(text) => {
            return binary_expr(value, Operator::RegexMatch, lit(anchored(text))).is_true()
        }
        _ => {}
    }
    let value = datafusion::functions::expr_fn::coalesce(vec![value, lit("")]);
    match op {
        MatchOp::Eq => value.eq(lit(text.to_string())),
        MatchOp::Ne => value.not_eq(lit(text.to_string())),
        MatchOp::Re => binary_expr(value, Operator::RegexMatch, lit(anchored(text))),
        MatchOp::NotRe => binary_expr(value, Operator::RegexNotMatch, lit(anchored(text))),
    }
}

/// Whether a label regex (matched against the whole value) accepts the empty value.
pub(crate) fn regex_matches_empty(pattern: &str) -> bool {
    regex::Regex::new(&anchored(pattern)).is_ok_and(|regex| regex.is_match(""))
}

fn anchored(pattern: &str) -> String {
    format!("^(?:{pattern})$")
}

fn line_filter(filter: &LineFilter) -> Expr {
    match filter.op {
        LineOp::Contains | LineOp::NotContains => {
            // LIKE with our own escape character, so `%` and `_` in the text are literal.
            let escaped = filter
                .text
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            Expr::Like(Like::new(
                filter.op == LineOp::NotContains,
                Box::new(col("msg")),
                Box::new(lit(format!("%{escaped}%"))),
                Some('\\'),
                false,
            ))
        }
        LineOp::Matches => binary_expr(col("msg"), Operator::RegexMatch, lit(filter.text.clone())),
        LineOp::NotMatches => binary_expr(
            col("msg"),
            Operator::RegexNotMatch,
            lit(filter.text.clone()),
        ),
    }
}

fn label_filter(filter: &LabelFilter, parser: Option<LineFormat>) -> Expr {
    let value = label_value(&filter.name, parser);
    match (&filter.value, filter.op) {
        (LabelValue::Text(text), op) => {
            let op = match op {
                LabelOp::Eq => MatchOp::Eq,
                LabelOp::Ne => MatchOp::Ne,
                LabelOp::Re => MatchOp::Re,
                // The parser refuses text with the numeric comparisons.
                _ => MatchOp::NotRe,
            };
            text_match(value, op, text)
        }
        (LabelValue::Number(number), op) => {
            // A value that is not a number does not pass (Loki marks it with `__error__`).
            let number_value = Expr::TryCast(TryCast::new(Box::new(value), DataType::Float64));
            let operator = match op {
                LabelOp::Eq | LabelOp::Re => Operator::Eq,
                LabelOp::Ne | LabelOp::NotRe => Operator::NotEq,
                LabelOp::Gt => Operator::Gt,
                LabelOp::Ge => Operator::GtEq,
                LabelOp::Lt => Operator::Lt,
                LabelOp::Le => Operator::LtEq,
            };
            binary_expr(number_value, operator, lit(*number)).is_true()
        }
    }
}
