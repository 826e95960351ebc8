//! Standalone configuration: listeners, HTTP, storage limits and tenants, from one YAML file.
//!
//! Every section has defaults, so an empty file (or none) gives a working instance: syslog TCP
//! and UDP on 5514, HTTP on 8080 and a `demo` tenant. Unknown fields are refused, so a typo
//! fails at start instead of being silently ignored.

use std::net::SocketAddr;
use std::path::PathBuf;

use meniscus_grid::duration::HumanDuration;
use meniscus_grid::tenant::{TenantId, TenantSpec};
use meniscus_grid::Transport;
use meniscus_store::query::QueryLimits;
use meniscus_store::StoreOptions;

use crate::connections::ConnectionLimits;
use meniscus_syslog::Framing;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Config {
    /// Syslog listeners. Default: TCP and UDP on 0.0.0.0:5514, framing `auto`.
    #[serde(default = "default_listeners")]
    pub listeners: Vec<ListenerConfig>,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub ops: OpsConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub normalizer: NormalizerConfig,
    #[serde(default)]
    pub archive: ArchiveConfig,
    /// Tenants. When the list is empty, standalone creates a `demo` tenant with a random token
    /// (kept in the data dir so it survives restarts) and prints it.
    #[serde(default)]
    pub tenants: Vec<TenantSpec>,
}

