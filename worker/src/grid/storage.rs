//! The storage persona as its own process: the store (WAL, hot store, archive, retention)
//! fed by links from correlators, and the tenant read API over what it holds.
//!
//! - `--listen`: the grid side: `POST /v1/link/records` from paired workers only, the tenant
//!   read API for the tenant-API persona to fan out to, `/healthz` and `/metrics`;
//! - `http.address` of `--config`: the tenant API (search, SQL, counts, jobs, Loki queries)
//!   and publish, authenticated with the tenants the coordinator sends.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use meniscus_coordinator::state::{Load, TenantLoad};
use meniscus_grid::routes::Persona;
use meniscus_grid::TenantId;
use meniscus_metrics::Registry;
use meniscus_store::archive::{self, Archive};
use meniscus_store::query::QueryEngine;
use meniscus_store::{retention, Store};
use tokio::net::TcpListener;

use super::rate::Rate;
use super::{control_plane, grid_config, grid_correlator, handoff, purge, serve, WorkerArgs};
use crate::allocator;
use crate::connections::{ConnectionTable, SocketBudget};
use crate::http::{self, AppState};
use crate::telemetry::HttpMetrics;

pub async fn run(args: WorkerArgs, personas: Vec<Persona>) -> anyhow::Result<()> {
    let config = grid_config(&args)?;
    let metrics = Registry::new();
    let store_options = config.store_options(&args.data_dir)?;
    let store = Store::open(&args.data_dir, store_options.clone(), &metrics)?;
    let control = control_plane(&args, personas)?;
    // The heartbeat tells the coordinator what this worker holds of each tenant and which
    // purge orders it carried out; the archive joins once it is open.
    let purged = purge::Purged::default();
    let archived: Arc<OnceLock<Arc<Archive>>> = Arc::default();
    // While this worker drains, its links and its own publishes refuse new events.
    let handoff = handoff::Handoff::default();
    let load = {
        let (store, archived, purged) = (store.clone(), archived.clone(), purged.clone());
        let handoff = handoff.clone();
        let stored = Rate::starting_at(store.stored_events());
        move || {
            let mut load = storage_load(&store, archived.get(), &purged, &stored);
            load.handed_off = handoff.done();
            load
        }
    };
    let (snapshots, _heartbeats) = control.clone().spawn(&metrics, load);
    let correlator = grid_correlator(
        &config,
        Arc::new(handoff::UnlessDraining {
            handoff: handoff.clone(),
            next: store.clone(),
        }),
        &metrics,
        snapshots.clone(),
    );

    let mut queries = QueryEngine::new(
        store.hot.clone(),
        config.limits.query_limits(),
        store.metrics.clone(),
    )
    .with_thread_stop(allocator::release_thread_memory);
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
            let _ = archived.set(archive.clone());
            Some(archive)
        }
        None => None,
    };
    purge::spawn(snapshots.clone(), store.clone(), archive.clone(), purged);
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

    let connection_limits = config.limits.connection_limits();
    let http_listener = TcpListener::bind(config.http.address)
        .await
        .with_context(|| format!("cannot listen for HTTP on {}", config.http.address))?;
    let state = Arc::new(AppState {
        correlator: correlator.clone(),
        store: Some(store.clone()),
        archive,
        queries: Some(queries),
        http_metrics: HttpMetrics::register(&metrics),
        registry: metrics.clone(),
        connection_limits: connection_limits.clone(),
        ready: Default::default(),
        loki_tails: Default::default(),
    });
    // One budget for the process: the tenant API's connections and the grid port's.
    let sockets = SocketBudget::from_process_limit();
    let table = ConnectionTable::new(
        connection_limits,
        "http",
        sockets.clone(),
        correlator.accept.metrics.refused_connections.clone(),
    );
    tracing::info!(http = %http_listener.local_addr()?, "tenant API listening");
    tokio::spawn(http::server::serve(
        http_listener,
        http::router(state.clone()),
        table,
    ));
    state.ready.store(true, Ordering::Relaxed);

    // The grid address serves links and, for the tenant-API persona's fan-out, the read API
    // (with the tenants' own tokens, as on `http.address`).
    let receiver = super::link::Receiver::refusing_when(
        snapshots.clone(),
        store.clone(),
        &metrics,
        handoff.draining_switch(),
    );
    handoff::spawn(
        handoff,
        control.clone(),
        snapshots,
        store.clone(),
        state.archive.clone(),
        &metrics,
    );
    let grid_side = receiver.router().merge(http::read_router(state.clone()));
    serve(&args, grid_side, metrics, "storage", sockets).await?;
    state.ready.store(false, Ordering::Relaxed);
    if let Err(error) = tokio::time::timeout(Duration::from_secs(30), store.flush()).await {
        tracing::warn!(%error, "flush at shutdown timed out; the write-ahead log will be replayed at the next start");
    }
    Ok(())
}

/// A storage worker's heartbeat: the events it stored per second since the last one, the
/// batches waiting for its write-ahead log, the bytes it holds per tenant (hot store and
/// archive) and the purge orders it carried out.
fn storage_load(
    store: &Store,
    archive: Option<&Arc<Archive>>,
    purged: &purge::Purged,
    stored: &Rate,
) -> Load {
    let events_in_per_second = stored.per_second(store.stored_events());
    let mut bytes = store.hot.bytes_by_tenant();
    if let Some(archive) = archive {
        for (tenant, stored) in archive.bytes_by_tenant() {
            *bytes.entry(tenant).or_default() += stored;
        }
    }
    Load {
        tenants: bytes
            .into_iter()
            .filter_map(|(tenant, bytes_stored)| {
                let load = TenantLoad {
                    bytes_stored,
                    ..TenantLoad::default()
                };
                Some((TenantId::parse(&tenant).ok()?, load))
            })
            .collect(),
        purged: purged.lock().iter().cloned().collect(),
        events_in_per_second,
        queue_depth: store.queued_batches() as u64,
        ..Load::default()
    }
}
