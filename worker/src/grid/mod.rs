//! `meniscus worker --persona …`: personas as processes of a grid.
//!
//! - the coordinator persona: the `meniscus-coordinator` crate served over HTTP, its state
//!   in `DATA_DIR/coordinator/state.json`;
//! - the broadcaster persona ([`broadcaster`]): follows the coordinator, serves workers;
//! - the correlator persona, with the normalizer or without ([`ingest`]): listeners and HTTP
//!   ingest, batches spooled ([`spool`]) and forwarded ([`forward`]) over links ([`link`]) to
//!   the tenants' storage workers, or first to a normalizer hop; the jobs it acknowledged
//!   are remembered ([`accepted_jobs`]) for their `accepted` status;
//! - the normalizer persona on its own ([`normalizer`]): a hop between correlators and
//!   storage, fed by links, forwarding normalized events through spools of its own;
//! - the storage persona, with the tenant API or without ([`storage`]): the store, fed by
//!   links, and the tenant read API over what it holds; it carries out the coordinator's
//!   purge orders ([`purge`]);
//! - the tenant-API persona on its own ([`tenant_api`]): the tenants' reads, fanned out to
//!   the storage workers and merged ([`fanout`]; SQL across them in [`fanout_sql`], the Loki
//!   API in [`fanout_loki`], its live tail in [`fanout_tail`]).
//!
//! Every worker runs the control loop ([`control`]): pairing, heartbeats, routes and tenants.

pub mod accepted_jobs;
pub mod broadcaster;
pub mod control;
pub mod fanout;
pub mod fanout_loki;
pub mod fanout_sql;
pub mod fanout_tail;
pub mod forward;
pub mod handoff;
pub mod ingest;
pub mod link;
pub mod normalizer;
pub mod purge;
pub mod rate;
pub mod spool;
pub mod storage;
pub mod tenant_api;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::http::header;
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use meniscus_coordinator::state::Rules;
use meniscus_coordinator::state::Snapshot;
use meniscus_coordinator::{http as coordinator_http, spawn_expiry, Coordinator, Secrets};
use meniscus_grid::routes::Persona;
use meniscus_grid::tenant::TenantRegistry;
use meniscus_metrics::{Exposure, Registry};
use tokio::sync::watch;

use crate::config::Config;
use crate::connections::{ConnectionLimits, ConnectionTable, SocketBudget};

#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// Personas of this process, comma-separated: `coordinator`; `broadcaster`;
    /// `correlator` or `correlator,normalizer`; `normalizer` (a hop of its own between
    /// correlators and storage); `storage` or `storage,tenant-api`; `tenant-api`.
    #[arg(long, value_delimiter = ',', required = true)]
    pub persona: Vec<String>,
    /// Configuration file (YAML, as for standalone): listeners, http, limits, storage,
    /// normalizer, archive. Tenants come from the coordinator, so `tenants` must be empty.
    #[arg(long, env = "MENISCUS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Disk the link spools of a correlator or normalizer may use together; past it, ingest
    /// is refused (HTTP 503) or slowed (syslog over TCP), and a normalizer answers its links
    /// 503, until the next workers take records again.
    #[arg(long, default_value_t = 1 << 30)]
    pub spool_quota_bytes: u64,
    /// When a correlator or normalizer zstd-compresses link records: `backlog` (only those
    /// that will wait: the next worker is down, or the spools hold half their quota),
    /// `always` (a metered network between workers), `never`.
    #[arg(long, value_enum, default_value_t = forward::LinkCompression::Backlog)]
    pub link_compression: forward::LinkCompression,
    /// On SIGTERM, how long a correlator or normalizer keeps sending its spools before it
    /// exits.
    #[arg(long, default_value_t = 30)]
    pub drain_seconds: u64,
    /// Where this worker keeps its state (the coordinator: `coordinator/state.json`).
    #[arg(long, env = "MENISCUS_DATA_DIR", default_value = "meniscus-data")]
    pub data_dir: PathBuf,
    /// Address this worker's API listens on (the coordinator's, the broadcaster's).
    #[arg(long, default_value = "0.0.0.0:7400")]
    pub listen: SocketAddr,
    /// The coordinator's URL (`http://coordinator:7400`), for every persona but the
    /// coordinator.
    #[arg(long)]
    pub coordinator: Option<String>,
    /// Where other workers reach this one (`host:port`); defaults to --listen.
    #[arg(long)]
    pub advertise: Option<String>,
    /// A stable name for this worker, shown in the coordinator's registry (on Kubernetes the
    /// pod's name, which tells the operator a storage worker's StatefulSet ordinal).
    #[arg(long)]
    pub name: Option<String>,
    /// File holding the grid's pairing secret: a worker must present it to pair.
    #[arg(long)]
    pub pairing_secret_file: Option<PathBuf>,
    /// File holding the administrators' credential (tenant registry, worker listing).
    #[arg(long)]
    pub admin_credential_file: Option<PathBuf>,
    /// A worker not heard from for this many seconds leaves the routes.
    #[arg(long, default_value_t = 15)]
    pub heartbeat_timeout_seconds: u64,
    /// Distinct workers that must report a worker down (within 30 s) to take it out.
    #[arg(long, default_value_t = 2)]
    pub down_reports: usize,
    /// Storage workers per tenant.
    #[arg(long, default_value_t = 2)]
    pub storage_copies: usize,
}

