//! `meniscus-operator`: runs the MeniscusGrid and Tenant controllers against the cluster it finds (in a
//! pod: its ServiceAccount; elsewhere: `KUBECONFIG`), and serves `/metrics` and `/healthz`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use clap::Parser;
use meniscus_metrics::{Exposure, Registry};
use meniscus_operator::context::Context;

#[derive(Debug, Parser)]
#[command(name = "meniscus-operator", version, about = "The Meniscus operator")]
struct Args {
    /// Watch only this namespace (default: every namespace the RBAC allows).
    #[arg(long, env = "MENISCUS_WATCH_NAMESPACE")]
    namespace: Option<String>,
    /// Where /metrics and /healthz listen.
    #[arg(long, default_value = "0.0.0.0:9464")]
    metrics_address: SocketAddr,
    /// This replica's name in Events (the pod name).
    #[arg(long, env = "POD_NAME")]
    instance: Option<String>,
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
    let context = Arc::new(Context::new(client, &registry, args.instance.clone()));
    let listener = tokio::net::TcpListener::bind(args.metrics_address).await?;
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
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
    tracing::info!(namespace = ?args.namespace, metrics = %args.metrics_address, "operator started");
    let namespace = args.namespace.as_deref();
    tokio::join!(
        meniscus_operator::grid::run(context.clone(), namespace),
        meniscus_operator::tenant::run(context, namespace),
    );
    tracing::info!("operator stopped");
    Ok(())
}
