//! The operators' listener: `/healthz`, `/readyz` and `/metrics` with every series, served by a
//! runtime on a thread of its own, so that a flood of ingest or queries on the shared runtime
//! cannot make a health check time out (seen: seconds-long `/healthz` stalls while a 2 MB
//! statement was parsed on the shared runtime).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use meniscus_metrics::Exposure;

use super::{readiness, AppState};

/// Binds the ops listener and serves it, with `admin` (the tenant admin API, when on), on a
/// thread of its own; returns the bound address.
pub fn start(
    address: SocketAddr,
    state: Arc<AppState>,
    admin: Router,
) -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(address)
        .map_err(|error| anyhow::anyhow!("cannot listen for ops on {address}: {error}"))?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
        .merge(admin);
    std::thread::Builder::new()
        .name("ops".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    tracing::error!(%error, "cannot start the ops listener's runtime");
                    return;
                }
            };
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => {
                        if let Err(error) = axum::serve(listener, app).await {
                            tracing::error!(%error, "ops listener stopped");
                        }
                    }
                    Err(error) => tracing::error!(%error, "ops listener failed"),
                }
            });
        })?;
    Ok(bound)
}

async fn ready(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    readiness(&state)
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.registry.render(Exposure::Full),
    )
}
