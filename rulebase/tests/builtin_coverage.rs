//! The built-in rulebases against real logs and against their own samples.
//!
//! * Coverage floors on the loghub samples (`../shared/corpus/loghub/`, real logs from real
//!   systems, read in place and never copied into the project): the share of lines each
//!   built-in matches must not fall below what it reaches today.
//! * Every rule of every built-in is exercised by at least one line of its `.samples` file
//!   (the differential test then checks those lines against the real liblognorm).

use meniscus_rulebase::coverage::{builtin_for_program, split_syslog, Coverage};
use meniscus_rulebase::Rulebase;
use std::path::PathBuf;

fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// The loghub corpus: `MENISCUS_CORPUS` if set, else `shared/corpus/loghub` beside the
/// checkout, else the machine's shared folder. Missing is a failure, never a skip.
fn corpus() -> PathBuf {
    let workspace = manifest_dir().join("..");
    let candidates = [
        std::env::var_os("MENISCUS_CORPUS").map(PathBuf::from),
        Some(workspace.join("../shared/corpus/loghub")),
        Some(PathBuf::from("/work/shared/corpus/loghub")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|dir| dir.join("OpenSSH_2k.log").is_file())
        .expect(
            "the loghub corpus is needed for the coverage floors: set MENISCUS_CORPUS to the \
             folder holding OpenSSH_2k.log and Linux_2k.log",
        )
}

/// Coverage of one built-in over the lines of `file` whose program maps to it.
fn coverage_by_program(file: &str, builtin: &str) -> Coverage {
    let text = std::fs::read(corpus().join(file)).expect("read corpus file");
    let text = String::from_utf8_lossy(&text);
    let rulebase = Rulebase::builtin(builtin).expect("built-in");
    let mut coverage = Coverage::default();
    for line in text.lines() {
        if let Some((program, message)) = split_syslog(line) {
            if builtin_for_program(program) == Some(builtin) {
                coverage.add(&rulebase, message);
            }
        }
    }
    coverage
}

fn assert_floor(file: &str, builtin: &str, min_lines: u64, floor: f64) {
    let coverage = coverage_by_program(file, builtin);
    assert!(
        coverage.lines >= min_lines,
        "{file}: expected at least {min_lines} {builtin} lines, found {}",
        coverage.lines
    );
    assert!(
        coverage.share() >= floor,
        "{file}: {builtin} matches {}/{} lines ({:.1} %), the floor is {:.1} %; most common \
         unmatched: {:#?}",
        coverage.matched,
        coverage.lines,
        coverage.share() * 100.0,
        floor * 100.0,
        coverage.top_unmatched(10)
    );
}

#[test]
fn sshd_covers_the_openssh_sample() {
    assert_floor("OpenSSH_2k.log", "sshd", 2000, 0.95);
}

#[test]
fn sshd_covers_the_linux_sample_s_older_pam_lines() {
    assert_floor("Linux_2k.log", "sshd", 600, 0.95);
}

#[test]
fn su_covers_the_linux_sample() {
    assert_floor("Linux_2k.log", "su", 150, 0.95);
}

/// The Linux sample's kernel lines are nearly all 2004-era boot messages (ACPI, PCI,
/// SELinux), which the kernel rulebase leaves alone on purpose; the floor keeps what it
/// matches (version, command line, memory, CPU) from regressing.
#[test]
fn kernel_keeps_its_share_of_the_linux_sample() {
    assert_floor("Linux_2k.log", "kernel", 70, 0.13);
}

/// Apache's error log as written to its own file: no syslog header, every line a message.
#[test]
fn apache_error_covers_the_apache_sample() {
    let text = std::fs::read(corpus().join("Apache_2k.log")).expect("read corpus file");
    let text = String::from_utf8_lossy(&text);
    let rulebase = Rulebase::builtin("apache-error").expect("built-in");
    let mut coverage = Coverage::default();
    for line in text.lines().filter(|line| !line.is_empty()) {
        coverage.add(&rulebase, line);
    }
    assert!(coverage.lines >= 2000);
    assert!(
        coverage.share() >= 0.95,
        "apache-error matches {}/{}; most common unmatched: {:#?}",
        coverage.matched,
        coverage.lines,
        coverage.top_unmatched(10)
    );
}

/// Rules of a rulebase text, each with the definitions it may depend on (types,
/// annotations, prefixes) so it compiles alone.
fn rules_alone(text: &str) -> Vec<(String, String)> {
    let definitions: Vec<&str> = text
        .lines()
        .filter(|line| {
            line.starts_with("type=")
                || line.starts_with("annotate=")
                || line.starts_with("prefix=")
        })
        .collect();
    text.lines()
        .filter(|line| line.starts_with("rule="))
        .map(|rule| {
            let mut alone = String::from("version=2\n");
            for definition in &definitions {
                alone.push_str(definition);
                alone.push('\n');
            }
            alone.push_str(rule);
            alone.push('\n');
            (rule.to_string(), alone)
        })
        .collect()
}

#[test]
fn every_rule_of_every_builtin_has_a_sample_line() {
    let mut missing = Vec::new();
    for name in Rulebase::builtin_names() {
        let text = Rulebase::builtin_text(name).expect("built-in text");
        let samples_path = manifest_dir().join(format!("builtin/{name}.samples"));
        let samples = std::fs::read_to_string(&samples_path)
            .unwrap_or_else(|e| panic!("{}: {e}", samples_path.display()));
        let whole = Rulebase::builtin(name).expect("built-in compiles");
        for line in samples.lines().filter(|line| !line.is_empty()) {
            assert!(
                whole.normalize(line).matched,
                "{name}.samples: no rule of {name} matches {line:?}"
            );
        }
        for (rule, alone) in rules_alone(text) {
            let rulebase = Rulebase::parse_str(&alone, name)
                .unwrap_or_else(|e| panic!("{name}: {rule} does not compile alone: {e}"));
            if !samples.lines().any(|line| rulebase.normalize(line).matched) {
                missing.push(format!("{name}: {rule}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "rules without a matching line in their .samples file:\n{}",
        missing.join("\n")
    );
}
