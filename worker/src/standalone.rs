//! Standalone mode: every persona in one process, with an embedded store under `--data-dir`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use meniscus_grid::tenant::{TenantId, TenantSpec, TokenSpec};
use meniscus_metrics::Registry;
use meniscus_store::archive::{self, Archive};
use meniscus_store::query::QueryEngine;
use meniscus_store::{retention, Store};
use tokio::net::TcpListener;

use crate::config::{Config, ListenerConfig, ListenerProtocol, TlsConfig};
use crate::connections::{ConnectionTable, SocketBudget};
use crate::correlator::sources::syslog;
use crate::correlator::{Accept, Correlator};
use crate::http::{self, AppState};
use crate::normalizer::Normalizer;
use crate::telemetry::{HttpMetrics, IngestMetrics, NormalizerMetrics};
use crate::tenant_sources::TenantSources;
use crate::{allocator, pipeline};

#[derive(Debug, clap::Args)]
pub struct StandaloneArgs {
    /// Configuration file (YAML): listeners, http, limits, storage, tenants. Without it, the
    /// embedded defaults are used.
    #[arg(long, env = "MENISCUS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the write-ahead log and the hot store live; created if missing.
    #[arg(long, env = "MENISCUS_DATA_DIR", default_value = "meniscus-data")]
    pub data_dir: PathBuf,
    /// PEM certificate chain: adds a syslog TLS listener (RFC 5425) on --tls-address.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    #[arg(long, default_value = "0.0.0.0:6514")]
    pub tls_address: SocketAddr,
    /// File holding the administrators' credential: turns on the tenant admin API on the ops
    /// address (`/v1/admin/tenants…`, as on a grid's coordinator), whose tenants are kept in
    /// `DATA_DIR/coordinator/state.json` beside those of the configuration file.
    #[arg(long, env = "MENISCUS_ADMIN_CREDENTIAL_FILE")]
    pub admin_credential_file: Option<PathBuf>,
}

const DEMO_TENANT: &str = "demo";

/// The demo tenant's token, made once and kept in the data dir so restarts keep it.
fn demo_token(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("demo-token");
    if let Ok(token) = std::fs::read_to_string(&path) {
        let token = token.trim().to_string();
        if !token.is_empty() {
            return Ok(token);
        }
    }
    // Two ULIDs carry 160 random bits.
    let token = format!("{}{}", ulid::Ulid::new(), ulid::Ulid::new()).to_lowercase();
    std::fs::write(&path, &token).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(token)
}

pub async fn run(args: StandaloneArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create data dir {}", args.data_dir.display()))?;
    let metrics = Registry::new();
    let admin_credential = match &args.admin_credential_file {
        Some(path) => Some(crate::grid::read_secret(Some(path), "admin-credential")?),
        None => None,
    };
    let sources = TenantSources::open(&args.data_dir, Vec::new(), admin_credential, &metrics)?;
    let mut demo = None;
    if config.tenants.is_empty() && !sources.has_admin_tenants() {
        let token = demo_token(&args.data_dir)?;
        config.tenants.push(TenantSpec {
            id: TenantId::parse(DEMO_TENANT)?,
            tokens: vec![TokenSpec {
                value: token.clone(),
                not_after: None,
            }],
            producers: Vec::new(),
            retention: Default::default(),
            limits: Default::default(),
            tls_client_identities: Vec::new(),
        });
        demo = Some(token);
    }
    if let (Some(cert_file), Some(key_file)) = (&args.tls_cert, &args.tls_key) {
        let mut listener = ListenerConfig::new(ListenerProtocol::Tls, args.tls_address);
        listener.tls = Some(TlsConfig {
            cert_file: cert_file.clone(),
            key_file: key_file.clone(),
            client_ca_file: None,
            client_cert_optional: false,
            client_tenants: vec![],
        });
        config.listeners.push(listener);
    }
    config.validate()?;
    sources.set_file_tenants(config.tenants.clone());
    let registry = sources.registry()?;

    let reloads = metrics.counters(
        "meniscus_config_reloads_total",
        "Tenant reloads on SIGHUP, by result (an error keeps the tenants that were in force).",
        &["result"],
    );
    let store_options = config.store_options(&args.data_dir)?;
    let store = Store::open(&args.data_dir, store_options.clone(), &metrics)?;
    let mut queries = QueryEngine::new(
        store.hot.clone(),
        config.limits.query_limits(),
        store.metrics.clone(),
    )
    .with_thread_stop(allocator::release_thread_memory);
    let normalizer = Normalizer::new(
        config.normalizer.rulebase_dir.clone(),
        NormalizerMetrics::register(&metrics),
    );
    normalizer.spawn_reloader(Duration::from_secs(2));
    let next = pipeline::standalone(normalizer, store.clone());
    let accept = Accept::new(registry, next, Arc::new(IngestMetrics::register(&metrics)));
    let correlator = Correlator::new(
        accept,
        config.limits.max_message_bytes,
        config.limits.max_http_body_bytes,
    );

    let archive = match config.archive.archive_options(&args.data_dir)? {
        Some(options) => {
            let tenants = correlator.clone();
            let long_term = Arc::new(move |tenant: &str| {
                tenants
                    .accept
                    .registry()
                    .get(tenant)
                    .map(|tenant| tenant.spec.retention.long_term())
            });
            let archive = Archive::open(&args.data_dir, options, &metrics, long_term)?;
            archive.attach(&store.hot);
            archive::spawn_uploader(
                archive.clone(),
                store.hot.clone(),
                store_options.compaction.clone(),
            );
            queries = queries.with_archive(archive.clone());
            Some(archive)
        }
        None => None,
    };

    // Every listener's connections come out of one budget of file descriptors that leaves
    // the store its reserve.
    let sockets = SocketBudget::from_process_limit();
    let connection_limits = config.limits.connection_limits();
    let table = |transport: &'static str| {
        ConnectionTable::new(
            connection_limits.clone(),
            transport,
            sockets.clone(),
            correlator.accept.metrics.refused_connections.clone(),
        )
    };
    let mut bound = Vec::new();
    for listener in &config.listeners {
        let connections = table(listener.protocol.transport().as_str());
        bound.push(syslog::listen(listener, correlator.clone(), connections).await?);
    }
    let http_listener = TcpListener::bind(config.http.address)
        .await
        .with_context(|| format!("cannot listen for HTTP on {}", config.http.address))?;
    let http_address = http_listener.local_addr()?;
    let state = Arc::new(AppState {
        correlator: correlator.clone(),
        store: Some(store.clone()),
        archive: archive.clone(),
        queries: Some(queries),
        http_metrics: HttpMetrics::register(&metrics),
        registry: metrics,
        connection_limits: connection_limits.clone(),
        ready: Default::default(),
        loki_tails: Default::default(),
    });
    let ops_address = http::ops::start(config.ops.address, state.clone(), sources.admin_router())?;
    sources.follow(correlator.clone());
    let app = http::router(state.clone());
    tokio::spawn(http::server::serve(http_listener, app, table("http")));
    let tenants = correlator.clone();
    retention::spawn(
        store.clone(),
        archive.clone(),
        config.storage.retention_check_interval.0,
        move |tenant| {
            tenants
                .accept
                .registry()
                .get(tenant)
                .map(|tenant| tenant.spec.retention.short_term.0)
        },
    );
    if let Some(path) = args.config.clone() {
        tokio::spawn(reload_tenants_on_hangup(
            path,
            correlator.clone(),
            sources.clone(),
            reloads,
        ));
    }
    state.ready.store(true, Ordering::Relaxed);
    tracing::info!(http = %http_address, ops = %ops_address, listeners = ?bound, data_dir = %args.data_dir.display(), "meniscus standalone ready");
    print_banner(&bound, http_address, ops_address, demo.as_deref());

    shutdown_signal().await;
    tracing::info!("shutting down: flushing memory to parquet");
    state.ready.store(false, Ordering::Relaxed);
    if let Err(error) = tokio::time::timeout(Duration::from_secs(30), store.flush()).await {
        tracing::warn!(%error, "flush at shutdown timed out; the write-ahead log will be replayed at the next start");
    }
    Ok(())
}

