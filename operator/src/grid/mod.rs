//! The `MeniscusGrid` controller: applies a grid's children ([`children`]), keeps its status
//! ([`status`]) true, and holds its deletion while Tenants still use it.

pub mod children;
pub mod handoff;
pub mod scaling;
pub mod status;
#[cfg(test)]
mod verifier_tests;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use crate::context::Context;
use crate::crd::grid::{MeniscusGrid, MeniscusGridStatus, Replicas};
use crate::crd::tenant::Tenant;
use crate::Error;
use children::Component;
use status::Rollout;

/// Held on every grid until no Tenant refers to it.
pub const FINALIZER: &str = "meniscus.io/tenants";
/// How often a grid at rest is looked at again (children's changes wake it sooner).
const RESYNC: Duration = Duration::from_secs(300);
/// While pods start or a deletion waits for tenants.
const SOON: Duration = Duration::from_secs(10);

/// Runs the grid controller until the stream ends (the process is asked to stop).
pub async fn run(context: Arc<Context>, namespace: Option<&str>) {
    let owned = children::made_by_the_operator;
    Controller::new(
        context.watched::<MeniscusGrid>(namespace),
        watcher::Config::default(),
    )
    .owns(context.watched::<StatefulSet>(namespace), owned())
    .owns(context.watched::<Deployment>(namespace), owned())
    .owns(context.watched::<Service>(namespace), owned())
    .owns(context.watched::<ConfigMap>(namespace), owned())
    .owns(context.watched::<PodDisruptionBudget>(namespace), owned())
    // A Tenant going away may unblock its grid's deletion; a dedicated port changes the
    // grid's listeners.
    .watches(
        context.watched::<Tenant>(namespace),
        watcher::Config::default(),
        |tenant| {
            let namespace = tenant.namespace()?;
            Some(ObjectRef::<MeniscusGrid>::new(&tenant.spec.grid_ref).within(&namespace))
        },
    )
    .shutdown_on_signal()
    .run(reconcile, crate::error_policy::<MeniscusGrid>, context)
    .for_each(|result| async move {
        if let Err(error) = result {
            tracing::debug!(%error, "grid reconcile");
        }
    })
    .await;
}

pub async fn reconcile(grid: Arc<MeniscusGrid>, context: Arc<Context>) -> Result<Action, Error> {
    let grid = with_known_status(grid, &context);
    crate::reconcile_with_finalizer(
        grid,
        context,
        FINALIZER,
        |grid, context| async move { apply(&grid, &context).await },
        |grid, context| async move { cleanup(&grid, &context).await },
    )
    .await
}

/// `grid` with the freshest status known: this replica's last write while the cache has not
/// caught up with it. Otherwise a reconcile woken by a child before that write is back would
/// write the same status again, start its transition times over and repeat its Events.
fn with_known_status(grid: Arc<MeniscusGrid>, context: &Context) -> Arc<MeniscusGrid> {
    match context.grid_statuses.latest(&*grid, grid.status.as_ref()) {
        Some(known) if grid.status.as_ref() != Some(&known) => {
            let mut fresher = (*grid).clone();
            fresher.status = Some(known);
            Arc::new(fresher)
        }
        _ => grid,
    }
}

/// Sizes the personas from their load, makes the children match the spec, then the status
/// match the children.
async fn apply(grid: &MeniscusGrid, context: &Context) -> Result<Action, Error> {
    let outcome = async {
        ensure_secrets(grid, context).await?;
        // Workers pair with it as soon as they start.
        let coordinator = context.coordinators.ensure(grid, context).await?;
        let namespace = grid.namespace().unwrap_or_default();
        let tenants = Api::<Tenant>::namespaced(context.client.clone(), &namespace)
            .list(&ListParams::default())
            .await?
            .items;
        forget_orphan_tenants(grid, &coordinator, &tenants);
        let scaled = scaling::decide(grid, context).unwrap_or_default();
        let rollouts = apply_children(grid, context, &scaled, &tenants).await?;
        let route_version = coordinator.with_state(|state| state.route_version);
        anyhow::Ok((rollouts, scaled, route_version))
    }
    .await;
    match outcome {
        Ok((rollouts, scaled, route_version)) => {
            let mut next = status::compute(grid, &rollouts, &scaled);
            next.route_version = route_version as i64;
            write_status(grid, context, next).await?;
            let ready = rollouts
                .values()
                .all(|rollout| rollout.ready >= rollout.desired);
            let scales = Component::ALL.into_iter().any(|component| {
                let range = replicas_range(grid, component);
                range.min < range.max
            });
            Ok(Action::requeue(match (ready, scales) {
                (false, _) => SOON,
                (true, true) => context.scale_interval,
                (true, false) => RESYNC,
            }))
        }
        Err(error) => {
            let message = format!("{error:#}");
            let next = status::failed(grid, "ApplyFailed", message.clone());
            write_status(grid, context, next).await?;
            warn(grid, context, "ApplyFailed", "Apply", message).await;
            Err(Error(error))
        }
    }
}

