//! The normalizer persona as its own process: a hop between correlators and storage, scaled
//! on its own (rulebases cost CPU in proportion to events, ingest in proportion to
//! connections).
//!
//! Links from correlators arrive on `--listen` (`POST /v1/link/records`); each record's
//! events go through the rulebases of `normalizer.rulebaseDir` and on to the tenant's storage
//! worker through this worker's own spools. A record is acknowledged once its normalized
//! events are in those spools (fsynced when durable), so the correlator forgets it only when
//! this worker could replay it after a `kill -9`; at worst a record is normalized and sent
//! twice, which storage dedupes by `event_id` — so each tenant goes to its first storage
//! worker by membership, not skipping one that is down (see
//! [`NextHop::StorageByMembership`](super::forward::NextHop)): a copy sent where the first
//! did not go would be stored twice.
//!
//! Correlators send here only while the grid has normalizer hops (a correlator that runs the
//! normalizer itself never does); the jobs of durable publishes this worker spooled answer
//! `accepted` to the tenant-API persona, as a correlator's do. SIGTERM: stop taking links,
//! drain the spools, exit.

use std::sync::Arc;
use std::time::Duration;

use meniscus_grid::routes::Persona;
use meniscus_metrics::Registry;
use meniscus_record::stage::Then;
use meniscus_record::Stage;

use super::forward::NextHop;
use super::ingest::{drain_spools, start_forwarding, Forwarding};
use super::{grid_config, grid_correlator, serve, WorkerArgs};
use crate::http::AppState;
use crate::normalizer::Normalizer;
use crate::telemetry::{HttpMetrics, NormalizerMetrics};

pub async fn run(args: WorkerArgs, personas: Vec<Persona>) -> anyhow::Result<()> {
    let config = grid_config(&args)?;
    let metrics = Registry::new();
    let Forwarding {
        forwarder,
        snapshots,
        heartbeats: _heartbeats,
    } = start_forwarding(&args, personas, &metrics, NextHop::StorageByMembership)?;
    let normalizer = Normalizer::new(
        config.normalizer.rulebase_dir.clone(),
        NormalizerMetrics::register(&metrics),
    );
    normalizer.spawn_reloader(Duration::from_secs(2));
    let next: Arc<dyn Stage> = Arc::new(Then {
        transform: normalizer,
        next: forwarder.clone(),
    });
    let receiver = super::link::Receiver::new(snapshots.clone(), next.clone(), &metrics);

    // Nothing is ingested here; the tenants (followed from the coordinator) authenticate the
    // tenant-API persona's questions about jobs spooled here.
    let correlator = grid_correlator(&config, next, &metrics, snapshots);
    let state = Arc::new(AppState {
        correlator,
        store: None,
        archive: None,
        queries: None,
        http_metrics: HttpMetrics::register(&metrics),
        registry: metrics.clone(),
        connection_limits: config.limits.connection_limits(),
        ready: Default::default(),
        loki_tails: Default::default(),
    });
    let grid_side = receiver
        .router()
        .merge(super::accepted_jobs::router(state, forwarder.jobs.clone()));
    serve(
        &args,
        grid_side,
        metrics,
        "normalizer",
        crate::connections::SocketBudget::from_process_limit(),
    )
    .await?;
    drain_spools(&forwarder, &args).await;
    Ok(())
}
