//! LogQL written back from its [`ast`](super::ast): what the grid's tenant API sends the storage
//! workers when it splits a query (the part that adds up across workers goes to them, the rest
//! is evaluated over their merged answers). Printing and parsing again gives the same AST.

use std::fmt::{self, Display, Formatter};

use super::ast::{
    AggregateOp, Grouping, LabelFilter, LabelOp, LabelValue, LineFormat, LineOp, LogQuery, MatchOp,
    Matcher, MetricExpr, RangeFunction, Stage,
};

/// A string as LogQL reads it back: raw (backticks) unless it holds one, else double-quoted
/// with `\` and `"` escaped (the parser keeps any other escape as written, as regular
/// expressions need).
struct Quoted<'a>(&'a str);

impl Display for Quoted<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if !self.0.contains('`') {
            return write!(f, "`{}`", self.0);
        }
        f.write_str("\"")?;
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                '\t' => f.write_str("\\t")?,
                '\r' => f.write_str("\\r")?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

impl Display for Matcher {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            MatchOp::Eq => "=",
            MatchOp::Ne => "!=",
            MatchOp::Re => "=~",
            MatchOp::NotRe => "!~",
        };
        write!(f, "{}{op}{}", self.name, Quoted(&self.value))
    }
}

impl Display for LabelFilter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            LabelOp::Eq => "=",
            LabelOp::Ne => "!=",
            LabelOp::Re => "=~",
            LabelOp::NotRe => "!~",
            LabelOp::Gt => ">",
            LabelOp::Ge => ">=",
            LabelOp::Lt => "<",
            LabelOp::Le => "<=",
        };
        match &self.value {
            LabelValue::Text(text) => write!(f, "{} {op} {}", self.name, Quoted(text)),
            LabelValue::Number(number) => write!(f, "{} {op} {number}", self.name),
        }
    }
}

impl Display for LogQuery {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (index, matcher) in self.selector.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{matcher}")?;
        }
        f.write_str("}")?;
        for stage in &self.stages {
            match stage {
                Stage::Line(filter) => {
                    let op = match filter.op {
                        LineOp::Contains => "|=",
                        LineOp::NotContains => "!=",
                        LineOp::Matches => "|~",
                        LineOp::NotMatches => "!~",
                    };
                    write!(f, " {op} {}", Quoted(&filter.text))?;
                }
                Stage::Parser(format) => write!(f, " | {}", LineFormat::name(*format))?,
                Stage::Labels(filters) => {
                    f.write_str(" | ")?;
                    for (index, filter) in filters.iter().enumerate() {
                        if index > 0 {
                            f.write_str(", ")?;
                        }
                        write!(f, "{filter}")?;
                    }
                }
            }
        }
        Ok(())
    }
}

impl Display for MetricExpr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            MetricExpr::Range {
                function,
                query,
                range,
            } => {
                let name = match function {
                    RangeFunction::CountOverTime => "count_over_time",
                    RangeFunction::Rate => "rate",
                    RangeFunction::BytesOverTime => "bytes_over_time",
                    RangeFunction::BytesRate => "bytes_rate",
                };
                write!(f, "{name}({query} [{}ms])", range.as_millis())
            }
            MetricExpr::Aggregate {
                op,
                grouping,
                inner,
            } => {
                let name = match op {
                    AggregateOp::Sum => "sum",
                    AggregateOp::Count => "count",
                    AggregateOp::Min => "min",
                    AggregateOp::Max => "max",
                    AggregateOp::Avg => "avg",
                };
                f.write_str(name)?;
                match grouping {
                    Grouping::All => {}
                    Grouping::By(labels) => write!(f, " by ({})", labels.join(", "))?,
                    Grouping::Without(labels) => write!(f, " without ({})", labels.join(", "))?,
                }
                write!(f, " ({inner})")
            }
            MetricExpr::TopK { k, bottom, inner } => {
                let name = if *bottom { "bottomk" } else { "topk" };
                write!(f, "{name}({k}, {inner})")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::logql::ast::Query;
    use crate::logql::parse;

    #[test]
    fn printed_queries_parse_back_to_the_same_ast() {
        for text in [
            r#"{app="web", env!="dev", host=~"a.*", pod!~"x|y"}"#,
            r#"{app="web"} |= "error" != "debug" |~ "code=\\d+" !~ `a"b`"#,
            r#"{app="web"} | json | status >= 500, method = "GET" | level =~ "warn|err""#,
            r#"{app="a`b"} | logfmt | duration < 2.5"#,
            r#"count_over_time({app="web"}[5m])"#,
            r#"sum by (host) (rate({app="web"} |= "x" [90s]))"#,
            r#"max without (pod) (bytes_over_time({app="web"}[1h]))"#,
            r#"topk(3, sum by (host) (count_over_time({app="web"} | json [1m])))"#,
            r#"bottomk(2, avg(bytes_rate({app="web"}[10s])))"#,
        ] {
            let parsed = parse(text).unwrap();
            let printed = match &parsed {
                Query::Log(query) => query.to_string(),
                Query::Metric(expr) => expr.to_string(),
            };
            assert_eq!(
                parse(&printed).unwrap(),
                parsed,
                "{text} printed as {printed}"
            );
        }
    }
}
