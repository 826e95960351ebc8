//! From one syslog frame to one CEE event, appended straight to the batch's columns: UTF-8
//! check, parse, tenant, producer. No owned event is made in between: the parsed fields are
//! borrowed from the frame and copied once, into the columns.
//!
//! Nothing a sender wrote is dropped for being malformed: a frame that does not parse becomes
//! an event whose `msg` is the whole frame and whose `meniscus.parse_error` says why; bytes that
//! are not UTF-8 are kept, base64-encoded, in `meniscus.raw`. Only frames that cannot be tied
//! to a tenant (no credentials on an unbound listener, or wrong credentials) are refused, and
//! those are counted by reason.

use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, Utc};
use meniscus_grid::tenant::{Tenant, TenantId, TenantRegistry};
use meniscus_grid::Transport;
use meniscus_record::{BatchBuilder, EventRow};
use meniscus_syslog::{ParseOptions, SdElement};
use serde_json::{Map, Value};

use super::text_credentials;
use crate::correlator::Correlator;

/// Where a listener's messages come from, for tenant resolution.
#[derive(Clone, Debug)]
pub struct SourceContext {
    pub transport: Transport,
    /// The tenant the listener (or the client certificate) is bound to, if any.
    pub bound_tenant: Option<TenantId>,
    pub timezone: chrono_tz::Tz,
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No `[meniscus ...]` element and the listener is not bound to a tenant.
    NoTenant,
    /// The element names another tenant than the one the listener is bound to.
    TenantMismatch,
    /// Authentication failed (reason as in `AuthError::reason`).
    Auth(&'static str),
    /// Empty frame (nothing to store).
    Empty,
}

impl Refusal {
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::NoTenant => "no_tenant",
            Refusal::TenantMismatch => "tenant_mismatch",
            Refusal::Auth(reason) => reason,
            Refusal::Empty => "empty",
        }
    }
}

/// True for `meniscus` and `meniscus@<enterprise number>`.
pub fn is_meniscus_sd_id(id: &str) -> bool {
    id == "meniscus"
        || id.strip_prefix("meniscus@").is_some_and(|pen| {
            !pen.is_empty()
                && pen
                    .bytes()
                    .all(|byte| byte.is_ascii_digit() || byte == b'.')
        })
}

