//! The autoscaler at work: each reconcile of a grid reads the workers' last heartbeats from
//! its coordinator, sums them per persona and lets [`crate::autoscaler::decide`] pick the
//! replicas. The decision lands in the grid's status (`personas.<p>.desired`), where the
//! children are sized from, so it survives an operator restart; the autoscaler's history is in
//! memory, so after a restart nothing moves until a full window has been seen again.
//!
//! Correlators and normalizers report their load as events in per second and spooled bytes
//! (the backlog). Storage workers report the events they store per second; their backlog
//! shows upstream, in the correlators' spools. A storage worker holds its tenants' data, so a
//! storage scale-down waits (`HeldForHandoff`) until the workers it removes have handed their
//! tenants off ([`handoff`]). Tenant API workers report the requests they answer per second
//! (against `requestsPerSecondPerTenantApi`); broadcasters are sized by the workers that
//! follow them (`workersPerBroadcaster`), read from the coordinator's registry.

use std::collections::BTreeMap;

use kube::ResourceExt;

use crate::autoscaler::{self, Input, Observation, PersonaKind};
use crate::context::Context;
use crate::coordinator_api;
use crate::crd::grid::{Autoscaling, MeniscusGrid};
use crate::grid::children::Component;
use crate::grid::handoff;

/// Spooled bytes per event, to read a spool's size as a backlog of events: a spooled record
/// holds about 290 bytes per event (Arrow, uncompressed; compressed backlogs count low).
const SPOOLED_BYTES_PER_EVENT: u64 = 300;

/// What the autoscaler decided for one persona, and the load it saw: events per second
/// (correlators, normalizers, storage), requests per second (the tenant API) or workers to
/// keep informed (broadcasters).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scaled {
    pub desired: i32,
    pub events_per_second: f64,
}

/// The personas that report load, with their decisions; `None` while this replica does not
/// run the grid's coordinator (the replicas then stay as they are).
pub fn decide(grid: &MeniscusGrid, context: &Context) -> Option<BTreeMap<Component, Scaled>> {
    let coordinator = coordinator_api::coordinator_of(grid, context)?;
    let workers = coordinator_api::online_workers(&coordinator);
    let now = context.started.elapsed();
    let mut decisions = BTreeMap::new();
    for component in Component::ALL {
        let range = super::replicas_range(grid, component);
        if range.max == 0 {
            continue;
        }
        // A worker counts for the first persona it has (`correlator,normalizer` is a
        // correlator).
        let online: Vec<&coordinator_api::Worker> = workers
            .iter()
            .filter(|worker| worker.personas.first() == Some(&component.persona()))
            .collect();
        let (load, backlog, autoscaling) = match component {
            // Broadcasters carry the workers that follow them, whatever those do.
            Component::Broadcaster => (
                workers
                    .iter()
                    .filter(|worker| worker.personas.first() != Some(&component.persona()))
                    .count() as f64,
                0,
                Autoscaling {
                    events_per_second_per_replica: grid.spec.autoscaling.workers_per_broadcaster,
                    ..grid.spec.autoscaling.clone()
                },
            ),
            Component::TenantApi => (
                online
                    .iter()
                    .map(|worker| worker.load.events_in_per_second)
                    .sum(),
                0,
                Autoscaling {
                    events_per_second_per_replica: grid
                        .spec
                        .autoscaling
                        .requests_per_second_per_tenant_api,
                    ..grid.spec.autoscaling.clone()
                },
            ),
            _ => {
                let spooled: u64 = online.iter().map(|worker| worker.load.spool_bytes).sum();
                (
                    online
                        .iter()
                        .map(|worker| worker.load.events_in_per_second)
                        .sum(),
                    spooled / SPOOLED_BYTES_PER_EVENT,
                    grid.spec.autoscaling.clone(),
                )
            }
        };
        let current = super::desired_replicas(grid, component);
        // Storage: the workers' drains and hand-offs, by StatefulSet ordinal.
        let storage = (component == Component::Storage).then(|| {
            let statefulset = super::children::component_name(grid, component);
            handoff::storage_workers(&coordinator, &statefulset)
        });
        let kind = match &storage {
            Some(workers) => PersonaKind::Storage {
                handed_off_from: handoff::handed_off_from(workers, current),
            },
            None => PersonaKind::Stateless,
        };
        let input = Input {
            current,
            range,
            autoscaling: &autoscaling,
            kind,
            observation: Observation {
                events_per_second: load,
                backlog,
                workers_reporting: online.len() as i32,
            },
        };
        let key = format!(
            "{}/{}/{}",
            grid.namespace().unwrap_or_default(),
            grid.name_any(),
            component.as_str()
        );
        let decision = {
            let mut histories = context.histories.lock();
            autoscaler::decide(histories.entry(key).or_default(), now, &input)
        };
        if let Some(workers) = &storage {
            let plan = handoff::plan(workers, current, decision.target, decision.replicas);
            handoff::apply(&coordinator, &grid.name_any(), &plan);
        }
        if decision.replicas != current {
            tracing::info!(grid = %grid.name_any(), persona = component.as_str(), from = current, to = decision.replicas, reason = decision.reason.as_str(), detail = %decision, "the autoscaler moves a persona");
        }
        decisions.insert(
            component,
            Scaled {
                desired: decision.replicas,
                events_per_second: load,
            },
        );
    }
    Some(decisions)
}
