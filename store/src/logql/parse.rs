//! LogQL text to [`Query`]: a tokenizer and a recursive-descent parser for the subset Meniscus
//! answers. Written by hand rather than with a parser library so that every refusal can name
//! the construct it refuses (`line_format`, `offset`, a binary operator) and where it is; the
//! grammar is small enough that a library would not make it shorter.

use std::time::Duration;

use super::ast::*;
use super::compile::regex_matches_empty;
use super::LogqlError;

/// Longest query accepted, in bytes (Grafana's generated queries are well under 1 KiB).
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
/// Most nested aggregations (`sum(sum(sum(...)))`).
const MAX_DEPTH: usize = 32;

pub fn parse(text: &str) -> Result<Query, LogqlError> {
    if text.len() > MAX_QUERY_BYTES {
        return Err(LogqlError::Syntax(format!(
            "the query is {} bytes long; at most {MAX_QUERY_BYTES} are accepted",
            text.len()
        )));
    }
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        tokens,
        next: 0,
        depth: 0,
        end_column: text.chars().count() + 1,
    };
    let query = if parser.peek_is(&Token::Open('{')) {
        Query::Log(parser.log_query()?)
    } else {
        Query::Metric(parser.metric()?)
    };
    parser.end()?;
    Ok(query)
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    /// `{ ( [` and `} ) ]`.
    Open(char),
    Close(char),
    Comma,
    /// `|` alone.
    Pipe,
    /// `= != =~ !~ |= |~ > >= < <= ==`
    Op(&'static str),
    Text(String),
    Number(f64),
    Ident(String),
    /// What is inside `[...]`.
    Range(String),
    /// An arithmetic operator: not supported, named in the refusal.
    Arithmetic(char),
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Open(c) | Token::Close(c) | Token::Arithmetic(c) => format!("`{c}`"),
            Token::Comma => "`,`".into(),
            Token::Pipe => "`|`".into(),
            Token::Op(op) => format!("`{op}`"),
            Token::Text(text) => format!("the string {text:?}"),
            Token::Number(number) => format!("the number {number}"),
            Token::Ident(name) => format!("`{name}`"),
            Token::Range(range) => format!("`[{range}]`"),
        }
    }
}

struct Positioned {
    token: Token,
    /// 1-based column (in characters) where the token starts.
    column: usize,
}

fn tokenize(text: &str) -> Result<Vec<Positioned>, LogqlError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut at = 0;
    let error = |at: usize, message: String| {
        LogqlError::Syntax(format!("parse error at col {}: {message}", at + 1))
    };
    while at < chars.len() {
        let c = chars[at];
        let start = at;
        let two: String = chars[at..(at + 2).min(chars.len())].iter().collect();
        let token = if c.is_whitespace() {
            at += 1;
            continue;
        } else if c == '#' {
            // A comment runs to the end of the line.
            while at < chars.len() && chars[at] != '\n' {
                at += 1;
            }
            continue;
        } else if let Some(op) = ["|=", "|~", "!=", "!~", "=~", "==", ">=", "<="]
            .into_iter()
            .find(|op| *op == two)
        {
            at += 2;
            Token::Op(op)
        } else {
            match c {
                '{' | '(' => {
                    at += 1;
                    Token::Open(c)
                }
                '}' | ')' | ']' => {
                    at += 1;
                    Token::Close(c)
                }
                '[' => {
                    let end = chars[at..]
                        .iter()
                        .position(|c| *c == ']')
                        .ok_or_else(|| error(at, "`[` without `]`".into()))?;
                    let range: String = chars[at + 1..at + end].iter().collect();
                    at += end + 1;
                    Token::Range(range.trim().to_string())
                }
                ',' => {
                    at += 1;
                    Token::Comma
                }
                '|' => {
                    at += 1;
                    Token::Pipe
                }
                '=' => {
                    at += 1;
                    Token::Op("=")
                }
                '>' | '<' => {
                    at += 1;
                    Token::Op(if c == '>' { ">" } else { "<" })
                }
                '+' | '-' | '*' | '/' | '%' | '^' => {
                    // A negative number is a number; otherwise arithmetic.
                    if c == '-' && chars.get(at + 1).is_some_and(|c| c.is_ascii_digit()) {
                        let (number, length) = number_at(&chars[at..]);
                        at += length;
                        Token::Number(number.ok_or_else(|| error(start, "bad number".into()))?)
                    } else {
                        at += 1;
                        Token::Arithmetic(c)
                    }
                }
                '"' => {
                    let (value, length) =
                        quoted(&chars[at..]).map_err(|message| error(start, message))?;
                    at += length;
                    Token::Text(value)
                }
                '`' => {
                    let end = chars[at + 1..]
                        .iter()
                        .position(|c| *c == '`')
                        .ok_or_else(|| error(at, "a raw string without its closing `".into()))?;
                    let value: String = chars[at + 1..at + 1 + end].iter().collect();
                    at += end + 2;
                    Token::Text(value)
                }
                c if c.is_ascii_digit() || c == '.' => {
                    let (number, length) = number_at(&chars[at..]);
                    at += length;
                    Token::Number(number.ok_or_else(|| error(start, "bad number".into()))?)
                }
                c if c.is_ascii_alphabetic() || c == '_' => {
                    let length = chars[at..]
                        .iter()
                        .position(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
                        .unwrap_or(chars.len() - at);
                    let name: String = chars[at..at + length].iter().collect();
                    at += length;
                    Token::Ident(name)
                }
                other => return Err(error(at, format!("unexpected character {other:?}"))),
            }
        };
        tokens.push(Positioned {
            token,
            column: start + 1,
        });
    }
    Ok(tokens)
}