/// Structured data other than the credentials, as the JSON text of `native`; `None` when there
/// is none (most messages).
fn native_json(elements: &[SdElement<'_>]) -> Option<String> {
    if elements.iter().all(|element| is_meniscus_sd_id(element.id)) {
        return None;
    }
    serde_json::to_string(&native_from(elements)).ok()
}

fn native_from(elements: &[SdElement<'_>]) -> Map<String, Value> {
    let mut native = Map::new();
    for element in elements
        .iter()
        .filter(|element| !is_meniscus_sd_id(element.id))
    {
        let entry = native
            .entry(element.id.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(params) = entry else {
            continue;
        };
        for (name, value) in &element.params {
            let value = Value::String(value.to_string());
            match params.get_mut(*name) {
                // A repeated PARAM-NAME is legal (RFC 5424 §6.3.3): keep every value.
                Some(Value::Array(values)) => values.push(value),
                Some(existing) => {
                    let first = existing.take();
                    *existing = Value::Array(vec![first, value]);
                }
                None => {
                    params.insert(name.to_string(), value);
                }
            }
        }
    }
    native
}

impl Correlator {
    /// Resolves the tenant of a frame.
    /// Borrowed from the registry, not cloned: every event of a connection resolves the same
    /// tenant, and bumping one shared reference count from both ingest threads per event cost
    /// more than the lookup.
    fn resolve_tenant<'r>(
        &self,
        registry: &'r TenantRegistry,
        credentials: Option<(&str, Option<&str>)>,
        source: &SourceContext,
        now: DateTime<Utc>,
    ) -> Result<&'r Arc<Tenant>, Refusal> {
        match (credentials, &source.bound_tenant) {
            (Some((tenant, _)), Some(bound)) if tenant != bound.as_str() => {
                self.accept
                    .count_auth_failure(source.transport, "tenant_mismatch");
                Err(Refusal::TenantMismatch)
            }
            (Some((tenant, token)), _) => self
                .accept
                .authenticate(registry, tenant, token, source.transport, now)
                .map_err(|error| Refusal::Auth(error.reason())),
            (None, Some(bound)) => registry.get(bound.as_str()).ok_or_else(|| {
                self.accept
                    .count_auth_failure(source.transport, "unknown_tenant");
                Refusal::Auth("unknown_tenant")
            }),
            (None, None) => {
                self.accept
                    .count_auth_failure(source.transport, "no_tenant");
                Err(Refusal::NoTenant)
            }
        }
    }

    /// Appends the event of one frame (or datagram) to `batch`, or says why it was refused.
    /// `framing_error` is what the framer found wrong with the frame, if anything.
    #[allow(clippy::too_many_arguments)]
    pub fn append_syslog(
        &self,
        batch: &mut BatchBuilder,
        registry: &TenantRegistry,
        bytes: &[u8],
        truncated_from: Option<usize>,
        framing_error: Option<&str>,
        source: &SourceContext,
        received_at: DateTime<Utc>,
    ) -> Result<(), Refusal> {
        let transport = source.transport;
        if truncated_from.is_some() {
            self.accept
                .metrics
                .oversize_messages
                .inc(&[transport.as_str()]);
        }
        let (text, invalid_utf8) = match std::str::from_utf8(bytes) {
            Ok(text) => (Cow::Borrowed(text), false),
            Err(_) => {
                self.accept.metrics.invalid_utf8.inc(&[transport.as_str()]);
                (String::from_utf8_lossy(bytes), true)
            }
        };
        if text.trim_end_matches(['\n', '\r', '\0']).is_empty() {
            return Err(Refusal::Empty);
        }
        let options = ParseOptions {
            received_at,
            timezone: source.timezone,
        };
        let parsed = meniscus_syslog::parse(&text, &options);
        let from_structured_data = parsed.as_ref().ok().and_then(|message| {
            message
                .structured_data
                .iter()
                .find(|element| is_meniscus_sd_id(element.id))
                .and_then(|element| {
                    element
                        .param("tenant")
                        .map(|tenant| (tenant, element.param("token")))
                })
        });
        let in_header = match from_structured_data {
            Some(_) => None,
            None => text_credentials::find(&text, parsed.as_ref().ok()),
        };
        let tenant = match (&source.bound_tenant, &in_header) {
            // On a listener bound to a tenant the text is data, never credentials.
            (None, Some(element)) => {
                let credentials = Some((element.tenant.as_str(), element.token.as_deref()));
                self.resolve_tenant(registry, credentials, source, received_at)?
            }
            _ => self.resolve_tenant(registry, from_structured_data, source, received_at)?,
        };
        // No token is ever stored: an element in the free text that holds a valid token (of
        // any tenant; the header element just used is one) is cut out, wherever it is.
        let cuts: Vec<text_credentials::TextElement> = {
            let from = text_credentials::free_text_start(&text, parsed.as_ref().ok());
            let mentions = text
                .get(from..)
                .is_some_and(|free| text_credentials::mention(free).is_some());
            if mentions {
                text_credentials::all_from(&text, from)
                    .into_iter()
                    .filter(|element| {
                        registry
                            .authenticate(&element.tenant, element.token.as_deref(), received_at)
                            .is_ok()
                    })
                    .collect()
            } else {
                Vec::new()
            }
        };
        let frame = Frame {
            framing_error,
            truncated_from,
            transport,
            received_at,
        };
        if cuts.is_empty() {
            let raw = invalid_utf8.then(|| base64::engine::general_purpose::STANDARD.encode(bytes));
            self.push_event(batch, tenant, &text, parsed, raw.as_deref(), &frame);
        } else {
            // Parsed again without the elements: host, tag and message as the sender meant
            // them, and no token anywhere in what is stored.
            let cleaned = text_credentials::cut_all(&text, &cuts);
            let reparsed = meniscus_syslog::parse(&cleaned, &options);
            let raw = invalid_utf8.then(|| {
                let mut kept = bytes.to_vec();
                for element in &cuts {
                    let written = element.text(&text).as_bytes();
                    match memchr::memmem::find(&kept, written) {
                        Some(at) => {
                            let mut end = at + written.len();
                            if kept.get(end) == Some(&b' ') {
                                end += 1;
                            }
                            kept.drain(at..end);
                        }
                        // The element held bytes that are not UTF-8: the raw copy is left
                        // out rather than keep the token.
                        None => return String::new(),
                    }
                }
                base64::engine::general_purpose::STANDARD.encode(kept)
            });
            self.push_event(batch, tenant, &cleaned, reparsed, raw.as_deref(), &frame);
        }
        Ok(())
    }

    /// Appends one parsed (or unparseable) frame's event to the tenant's columns.
    fn push_event(
        &self,
        batch: &mut BatchBuilder,
        tenant: &Tenant,
        text: &str,
        parsed: Result<meniscus_syslog::Message<'_>, meniscus_syslog::ParseError>,
        raw: Option<&str>,
        frame: &Frame<'_>,
    ) {
        let raw = raw.filter(|raw| !raw.is_empty());
        let framing_error = frame.framing_error.map(|error| format!("framing: {error}"));
        let truncated_from = frame.truncated_from.map(|length| length as u64);
        let columns = batch.tenant(&tenant.id);
        match parsed {
            Ok(message) => {
                let producer = tenant.producer_for(message.app_name);
                let native = native_json(&message.structured_data);
                columns.push(&EventRow {
                    time: message.timestamp,
                    host: message.hostname,
                    pname: message.app_name,
                    pid: message.proc_id,
                    msgid: message.msg_id,
                    pri: Some(message.pri),
                    ver: message.version,
                    native: native.as_deref(),
                    parse_error: framing_error.as_deref(),
                    raw,
                    raw_encoding: raw.map(|_| "base64"),
                    truncated_from,
                    ..EventRow::message(message.msg, producer, frame.transport, frame.received_at)
                });
            }
            Err(error) => {
                self.accept
                    .metrics
                    .parse_errors
                    .inc(&[tenant.id.as_str(), frame.transport.as_str()]);
                let parse_error = framing_error.unwrap_or_else(|| error.to_string());
                columns.push(&EventRow {
                    parse_error: Some(&parse_error),
                    raw,
                    raw_encoding: raw.map(|_| "base64"),
                    truncated_from,
                    ..EventRow::message(
                        text,
                        tenant.producer_for(None),
                        frame.transport,
                        frame.received_at,
                    )
                });
            }
        }
    }
}

/// What a frame's event carries besides its text.
struct Frame<'a> {
    framing_error: Option<&'a str>,
    truncated_from: Option<usize>,
    transport: Transport,
    received_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::correlator::Accept;
    use crate::telemetry::IngestMetrics;
    use meniscus_grid::Event;
    use meniscus_record::columnar::batch_to_events;
    use meniscus_record::stage::BoxFuture;
    use meniscus_record::{Ack, Batch, Stage, StageError, WhenFull};

    /// One frame's event as the columns hold it, read back.
    trait SyslogEvent {
        fn syslog_event(
            &self,
            registry: &TenantRegistry,
            bytes: &[u8],
            truncated_from: Option<usize>,
            source: &SourceContext,
            received_at: DateTime<Utc>,
        ) -> Result<Event, Refusal>;
    }

    impl SyslogEvent for Correlator {
        fn syslog_event(
            &self,
            registry: &TenantRegistry,
            bytes: &[u8],
            truncated_from: Option<usize>,
            source: &SourceContext,
            received_at: DateTime<Utc>,
        ) -> Result<Event, Refusal> {
            let mut batch = BatchBuilder::default();
            self.append_syslog(
                &mut batch,
                registry,
                bytes,
                truncated_from,
                None,
                source,
                received_at,
            )?;
            let groups = batch.finish().unwrap();
            assert_eq!(groups.len(), 1);
            let mut events = batch_to_events(&groups[0].batch, groups[0].tenant.as_str());
            assert_eq!(events.len(), 1);
            Ok(events.remove(0))
        }
    }

    struct Discard;
    impl Stage for Discard {
        fn hand_on(
            self: Arc<Self>,
            _batch: Batch,
            _when_full: WhenFull,
        ) -> BoxFuture<Result<Ack, StageError>> {
            Box::pin(async { Ok(Ack::default()) })
        }
    }

    fn correlator() -> (Arc<Correlator>, Arc<TenantRegistry>) {
        let specs = serde_yaml::from_str(
            "- {id: acme, tokens: [{value: s3cret}], producers: [{name: sshd, pattern: sshd, durable: true}]}\n- {id: other, tokens: [{value: x}]}",
        )
        .unwrap();
        let registry = TenantRegistry::from_specs(specs).unwrap();
        let metrics = Arc::new(IngestMetrics::register(&meniscus_metrics::Registry::new()));
        let accept = Accept::new(registry, Arc::new(Discard), metrics);
        let correlator = Correlator::new(accept, 65536, 1 << 20);
        let registry = correlator.accept.registry();
        (correlator, registry)
    }

    fn source(bound: Option<&str>) -> SourceContext {
        SourceContext {
            transport: Transport::Tcp,
            bound_tenant: bound.map(|id| TenantId::parse(id).unwrap()),
            timezone: chrono_tz::UTC,
        }
    }

    #[test]
    fn rfc5424_with_credentials_becomes_an_event_without_them() {
        let (correlator, registry) = correlator();
        let line = br#"<38>1 2026-11-25T10:00:00Z web sshd 42 ID7 [meniscus@32473 tenant="acme" token="s3cret"][origin ip="10.0.0.1" ip="10.0.0.2"] Accepted key"#;
        let event = correlator
            .syslog_event(&registry, line, None, &source(None), Utc::now())
            .unwrap();
        assert_eq!(event.meniscus.tenant, "acme");
        assert_eq!(event.meniscus.producer, "sshd");
        assert!(event.meniscus.durable);
        assert_eq!(event.msg, "Accepted key");
        assert_eq!(event.host.as_deref(), Some("web"));
        assert!(
            !event.native.contains_key("meniscus@32473"),
            "credentials must not be stored"
        );
        assert_eq!(
            event.native["origin"]["ip"],
            serde_json::json!(["10.0.0.1", "10.0.0.2"])
        );
    }

    #[test]
    fn wrong_token_and_missing_tenant_are_refused_and_counted() {
        let (correlator, registry) = correlator();
        let wrong = br#"<13>1 - - - - - [meniscus tenant="acme" token="nope"] x"#;
        assert_eq!(
            correlator
                .syslog_event(&registry, wrong, None, &source(None), Utc::now())
                .unwrap_err(),
            Refusal::Auth("invalid_token")
        );
        let anonymous = b"<13>Nov 25 10:00:00 host app: hello";
        assert_eq!(
            correlator
                .syslog_event(&registry, anonymous, None, &source(None), Utc::now())
                .unwrap_err(),
            Refusal::NoTenant
        );
        let foreign = br#"<13>1 - - - - - [meniscus tenant="other" token="x"] x"#;
        assert_eq!(
            correlator
                .syslog_event(&registry, foreign, None, &source(Some("acme")), Utc::now())
                .unwrap_err(),
            Refusal::TenantMismatch
        );
        assert_eq!(
            correlator
                .accept
                .metrics
                .auth_failures
                .get(&["tcp", "invalid_token"]),
            1
        );
        assert_eq!(
            correlator
                .accept
                .metrics
                .auth_failures
                .get(&["tcp", "no_tenant"]),
            1
        );
    }

    #[test]
    fn a_bound_listener_needs_no_token() {
        let (correlator, registry) = correlator();
        let event = correlator
            .syslog_event(
                &registry,
                b"<189>91: *Oct  7 03:10:04.123: %SYS-5-CONFIG_I: Configured",
                None,
                &source(Some("acme")),
                Utc::now(),
            )
            .unwrap();
        assert_eq!(event.meniscus.tenant, "acme");
        assert_eq!(event.pri, Some(189));
    }

    #[test]
    fn unparseable_and_non_utf8_frames_are_kept_raw() {
        let (correlator, registry) = correlator();
        let bad = br#"<13>1 2026-13-45T99:00:00Z h a - - [meniscus tenant="acme" token="s3cret"] broken stamp"#;
        let event = correlator
            .syslog_event(&registry, bad, None, &source(None), Utc::now())
            .unwrap();
        assert!(event.meniscus.parse_error.is_some());
        // The whole frame is kept, except the credentials, which are never stored.
        assert_eq!(event.msg, "<13>1 2026-13-45T99:00:00Z h a - - broken stamp");
        let binary = b"<13>Nov 25 10:00:00 host app: caf\xe9";
        let event = correlator
            .syslog_event(
                &registry,
                binary,
                Some(70000),
                &source(Some("acme")),
                Utc::now(),
            )
            .unwrap();
        assert_eq!(event.meniscus.raw_encoding.as_deref(), Some("base64"));
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(event.meniscus.raw.unwrap())
            .unwrap();
        assert_eq!(decoded, binary);
        assert_eq!(event.meniscus.truncated_from, Some(70000));
        assert_eq!(correlator.accept.metrics.invalid_utf8.get(&["tcp"]), 1);
    }

    #[test]
    fn credentials_written_as_text_are_honoured_and_redacted() {
        let (correlator, registry) = correlator();
        let line =
            br#"<13>Nov 25 10:00:00 host app: [meniscus tenant="acme" token="s3cret"] hello"#;
        let event = correlator
            .syslog_event(&registry, line, None, &source(None), Utc::now())
            .unwrap();
        assert_eq!(event.meniscus.tenant, "acme");
        assert_eq!(event.msg, "hello", "the element is cut out, token and all");
        let wrong = br#"<13>Nov 25 10:00:00 host app: [meniscus tenant="acme" token="nope"] hello"#;
        assert!(correlator
            .syslog_event(&registry, wrong, None, &source(None), Utc::now())
            .is_err());
    }

    #[test]
    fn an_element_after_the_time_stamp_is_not_taken_for_the_host() {
        let (correlator, registry) = correlator();
        let line = br#"<13>Nov 25 10:00:00 [meniscus tenant="acme" token="s3cret"] web-1 app: hi"#;
        let event = correlator
            .syslog_event(&registry, line, None, &source(None), Utc::now())
            .unwrap();
        assert_eq!(event.meniscus.tenant, "acme");
        assert_eq!(event.host.as_deref(), Some("web-1"));
        assert_eq!(event.pname.as_deref(), Some("app"));
        assert_eq!(event.msg, "hi");
    }

    #[test]
    fn on_a_bound_listener_text_is_data_and_cannot_get_a_line_refused() {
        let (correlator, registry) = correlator();
        // An intruder's user name that mimics credentials, on acme's own port: stored as it
        // was logged, never refused.
        for text in [
            r#"<38>Nov 25 10:00:00 host sshd[42]: Invalid user [meniscus tenant="other" token="guess"] from 10.0.0.9"#,
            r#"<38>Nov 25 10:00:00 host sshd: [meniscus tenant="other" token="wrong"] at the header position"#,
        ] {
            let event = correlator
                .syslog_event(
                    &registry,
                    text.as_bytes(),
                    None,
                    &source(Some("acme")),
                    Utc::now(),
                )
                .unwrap();
            assert_eq!(event.meniscus.tenant, "acme");
            assert!(
                event.msg.contains("[meniscus tenant=\"other\""),
                "{}",
                event.msg
            );
        }
        // A real token, even on a bound port, is cut out rather than stored.
        let line = br#"<13>Nov 25 10:00:00 host app: [meniscus tenant="acme" token="s3cret"] hi"#;
        let event = correlator
            .syslog_event(&registry, line, None, &source(Some("acme")), Utc::now())
            .unwrap();
        assert_eq!(event.msg, "hi");
    }

    #[test]
    fn the_raw_copy_of_a_frame_that_is_not_utf8_holds_no_token() {
        let (correlator, registry) = correlator();
        let line =
            b"<13>Nov 25 10:00:00 host app: [meniscus tenant=\"acme\" token=\"s3cret\"] caf\xe9";
        let event = correlator
            .syslog_event(&registry, line, None, &source(None), Utc::now())
            .unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(event.meniscus.raw.unwrap())
            .unwrap();
        assert_eq!(raw, b"<13>Nov 25 10:00:00 host app: caf\xe9");
        assert!(!event.msg.contains("s3cret"));
    }

    #[test]
    fn sd_ids_with_any_enterprise_number_are_credentials() {
        assert!(is_meniscus_sd_id("meniscus"));
        assert!(is_meniscus_sd_id("meniscus@32473"));
        assert!(is_meniscus_sd_id("meniscus@1.2.3"));
        assert!(!is_meniscus_sd_id("meniscus@"));
        assert!(!is_meniscus_sd_id("meniscusx"));
        assert!(!is_meniscus_sd_id("origin"));
    }
}
