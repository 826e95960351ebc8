//! `Rulebase::normalize_json_into` writes exactly `serde_json::to_string(&normalize(line).fields)`
//! and reports the same `matched` and tags: for every built-in rulebase over its samples,
//! for every corpus rulebase over its input, for mutations of those lines, and for random
//! lines (property tests).

use meniscus_rulebase::{push_json_string, Rulebase};
use proptest::prelude::*;
use std::path::PathBuf;
use std::sync::OnceLock;

/// This package's directory in the checkout being tested (see `tests/api.rs`).
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// Every built-in rulebase with its sample lines (a missing samples file counts as none).
fn builtins() -> &'static [(String, Rulebase, Vec<String>)] {
    static B: OnceLock<Vec<(String, Rulebase, Vec<String>)>> = OnceLock::new();
    B.get_or_init(|| {
        let dir = manifest_dir().join("builtin");
        Rulebase::builtin_names()
            .iter()
            .map(|name| {
                let rb = Rulebase::builtin(name).unwrap_or_else(|| panic!("builtin {name}"));
                let samples = std::fs::read_to_string(dir.join(format!("{name}.samples")))
                    .unwrap_or_default();
                let lines = samples.lines().map(str::to_string).collect();
                (name.to_string(), rb, lines)
            })
            .collect()
    })
}

/// Every corpus rulebase `tests/corpus/NAME.rb` that has an input file `NAME.in`.
fn corpus() -> &'static [(String, Rulebase, Vec<String>)] {
    static C: OnceLock<Vec<(String, Rulebase, Vec<String>)>> = OnceLock::new();
    C.get_or_init(|| {
        let dir = manifest_dir().join("tests/corpus");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .expect("corpus dir")
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".in").map(str::to_string)
            })
            .collect();
        names.sort();
        assert!(names.len() >= 8, "corpus is missing files");
        names
            .into_iter()
            .map(|name| {
                let rb = Rulebase::load(&dir.join(format!("{name}.rb")))
                    .unwrap_or_else(|e| panic!("{e}"));
                let input =
                    std::fs::read_to_string(dir.join(format!("{name}.in"))).expect("corpus input");
                let lines = input.lines().map(str::to_string).collect();
                (name, rb, lines)
            })
            .collect()
    })
}

fn all() -> impl Iterator<Item = &'static (String, Rulebase, Vec<String>)> {
    builtins().iter().chain(corpus())
}

/// The new path against the map path for one line; `Err` describes a difference.
fn compare(name: &str, rb: &Rulebase, line: &str) -> Result<(), String> {
    let n = rb.normalize(line);
    let want = serde_json::to_string(&n.fields).expect("serialize map");
    // text already in the buffer is kept: the result is appended
    let mut out = String::from("{\"p\":");
    let r = rb.normalize_json_into(line, &mut out);
    let got = &out[5..];
    if got != want {
        return Err(format!(
            "{name}: line {line:?}\n  normalize():          {want}\n  normalize_json_into: {got}"
        ));
    }
    if r.matched != n.matched || r.tags != n.tags.as_slice() {
        return Err(format!(
            "{name}: line {line:?}: matched/tags {}/{:?} vs normalize() {}/{:?}",
            r.matched, r.tags, n.matched, n.tags
        ));
    }
    // wrapped as the pipeline stores it
    out.push('}');
    let mut wrapped = serde_json::Map::new();
    wrapped.insert("p".into(), serde_json::Value::Object(n.fields));
    if out != serde_json::to_string(&wrapped).expect("serialize") {
        return Err(format!(
            "{name}: line {line:?}: wrapped text differs: {out}"
        ));
    }
    Ok(())
}

