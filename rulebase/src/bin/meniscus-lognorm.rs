//! `meniscus-lognorm`: test and debug rulebases, like liblognorm's `lognormalizer`.
//!
//! ```text
//! meniscus-lognorm -r rules.rb [-T] [-p|-P] < lines
//! ```
//!
//! Prints one JSON object per input line in lognormalizer's default JSON format (so the
//! outputs of both tools can be diffed): the extracted fields, or `originalmsg` and
//! `unparsed-data` when no rule matched. `-T` adds `event.tags`; `-p`/`-P` print only
//! matched/unmatched lines; `-b NAME` uses a built-in rulebase instead of `-r`.
//!
//! `--api` goes through [`Rulebase::normalize`] (the `serde_json::Map` the Meniscus
//! pipeline uses) and prints that map with serde_json (same values, keys sorted), instead
//! of the liblognorm-order rendering.
//!
//! Benchmark modes for `bench/normalizer/run.sh` do per line what the Meniscus pipeline
//! does for an event without earlier `normalized`/`tags` values, with the rulebase's name
//! (built-in name or file stem) as the pattern, and print nothing but a count on stderr:
//! `--bench-api` is the current path, [`Rulebase::normalize_json_into`] writing
//! `{"PATTERN":FIELDS}` into a reused buffer plus the rule's tags as a JSON array;
//! `--bench-map` is the earlier one, [`Rulebase::normalize`]'s `serde_json::Map` wrapped
//! in a map under the pattern and serialized with serde_json, tags likewise.
//! `--check-api` runs both and prints every line whose stored texts differ (exit code 1).
//!
//! `meniscus-lognorm --coverage [--syslog] [-b NAME | -r FILE] FILE...` prints the share of
//! lines each rulebase matches and the most common shapes of the lines it missed.
//! A malformed rulebase is reported as `file:line:column: message` with exit code 1.

use meniscus_rulebase::Rulebase;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!("usage: meniscus-lognorm (-r RULEBASE | -b BUILTIN) [-T] [-p | -P] [-e json] [--api | --bench-api | --bench-map | --check-api] < lines");
    eprintln!(
        "built-in rulebases: {}",
        Rulebase::builtin_names().join(", ")
    );
    ExitCode::from(1)
}