impl Default for Config {
    fn default() -> Self {
        // An empty document deserialises into the defaults of every section.
        serde_yaml::from_str("{}").expect("the empty configuration is valid")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerProtocol {
    Tcp,
    Udp,
    Tls,
    /// RELP (rsyslog's `omrelp`): every message acknowledged once stored.
    Relp,
}

impl ListenerProtocol {
    /// The transport its messages are stamped with.
    pub fn transport(self) -> Transport {
        match self {
            ListenerProtocol::Tcp => Transport::Tcp,
            ListenerProtocol::Udp => Transport::Udp,
            ListenerProtocol::Tls => Transport::Tls,
            ListenerProtocol::Relp => Transport::Relp,
        }
    }
}

/// Values written as text in the file and parsed once, at load, into their type (framing,
/// time zone): a bad value fails there, with the field named.
mod as_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::fmt::Display;
    use std::str::FromStr;

    pub fn serialize<T: Display, S: Serializer>(
        value: &T,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, T, D>(deserializer: D) -> Result<T, D::Error>
    where
        T: FromStr,
        T::Err: Display,
        D: Deserializer<'de>,
    {
        let text = String::deserialize(deserializer)?;
        text.parse()
            .map_err(|error| serde::de::Error::custom(format!("{text:?}: {error}")))
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListenerConfig {
    pub protocol: ListenerProtocol,
    pub address: SocketAddr,
    /// TCP and TLS framing: `auto`, `octet-counting` or `lf`. `auto` treats a frame as
    /// octet-counted only when it starts with 1 to 9 digits, one space and `<` (a syslog PRI);
    /// anything else, such as Cisco's `91: *Oct 7 ...`, is read as a line ending in LF or NUL.
    #[serde(default, with = "as_text")]
    pub framing: Framing,
    /// Zone for RFC 3164 time stamps, which carry none (an IANA name, e.g. `Europe/Berlin`).
    #[serde(default = "default_timezone", with = "as_text")]
    pub timezone: chrono_tz::Tz,
    /// Binds the listener to one tenant: every message on it belongs to this tenant, no token
    /// needed (a port per tenant, as hosted syslog services hand out). Messages that still carry
    /// a `meniscus` SD element must name this tenant with a valid token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantId>,
    /// TLS only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain of this server.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM CA bundle: when set, clients must present a certificate signed by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
    /// With `client_ca_file`: clients without a certificate are let in too (they name their
    /// tenant and token in the messages); a certificate presented must still verify.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub client_cert_optional: bool,
    /// Maps a client certificate's subject CN or a DNS SAN to a tenant id, so devices that
    /// cannot add structured data are identified by their certificate.
    #[serde(default)]
    pub client_tenants: Vec<ClientCertTenant>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientCertTenant {
    /// Subject common name or DNS subject-alternative name of the client certificate.
    pub name: String,
    pub tenant: TenantId,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpConfig {
    /// Tenant API, HTTP ingest, `/metrics`, `/healthz`, `/readyz`.
    #[serde(default = "default_http_address")]
    pub address: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            address: default_http_address(),
        }
    }
}

/// The operators' listener: `/metrics` with every series (tenant-labelled ones included),
/// `/healthz`, `/readyz`, served on threads of its own so that no ingest flood can starve a
/// health check. Keep it off networks tenants can reach.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpsConfig {
    #[serde(default = "default_ops_address")]
    pub address: SocketAddr,
}

impl Default for OpsConfig {
    fn default() -> Self {
        OpsConfig {
            address: default_ops_address(),
        }
    }
}

fn default_ops_address() -> SocketAddr {
    "127.0.0.1:9464".parse().expect("valid literal address")
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    /// Largest syslog message kept whole; longer ones are cut to this size, flagged with
    /// `meniscus.truncated_from` and counted in `meniscus_oversize_messages_total`.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Largest HTTP request body (after decompression); larger bodies get 413.
    #[serde(default = "default_max_http_body_bytes")]
    pub max_http_body_bytes: usize,
    /// Largest SQL/search result, in rows; larger results are cut and marked `truncated`.
    #[serde(default = "default_max_result_rows")]
    pub max_result_rows: usize,
    /// Largest SQL/counts result, in bytes of JSON; larger results are cut and marked
    /// `truncated`.
    #[serde(default = "default_max_result_bytes")]
    pub max_result_bytes: usize,
    /// Memory one query may use (operators, and any one function call) before it fails with a
    /// clear error.
    #[serde(default = "default_query_memory_bytes")]
    pub query_memory_bytes: usize,
    /// Time one query may run; at the deadline its work stops.
    #[serde(default = "default_query_timeout")]
    pub query_timeout: HumanDuration,
    /// Longest SQL statement accepted, in bytes.
    #[serde(default = "default_max_statement_bytes")]
    pub max_statement_bytes: usize,
    /// Queries running at once, in all; more get 429 with `Retry-After`.
    #[serde(default = "default_max_concurrent_queries")]
    pub max_concurrent_queries: usize,
    /// Queries one tenant may run at once; more get 429 with `Retry-After`.
    #[serde(default = "default_max_concurrent_queries_per_tenant")]
    pub max_concurrent_queries_per_tenant: usize,
    /// Nice value of query threads (0–19): how far below ingest queries run when both want
    /// the CPU; they still take every idle cycle. 0 runs them alongside ingest.
    #[serde(default = "default_query_thread_nice")]
    pub query_thread_nice: i32,
    /// Open connections one listener (each syslog TCP/TLS listener, the HTTP listener) takes;
    /// more are closed at once and counted.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Open connections one client address may hold on one listener.
    #[serde(default = "default_max_connections_per_address")]
    pub max_connections_per_address: usize,
    /// A syslog connection that sends nothing for this long is closed (senders reconnect when
    /// they have something to say); HTTP keep-alive connections alike.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// Time an HTTP client has to send its request headers.
    #[serde(default = "default_http_header_timeout")]
    pub http_header_timeout: HumanDuration,
    /// Time an HTTP client has to send its request body.
    #[serde(default = "default_http_body_timeout")]
    pub http_body_timeout: HumanDuration,
}

impl Limits {
    /// The query engine's limits as this section sets them.
    pub fn query_limits(&self) -> QueryLimits {
        QueryLimits {
            memory_bytes: self.query_memory_bytes,
            timeout: self.query_timeout.0,
            max_rows: self.max_result_rows,
            max_result_bytes: self.max_result_bytes,
            max_statement_bytes: self.max_statement_bytes,
            max_concurrent: self.max_concurrent_queries,
            max_concurrent_per_tenant: self.max_concurrent_queries_per_tenant,
            thread_nice: self.query_thread_nice,
        }
    }

    /// The connection limits as this section sets them.
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            per_listener: self.max_connections,
            per_address: self.max_connections_per_address,
            idle_timeout: self.idle_timeout.0,
            header_timeout: self.http_header_timeout.0,
            body_timeout: self.http_body_timeout.0,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("the empty limits section is valid")
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StorageConfig {
    /// Events buffered between ingest and the write-ahead log; when full, TCP reads wait and
    /// HTTP answers 503 with `Retry-After`.
    #[serde(default = "default_queue_batches")]
    pub queue_batches: usize,
    /// Events held in memory (queryable) before they are written to Parquet.
    #[serde(default = "default_flush_events")]
    pub flush_events: usize,
    /// Bytes of events (in their in-memory Arrow form) held before they are written to
    /// Parquet, whatever their count: bounds memory when messages are large.
    #[serde(default = "default_flush_bytes")]
    pub flush_bytes: usize,
    /// zstd level of compacted files (closed hourly windows rewritten sorted by `pname`, `ts`);
    /// 0 turns compaction off.
    #[serde(default = "default_compaction_zstd_level")]
    pub compaction_zstd_level: i32,
    /// Most rows in one compacted file (they are held in memory while sorted: about 400 bytes
    /// each).
    #[serde(default = "default_compaction_max_rows")]
    pub compaction_max_rows: u64,
    /// How long an hour is left alone after it ends and after its newest file, before it is
    /// compacted (late events and replayed backlogs land first).
    #[serde(default = "default_compaction_grace")]
    pub compaction_grace: HumanDuration,
    /// Compacted files store each message's first twelve words in columns of their own:
    /// about 8 % less disk on bench/query's corpus, at about twice the CPU for a free-text
    /// search or a `msg LIKE` over those files. Off by default.
    #[serde(default = "default_compaction_split_messages")]
    pub compaction_split_messages: bool,
    /// Longest time events stay only in memory and the write-ahead log.
    #[serde(default = "default_flush_interval")]
    pub flush_interval: HumanDuration,
    /// How often expired hot data is deleted.
    #[serde(default = "default_retention_interval")]
    pub retention_check_interval: HumanDuration,
    /// Event ids stored this recently are remembered (and read back from recent files at
    /// start), so a batch delivered again (an unacknowledged retry) is stored once.
    #[serde(default = "default_dedupe_window")]
    pub dedupe_window: HumanDuration,
}

impl StorageConfig {
    /// The store's options as this section sets them (the key directory is the archive
    /// section's: see [`Config::store_options`]).
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            queue_batches: self.queue_batches,
            flush_events: self.flush_events,
            flush_bytes: self.flush_bytes,
            flush_interval: self.flush_interval.0,
            dedupe_window: self.dedupe_window.0,
            compaction: meniscus_store::compaction::CompactionOptions {
                zstd_level: self.compaction_zstd_level,
                max_rows: self.compaction_max_rows,
                grace: self.compaction_grace.0,
                split_messages: self.compaction_split_messages,
            },
            key_dir: None,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("the empty storage section is valid")
    }
}

/// The long-term archive: closed hours of the hot store copied to object storage, encrypted
/// per object with a key wrapped by the tenant's key, read by queries once the hot copy is gone.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArchiveConfig {
    /// Off: nothing is archived and events are kept for the tenant's `shortTerm` only.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Where objects go: `s3://bucket/prefix` (AWS or an S3-compatible server; set
    /// `aws_endpoint` in `options`), `gs://bucket/prefix`, `az://container/prefix` or
    /// `file:///dir`. Default: `DATA_DIR/archive-objects`, a local directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A file of `KEY=VALUE` lines with the target's credentials (`aws_access_key_id=…`,
    /// `aws_secret_access_key=…`), e.g. a mounted Secret. The environment's `AWS_*`,
    /// `GOOGLE_*` and `AZURE_*` variables are read too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
    /// Settings of the target by `object_store` key: `aws_endpoint`, `aws_region`,
    /// `aws_allow_http`, `aws_virtual_hosted_style_request`, ….
    #[serde(default)]
    pub options: std::collections::BTreeMap<String, String>,
    /// Where tenant keys are kept, one file per tenant (mode 0600), made on first use; they
    /// seal archived objects and the hot-store files of `encrypted` producers (used even with
    /// the archive off). Default: `DATA_DIR/keys`. Losing it makes both unreadable: back it
    /// up, or mount it from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_dir: Option<PathBuf>,
    /// How often closed hours are looked for and uploaded.
    #[serde(default = "default_upload_interval")]
    pub upload_interval: HumanDuration,
    /// Bytes of fetched objects (counted by their plain size) kept on local disk for queries;
    /// their chunks are kept sealed, as stored, and opened as they are read.
    #[serde(default = "default_archive_cache_bytes")]
    pub cache_bytes: u64,
}

fn default_true() -> bool {
    true
}

fn default_upload_interval() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(30))
}

