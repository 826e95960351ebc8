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
//! A malformed rulebase is reported as `file:line:column: message` with exit code 1.

use meniscus_rulebase::Rulebase;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!("usage: meniscus-lognorm (-r RULEBASE | -b BUILTIN) [-T] [-p | -P] [-e json] < lines");
    eprintln!("built-in rulebases: {}", Rulebase::builtin_names().join(", "));
    ExitCode::from(1)
}

fn main() -> ExitCode {
    let mut rb_path: Option<PathBuf> = None;
    let mut builtin: Option<String> = None;
    let (mut tags, mut only_parsed, mut only_unparsed) = (false, false, false);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        // accept both "-r file" and lognormalizer's glued "-rfile"
        let (flag, glued) = if a.len() > 2 && a.starts_with('-') { (a[..2].to_string(), Some(a[2..].to_string())) } else { (a.clone(), None) };
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
    let mut input = stdin.lock();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut line = Vec::new();
    let mut buf = String::new();
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
        let text = String::from_utf8_lossy(&line);
        buf.clear();
        let matched = rb.normalize_to_json(&text, tags, &mut buf);
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
    ExitCode::SUCCESS
}
