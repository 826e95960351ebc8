//! The correlator persona as its own process (with the normalizer when asked for): the
//! syslog listeners and HTTP ingest of `--config`, tenants from the coordinator, and every
//! batch handed to the [`Forwarder`](super::forward::Forwarder), which spools it and sends
//! it to the tenant's storage worker, or first to a normalizer hop (`super::normalizer`) when
//! this worker does not normalize and the grid has one.
//!
//! SIGTERM: stop accepting, drain the spools (up to `--drain-seconds`), exit; what is left
//! stays spooled on disk and is sent when the worker starts again.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use meniscus_coordinator::state::{Load, Snapshot, TenantLoad};
use meniscus_grid::routes::Persona;
use meniscus_metrics::Registry;
use meniscus_record::stage::Then;
use meniscus_record::Stage;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::forward::{spool_key, ForwardOptions, Forwarder, NextHop};
use super::rate::Rate;
use super::{control_plane, grid_config, grid_correlator, serve, WorkerArgs};
use crate::connections::{ConnectionTable, SocketBudget};
use crate::correlator::sources::syslog;
use crate::http::{self, AppState};
use crate::normalizer::Normalizer;
use crate::telemetry::{HttpMetrics, NormalizerMetrics};

/// A forwarder and the control loop that feeds it routes and reports its load in the
/// heartbeats: what a correlator and a normalizer hop both run.
pub(super) struct Forwarding {
    pub forwarder: Arc<Forwarder>,
    pub snapshots: watch::Receiver<Option<Snapshot>>,
    /// The heartbeat task: kept for as long as the worker runs.
    pub heartbeats: tokio::task::JoinHandle<()>,
}

pub(super) fn start_forwarding(
    args: &WorkerArgs,
    personas: Vec<Persona>,
    metrics: &Registry,
    next_hop: NextHop,
) -> anyhow::Result<Forwarding> {
    // Events are counted per tenant where they enter the grid, not again at a normalizer hop.
    let counts_tenants = personas.contains(&Persona::Correlator);
    let control = control_plane(args, personas)?;
    let started_at = Some(chrono::Utc::now());
    // The heartbeat reports the forwarder's load; the forwarder needs the routes the control
    // loop keeps: the loop starts first and finds the forwarder here once it exists.
    let forwarding: Arc<OnceLock<Arc<Forwarder>>> = Arc::default();
    let (taken, handed_on) = (Rate::starting_at(0), Rate::starting_at(0));
    let load_of = forwarding.clone();
    let (snapshots, heartbeats) = control.clone().spawn(metrics, move || {
        let Some(forwarder) = load_of.get() else {
            return Load::default();
        };
        let (records, bytes) = forwarder.depth();
        Load {
            events_in_per_second: taken.per_second(forwarder.events_in()),
            events_out_per_second: handed_on.per_second(forwarder.events_out()),
            queue_depth: records,
            spool_bytes: bytes,
            handoff_p99_seconds: forwarder.take_handoff_p99(),
            started_at,
            tenants: if counts_tenants {
                forwarder
                    .tenant_events()
                    .into_iter()
                    .map(|(tenant, events)| {
                        let load = TenantLoad {
                            events,
                            ..TenantLoad::default()
                        };
                        (tenant, load)
                    })
                    .collect()
            } else {
                Default::default()
            },
            purged: Vec::new(),
            handed_off: false,
        }
    });
    let forwarder = Forwarder::start(
        ForwardOptions {
            dir: args.data_dir.join("spool"),
            quota_bytes: args.spool_quota_bytes,
            key: spool_key(&args.data_dir)?,
            compression: args.link_compression,
            next_hop,
        },
        snapshots.clone(),
        control,
        metrics,
    )?;
    let _ = forwarding.set(forwarder.clone());
    Ok(Forwarding {
        forwarder,
        snapshots,
        heartbeats,
    })
}

/// At SIGTERM, once nothing new is taken: sends what the spools hold while the next workers
/// answer, for up to `--drain-seconds`; what is left stays on disk for the next start.
pub(super) async fn drain_spools(forwarder: &Forwarder, args: &WorkerArgs) {
    let drained = forwarder
        .drain(Duration::from_secs(args.drain_seconds))
        .await;
    let (records, bytes) = forwarder.depth();
    if drained {
        tracing::info!("spools drained");
    } else {
        tracing::warn!(
            records,
            bytes,
            "spools not drained in time: they stay on disk and are sent at the next start"
        );
    }
}

pub async fn run(args: WorkerArgs, personas: Vec<Persona>) -> anyhow::Result<()> {
    let config = grid_config(&args)?;
    let metrics = Registry::new();
    let normalizes = personas.contains(&Persona::Normalizer);
    let next_hop = if normalizes {
        NextHop::Storage
    } else {
        NextHop::NormalizerThenStorage
    };
    let Forwarding {
        forwarder,
        snapshots,
        heartbeats: _heartbeats,
    } = start_forwarding(&args, personas, &metrics, next_hop)?;

    let next: Arc<dyn Stage> = if normalizes {
        let normalizer = Normalizer::new(
            config.normalizer.rulebase_dir.clone(),
            NormalizerMetrics::register(&metrics),
        );
        normalizer.spawn_reloader(Duration::from_secs(2));
        Arc::new(Then {
            transform: normalizer,
            next: forwarder.clone(),
        })
    } else {
        forwarder.clone()
    };
    let correlator = grid_correlator(&config, next, &metrics, snapshots);

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
    let state = Arc::new(AppState {
        correlator: correlator.clone(),
        store: None,
        archive: None,
        queries: None,
        http_metrics: HttpMetrics::register(&metrics),
        registry: metrics.clone(),
        connection_limits: connection_limits.clone(),
        ready: Default::default(),
        loki_tails: Default::default(),
    });
    tracing::info!(http = %http_listener.local_addr()?, listeners = ?bound, "correlator listening");
    let http_server = tokio::spawn(http::server::serve(
        http_listener,
        http::ingest_router(state.clone()),
        table("http"),
    ));
    state.ready.store(true, Ordering::Relaxed);

    // The grid side answers the tenant-API persona's question about jobs acknowledged here.
    let grid_side = super::accepted_jobs::router(state.clone(), forwarder.jobs.clone());
    serve(&args, grid_side, metrics, "correlator", sockets).await?;
    // Stopping: nothing new is taken (the HTTP server goes; the syslog listeners go with the
    // process), and what the spools hold is sent while the storage workers answer.
    state.ready.store(false, Ordering::Relaxed);
    http_server.abort();
    drain_spools(&forwarder, &args).await;
    Ok(())
}
