//! The store's metrics, registered once when it opens.

use meniscus_metrics::{Counter, Family, Gauge, Histogram, Registry, LATENCY_BUCKETS};

/// Every metric the store updates.
pub struct StoreMetrics {
    pub stored_events: Family<Counter>,
    pub duplicate_events: Counter,
    pub ingest_to_queryable: Histogram,
    pub queue_full: Family<Counter>,
    pub wal_appended_bytes: Counter,
    pub wal_fsyncs: Counter,
    pub wal_fsync_duration: Histogram,
    pub wal_failures: Family<Counter>,
    pub wal_writable: Gauge,
    pub wal_replay_skipped: Counter,
    pub wal_replay_damaged: Counter,
    pub hot_flushes: Counter,
    pub hot_flush_failures: Counter,
    pub hot_compactions: Counter,
    pub hot_compaction_failures: Counter,
    pub hot_compaction_set_aside: Gauge,
    pub hot_compaction_backlog: Gauge,
    pub hot_missing_files: Gauge,
    pub hot_retention_deleted_files: Family<Counter>,
    pub query_requests: Family<Counter>,
    pub query_duration: Family<Histogram>,
}

impl StoreMetrics {
    pub fn register(registry: &Registry) -> StoreMetrics {
        StoreMetrics {
            stored_events: registry.counters("meniscus_store_stored_events_total", "Events committed to the write-ahead log and the hot store.", &["tenant"]),
            duplicate_events: registry.counter("meniscus_store_duplicate_events_total", "Events not stored again because their event_id was already held (redeliveries)."),
            ingest_to_queryable: registry.histogram("meniscus_store_ingest_to_queryable_seconds", "Time from receiving a batch's first event to it being queryable.", LATENCY_BUCKETS),
            queue_full: registry.counters("meniscus_store_queue_full_total", "Times a batch found the queue into the write-ahead log full (readers waited, HTTP got 503).", &["transport"]),
            wal_appended_bytes: registry.counter("meniscus_wal_appended_bytes_total", "Bytes appended to the write-ahead log."),
            wal_fsyncs: registry.counter("meniscus_wal_fsyncs_total", "Write-ahead log group commits made durable."),
            wal_fsync_duration: registry.histogram("meniscus_wal_fsync_duration_seconds", "Time one write-ahead log fsync took.", LATENCY_BUCKETS),
            wal_failures: registry.counters("meniscus_wal_failures_total", "Failed write-ahead log operations (each retires the segment or stops durable writes until it works again).", &["operation"]),
            wal_writable: registry.gauge("meniscus_wal_writable", "1 while the write-ahead log takes appends, 0 while a failed disk stops them (see /readyz)."),
            wal_replay_skipped: registry.counter("meniscus_wal_replay_skipped_records_total", "Whole records skipped at replay because their events could not be decoded."),
            wal_replay_damaged: registry.counter("meniscus_wal_replay_damaged_regions_total", "Damaged regions in the middle of a segment skipped at replay (the segment is kept in wal/damaged/)."),
            hot_flushes: registry.counter("meniscus_hot_flushes_total", "Memory-to-Parquet flushes."),
            hot_flush_failures: registry.counter("meniscus_hot_flush_failures_total", "Failed flushes (retried; the events stay in memory and the write-ahead log)."),
            hot_compactions: registry.counter("meniscus_hot_compactions_total", "Closed hot-store windows rewritten into one sorted, more compressed file."),
            hot_compaction_failures: registry.counter("meniscus_hot_compaction_failures_total", "Failed compactions."),
            hot_compaction_set_aside: registry.gauge("meniscus_hot_compaction_set_aside_groups", "Compaction groups set aside after failing repeatedly (their files stay live and queryable)."),
            hot_compaction_backlog: registry.gauge("meniscus_hot_compaction_backlog_files", "Parquet files of closed windows not yet compacted."),
            hot_missing_files: registry.gauge("meniscus_hot_missing_files", "Live hot-store files missing from disk; queries answer without their windows and say so."),
            hot_retention_deleted_files: registry.counters("meniscus_hot_retention_deleted_files_total", "Hot-store files deleted by retention.", &["tenant"]),
            query_requests: registry.counters("meniscus_query_requests_total", "Tenant queries by kind and outcome.", &["kind", "outcome"]),
            query_duration: registry.histograms("meniscus_query_duration_seconds", "Time tenant queries took, by kind.", &["kind"], LATENCY_BUCKETS),
        }
    }
}
