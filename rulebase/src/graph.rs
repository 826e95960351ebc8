//! The parse graph (liblognorm's "pdag") and the matcher that walks it.
//!
//! Rules are added one parser at a time; a parser that already exists on a node (same
//! type and configuration) is reused, so rules share their common prefixes. Literal text
//! is added one character per edge and compacted into multi-character literals by
//! [`Graph::optimize`], exactly as liblognorm does: that affects how far a failed match
//! got, which is reported as `unparsed-data`, so the shape must match liblognorm's.
//!
//! Matching is depth first: at each node the edges are tried in priority order, and the
//! first edge whose subtree reaches a terminal node wins (no longest-match search). The
//! furthest offset any successful parser reached is tracked for `unparsed-data`; custom
//! types and `repeat` reuse that same bookkeeping, as liblognorm does.

use crate::fields::{self, base_prio, Field, Key, KeyText, NodeId, Out};
use serde_json::{Map, Value};
use std::sync::Arc;

const DEFAULT_USER_PRIO: i64 = 30000;

pub(crate) struct Edge {
    pub(crate) field: Field,
    /// `None` for unnamed (`-`) fields, whose value is discarded.
    pub(crate) name: Option<KeyText>,
    pub(crate) prio: i64,
    pub(crate) next: NodeId,
    /// Canonical configuration, used while building to merge identical parsers.
    key: String,
}

#[derive(Default)]
pub(crate) struct Node {
    pub(crate) edges: Vec<Edge>,
    pub(crate) terminal: bool,
    pub(crate) tags: Option<Arc<[String]>>,
}

/// Fields collected during a match, in liblognorm's insertion order (deepest first).
/// Values stay as `Out` recipes (mostly spans of the line) so that rendering JSON
/// straight from the line needs no intermediate string allocation.
pub(crate) use crate::fields::Fields;

#[derive(Default)]
pub(crate) struct Graph {
    pub(crate) nodes: Vec<Node>,
    /// User-defined types (`type=@name:...`): name (with '@') and root node.
    pub(crate) types: Vec<(String, NodeId)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Seq,
    Alt,
}

impl Graph {
    pub(crate) fn new_node(&mut self) -> NodeId {
        self.nodes.push(Node::default());
        (self.nodes.len() - 1) as NodeId
    }

    fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize]
    }

    fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[id as usize]
    }

    pub(crate) fn mark_terminal(&mut self, id: NodeId, tags: Option<Arc<[String]>>) {
        let n = self.node_mut(id);
        n.terminal = true;
        n.tags = tags;
    }

    pub(crate) fn find_type(&self, name: &str) -> Option<NodeId> {
        self.types
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| *id)
    }

    pub(crate) fn type_root(&mut self, name: &str) -> NodeId {
        if let Some(id) = self.find_type(name) {
            return id;
        }
        let id = self.new_node();
        self.types.push((name.to_string(), id));
        id
    }

    /// Add a single literal character edge from `*dag` and advance `*dag`.
    pub(crate) fn add_literal_char(&mut self, dag: &mut NodeId, c: u8) -> Result<(), String> {
        let mut conf = Map::new();
        conf.insert("type".into(), Value::from("literal"));
        conf.insert(
            "text".into(),
            Value::from(String::from_utf8_lossy(&[c]).into_owned()),
        );
        let key = Value::Object(conf).to_string();
        let edge = Edge {
            field: Field::Literal(Box::new([c])),
            name: None,
            prio: (DEFAULT_USER_PRIO << 8) | 4,
            next: 0,
            key,
        };
        let mut next = None;
        self.insert_edge(*dag, edge, &mut next);
        *dag = next.ok_or("internal error: literal edge without node")?;
        Ok(())
    }

    /// Add a parser configuration (object, sequence array, or alternative) after `*dag`
    /// and advance `*dag` to the node after it (liblognorm's `ln_pdagAddParser`).
    pub(crate) fn add_parser(&mut self, dag: &mut NodeId, conf: &Value) -> Result<(), String> {
        let mut next = None;
        self.add_internal(dag, Mode::Seq, conf, &mut next)
    }

    fn add_internal(
        &mut self,
        dag: &mut NodeId,
        mode: Mode,
        conf: &Value,
        next: &mut Option<NodeId>,
    ) -> Result<(), String> {
        match conf {
            Value::Object(obj) => {
                if obj.get("type").and_then(Value::as_str) == Some("alternative") {
                    let Some(Value::Array(list)) = obj.get("parser") else {
                        return Err("alternative type needs array of parsers".into());
                    };
                    self.add_parsers(list, Mode::Alt, dag, next)
                } else {
                    self.add_instance(obj, *dag, next)?;
                    if mode == Mode::Seq {
                        *dag = next.ok_or("internal error: parser without node")?;
                    }
                    Ok(())
                }
            }
            Value::Array(list) => self.add_parsers(list, Mode::Seq, dag, next),
            other => Err(format!(
                "parser definition must be an object or array, not {other}"
            )),
        }
    }

    fn add_parsers(
        &mut self,
        list: &[Value],
        mode: Mode,
        pdag: &mut NodeId,
        p_next: &mut Option<NodeId>,
    ) -> Result<(), String> {
        if list.is_empty() {
            return Err("empty parser list".into());
        }
        let mut dag = *pdag;
        let mut next = *p_next;
        for item in list {
            match item {
                Value::Array(_) => {
                    let mut local = dag;
                    self.add_internal(&mut local, mode, item, &mut next)?;
                    if mode == Mode::Seq {
                        dag = local;
                    }
                }
                Value::Object(obj) => self.add_instance(obj, dag, &mut next)?,
                other => {
                    return Err(format!(
                        "parser definition must be an object or array, not {other}"
                    ))
                }
            }
            if mode == Mode::Seq {
                dag = next.ok_or("internal error: parser without node")?;
                *p_next = next;
                next = None;
            }
        }
        if mode != Mode::Seq {
            dag = next.ok_or("internal error: alternative without node")?;
        }
        *pdag = dag;
        Ok(())
    }

    fn add_instance(
        &mut self,
        conf: &Map<String, Value>,
        dag: NodeId,
        next: &mut Option<NodeId>,
    ) -> Result<(), String> {
        let edge = self.new_edge(conf)?;
        self.insert_edge(dag, edge, next);
        Ok(())
    }

    /// Reuse an identical parser on `dag` (walking the existing path) or add a new edge
    /// to `*next` (created if `None`).
    fn insert_edge(&mut self, dag: NodeId, mut edge: Edge, next: &mut Option<NodeId>) {
        if let Some(existing) = self.node(dag).edges.iter().find(|e| e.key == edge.key) {
            *next = Some(existing.next);
            return;
        }
        let target = match *next {
            Some(n) => n,
            None => self.new_node(),
        };
        *next = Some(target);
        edge.next = target;
        self.node_mut(dag).edges.push(edge);
    }

    fn new_edge(&mut self, conf: &Map<String, Value>) -> Result<Edge, String> {
        let key = Value::Object(conf.clone()).to_string();
        let type_name = match conf.get("type") {
            Some(Value::String(t)) => t.as_str(),
            _ => return Err(format!("parser type missing in config: {key}")),
        };
        let name = match conf.get("name") {
            None => None,
            Some(Value::String(n)) if n == "-" => None,
            Some(Value::String(n)) => Some(KeyText::new(n)),
            Some(other) => Some(KeyText::new(&other.to_string())),
        };
        let user_prio = match conf.get("priority") {
            None => DEFAULT_USER_PRIO,
            Some(v) => v
                .as_i64()
                .ok_or_else(|| format!("priority must be an integer, not {v}"))?,
        };
        let mut params = conf.clone();
        params.remove("type");
        params.remove("name");
        params.remove("priority");
        let (field, base) = if let Some(stripped) = type_name.strip_prefix('@') {
            let _ = stripped;
            let idx = self
                .types
                .iter()
                .position(|(n, _)| n == type_name)
                .ok_or_else(|| format!("unknown user-defined type \"{type_name}\""))?;
            (Field::Custom(idx), 16)
        } else if type_name == "repeat" {
            (self.new_repeat(&params)?, 4)
        } else {
            let base = base_prio(type_name)
                .ok_or_else(|| format!("unknown field type \"{type_name}\""))?;
            (fields::construct(type_name, &params)?, base)
        };
        Ok(Edge {
            field,
            name,
            prio: ((user_prio << 8) & 0xffff_ff00) | base as i64,
            next: 0,
            key,
        })
    }

    fn new_repeat(&mut self, params: &Map<String, Value>) -> Result<Field, String> {
        let (mut parser, mut while_cond, mut permit) = (None, None, false);
        for (k, v) in params {
            if k == "parser" || k == "while" {
                let root = self.new_node();
                let mut end = root;
                self.add_parser(&mut end, v)?;
                self.node_mut(end).terminal = true;
                if k == "parser" {
                    parser = Some(root);
                } else {
                    while_cond = Some(root);
                }
            } else if k.eq_ignore_ascii_case("option.permitMismatchInParser") {
                permit = v.as_bool().unwrap_or(false);
            } else if k != "extradata" {
                return Err(format!("invalid param for repeat: {k}"));
            }
        }
        match (parser, while_cond) {
            (Some(parser), Some(while_cond)) => Ok(Field::Repeat {
                parser,
                while_cond,
                permit_mismatch: permit,
            }),
            _ => Err("repeat parser needs 'parser','while' parameters".into()),
        }
    }

    /// Sort edges by priority and compact literal chains, for the main graph and each
    /// user-defined type (liblognorm does not optimize `repeat` sub-graphs, so neither do
    /// we: their edges stay in definition order).
    pub(crate) fn optimize(&mut self, root: NodeId) {
        let mut visited = vec![false; self.nodes.len()];
        let roots: Vec<NodeId> = self
            .types
            .iter()
            .map(|(_, id)| *id)
            .chain(std::iter::once(root))
            .collect();
        for r in roots {
            let mut stack = vec![r];
            while let Some(id) = stack.pop() {
                if std::mem::replace(&mut visited[id as usize], true) {
                    continue;
                }
                // stable, so equal priorities keep definition order (as glibc's qsort,
                // a merge sort, does for liblognorm)
                self.node_mut(id).edges.sort_by_key(|e| e.prio);
                for i in 0..self.node(id).edges.len() {
                    self.compact_literal_path(id, i);
                    stack.push(self.node(id).edges[i].next);
                }
            }
        }
    }

    /// Merge a literal edge with following single literal edges ("a" -> "b" -> "c"
    /// becomes "abc"), stopping at nodes that end a rule or branch (liblognorm 2.0.6
    /// behaves this way, as observed: a terminal node or a named literal ends the run).
    fn compact_literal_path(&mut self, id: NodeId, i: usize) {
        loop {
            let edge = &self.node(id).edges[i];
            let Field::Literal(_) = edge.field else {
                return;
            };
            let child = self.node(edge.next);
            // named literals keep their own edge so their value is the literal alone
            if child.edges.len() != 1
                || child.terminal
                || edge.name.is_some()
                || child.edges[0].name.is_some()
            {
                return;
            }
            let Field::Literal(add) = &child.edges[0].field else {
                return;
            };
            let (add, new_next) = (add.clone(), child.edges[0].next);
            let edge = &mut self.node_mut(id).edges[i];
            if let Field::Literal(lit) = &mut edge.field {
                let mut v = lit.to_vec();
                v.extend_from_slice(&add);
                *lit = v.into_boxed_slice();
            }
            edge.next = new_next;
        }
    }
}

