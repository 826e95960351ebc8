//! Server-side apply of the children, with one field manager, that writes only when what the
//! operator wants changed: each applied object carries a digest of what was applied, and an
//! object whose digest matches is left alone. A grid at rest then costs reads, never writes
//! (every write wakes every watcher of the kind in the cluster).

use std::fmt::Debug;

use anyhow::Context as _;
use kube::api::{Api, Patch, PatchParams};
use kube::core::NamespaceResourceScope;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::context::Context;
use crate::grid::children::MANAGER;

/// Annotation holding the digest of what the operator last applied.
pub const APPLIED_DIGEST: &str = "meniscus.io/applied-digest";

/// Applies `object` (named, in a namespace) unless the live one carries the same digest.
/// Returns the live object.
pub async fn apply<K>(context: &Context, mut object: K) -> anyhow::Result<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let name = object.meta().name.clone().context("a child needs a name")?;
    let namespace = object
        .meta()
        .namespace
        .clone()
        .context("a child needs a namespace")?;
    let digest = digest(&object)?;
    object
        .meta_mut()
        .annotations
        .get_or_insert_with(Default::default)
        .insert(APPLIED_DIGEST.to_string(), digest.clone());
    let api: Api<K> = Api::namespaced(context.client.clone(), &namespace);
    if let Some(live) = api.get_opt(&name).await? {
        let applied = live
            .meta()
            .annotations
            .as_ref()
            .and_then(|annotations| annotations.get(APPLIED_DIGEST));
        if applied == Some(&digest) {
            return Ok(live);
        }
    }
    context.metrics.writes.inc(&[K::kind(&()).as_ref()]);
    api.patch(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&object),
    )
    .await
    .with_context(|| format!("applying {} {namespace}/{name}", K::kind(&())))
}

/// SHA-256 of a value as JSON, first 16 bytes in hex (of a child: before its digest
/// annotation is set).
pub fn digest<K: Serialize>(object: &K) -> anyhow::Result<String> {
    let bytes = serde_json::to_vec(object)?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    Ok(digest.as_ref()[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect())
}

/// Writes `status` as `object`'s status subresource by server-side apply (the caller has
/// checked that it differs).
pub async fn status<K, S>(context: &Context, object: &K, status: &S) -> Result<(), kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + DeserializeOwned,
    S: Serialize,
{
    let namespace = object.meta().namespace.clone().unwrap_or_default();
    let name = object.meta().name.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(context.client.clone(), &namespace);
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let kind = format!("{}/status", K::kind(&()));
    context.metrics.writes.inc(&[&kind]);
    api.patch_status(
        &name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}

/// The statuses this operator wrote last, so that a reconcile running before the watch has
/// delivered its own write neither writes the same status again nor starts its conditions'
/// transition times over (1,000 new Tenants cost two status writes each without it: the
/// Secret's creation wakes each one again before its status write is back in the cache).
pub struct StatusMemo<S> {
    /// By object uid: the resourceVersion the write was based on, and what was written. An
    /// entry stays until its object goes: a copy of the object older than the write (a
    /// snapshot of the cache taken before it) must not make a later reconcile forget it.
    written: std::sync::Mutex<std::collections::HashMap<String, (Option<String>, S)>>,
}

impl<S> Default for StatusMemo<S> {
    fn default() -> Self {
        StatusMemo {
            written: Default::default(),
        }
    }
}

impl<S: Clone> StatusMemo<S> {
    /// The freshest status known for `object`, whose cached status is `cached`: what this
    /// operator last wrote while the cache still shows the version that write was based on,
    /// else the cached one (which then holds that write, or something newer).
    pub fn latest<K: Resource>(&self, object: &K, cached: Option<&S>) -> Option<S> {
        let uid = object.meta().uid.as_deref().unwrap_or_default();
        let written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        match written.get(uid) {
            Some((based_on, status)) if *based_on == object.meta().resource_version => {
                Some(status.clone())
            }
            _ => cached.cloned(),
        }
    }

    /// Remembers that `status` was written over `object` as the cache showed it.
    pub fn wrote<K: Resource>(&self, object: &K, status: S) {
        let uid = object.meta().uid.clone().unwrap_or_default();
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(uid, (object.meta().resource_version.clone(), status));
    }

    /// Forgets every object whose uid `keep` refuses (those gone from the cache).
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|uid, _| keep(uid));
    }

    /// Forgets `object` (it is gone).
    pub fn forget<K: Resource>(&self, object: &K) {
        let uid = object.meta().uid.clone().unwrap_or_default();
        self.written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&uid);
    }
}

#[cfg(test)]
mod tests {
    use super::StatusMemo;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    fn at(version: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                uid: Some("u1".into()),
                resource_version: Some(version.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_write_stands_until_the_cache_moves_past_the_version_it_was_based_on() {
        let memo = StatusMemo::<&str>::default();
        assert_eq!(memo.latest(&at("1"), Some(&"cached")), Some("cached"));
        memo.wrote(&at("1"), "written");
        // The watch has not delivered the write yet: the cache still shows version 1.
        assert_eq!(memo.latest(&at("1"), Some(&"cached")), Some("written"));
        assert_eq!(memo.latest(&at("1"), None), Some("written"));
        // Version 2 holds the write, or something newer (another writer): the cache wins.
        assert_eq!(memo.latest(&at("2"), Some(&"newer")), Some("newer"));
        // A copy older than the write (version 0) does not make it forgotten.
        assert_eq!(memo.latest(&at("0"), None), None);
        assert_eq!(memo.latest(&at("1"), Some(&"cached")), Some("written"));
        memo.wrote(&at("2"), "again");
        memo.forget(&at("2"));
        assert_eq!(memo.latest(&at("2"), None), None);
        memo.wrote(&at("3"), "kept");
        memo.retain(|uid| uid != "u1");
        assert_eq!(memo.latest(&at("3"), None), None);
    }
}
