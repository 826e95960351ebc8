//! Retention of the hot store: a periodic pass deletes each tenant's hourly windows once they
//! are older than its short-term retention (manifest first, then the files).

use std::sync::Arc;
use std::time::Duration;

use crate::Store;

/// Runs a retention pass every `every`; `short_term` gives a tenant's hot retention (`None`:
/// keep). Runs until the process ends.
pub fn spawn(
    store: Arc<Store>,
    every: Duration,
    short_term: impl Fn(&str) -> Option<Duration> + Send + Sync + 'static,
) {
    let short_term = Arc::new(short_term);
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        loop {
            interval.tick().await;
            let hot = store.hot.clone();
            let short_term = short_term.clone();
            let outcome = tokio::task::spawn_blocking(move || {
                hot.expire(chrono::Utc::now(), |tenant| {
                    short_term(tenant).and_then(|keep| chrono::Duration::from_std(keep).ok())
                })
            })
            .await;
            match outcome {
                Ok(Ok(removed)) => {
                    for entry in &removed {
                        store
                            .metrics
                            .hot_retention_deleted_files
                            .inc(&[&entry.tenant]);
                    }
                    if !removed.is_empty() {
                        tracing::info!(
                            files = removed.len(),
                            "retention deleted expired hot-store files"
                        );
                    }
                }
                Ok(Err(error)) => tracing::error!(%error, "retention pass failed"),
                Err(error) => tracing::error!(%error, "retention task failed"),
            }
        }
    });
}
