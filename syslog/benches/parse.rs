//! Throughput of the RFC 5424 and RFC 3164 parsers on ~200-byte messages, and of the framer
//! over a large buffer. Run:
//! `cargo bench -p meniscus-syslog --bench parse -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meniscus_syslog::{parse, Framer, Framing, ParseOptions};

const RFC5424: &str = r#"<165>1 2026-11-25T15:43:54.123456+00:00 web01.example.com nginx 4242 ID47 [meniscus@32473 tenant="demo" token="abc"][req@32473 path="/api/v1" status="200"] GET /api/v1/items 200 1532 bytes in 12 ms"#;
const RFC3164: &str = "<30>Nov 25 15:43:54 web01.example.com postfix/smtpd[4242]: connect from mail-oi1-f171.google.com[209.85.167.171] helo=<mail.example.org> tls=TLSv1.3 cipher=TLS_AES_256_GCM_SHA384 id=4Bf3kT";

fn bench(c: &mut Criterion) {
    let opts = ParseOptions::new(
        Utc.with_ymd_and_hms(2026, 11, 25, 16, 0, 0)
            .single()
            .expect("literal"),
    );
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    g.bench_function(format!("rfc5424_{}B", RFC5424.len()), |b| {
        b.iter(|| parse(black_box(RFC5424), &opts).map(|m| m.msg.len()))
    });
    g.bench_function(format!("rfc3164_{}B", RFC3164.len()), |b| {
        b.iter(|| parse(black_box(RFC3164), &opts).map(|m| m.msg.len()))
    });
    let berlin = ParseOptions {
        timezone: chrono_tz::Europe::Berlin,
        ..opts.clone()
    };
    g.bench_function("rfc3164_berlin", |b| {
        b.iter(|| parse(black_box(RFC3164), &berlin).map(|m| m.msg.len()))
    });
    g.finish();

    // 10,000 frames per iteration, half octet-counted, half LF, read in 64 KiB chunks.
    let n = 10_000u64;
    let mut stream = Vec::new();
    for i in 0..n {
        if i % 2 == 0 {
            stream.extend_from_slice(format!("{} {RFC5424}", RFC5424.len()).as_bytes());
        } else {
            stream.extend_from_slice(RFC5424.as_bytes());
            stream.push(b'\n');
        }
    }
    let mut g = c.benchmark_group("framer");
    g.throughput(Throughput::Elements(n));
    g.bench_function(format!("auto_{}KiB", stream.len() / 1024), |b| {
        b.iter(|| {
            let mut f = Framer::new(Framing::Auto, 8192);
            let mut count = 0usize;
            for chunk in stream.chunks(64 * 1024) {
                f.extend(chunk);
                while let Some(fr) = f.next_frame() {
                    count += fr.bytes.len();
                }
            }
            count
        })
    });
    // Framer and parser together, as the ingest path runs them.
    g.bench_function("auto_frame_and_parse", |b| {
        b.iter(|| {
            let mut f = Framer::new(Framing::Auto, 8192);
            let mut ok = 0usize;
            for chunk in stream.chunks(64 * 1024) {
                f.extend(chunk);
                while let Some(fr) = f.next_frame() {
                    if let Ok(s) = std::str::from_utf8(&fr.bytes) {
                        ok += usize::from(parse(s, &opts).is_ok());
                    }
                }
            }
            ok
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
