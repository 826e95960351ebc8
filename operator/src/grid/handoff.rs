//! Storage scale-down without a loss. A storage worker holds its tenants' data on its volume,
//! so before the StatefulSet may drop its highest ordinals, the workers there hand their
//! tenants off:
//!
//! 1. The autoscaler heads below the current replicas ([`Decision::target`]): the workers of
//!    ordinals `target..current` are marked `draining` in the coordinator. The routes stop
//!    giving them tenants, and each moves what it holds to the storage workers the routes
//!    give its tenants now, then reports `handedOff` in its heartbeat.
//! 2. [`handed_off_from`] is the autoscaler's input: the StatefulSet shrinks only past
//!    ordinals whose workers have handed off, and then deletes their volumes
//!    (`whenScaled: Delete`), which hold nothing any more.
//! 3. Once a drained worker's pod is gone (offline), it is removed from the grid: what
//!    senders still spool for it moves to its tenants' storage workers.
//!
//! If the load comes back first (the target rises again), the workers still draining are
//! told to stay and keep what they have not moved yet.
//!
//! A worker's ordinal is read from the name it paired with (its pod's, `NAME-storage-N`);
//! where a name repeats (a pod that lost its volume paired as a new worker), the newest
//! pairing is the pod. While any storage worker has no ordinal, nothing is drained or
//! shrunk: its data could not be told apart.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use meniscus_coordinator::Coordinator;
use meniscus_grid::routes::{Persona, WorkerId, WorkerStatus};

#[cfg(doc)]
use crate::autoscaler::Decision;

/// A storage worker as the coordinator knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageWorker {
    pub id: WorkerId,
    /// From its pod's name; `None` when it paired without a name this grid gives.
    pub ordinal: Option<i32>,
    pub online: bool,
    pub draining: bool,
    pub handed_off: bool,
    pub paired_at: DateTime<Utc>,
}

/// What to ask of the coordinator.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    pub drain: Vec<WorkerId>,
    pub stay: Vec<WorkerId>,
    pub remove: Vec<WorkerId>,
}

/// The grid's storage workers, ordinals read against the StatefulSet `statefulset`.
pub fn storage_workers(coordinator: &Coordinator, statefulset: &str) -> Vec<StorageWorker> {
    let prefix = format!("{statefulset}-");
    coordinator.with_state(|state| {
        state
            .workers
            .iter()
            .filter(|worker| worker.personas.contains(&Persona::Storage))
            .map(|worker| StorageWorker {
                id: worker.id.clone(),
                ordinal: worker
                    .name
                    .as_deref()
                    .and_then(|name| name.strip_prefix(&prefix))
                    .and_then(|ordinal| ordinal.parse().ok()),
                online: worker.status == WorkerStatus::Online,
                draining: worker.draining,
                handed_off: worker.load.handed_off,
                paired_at: worker.paired_at,
            })
            .collect()
    })
}

/// The newest pairing of each ordinal; `None` when some worker has no ordinal.
fn by_ordinal(workers: &[StorageWorker]) -> Option<BTreeMap<i32, &StorageWorker>> {
    let mut newest: BTreeMap<i32, &StorageWorker> = BTreeMap::new();
    for worker in workers {
        let ordinal = worker.ordinal?;
        let slot = newest.entry(ordinal).or_insert(worker);
        if worker.paired_at > slot.paired_at {
            *slot = worker;
        }
    }
    Some(newest)
}

/// The lowest ordinal from which every storage worker up to `current` has handed its tenants
/// off (`current` when the top one has not). An ordinal no worker has paired from holds
/// nothing.
pub fn handed_off_from(workers: &[StorageWorker], current: i32) -> i32 {
    let Some(newest) = by_ordinal(workers) else {
        return current;
    };
    let mut from = current;
    while from > 0 {
        match newest.get(&(from - 1)) {
            Some(worker) if !(worker.draining && worker.handed_off) => break,
            _ => from -= 1,
        }
    }
    from
}

/// Who drains, who stays and who leaves the grid, for an autoscaler heading to `target` from
/// `current` and running `replicas` now.
pub fn plan(workers: &[StorageWorker], current: i32, target: i32, replicas: i32) -> Plan {
    let Some(newest) = by_ordinal(workers) else {
        return Plan::default();
    };
    let mut plan = Plan::default();
    for worker in workers {
        let Some(ordinal) = worker.ordinal else {
            continue;
        };
        let is_pod = newest.get(&ordinal).is_some_and(|pod| pod.id == worker.id);
        if !worker.online && (!is_pod || (worker.draining && ordinal >= replicas)) {
            // Its pod is gone after a hand-off, or a newer pairing took its place.
            plan.remove.push(worker.id.clone());
        } else if !is_pod {
            continue;
        } else if target < current && ordinal >= target && ordinal < current {
            if !worker.draining {
                plan.drain.push(worker.id.clone());
            }
        } else if worker.draining && ordinal < target.min(current) {
            plan.stay.push(worker.id.clone());
        }
    }
    plan
}

