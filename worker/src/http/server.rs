//! The HTTP accept loop: connection limits per listener and client address, and hyper's header
//! timeout, so a client trickling headers (70 s still got a 200 before) or holding idle
//! keep-alive connections cannot hold the server's sockets.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::connections::ConnectionTable;

/// Serves `app` on `listener` until the process ends.
pub async fn serve(listener: TcpListener, app: Router, connections: Arc<ConnectionTable>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(%error, "http accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = connections.admit(peer.ip()) else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let header_timeout = connections.limits().header_timeout;
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            // The header timeout also closes a keep-alive connection that sends no next
            // request in time.
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            // Upgrades: the Loki tail is a WebSocket.
            if let Err(error) = builder
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await
            {
                tracing::debug!(%peer, %error, "http connection ended");
            }
        });
    }
}
