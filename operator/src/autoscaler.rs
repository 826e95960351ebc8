//! The autoscaler: how many replicas each persona should run. The operator owns `replicas` and no
//! HorizontalPodAutoscaler is used: an HPA scales on CPU, memory or one metric, while Meniscus
//! scales on events/s *and* backlog from its own heartbeats, and storage must hand its tenants off
//! before it may shrink. An HPA on the same workloads would fight the operator over `replicas`.
//! [`decide`] does no I/O and reads no clock (the caller passes the time and keeps the
//! [`History`]), so every decision can be replayed in a test.

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use crate::crd::grid::{Autoscaling, Replicas};

/// Only storage holds data that has to move before one of its workers may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PersonaKind {
    Stateless,
    /// `handed_off_from`: the lowest StatefulSet ordinal from which every storage worker has
    /// handed its tenants off (`current` when none has). A scale-down goes no lower than it;
    /// the workers a scale-down would remove are ordinals `target..current` (see
    /// [`Decision::target`]), which the caller asks to hand off.
    Storage {
        handed_off_from: i32,
    },
}

/// One reading of a persona's load, summed over its workers' heartbeats.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Observation {
    pub events_per_second: f64,
    /// Events queued or spooled across the workers.
    pub backlog: u64,
    /// Workers in the sums; fewer than the current replicas makes the reading partial.
    pub workers_reporting: i32,
}

/// What one decision depends on, besides the time and the history.
#[derive(Clone, Copy, Debug)]
pub struct Input<'a> {
    pub current: i32,
    pub range: &'a Replicas,
    pub autoscaling: &'a Autoscaling,
    pub kind: PersonaKind,
    pub observation: Observation,
}

/// Why the replicas are what they are; [`Reason::as_str`] is the `reason` of a condition or Event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    WithinTarget,
    ScaleUp,
    ScaleDown,
    HeldForStabilization,
    HeldForHandoff,
    HeldOnPartialData,
    ClampedToRange,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::WithinTarget => "WithinTarget",
            Reason::ScaleUp => "ScaleUp",
            Reason::ScaleDown => "ScaleDown",
            Reason::HeldForStabilization => "HeldForStabilization",
            Reason::HeldForHandoff => "HeldForHandoff",
            Reason::HeldOnPartialData => "HeldOnPartialData",
            Reason::ClampedToRange => "ClampedToRange",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The replicas the decision started from.
    pub from: i32,
    /// The replicas to run now.
    pub replicas: i32,
    /// Where the autoscaler is heading. Differs from `replicas` only when held for handoff, so
    /// the caller knows whose tenants to move first.
    pub target: i32,
    /// What this observation alone asks for, before stabilization (within the range).
    pub recommended: i32,
    pub reason: Reason,
}

/// The `message` to go with [`Reason`] in a condition or Event.
impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (from, to, rec) = (self.from, self.replicas, self.recommended);
        match self.reason {
            Reason::WithinTarget => write!(f, "{from} replicas match the load (recommended {rec})"),
            Reason::ScaleUp | Reason::ScaleDown | Reason::ClampedToRange => {
                write!(f, "{from} -> {to} replicas (recommended {rec})")
            }
            Reason::HeldForStabilization => write!(
                f,
                "staying at {from} replicas until the recommendation ({rec}) holds for the window"
            ),
            Reason::HeldOnPartialData => write!(
                f,
                "staying at {from} replicas: not every worker reported (recommended {rec})"
            ),
            Reason::HeldForHandoff => write!(
                f,
                "at {to} replicas until the tenants of {} more workers are handed off (target {})",
                to - self.target,
                self.target
            ),
        }
    }
}

/// One persona's past recommendations, kept by the caller between decisions. It starts empty, so
/// after an operator restart nothing moves until a whole window has been seen again.
#[derive(Clone, Debug, Default)]
pub struct History {
    samples: VecDeque<(Duration, i32)>,
    /// When the last step down was taken: the next one waits a whole down window after it.
    last_step_down: Option<Duration>,
}

impl History {
    fn record(&mut self, now: Duration, recommended: i32, keep: Duration) {
        self.samples.push_back((now, recommended));
        if let Some(cutoff) = now.checked_sub(keep) {
            // The last sample at or before the cutoff stays: it is the recommendation in force
            // when the longest window opens.
            while self.samples.get(1).is_some_and(|&(at, _)| at <= cutoff) {
                self.samples.pop_front();
            }
        }
    }

    /// Lowest and highest recommendation in force over the last `window`; `None` until the
    /// history reaches back that far, since a window not seen whole says nothing about it.
    fn over(&self, now: Duration, window: Duration) -> Option<(i32, i32)> {
        let start = now.checked_sub(window)?;
        let first = self.samples.iter().rposition(|&(at, _)| at <= start)?;
        let seen = self.samples.range(first..).map(|&(_, r)| r);
        Some((seen.clone().min()?, seen.max()?))
    }
}