/// A number at the start of `chars` (digits, `.`, an exponent, a leading `-`) and its length.
fn number_at(chars: &[char]) -> (Option<f64>, usize) {
    let mut length = usize::from(chars.first() == Some(&'-'));
    while length < chars.len() {
        let c = chars[length];
        let exponent_sign =
            (c == '-' || c == '+') && matches!(chars.get(length.wrapping_sub(1)), Some('e' | 'E'));
        if c.is_ascii_digit() || c == '.' || c == 'e' || c == 'E' || exponent_sign {
            length += 1;
        } else {
            break;
        }
    }
    let text: String = chars[..length].iter().collect();
    (text.parse().ok(), length)
}

/// A double-quoted string with Go's escapes, and how many characters it took.
fn quoted(chars: &[char]) -> Result<(String, usize), String> {
    let mut value = String::new();
    let mut at = 1;
    while at < chars.len() {
        match chars[at] {
            '"' => return Ok((value, at + 1)),
            '\\' => {
                let escaped = chars.get(at + 1).ok_or("a string ends in `\\`")?;
                match escaped {
                    'n' => value.push('\n'),
                    't' => value.push('\t'),
                    'r' => value.push('\r'),
                    '\\' | '"' | '\'' => value.push(*escaped),
                    // Regular expressions written in double quotes keep their own escapes
                    // (`"\\d"` is the usual spelling; `"\d"` is accepted as Loki does).
                    other => {
                        value.push('\\');
                        value.push(*other);
                    }
                }
                at += 2;
            }
            c => {
                value.push(c);
                at += 1;
            }
        }
    }
    Err("a string without its closing quote".into())
}

/// A Prometheus duration: `5m`, `1h30m`, `500ms`, `1d`, `2w`, `1y`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    if text.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let amount: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_length = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let millis_per = match &rest[..unit_length] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            _ => return None,
        };
        total = total.checked_add(Duration::from_millis(amount.checked_mul(millis_per)?))?;
        rest = &rest[unit_length..];
    }
    Some(total)
}

struct Parser {
    tokens: Vec<Positioned>,
    next: usize,
    depth: usize,
    /// The column just past the query's last character.
    end_column: usize,
}

