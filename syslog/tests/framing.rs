//! RFC 6587 framing table tests: octet counting, LF/NUL, auto-detection per frame, limits,
//! errors and resynchronisation, and byte-at-a-time delivery.

use meniscus_syslog::{Frame, FrameError, Framer, Framing};

/// Feeds `input` in chunks of `chunk` bytes, drains, then finishes.
fn frames(framing: Framing, max: usize, input: &[u8], chunk: usize) -> Vec<Frame> {
    let mut f = Framer::new(framing, max);
    let mut out = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        f.extend(piece);
        while let Some(fr) = f.next_frame() {
            out.push(fr);
        }
    }
    while let Some(fr) = f.finish() {
        out.push(fr);
    }
    out
}

fn ok(b: &str) -> Frame {
    Frame {
        bytes: b.as_bytes().to_vec(),
        truncated_from: None,
        error: None,
    }
}

fn cut(b: &str, from: usize) -> Frame {
    Frame {
        bytes: b.as_bytes().to_vec(),
        truncated_from: Some(from),
        error: None,
    }
}

fn err(b: &str, e: FrameError) -> Frame {
    Frame {
        bytes: b.as_bytes().to_vec(),
        truncated_from: None,
        error: Some(e),
    }
}

/// Every row must give the same frames whatever the read sizes.
fn check(framing: Framing, max: usize, input: &str, want: &[Frame]) {
    for chunk in [1, 2, 3, 7, 64, input.len().max(1)] {
        let got = frames(framing, max, input.as_bytes(), chunk);
        assert_eq!(
            got, want,
            "{framing} max={max} chunk={chunk} input={input:?}"
        );
    }
}

#[test]
fn lf_framing() {
    let rows: Vec<(&str, Vec<Frame>)> = vec![
        ("<13>a\n<13>b\n", vec![ok("<13>a"), ok("<13>b")]),
        ("<13>a\r\n<13>b\r\n", vec![ok("<13>a"), ok("<13>b")]),
        // Juniper NetScreen: NUL ends a frame.
        ("<13>a\0<13>b\0", vec![ok("<13>a"), ok("<13>b")]),
        ("<13>a\r\0", vec![ok("<13>a")]),
        // Unterminated last line comes out of finish.
        ("<13>a\n<13>b", vec![ok("<13>a"), ok("<13>b")]),
        // Blank lines are skipped.
        ("\n\n<13>a\n\r\n\n", vec![ok("<13>a")]),
        // Lines that look octet-counted are lines in LF mode.
        ("12 <13>abc\n", vec![ok("12 <13>abc")]),
        // Only a CR directly before the terminator is dropped.
        ("a\rb\n", vec![ok("a\rb")]),
        ("", vec![]),
    ];
    for (input, want) in rows {
        check(Framing::Lf, 100, input, &want);
    }
}

#[test]
fn lf_overlong_lines_are_cut_and_the_rest_discarded() {
    let rows: Vec<(usize, &str, Vec<Frame>)> = vec![
        (
            5,
            "abcde\nabcdef\nxy\n",
            vec![ok("abcde"), cut("abcde", 6), ok("xy")],
        ),
        // CR LF at exactly the limit is not over-long.
        (5, "abcde\r\nz\n", vec![ok("abcde"), ok("z")]),
        (5, "abcdefghij\r\nz\n", vec![cut("abcde", 10), ok("z")]),
        (
            5,
            "0123456789012345678901234567890\nok\n",
            vec![cut("01234", 31), ok("ok")],
        ),
        // At EOF, still cut with the full length.
        (5, "0123456789", vec![cut("01234", 10)]),
        (5, "0123456789\r", vec![cut("01234", 10)]),
        (3, "abcd\0ab\0", vec![cut("abc", 4), ok("ab")]),
    ];
    for (max, input, want) in rows {
        check(Framing::Lf, max, input, &want);
    }
}

