//! Differential tests: every rulebase in `tests/corpus/NAME.rb` is run over
//! `tests/corpus/NAME.in` by both Meniscus and the real liblognorm `lognormalizer`, and
//! the resulting JSON values must be equal line by line (fields, and `event.tags`).
//!
//! `lognormalizer` comes from Debian's `liblognorm-utils`, which `dev/test` installs (or, when
//! installing it would change a package the machine has, unpacks into the cache as
//! `$MENISCUS_CACHE/peers/bin/lognormalizer`). When it is missing the test fails with the
//! command that provides it (it never skips silently, and never installs packages itself).

use meniscus_rulebase::Rulebase;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// This package's directory in the checkout being tested. `cargo test` sets it at run time;
/// the compile-time value would name whichever clone last compiled this file, since clones
/// share one cached target directory and cargo reuses the binary when no source changed.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

fn corpus_dir() -> PathBuf {
    manifest_dir().join("tests/corpus")
}

/// The `lognormalizer` to run: the one unpacked into the cache by `dev/test` if there is one,
/// else the one on `PATH`.
fn lognormalizer() -> PathBuf {
    let cache = std::env::var_os("MENISCUS_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/meniscus"))
        });
    cache
        .map(|cache| cache.join("peers/bin/lognormalizer"))
        .filter(|path| path.is_file())
        .unwrap_or_else(|| PathBuf::from("lognormalizer"))
}

fn have_lognormalizer() -> bool {
    Command::new(lognormalizer())
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn ensure_lognormalizer() {
    assert!(
        have_lognormalizer(),
        "the real `lognormalizer` is required for the differential tests: run dev/test once \
         (it installs liblognorm-utils without removing or replacing any package, see \
         dev/lib/apt.sh), or `bash dev/lib/apt.sh install liblognorm-utils`"
    );
}

/// Run lognormalizer in the corpus directory (so `include=` paths resolve the same way).
fn run_lognormalizer(rb: &str, input: &str) -> Vec<Value> {
    use std::io::Write;
    let mut child = Command::new(lognormalizer())
        .args(["-r", rb, "-e", "json", "-T"])
        .current_dir(corpus_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn lognormalizer");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write input");
    let out = child.wait_with_output().expect("lognormalizer output");
    assert!(
        out.status.success(),
        "lognormalizer failed on {rb}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "lognormalizer reported rulebase errors for {rb}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("lognormalizer printed invalid json {l:?}: {e}"))
        })
        .collect()
}

fn meniscus_value(rb: &Rulebase, line: &str) -> Value {
    let n = rb.normalize(line);
    let mut m = n.fields.clone();
    if !n.tags.is_empty() {
        m.insert(
            "event.tags".into(),
            Value::Array(n.tags.iter().map(|t| Value::String(t.clone())).collect()),
        );
    }
    Value::Object(m)
}

fn check(name: &str) -> usize {
    let dir = corpus_dir();
    let input = std::fs::read_to_string(dir.join(format!("{name}.in"))).expect("read corpus input");
    let rb = Rulebase::load(&dir.join(format!("{name}.rb"))).unwrap_or_else(|e| panic!("{e}"));
    let expected = run_lognormalizer(&format!("{name}.rb"), &input);
    let lines: Vec<&str> = input.lines().collect();
    assert_eq!(
        expected.len(),
        lines.len(),
        "{name}: lognormalizer printed one object per line"
    );
    let mut failures = Vec::new();
    for (line, want) in lines.iter().zip(&expected) {
        let got = meniscus_value(&rb, line);
        if &got != want {
            failures.push(format!(
                "  line {line:?}\n    lognormalizer: {want}\n    meniscus:      {got}"
            ));
        }
        // the liblognorm-style JSON rendering (what `meniscus-lognorm` prints) must carry
        // the same values
        let mut text = String::new();
        rb.normalize_to_json(line, true, &mut text);
        match serde_json::from_str::<Value>(&text) {
            Ok(v) if &v == want => {}
            Ok(v) => failures.push(format!("  line {line:?} (normalize_to_json)\n    lognormalizer: {want}\n    meniscus:      {v}")),
            Err(e) => failures.push(format!("  line {line:?}: normalize_to_json printed invalid JSON {text:?}: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} lines differ:\n{}",
        failures.len(),
        lines.len(),
        failures.join("\n")
    );
    lines.len()
}

#[test]
fn corpus_matches_liblognorm() {
    ensure_lognormalizer();
    let mut names: Vec<String> = std::fs::read_dir(corpus_dir())
        .expect("corpus dir")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".in"))
                .map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(names.len() >= 8, "corpus is missing files");
    let mut total = 0;
    for n in &names {
        total += check(n);
    }
    assert!(total > 100, "corpus too small: {total} lines");
}

/// The built-in rulebases, over their sample lines, agree with liblognorm too.
#[test]
fn builtins_match_liblognorm() {
    ensure_lognormalizer();
    let dir = manifest_dir().join("builtin");
    for name in Rulebase::builtin_names() {
        let samples =
            std::fs::read_to_string(dir.join(format!("{name}.samples"))).expect("samples file");
        let rb = Rulebase::builtin(name).expect("builtin compiles");
        let path = dir.join(format!("{name}.rb"));
        let expected = {
            use std::io::Write;
            let mut child = Command::new(lognormalizer())
                .args(["-r", path.to_str().expect("utf8 path"), "-e", "json", "-T"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn lognormalizer");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(samples.as_bytes())
                .expect("write");
            let out = child.wait_with_output().expect("output");
            assert!(
                out.stderr.is_empty(),
                "{name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).expect("json"))
                .collect::<Vec<_>>()
        };
        for (line, want) in samples.lines().zip(&expected) {
            assert_eq!(&meniscus_value(&rb, line), want, "{name}: {line}");
            let mut text = String::new();
            rb.normalize_to_json(line, true, &mut text);
            assert_eq!(
                &serde_json::from_str::<Value>(&text).expect("valid json"),
                want,
                "{name} (normalize_to_json): {line}"
            );
        }
    }
}
