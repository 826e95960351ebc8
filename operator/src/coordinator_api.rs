//! What the controllers ask of a grid's coordinator (hosted in this process, see
//! [`crate::coordinator_host`]): the workers' heartbeat loads, the autoscaler's input.

use std::sync::Arc;

use kube::ResourceExt;
use meniscus_coordinator::state::Load;
use meniscus_coordinator::Coordinator;
use meniscus_grid::routes::{Persona, WorkerStatus};

use crate::context::Context;
use crate::crd::grid::MeniscusGrid;

/// An online worker's personas and last heartbeat load.
pub struct Worker {
    pub personas: Vec<Persona>,
    pub load: Load,
}

/// The grid's coordinator, or `None` when this replica does not run it.
pub fn coordinator_of(grid: &MeniscusGrid, context: &Context) -> Option<Arc<Coordinator>> {
    context
        .coordinators
        .get(&grid.namespace().unwrap_or_default(), &grid.name_any())
}

/// The coordinator's online workers.
pub fn online_workers(coordinator: &Coordinator) -> Vec<Worker> {
    coordinator.with_state(|state| {
        state
            .workers
            .iter()
            .filter(|worker| worker.status == WorkerStatus::Online)
            .map(|worker| Worker {
                personas: worker.personas.clone(),
                load: worker.load.clone(),
            })
            .collect()
    })
}