/// Replicas the load needs, unclamped; 0 only without any load.
fn needed(obs: &Observation, scaling: &Autoscaling) -> i32 {
    let per_replica = scaling.events_per_second_per_replica.max(1) as f64;
    // NaN or negative rates (a bad heartbeat) count as no load; `as` saturates huge ones.
    let by_events = if obs.events_per_second > 0.0 {
        (obs.events_per_second / per_replica).ceil() as i64
    } else {
        0
    };
    let per_replica = u64::try_from(scaling.backlog_per_replica.max(1)).unwrap_or(1);
    let by_backlog = i64::try_from(obs.backlog.div_ceil(per_replica)).unwrap_or(i64::MAX);
    i32::try_from(by_events.max(by_backlog)).unwrap_or(i32::MAX)
}

fn seconds(s: i32) -> Duration {
    Duration::from_secs(u64::try_from(s).unwrap_or(0))
}

/// Decides one persona's replicas at `now` (monotonic, any fixed epoch) and records the
/// observation in `history`.
pub fn decide(history: &mut History, now: Duration, input: &Input<'_>) -> Decision {
    let Input {
        current,
        range,
        autoscaling: scaling,
        kind,
        observation: obs,
    } = *input;
    // Not `i32::clamp`: it panics if min > max, which the CRD rejects but a decision must survive.
    let bound = |n: i32| n.max(range.min).min(range.max);
    let recommended = match needed(&obs, scaling) {
        0 => bound(range.min),
        n => bound(n),
    };
    let partial = obs.workers_reporting < current;
    // Missing heartbeats make the sums undercount, so a partial reading is only a lower bound: it
    // may push up, but is recorded no lower than current so it cannot pull the down window below.
    let sample = if partial {
        recommended.max(current)
    } else {
        recommended
    };
    let (up, down) = (
        seconds(scaling.scale_up_window_seconds),
        seconds(scaling.scale_down_window_seconds),
    );
    history.record(now, sample, up.max(down));

    let decision = |replicas, target, reason| Decision {
        from: current,
        replicas,
        target,
        recommended,
        reason,
    };
    // Storage workers going away would take their tenants' hot data with them: no shrinking,
    // not even to honour a lowered max, below the workers that have handed their tenants off.
    let shrink = |target: i32, reason| match kind {
        PersonaKind::Storage { handed_off_from } if handed_off_from > target => decision(
            handed_off_from.clamp(target, current),
            target,
            Reason::HeldForHandoff,
        ),
        _ => decision(target, target, reason),
    };

    let in_range = bound(current);
    if in_range > current {
        return decision(in_range, in_range, Reason::ClampedToRange);
    }
    if in_range < current {
        return shrink(in_range, Reason::ClampedToRange);
    }
    match recommended.cmp(&current) {
        Ordering::Equal => decision(current, current, Reason::WithinTarget),
        // The lowest value of the window, so one spike inside it does not overshoot.
        Ordering::Greater => match history.over(now, up) {
            Some((lowest, _)) if lowest > current => {
                decision(bound(lowest), bound(lowest), Reason::ScaleUp)
            }
            _ => decision(current, current, Reason::HeldForStabilization),
        },
        Ordering::Less if partial => decision(current, current, Reason::HeldOnPartialData),
        Ordering::Less => match history.over(now, down) {
            // One step per window: a reconcile comes with every pod that stops, so without this
            // the halving below would repeat within seconds, before the survivors' heartbeats
            // show the load they took over.
            Some(_)
                if history
                    .last_step_down
                    .is_some_and(|at| now.saturating_sub(at) < down) =>
            {
                decision(current, current, Reason::HeldForStabilization)
            }
            Some((_, highest)) if highest < current => {
                // At most halve per step: the survivors take over the removed workers' sources
                // and tenants, so a wrong guess (bursty load between heartbeats) costs at most
                // double load per worker, which the fast up path repairs. Only 1 may go to 0.
                let floor = if current > 1 { (current + 1) / 2 } else { 0 };
                let step = shrink(bound(highest.max(floor)), Reason::ScaleDown);
                // A storage step held for its hand-off is still the same step.
                if step.reason == Reason::ScaleDown {
                    history.last_step_down = Some(now);
                }
                step
            }
            _ => decision(current, current, Reason::HeldForStabilization),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Reason::*;

    const ALL: Option<i32> = None;
    const STATELESS: PersonaKind = PersonaKind::Stateless;

    /// (at seconds, events/s, backlog, workers reporting (`ALL` = current), want replicas, want reason)
    type Step = (u64, f64, u64, Option<i32>, i32, Reason);

    struct Case<'a> {
        name: &'static str,
        /// (min, max) replicas.
        range: (i32, i32),
        /// (scale up, scale down) windows in seconds.
        windows: (i32, i32),
        kind: PersonaKind,
        start: i32,
        steps: &'a [Step],
    }

    // 100 events/s or 1000 backlog per replica.
    #[rustfmt::skip]
    const CASES: &[Case<'static>] = &[
        Case { name: "steady load within target", range: (1, 10), windows: (30, 300), kind: STATELESS, start: 3,
            steps: &[(0, 250.0, 0, ALL, 3, WithinTarget), (10, 300.0, 0, ALL, 3, WithinTarget)] },
        Case { name: "spike with up window 0 scales at once", range: (1, 10), windows: (0, 300), kind: STATELESS, start: 2,
            steps: &[(0, 150.0, 0, ALL, 2, WithinTarget), (10, 700.0, 0, ALL, 7, ScaleUp)] },
        Case { name: "spike shorter than the up window changes nothing", range: (1, 10), windows: (30, 300), kind: STATELESS, start: 2,
            steps: &[(0, 200.0, 0, ALL, 2, WithinTarget), (30, 200.0, 0, ALL, 2, WithinTarget),
                     (40, 900.0, 0, ALL, 2, HeldForStabilization), (50, 900.0, 0, ALL, 2, HeldForStabilization),
                     (60, 200.0, 0, ALL, 2, WithinTarget), (70, 200.0, 0, ALL, 2, WithinTarget)] },
        Case { name: "sustained load scales to the lowest of the up window", range: (1, 10), windows: (30, 300), kind: STATELESS, start: 2,
            steps: &[(0, 200.0, 0, ALL, 2, WithinTarget), (30, 200.0, 0, ALL, 2, WithinTarget),
                     (40, 900.0, 0, ALL, 2, HeldForStabilization), (50, 600.0, 0, ALL, 2, HeldForStabilization),
                     (60, 800.0, 0, ALL, 2, HeldForStabilization), (70, 700.0, 0, ALL, 6, ScaleUp)] },
        Case { name: "drop in load holds before the down window", range: (1, 10), windows: (0, 60), kind: STATELESS, start: 8,
            steps: &[(0, 800.0, 0, ALL, 8, WithinTarget), (10, 100.0, 0, ALL, 8, HeldForStabilization),
                     (60, 100.0, 0, ALL, 8, HeldForStabilization)] },
        Case { name: "after the down window scales down at most halving", range: (1, 10), windows: (0, 60), kind: STATELESS, start: 8,
            steps: &[(0, 800.0, 0, ALL, 8, WithinTarget), (10, 100.0, 0, ALL, 8, HeldForStabilization),
                     (70, 100.0, 0, ALL, 4, ScaleDown), (80, 100.0, 0, ALL, 4, HeldForStabilization),
                     (129, 100.0, 0, ALL, 4, HeldForStabilization), (130, 100.0, 0, ALL, 2, ScaleDown),
                     (190, 100.0, 0, ALL, 1, ScaleDown)] },
        Case { name: "a storage step held for its hand-off goes on without a new window", range: (1, 10), windows: (0, 60), kind: PersonaKind::Storage { handed_off_from: 7 }, start: 8,
            steps: &[(0, 100.0, 0, ALL, 8, HeldForStabilization), (60, 100.0, 0, ALL, 7, HeldForHandoff),
                     (70, 100.0, 0, ALL, 7, HeldForHandoff)] },
        Case { name: "recommendation above max is clamped", range: (1, 5), windows: (0, 300), kind: STATELESS, start: 3,
            steps: &[(0, 5000.0, 0, ALL, 5, ScaleUp), (10, 5000.0, 0, ALL, 5, WithinTarget)] },
        Case { name: "current below min is raised at once", range: (4, 10), windows: (30, 300), kind: STATELESS, start: 2,
            steps: &[(0, 0.0, 0, ALL, 4, ClampedToRange), (10, 0.0, 0, ALL, 4, WithinTarget)] },
        Case { name: "current above max is lowered at once", range: (1, 3), windows: (30, 300), kind: STATELESS, start: 6,
            steps: &[(0, 600.0, 0, ALL, 3, ClampedToRange)] },
        Case { name: "partial data blocks scale-down but not scale-up", range: (1, 10), windows: (0, 0), kind: STATELESS, start: 4,
            steps: &[(0, 100.0, 0, Some(3), 4, HeldOnPartialData), (10, 900.0, 0, Some(2), 9, ScaleUp),
                     (20, 100.0, 0, ALL, 5, ScaleDown)] },
        Case { name: "partial reading keeps blocking scale-down for the down window", range: (1, 10), windows: (0, 30), kind: STATELESS, start: 4,
            steps: &[(0, 100.0, 0, ALL, 4, HeldForStabilization), (10, 100.0, 0, Some(3), 4, HeldOnPartialData),
                     (30, 100.0, 0, ALL, 4, HeldForStabilization), (59, 100.0, 0, ALL, 4, HeldForStabilization),
                     (60, 100.0, 0, ALL, 2, ScaleDown)] },
        Case { name: "storage scale-down held without handoff", range: (1, 10), windows: (0, 0), kind: PersonaKind::Storage { handed_off_from: 6 }, start: 6,
            steps: &[(0, 100.0, 0, ALL, 6, HeldForHandoff), (10, 100.0, 0, ALL, 6, HeldForHandoff)] },
        Case { name: "storage scale-down allowed after handoff", range: (1, 10), windows: (0, 0), kind: PersonaKind::Storage { handed_off_from: 3 }, start: 6,
            steps: &[(0, 100.0, 0, ALL, 3, ScaleDown)] },
        Case { name: "storage scale-down goes as far as the handoff has", range: (1, 10), windows: (0, 0), kind: PersonaKind::Storage { handed_off_from: 5 }, start: 6,
            steps: &[(0, 100.0, 0, ALL, 5, HeldForHandoff)] },
        Case { name: "storage above max waits for handoff", range: (1, 3), windows: (0, 0), kind: PersonaKind::Storage { handed_off_from: 5 }, start: 5,
            steps: &[(0, 100.0, 0, ALL, 5, HeldForHandoff)] },
        Case { name: "storage scale-up needs no handoff", range: (1, 10), windows: (0, 0), kind: PersonaKind::Storage { handed_off_from: 2 }, start: 2,
            steps: &[(0, 400.0, 0, ALL, 4, ScaleUp)] },
        Case { name: "zero load goes to min", range: (2, 10), windows: (0, 0), kind: STATELESS, start: 3,
            steps: &[(0, 0.0, 0, ALL, 2, ScaleDown), (10, 0.0, 0, ALL, 2, WithinTarget)] },
        Case { name: "zero load reaches zero when min is 0", range: (0, 3), windows: (0, 0), kind: STATELESS, start: 1,
            steps: &[(0, 0.0, 0, ALL, 0, ScaleDown), (10, 0.5, 0, ALL, 1, ScaleUp)] },
        Case { name: "backlog alone drives scale-up", range: (1, 10), windows: (0, 300), kind: STATELESS, start: 1,
            steps: &[(0, 0.0, 3500, ALL, 4, ScaleUp), (10, 150.0, 3500, ALL, 4, WithinTarget)] },
    ];

    fn run(case: &Case<'_>, history: &mut History) -> Vec<Decision> {
        let range = Replicas {
            min: case.range.0,
            max: case.range.1,
        };
        let autoscaling = Autoscaling {
            events_per_second_per_replica: 100,
            backlog_per_replica: 1000,
            scale_up_window_seconds: case.windows.0,
            scale_down_window_seconds: case.windows.1,
            ..Autoscaling::default()
        };
        let mut current = case.start;
        let mut decisions = Vec::new();
        for &(at, eps, backlog, reporting, want, reason) in case.steps {
            let observation = Observation {
                events_per_second: eps,
                backlog,
                workers_reporting: reporting.unwrap_or(current),
            };
            let input = Input {
                current,
                range: &range,
                autoscaling: &autoscaling,
                kind: case.kind,
                observation,
            };
            let got = decide(history, Duration::from_secs(at), &input);
            assert_eq!(
                (got.replicas, got.reason),
                (want, reason),
                "{} at {at}s: {got}",
                case.name
            );
            current = got.replicas;
            decisions.push(got);
        }
        decisions
    }

    #[test]
    fn table() {
        for case in CASES {
            run(case, &mut History::default());
        }
    }

    #[test]
    fn held_for_handoff_names_the_target() {
        let case = CASES
            .iter()
            .find(|c| c.name == "storage scale-down held without handoff")
            .unwrap();
        let got = run(case, &mut History::default())[0];
        assert_eq!(
            (got.from, got.replicas, got.target, got.recommended),
            (6, 6, 3, 1)
        );
        assert_eq!(got.reason.to_string(), "HeldForHandoff");
        assert_eq!(
            got.to_string(),
            "at 6 replicas until the tenants of 3 more workers are handed off (target 3)"
        );
    }

    #[test]
    fn history_keeps_only_the_longest_window() {
        let steps: Vec<Step> = (0..100)
            .map(|i| (i * 10, 800.0, 0, ALL, 8, WithinTarget))
            .collect();
        let case = Case {
            name: "long steady run",
            range: (1, 10),
            windows: (30, 60),
            kind: STATELESS,
            start: 8,
            steps: &steps,
        };
        let mut history = History::default();
        run(&case, &mut history);
        // Samples at 930..=990 plus the one in force when the 60s window opens (930 itself).
        assert_eq!(history.samples.len(), 7);
    }
}