/// On SIGHUP, reads the tenants of the configuration file again; they take effect at once
/// (tokens, producers, limits, retention), with no restart and no connection dropped. The
/// rest of the file (listeners, storage) needs a restart. A file that does not check out, or
/// that names no tenant, leaves the tenants in force and says why.
async fn reload_tenants_on_hangup(
    path: PathBuf,
    correlator: Arc<Correlator>,
    sources: Arc<TenantSources>,
    reloads: meniscus_metrics::Family<meniscus_metrics::Counter>,
) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        return;
    };
    while hangups.recv().await.is_some() {
        let reloaded = Config::load(&path)
            .map_err(anyhow::Error::from)
            .and_then(|config| {
                anyhow::ensure!(
                    !config.tenants.is_empty() || sources.has_admin_api(),
                    "it names no tenant (the demo tenant exists only without tenants at start)"
                );
                sources.reload_file(config.tenants, &correlator)
            });
        match reloaded {
            Ok(count) => {
                reloads.inc(&["ok"]);
                tracing::info!(path = %path.display(), tenants = count, "tenants reloaded");
            }
            Err(error) => {
                reloads.inc(&["error"]);
                tracing::error!(path = %path.display(), error = %format!("{error:#}"), "tenants not reloaded; the ones in force stay");
            }
        }
    }
}

fn print_banner(
    bound: &[(ListenerProtocol, SocketAddr)],
    http: SocketAddr,
    ops: SocketAddr,
    demo_token: Option<&str>,
) {
    let host = |address: &SocketAddr| {
        if address.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            address.ip().to_string()
        }
    };
    println!("Meniscus standalone is running.");
    for (protocol, address) in bound {
        println!(
            "  syslog {:<4} {address}",
            format!("{protocol:?}").to_lowercase()
        );
    }
    println!(
        "  http        {http}  (tenant API, /healthz, /readyz, /metrics without tenant series)"
    );
    println!("  ops         {ops}  (/metrics with every series, /healthz, /readyz)");
    if let Some(token) = demo_token {
        println!();
        println!("Demo tenant: id \"{DEMO_TENANT}\", token {token}");
        if let Some((_, tcp)) = bound
            .iter()
            .find(|(protocol, _)| *protocol == ListenerProtocol::Tcp)
        {
            println!("Send a message:");
            println!(
                "  logger --server {} --port {} --tcp --rfc5424 --sd-id meniscus@32473 --sd-param 'tenant=\"{DEMO_TENANT}\"' --sd-param 'token=\"{token}\"' 'hello from logger'",
                host(tcp),
                tcp.port()
            );
        }
        println!("Search it:");
        println!("  curl -s -H 'MESSAGE-TOKEN: {token}' 'http://{}:{}/v1/tenant/{DEMO_TENANT}/events?q=hello'", host(&http), http.port());
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
