//! Setting a status condition the way Kubernetes tools expect: `lastTransitionTime` moves
//! only when the status does, so `kubectl wait` and alerting see real transitions, and a
//! reconcile that changes nothing produces the same status (and no write).

use k8s_openapi::jiff::Timestamp;

use crate::crd::common::Condition;

/// Sets the condition `type_` in `conditions` (adding it if missing).
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
) {
    let status = if status { "True" } else { "False" };
    let existing = conditions
        .iter_mut()
        .find(|condition| condition.type_ == type_);
    let transition = match &existing {
        Some(condition) if condition.status == status => condition.last_transition_time.clone(),
        _ => Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
    };
    let condition = Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message,
        last_transition_time: transition,
        observed_generation: generation,
    };
    match existing {
        Some(existing) => *existing = condition,
        None => conditions.push(condition),
    }
}

/// The condition `type_`, if set.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|condition| condition.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transition_time_moves_only_with_the_status() {
        let mut conditions = Vec::new();
        set(
            &mut conditions,
            "Ready",
            false,
            "Starting",
            "a".into(),
            Some(1),
        );
        let first = conditions[0].last_transition_time.clone();
        conditions[0].last_transition_time = "2020-01-01T00:00:00Z".into();
        set(
            &mut conditions,
            "Ready",
            false,
            "Waiting",
            "b".into(),
            Some(2),
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time, "2020-01-01T00:00:00Z");
        assert_eq!(conditions[0].reason, "Waiting");
        set(
            &mut conditions,
            "Ready",
            true,
            "AllReady",
            "c".into(),
            Some(2),
        );
        assert_ne!(conditions[0].last_transition_time, "2020-01-01T00:00:00Z");
        assert!(first.ends_with('Z'), "{first}");
        assert_eq!(get(&conditions, "Ready").unwrap().status, "True");
    }
}
