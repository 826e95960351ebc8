//! How much of a log file a rulebase understands: the share of lines matched, per rulebase
//! and per input file, and the most common shapes of the lines it missed — what a user runs
//! on their own logs before writing rules (`meniscus-lognorm --coverage`).
//!
//! Lines are either bare messages (the syslog MSG, what the pipeline normalizes) or whole
//! RFC 3164 lines as `/var/log/auth.log` holds them; for those the header is cut off and the
//! program name picks the built-in rulebase ([`builtin_for_program`]).

use crate::Rulebase;
use std::collections::HashMap;

/// Matched and unmatched lines of one rulebase over one input.
#[derive(Debug, Default, Clone)]
pub struct Coverage {
    pub lines: u64,
    pub matched: u64,
    /// Unmatched lines by [`shape`], with how often each shape occurred.
    pub unmatched_shapes: HashMap<String, u64>,
}

impl Coverage {
    /// Normalizes `message` with `rulebase` and counts the result.
    pub fn add(&mut self, rulebase: &Rulebase, message: &str) {
        self.lines += 1;
        if rulebase.normalize(message).matched {
            self.matched += 1;
        } else {
            *self.unmatched_shapes.entry(shape(message)).or_default() += 1;
        }
    }

    /// Matched lines as a share of all lines, 0.0 to 1.0 (1.0 for no lines).
    pub fn share(&self) -> f64 {
        if self.lines == 0 {
            1.0
        } else {
            self.matched as f64 / self.lines as f64
        }
    }

    /// The `n` most common unmatched shapes, most common first (ties by text, so the
    /// report is stable).
    pub fn top_unmatched(&self, n: usize) -> Vec<(&str, u64)> {
        let mut shapes: Vec<(&str, u64)> = self
            .unmatched_shapes
            .iter()
            .map(|(shape, count)| (shape.as_str(), *count))
            .collect();
        shapes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        shapes.truncate(n);
        shapes
    }
}

