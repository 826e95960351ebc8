//! `meniscus-operator`: runs the MeniscusGrid and Tenant controllers against the cluster it finds (in a
//! pod: its ServiceAccount; elsewhere: `KUBECONFIG`), serves the grids' coordinators, and
//! `/metrics`, `/healthz` and `/leader`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use clap::Parser;
use meniscus_metrics::{Exposure, Registry};
use meniscus_operator::context::Context;
use meniscus_operator::leader;

#[derive(Debug, Parser)]
#[command(name = "meniscus-operator", version, about = "The Meniscus operator")]
struct Args {
    /// Watch only this namespace (default: every namespace the RBAC allows).
    #[arg(long, env = "MENISCUS_WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Where /metrics and /healthz listen.
    #[arg(long, default_value = "0.0.0.0:9464")]
    metrics_address: SocketAddr,
    /// This replica's name in Events and in the leader Lease (the pod name).
    #[arg(long, env = "POD_NAME")]
    instance: Option<String>,
    /// Reconcile only while holding the Lease `meniscus-operator` in --lease-namespace, so
    /// replicas can run side by side; a replica that loses it exits (and is restarted).
    #[arg(long)]
    leader_elect: bool,
    /// Where the leader Lease lives (the operator's own namespace).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// Where the grids' coordinators listen (workers pair, heartbeat and get routes here).
    #[arg(long, default_value = "0.0.0.0:7400")]
    coordinator_address: SocketAddr,
    /// The URL workers reach those coordinators by (the chart's coordinator Service); each
    /// grid's is under `/grids/NAMESPACE/NAME`.
    #[arg(long, env = "MENISCUS_COORDINATOR_URL", default_value = meniscus_operator::context::DEFAULT_COORDINATOR_BASE)]
    coordinator_url: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let client = kube::Client::try_default().await?;
    let registry = Arc::new(Registry::new());
    let mut context = Context::new(client, &registry, args.instance.clone());
    context.coordinator_base = args.coordinator_url.clone();
    let context = Arc::new(context);
    let leading = Arc::new(AtomicBool::new(!args.leader_elect));
    let listener = tokio::net::TcpListener::bind(args.metrics_address).await?;
    let role = leading.clone();
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        // Whether this replica leads (it is ready either way).
        .route(
            "/leader",
            get(move || {
                let leading = role.load(Ordering::Relaxed);
                async move {
                    if leading {
                        "leading\n"
                    } else {
                        "standing by\n"
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move { registry.render(Exposure::Full) }
            }),
        );
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "the metrics server stopped");
        }
    });
    let coordinators = tokio::net::TcpListener::bind(args.coordinator_address).await?;
    let router = context.coordinators.clone().router();
    tokio::spawn(async move {
        if let Err(error) = axum::serve(coordinators, router).await {
            tracing::error!(%error, "the coordinator server stopped");
        }
    });
    tracing::info!(namespace = ?args.namespace, metrics = %args.metrics_address, coordinators = %args.coordinator_address, "operator started");
    let lost = if args.leader_elect {
        let identity = args
            .instance
            .clone()
            .unwrap_or_else(|| format!("pid-{}", std::process::id()));
        let mark = |leading: bool| {
            let (client, namespace, pod) = (
                context.client.clone(),
                args.lease_namespace.clone(),
                args.instance.clone(),
            );
            async move {
                let Some(pod) = pod else { return };
                if let Err(error) = leader::mark_pod(client, &namespace, &pod, leading).await {
                    tracing::warn!(%error, "cannot label this Pod with its leadership: the coordinator Service may miss it");
                }
            }
        };
        mark(false).await;
        let options = leader::Options::new(&args.lease_namespace, &identity);
        let lost = leader::lead(context.client.clone(), options).await;
        leading.store(true, Ordering::Relaxed);
        mark(true).await;
        Some(lost)
    } else {
        None
    };
    let namespace = args.namespace.as_deref();
    let controllers = async {
        tokio::join!(
            meniscus_operator::grid::run(context.clone(), namespace),
            meniscus_operator::tenant::run(context.clone(), namespace),
        )
    };
    match lost {
        None => {
            controllers.await;
        }
        Some(lost) => tokio::select! {
            _ = controllers => {}
            why = lost => {
                let why = why.unwrap_or_else(|_| "the renewal task ended".into());
                tracing::error!(%why, "no longer leading: exiting so that one replica reconciles");
                std::process::exit(1);
            }
        },
    }
    // Stopped by a signal while leading: the coordinators' last changes go to their
    // Secrets before the next leader reads them.
    context.coordinators.flush(Duration::from_secs(10)).await;
    tracing::info!("operator stopped");
    Ok(())
}