#[test]
fn octet_counting() {
    let rows: Vec<(&str, Vec<Frame>)> = vec![
        ("5 <13>a5 <13>b", vec![ok("<13>a"), ok("<13>b")]),
        // Bytes inside a counted frame are data, LF and NUL included.
        ("7 <13>a\nb6 <13>\0c", vec![ok("<13>a\nb"), ok("<13>\0c")]),
        // Stray newlines between frames (some senders add them) are skipped.
        ("5 <13>a\n5 <13>b\r\n", vec![ok("<13>a"), ok("<13>b")]),
        // Leading zeros are digits like any other.
        ("005 <13>a", vec![ok("<13>a")]),
        // A frame whose body is not syslog is still a frame in forced mode.
        ("3 abc", vec![ok("abc")]),
        // Cut short by EOF.
        (
            "10 <13>abc",
            vec![err(
                "<13>abc",
                FrameError::Incomplete {
                    declared: 10,
                    received: 7,
                },
            )],
        ),
    ];
    for (input, want) in rows {
        check(Framing::OctetCounting, 100, input, &want);
    }
}

#[test]
fn octet_counting_overlong_frames_skip_the_declared_rest() {
    check(
        Framing::OctetCounting,
        4,
        "10 <13>abcdef5 <13>x",
        &[cut("<13>", 10), cut("<13>", 5)],
    );
    check(
        Framing::OctetCounting,
        4,
        "4 <13>4 abcd",
        &[ok("<13>"), ok("abcd")],
    );
    // A huge declared length does not buffer: the framer skips as bytes arrive.
    let mut f = Framer::new(Framing::OctetCounting, 8);
    f.extend(b"999999999 <13>hello");
    assert_eq!(f.next_frame(), Some(cut("<13>hell", 999_999_999)));
    for _ in 0..100 {
        f.extend(&[b'x'; 4096]);
        assert_eq!(f.next_frame(), None);
        assert!(f.buffered() <= 4096, "buffered {}", f.buffered());
    }
    assert_eq!(f.finish(), None);
}

#[test]
fn octet_counting_errors_resync_at_next_lf() {
    let rows: Vec<(&str, Vec<Frame>)> = vec![
        (
            "<13>no count\n5 <13>a",
            vec![
                err("<13>no count", FrameError::InvalidOctetCount),
                ok("<13>a"),
            ],
        ),
        (
            "12x <13>a\n5 <13>b",
            vec![err("12x <13>a", FrameError::MissingSpace), ok("<13>b")],
        ),
        (
            "12345678901 <13>a\n5 <13>b",
            vec![
                err("12345678901 <13>a", FrameError::OctetCountTooLong),
                ok("<13>b"),
            ],
        ),
        (
            "99999999999999999999 x\n",
            vec![err("99999999999999999999 x", FrameError::OctetCountTooLong)],
        ),
        (
            "0 <13>a\n5 <13>b",
            vec![err("0 <13>a", FrameError::ZeroOctetCount), ok("<13>b")],
        ),
        // Error without a following LF: the rest comes out at EOF.
        ("abc", vec![err("abc", FrameError::InvalidOctetCount)]),
        ("12", vec![err("12", FrameError::MissingSpace)]),
    ];
    for (input, want) in rows {
        check(Framing::OctetCounting, 100, input, &want);
    }
    // An error line longer than the limit is cut too and never buffered whole.
    check(
        Framing::OctetCounting,
        4,
        "garbage garbage\n2 ab",
        &[
            Frame {
                bytes: b"garb".to_vec(),
                truncated_from: Some(15),
                error: Some(FrameError::InvalidOctetCount),
            },
            ok("ab"),
        ],
    );
}