/// Mutable state of one match: the line and the furthest offset reached.
pub(crate) struct Matcher<'g, 's> {
    pub(crate) g: &'g Graph,
    /// The line, and the same as bytes (what the field parsers work on).
    pub(crate) line: &'s str,
    pub(crate) s: &'s [u8],
    pub(crate) parsed_to: usize,
}

impl<'g> Matcher<'g, '_> {
    /// liblognorm's `ln_normalizeRec`: returns the terminal node reached, if any.
    pub(crate) fn rec(
        &mut self,
        node: NodeId,
        offs: usize,
        partial: bool,
        out: &mut Fields<'g>,
    ) -> Option<NodeId> {
        let g = self.g;
        let n = g.node(node);
        let mut r = None;
        let mut parsed_to = self.parsed_to;
        if offs <= self.s.len() {
            for e in n.edges.iter() {
                let saved = self.parsed_to;
                let res = self.try_edge(e, offs);
                self.parsed_to = saved;
                // look at the value only after the recursion: moving it out right away
                // made the compiler copy it with wide loads straight after the parser's
                // narrow stores (a store-forwarding stall that cost ~10% of all time)
                if let Some(consumed) = res.as_ref().map(|r| r.0) {
                    parsed_to = offs.wrapping_add(consumed);
                    r = self.rec(e.next, parsed_to, partial, out);
                    if r.is_some() {
                        if let Some((_, val)) = res {
                            add_field(out, e, val, self.line);
                        }
                    }
                }
                if parsed_to > self.parsed_to {
                    self.parsed_to = parsed_to;
                }
                if r.is_some() {
                    break;
                }
            }
        }
        // even after a child matched, a terminal node at the end of input becomes the
        // end node (liblognorm overrides it the same way)
        if n.terminal && (offs == self.s.len() || partial) {
            r = Some(node);
        }
        r
    }

    #[inline]
    fn try_edge(&mut self, e: &'g Edge, offs: usize) -> Option<(usize, Out<'g>)> {
        match &e.field {
            Field::Custom(idx) => {
                let root = self.g.types.get(*idx)?.1;
                let mut inner = Fields::new();
                let r = self.rec(root, offs, true, &mut inner);
                // liblognorm takes the furthest offset reached inside the type as its end
                let consumed = self.parsed_to.wrapping_sub(offs);
                r.map(|_| (consumed, Out::Fields(inner)))
            }
            Field::Repeat {
                parser,
                while_cond,
                permit_mismatch,
            } => self.repeat(offs, *parser, *while_cond, *permit_mismatch),
            f => fields::parse(f, self.s, offs),
        }
    }

    fn repeat(
        &mut self,
        offs: usize,
        parser: NodeId,
        while_cond: NodeId,
        permit: bool,
    ) -> Option<(usize, Out<'g>)> {
        let mut strt = offs;
        let mut last_good = offs;
        let mut arr: Option<Vec<Value>> = None;
        loop {
            let mut inner = Fields::new();
            let r = self.rec(parser, strt, true, &mut inner);
            strt = self.parsed_to;
            if r.is_none() {
                if permit {
                    strt = last_good;
                    break;
                }
                return None;
            }
            let mut map = fields::fields_to_map(inner, self.line);
            let item = match map.remove(".") {
                Some(v) => v,
                None => Value::Object(map),
            };
            arr.get_or_insert_with(Vec::new).push(item);
            self.parsed_to = 0;
            last_good = strt;
            let mut ignored = Fields::new();
            if self.rec(while_cond, strt, true, &mut ignored).is_some() {
                strt = self.parsed_to;
            } else {
                break;
            }
        }
        let val = arr.map_or(Value::Null, Value::Array);
        Some((strt.wrapping_sub(offs), Out::Value(Box::new(val))))
    }
}

