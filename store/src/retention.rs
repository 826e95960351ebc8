//! Retention: a periodic pass deletes each tenant's hourly hot-store windows once they are
//! older than its short-term retention (manifest first, then the files) — with an archive,
//! only files already archived or past the long-term retention too — and the archived
//! objects older than its long-term retention.

use std::sync::Arc;
use std::time::Duration;

use crate::archive::Archive;
use crate::Store;

/// Runs a retention pass every `every`; `short_term` gives a tenant's hot retention (`None`:
/// keep). Runs until the process ends.
pub fn spawn(
    store: Arc<Store>,
    archive: Option<Arc<Archive>>,
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
            let archive_for_hot = archive.clone();
            // Read once, before the hot store's lock is taken for the pass.
            let archived = archive.as_ref().map(|archive| archive.sources());
            let outcome = tokio::task::spawn_blocking(move || {
                let now = chrono::Utc::now();
                hot.expire(
                    now,
                    |tenant| {
                        short_term(tenant).and_then(|keep| chrono::Duration::from_std(keep).ok())
                    },
                    // Not archived yet: kept hot until the upload works (unless it is past
                    // the long-term retention as well).
                    |entry| match (&archive_for_hot, &archived) {
                        (Some(archive), Some(archived)) => {
                            !archived.contains(&entry.path) && !archive.past_long_term(entry, now)
                        }
                        _ => false,
                    },
                )
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
            if let Some(archive) = &archive {
                match archive.expire(chrono::Utc::now()).await {
                    Ok(0) => {}
                    Ok(deleted) => {
                        tracing::info!(
                            objects = deleted,
                            "retention deleted expired archived objects"
                        )
                    }
                    Err(error) => {
                        tracing::error!(error = %format!("{error:#}"), "archive retention pass failed")
                    }
                }
            }
        }
    });
}
