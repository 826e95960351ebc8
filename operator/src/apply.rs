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