fn default_archive_cache_bytes() -> u64 {
    1024 * 1024 * 1024
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        serde_yaml::from_str("{}").expect("the empty archive section is valid")
    }
}

impl ArchiveConfig {
    /// Where tenant keys are kept for a store under `data_dir` (the archive's, and those of
    /// hot-store files of `encrypted` producers, whether or not the archive is on).
    pub fn key_dir(&self, data_dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
        Ok(match &self.key_dir {
            Some(dir) => dir.clone(),
            None => std::path::absolute(data_dir)?.join("keys"),
        })
    }

    /// The archive's options for a store under `data_dir`; `None` when it is off.
    pub fn archive_options(
        &self,
        data_dir: &std::path::Path,
    ) -> anyhow::Result<Option<meniscus_store::archive::ArchiveOptions>> {
        if !self.enabled {
            return Ok(None);
        }
        let data_dir = std::path::absolute(data_dir)?;
        let url = match &self.url {
            Some(url) => url.clone(),
            None => url::Url::from_directory_path(data_dir.join("archive-objects"))
                .map_err(|_| anyhow::anyhow!("cannot make a file URL of {}", data_dir.display()))?
                .to_string(),
        };
        Ok(Some(meniscus_store::archive::ArchiveOptions {
            url,
            credentials_file: self.credentials_file.clone(),
            options: self.options.clone(),
            key_dir: self.key_dir(&data_dir)?,
            upload_interval: self.upload_interval.0,
            cache_bytes: self.cache_bytes,
        }))
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NormalizerConfig {
    /// Folder of rulebase files: a producer's `pattern: NAME` uses `NAME.rb` from here, else the
    /// built-in rulebase NAME (`meniscus_rulebase::Rulebase::builtin_names()`, listed in the
    /// README). Files are reloaded when they change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rulebase_dir: Option<PathBuf>,
}

fn default_listeners() -> Vec<ListenerConfig> {
    let address: SocketAddr = "0.0.0.0:5514".parse().expect("valid literal address");
    [ListenerProtocol::Tcp, ListenerProtocol::Udp]
        .into_iter()
        .map(|protocol| ListenerConfig::new(protocol, address))
        .collect()
}

fn default_timezone() -> chrono_tz::Tz {
    chrono_tz::UTC
}

impl ListenerConfig {
    /// A listener with the default framing and time zone, no tenant binding and no TLS.
    pub fn new(protocol: ListenerProtocol, address: SocketAddr) -> ListenerConfig {
        ListenerConfig {
            protocol,
            address,
            framing: Framing::default(),
            timezone: default_timezone(),
            tenant: None,
            tls: None,
        }
    }
}

fn default_http_address() -> SocketAddr {
    "0.0.0.0:8080".parse().expect("valid literal address")
}

fn default_max_message_bytes() -> usize {
    64 * 1024
}

fn default_max_http_body_bytes() -> usize {
    16 * 1024 * 1024
}

// Query and connection defaults are defined once, in `QueryLimits::default` and
// `ConnectionLimits::default`.
fn default_max_result_rows() -> usize {
    QueryLimits::default().max_rows
}

fn default_max_result_bytes() -> usize {
    QueryLimits::default().max_result_bytes
}

fn default_query_memory_bytes() -> usize {
    QueryLimits::default().memory_bytes
}

fn default_query_timeout() -> HumanDuration {
    HumanDuration(QueryLimits::default().timeout)
}

fn default_max_statement_bytes() -> usize {
    QueryLimits::default().max_statement_bytes
}

fn default_max_concurrent_queries() -> usize {
    QueryLimits::default().max_concurrent
}

fn default_max_concurrent_queries_per_tenant() -> usize {
    QueryLimits::default().max_concurrent_per_tenant
}

fn default_query_thread_nice() -> i32 {
    QueryLimits::default().thread_nice
}

fn default_max_connections() -> usize {
    ConnectionLimits::default().per_listener
}

fn default_max_connections_per_address() -> usize {
    ConnectionLimits::default().per_address
}

fn default_idle_timeout() -> HumanDuration {
    HumanDuration(ConnectionLimits::default().idle_timeout)
}

fn default_http_header_timeout() -> HumanDuration {
    HumanDuration(ConnectionLimits::default().header_timeout)
}

fn default_http_body_timeout() -> HumanDuration {
    HumanDuration(ConnectionLimits::default().body_timeout)
}

// The store's defaults are defined once, in `StoreOptions::default` (with the measurements
// behind them); the configuration only names them.
fn default_queue_batches() -> usize {
    StoreOptions::default().queue_batches
}

fn default_flush_events() -> usize {
    StoreOptions::default().flush_events
}

fn default_compaction_zstd_level() -> i32 {
    StoreOptions::default().compaction.zstd_level
}

fn default_compaction_grace() -> HumanDuration {
    HumanDuration(StoreOptions::default().compaction.grace)
}

fn default_compaction_max_rows() -> u64 {
    StoreOptions::default().compaction.max_rows
}

fn default_compaction_split_messages() -> bool {
    StoreOptions::default().compaction.split_messages
}

fn default_flush_bytes() -> usize {
    StoreOptions::default().flush_bytes
}

fn default_flush_interval() -> HumanDuration {
    HumanDuration(StoreOptions::default().flush_interval)
}

fn default_dedupe_window() -> HumanDuration {
    HumanDuration(StoreOptions::default().dedupe_window)
}

fn default_retention_interval() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(60))
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_yaml::Error,
    },
    #[error("invalid config: {0}")]
    Invalid(String),
}

