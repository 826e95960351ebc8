//! What a LogQL query says, once parsed: a log query (stream selector and pipeline) or a
//! metric over one.

use std::time::Duration;

/// A parsed LogQL expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Query {
    /// Lines: `{app="web"} |= "error" | json | status >= 500`.
    Log(LogQuery),
    /// Numbers over time: `sum by (host) (rate({app="web"}[1m]))`.
    Metric(MetricExpr),
}

#[derive(Clone, Debug, PartialEq)]
pub struct LogQuery {
    /// The stream selector's matchers, all of which must hold.
    pub selector: Vec<Matcher>,
    /// Line filters, parsers and label filters, in the order written.
    pub stages: Vec<Stage>,
}

impl LogQuery {
    /// The parser stage, if the pipeline has one (`| json` or `| logfmt`).
    pub fn parser(&self) -> Option<LineFormat> {
        self.stages.iter().find_map(|stage| match stage {
            Stage::Parser(format) => Some(*format),
            _ => None,
        })
    }
}

/// `name op "value"` in a stream selector.
#[derive(Clone, Debug, PartialEq)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOp {
    Eq,
    Ne,
    /// `=~`: the whole value matches the regular expression.
    Re,
    /// `!~`
    NotRe,
}

/// One step of a log pipeline.
#[derive(Clone, Debug, PartialEq)]
pub enum Stage {
    /// `|= "text"`, `!= "text"`, `|~ "re"`, `!~ "re"`.
    Line(LineFilter),
    /// `| json` or `| logfmt`: the line's fields become labels.
    Parser(LineFormat),
    /// `| name op value`, several joined by `,` or `and` all holding.
    Labels(Vec<LabelFilter>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct LineFilter {
    pub op: LineOp,
    pub text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineOp {
    /// `|=`: the line contains the text.
    Contains,
    /// `!=`
    NotContains,
    /// `|~`: a regular expression matches somewhere in the line.
    Matches,
    /// `!~`
    NotMatches,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LineFormat {
    Json,
    Logfmt,
}

impl LineFormat {
    pub fn name(self) -> &'static str {
        match self {
            LineFormat::Json => "json",
            LineFormat::Logfmt => "logfmt",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct LabelFilter {
    pub name: String,
    pub op: LabelOp,
    pub value: LabelValue,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelOp {
    Eq,
    Ne,
    Re,
    NotRe,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Clone, Debug, PartialEq)]
pub enum LabelValue {
    Text(String),
    Number(f64),
}

/// A metric expression.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricExpr {
    /// `count_over_time(LOG [5m])` and its kin: one series per stream.
    Range {
        function: RangeFunction,
        query: LogQuery,
        range: Duration,
    },
    /// `sum by (host) (EXPR)`: series combined per group.
    Aggregate {
        op: AggregateOp,
        grouping: Grouping,
        inner: Box<MetricExpr>,
    },
    /// `topk(3, EXPR)` / `bottomk(3, EXPR)`: at each step, the `k` largest (smallest) series.
    TopK {
        k: usize,
        bottom: bool,
        inner: Box<MetricExpr>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeFunction {
    /// Lines in the range.
    CountOverTime,
    /// Lines per second over the range.
    Rate,
    /// Bytes of the lines in the range.
    BytesOverTime,
    /// Bytes per second over the range.
    BytesRate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggregateOp {
    Sum,
    Count,
    Min,
    Max,
    Avg,
}

/// Which labels an aggregation keeps.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Grouping {
    /// No clause: one series for everything.
    #[default]
    All,
    /// `by (a, b)`: these labels only.
    By(Vec<String>),
    /// `without (a, b)`: every label but these.
    Without(Vec<String>),
}
