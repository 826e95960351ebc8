#![no_main]
//! RFC 3164 parser on arbitrary input, in a zone with DST and in one with odd offsets. Only an
//! empty line or a PRI above 191 may fail.

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use meniscus_syslog::{rfc3164, ParseOptions};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let Some(received_at) = Utc.with_ymd_and_hms(2026, 3, 29, 1, 30, 0).single() else { return };
    for timezone in [chrono_tz::Europe::Berlin, chrono_tz::Pacific::Chatham] {
        let opts = ParseOptions { received_at, timezone };
        if let Ok(m) = rfc3164::parse(&s, &opts) {
            assert!(m.pri <= 191);
            assert!(m.msg.len() <= s.len());
        }
    }
});
