//! `meniscus worker --persona …`: personas as processes of a grid.
//!
//! What runs today is the control plane: the coordinator persona (the `meniscus-coordinator`
//! crate served over HTTP, its state in `DATA_DIR/coordinator/state.json`) and the
//! broadcaster persona ([`broadcaster`]: follows the coordinator, serves workers), and the
//! control loop every worker will run ([`control`]). The data personas still run only
//! together, in `meniscus standalone`: asking for them here is refused with that advice
//! rather than started half-way.

pub mod broadcaster;
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
    /// tenant-api, broadcaster, coordinator. Only `coordinator` and `broadcaster` run (each
    /// on its own) so far.
    #[arg(long, value_delimiter = ',', required = true)]
    pub persona: Vec<String>,
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
    match personas.as_slice() {
        [Persona::Coordinator] => serve_coordinator(args).await,
        [Persona::Broadcaster] => serve_broadcaster(args).await,
        _ => anyhow::bail!(
            "personas as separate processes are not built yet, except `--persona coordinator` \
             and `--persona broadcaster`, each on its own: run `meniscus standalone` for every \
             persona in one process"
        ),
    }
}

/// Serves `app` plus /metrics and /healthz on --listen until SIGTERM or Ctrl-C.
async fn serve(
    args: &WorkerArgs,
    app: axum::Router,
    registry: Registry,
    what: &str,
) -> anyhow::Result<()> {
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
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        })
        .await?;
    tracing::info!("{what} stopped");
    Ok(())
}

async fn serve_broadcaster(args: WorkerArgs) -> anyhow::Result<()> {
    let coordinator = args
        .coordinator
        .clone()
        .context("a broadcaster needs --coordinator URL")?;
    let options = control::ControlOptions {
        coordinator,
        pairing_secret: read_secret(args.pairing_secret_file.as_deref(), "pairing-secret")?,
        personas: vec![Persona::Broadcaster],
        advertise: args
            .advertise
            .clone()
            .unwrap_or_else(|| args.listen.to_string()),
        capacity: 0,
        data_dir: args.data_dir.clone(),
        heartbeat_interval: Duration::from_secs(2),
    };
    let registry = Registry::new();
    let control = Arc::new(control::ControlPlane::new(options));
    let (_snapshots, _heartbeats) = control
        .clone()
        .spawn(meniscus_coordinator::state::Load::default);
    let broadcaster = broadcaster::Broadcaster::start(control, &registry);
    serve(&args, broadcaster.router(), registry, "broadcaster").await
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
    )
    .await?;
    expiry.abort();
    Ok(())
}