fn check_all(lines: impl IntoIterator<Item = String>) -> usize {
    let lines: Vec<String> = lines.into_iter().collect();
    let mut failures = Vec::new();
    let mut n = 0;
    for (name, rb, _) in all() {
        for line in &lines {
            n += 1;
            if let Err(e) = compare(name, rb, line) {
                failures.push(e);
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} differ:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
    n
}

/// Text that exercises escaping and number formatting.
const INSERTS: &[&str] = &[
    "\"", "\\", "/", "\t", "\n", "\r", "\u{1}", "\u{1f}", "\u{7f}", "é", "\u{2028}", "€", "{", "}",
    "[", "=", " ", "  ", "0", "-1", "1.5e3", "0x1f", ":", ",", "'", "%", "null",
];

/// Deterministic mutations of a line: cut at character boundaries, characters replaced,
/// inserted or removed, digits changed.
fn mutations(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let cuts: Vec<usize> = line.char_indices().map(|(i, _)| i).collect();
    let step = (cuts.len() / 12).max(1);
    for (k, &i) in cuts.iter().enumerate().step_by(step) {
        out.push(line[..i].to_string());
        out.push(line[i..].to_string());
        let ins = INSERTS[k % INSERTS.len()];
        out.push(format!("{}{ins}{}", &line[..i], &line[i..]));
        let next = line[i..].chars().next().map_or(0, char::len_utf8);
        out.push(format!("{}{ins}{}", &line[..i], &line[i + next..]));
        out.push(format!("{}{}", &line[..i], &line[i + next..]));
    }
    out.push(line.replace(|c: char| c.is_ascii_digit(), "9"));
    out.push(line.replace(' ', "  "));
    out.push(line.replace('"', "\\\""));
    out.push(format!("{line} "));
    out.push(format!("{line}\u{1}\"/\\"));
    out
}

#[test]
fn builtin_samples_and_corpus_inputs() {
    let lines = all().flat_map(|(_, _, lines)| lines.iter().cloned());
    let n = check_all(lines);
    assert!(n > 1000, "too few comparisons: {n}");
    let with_samples = builtins().iter().filter(|b| !b.2.is_empty()).count();
    assert!(with_samples >= 7, "built-in samples missing");
}

#[test]
fn mutated_lines() {
    let lines: Vec<String> = all()
        .flat_map(|(_, _, lines)| lines.iter().flat_map(|l| mutations(l)))
        .collect();
    check_all(lines);
}

#[test]
fn objects_with_repeated_merged_and_many_members() {
    let many: String = (0..40).map(|i| format!(" %f{:02}:word%", 39 - i)).collect();
    let many_line: String = (0..40).map(|i| format!(" v{i}")).collect();
    let ipt_line: String = (0..40)
        .map(|i| format!("N{}=v{i}", char::from(b'A' + (i % 26) as u8)))
        .collect::<Vec<_>>()
        .join(" ");
    let cases: &[(&str, &[&str])] = &[
        // a name used twice: the later value wins, at its sorted place
        (
            "version=2\nrule=t:%a:word% %b:word% %a:word% %A:word% %_:word% %\u{e9}:word%\n",
            &["1 2 3 4 5 6", "x\"y \\z / \u{7f} \u{1} q"],
        ),
        // '.' merges: user types, json objects, iptables bodies (with repeats)
        (
            "version=2\ntype=@hp:%host:ipv4%:%port:number{\"format\":\"number\"}%\n\
             rule=t:A %.:@hp% %host:word%\n\
             rule=t:B %x:@hp% %.:json%\n\
             rule=t:C %.:v2-iptables%\n\
             rule=t:D %fw:v2-iptables%\n\
             annotate=t:+zz=\"a/n\\tote\" +host=\"annotated\" +AA=\"first\"\n",
            &[
                "A 10.0.0.1:80 other",
                "B 10.0.0.1:80 {\"z\":1,\"a\":{\"y\":[1,2.5,-3,true,null,\"s/\\u0001\"]},\"host\":\"j\"}",
                "C SRC=1.2.3.4 DST=5.6.7.8 SYN SRC=9.9.9.9 DF",
                "D IN=eth0 OUT= SRC=1.2.3.4 DF PROTO=TCP SYN DF",
                "D LONGNAMEAAAA=1 LONGNAMEAAAB=2 LONGNAMEAAAA=3",
            ],
        ),
        // numbers and floats in their typed formats
        (
            "version=2\nrule=t:%n:number{\"format\":\"number\"}% %h:hexnumber{\"format\":\"number\"}% %f:float{\"format\":\"number\"}%\n",
            &["42 0x1f 1.5", "0 0x0 0.1", "18446744073709551615 0xffff 123456789.123456789", "7 0x1 -0.0", "7 0x1 -12.75"],
        ),
        // more members than fit the stack index array
        (&format!("version=2\nrule=t:{many}\n"), &[&many_line]),
        (
            "version=2\nrule=t:%fw:v2-iptables%\n",
            &[&ipt_line, &format!("{ipt_line} {ipt_line}")],
        ),
    ];
    let mut failures = Vec::new();
    for (text, lines) in cases {
        let rb = Rulebase::parse_str(text, "case.rb").unwrap_or_else(|e| panic!("{e}"));
        for line in *lines {
            assert!(rb.normalize(line).matched, "{text}: {line:?} must match");
            for l in std::iter::once(line.to_string()).chain(mutations(line)) {
                if let Err(e) = compare("case", &rb, &l) {
                    failures.push(e);
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn line_from_samples() -> impl Strategy<Value = String> {
    let samples: Vec<String> = all().flat_map(|(_, _, l)| l.iter().cloned()).collect();
    (
        proptest::sample::select(samples),
        proptest::collection::vec(
            (
                any::<prop::sample::Index>(),
                0..3u8,
                "[ -~\t\"\\\\/\u{1}\u{7f}é€]{0,4}",
            ),
            0..4,
        ),
    )
        .prop_map(|(line, edits)| {
            let mut line = line;
            for (at, kind, text) in edits {
                let bounds: Vec<usize> = line
                    .char_indices()
                    .map(|(i, _)| i)
                    .chain([line.len()])
                    .collect();
                let i = bounds[at.index(bounds.len())];
                match kind {
                    0 => line.insert_str(i, &text),
                    1 => line.truncate(i),
                    _ => {
                        let end = line[i..].chars().next().map_or(i, |c| i + c.len_utf8());
                        line.replace_range(i..end, &text);
                    }
                }
            }
            line
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn edited_sample_lines_render_as_serde_json(line in line_from_samples()) {
        for (name, rb, _) in all() {
            if let Err(e) = compare(name, rb, &line) {
                prop_assert!(false, "{}", e);
            }
        }
    }

    #[test]
    fn random_lines_render_as_serde_json(line in "(\\PC|[\t\u{1}\u{7f}\"\\\\/=\\[\\]{}: ]){0,100}") {
        for (name, rb, _) in all() {
            if let Err(e) = compare(name, rb, &line) {
                prop_assert!(false, "{}", e);
            }
        }
    }

    #[test]
    fn strings_escape_as_serde_json(s in "(\\PC|\\pC){0,40}") {
        let mut out = String::from("x");
        push_json_string(&mut out, &s);
        prop_assert_eq!(&out[1..], serde_json::to_string(&s).expect("string"));
    }
}
