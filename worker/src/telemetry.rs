//! Logs (`tracing`, JSON when stderr is not a terminal) and Prometheus metrics.
//!
//! Metrics are counter and gauge families with a few low-cardinality labels (tenant, listener,
//! reason). Callers add per batch, not per message, so hot loops do not touch shared atomics
//! more than once per read.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

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

/// One metric family: a name, help text, label names and one value per label set.
pub struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    label_names: &'static [&'static str],
    values: RwLock<BTreeMap<Vec<String>, Arc<AtomicU64>>>,
}

impl Family {
    fn new(
        name: &'static str,
        help: &'static str,
        kind: &'static str,
        label_names: &'static [&'static str],
    ) -> Family {
        Family {
            name,
            help,
            kind,
            label_names,
            values: RwLock::new(BTreeMap::new()),
        }
    }

    fn slot(&self, labels: &[&str]) -> Arc<AtomicU64> {
        debug_assert_eq!(
            labels.len(),
            self.label_names.len(),
            "label count of {}",
            self.name
        );
        let key = key_of(labels);
        if let Some(slot) = self.values.read().get(&key) {
            return slot.clone();
        }
        self.values.write().entry(key).or_default().clone()
    }

    /// Lowers a gauge, never below zero.
    pub fn sub(&self, labels: &[&str], amount: u64) {
        let slot = self.slot(labels);
        let _ = slot.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |value| {
            Some(value.saturating_sub(amount))
        });
    }

    pub fn add(&self, labels: &[&str], amount: u64) {
        if amount > 0 {
            self.slot(labels).fetch_add(amount, Ordering::Relaxed);
        }
    }

    pub fn inc(&self, labels: &[&str]) {
        self.add(labels, 1);
    }

    /// Sets a gauge.
    pub fn set(&self, labels: &[&str], value: u64) {
        self.slot(labels).store(value, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub fn get(&self, labels: &[&str]) -> u64 {
        self.values
            .read()
            .get(&key_of(labels))
            .map(|slot| slot.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for (labels, value) in self.values.read().iter() {
            let value = value.load(Ordering::Relaxed);
            if labels.is_empty() {
                let _ = writeln!(out, "{} {value}", self.name);
                continue;
            }
            let pairs: Vec<String> = self
                .label_names
                .iter()
                .zip(labels)
                .map(|(name, label)| format!("{name}=\"{}\"", escape_label(label)))
                .collect();
            let _ = writeln!(out, "{}{{{}}} {value}", self.name, pairs.join(","));
        }
    }
}

fn key_of(labels: &[&str]) -> Vec<String> {
    labels.iter().map(|label| label.to_string()).collect()
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Every metric the worker exports.
pub struct Metrics {
    pub received_events: Family,
    pub received_bytes: Family,
    pub stored_events: Family,
    pub parse_errors: Family,
    pub oversize_messages: Family,
    pub invalid_utf8: Family,
    pub auth_failures: Family,
    pub rejected_messages: Family,
    pub http_requests: Family,
    pub backpressure: Family,
    pub rate_limited: Family,
    pub wal_fsyncs: Family,
    pub wal_bytes: Family,
    pub flushes: Family,
    pub compactions: Family,
    pub compaction_backlog: Family,
    pub retention_deleted_files: Family,
    pub connections: Family,
    pub queries: Family,
    pub normalized_events: Family,
    pub rulebase_errors: Family,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics {
            received_events: Family::new("meniscus_received_events_total", "Events accepted from senders.", "counter", &["tenant", "transport"]),
            received_bytes: Family::new("meniscus_received_bytes_total", "Raw bytes of accepted messages.", "counter", &["tenant", "transport"]),
            stored_events: Family::new("meniscus_stored_events_total", "Events committed to the write-ahead log and hot store.", "counter", &["tenant"]),
            parse_errors: Family::new("meniscus_parse_errors_total", "Messages stored raw because they could not be parsed.", "counter", &["tenant", "transport"]),
            oversize_messages: Family::new("meniscus_oversize_messages_total", "Messages cut to limits.maxMessageBytes.", "counter", &["transport"]),
            invalid_utf8: Family::new("meniscus_invalid_utf8_messages_total", "Messages that were not valid UTF-8 (stored with the raw bytes in base64).", "counter", &["transport"]),
            auth_failures: Family::new("meniscus_auth_failures_total", "Messages or requests refused for a missing, wrong or expired token or an unknown tenant.", "counter", &["transport", "reason"]),
            rejected_messages: Family::new("meniscus_rejected_messages_total", "Messages refused for a reason other than authentication.", "counter", &["transport", "reason"]),
            http_requests: Family::new("meniscus_http_requests_total", "HTTP requests by route and status code.", "counter", &["route", "status"]),
            backpressure: Family::new("meniscus_backpressure_total", "Times ingest waited for or was refused queue space.", "counter", &["transport"]),
            rate_limited: Family::new("meniscus_rate_limited_events_total", "Events refused (HTTP 429) or slowed down (syslog TCP/TLS) by their tenant's limits.eventsPerSecond.", "counter", &["tenant", "transport"]),
            wal_fsyncs: Family::new("meniscus_wal_fsyncs_total", "Write-ahead log group commits.", "counter", &[]),
            wal_bytes: Family::new("meniscus_wal_bytes_total", "Bytes appended to the write-ahead log.", "counter", &[]),
            flushes: Family::new("meniscus_hot_flushes_total", "Memory-to-Parquet flushes.", "counter", &[]),
            compactions: Family::new("meniscus_hot_compactions_total", "Closed hot-store windows rewritten into one sorted, more compressed file.", "counter", &[]),
            compaction_backlog: Family::new("meniscus_hot_compaction_backlog_files", "Parquet files of closed windows not yet compacted.", "gauge", &[]),
            retention_deleted_files: Family::new("meniscus_retention_deleted_files_total", "Hot-store files deleted by retention.", "counter", &["tenant"]),
            connections: Family::new("meniscus_open_connections", "Open syslog TCP/TLS connections.", "gauge", &["transport"]),
            queries: Family::new("meniscus_queries_total", "Tenant queries by kind and outcome.", "counter", &["kind", "outcome"]),
            normalized_events: Family::new("meniscus_normalized_events_total", "Events run through a rulebase, by pattern and whether a rule matched.", "counter", &["pattern", "result"]),
            rulebase_errors: Family::new("meniscus_rulebase_load_errors_total", "Rulebase files that failed to load (the previous version stays active).", "counter", &["pattern"]),
        })
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for family in [
            &self.received_events,
            &self.received_bytes,
            &self.stored_events,
            &self.parse_errors,
            &self.oversize_messages,
            &self.invalid_utf8,
            &self.auth_failures,
            &self.rejected_messages,
            &self.http_requests,
            &self.backpressure,
            &self.rate_limited,
            &self.wal_fsyncs,
            &self.wal_bytes,
            &self.flushes,
            &self.compactions,
            &self.compaction_backlog,
            &self.retention_deleted_files,
            &self.connections,
            &self.queries,
            &self.normalized_events,
            &self.rulebase_errors,
        ] {
            family.render(&mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text_with_escaped_labels() {
        let metrics = Metrics::new();
        metrics.auth_failures.add(&["tcp", "invalid_token"], 3);
        metrics.wal_fsyncs.inc(&[]);
        metrics.received_events.add(&["a\"b", "udp"], 0);
        let text = metrics.render();
        assert!(
            text.contains(
                "meniscus_auth_failures_total{transport=\"tcp\",reason=\"invalid_token\"} 3"
            ),
            "{text}"
        );
        assert!(text.contains("meniscus_wal_fsyncs_total 1"), "{text}");
        assert!(text.contains("# TYPE meniscus_open_connections gauge"));
        assert_eq!(metrics.auth_failures.get(&["tcp", "invalid_token"]), 3);
    }
}
