//! Rotation of a tenant's key: a new key wraps new data keys, and every sidecar of the tenant
//! is re-wrapped with it. Objects are never rewritten. Runs from the command line
//! (`meniscus keys rotate`) next to a running instance: the uploader reads the current key
//! from the key file for each upload, and readers read the key a sidecar names from the file.

use std::path::Path;

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::crypto::{self, Keyring, TenantKey};
use super::manifest::SIDECAR_SUFFIX;
use super::target::Target;
use crate::hot::sealed;

/// Re-wraps every sidecar under `tenant`'s prefix with `key`, the tenant's new current key
/// (made by [`Keyring::rotate`]). With `complete`, fails unless a last listing finds no
/// sidecar that still needs an older key (an upload that began before the rotation may write
/// one late; a second pass re-wraps it): the caller then drops the old keys. Returns the
/// sidecars re-wrapped.
pub async fn rewrap_all(
    target: &Target,
    keyring: &Keyring,
    tenant: &str,
    key: &TenantKey,
    complete: bool,
) -> anyhow::Result<usize> {
    let prefix = target.tenant_prefix(tenant);
    let mut rewrapped = 0;
    for _pass in 0..2 {
        let sidecars: Vec<ObjectPath> = target
            .store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .try_filter(|location| {
                futures::future::ready(location.as_ref().ends_with(SIDECAR_SUFFIX))
            })
            .try_collect()
            .await?;
        let mut stale = 0;
        for location in sidecars {
            let bytes = target.store.get(&location).await?.bytes().await?;
            if crypto::sidecar_key_id(&bytes)? == key.id {
                continue;
            }
            stale += 1;
            let object_key = location
                .as_ref()
                .strip_suffix(SIDECAR_SUFFIX)
                .unwrap_or(location.as_ref())
                .to_string();
            let fresh = crypto::rewrap(&bytes, tenant, &object_key, keyring, key)?;
            target.store.put(&location, PutPayload::from(fresh)).await?;
            // Before `--retire-old` drops the old key: a re-wrap lost to a power loss would
            // leave the object with no key that opens it.
            target.sync_local(&[&location], &crate::disk::LocalDisk)?;
            rewrapped += 1;
        }
        if stale == 0 {
            return Ok(rewrapped);
        }
    }
    if complete {
        anyhow::bail!(
            "sidecars wrapped with an old key kept appearing (uploads during the rotation); the \
             old keys were kept: run the rotation again"
        );
    }
    Ok(rewrapped)
}

/// Re-wraps the archive's local copies of `tenant`'s objects' skip indexes (under
/// `data_dir`, kept by object key, so under the target's prefix) with `key`; returns how many
/// were re-wrapped. They are copies: one that does not open (sealed under a key dropped
/// meanwhile, or damaged) is deleted, and fetched again from the target when a query needs
/// it, rather than failing the rotation.
pub fn rewrap_local_skip_copies(
    data_dir: &Path,
    target: &Target,
    tenant: &str,
    keyring: &Keyring,
    key: &TenantKey,
) -> std::io::Result<usize> {
    let mut rewrapped = 0;
    for copy in local_skip_copies(data_dir, target, tenant)? {
        match sealed::rewrap(&copy, tenant, keyring, key) {
            Ok(true) => rewrapped += 1,
            Ok(false) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                tracing::warn!(path = %copy.display(), %error, "deleting a local copy of a skip index that does not open; it is fetched again when needed");
                let _ = std::fs::remove_file(&copy);
            }
        }
    }
    Ok(rewrapped)
}

/// Deletes the local skip-index copies of `tenant` still sealed under a key other than
/// `key_id` (written by a process that read the key just before a rotation), so that
/// retiring the old keys strands none: they are fetched again when needed.
pub fn drop_local_skip_copies_under_other_keys(
    data_dir: &Path,
    target: &Target,
    tenant: &str,
    key_id: &str,
) -> std::io::Result<()> {
    for copy in local_skip_copies(data_dir, target, tenant)? {
        if sealed::key_id_of(&copy).is_ok_and(|id| id.is_some_and(|id| id != key_id)) {
            let _ = std::fs::remove_file(&copy);
        }
    }
    Ok(())
}

fn local_skip_copies(
    data_dir: &Path,
    target: &Target,
    tenant: &str,
) -> std::io::Result<Vec<std::path::PathBuf>> {
    let dir = super::local_skip_dir(data_dir).join(target.tenant_prefix(tenant).as_ref());
    crate::hot::manifest::files_with_extensions(&dir, &["skip"])
}
