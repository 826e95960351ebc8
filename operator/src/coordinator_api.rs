//! What the controllers ask of a grid's coordinator (hosted in this process, see
//! [`crate::coordinator_host`]): the workers' heartbeat loads, the autoscaler's input.

use kube::ResourceExt;
use meniscus_coordinator::state::Load;
use meniscus_grid::routes::{Persona, WorkerStatus};

use crate::context::Context;
use crate::crd::grid::MeniscusGrid;

/// An online worker's personas and last heartbeat load.
pub struct Worker {
    pub personas: Vec<Persona>,
    pub load: Load,
}

/// The grid's online workers, or `None` when this replica does not run its coordinator.
pub fn online_workers(grid: &MeniscusGrid, context: &Context) -> Option<Vec<Worker>> {
    let coordinator = context
        .coordinators
        .get(&grid.namespace().unwrap_or_default(), &grid.name_any())?;
    Some(coordinator.with_state(|state| {
        state
            .workers
            .iter()
            .filter(|worker| worker.status == WorkerStatus::Online)
            .map(|worker| Worker {
                personas: worker.personas.clone(),
                load: worker.load.clone(),
            })
            .collect()
    }))
}
