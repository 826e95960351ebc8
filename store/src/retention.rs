//! Retention: a periodic pass deletes each tenant's hourly hot-store windows once they are
//! older than its short-term retention (manifest first, then the files) — with an archive,
//! only files already archived, past the long-term retention too or gone from disk — and the
//! archived objects older than its long-term retention.

use std::sync::Arc;
use std::time::Duration;

use crate::archive::Archive;
use crate::hot::{FileEntry, HotStore};
use crate::Store;

/// One pass over the hot store: deletes the files past their tenant's short-term retention
/// (`short_term`; `None`: keep). With an archive, a file not archived yet is kept until its
/// upload works, unless it is past the long-term retention as well, or gone from disk (it
/// can never be uploaded, and its entry would have every query over its hour say so).
pub fn expire_hot(
    hot: &HotStore,
    archive: Option<&Archive>,
    now: chrono::DateTime<chrono::Utc>,
    short_term: impl Fn(&str) -> Option<Duration>,
) -> std::io::Result<Vec<FileEntry>> {
    // Read before the hot store's lock is taken for the pass.
    let archived = archive.map(|archive| (archive, archive.sources(), hot.missing_paths()));
    hot.expire(
        now,
        |tenant| short_term(tenant).and_then(|keep| chrono::Duration::from_std(keep).ok()),
        |entry| match &archived {
            Some((archive, archived, missing)) => {
                !archived.contains(&entry.path)
                    && !archive.past_long_term(entry, now)
                    && !missing.contains(&entry.path)
            }
            None => false,
        },
    )
}

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
            let (hot, for_hot, short_term) =
                (store.hot.clone(), archive.clone(), short_term.clone());
            let outcome = tokio::task::spawn_blocking(move || {
                expire_hot(&hot, for_hot.as_deref(), chrono::Utc::now(), |tenant| {
                    short_term(tenant)
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
