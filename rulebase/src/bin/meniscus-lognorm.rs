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
//! of the liblognorm-order rendering. `--bench-api` calls `normalize()` for every line
//! and prints nothing but a count on stderr: it measures the API path for
//! `bench/normalizer/run.sh`.
//! A malformed rulebase is reported as `file:line:column: message` with exit code 1.

use meniscus_rulebase::Rulebase;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!("usage: meniscus-lognorm (-r RULEBASE | -b BUILTIN) [-T] [-p | -P] [-e json] [--api | --bench-api] < lines");
    eprintln!(
        "built-in rulebases: {}",
        Rulebase::builtin_names().join(", ")
    );
    ExitCode::from(1)
}

fn main() -> ExitCode {
    let mut rb_path: Option<PathBuf> = None;
    let mut builtin: Option<String> = None;
    let (mut tags, mut only_parsed, mut only_unparsed) = (false, false, false);
    let (mut api, mut bench_api) = (false, false);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        // accept both "-r file" and lognormalizer's glued "-rfile"
        match a.as_str() {
            "--api" => {
                api = true;
                continue;
            }
            "--bench-api" => {
                bench_api = true;
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
    let mut count = 0u64;
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
        if bench_api {
            let n = rb.normalize(&text);
            count += n.matched as u64;
            std::hint::black_box(n);
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
    if bench_api {
        eprintln!("meniscus-lognorm: normalize() matched {count} lines");
    }
    if out.flush().is_err() {
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
