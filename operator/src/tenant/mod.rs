//! The `Tenant` controller: gives each tenant a token (a Secret of its own, rotated when the
//! spec asks), registers it with its grid's coordinator (the tenant registry every worker
//! gets through the broadcasters), and takes it out again when the Tenant is deleted.
//!
//! The coordinator is asked for its registry first and written to only when the tenant
//! there differs, so a tenant at rest costs one read per resync, and no API write.

pub mod registry;
pub mod token;
pub mod usage;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::ResourceExt;

use crate::context::Context;
use crate::crd::grid::MeniscusGrid;
use crate::crd::tenant::{Tenant, TenantStatus};
use crate::grid::children;
use crate::Error;

/// Held on every Tenant until the coordinator has forgotten it.
pub const FINALIZER: &str = "meniscus.io/registered";
const RESYNC: Duration = Duration::from_secs(300);
/// While the grid or its coordinator is not there yet.
const SOON: Duration = Duration::from_secs(5);
/// How often a purge under way is looked at (storage workers report it in heartbeats).
const PURGE_POLL: Duration = Duration::from_secs(3);
/// Tenants reconciled at once.
const TENANT_CONCURRENCY: u16 = 16;

pub async fn run(context: Arc<Context>, namespace: Option<&str>) {
    let controller = Controller::new(
        context.watched::<Tenant>(namespace),
        watcher::Config::default(),
    );
    let store = controller.store();
    tokio::spawn(usage::refresh(store.clone(), context.clone()));
    let grids = context.watched::<MeniscusGrid>(namespace);
    let seen = GridsSeen::default();
    controller
        .owns(
            context.watched::<Secret>(namespace),
            children::made_by_the_operator(),
        )
        // What a tenant takes from its grid (spec, endpoints, deletion) wakes its tenants;
        // the rest of a grid's status (replica counts moving while it scales) does not.
        .watches(grids, watcher::Config::default(), move |grid| {
            if !seen.changed(&grid) {
                return Vec::new();
            }
            let namespace = grid.namespace();
            store
                .state()
                .into_iter()
                .filter(|tenant| {
                    tenant.namespace() == namespace && tenant.spec.grid_ref == grid.name_any()
                })
                .map(|tenant| ObjectRef::from_obj(&*tenant))
                .collect::<Vec<_>>()
        })
        // Bounded: 1,000 Tenants applied at once are not 1,000 reconciles (and their API
        // calls and buffers) in flight. Debounced: a new Tenant's own writes (finalizer,
        // Secret, status) wake it a few times within a moment; one reconcile sees them all.
        .with_config(
            kube::runtime::controller::Config::default()
                .concurrency(TENANT_CONCURRENCY)
                .debounce(Duration::from_millis(500)),
        )
        .shutdown_on_signal()
        .run(reconcile, crate::error_policy::<Tenant>, context)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "tenant reconcile");
            }
        })
        .await;
}

pub async fn reconcile(tenant: Arc<Tenant>, context: Arc<Context>) -> Result<Action, Error> {
    crate::reconcile_with_finalizer(
        tenant,
        context,
        FINALIZER,
        |tenant, context| async move { apply(&tenant, &context).await },
        |tenant, context| async move { cleanup(&tenant, &context).await },
    )
    .await
}

/// What each grid's tenants last took from it, by grid uid.
#[derive(Default)]
struct GridsSeen(std::sync::Mutex<std::collections::HashMap<String, String>>);

impl GridsSeen {
    /// Whether `grid` changed in what its tenants read from it since it was last seen.
    fn changed(&self, grid: &MeniscusGrid) -> bool {
        let concerns = serde_json::json!({
            "generation": grid.metadata.generation,
            "deleting": grid.metadata.deletion_timestamp.is_some(),
            "endpoints": grid.status.as_ref().map(|status| &status.ingest_endpoints),
        })
        .to_string();
        let uid = grid.uid().unwrap_or_default();
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        seen.insert(uid, concerns.clone()).as_ref() != Some(&concerns)
    }
}

