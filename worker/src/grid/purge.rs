//! A storage worker carries out the coordinator's purge orders: each tenant named in the
//! snapshot's `purges` (a deleted Tenant, past its grace) has its hot-store files and its
//! archive (objects and keys) deleted here, and the heartbeats say so, until the order
//! leaves the snapshot. Purging is idempotent: after a restart the orders still listed are
//! carried out again, which costs a listing when nothing is left.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use meniscus_coordinator::state::Snapshot;
use meniscus_grid::TenantId;
use meniscus_store::archive::Archive;
use meniscus_store::Store;
use parking_lot::Mutex;
use tokio::sync::watch;

/// How soon a purge that failed (an unreachable archive) is tried again.
const RETRY: Duration = Duration::from_secs(30);

/// The orders of the current snapshot this worker has carried out.
pub type Purged = Arc<Mutex<BTreeSet<TenantId>>>;

/// Follows the snapshots and carries out their purge orders, for as long as the worker runs.
pub fn spawn(
    mut snapshots: watch::Receiver<Option<Snapshot>>,
    store: Arc<Store>,
    archive: Option<Arc<Archive>>,
    purged: Purged,
) {
    tokio::spawn(async move {
        loop {
            let orders: Vec<TenantId> = snapshots
                .borrow_and_update()
                .as_ref()
                .map(|snapshot| snapshot.purges.clone())
                .unwrap_or_default();
            // An order withdrawn (the tenant came back) is forgotten: a new one is carried out.
            purged.lock().retain(|tenant| orders.contains(tenant));
            for tenant in orders {
                if purged.lock().contains(&tenant) {
                    continue;
                }
                match purge(&store, archive.as_deref(), &tenant).await {
                    Ok((files, objects)) => {
                        tracing::warn!(%tenant, files, objects, "tenant purged: its data is deleted from this worker");
                        purged.lock().insert(tenant);
                    }
                    Err(error) => {
                        tracing::error!(%tenant, error = %format!("{error:#}"), "cannot purge a tenant; trying again")
                    }
                }
            }
            // A new snapshot, or time to retry a failed purge; the worker stopping ends it.
            if let Ok(Err(_)) = tokio::time::timeout(RETRY, snapshots.changed()).await {
                break;
            }
        }
    });
}

/// Deletes the tenant's hot-store files, then its archive; how many of each went. Also what
/// `meniscus purge` runs on a stopped standalone's data directory.
pub async fn purge(
    store: &Store,
    archive: Option<&Archive>,
    tenant: &TenantId,
) -> anyhow::Result<(usize, usize)> {
    let files = store.purge_tenant(tenant.as_str()).await?;
    let objects = match archive {
        Some(archive) => archive.purge(tenant.as_str()).await?,
        None => 0,
    };
    Ok((files, objects))
}