const RANGE_FUNCTIONS: [(&str, RangeFunction); 4] = [
    ("count_over_time", RangeFunction::CountOverTime),
    ("rate", RangeFunction::Rate),
    ("bytes_over_time", RangeFunction::BytesOverTime),
    ("bytes_rate", RangeFunction::BytesRate),
];
const AGGREGATIONS: [(&str, AggregateOp); 5] = [
    ("sum", AggregateOp::Sum),
    ("count", AggregateOp::Count),
    ("min", AggregateOp::Min),
    ("max", AggregateOp::Max),
    ("avg", AggregateOp::Avg),
];
/// LogQL functions and stages Meniscus does not answer: named in the refusal.
const UNSUPPORTED_FUNCTIONS: [&str; 20] = [
    "avg_over_time",
    "min_over_time",
    "max_over_time",
    "sum_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "quantile_over_time",
    "first_over_time",
    "last_over_time",
    "absent_over_time",
    "rate_counter",
    "stddev",
    "stdvar",
    "sort",
    "sort_desc",
    "label_replace",
    "vector",
    "absent",
    "approx_topk",
    "group",
];

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens
            .get(self.next)
            .map(|positioned| &positioned.token)
    }

    fn peek_is(&self, token: &Token) -> bool {
        self.peek() == Some(token)
    }

    fn column(&self) -> usize {
        self.tokens
            .get(self.next)
            .map(|positioned| positioned.column)
            .unwrap_or(self.end_column)
    }

    fn error(&self, message: impl std::fmt::Display) -> LogqlError {
        LogqlError::Syntax(format!("parse error at col {}: {message}", self.column()))
    }

    fn unexpected(&self, wanted: &str) -> LogqlError {
        match self.peek() {
            Some(token) => self.error(format!("expected {wanted}, found {}", token.describe())),
            None => self.error(format!("expected {wanted}, found the end of the query")),
        }
    }

    fn take(&mut self) -> Option<Token> {
        let token = self
            .tokens
            .get(self.next)
            .map(|positioned| positioned.token.clone());
        self.next += 1;
        token
    }

    fn expect(&mut self, token: Token, wanted: &str) -> Result<(), LogqlError> {
        if self.peek_is(&token) {
            self.next += 1;
            Ok(())
        } else {
            Err(self.unexpected(wanted))
        }
    }

    fn text(&mut self, wanted: &str) -> Result<String, LogqlError> {
        match self.peek() {
            Some(Token::Text(text)) => {
                let text = text.clone();
                self.next += 1;
                Ok(text)
            }
            _ => Err(self.unexpected(wanted)),
        }
    }

    fn ident(&mut self, wanted: &str) -> Result<String, LogqlError> {
        match self.peek() {
            Some(Token::Ident(name)) => {
                let name = name.clone();
                self.next += 1;
                Ok(name)
            }
            _ => Err(self.unexpected(wanted)),
        }
    }

    /// After a whole query: anything left is a construct not supported, or an error.
    fn end(&self) -> Result<(), LogqlError> {
        match self.peek() {
            None => Ok(()),
            Some(Token::Arithmetic(op)) => Err(unsupported(format!(
                "the binary operator `{op}` (arithmetic between queries or with numbers)"
            ))),
            Some(Token::Op(op)) if matches!(*op, ">" | ">=" | "<" | "<=" | "==" | "!=") => Err(
                unsupported(format!("the comparison `{op}` on a metric query")),
            ),
            Some(Token::Ident(word)) if ["and", "or", "unless"].contains(&word.as_str()) => Err(
                unsupported(format!("the binary operator `{word}` between queries")),
            ),
            Some(Token::Ident(word)) if word == "offset" => {
                Err(unsupported("the `offset` modifier".into()))
            }
            Some(_) => Err(self.unexpected("the end of the query")),
        }
    }

    fn log_query(&mut self) -> Result<LogQuery, LogqlError> {
        let selector = self.selector()?;
        let mut stages = Vec::new();
        loop {
            match self.peek() {
                Some(Token::Op(op)) if matches!(*op, "|=" | "!=" | "|~" | "!~") => {
                    let op = match *op {
                        "|=" => LineOp::Contains,
                        "!=" => LineOp::NotContains,
                        "|~" => LineOp::Matches,
                        _ => LineOp::NotMatches,
                    };
                    self.next += 1;
                    if let Some(Token::Ident(name)) = self.peek() {
                        return Err(unsupported(format!(
                            "the line filter function `{name}(...)` (ip filters)"
                        )));
                    }
                    let text = self.text("a string after a line filter")?;
                    if matches!(op, LineOp::Matches | LineOp::NotMatches) {
                        check_regex(&text)?;
                    }
                    stages.push(Stage::Line(LineFilter { op, text }));
                    // `|= "a" or "b"`
                    if let Some(Token::Ident(word)) = self.peek() {
                        if word == "or" {
                            return Err(unsupported("`or` between line filters".into()));
                        }
                    }
                }
                Some(Token::Pipe) => {
                    self.next += 1;
                    stages.push(self.pipe_stage()?);
                }
                _ => break,
            }
        }
        Ok(LogQuery { selector, stages })
    }

    fn selector(&mut self) -> Result<Vec<Matcher>, LogqlError> {
        self.expect(Token::Open('{'), "`{` to start a stream selector")?;
        let mut matchers = Vec::new();
        while !self.peek_is(&Token::Close('}')) {
            let name = self.ident("a label name")?;
            let op = match self.take() {
                Some(Token::Op("=")) => MatchOp::Eq,
                Some(Token::Op("!=")) => MatchOp::Ne,
                Some(Token::Op("=~")) => MatchOp::Re,
                Some(Token::Op("!~")) => MatchOp::NotRe,
                _ => {
                    self.next -= 1;
                    return Err(self.unexpected("one of = != =~ !~"));
                }
            };
            let value = self.text("a quoted label value")?;
            if matches!(op, MatchOp::Re | MatchOp::NotRe) {
                check_regex(&value)?;
            }
            matchers.push(Matcher { name, op, value });
            if self.peek_is(&Token::Comma) {
                self.next += 1;
            } else if !self.peek_is(&Token::Close('}')) {
                return Err(self.unexpected("`,` or `}`"));
            }
        }
        self.next += 1;
        // Loki's rule: a selector that every stream matches would read everything.
        let selective = matchers.iter().any(|matcher| match matcher.op {
            MatchOp::Eq => !matcher.value.is_empty(),
            MatchOp::Re => !regex_matches_empty(&matcher.value),
            _ => false,
        });
        if !selective {
            return Err(LogqlError::Syntax(
                "queries require at least one regexp or equality matcher that does not have an \
                 empty-compatible value. For instance, app=~\".*\" does not meet this \
                 requirement, but app=~\".+\" will"
                    .into(),
            ));
        }
        Ok(matchers)
    }

    fn pipe_stage(&mut self) -> Result<Stage, LogqlError> {
        let name = self.ident("a parser or a label filter after `|`")?;
        let after = self
            .tokens
            .get(self.next)
            .map(|positioned| &positioned.token);
        let is_filter = matches!(after, Some(Token::Op(op)) if *op != "|=" && *op != "|~");
        if is_filter {
            self.next -= 1;
            return self.label_filters();
        }
        match name.as_str() {
            "json" | "logfmt" => {
                if matches!(self.peek(), Some(Token::Ident(_))) {
                    return Err(unsupported(format!(
                        "`| {name}` with parameters or flags (only the plain `| {name}`)"
                    )));
                }
                Ok(Stage::Parser(if name == "json" {
                    LineFormat::Json
                } else {
                    LineFormat::Logfmt
                }))
            }
            "unwrap" => Err(unsupported(
                "`| unwrap` (metrics over extracted values)".into(),
            )),
            "line_format" | "label_format" | "pattern" | "regexp" | "unpack" | "decolorize"
            | "drop" | "keep" | "distinct" => Err(unsupported(format!("the `| {name}` stage"))),
            other => Err(self.error(format!(
                "expected `json`, `logfmt` or a label filter after `|`, found `{other}`"
            ))),
        }
    }

    fn label_filters(&mut self) -> Result<Stage, LogqlError> {
        let mut filters = vec![self.label_filter()?];
        loop {
            match self.peek() {
                Some(Token::Comma) => self.next += 1,
                Some(Token::Ident(word)) if word == "and" => self.next += 1,
                Some(Token::Ident(word)) if word == "or" => {
                    return Err(unsupported("`or` between label filters".into()))
                }
                Some(Token::Open('(')) => {
                    return Err(unsupported("parentheses in label filters".into()))
                }
                _ => break,
            }
            filters.push(self.label_filter()?);
        }
        Ok(Stage::Labels(filters))
    }

    fn label_filter(&mut self) -> Result<LabelFilter, LogqlError> {
        let name = self.ident("a label name")?;
        let op = match self.take() {
            Some(Token::Op(op)) => match op {
                "=" | "==" => LabelOp::Eq,
                "!=" => LabelOp::Ne,
                "=~" => LabelOp::Re,
                "!~" => LabelOp::NotRe,
                ">" => LabelOp::Gt,
                ">=" => LabelOp::Ge,
                "<" => LabelOp::Lt,
                "<=" => LabelOp::Le,
                _ => {
                    self.next -= 1;
                    return Err(self.unexpected("a comparison"));
                }
            },
            _ => {
                self.next -= 1;
                return Err(self.unexpected("a comparison"));
            }
        };
        let value = match self.take() {
            Some(Token::Text(text)) => LabelValue::Text(text),
            Some(Token::Number(number)) => {
                if let Some(Token::Ident(unit)) = self.peek() {
                    return Err(unsupported(format!(
                        "duration and byte values in label filters (`{number}{unit}`)"
                    )));
                }
                LabelValue::Number(number)
            }
            Some(Token::Ident(function)) if function == "ip" => {
                return Err(unsupported("the `ip(...)` label filter".into()))
            }
            _ => {
                self.next -= 1;
                return Err(self.unexpected("a string or a number"));
            }
        };
        match (&value, op) {
            (LabelValue::Text(text), LabelOp::Re | LabelOp::NotRe) => check_regex(text)?,
            (LabelValue::Text(_), LabelOp::Gt | LabelOp::Ge | LabelOp::Lt | LabelOp::Le) => {
                return Err(self.error(format!(
                    "`{name}` is compared with a string; `>`, `>=`, `<` and `<=` take numbers"
                )))
            }
            (LabelValue::Number(_), LabelOp::Re | LabelOp::NotRe) => {
                return Err(self.error("a regular expression must be a string"))
            }
            _ => {}
        }
        Ok(LabelFilter { name, op, value })
    }

    fn metric(&mut self) -> Result<MetricExpr, LogqlError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(format!("more than {MAX_DEPTH} nested aggregations")));
        }
        let result = self.metric_inner();
        self.depth -= 1;
        result
    }

    fn metric_inner(&mut self) -> Result<MetricExpr, LogqlError> {
        let name = match self.peek() {
            Some(Token::Ident(name)) => name.clone(),
            Some(Token::Number(_)) => return Err(unsupported("number literals as queries".into())),
            Some(Token::Open('(')) => {
                return Err(unsupported("parentheses around a metric query".into()))
            }
            _ => return Err(self.unexpected("a stream selector `{...}` or a metric function")),
        };
        if let Some((_, function)) = RANGE_FUNCTIONS.iter().find(|(known, _)| *known == name) {
            self.next += 1;
            self.expect(Token::Open('('), &format!("`(` after {name}"))?;
            let query = self.log_query()?;
            let range = match self.take() {
                Some(Token::Range(range)) => range,
                _ => {
                    self.next -= 1;
                    return Err(self.unexpected(&format!("a range like [5m] in {name}(...)")));
                }
            };
            if range.contains(':') {
                return Err(unsupported(format!("subqueries (`[{range}]`)")));
            }
            let range = parse_duration(&range)
                .filter(|range| !range.is_zero())
                .ok_or_else(|| self.error(format!("`{range}` is not a duration like 5m")))?;
            if let Some(Token::Ident(word)) = self.peek() {
                if word == "offset" {
                    return Err(unsupported("the `offset` modifier".into()));
                }
            }
            self.expect(Token::Close(')'), &format!("`)` to close {name}(...)"))?;
            return Ok(MetricExpr::Range {
                function: *function,
                query,
                range,
            });
        }
        if let Some((_, op)) = AGGREGATIONS.iter().find(|(known, _)| *known == name) {
            self.next += 1;
            let before = self.grouping()?;
            self.expect(Token::Open('('), &format!("`(` after {name}"))?;
            let inner = self.metric()?;
            self.expect(Token::Close(')'), &format!("`)` to close {name}(...)"))?;
            let after = self.grouping()?;
            let grouping = match (before, after) {
                (Some(_), Some(_)) => {
                    return Err(self.error("a grouping clause both before and after the arguments"))
                }
                (Some(grouping), None) | (None, Some(grouping)) => grouping,
                (None, None) => Grouping::All,
            };
            return Ok(MetricExpr::Aggregate {
                op: *op,
                grouping,
                inner: Box::new(inner),
            });
        }
        if name == "topk" || name == "bottomk" {
            self.next += 1;
            if self.grouping()?.is_some() {
                return Err(unsupported(format!("`{name}` with by/without")));
            }
            self.expect(Token::Open('('), &format!("`(` after {name}"))?;
            let k = match self.take() {
                Some(Token::Number(k)) if k >= 1.0 && k.fract() == 0.0 && k <= 10_000.0 => {
                    k as usize
                }
                _ => {
                    self.next -= 1;
                    return Err(self.unexpected(&format!(
                        "a whole number between 1 and 10000 as {name}'s first argument"
                    )));
                }
            };
            self.expect(Token::Comma, "`,`")?;
            let inner = self.metric()?;
            self.expect(Token::Close(')'), &format!("`)` to close {name}(...)"))?;
            if self.grouping()?.is_some() {
                return Err(unsupported(format!("`{name}` with by/without")));
            }
            return Ok(MetricExpr::TopK {
                k,
                bottom: name == "bottomk",
                inner: Box::new(inner),
            });
        }
        if UNSUPPORTED_FUNCTIONS.contains(&name.as_str()) {
            return Err(unsupported(format!("the function `{name}`")));
        }
        Err(self.error(format!(
            "`{name}` is not a LogQL function; expected a stream selector `{{...}}`, one of \
             count_over_time, rate, bytes_over_time, bytes_rate, or an aggregation"
        )))
    }

    /// `by (a, b)` or `without (a, b)`, if there.
    fn grouping(&mut self) -> Result<Option<Grouping>, LogqlError> {
        let without = match self.peek() {
            Some(Token::Ident(word)) if word == "by" => false,
            Some(Token::Ident(word)) if word == "without" => true,
            _ => return Ok(None),
        };
        self.next += 1;
        self.expect(Token::Open('('), "`(` after by/without")?;
        let mut labels = Vec::new();
        while !self.peek_is(&Token::Close(')')) {
            labels.push(self.ident("a label name")?);
            if self.peek_is(&Token::Comma) {
                self.next += 1;
            } else if !self.peek_is(&Token::Close(')')) {
                return Err(self.unexpected("`,` or `)`"));
            }
        }
        self.next += 1;
        Ok(Some(if without {
            Grouping::Without(labels)
        } else {
            Grouping::By(labels)
        }))
    }
}

