//! The rulebase file syntax (liblognorm's `samp.c`): records (`rule=`, `type=`,
//! `annotate=`, `include=`, `prefix=`, `extendprefix=`), comments, multi-line rules, and
//! field descriptions in both the legacy `%name:type:extra%` form and the v2 JSON forms
//! (`%name:type{...}%`, `%{...}%`, `%[...]%`).

use crate::error::RulebaseError;
use crate::fields::{is_space, KeyText, NodeId};
use crate::graph::Graph;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a byte of a record came from (1-based line and column).
#[derive(Clone, Copy, Debug)]
struct Pos {
    line: usize,
    col: usize,
}

/// Maximum include depth; guards against include cycles.
const MAX_INCLUDE_DEPTH: usize = 16;

/// Everything a rulebase compiles to.
pub(crate) struct Compiled {
    pub(crate) graph: Graph,
    pub(crate) root: NodeId,
    /// Annotations per tag, in the order liblognorm applies them.
    pub(crate) annotations: HashMap<String, Vec<(KeyText, String)>>,
    /// 2 for `version=2` rulebases, 1 for legacy ones.
    pub(crate) version: u8,
}

pub(crate) struct Loader {
    c: Compiled,
    prefix: Vec<(u8, Pos)>,
    depth: usize,
}

impl Loader {
    pub(crate) fn new() -> Self {
        let mut graph = Graph::default();
        let root = graph.new_node();
        Loader {
            c: Compiled {
                graph,
                root,
                annotations: HashMap::new(),
                version: 0,
            },
            prefix: Vec::new(),
            depth: 0,
        }
    }

    pub(crate) fn finish(mut self) -> Compiled {
        self.c.graph.optimize(self.c.root);
        crate::compact::rank_keys(&mut self.c.graph, &mut self.c.annotations);
        if self.c.version == 0 {
            self.c.version = 2;
        }
        self.c
    }

    /// Load rulebase text. `base_dir` resolves relative `include=` paths.
    pub(crate) fn load_text(
        &mut self,
        text: &str,
        file: &str,
        base_dir: Option<&Path>,
    ) -> Result<(), RulebaseError> {
        let bytes = text.as_bytes();
        // liblognorm compares the first line with exactly "version=2\n"
        let (version, body_start, first_line) =
            if bytes.starts_with(b"version=2\n") || bytes == b"version=2" {
                (2, bytes.len().min(10), 2)
            } else {
                (1, 0, 1)
            };
        if self.c.version != 0 && self.c.version != version {
            return Err(RulebaseError::new(
                file,
                1,
                1,
                format!("rulebase must be version {} (like the including one), but is version {version}", self.c.version),
            ));
        }
        self.c.version = version;
        self.read_records(&bytes[body_start..], file, first_line, base_dir)
    }

    pub(crate) fn load_file(&mut self, path: &Path) -> Result<(), RulebaseError> {
        let name = path.display().to_string();
        let text = std::fs::read(path).map_err(|e| {
            RulebaseError::new(
                &name,
                0,
                0,
                format!("cannot open rulebase: {}", e.to_string().to_lowercase()),
            )
        })?;
        let text = String::from_utf8_lossy(&text);
        self.load_text(&text, &name, path.parent())
    }

