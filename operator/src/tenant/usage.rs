//! The Tenants' counts in their status (`eventsReceived`, `bytesStored`, `lastEventTime`),
//! from their grid's coordinator: events as the correlators counted them, bytes as the
//! storage workers hold them, both from heartbeats. Looked at every `usage_interval` from
//! the controller's cache (no API read); written only for a Tenant whose counts moved, so
//! a grid at rest makes no writes for them.

use std::sync::Arc;

use kube::runtime::reflector::Store;
use kube::ResourceExt;
use meniscus_grid::TenantId;

use crate::context::Context;
use crate::crd::tenant::{Tenant, TenantStatus};

/// Sets the counts of `status` from the coordinator of the tenant's grid, when it runs here.
pub fn fill(status: &mut TenantStatus, tenant: &Tenant, context: &Context) {
    let namespace = tenant.namespace().unwrap_or_default();
    let (Some(coordinator), Ok(id)) = (
        context.coordinators.get(&namespace, &tenant.spec.grid_ref),
        TenantId::parse(&tenant.name_any()),
    ) else {
        return;
    };
    let usage = coordinator.usage(&id);
    status.events_received = i64::try_from(usage.events_received).unwrap_or(i64::MAX);
    status.bytes_stored = i64::try_from(usage.bytes_stored).unwrap_or(i64::MAX);
    if let Some(last) = usage.last_event {
        status.last_event_time = Some(last.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    }
}

/// Brings every registered Tenant's counts up to date, every `usage_interval`, for as long
/// as the controller runs.
pub async fn refresh(tenants: Store<Tenant>, context: Arc<Context>) {
    let mut ticks = tokio::time::interval(context.usage_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let all = tenants.state();
        let live: std::collections::HashSet<&str> = all
            .iter()
            .filter_map(|tenant| tenant.metadata.uid.as_deref())
            .collect();
        context.tenant_statuses.retain(|uid| live.contains(uid));
        for tenant in all.iter() {
            // Only Tenants the controller has reconciled (a status to add counts to), and
            // not those being deleted (their counts are about to go).
            let Some(status) = super::known_status(tenant, &context) else {
                continue;
            };
            if tenant.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let mut next = status.clone();
            fill(&mut next, tenant, &context);
            if next == status {
                continue;
            }
            if let Err(error) = super::write_status(tenant, &context, next).await {
                tracing::warn!(tenant = %tenant.name_any(), %error, "cannot update a Tenant's counts");
            }
        }
    }
}