/// Reads a secret from a file (a mounted Secret): trimmed, and never empty.
pub(crate) fn read_secret(path: Option<&Path>, what: &str) -> anyhow::Result<String> {
    let path = path.with_context(|| format!("the coordinator needs --{what}-file"))?;
    let secret = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the {what} from {}", path.display()))?;
    let secret = secret.trim().to_string();
    anyhow::ensure!(!secret.is_empty(), "{} is empty", path.display());
    Ok(secret)
}

pub async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let mut personas = Vec::new();
    for name in &args.persona {
        let persona = Persona::parse(name.trim()).with_context(|| {
            format!("unknown persona {name:?}: one of correlator, normalizer, storage, tenant-api, broadcaster, coordinator")
        })?;
        personas.push(persona);
    }
    personas.sort_by_key(|persona| persona.name());
    personas.dedup();
    use Persona::*;
    match personas.as_slice() {
        [Coordinator] => serve_coordinator(args).await,
        [Broadcaster] => serve_broadcaster(args).await,
        [Correlator] | [Correlator, Normalizer] => ingest::run(args, personas).await,
        [Normalizer] => normalizer::run(args, personas).await,
        [Storage] | [Storage, TenantApi] => storage::run(args, personas).await,
        [TenantApi] => tenant_api::run(args, personas).await,
        _ => anyhow::bail!(
            "this combination of personas is not built: run `coordinator`, `broadcaster`, \
             `correlator[,normalizer]`, `normalizer`, `storage[,tenant-api]` or `tenant-api` \
             as separate workers, or `meniscus standalone` for every persona in one process"
        ),
    }
}

/// A data persona's configuration: `--config` or the embedded defaults, without tenants
/// (they come from the coordinator, and two sources of tenants would disagree).
fn grid_config(args: &WorkerArgs) -> anyhow::Result<Config> {
    let config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    anyhow::ensure!(
        config.tenants.is_empty(),
        "a grid worker takes its tenants from the coordinator: remove `tenants` from the \
         configuration and add them with the coordinator's admin API"
    );
    config.validate()?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create data dir {}", args.data_dir.display()))?;
    Ok(config)
}

/// The control plane of any persona but the coordinator: the coordinator's URL and the
/// pairing secret are required.
fn control_plane(
    args: &WorkerArgs,
    personas: Vec<Persona>,
) -> anyhow::Result<Arc<control::ControlPlane>> {
    let coordinator = args
        .coordinator
        .clone()
        .context("a grid worker needs --coordinator URL")?;
    Ok(Arc::new(control::ControlPlane::new(
        control::ControlOptions {
            coordinator,
            pairing_secret: read_secret(args.pairing_secret_file.as_deref(), "pairing-secret")?,
            personas,
            advertise: args
                .advertise
                .clone()
                .unwrap_or_else(|| args.listen.to_string()),
            name: args.name.clone(),
            capacity: 0,
            data_dir: args.data_dir.clone(),
            heartbeat_interval: Duration::from_secs(2),
        },
    )))
}