/// Why a tenant is not in force yet, as a condition reason and a message.
struct NotReady(&'static str, String);

/// The tenant's dedicated port, if it asks for one: put first in its endpoints (what a
/// device without a token is pointed at) when it holds it.
fn dedicated_port(
    tenant: &Tenant,
    grid: &MeniscusGrid,
    all: &[Tenant],
    status: &mut TenantStatus,
) -> Result<(), NotReady> {
    let Some(port) = tenant.spec.dedicated_port else {
        return Ok(());
    };
    let granted = children::dedicated_ports(grid, all)
        .iter()
        .any(|dedicated| dedicated.tenant == tenant.name_any());
    if !granted {
        return Err(NotReady(
            "DedicatedPortTaken",
            format!("port {port} is one the grid listens on or another tenant's"),
        ));
    }
    let host = children::ingest_host(grid);
    let own = [
        format!("{host}:{port}/syslog-tcp"),
        format!("{host}:{port}/syslog-udp"),
    ];
    status.ingest_endpoints.splice(0..0, own);
    Ok(())
}

/// Whether the tenant's `tlsClientIdentities` are all in force: its own (not an older
/// Tenant's, `taken`) and checked by the grid's TLS listener.
fn client_identities_in_force(
    tenant: &Tenant,
    grid: &MeniscusGrid,
    taken: &[String],
) -> Result<(), NotReady> {
    if tenant.spec.tls_client_identities.is_empty() {
        return Ok(());
    }
    if !taken.is_empty() {
        return Err(NotReady(
            "TlsClientIdentityTaken",
            format!("an older Tenant holds {}", taken.join(", ")),
        ));
    }
    let verified = grid.spec.tls_client_ca_secret.is_some()
        && grid.spec.tls_secret.is_some()
        && grid.spec.listeners.syslog_tls.is_some();
    if !verified {
        return Err(NotReady(
            "NoTlsClientCa",
            "tlsClientIdentities need the grid's tlsClientCaSecret, tlsSecret and listeners.syslogTls".into(),
        ));
    }
    Ok(())
}

async fn apply(tenant: &Tenant, context: &Context) -> Result<Action, Error> {
    let namespace = tenant.namespace().unwrap_or_default();
    let token = token::ensure(tenant, context).await?;
    let mut status = known_status(tenant, context).unwrap_or_default();
    status.observed_generation = tenant.metadata.generation;
    status.token_secret = Some(token.secret_name.clone());
    let grids: Api<MeniscusGrid> = Api::namespaced(context.client.clone(), &namespace);
    let outcome = match grids.get_opt(&tenant.spec.grid_ref).await? {
        None => Err(NotReady(
            "GridNotFound",
            format!("no MeniscusGrid {:?} in {namespace}", tenant.spec.grid_ref),
        )),
        Some(grid) => {
            status.ingest_endpoints = grid
                .status
                .as_ref()
                .map(|status| status.ingest_endpoints.clone())
                .unwrap_or_default();
            // After a leader change the tenants may be reconciled before their grids: the
            // coordinator is started from its saved state here too, so that a registered
            // tenant does not flap to not-ready meanwhile. (It fails, and the tenant waits,
            // while the grid has never been reconciled: its Secret is not there yet.)
            if grid.metadata.deletion_timestamp.is_none() {
                if let Err(error) = context.coordinators.ensure(&grid, context).await {
                    tracing::debug!(error = %format!("{error:#}"), "the grid's coordinator cannot start yet");
                }
            }
            // Only the claims it wins reach the coordinator; what it lost is in its status.
            let all = if tenant.spec.dedicated_port.is_some()
                || !tenant.spec.tls_client_identities.is_empty()
            {
                Api::<Tenant>::namespaced(context.client.clone(), &namespace)
                    .list(&Default::default())
                    .await?
                    .items
            } else {
                Vec::new()
            };
            let (identities, taken) = registry::client_identities(tenant, &grid, &all);
            usage::fill(&mut status, tenant, context);
            registry::register(tenant, &grid, &token, &identities, context)
                .map_err(|refused| NotReady(refused.reason(), refused.to_string()))
                .and_then(|()| dedicated_port(tenant, &grid, &all, &mut status))
                .and_then(|()| client_identities_in_force(tenant, &grid, &taken))
        }
    };
    let (ready, reason, message) = match &outcome {
        Ok(()) => (
            true,
            "Registered",
            "the grid's workers accept this tenant's token".to_string(),
        ),
        Err(NotReady(reason, message)) => (false, *reason, message.clone()),
    };
    crate::conditions::set(
        &mut status.conditions,
        "Ready",
        ready,
        reason,
        message,
        tenant.metadata.generation,
    );
    write_status(tenant, context, status).await?;
    let next = token.next_rotation.unwrap_or(RESYNC).min(RESYNC);
    Ok(Action::requeue(if ready { next } else { SOON }))
}

/// A deleted Tenant: out of its grid's registry at once (its tokens stop working), then,
/// `purgeGrace` after the deletion, its data is purged from every storage worker (hot store
/// and archive, keys included); the finalizer goes once each storage worker has said it is
/// done. Offline storage workers are waited for: their disks still hold the data. A grid
/// being deleted takes its tenants' data with it, so nothing is purged then.
async fn cleanup(tenant: &Tenant, context: &Context) -> Result<Action, Error> {
    let namespace = tenant.namespace().unwrap_or_default();
    let grids: Api<MeniscusGrid> = Api::namespaced(context.client.clone(), &namespace);
    let Some(grid) = grids.get_opt(&tenant.spec.grid_ref).await? else {
        return Ok(Action::await_change());
    };
    if grid.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    registry::unregister(tenant, &grid, context).map_err(Error::msg)?;
    let Ok(id) = meniscus_grid::TenantId::parse(&tenant.name_any()) else {
        return Ok(Action::await_change());
    };
    let deleted = tenant
        .metadata
        .deletion_timestamp
        .as_ref()
        .and_then(|time| chrono::DateTime::from_timestamp(time.0.as_second(), 0))
        .unwrap_or_else(chrono::Utc::now);
    let purge_at = deleted + token::parse(&tenant.spec.purge_grace)?;
    let now = chrono::Utc::now();
    if now < purge_at {
        let message = format!(
            "deleted: its tokens no longer work; its data is purged at {}",
            purge_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        set_deleting(tenant, context, "PurgeScheduled", message.clone()).await?;
        let again = (purge_at - now).to_std().unwrap_or_default();
        return Err(crate::Wait {
            again: again.min(RESYNC),
            why: message,
        }
        .into());
    }
    let coordinator = context
        .coordinators
        .get(&namespace, &grid.name_any())
        .ok_or_else(|| Error::msg(registry::Refused::NotRunning))?;
    coordinator.order_purge(&id).map_err(Error::msg)?;
    let waiting = coordinator.purge_waiting_for(&id);
    if !waiting.is_empty() {
        let names: Vec<&str> = waiting.iter().map(|worker| worker.0.as_str()).collect();
        let message = format!(
            "purging its data: waiting for storage workers {}",
            names.join(", ")
        );
        set_deleting(tenant, context, "Purging", message.clone()).await?;
        return Err(crate::Wait {
            again: PURGE_POLL,
            why: message,
        }
        .into());
    }
    coordinator.finish_purge(&id).map_err(Error::msg)?;
    context.tenant_statuses.forget(tenant);
    tracing::info!(tenant = %id, grid = %grid.name_any(), "tenant data purged from every storage worker");
    Ok(Action::await_change())
}

/// The Ready condition of a Tenant being deleted.
async fn set_deleting(
    tenant: &Tenant,
    context: &Context,
    reason: &str,
    message: String,
) -> Result<(), Error> {
    let mut status = known_status(tenant, context).unwrap_or_default();
    crate::conditions::set(
        &mut status.conditions,
        "Ready",
        false,
        reason,
        message,
        tenant.metadata.generation,
    );
    write_status(tenant, context, status).await
}

/// The freshest status known for `tenant`: the cached one, or this replica's last write
/// while the cache has not caught up with it.
pub(crate) fn known_status(tenant: &Tenant, context: &Context) -> Option<TenantStatus> {
    context
        .tenant_statuses
        .latest(tenant, tenant.status.as_ref())
}

/// Writes `next` as `tenant`'s status unless it is the status known already.
pub(crate) async fn write_status(
    tenant: &Tenant,
    context: &Context,
    next: TenantStatus,
) -> Result<(), Error> {
    if known_status(tenant, context).as_ref() == Some(&next) {
        return Ok(());
    }
    crate::apply::status(context, tenant, &next).await?;
    context.tenant_statuses.wrote(tenant, next);
    Ok(())
}