/// The shape of a line, for grouping the lines a rulebase missed: IPv4 addresses become
/// `IP`, runs of hex digits containing a digit become `N` (numbers, pids, queue ids, hashes),
/// and the result is cut at 120 characters. Two lines with the same shape usually need
/// the same rule.
pub fn shape(line: &str) -> String {
    let mut out = String::with_capacity(line.len().min(128));
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() && out.len() < 120 {
        let start = i;
        if bytes[i].is_ascii_alphanumeric() {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                i += 1;
            }
            let token = &line[start..i];
            let token = token.trim_end_matches('.');
            i = start + token.len();
            if is_ipv4(token) {
                out.push_str("IP");
            } else if token.bytes().any(|b| b.is_ascii_digit())
                && token.bytes().all(|b| b.is_ascii_hexdigit() || b == b'.')
            {
                // numbers, versions, pids, queue ids, hashes
                out.push('N');
            } else {
                out.push_str(token);
            }
            if i == start {
                // a lone '.' after a dot-trimmed token: copy it
                out.push('.');
                i += 1;
            }
        } else {
            let c = line[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    if i < bytes.len() {
        out.push('…');
    }
    out
}

fn is_ipv4(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Splits an RFC 3164 line (`Mmm dd hh:mm:ss host prog[pid]: msg`, also with an RFC 3339
/// stamp) into its program name and message. `None` when the line has no such header.
pub fn split_syslog(line: &str) -> Option<(&str, &str)> {
    let rest = skip_stamp(line)?;
    // host
    let (_, rest) = rest.split_once(' ')?;
    // tag: up to ": " (the pid in brackets is part of it)
    let (tag, message) = rest.split_once(": ")?;
    if tag.is_empty() || tag.contains(' ') {
        return None;
    }
    let program = tag.split_once('[').map_or(tag, |(program, _)| program);
    Some((program, message))
}

fn skip_stamp(line: &str) -> Option<&str> {
    let bytes = line.as_bytes();
    // RFC 3339: 2026-12-02T07:13:57.123Z host ...
    if bytes.len() > 20 && bytes[4] == b'-' && bytes[10] == b'T' {
        return line.split_once(' ').map(|(_, rest)| rest);
    }
    // Mmm dd hh:mm:ss (the day padded with a space or not)
    if bytes.len() < 16 || !bytes[..3].iter().all(u8::is_ascii_alphabetic) || bytes[3] != b' ' {
        return None;
    }
    let rest = line[4..].trim_start_matches(' ');
    let (day, rest) = rest.split_once(' ')?;
    let (time, rest) = rest.split_once(' ')?;
    (day.bytes().all(|b| b.is_ascii_digit()) && time.len() == 8 && time.as_bytes()[2] == b':')
        .then_some(rest)
}

/// The built-in rulebase for a syslog program name: the name itself (`sshd`, `sudo`,
/// `su`, `kernel`, ...), lower-cased, without a `(module)` suffix (`sshd(pam_unix)`) or a
/// `/` part (`postfix/smtpd`), and a few usual aliases (`CRON`, `crond` → `cron`,
/// `systemd-logind` → `systemd`, `httpd`/`apache2` → `apache-error`, `nginx` →
/// `nginx-error`). `None` when no built-in has that name.
pub fn builtin_for_program(program: &str) -> Option<&'static str> {
    let base = program.split('(').next().unwrap_or(program);
    let base = base.split('/').next().unwrap_or(base).to_ascii_lowercase();
    let name = match base.as_str() {
        "cron" | "crond" | "anacron" => "cron",
        "systemd-logind" => "systemd",
        "httpd" | "apache2" | "apache" => "apache-error",
        "nginx" => "nginx-error",
        other if other.starts_with("%asa-") => "cisco-asa",
        other => other,
    };
    Rulebase::builtin_names()
        .iter()
        .copied()
        .find(|builtin| *builtin == name)
}

/// `meniscus-lognorm --coverage [--syslog] [-b NAME | -r FILE] [--top N] FILE...`:
/// prints, per input file and rulebase, the lines seen, matched and their share, then the
/// most common unmatched shapes. With `--syslog` the lines are whole syslog lines: the
/// header is cut off and, without `-b`/`-r`, each line goes to the built-in named after its
/// program (lines of other programs are counted under "no rulebase").
pub fn cli(args: &[String], out: &mut dyn std::io::Write) -> Result<(), String> {
    let mut syslog = false;
    let mut top = 10usize;
    let mut chosen: Option<(String, Rulebase)> = None;
    let mut files = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--syslog" => syslog = true,
            "--top" => {
                top = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .ok_or("--top needs a number")?
            }
            "-b" => {
                let name = args.next().ok_or("-b needs a built-in name")?;
                let rulebase = Rulebase::builtin(name).ok_or_else(|| {
                    format!(
                        "unknown built-in rulebase '{name}' (built-ins: {})",
                        Rulebase::builtin_names().join(", ")
                    )
                })?;
                chosen = Some((name.clone(), rulebase));
            }
            "-r" => {
                let path = args.next().ok_or("-r needs a rulebase file")?;
                let rulebase =
                    Rulebase::load(std::path::Path::new(path)).map_err(|e| e.to_string())?;
                chosen = Some((path.clone(), rulebase));
            }
            file => files.push(file.to_string()),
        }
    }
    if files.is_empty() || (chosen.is_none() && !syslog) {
        return Err(
            "usage: meniscus-lognorm --coverage [--syslog] [-b NAME | -r FILE] [--top N] FILE...\n\
             (without -b or -r, --syslog picks the built-in by each line's program)"
                .into(),
        );
    }
    let builtins: HashMap<&str, Rulebase> = if chosen.is_none() {
        Rulebase::builtin_names()
            .iter()
            .filter_map(|name| Some((*name, Rulebase::builtin(name)?)))
            .collect()
    } else {
        HashMap::new()
    };
    let write = |out: &mut dyn std::io::Write, text: String| {
        out.write_all(text.as_bytes()).map_err(|e| e.to_string())
    };
    for file in &files {
        let text = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
        let text = String::from_utf8_lossy(&text);
        // rulebase name -> coverage; programs seen per rulebase
        let mut results: Vec<(String, Coverage, Vec<String>)> = Vec::new();
        let mut unrouted: HashMap<String, u64> = HashMap::new();
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if line.is_empty() {
                continue;
            }
            let (program, message) = if syslog {
                match split_syslog(line) {
                    Some((program, message)) => (Some(program), message),
                    None => (None, line),
                }
            } else {
                (None, line)
            };
            let (name, rulebase) = match (&chosen, program) {
                (Some((name, rulebase)), _) => (name.as_str(), rulebase),
                (None, Some(program)) => match builtin_for_program(program)
                    .and_then(|name| Some((name, builtins.get(name)?)))
                {
                    Some(found) => found,
                    None => {
                        *unrouted.entry(program.to_string()).or_default() += 1;
                        continue;
                    }
                },
                (None, None) => {
                    *unrouted.entry("(no syslog header)".into()).or_default() += 1;
                    continue;
                }
            };
            let index = match results.iter().position(|(n, ..)| n == name) {
                Some(index) => index,
                None => {
                    results.push((name.to_string(), Coverage::default(), Vec::new()));
                    results.len() - 1
                }
            };
            let (_, coverage, programs) = &mut results[index];
            coverage.add(rulebase, message);
            if let Some(program) = program {
                if !programs.iter().any(|p| p == program) {
                    programs.push(program.to_string());
                }
            }
        }
        write(out, format!("{file}\n"))?;
        write(
            out,
            format!(
                "  {:<14} {:>8} {:>8} {:>7}  programs\n",
                "rulebase", "lines", "matched", "share"
            ),
        )?;
        for (name, coverage, programs) in &results {
            write(
                out,
                format!(
                    "  {:<14} {:>8} {:>8} {:>6.1}%  {}\n",
                    name,
                    coverage.lines,
                    coverage.matched,
                    coverage.share() * 100.0,
                    programs.join(",")
                ),
            )?;
        }
        if !unrouted.is_empty() {
            let mut unrouted: Vec<_> = unrouted.into_iter().collect();
            unrouted.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let total: u64 = unrouted.iter().map(|(_, n)| n).sum();
            let listed: Vec<String> = unrouted
                .iter()
                .take(top)
                .map(|(program, n)| format!("{program} {n}"))
                .collect();
            write(
                out,
                format!(
                    "  {:<14} {:>8}                   {}\n",
                    "no rulebase",
                    total,
                    listed.join(", ")
                ),
            )?;
        }
        for (name, coverage, _) in &results {
            let missed = coverage.top_unmatched(top);
            if missed.is_empty() {
                continue;
            }
            write(out, format!("  most common unmatched lines, {name}:\n"))?;
            for (shape, count) in missed {
                write(out, format!("    {count:>6}  {shape}\n"))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_group_lines_that_differ_only_in_numbers_and_addresses() {
        assert_eq!(
            shape("Received disconnect from 10.1.2.3: 11: Bye Bye [preauth]"),
            shape("Received disconnect from 192.168.0.77: 3: Bye Bye [preauth]")
        );
        assert_eq!(
            shape("Invalid user bob from 10.1.2.3 port 22."),
            "Invalid user bob from IP port N."
        );
        assert_eq!(shape("ABC123F: removed"), "N: removed");
        assert!(shape(&"x ".repeat(200)).ends_with('…'));
    }

    #[test]
    fn syslog_headers_are_split_into_program_and_message() {
        assert_eq!(
            split_syslog("Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster"),
            Some(("sshd", "Invalid user webmaster"))
        );
        assert_eq!(
            split_syslog("Jun  9 06:06:20 combo su(pam_unix)[2100]: session closed for user x"),
            Some(("su(pam_unix)", "session closed for user x"))
        );
        assert_eq!(
            split_syslog("2026-12-02T07:13:57Z host postfix/qmgr[9]: ABC: removed"),
            Some(("postfix/qmgr", "ABC: removed"))
        );
        assert_eq!(split_syslog("Accepted publickey for alice"), None);
    }

    #[test]
    fn programs_find_their_built_in() {
        assert_eq!(builtin_for_program("sshd"), Some("sshd"));
        assert_eq!(builtin_for_program("sshd(pam_unix)"), Some("sshd"));
        assert_eq!(builtin_for_program("postfix/smtpd"), Some("postfix"));
        assert_eq!(builtin_for_program("CRON"), Some("cron"));
        assert_eq!(builtin_for_program("gdm"), None);
    }
}