/// A grid worker's correlator: the tenants of the latest snapshot (followed as they change),
/// handing what it takes to `next`. Every data persona has one — to ingest, or only to
/// authenticate tenants on its tenant-facing calls.
fn grid_correlator(
    config: &Config,
    next: Arc<dyn meniscus_record::Stage>,
    metrics: &Registry,
    snapshots: watch::Receiver<Option<Snapshot>>,
) -> Arc<crate::correlator::Correlator> {
    let accept = crate::correlator::Accept::new(
        Default::default(),
        next,
        Arc::new(crate::telemetry::IngestMetrics::register(metrics)),
    );
    let correlator = crate::correlator::Correlator::new(
        accept,
        config.limits.max_message_bytes,
        config.limits.max_http_body_bytes,
    );
    follow_tenants(snapshots, correlator.clone());
    correlator
}

/// Keeps `correlator`'s tenants those of the latest snapshot. Replaced only when the tenants'
/// version moves (a replacement starts rate limits afresh, and routes change more often).
fn follow_tenants(
    mut snapshots: watch::Receiver<Option<Snapshot>>,
    correlator: Arc<crate::correlator::Correlator>,
) {
    tokio::spawn(async move {
        let mut version = None;
        loop {
            let specs = snapshots.borrow_and_update().as_ref().and_then(|snapshot| {
                (version != Some(snapshot.tenants.version))
                    .then(|| (snapshot.tenants.version, snapshot.tenants.specs.clone()))
            });
            if let Some((now, specs)) = specs {
                match TenantRegistry::from_specs(specs) {
                    Ok(registry) => {
                        correlator.accept.replace_registry(registry);
                        version = Some(now);
                        tracing::info!(version = now, "tenants from the coordinator in force");
                    }
                    Err(error) => {
                        tracing::error!(%error, "tenants from the coordinator do not check out; the ones in force stay")
                    }
                }
            }
            if snapshots.changed().await.is_err() {
                return;
            }
        }
    });
}

/// Serves `app` plus /metrics and /healthz on --listen until SIGTERM or Ctrl-C.
///
/// Connections take file descriptors from `sockets`, the process's budget (shared with its
/// tenant-facing listeners): a flood of connections to the grid port is refused once the
/// budget is spent, instead of taking the descriptors the store needs for its log and files.
async fn serve(
    args: &WorkerArgs,
    app: axum::Router,
    registry: Registry,
    what: &str,
    sockets: Arc<SocketBudget>,
) -> anyhow::Result<()> {
    let refused = registry.counters(
        "meniscus_grid_refused_connections_total",
        "Connections to the grid port closed at once: over its limit, or no file descriptor to spare.",
        &["transport", "reason"],
    );
    // Workers of a grid may share an address (pods behind NAT, a test's loopback): no share
    // per address, only the listener's.
    let limits = ConnectionLimits {
        per_listener: GRID_MAX_CONNECTIONS,
        per_address: GRID_MAX_CONNECTIONS,
        ..ConnectionLimits::default()
    };
    let silent = refused.with(&["grid", "silent"]);
    let connections = ConnectionTable::new(limits, "grid", sockets, refused);
    let registry = Arc::new(registry);
    let app = app.route("/healthz", get(|| async { "ok\n" })).route(
        "/metrics",
        get(move || {
            let registry = registry.clone();
            async move {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    registry.render(Exposure::Full),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(address = %listener.local_addr()?, "{what} listening");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // Link records (about a megabyte at full rate) arrive in one HTTP/2 frame each instead
    // of sixty-four 16 KiB ones, so the body is the received bytes themselves, decoded in
    // place; gathering the pieces into one buffer was a thirtieth of a storage worker's CPU.
    // The windows let a sender keep its records in flight (see `forward::IN_FLIGHT`).
    builder
        .http2()
        .max_frame_size(LINK_FRAME_BYTES)
        .initial_stream_window_size(LINK_FRAME_BYTES * 2)
        .initial_connection_window_size(LINK_FRAME_BYTES * 8);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%error, "{what}: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = terminate.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
        };
        let Ok(slot) = connections.admit(peer.ip()) else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (builder, app, watcher) = (builder.clone(), app.clone(), graceful.watcher());
        let silent = silent.clone();
        tokio::spawn(async move {
            let _slot = slot;
            // A worker speaks at once (an HTTP request, HTTP/2's preface); a socket that stays
            // silent holds a descriptor of the budget for nothing, until it is closed here.
            let mut first = [0u8; 1];
            match tokio::time::timeout(GRID_FIRST_BYTES, stream.peek(&mut first)).await {
                Ok(Ok(read)) if read > 0 => {}
                Ok(_) => return,
                Err(_) => {
                    silent.inc();
                    tracing::debug!(%peer, "grid connection silent since it opened: closed");
                    return;
                }
            }
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(app))
                .into_owned();
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%peer, %error, "connection ended");
            }
        });
    }
    // Stop accepting; requests under way (a link record being stored) finish first.
    drop(listener);
    graceful.shutdown().await;
    tracing::info!("{what} stopped");
    Ok(())
}