fn unsupported(what: String) -> LogqlError {
    LogqlError::Unsupported(what)
}

/// Regular expressions are checked when the query is parsed, with the engine's own syntax,
/// so a bad one is a 400 naming it, not an error from deep in a query.
fn check_regex(pattern: &str) -> Result<(), LogqlError> {
    regex::Regex::new(pattern).map(|_| ()).map_err(|error| {
        LogqlError::Syntax(format!("invalid regular expression {pattern:?}: {error}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(text: &str) -> LogQuery {
        match parse(text).unwrap() {
            Query::Log(query) => query,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn selectors_filters_parsers_and_label_filters() {
        let query = log(
            r#"{app="web", host!="h1", level=~"err|warn", job!~`x.*`} |= "GET" != "health" |~ "5\\d\\d" | json | status >= 500, method="GET" | logfmt"#,
        );
        assert_eq!(query.selector.len(), 4);
        assert_eq!(query.selector[2].op, MatchOp::Re);
        assert_eq!(query.selector[3].value, "x.*");
        assert_eq!(query.stages.len(), 6);
        assert_eq!(
            query.stages[2],
            Stage::Line(LineFilter {
                op: LineOp::Matches,
                text: "5\\d\\d".into()
            })
        );
        assert_eq!(query.stages[3], Stage::Parser(LineFormat::Json));
        assert_eq!(
            query.stages[4],
            Stage::Labels(vec![
                LabelFilter {
                    name: "status".into(),
                    op: LabelOp::Ge,
                    value: LabelValue::Number(500.0)
                },
                LabelFilter {
                    name: "method".into(),
                    op: LabelOp::Eq,
                    value: LabelValue::Text("GET".into())
                }
            ])
        );
        assert_eq!(query.parser(), Some(LineFormat::Json));
    }

    #[test]
    fn metrics_nest_with_groupings_before_or_after() {
        let query = parse(r#"topk(3, sum by (host) (rate({app="web"} |= "x" [5m])))"#).unwrap();
        let Query::Metric(MetricExpr::TopK { k: 3, inner, .. }) = query else {
            panic!("{query:?}")
        };
        let MetricExpr::Aggregate {
            op,
            grouping,
            inner,
        } = *inner
        else {
            panic!()
        };
        assert_eq!(op, AggregateOp::Sum);
        assert_eq!(grouping, Grouping::By(vec!["host".into()]));
        assert!(matches!(
            *inner,
            MetricExpr::Range {
                function: RangeFunction::Rate,
                range,
                ..
            } if range == Duration::from_secs(300)
        ));
        let after = parse(r#"sum(count_over_time({app="web"}[1m])) without (host)"#).unwrap();
        assert!(matches!(
            after,
            Query::Metric(MetricExpr::Aggregate {
                grouping: Grouping::Without(_),
                ..
            })
        ));
    }

    #[test]
    fn what_is_not_supported_is_named() {
        for (query, named) in [
            (r#"{app="x"} | line_format "{{.msg}}""#, "line_format"),
            (r#"{app="x"} | pattern "<ip> <_>""#, "pattern"),
            (r#"sum(rate({app="x"}[1m])) / 2"#, "`/`"),
            (r#"rate({app="x"}[1m]) > 10"#, "`>`"),
            (
                r#"avg_over_time({app="x"} | unwrap latency [1m])"#,
                "avg_over_time",
            ),
            (
                r#"sum_over_time({app="x"} | json | unwrap latency [1m])"#,
                "sum_over_time",
            ),
            (
                r#"count_over_time({app="x"} | json | unwrap latency [1m])"#,
                "unwrap",
            ),
            (r#"rate({app="x"}[1m] offset 1h)"#, "offset"),
            (r#"rate({app="x"}[5m:1m])"#, "subqueries"),
            (r#"{app="x"} | json | a="b" or c="d""#, "or"),
            (r#"{app="x"} | json | latency > 10s"#, "duration"),
            (r#"{app="x"} | json foo="bar""#, "parameters"),
            (r#"topk by (host) (2, rate({app="x"}[1m]))"#, "topk"),
            (r#"rate({app="x"}[1m]) and rate({app="y"}[1m])"#, "and"),
        ] {
            match parse(query) {
                Err(LogqlError::Unsupported(what)) => {
                    assert!(what.contains(named), "{query}: {what}")
                }
                other => panic!("{query}: {other:?}"),
            }
        }
    }

    #[test]
    fn syntax_errors_say_where() {
        for (query, fragment) in [
            ("{app=\"x\"", "col 9"),
            ("{app=x}", "quoted label value"),
            ("{app=\"x\"} |= ", "string after a line filter"),
            ("rate({app=\"x\"})", "range like [5m]"),
            ("rate({app=\"x\"}[5q])", "not a duration"),
            ("{app=~\"(\"}", "invalid regular expression"),
            ("{app=\"\"}", "at least one regexp or equality matcher"),
            ("{app=~\".*\"}", "at least one regexp or equality matcher"),
            ("nonsense({app=\"x\"}[1m])", "not a LogQL function"),
            ("{app=\"x\"} | json | a > \"b\"", "take numbers"),
        ] {
            match parse(query) {
                Err(LogqlError::Syntax(message)) => {
                    assert!(message.contains(fragment), "{query}: {message}")
                }
                other => panic!("{query}: {other:?}"),
            }
        }
        let deep = format!(
            "{}rate({{a=\"b\"}}[1m]){}",
            "sum(".repeat(100),
            ")".repeat(100)
        );
        assert!(matches!(parse(&deep), Err(LogqlError::Syntax(_))));
        assert!(parse(&"x".repeat(MAX_QUERY_BYTES + 1)).is_err());
    }

    #[test]
    fn durations_are_prometheus_durations() {
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("99999999999999999y"), None);
    }
}
