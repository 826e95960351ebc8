//! API, error reporting and property tests (no external tools needed).

use meniscus_rulebase::Rulebase;
use proptest::prelude::*;
use serde_json::Value;
use std::path::PathBuf;

/// This package's directory in the checkout being tested. `cargo test` sets it at run time;
/// the compile-time value would name whichever clone last compiled this file, since clones
/// share one cached target directory and cargo reuses the binary when no source changed.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

#[test]
fn malformed_rulebase_reports_file_line_column() {
    let text = "version=2\n# comment\nrule=:%a:word% %b:nubmer%\n";
    let err = Rulebase::parse_str(text, "rules.rb")
        .err()
        .expect("must fail");
    assert_eq!(
        (err.file.as_str(), err.line, err.column),
        ("rules.rb", 3, 19)
    );
    assert_eq!(
        err.to_string(),
        "rules.rb:3:19: unknown field type \"nubmer\""
    );
    for bad in [
        "version=2\nrule=:%a:word\n",
        "version=2\nbogus=1\n",
        "version=2\nrule=:%a:@missing%\n",
        "version=2\nrule=nocolon\n",
    ] {
        let e = Rulebase::parse_str(bad, "x.rb").err().expect(bad);
        assert!(e.line >= 2 && e.column >= 1, "{bad:?} -> {e}");
    }
}

#[test]
fn load_reports_missing_file_and_resolves_includes() {
    let dir = std::env::temp_dir().join(format!("meniscus-rb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    std::fs::write(
        dir.join("main.rb"),
        "version=2\ninclude=inc.rb\nrule=m:main %a:word%\n",
    )
    .expect("write");
    std::fs::write(dir.join("inc.rb"), "version=2\nrule=i:inc %n:number%\n").expect("write");
    let rb = Rulebase::load(&dir.join("main.rb")).expect("load");
    assert_eq!(rb.normalize("inc 42").fields["n"], "42");
    assert_eq!(rb.normalize("main x").tags, vec!["m".to_string()]);
    std::fs::write(dir.join("bad.rb"), "version=2\n\nrule=:%a:wrd%\n").expect("write");
    let e = Rulebase::load(&dir.join("bad.rb"))
        .err()
        .expect("bad rulebase");
    assert!(
        e.to_string()
            .ends_with("bad.rb:3:10: unknown field type \"wrd\""),
        "{e}"
    );
    assert!(Rulebase::load(&dir.join("nope.rb")).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unmatched_lines_and_tags() {
    let rb = Rulebase::parse_str(
        "version=2\nrule=a,b:x %n:number% y\nannotate=a:+k=\"v\"\n",
        "t",
    )
    .expect("compile");
    let hit = rb.normalize("x 5 y");
    assert!(hit.matched);
    assert_eq!(hit.tags, vec!["a", "b"]);
    assert_eq!(hit.fields["k"], "v");
    let miss = rb.normalize("x 5 z");
    assert!(!miss.matched && miss.tags.is_empty());
    assert_eq!(miss.fields["originalmsg"], "x 5 z");
    // " y" is one compacted literal, so the furthest offset reached is after "5"
    assert_eq!(miss.fields["unparsed-data"], " z");
    let mut s = String::new();
    rb.normalize_to_json("x 5 y", true, &mut s);
    assert_eq!(s, r#"{ "n": "5", "event.tags": [ "a", "b" ], "k": "v" }"#);
}

#[test]
fn builtins_compile_and_match_their_samples() {
    for name in Rulebase::builtin_names() {
        let rb = Rulebase::builtin(name).unwrap_or_else(|| panic!("builtin {name} must compile"));
        assert!(Rulebase::builtin_text(name)
            .expect("text")
            .contains("# Built-in rulebase"));
        let samples =
            std::fs::read_to_string(manifest_dir().join(format!("builtin/{name}.samples")))
                .expect("samples");
        let matched = samples.lines().filter(|l| rb.normalize(l).matched).count();
        assert!(
            matched + 1 >= samples.lines().count(),
            "{name}: only {matched} sample lines matched"
        );
    }
    let ssh = Rulebase::builtin("sshd").expect("sshd");
    let n =
        ssh.normalize("Failed password for invalid user admin from 198.51.100.23 port 40112 ssh2");
    assert_eq!(n.fields["user"], "admin");
    assert_eq!(n.fields["src_ip"], "198.51.100.23");
    assert!(n.tags.iter().any(|t| t == "invalid-user"));
}

fn one_field(ty: &str, value: &str) -> Option<Value> {
    let rb = Rulebase::parse_str(&format!("version=2\nrule=:<%v:{ty}%>\n"), "prop").ok()?;
    let n = rb.normalize(&format!("<{value}>"));
    n.matched.then(|| n.fields["v"].clone())
}

proptest! {
    #[test]
    fn any_ipv4_parses_back(a: u8, b: u8, c: u8, d: u8) {
        let ip = format!("{a}.{b}.{c}.{d}");
        prop_assert_eq!(one_field("ipv4", &ip), Some(Value::String(ip.clone())));
    }

    #[test]
    fn any_ipv6_parses_back(segs: [u16; 8], compress in any::<bool>()) {
        let addr = std::net::Ipv6Addr::from(segs);
        // Rust prints the canonical compressed form; also try the full form
        let text = if compress { addr.to_string() } else { segs.iter().map(|s| format!("{s:x}")).collect::<Vec<_>>().join(":") };
        // liblognorm requires whitespace or end of line after an IPv6 address
        let rb = Rulebase::parse_str("version=2\nrule=:%v:ipv6% end\n", "prop").expect("compile");
        let n = rb.normalize(&format!("{text} end"));
        prop_assert!(n.matched, "{} did not parse", text);
        prop_assert_eq!(&n.fields["v"], &Value::String(text.clone()));
    }

    #[test]
    fn any_number_parses_back(n: u64) {
        prop_assert_eq!(one_field("number", &n.to_string()), Some(Value::String(n.to_string())));
    }

    #[test]
    fn any_float_parses_back(f in -1.0e9f64..1.0e9) {
        let text = format!("{f:.4}");
        prop_assert_eq!(one_field("float", &text), Some(Value::String(text.clone())));
    }

    #[test]
    fn any_hex_parses_back(n: u32) {
        let rb = Rulebase::parse_str("version=2\nrule=:%v:hexnumber{\"format\":\"number\"}% x\n", "prop").expect("compile");
        let r = rb.normalize(&format!("0x{n:x} x"));
        prop_assert_eq!(&r.fields["v"], &Value::from(n as i64));
    }

    #[test]
    fn any_mac_parses_back(b: [u8; 6], dash: bool) {
        let sep = if dash { "-" } else { ":" };
        let mac = b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(sep);
        prop_assert_eq!(one_field("mac48", &mac), Some(Value::String(mac.clone())));
    }

    #[test]
    fn any_word_parses_back(w in "[^ ]{1,30}") {
        let rb = Rulebase::parse_str("version=2\nrule=:%v:word% end\n", "prop").expect("compile");
        let n = rb.normalize(&format!("{w} end"));
        prop_assert_eq!(&n.fields["v"], &Value::String(w.clone()));
    }

    #[test]
    fn normalize_never_panics(line in ".{0,120}") {
        for name in Rulebase::builtin_names() {
            let rb = Rulebase::builtin(name).expect("builtin");
            let _ = rb.normalize(&line);
        }
    }
}