    /// Split the text into records the way `ln_sampRead` does: a record ends at a newline
    /// unless a `%` field is still open; `#` starts a comment only at a record's start.
    fn read_records(
        &mut self,
        text: &[u8],
        file: &str,
        first_line: usize,
        base_dir: Option<&Path>,
    ) -> Result<(), RulebaseError> {
        let mut rec: Vec<(u8, Pos)> = Vec::new();
        let mut in_field = false;
        let (mut line, mut col) = (first_line, 1);
        let mut i = 0;
        while i < text.len() {
            let c = text[i];
            if c == b'\n' {
                if in_field && runaway_rule(&text[i + 1..]) {
                    let p = rec.first().map_or(Pos { line, col: 1 }, |r| r.1);
                    return Err(RulebaseError::new(
                        file,
                        p.line,
                        p.col,
                        "unmatched '%' in rule (the next line starts a new rule)",
                    ));
                }
                if !in_field && !rec.is_empty() {
                    self.process(&rec, file, base_dir)?;
                    rec.clear();
                }
                line += 1;
                col = 1;
                i += 1;
                continue;
            }
            if c == b'#' && rec.is_empty() {
                while i < text.len() && text[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            if c == b'%' {
                in_field = !in_field;
            }
            rec.push((c, Pos { line, col }));
            col += 1;
            i += 1;
        }
        if !rec.is_empty() {
            if in_field {
                let p = rec[0].1;
                return Err(RulebaseError::new(
                    file,
                    p.line,
                    p.col,
                    "unmatched '%' in rule",
                ));
            }
            self.process(&rec, file, base_dir)?;
        }
        Ok(())
    }

    fn process(
        &mut self,
        rec: &[(u8, Pos)],
        file: &str,
        base_dir: Option<&Path>,
    ) -> Result<(), RulebaseError> {
        let eq = rec
            .iter()
            .position(|(c, _)| *c == b'=')
            .unwrap_or(rec.len());
        let kind: Vec<u8> = rec[..eq].iter().map(|(c, _)| *c).collect();
        let body = if eq < rec.len() {
            &rec[eq + 1..]
        } else {
            &rec[rec.len()..]
        };
        let at = |p: Pos, msg: String| RulebaseError::new(file, p.line, p.col, msg);
        let start = rec[0].1;
        match kind.as_slice() {
            b"prefix" => {
                self.prefix = body.to_vec();
                Ok(())
            }
            b"extendprefix" => {
                self.prefix.extend_from_slice(body);
                Ok(())
            }
            b"rule" => {
                let colon = body.iter().position(|(c, _)| *c == b':').ok_or_else(|| {
                    at(
                        start,
                        "rule needs 'tags:' before the sample (missing ':')".into(),
                    )
                })?;
                let tags: Vec<String> = bytes_of(&body[..colon])
                    .split(|c| *c == b',')
                    .filter(|t| !t.is_empty())
                    .map(|t| String::from_utf8_lossy(t).into_owned())
                    .collect();
                let sample = &body[colon + 1..];
                if sample.is_empty() {
                    return Err(at(start, "actual message sample part is missing".into()));
                }
                let mut full = self.prefix.clone();
                full.extend_from_slice(sample);
                let tags = (!tags.is_empty()).then(|| Arc::from(tags));
                let root = self.c.root;
                self.add_sample(&full, root, tags, file)
            }
            b"type" => {
                if body.first().map(|b| b.0) != Some(b'@') {
                    return Err(at(
                        body.first().map_or(start, |b| b.1),
                        "user-defined type name must start with '@'".into(),
                    ));
                }
                let colon = body
                    .iter()
                    .position(|(c, _)| *c == b':')
                    .ok_or_else(|| at(start, "missing ':' after type name".into()))?;
                if let Some((_, p)) = body[..colon].iter().find(|(c, _)| is_space(*c)) {
                    return Err(at(
                        *p,
                        "user-defined type name must not contain whitespace".into(),
                    ));
                }
                let name = String::from_utf8_lossy(&bytes_of(&body[..colon])).into_owned();
                let sample = &body[colon + 1..];
                if sample.is_empty() {
                    return Err(at(
                        start,
                        "actual message sample part is missing in type definition".into(),
                    ));
                }
                let root = self.c.graph.type_root(&name);
                self.add_sample(sample, root, None, file)
            }
            b"annotate" => self.annotate(body, file, start),
            b"include" => {
                if self.depth >= MAX_INCLUDE_DEPTH {
                    return Err(at(
                        start,
                        "includes nested too deeply (include cycle?)".into(),
                    ));
                }
                let raw = String::from_utf8_lossy(&bytes_of(body))
                    .trim_end()
                    .to_string();
                let mut path = PathBuf::from(&raw);
                if path.is_relative() {
                    if let Some(dir) = base_dir {
                        path = dir.join(path);
                    }
                }
                let saved_prefix = std::mem::take(&mut self.prefix);
                self.depth += 1;
                let r = self.load_file(&path).map_err(|mut e| {
                    if e.line == 0 {
                        e = at(start, format!("cannot include '{raw}': {}", e.message));
                    }
                    e
                });
                self.depth -= 1;
                self.prefix = saved_prefix;
                r
            }
            other => Err(at(
                start,
                format!("invalid record type '{}'", String::from_utf8_lossy(other)),
            )),
        }
    }

    /// `annotate=tag:+field="value" +field2="value2"`.
    fn annotate(
        &mut self,
        body: &[(u8, Pos)],
        file: &str,
        start: Pos,
    ) -> Result<(), RulebaseError> {
        let b = bytes_of(body);
        let pos = |i: usize| body.get(i).map_or(start, |p| p.1);
        let err =
            |i: usize, m: &str| RulebaseError::new(file, pos(i).line, pos(i).col, m.to_string());
        let name_char = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'.';
        let mut i = 0;
        while i < b.len() && name_char(b[i]) {
            i += 1;
        }
        let tag = String::from_utf8_lossy(&b[..i]).into_owned();
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        if tag.is_empty() || b.get(i) != Some(&b':') {
            return Err(err(i, "invalid tag field in annotation"));
        }
        i += 1;
        let mut ops = Vec::new();
        loop {
            while i < b.len() && is_space(b[i]) {
                i += 1;
            }
            if i >= b.len() || b[i] == b'#' {
                break;
            }
            if b[i] != b'+' {
                return Err(err(
                    i,
                    &format!("invalid annotate operation '{}'", b[i] as char),
                ));
            }
            i += 1;
            let ns = i;
            while i < b.len() && name_char(b[i]) {
                i += 1;
            }
            let name = String::from_utf8_lossy(&b[ns..i]).into_owned();
            if name.is_empty() || b.get(i) != Some(&b'=') {
                return Err(err(i, "annotate operation needs +name=\"value\""));
            }
            i += 1;
            while i < b.len() && is_space(b[i]) {
                i += 1;
            }
            if b.get(i) != Some(&b'"') {
                return Err(err(i, "annotation value must be quoted"));
            }
            i += 1;
            let vs = i;
            while i < b.len() && b[i] != b'"' {
                i += 1;
            }
            ops.push((name, String::from_utf8_lossy(&b[vs..i]).into_owned()));
            i = (i + 1).min(b.len());
        }
        // liblognorm prepends each operation, so the last one written is applied first
        let entry = self.c.annotations.entry(tag).or_default();
        for (name, value) in ops {
            entry.insert(0, (KeyText::new(&name), value));
        }
        Ok(())
    }

    /// Add one rule or type sample to the graph starting at `root` (`addSampToTree`).
    fn add_sample(
        &mut self,
        rule: &[(u8, Pos)],
        root: NodeId,
        tags: Option<Arc<[String]>>,
        file: &str,
    ) -> Result<(), RulebaseError> {
        let mut dag = root;
        let mut i = 0;
        let end_pos = rule.last().map_or(Pos { line: 0, col: 0 }, |r| Pos {
            line: r.1.line,
            col: r.1.col + 1,
        });
        let pos = |i: usize| rule.get(i).map_or(end_pos, |r| r.1);
        let err = |p: Pos, m: String| RulebaseError::new(file, p.line, p.col, m);
        while i < rule.len() {
            // literal text up to the next field start; "%%" is a literal '%'
            let mut lit = Vec::new();
            while i < rule.len() {
                if rule[i].0 == b'%' {
                    if i + 1 < rule.len() && rule[i + 1].0 != b'%' {
                        break;
                    }
                    i += 1;
                    if i == rule.len() {
                        break;
                    }
                }
                lit.push(rule[i].0);
                i += 1;
            }
            for c in unescape(&lit) {
                self.c
                    .graph
                    .add_literal_char(&mut dag, c)
                    .map_err(|m| err(pos(i), m))?;
            }
            if i < rule.len() {
                let field_pos = pos(i);
                let (conf, next, type_pos) =
                    parse_field(rule, i).map_err(|(p, m)| err(p.unwrap_or(field_pos), m))?;
                self.c
                    .graph
                    .add_parser(&mut dag, &conf)
                    .map_err(|m| err(type_pos.unwrap_or(field_pos), m))?;
                i = next;
            }
        }
        self.c.graph.mark_terminal(dag, tags);
        Ok(())
    }
}

/// Does the text after an unterminated field line look like a new rule? liblognorm
/// drops such a rule as a "runaway rule"; we report it.
fn runaway_rule(rest: &[u8]) -> bool {
    for line in rest.split(|c| *c == b'\n') {
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        return line.starts_with(b"rule=");
    }
    false
}

fn bytes_of(r: &[(u8, Pos)]) -> Vec<u8> {
    r.iter().map(|(c, _)| *c).collect()
}

type FieldParse = (Value, usize, Option<Pos>);

/// Parse the field description starting at the '%' at `start`. Returns the parser
/// configuration, the offset after the closing '%', and the position of the type name.
fn parse_field(rule: &[(u8, Pos)], start: usize) -> Result<FieldParse, (Option<Pos>, String)> {
    let b = bytes_of(rule);
    let pos = |i: usize| rule.get(i).map(|r| r.1);
    let mut i = start + 1;
    while i < b.len() && is_space(b[i]) {
        i += 1;
    }
    if i < b.len() && (b[i] == b'{' || b[i] == b'[') {
        let (v, n) =
            json_prefix(&b[i..]).ok_or((pos(i), "invalid json in field definition".to_string()))?;
        let j = i + n;
        if b.get(j) != Some(&b'%') {
            return Err((
                pos(j.min(b.len().saturating_sub(1))),
                "field definition must end with '%' after the json".into(),
            ));
        }
        return Ok((v, j + 1, pos(i)));
    }
    // legacy: name ':' type [ '{' json '}' ] [ ':' extradata ] '%'
    let ns = i;
    while i < b.len() && b[i] != b':' {
        i += 1;
    }
    if i == b.len() {
        return Err((
            pos(ns),
            "field definition wrong (missing ':' after the name)".into(),
        ));
    }
    if i == ns {
        return Err((pos(ns), "field name is empty".into()));
    }
    let name = String::from_utf8_lossy(&b[ns..i]).into_owned();
    i += 1;
    let ts = i;
    while i < b.len() && !matches!(b[i], b':' | b'{' | b'%') {
        i += 1;
    }
    let mut te = i;
    while te > ts && is_space(b[te - 1]) {
        te -= 1;
    }
    if i == b.len() {
        return Err((pos(ts), "premature end of field (missing '%'?)".into()));
    }
    let ftype = String::from_utf8_lossy(&b[ts..te]).into_owned();
    let mut params: Option<Map<String, Value>> = None;
    if b[i] == b'{' {
        let (v, n) =
            json_prefix(&b[i..]).ok_or((pos(i), "invalid json in field parameters".to_string()))?;
        match v {
            Value::Object(m) => params = Some(m),
            _ => return Err((pos(i), "field parameters must be a json object".into())),
        }
        i += n;
    }
    let mut extradata = None;
    if b.get(i) == Some(&b'%') {
        i += 1;
    } else {
        i += 1;
        let es = i;
        while i < b.len() && b[i] != b'%' {
            i += 1;
        }
        extradata = Some(String::from_utf8_lossy(&unescape(&b[es.min(i)..i])).into_owned());
        i = (i + 1).min(b.len());
    }
    let mut conf = Map::new();
    conf.insert("name".into(), Value::String(name));
    conf.insert("type".into(), Value::String(ftype));
    if let Some(ed) = extradata {
        conf.insert("extradata".into(), Value::String(ed));
    }
    if let Some(p) = params {
        conf.extend(p);
    }
    Ok((Value::Object(conf), i, pos(ts)))
}

/// One JSON value at the start of `b` and the bytes it used (plus trailing whitespace,
/// as json-c's tokener consumes it).
fn json_prefix(b: &[u8]) -> Option<(Value, usize)> {
    let mut it = serde_json::Deserializer::from_slice(b).into_iter::<Value>();
    let v = it.next()?.ok()?;
    let mut n = it.byte_offset();
    while n < b.len() && is_space(b[n]) {
        n += 1;
    }
    Some((v, n))
}

/// libestr's `es_unescapeStr`: C escapes (`\n`, `\t`, `\\`, `\xHH`, ...); unknown
/// escapes are kept verbatim.
pub(crate) fn unescape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] != b'\\' || i + 1 == s.len() {
            out.push(s[i]);
            i += 1;
            continue;
        }
        let c = s[i + 1];
        let rep = match c {
            b'0' => Some(0),
            b'a' => Some(7),
            b'b' => Some(8),
            b'f' => Some(12),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(11),
            b'\'' | b'"' | b'?' | b'\\' => Some(c),
            b'x' if i + 3 < s.len() + 1
                && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
                && s.get(i + 3).is_some_and(u8::is_ascii_hexdigit) =>
            {
                let hex = std::str::from_utf8(&s[i + 2..i + 4])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(h) = hex {
                    out.push(h);
                    i += 4;
                    continue;
                }
                None
            }
            _ => None,
        };
        match rep {
            Some(r) => {
                out.push(r);
                i += 2;
            }
            None => {
                out.push(b'\\');
                i += 1;
            }
        }
    }
    out
}