/// How long a connection to the grid port may stay silent after it opens (see `serve`).
const GRID_FIRST_BYTES: Duration = Duration::from_secs(10);

/// Most connections a worker's grid port holds at once: a coordinator's long polls and
/// heartbeats from every worker of a large grid, a storage worker's links from every
/// correlator.
const GRID_MAX_CONNECTIONS: usize = 16_384;

/// The largest HTTP/2 frame a worker's listener takes: a link record's size at full rate.
const LINK_FRAME_BYTES: u32 = 4 * 1024 * 1024;

async fn serve_broadcaster(args: WorkerArgs) -> anyhow::Result<()> {
    let control = control_plane(&args, vec![Persona::Broadcaster])?;
    let registry = Registry::new();
    let (_snapshots, _heartbeats) = control
        .clone()
        .spawn(&registry, meniscus_coordinator::state::Load::default);
    let broadcaster = broadcaster::Broadcaster::start(control, &registry);
    serve(
        &args,
        broadcaster.router(),
        registry,
        "broadcaster",
        SocketBudget::from_process_limit(),
    )
    .await
}

async fn serve_coordinator(args: WorkerArgs) -> anyhow::Result<()> {
    let secrets = Secrets {
        pairing: read_secret(args.pairing_secret_file.as_deref(), "pairing-secret")?,
        admin: read_secret(args.admin_credential_file.as_deref(), "admin-credential")?,
    };
    let rules = Rules {
        down_reports_needed: args.down_reports.max(1),
        heartbeat_timeout: Duration::from_secs(args.heartbeat_timeout_seconds.max(1)),
        storage_copies: args.storage_copies.max(1),
        ..Rules::default()
    };
    let registry = Registry::new();
    let state_file = args.data_dir.join("coordinator").join("state.json");
    let coordinator = Coordinator::open(&state_file, rules.clone(), secrets, &registry)
        .with_context(|| format!("cannot open the coordinator state {}", state_file.display()))?;
    // Checked a few times per timeout, so a silent worker leaves within ~1.3 timeouts.
    let check = (rules.heartbeat_timeout / 3).max(Duration::from_millis(200));
    let expiry = spawn_expiry(coordinator.clone(), check);
    tracing::info!(
        state = %state_file.display(),
        workers = coordinator.snapshot().routes.workers.len(),
        "coordinator state loaded"
    );
    serve(
        &args,
        coordinator_http::router(coordinator.clone()),
        registry,
        "coordinator",
        SocketBudget::from_process_limit(),
    )
    .await?;
    expiry.abort();
    Ok(())
}