/// Carries `plan` out; a refusal (a worker removed meanwhile) is logged and retried at the
/// next reconcile.
pub fn apply(coordinator: &Coordinator, grid: &str, plan: &Plan) {
    for (ids, draining) in [(&plan.drain, true), (&plan.stay, false)] {
        for id in ids {
            match coordinator.set_draining(id, draining) {
                Ok(_) if draining => {
                    tracing::info!(grid, worker = %id, "storage worker asked to hand its tenants off before a scale-down")
                }
                Ok(_) => tracing::info!(grid, worker = %id, "storage worker told to stay"),
                Err(error) => {
                    tracing::warn!(grid, worker = %id, %error, "cannot change a storage worker's drain")
                }
            }
        }
    }
    for id in &plan.remove {
        match coordinator.remove_worker(id) {
            Ok(()) => {
                tracing::info!(grid, worker = %id, "drained storage worker removed from the grid")
            }
            Err(error) => {
                tracing::warn!(grid, worker = %id, %error, "cannot remove a drained storage worker")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(id: &str, ordinal: i32, state: &str) -> StorageWorker {
        StorageWorker {
            id: WorkerId(id.into()),
            ordinal: Some(ordinal),
            online: !state.contains("offline"),
            draining: state.contains("draining"),
            handed_off: state.contains("handed-off"),
            paired_at: DateTime::<Utc>::from_timestamp(i64::from(ordinal), 0).unwrap(),
        }
    }

    fn ids(ids: &[&str]) -> Vec<WorkerId> {
        ids.iter().map(|id| WorkerId((*id).into())).collect()
    }

    #[test]
    fn the_statefulset_shrinks_only_past_workers_that_handed_off() {
        let grid = [
            worker("w0", 0, "online"),
            worker("w1", 1, "online"),
            worker("w2", 2, "draining handed-off"),
            worker("w3", 3, "draining"),
            worker("w4", 4, "draining handed-off"),
        ];
        assert_eq!(handed_off_from(&grid, 5), 4, "w3 is still moving data");
        assert_eq!(handed_off_from(&grid[..4], 4), 4);
        assert_eq!(handed_off_from(&grid[..3], 3), 2);
        assert_eq!(handed_off_from(&grid[..2], 2), 2, "nobody drains");
        // An ordinal nobody paired from (a pod that never started) holds nothing.
        assert_eq!(handed_off_from(&grid[..3], 5), 2);
        // A worker without an ordinal: nothing can be told apart.
        let mut unnamed = grid.to_vec();
        unnamed.push(StorageWorker {
            ordinal: None,
            ..worker("w9", 0, "online")
        });
        assert_eq!(handed_off_from(&unnamed, 5), 5);
        assert_eq!(plan(&unnamed, 5, 2, 5), Plan::default());
    }

    #[test]
    fn heading_down_drains_the_top_ordinals_and_heading_up_keeps_them() {
        let grid = [
            worker("w0", 0, "online"),
            worker("w1", 1, "online draining"),
            worker("w2", 2, "online"),
            worker("w3", 3, "online draining handed-off"),
        ];
        let down = plan(&grid, 4, 2, 4);
        assert_eq!(down.drain, ids(&["w2"]));
        assert_eq!(down.stay, ids(&["w1"]), "below the target: stays");
        assert!(down.remove.is_empty());
        let up = plan(&grid, 4, 6, 4);
        assert_eq!(up.stay, ids(&["w1", "w3"]));
        assert!(up.drain.is_empty());
    }

    #[test]
    fn gone_drained_workers_and_replaced_pairings_leave_the_grid() {
        let mut old = worker("w1", 1, "offline");
        old.paired_at = DateTime::<Utc>::from_timestamp(0, 0).unwrap();
        let grid = [
            worker("w0", 0, "online"),
            old,
            worker("w5", 1, "online"),
            worker("w2", 2, "offline draining handed-off"),
            worker("w3", 3, "offline"),
        ];
        let after = plan(&grid, 2, 2, 2);
        // w3 went offline without draining: its data may come back with it, so it stays.
        assert_eq!(after.remove, ids(&["w1", "w2"]));
        assert!(after.drain.is_empty() && after.stay.is_empty());
    }
}