impl Config {
    /// The store's options for a store under `data_dir`: the storage section's, with the key
    /// directory of the archive section.
    pub fn store_options(&self, data_dir: &std::path::Path) -> anyhow::Result<StoreOptions> {
        Ok(StoreOptions {
            key_dir: Some(self.archive.key_dir(data_dir)?),
            ..self.storage.store_options()
        })
    }

    pub fn load(path: &std::path::Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let config: Config = serde_yaml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source,
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: values that must agree with each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for listener in &self.listeners {
            let name =
                format!("{:?} listener on {}", listener.protocol, listener.address).to_lowercase();
            match (listener.protocol, &listener.tls) {
                (ListenerProtocol::Tls, None) => {
                    return Err(ConfigError::Invalid(format!(
                        "{name}: needs a `tls` section with certFile and keyFile"
                    )))
                }
                (ListenerProtocol::Tcp | ListenerProtocol::Udp, Some(_)) => {
                    return Err(ConfigError::Invalid(format!(
                        "{name}: `tls` is only for protocols tls and relp"
                    )))
                }
                _ => {}
            }
            if let Some(tls) = &listener.tls {
                if !tls.client_tenants.is_empty() && tls.client_ca_file.is_none() {
                    return Err(ConfigError::Invalid(format!(
                        "{name}: clientTenants needs clientCaFile, or no client certificate is ever asked for"
                    )));
                }
                if tls.client_cert_optional && tls.client_ca_file.is_none() {
                    return Err(ConfigError::Invalid(format!(
                        "{name}: clientCertOptional needs clientCaFile (without it no client certificate is asked for)"
                    )));
                }
            }
            let known = |tenant: &TenantId| {
                self.tenants.is_empty() || self.tenants.iter().any(|spec| &spec.id == tenant)
            };
            if let Some(tenant) = &listener.tenant {
                if !known(tenant) {
                    return Err(ConfigError::Invalid(format!(
                        "{name}: tenant {tenant} is not defined under `tenants`"
                    )));
                }
            }
            for mapping in listener.tls.iter().flat_map(|tls| &tls.client_tenants) {
                if !known(&mapping.tenant) {
                    return Err(ConfigError::Invalid(format!(
                        "{name}: client certificate {:?} maps to undefined tenant {}",
                        mapping.name, mapping.tenant
                    )));
                }
            }
        }
        if !(0..=19).contains(&self.limits.query_thread_nice) {
            return Err(ConfigError::Invalid(
                "limits.queryThreadNice must be 0-19 (a nice value; 0 runs queries alongside ingest)"
                    .into(),
            ));
        }
        if self.limits.max_message_bytes < 480 {
            return Err(ConfigError::Invalid(
                "limits.maxMessageBytes must be at least 480 (RFC 5424 §6.1)".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_has_working_defaults() {
        let config = Config::default();
        assert_eq!(config.listeners.len(), 2);
        assert_eq!(config.http.address.port(), 8080);
        assert_eq!(config.limits.max_message_bytes, 65536);
        config.validate().unwrap();
    }

    #[test]
    fn typos_and_bad_values_are_refused_with_the_field_named() {
        let error = serde_yaml::from_str::<Config>("listners: []").unwrap_err();
        assert!(error.to_string().contains("listners"), "{error}");
        // Typed at load: a bad framing or zone fails parsing, with the field named.
        let error = serde_yaml::from_str::<Config>(
            "listeners: [{protocol: tcp, address: '127.0.0.1:1', framing: octets}]",
        )
        .unwrap_err();
        assert!(error.to_string().contains("unknown framing"), "{error}");
        let error = serde_yaml::from_str::<Config>(
            "listeners: [{protocol: tcp, address: '127.0.0.1:1', timezone: Mars/Olympus}]",
        )
        .unwrap_err();
        assert!(error.to_string().contains("Mars/Olympus"), "{error}");
        let config: Config =
            serde_yaml::from_str("listeners: [{protocol: tls, address: '127.0.0.1:1'}]").unwrap();
        assert!(config
            .validate()
            .unwrap_err()
            .to_string()
            .contains("needs a `tls` section"));
    }

    #[test]
    fn a_listener_bound_to_an_undefined_tenant_is_refused() {
        let config: Config = serde_yaml::from_str(
            "listeners: [{protocol: udp, address: '127.0.0.1:1', tenant: ghost}]\ntenants: [{id: real, tokens: [{value: t}]}]",
        )
        .unwrap();
        assert!(config.validate().unwrap_err().to_string().contains("ghost"));
    }

    #[test]
    fn client_certificate_settings_without_a_client_ca_are_refused() {
        for (tls, says) in [
            (
                "clientTenants: [{name: gw, tenant: real}]",
                "clientTenants needs clientCaFile",
            ),
            (
                "clientCertOptional: true",
                "clientCertOptional needs clientCaFile",
            ),
        ] {
            let config: Config = serde_yaml::from_str(&format!(
                "listeners: [{{protocol: tls, address: '127.0.0.1:1', tls: {{certFile: c, keyFile: k, {tls}}}}}]\ntenants: [{{id: real, tokens: [{{value: t}}]}}]"
            ))
            .unwrap();
            let error = config.validate().unwrap_err().to_string();
            assert!(error.contains(says), "{error}");
        }
    }

    /// The configuration block of the README: after "## Configuration", the first YAML block.
    fn readme_configuration() -> &'static str {
        let readme = include_str!("../../README.md");
        let section = &readme[readme
            .find("## Configuration")
            .expect("the README has a Configuration section")..];
        let start = section.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
        let end = start + section[start..].find("```").expect("the block ends");
        &section[start..end]
    }

    /// Every key of a YAML value, nested ones included.
    fn keys(value: &serde_yaml::Value, into: &mut std::collections::BTreeSet<String>) {
        match value {
            serde_yaml::Value::Mapping(map) => {
                for (key, value) in map {
                    if let Some(key) = key.as_str() {
                        into.insert(key.to_string());
                    }
                    keys(value, into);
                }
            }
            serde_yaml::Value::Sequence(items) => items.iter().for_each(|item| keys(item, into)),
            _ => {}
        }
    }

    #[test]
    fn the_readme_configuration_reference_is_in_step_with_the_structs() {
        let block = readme_configuration();
        // Unknown fields are refused: a renamed or removed field fails here.
        let documented: Config = serde_yaml::from_str(block)
            .unwrap_or_else(|error| panic!("the README's configuration does not load: {error}"));
        documented.validate().unwrap();

        // Every field is documented: the defaults' fields, and the optional ones of a listener.
        let mut fields = std::collections::BTreeSet::new();
        keys(
            &serde_yaml::to_value(Config::default()).unwrap(),
            &mut fields,
        );
        let mut listener = ListenerConfig::new(ListenerProtocol::Tls, default_http_address());
        listener.tenant = Some(TenantId::parse("acme").unwrap());
        listener.tls = Some(TlsConfig {
            cert_file: "c".into(),
            key_file: "k".into(),
            client_ca_file: Some("ca".into()),
            client_cert_optional: false,
            client_tenants: vec![ClientCertTenant {
                name: "n".into(),
                tenant: TenantId::parse("acme").unwrap(),
            }],
        });
        keys(&serde_yaml::to_value(&listener).unwrap(), &mut fields);
        keys(
            &serde_yaml::to_value(NormalizerConfig {
                rulebase_dir: Some("/r".into()),
            })
            .unwrap(),
            &mut fields,
        );
        let mut in_readme = std::collections::BTreeSet::new();
        keys(&serde_yaml::from_str(block).unwrap(), &mut in_readme);
        let missing: Vec<&String> = fields.difference(&in_readme).collect();
        assert!(
            missing.is_empty(),
            "fields missing from the README's configuration: {missing:?}"
        );

        // The values shown for http, limits and storage are the defaults.
        let defaults = serde_yaml::to_value(Config::default()).unwrap();
        let shown = serde_yaml::to_value(&documented).unwrap();
        for section in ["http", "ops", "limits", "storage"] {
            assert_eq!(
                shown[section], defaults[section],
                "the README shows other values than the defaults for `{section}`"
            );
        }
    }
}
