//! The tenant-API persona as its own process: the tenants' read API (search, counts, job
//! status, SQL) on `http.address` of `--config`, answered by the storage workers and merged
//! ([`Fanout`](super::fanout::Fanout)). Tokens are checked here first (tenants from the
//! coordinator), so a stranger's request never reaches a storage worker.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Context;
use meniscus_grid::routes::Persona;
use meniscus_metrics::Registry;
use meniscus_record::stage::{Ack, Batch, BoxFuture, Stage, StageError, WhenFull};
use tokio::net::TcpListener;

use meniscus_coordinator::state::Load;

use super::fanout::Fanout;
use super::rate::Rate;
use super::{control_plane, grid_config, grid_correlator, serve, WorkerArgs};
use crate::connections::{ConnectionTable, SocketBudget};
use crate::http::{self, AppState};
use crate::telemetry::HttpMetrics;

/// The tenant-API persona takes no events: its accept path only authenticates.
struct TakesNoEvents;

impl Stage for TakesNoEvents {
    fn hand_on(self: Arc<Self>, _: Batch, _: WhenFull) -> BoxFuture<Result<Ack, StageError>> {
        Box::pin(async {
            Err(StageError::refused(
                "the tenant-API persona takes no events: send them to a correlator",
            ))
        })
    }
}

pub async fn run(args: WorkerArgs, personas: Vec<Persona>) -> anyhow::Result<()> {
    let config = grid_config(&args)?;
    let metrics = Registry::new();
    let control = control_plane(&args, personas)?;
    // The heartbeat reports the requests answered per second: what the autoscaler sizes
    // the tenant API by.
    let http_metrics = HttpMetrics::register(&metrics);
    let requests = http_metrics.requests.clone();
    let answered = Rate::starting_at(requests.total());
    let (snapshots, _heartbeats) = control.clone().spawn(&metrics, move || Load {
        events_in_per_second: answered.per_second(requests.total()),
        ..Load::default()
    });
    let correlator = grid_correlator(
        &config,
        Arc::new(TakesNoEvents),
        &metrics,
        snapshots.clone(),
    );

    let connection_limits = config.limits.connection_limits();
    let state = Arc::new(AppState {
        correlator: correlator.clone(),
        store: None,
        archive: None,
        queries: None,
        http_metrics,
        registry: metrics.clone(),
        connection_limits: connection_limits.clone(),
        ready: Default::default(),
        loki_tails: Default::default(),
    });
    let http_listener = TcpListener::bind(config.http.address)
        .await
        .with_context(|| format!("cannot listen for HTTP on {}", config.http.address))?;
    // One budget for the process: the tenant API's connections and the grid port's.
    let sockets = SocketBudget::from_process_limit();
    let table = ConnectionTable::new(
        connection_limits,
        "http",
        sockets.clone(),
        correlator.accept.metrics.refused_connections.clone(),
    );
    let app = Fanout::new(state.clone(), snapshots, config.limits.query_limits())
        .router()
        .merge(http::operations_router(state.clone()));
    tracing::info!(http = %http_listener.local_addr()?, "tenant API listening");
    tokio::spawn(http::server::serve(http_listener, app, table));
    state.ready.store(true, Ordering::Relaxed);
    serve(&args, axum::Router::new(), metrics, "tenant API", sockets).await
}
