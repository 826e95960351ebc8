#![no_main]
//! Top-level `parse` (5424/3164 detection) on arbitrary input.

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use meniscus_syslog::{parse, ParseOptions};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let Some(received_at) = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).single() else { return };
    let opts = ParseOptions { received_at, timezone: chrono_tz::America::New_York };
    if let Err(e) = parse(&s, &opts) {
        assert!(e.offset <= s.len());
        let _ = e.to_string();
    }
});
