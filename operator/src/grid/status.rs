//! A grid's status from what its children report: per persona desired and ready replicas,
//! and the `Ready`, `Progressing` and `Degraded` conditions with reasons a program can act on.

use std::collections::BTreeMap;

use crate::conditions;
use crate::crd::grid::{MeniscusGrid, MeniscusGridStatus, PersonaStatus};
use crate::grid::children::{self, Component};
use crate::grid::scaling::Scaled;

/// Replicas of one component: what the operator asked for and what is ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rollout {
    pub desired: i32,
    pub ready: i32,
    /// The workload's controller has seen its latest spec and every pod runs it.
    pub updated: bool,
}

impl Rollout {
    /// From a workload's status: (ready, updated) replicas, the generation its controller
    /// observed, and its own generation.
    pub fn of(
        desired: i32,
        (ready, updated): (Option<i32>, Option<i32>),
        observed: Option<i64>,
        generation: Option<i64>,
    ) -> Rollout {
        Rollout {
            desired,
            ready: ready.unwrap_or(0),
            updated: observed >= generation && updated.unwrap_or(0) >= desired,
        }
    }
}

/// The status the grid should have, starting from its current one (so transition times are
/// kept; the caller sets the route version).
pub fn compute(
    grid: &MeniscusGrid,
    rollouts: &BTreeMap<Component, Rollout>,
    scaled: &BTreeMap<Component, Scaled>,
) -> MeniscusGridStatus {
    let mut status = grid.status.clone().unwrap_or_default();
    let generation = grid.metadata.generation;
    let previous = status.clone();
    let was = |type_: &str, reason: Option<&str>| {
        conditions::get(&previous.conditions, type_).is_some_and(|condition| {
            condition.status == "True" && reason.is_none_or(|reason| condition.reason == reason)
        })
    };
    status.observed_generation = generation;
    status.personas = rollouts
        .iter()
        .map(|(component, rollout)| {
            let shown = previous
                .personas
                .get(component.as_str())
                .map_or(0.0, |persona| persona.events_per_second);
            let events_per_second = match scaled.get(component) {
                Some(scaled) => refreshed(shown, scaled.events_per_second),
                None => shown,
            };
            (
                component.as_str().to_string(),
                PersonaStatus {
                    desired: rollout.desired,
                    ready: rollout.ready,
                    events_per_second,
                },
            )
        })
        .collect();
    status.ingest_endpoints = children::ingest_endpoints(grid);

    let short: Vec<String> = rollouts
        .iter()
        .filter(|(component, rollout)| {
            rollout.ready < rollout.desired || (component.is_required() && rollout.desired < 1)
        })
        .map(|(component, rollout)| {
            format!(
                "{} {}/{} ready",
                component.as_str(),
                rollout.ready,
                rollout.desired
            )
        })
        .collect();
    let unavailable: Vec<&str> = rollouts
        .iter()
        .filter(|(component, rollout)| component.is_required() && rollout.ready == 0)
        .map(|(component, _)| component.as_str())
        .collect();
    let rolling: Vec<&str> = rollouts
        .iter()
        .filter(|(_, rollout)| !rollout.updated || rollout.ready != rollout.desired)
        .map(|(component, _)| component.as_str())
        .collect();

    let ready = short.is_empty();
    conditions::set(
        &mut status.conditions,
        "Ready",
        ready,
        if ready {
            "AllPersonasReady"
        } else {
            "PersonasNotReady"
        },
        if ready {
            "every persona has its desired replicas ready".into()
        } else {
            short.join(", ")
        },
        generation,
    );
    conditions::set(
        &mut status.conditions,
        "Progressing",
        !rolling.is_empty(),
        if rolling.is_empty() {
            "RolloutComplete"
        } else {
            "RollingOut"
        },
        if rolling.is_empty() {
            String::new()
        } else {
            format!("rolling out: {}", rolling.join(", "))
        },
        generation,
    );
    // Degraded: a persona the grid needs has no ready pod after the grid was ready (while it
    // starts, that is Progressing, not Degraded).
    let degraded = !unavailable.is_empty()
        && (was("Ready", None) || was("Degraded", Some("PersonaUnavailable")));
    conditions::set(
        &mut status.conditions,
        "Degraded",
        degraded,
        if degraded {
            "PersonaUnavailable"
        } else {
            "AsExpected"
        },
        if degraded {
            format!("no ready pod: {}", unavailable.join(", "))
        } else {
            String::new()
        },
        generation,
    );
    status
}

/// The events/s to show: the new reading once it moved by more than a fifth (rounded), else
/// the shown one, so a grid under steady load does not rewrite its status every reconcile.
fn refreshed(shown: f64, reading: f64) -> f64 {
    if (reading - shown).abs() > 0.2 * shown.max(1.0) {
        (reading * 10.0).round() / 10.0
    } else {
        shown
    }
}

/// `status` with `Degraded` set to why the last reconcile failed.
pub fn failed(grid: &MeniscusGrid, reason: &str, message: String) -> MeniscusGridStatus {
    let mut status = grid.status.clone().unwrap_or_default();
    conditions::set(
        &mut status.conditions,
        "Degraded",
        true,
        reason,
        message,
        grid.metadata.generation,
    );
    status
}