/// liblognorm's `fixJSON`: unnamed values are dropped, `.` merges an object's members
/// into the enclosing object, anything else is added under its name.
fn add_field<'g>(out: &mut Fields<'g>, e: &'g Edge, val: Out<'g>, line: &str) {
    let Some(kt) = e.name.as_ref() else { return };
    let (name, key) = (&*kt.name, Key::Rule(kt));
    if name == "." {
        match val {
            Out::Fields(inner) => {
                for (k, v) in inner {
                    set_field(out, k, v);
                }
                return;
            }
            Out::Value(v) if v.is_object() => {
                let Value::Object(obj) = *v else {
                    unreachable!("checked is_object")
                };
                for (k, v) in obj {
                    set_field(out, Key::Owned(k.into()), Out::Value(Box::new(v)));
                }
                return;
            }
            Out::Iptables {
                start: a, end: b, ..
            } => {
                fields::structured::iptables_pairs(line.as_bytes(), a, b, |n, v| {
                    let v = v.map_or(Out::Null, |(va, vb)| Out::Span(va, vb));
                    set_field(out, Key::Owned(fields::span_str(line, n.0, n.1).into()), v);
                });
                return;
            }
            val => {
                out.push((key, val));
                return;
            }
        }
    }
    out.push((key, val));
}

/// json-c `json_object_object_add`: replace in place if present, else append.
pub(crate) fn set_field<'g>(out: &mut Fields<'g>, k: Key<'g>, v: Out<'g>) {
    if let Some(slot) = out.iter_mut().find(|(ek, _)| ek.name() == k.name()) {
        slot.1 = v;
    } else {
        out.push((k, v));
    }
}