fn main() -> ExitCode {
    // `--coverage` is a mode of its own: see meniscus_rulebase::coverage::cli.
    if std::env::args().nth(1).as_deref() == Some("--coverage") {
        let args: Vec<String> = std::env::args().skip(2).collect();
        let stdout = std::io::stdout();
        return match meniscus_rulebase::coverage::cli(&args, &mut stdout.lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("meniscus-lognorm: {message}");
                ExitCode::from(1)
            }
        };
    }
    let mut rb_path: Option<PathBuf> = None;
    let mut builtin: Option<String> = None;
    let (mut tags, mut only_parsed, mut only_unparsed) = (false, false, false);
    let mut api = false;
    let mut bench_mode: Option<BenchMode> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        // accept both "-r file" and lognormalizer's glued "-rfile"
        match a.as_str() {
            "--api" => {
                api = true;
                continue;
            }
            "--bench-api" | "--bench-map" | "--check-api" => {
                bench_mode = Some(match a.as_str() {
                    "--bench-api" => BenchMode::Api,
                    "--bench-map" => BenchMode::Map,
                    _ => BenchMode::Check,
                });
                continue;
            }
            _ => {}
        }
        let (flag, glued) = if a.len() > 2 && a.starts_with('-') {
            (a[..2].to_string(), Some(a[2..].to_string()))
        } else {
            (a.clone(), None)
        };
        let mut value = || glued.clone().or_else(|| args.next());
        match flag.as_str() {
            "-r" => rb_path = value().map(PathBuf::from),
            "-b" => builtin = value(),
            "-e" => {
                if value().as_deref() != Some("json") {
                    eprintln!("meniscus-lognorm: only -e json is supported");
                    return ExitCode::from(1);
                }
            }
            "-T" => tags = true,
            "-p" => only_parsed = true,
            "-P" => only_unparsed = true,
            "-h" | "--help" => {
                usage();
                return ExitCode::SUCCESS;
            }
            _ => return usage(),
        }
    }
    let rb = match (rb_path, builtin) {
        (Some(p), None) => match Rulebase::load(&p) {
            Ok(rb) => rb,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(1);
            }
        },
        (None, Some(name)) => match Rulebase::builtin(&name) {
            Some(rb) => rb,
            None => {
                eprintln!("meniscus-lognorm: unknown built-in rulebase '{name}'");
                return ExitCode::from(1);
            }
        },
        _ => return usage(),
    };
    let stdin = std::io::stdin();
    // a large buffer: fewer read syscalls than the 8 KiB stdin buffer
    let mut input = std::io::BufReader::with_capacity(1 << 18, stdin.lock());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut line = Vec::new();
    let mut buf = String::new();
    let mut bench = bench_mode.map(|mode| Bench::new(mode, &rb));
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                eprintln!("meniscus-lognorm: read error: {e}");
                return ExitCode::from(1);
            }
        }
        // lognormalizer strips the trailing LF and CR
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        // validate first: the common all-valid case needs no lossy conversion pass
        let text = match std::str::from_utf8(&line) {
            Ok(t) => std::borrow::Cow::Borrowed(t),
            Err(_) => String::from_utf8_lossy(&line),
        };
        if let Some(bench) = bench.as_mut() {
            if bench.line(&rb, &text, &mut out).is_err() {
                return ExitCode::from(1);
            }
            continue;
        }
        buf.clear();
        let matched = if api {
            let n = rb.normalize(&text);
            let mut fields = n.fields;
            if tags && !n.tags.is_empty() {
                fields.insert(
                    "event.tags".into(),
                    n.tags.into_iter().map(serde_json::Value::String).collect(),
                );
            }
            buf.push_str(&serde_json::Value::Object(fields).to_string());
            n.matched
        } else {
            rb.normalize_to_json(&text, tags, &mut buf)
        };
        if (only_parsed && !matched) || (only_unparsed && matched) {
            continue;
        }
        buf.push('\n');
        if out.write_all(buf.as_bytes()).is_err() {
            return ExitCode::from(1);
        }
    }
    if out.flush().is_err() {
        return ExitCode::from(1);
    }
    match bench {
        Some(bench) => bench.finish(),
        None => ExitCode::SUCCESS,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BenchMode {
    /// `--bench-api`: the pipeline's current path.
    Api,
    /// `--bench-map`: the pipeline's earlier path, through `serde_json::Map`.
    Map,
    /// `--check-api`: both, compared.
    Check,
}

/// The pipeline's per-line work for the benchmark modes (see the module docs).
struct Bench {
    mode: BenchMode,
    pattern: String,
    /// `{"PATTERN":`, escaped by serde_json as the pipeline does it.
    prefix: String,
    /// The stored `normalized` text of the current line (reused buffer).
    json: String,
    /// The stored `tags` text of the current line; empty for none (stored as null).
    tags: String,
    lines: u64,
    matched: u64,
    differ: u64,
}

impl Bench {
    fn new(mode: BenchMode, rb: &Rulebase) -> Bench {
        let source = rb.source();
        let name = source.rsplit(['/', '\\', ':']).next().unwrap_or(source);
        let pattern = name.strip_suffix(".rb").unwrap_or(name).to_string();
        let prefix = format!(
            "{{{}:",
            serde_json::to_string(&pattern).expect("a string serializes")
        );
        Bench {
            mode,
            pattern,
            prefix,
            json: String::new(),
            tags: String::new(),
            lines: 0,
            matched: 0,
            differ: 0,
        }
    }

    /// `--bench-api`: the fields written straight into `{"PATTERN":` ... `}`, tags as a
    /// JSON array written with the serde_json-compatible escaper.
    fn api(&mut self, rb: &Rulebase, line: &str) -> bool {
        self.json.clear();
        self.json.push_str(&self.prefix);
        let result = rb.normalize_json_into(line, &mut self.json);
        self.json.push('}');
        self.tags.clear();
        if !result.tags.is_empty() {
            self.tags.push('[');
            for (i, tag) in result.tags.iter().enumerate() {
                if i > 0 {
                    self.tags.push(',');
                }
                meniscus_rulebase::push_json_string(&mut self.tags, tag);
            }
            self.tags.push(']');
        }
        result.matched
    }

    /// `--bench-map`: what the pipeline did before, `normalize()`'s map inserted into an
    /// object under the pattern and serialized, tags serialized as a `Vec<String>`.
    fn map(&self, rb: &Rulebase, line: &str) -> (bool, Option<String>, Option<String>) {
        let n = rb.normalize(line);
        let mut object = serde_json::Map::new();
        object.insert(self.pattern.clone(), serde_json::Value::Object(n.fields));
        let normalized = serde_json::to_string(&object).ok();
        let tags = if n.tags.is_empty() {
            None
        } else {
            serde_json::to_string(&n.tags).ok()
        };
        (n.matched, normalized, tags)
    }

    fn line(&mut self, rb: &Rulebase, line: &str, out: &mut impl Write) -> std::io::Result<()> {
        self.lines += 1;
        let matched = match self.mode {
            BenchMode::Api => {
                let matched = self.api(rb, line);
                std::hint::black_box((&self.json, &self.tags));
                matched
            }
            BenchMode::Map => std::hint::black_box(self.map(rb, line)).0,
            BenchMode::Check => {
                let matched = self.api(rb, line);
                let (map_matched, normalized, tags) = self.map(rb, line);
                let tags_api = (!self.tags.is_empty()).then_some(self.tags.as_str());
                if matched != map_matched
                    || normalized.as_deref() != Some(self.json.as_str())
                    || tags.as_deref() != tags_api
                {
                    self.differ += 1;
                    writeln!(out, "line {}: {line:?}", self.lines)?;
                    writeln!(out, "  map:  {normalized:?} tags {tags:?}")?;
                    writeln!(out, "  api:  {:?} tags {tags_api:?}", self.json)?;
                }
                matched
            }
        };
        self.matched += matched as u64;
        Ok(())
    }

    fn finish(self) -> ExitCode {
        let what = match self.mode {
            BenchMode::Api => "normalize_json_into()",
            BenchMode::Map => "normalize() + serde_json",
            BenchMode::Check => "check",
        };
        eprintln!(
            "meniscus-lognorm: {what}: {} lines, {} matched",
            self.lines, self.matched
        );
        if self.mode == BenchMode::Check {
            eprintln!(
                "meniscus-lognorm: stored text differs on {} of {} lines",
                self.differ, self.lines
            );
            if self.differ > 0 {
                return ExitCode::from(1);
            }
        }
        ExitCode::SUCCESS
    }
}
