//! Logs (`tracing`, JSON when stderr is not a terminal) and the worker's metrics.
//!
//! Metrics follow `meniscus_<subsystem>_<name>_<unit>` and are registered once, at start, in
//! the process's [`Registry`] (the store registers its own there too); `/metrics` renders it.
//! Callers add per batch, not per message.

use std::io::IsTerminal;

use meniscus_metrics::{Counter, Family, Gauge, Registry};

pub fn init_logging() {
    use tracing_subscriber::{fmt, EnvFilter};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if std::io::stderr().is_terminal() {
        fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    } else {
        fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
}

/// What the correlator counts: every ingest path, whatever its protocol.
pub struct IngestMetrics {
    pub received_events: Family<Counter>,
    pub received_bytes: Family<Counter>,
    pub parse_errors: Family<Counter>,
    pub oversize_messages: Family<Counter>,
    pub invalid_utf8: Family<Counter>,
    pub auth_failures: Family<Counter>,
    pub rejected_messages: Family<Counter>,
    pub rate_limited_events: Family<Counter>,
    pub open_connections: Family<Gauge>,
    pub refused_connections: Family<Counter>,
    pub closed_idle_connections: Family<Counter>,
}

impl IngestMetrics {
    pub fn register(registry: &Registry) -> IngestMetrics {
        IngestMetrics {
            received_events: registry.counters("meniscus_ingest_received_events_total", "Events accepted from senders.", &["tenant", "transport"]),
            received_bytes: registry.counters("meniscus_ingest_received_bytes_total", "Raw bytes of accepted messages.", &["tenant", "transport"]),
            parse_errors: registry.counters("meniscus_ingest_parse_errors_total", "Messages stored raw because they could not be parsed.", &["tenant", "transport"]),
            oversize_messages: registry.counters("meniscus_ingest_oversize_messages_total", "Messages cut to limits.maxMessageBytes.", &["transport"]),
            invalid_utf8: registry.counters("meniscus_ingest_invalid_utf8_messages_total", "Messages that were not valid UTF-8 (stored with the raw bytes in base64).", &["transport"]),
            auth_failures: registry.counters("meniscus_ingest_auth_failures_total", "Messages or requests refused for a missing, wrong or expired token or an unknown tenant.", &["transport", "reason"]),
            rejected_messages: registry.counters("meniscus_ingest_rejected_messages_total", "Messages or requests refused for a reason other than authentication.", &["transport", "reason"]),
            rate_limited_events: registry.counters("meniscus_ingest_rate_limited_events_total", "Events refused (HTTP 429) or slowed down (syslog TCP/TLS) by their tenant's limits.eventsPerSecond.", &["tenant", "transport"]),
            open_connections: registry.gauges("meniscus_ingest_open_connections", "Open syslog TCP/TLS connections.", &["transport"]),
            refused_connections: registry.counters("meniscus_ingest_refused_connections_total", "Connections closed at once: over the listener's or the client address's limit, or no file descriptor to spare.", &["transport", "reason"]),
            closed_idle_connections: registry.counters("meniscus_ingest_idle_connections_closed_total", "Connections closed after limits.idleTimeout without a byte, or closed while idle to make room on a full listener.", &["transport"]),
        }
    }
}

/// What the HTTP layer counts.
pub struct HttpMetrics {
    pub requests: Family<Counter>,
}

impl HttpMetrics {
    pub fn register(registry: &Registry) -> HttpMetrics {
        HttpMetrics {
            requests: registry.counters(
                "meniscus_http_requests_total",
                "HTTP requests by route and status code.",
                &["route", "status"],
            ),
        }
    }
}

/// What the normalizer counts.
pub struct NormalizerMetrics {
    pub events: Family<Counter>,
    pub rulebase_load_errors: Family<Counter>,
}

impl NormalizerMetrics {
    pub fn register(registry: &Registry) -> NormalizerMetrics {
        NormalizerMetrics {
            events: registry.counters(
                "meniscus_normalizer_events_total",
                "Events run through a rulebase, by pattern and whether a rule matched.",
                &["pattern", "result"],
            ),
            rulebase_load_errors: registry.counters(
                "meniscus_normalizer_rulebase_load_errors_total",
                "Rulebase files that failed to load (the previous version stays active).",
                &["pattern"],
            ),
        }
    }
}