async fn apply_children(
    grid: &MeniscusGrid,
    context: &Context,
    scaled: &BTreeMap<Component, scaling::Scaled>,
    tenants: &[Tenant],
) -> anyhow::Result<BTreeMap<Component, Rollout>> {
    let dedicated = children::dedicated_ports(grid, tenants);
    let inputs = children::Inputs {
        dedicated: &dedicated,
        coordinator: &context.coordinator_base,
    };
    crate::apply::apply(context, children::config(grid, &dedicated)).await?;
    let mut rollouts = BTreeMap::new();
    for component in Component::ALL {
        let desired = scaled.get(&component).map_or_else(
            || desired_replicas(grid, component),
            |scaled| scaled.desired,
        );
        let rollout = if component.is_stateful() {
            crate::apply::apply(context, children::component_service(grid, component)).await?;
            let set = children::stateful_set(grid, component, desired, &inputs);
            apply_workload(context, set, desired).await?
        } else {
            let deployment = children::deployment(grid, component, desired, &inputs);
            apply_workload(context, deployment, desired).await?
        };
        crate::apply::apply(context, children::disruption_budget(grid, component)).await?;
        rollouts.insert(component, rollout);
    }
    crate::apply::apply(context, children::ingest_service(grid, &dedicated)).await?;
    crate::apply::apply(context, children::api_service(grid)).await?;
    Ok(rollouts)
}

/// Takes out of the coordinator the tenants no `Tenant` of this grid stands for any more (a
/// deletion whose save was lost in a failover): their tokens must not work.
fn forget_orphan_tenants(
    grid: &MeniscusGrid,
    coordinator: &meniscus_coordinator::Coordinator,
    tenants: &[Tenant],
) {
    let ours: Vec<String> = tenants
        .iter()
        .filter(|tenant| tenant.spec.grid_ref == grid.name_any())
        .map(|tenant| tenant.name_any())
        .collect();
    let held = coordinator.snapshot().tenants.specs;
    for spec in held {
        if !ours.iter().any(|name| name == spec.id.as_str()) {
            tracing::warn!(tenant = %spec.id, grid = %grid.name_any(), "a tenant without a Tenant object: taken out of the coordinator");
            if let Err(error) = coordinator.delete_tenant(&spec.id) {
                tracing::warn!(%error, "cannot take an orphan tenant out");
            }
        }
    }
}

/// Applies a StatefulSet or Deployment and reads its rollout from the status fields both
/// kinds share.
async fn apply_workload<K>(context: &Context, workload: K, desired: i32) -> anyhow::Result<Rollout>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::Serialize
        + serde::de::DeserializeOwned,
{
    let live = crate::apply::apply(context, workload).await?;
    let status = serde_json::to_value(&live)?["status"].take();
    let count = |field: &str| status[field].as_i64().map(|count| count as i32);
    Ok(Rollout::of(
        desired,
        (count("readyReplicas"), count("updatedReplicas")),
        status["observedGeneration"].as_i64(),
        live.meta().generation,
    ))
}

/// The replicas a component runs: what the autoscaler last decided (kept in the grid's status, so it survives an operator restart), within the
/// spec's range, else the range's minimum.
pub fn desired_replicas(grid: &MeniscusGrid, component: Component) -> i32 {
    let range = replicas_range(grid, component);
    let decided = grid
        .status
        .as_ref()
        .and_then(|status| status.personas.get(component.as_str()))
        .map_or(range.min, |persona| persona.desired);
    let floor = if component.is_required() { 1 } else { 0 };
    let low = range.min.max(floor).min(range.max);
    if component == Component::Storage {
        // Not cut to a lowered max here: the storage workers above it hand their tenants off
        // first, and the autoscaler lowers the decision once they have (see `handoff`).
        return decided.max(low);
    }
    decided.clamp(low, range.max)
}

/// The replicas range the spec gives a component.
pub fn replicas_range(grid: &MeniscusGrid, component: Component) -> &Replicas {
    let personas = &grid.spec.personas;
    match component {
        Component::Broadcaster => &personas.broadcaster.replicas,
        Component::Correlator => &personas.correlator.replicas,
        Component::Normalizer => &personas.normalizer.replicas,
        Component::Storage => &personas.storage.replicas,
        Component::TenantApi => &personas.tenant_api.replicas,
    }
}

