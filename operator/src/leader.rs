//! Leader election with a `coordination.k8s.io` Lease, so several operator replicas can run
//! and only one reconciles (two would fight over children and double every write).
//!
//! As in client-go, a holder's lease is judged by what this replica observed, not by the
//! holder's clock: a lease counts as expired when its record has not changed for the lease's
//! duration, whatever its `renewTime` says. The holder renews well within the duration; a
//! holder that cannot renew before its lease expires gives up (the caller exits), so two
//! replicas never both believe they lead for longer than the clock drift of one renewal.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::Client;

#[derive(Clone, Debug)]
pub struct Options {
    pub namespace: String,
    /// The Lease's name, shared by every replica.
    pub name: String,
    /// This replica (its pod name).
    pub identity: String,
    /// How long a lease holds without renewal.
    pub lease_duration: Duration,
    /// How often the holder renews, and others look.
    pub retry: Duration,
}

impl Options {
    pub fn new(namespace: &str, identity: &str) -> Options {
        Options {
            namespace: namespace.to_string(),
            name: "meniscus-operator".to_string(),
            identity: identity.to_string(),
            lease_duration: Duration::from_secs(15),
            retry: Duration::from_secs(3),
        }
    }
}

/// What this replica last saw of the Lease, and since when.
struct Observed {
    record: Option<(Option<String>, Option<MicroTime>)>,
    since: Instant,
}

/// Waits until this replica holds the Lease. Then renews it in the background; the returned
/// receiver gets a value when leadership is lost (the caller must stop reconciling: exit).
pub async fn lead(client: Client, options: Options) -> tokio::sync::oneshot::Receiver<String> {
    let api: Api<Lease> = Api::namespaced(client, &options.namespace);
    let mut observed = Observed {
        record: None,
        since: Instant::now(),
    };
    loop {
        match try_acquire(&api, &options, &mut observed).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(%error, lease = %options.name, "leader election: cannot read or write the Lease")
            }
        }
        tokio::time::sleep(options.retry).await;
    }
    tracing::info!(identity = %options.identity, lease = %options.name, "leading");
    let (lost, lost_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut renewed = Instant::now();
        loop {
            tokio::time::sleep(options.retry).await;
            // A renewal must end before the lease could expire in the others' eyes: one
            // hanging on a half-broken network counts as failed (the client has no read
            // timeout of its own), and the lease counts from when the request was sent.
            let sent = Instant::now();
            let budget = (renewed + options.lease_duration)
                .saturating_duration_since(sent)
                .saturating_sub(options.retry);
            let attempt = tokio::time::timeout(budget, try_acquire(&api, &options, &mut observed));
            let outcome = match attempt.await {
                Ok(outcome) => outcome,
                Err(_) => {
                    let _ =
                        lost.send("the Lease could not be renewed in time (no answer)".to_string());
                    return;
                }
            };
            match outcome {
                Ok(true) => renewed = sent,
                Ok(false) => {
                    let _ = lost.send("another replica holds the Lease".to_string());
                    return;
                }
                Err(error) if renewed.elapsed() < options.lease_duration - options.retry => {
                    tracing::warn!(%error, "leader election: renewal failed; retrying");
                }
                Err(error) => {
                    let _ = lost.send(format!("the Lease could not be renewed in time: {error}"));
                    return;
                }
            }
        }
    });
    lost_rx
}

/// One round: takes or renews the Lease when this replica may; whether it holds it now.
async fn try_acquire(
    api: &Api<Lease>,
    options: &Options,
    observed: &mut Observed,
) -> Result<bool, kube::Error> {
    let now = MicroTime(Timestamp::now());
    let mine = |transitions: i32, acquired: Option<MicroTime>| LeaseSpec {
        holder_identity: Some(options.identity.clone()),
        lease_duration_seconds: Some(options.lease_duration.as_secs() as i32),
        acquire_time: acquired.or(Some(now.clone())),
        renew_time: Some(now.clone()),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    };
    let Some(mut lease) = api.get_opt(&options.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(options.name.clone()),
                namespace: Some(options.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(mine(0, None)),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        };
    };
    let spec = lease.spec.clone().unwrap_or_default();
    let record = (spec.holder_identity.clone(), spec.renew_time.clone());
    if observed.record.as_ref() != Some(&record) {
        observed.record = Some(record);
        observed.since = Instant::now();
    }
    let held_by_me = spec.holder_identity.as_deref() == Some(options.identity.as_str());
    let duration = spec
        .lease_duration_seconds
        .map_or(options.lease_duration, |seconds| {
            Duration::from_secs(seconds.max(1) as u64)
        });
    let vacant = spec.holder_identity.as_deref().is_none_or(str::is_empty)
        || observed.since.elapsed() > duration;
    if !held_by_me && !vacant {
        return Ok(false);
    }
    let transitions = spec.lease_transitions.unwrap_or(0) + if held_by_me { 0 } else { 1 };
    let acquired = if held_by_me { spec.acquire_time } else { None };
    lease.spec = Some(mine(transitions, acquired));
    // The resourceVersion read above makes this a compare-and-swap: of two replicas taking
    // an expired lease at once, one gets 409.
    match api
        .replace(&options.name, &PostParams::default(), &lease)
        .await
    {
        Ok(lease) => {
            let spec = lease.spec.unwrap_or_default();
            observed.record = Some((spec.holder_identity, spec.renew_time));
            observed.since = Instant::now();
            Ok(true)
        }
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(error) => Err(error),
    }
}

/// The label that tells the leading replica's Pod: the coordinator Service selects on it,
/// so workers reach the replica that serves the coordinators (readiness stays "healthy", so
/// Deployments roll out normally).
pub const LEADER_LABEL: &str = "meniscus.io/leader";

/// Sets [`LEADER_LABEL`] on this replica's own Pod: `false` at start (a restarted container
/// keeps its Pod, and the label with it), `true` once it leads.
pub async fn mark_pod(
    client: Client,
    namespace: &str,
    pod: &str,
    leading: bool,
) -> Result<(), kube::Error> {
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client, namespace);
    let patch = serde_json::json!({"metadata": {"labels": {LEADER_LABEL: leading.to_string()}}});
    pods.patch(
        pod,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await?;
    Ok(())
}