#[test]
fn auto_detects_per_frame() {
    let rows: Vec<(&str, Vec<Frame>)> = vec![
        // rsyslog octet-counted stream.
        ("5 <13>a5 <13>b", vec![ok("<13>a"), ok("<13>b")]),
        // LF stream.
        ("<13>a\n<13>b\n", vec![ok("<13>a"), ok("<13>b")]),
        // Mixed on one connection.
        ("5 <13>a<13>b\n5 <13>c", vec![ok("<13>a"), ok("<13>b"), ok("<13>c")]),
        // Unframed Cisco IOS lines starting with a sequence number are lines, not lengths.
        (
            "91: *Oct  7 03:10:04.123: %SYS-5-CONFIG_I: Configured from console\n92: *Oct  7 03:10:05.000: %SYS-5-X: y\n",
            vec![ok("91: *Oct  7 03:10:04.123: %SYS-5-CONFIG_I: Configured from console"), ok("92: *Oct  7 03:10:05.000: %SYS-5-X: y")],
        ),
        // Digits and a space but no `<` after it: a line.
        ("2026 was a year\n", vec![ok("2026 was a year")]),
        ("12 34\n", vec![ok("12 34")]),
        // Ten digits is not a count in auto mode.
        ("1234567890 <13>x\n", vec![ok("1234567890 <13>x")]),
        // Two spaces: a line.
        ("5  <13>a\n", vec![ok("5  <13>a")]),
        // A line that is only digits, then EOF.
        ("12345", vec![ok("12345")]),
        ("12 ", vec![ok("12 ")]),
        // `0 <`: zero is not a valid count, so a line.
        ("0 <13>a\n", vec![ok("0 <13>a")]),
        // Nine digits is a count.
        ("000000005 <13>a", vec![ok("<13>a")]),
        // NUL-terminated NetScreen frames.
        ("<13>a\0<13>b\0", vec![ok("<13>a"), ok("<13>b")]),
    ];
    for (input, want) in rows {
        check(Framing::Auto, 100, input, &want);
    }
    check(
        Framing::Auto,
        4,
        "10 <13>abcdef<13>xy\n",
        &[cut("<13>", 10), cut("<13>", 6)],
    );
}

#[test]
fn finish_is_idempotent_and_resets() {
    let mut f = Framer::new(Framing::Lf, 100);
    f.extend(b"<13>a\n<13>b");
    // finish also returns complete frames the caller did not drain.
    assert_eq!(f.finish(), Some(ok("<13>a")));
    assert_eq!(f.finish(), Some(ok("<13>b")));
    assert_eq!(f.finish(), None);
    assert_eq!(f.buffered(), 0);
    f.extend(b"<13>c\n");
    assert_eq!(f.next_frame(), Some(ok("<13>c")));
}

#[test]
fn buffer_stays_bounded_without_terminators() {
    let mut f = Framer::new(Framing::Auto, 1024);
    for _ in 0..1000 {
        f.extend(&[b'a'; 1000]);
        assert_eq!(f.next_frame(), None);
        assert!(f.buffered() <= 1024 + 1000 + 1, "buffered {}", f.buffered());
    }
    f.extend(b"\n");
    let fr = f.next_frame().expect("cut frame");
    assert_eq!(fr.bytes.len(), 1024);
    assert_eq!(fr.truncated_from, Some(1_000_000));
}

#[test]
fn framing_names() {
    for (s, fr) in [
        ("auto", Framing::Auto),
        ("octet-counting", Framing::OctetCounting),
        ("lf", Framing::Lf),
    ] {
        assert_eq!(s.parse::<Framing>(), Ok(fr));
        assert_eq!(fr.to_string(), s);
    }
    assert_eq!("LF".parse::<Framing>(), Ok(Framing::Lf));
    let e = "octet".parse::<Framing>().expect_err("unknown");
    assert_eq!(
        e.to_string(),
        "unknown framing \"octet\" (expected auto, octet-counting or lf)"
    );
    assert_eq!(
        FrameError::InvalidOctetCount.to_string(),
        "octet count is not a number"
    );
    assert_eq!(
        FrameError::Incomplete {
            declared: 10,
            received: 3
        }
        .to_string(),
        "stream ended after 3 of 10 declared bytes"
    );
}
