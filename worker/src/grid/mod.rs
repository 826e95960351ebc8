//! `meniscus worker --persona …`: personas as processes of a grid.
//!
//! What runs today is the coordinator persona: the `meniscus-coordinator` crate served over
//! HTTP, its state in `DATA_DIR/coordinator/state.json`, so workers (and tests, and the
//! operator later) have a real process to pair with. The other personas still run only
//! together, in `meniscus standalone`: asking for them here is refused with that advice
//! rather than started half-way.

pub mod control;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::http::header;
use axum::routing::get;
use meniscus_coordinator::state::Rules;
use meniscus_coordinator::{http as coordinator_http, spawn_expiry, Coordinator, Secrets};
use meniscus_grid::routes::Persona;
use meniscus_metrics::{Exposure, Registry};

#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// Personas of this process, comma-separated: correlator, normalizer, storage,
    /// tenant-api, broadcaster, coordinator. Only `coordinator` runs on its own so far.
    #[arg(long, value_delimiter = ',', required = true)]
    pub persona: Vec<String>,
    /// Where this worker keeps its state (the coordinator: `coordinator/state.json`).
    #[arg(long, env = "MENISCUS_DATA_DIR", default_value = "meniscus-data")]
    pub data_dir: PathBuf,
    /// Address the coordinator's API listens on.
    #[arg(long, default_value = "0.0.0.0:7400")]
    pub listen: SocketAddr,
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
fn read_secret(path: Option<&Path>, what: &str) -> anyhow::Result<String> {
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
    if personas != [Persona::Coordinator] {
        anyhow::bail!(
            "personas as separate processes are not built yet, except `--persona coordinator` \
             on its own: run `meniscus standalone` for every persona in one process"
        );
    }
    serve_coordinator(args).await
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
    let registry = Arc::new(registry);
    let app = coordinator_http::router(coordinator.clone())
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
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
    tracing::info!(
        address = %listener.local_addr()?,
        state = %state_file.display(),
        workers = coordinator.snapshot().routes.workers.len(),
        "coordinator listening"
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        })
        .await?;
    expiry.abort();
    tracing::info!("coordinator stopped");
    Ok(())
}
