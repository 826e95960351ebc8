//! The operator's calls to a grid's coordinator (its admin API, with the grid's admin
//! credential): the tenant registry (`tenant::registry`) and the workers' heartbeat loads
//! (the autoscaler's input).

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::ResourceExt;
use serde::Deserialize;

use crate::context::Context;
use crate::crd::grid::MeniscusGrid;
use crate::grid::children;

/// The coordinator's URL and the admin credential for `grid`; without the credential, the
/// name of the Secret that should hold it.
pub async fn admin(grid: &MeniscusGrid, context: &Context) -> Result<(String, String), String> {
    let namespace = grid.namespace().unwrap_or_default();
    let name = children::secrets_name(grid);
    let secrets: Api<Secret> = Api::namespaced(context.client.clone(), &namespace);
    let credential = secrets
        .get_opt(&name)
        .await
        .ok()
        .flatten()
        .and_then(|secret| secret.data?.get("admin-credential").cloned())
        .and_then(|bytes| String::from_utf8(bytes.0).ok())
        .ok_or_else(|| name.clone())?;
    Ok((
        (context.coordinator_url)(&namespace, &grid.name_any()),
        credential,
    ))
}

/// A worker as `GET /v1/admin/workers` lists it (what the autoscaler reads).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Worker {
    pub personas: Vec<String>,
    pub status: String,
    #[serde(default)]
    pub load: Load,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Load {
    pub events_in_per_second: f64,
    pub spool_bytes: u64,
}

/// The grid's workers and their last heartbeat loads.
pub async fn workers(grid: &MeniscusGrid, context: &Context) -> anyhow::Result<Vec<Worker>> {
    let (base, credential) = admin(grid, context)
        .await
        .map_err(|secret| anyhow::anyhow!("the grid's Secret {secret} has no admin credential"))?;
    #[derive(Deserialize)]
    struct Listing {
        workers: Vec<Worker>,
    }
    let listing: Listing = context
        .http
        .get(format!("{base}/v1/admin/workers"))
        .bearer_auth(credential)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(listing.workers)
}
