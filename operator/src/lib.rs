//! The Meniscus operator (kube-rs): the custom resources ([`crd`]), the `MeniscusGrid`
//! controller ([`grid`]: children, status, deletion), the `Tenant` controller ([`tenant`]:
//! tokens, the coordinator's registry), and the autoscaler's decision ([`autoscaler`]).
//! Never depends on the store.
#![forbid(unsafe_code)]

pub mod apply;
pub mod autoscaler;
pub mod conditions;
pub mod context;
pub mod coordinator_api;
pub mod coordinator_host;
pub mod crd;
pub mod grid;
pub mod leader;
pub mod quantity;
pub mod tenant;

use std::sync::Arc;
use std::time::Duration;

use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};

use context::Context;

/// Why a reconcile failed; the controller retries it with backoff.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct Error(pub anyhow::Error);

impl Error {
    pub fn msg(message: impl std::fmt::Display) -> Error {
        Error(anyhow::anyhow!("{message}"))
    }
}

/// A cleanup that cannot finish yet and says when to look again: the finalizer stays, and
/// the wait is not counted as a failed reconcile.
#[derive(Debug, thiserror::Error)]
#[error("{why} (again in {again:?})")]
pub struct Wait {
    pub again: Duration,
    pub why: String,
}

impl From<Wait> for Error {
    fn from(wait: Wait) -> Error {
        Error(anyhow::Error::new(wait))
    }
}

impl From<kube::Error> for Error {
    fn from(error: kube::Error) -> Error {
        Error(error.into())
    }
}

/// One reconcile of `object` under `finalizer_name`: `apply` while it lives, `cleanup` once it
/// is being deleted (the finalizer goes when `cleanup` succeeds; a [`Wait`] keeps it and
/// looks again later). Counts the reconcile, and a success starts the object's retry backoff
/// over.
pub async fn reconcile_with_finalizer<K, Apply, Cleanup>(
    object: Arc<K>,
    context: Arc<Context>,
    finalizer_name: &str,
    apply: impl FnOnce(Arc<K>, Arc<Context>) -> Apply,
    cleanup: impl FnOnce(Arc<K>, Arc<Context>) -> Cleanup,
) -> Result<Action, Error>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::Serialize
        + serde::de::DeserializeOwned,
    Apply: std::future::Future<Output = Result<Action, Error>>,
    Cleanup: std::future::Future<Output = Result<Action, Error>>,
{
    let kind = K::kind(&()).to_string();
    context.metrics.reconciles.inc(&[&kind]);
    let namespace = object
        .namespace()
        .ok_or_else(|| Error::msg(format!("a {kind} is namespaced")))?;
    let key = format!("{kind}/{namespace}/{}", object.name_any());
    let api: kube::Api<K> = kube::Api::namespaced(context.client.clone(), &namespace);
    // kube's finalizer helper patches the object to add the finalizer (then returns, and the
    // patch wakes the next reconcile) or to remove it after a cleanup: writes too.
    let has_finalizer = object
        .finalizers()
        .iter()
        .any(|name| name == finalizer_name);
    let deleting = object.meta().deletion_timestamp.is_some();
    let outcome = kube::runtime::finalizer(&api, finalizer_name, object, |event| async {
        match event {
            kube::runtime::finalizer::Event::Apply(object) => apply(object, context.clone()).await,
            kube::runtime::finalizer::Event::Cleanup(object) => {
                cleanup(object, context.clone()).await
            }
        }
    })
    .await;
    if has_finalizer == deleting && (outcome.is_ok() || !deleting) {
        context.metrics.writes.inc(&[&kind]);
    }
    match outcome {
        Ok(action) => {
            context.succeeded(&key);
            Ok(action)
        }
        Err(kube::runtime::finalizer::Error::CleanupFailed(error)) => {
            match error.0.downcast_ref::<Wait>() {
                Some(wait) => {
                    tracing::debug!(object = %key, %wait, "deletion waits");
                    Ok(Action::requeue(wait.again))
                }
                None => Err(error),
            }
        }
        Err(kube::runtime::finalizer::Error::ApplyFailed(error)) => Err(error),
        Err(error) => Err(Error::msg(error)),
    }
}

/// Retries a failed reconcile: soon after a first failure, then less often (a broken spec
/// or a forbidden call must not hammer the API server), at most every five minutes.
pub fn error_policy<K: Resource<DynamicType = ()>>(
    object: Arc<K>,
    error: &Error,
    context: Arc<Context>,
) -> Action {
    let kind = K::kind(&());
    context.metrics.reconcile_errors.inc(&[kind.as_ref()]);
    let key = format!(
        "{kind}/{}/{}",
        object.namespace().unwrap_or_default(),
        object.name_any()
    );
    let failures = context.failures(&key);
    tracing::warn!(object = %key, %error, failures, "reconcile failed; retrying");
    {
        let mut recent = context.recent_errors.lock();
        if recent.len() >= context::KEPT_ERRORS {
            recent.remove(0);
        }
        recent.push(format!("{key}: {error}"));
    }
    Action::requeue(backoff(failures))
}

/// 5 s, 10 s, 20 s, … up to 5 minutes, for the `failures`-th failure in a row.
pub fn backoff(failures: u32) -> Duration {
    Duration::from_secs(5u64.saturating_mul(1 << failures.saturating_sub(1).min(6)))
        .min(Duration::from_secs(300))
}

/// 32 random bytes as hex: pairing secrets, admin credentials, tenant tokens.
pub fn random_token() -> anyhow::Result<String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no random source"))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let seconds: Vec<u64> = [1, 2, 3, 4, 7, 8, 50]
            .map(|n| backoff(n).as_secs())
            .to_vec();
        assert_eq!(seconds, vec![5, 10, 20, 40, 300, 300, 300]);
    }
}