/// The grid's Secret (pairing secret, admin credential): random, made once, never applied
/// again, so a reconcile cannot rotate what every worker holds.
async fn ensure_secrets(grid: &MeniscusGrid, context: &Context) -> anyhow::Result<()> {
    let name = children::secrets_name(grid);
    let namespace = grid.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(context.client.clone(), &namespace);
    if api.get_opt(&name).await?.is_some() {
        return Ok(());
    }
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name),
            namespace: Some(namespace),
            labels: Some(children::grid_labels(grid)),
            owner_references: grid.controller_owner_ref(&()).map(|owner| vec![owner]),
            ..Default::default()
        },
        string_data: Some(BTreeMap::from([
            ("pairing-secret".to_string(), crate::random_token()?),
            ("admin-credential".to_string(), crate::random_token()?),
        ])),
        ..Secret::default()
    };
    context.metrics.writes.inc(&["Secret"]);
    match api.create(&PostParams::default(), &secret).await {
        // Another replica (or a previous try) made it first: that one stands.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        result => result.map(drop).map_err(Into::into),
    }
}

/// Writes `next` as the grid's status (server-side apply on the status subresource) unless
/// it is what the grid already has. Publishes an Event when `Ready` or `Degraded` changes.
async fn write_status(
    grid: &MeniscusGrid,
    context: &Context,
    next: MeniscusGridStatus,
) -> Result<(), Error> {
    let current = grid.status.clone().unwrap_or_default();
    if current == next {
        return Ok(());
    }
    for type_ in ["Ready", "Degraded"] {
        let before = crate::conditions::get(&current.conditions, type_);
        let after = crate::conditions::get(&next.conditions, type_);
        if let Some(after) = after.filter(|after| {
            before
                .is_none_or(|before| before.status != after.status || before.reason != after.reason)
        }) {
            let warning = (type_ == "Degraded") == (after.status == "True");
            let event = Event {
                type_: if warning {
                    EventType::Warning
                } else {
                    EventType::Normal
                },
                reason: after.reason.clone(),
                note: Some(if after.message.is_empty() {
                    format!("{type_} is {}", after.status)
                } else {
                    after.message.clone()
                }),
                action: "Reconcile".into(),
                secondary: None,
            };
            publish(grid, context, event).await;
        }
    }
    crate::apply::status(context, grid, &next).await?;
    context.grid_statuses.wrote(grid, next);
    Ok(())
}

/// A grid being deleted: waits while Tenants refer to it (their data lives in it), then lets
/// Kubernetes delete the children with it (owner references).
async fn cleanup(grid: &MeniscusGrid, context: &Context) -> Result<Action, Error> {
    let namespace = grid.namespace().unwrap_or_default();
    let tenants: Api<Tenant> = Api::namespaced(context.client.clone(), &namespace);
    let remaining: Vec<String> = tenants
        .list(&ListParams::default())
        .await?
        .into_iter()
        .filter(|tenant| tenant.spec.grid_ref == grid.name_any())
        .map(|tenant| tenant.name_any())
        .collect();
    if remaining.is_empty() {
        context.coordinators.stop(&namespace, &grid.name_any());
        context.grid_statuses.forget(grid);
        return Ok(Action::await_change());
    }
    let message = format!(
        "deletion waits until these Tenants are deleted: {}",
        remaining.join(", ")
    );
    let mut next = grid.status.clone().unwrap_or_default();
    crate::conditions::set(
        &mut next.conditions,
        "Ready",
        false,
        "DeletionBlockedByTenants",
        message.clone(),
        grid.metadata.generation,
    );
    write_status(grid, context, next).await?;
    // The finalizer stays until a reconcile finds no tenant (a Tenant's deletion wakes it).
    Err(crate::Wait {
        again: Duration::from_secs(30),
        why: message,
    }
    .into())
}

async fn warn(grid: &MeniscusGrid, context: &Context, reason: &str, action: &str, note: String) {
    let event = Event {
        type_: EventType::Warning,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    };
    publish(grid, context, event).await;
}

async fn publish(grid: &MeniscusGrid, context: &Context, event: Event) {
    context.metrics.writes.inc(&["Event"]);
    if let Err(error) = context
        .recorder
        .publish(&event, &grid.object_ref(&()))
        .await
    {
        tracing::warn!(%error, grid = %grid.name_any(), "cannot publish an Event");
    }
}
