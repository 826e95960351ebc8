//! What the operator's integration tests share.
#![allow(dead_code)]

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use meniscus_testenv::wait_for;

pub const WAIT: Duration = Duration::from_secs(60);

/// Applies a CRD and waits until the API server serves it.
pub async fn install(client: &kube::Client, crd: CustomResourceDefinition) -> Result<()> {
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    let name = crd.metadata.name.clone().unwrap_or_default();
    crds.patch(
        &name,
        &PatchParams::apply("meniscus-operator-tests").force(),
        &Patch::Apply(crd),
    )
    .await
    .with_context(|| format!("applying {name}"))?;
    wait_for(WAIT, "the CRD to be Established", || async {
        Ok(crds
            .get(&name)
            .await?
            .status
            .and_then(|status| status.conditions)
            .unwrap_or_default()
            .iter()
            .any(|condition| condition.type_ == "Established" && condition.status == "True"))
    })
    .await
}
