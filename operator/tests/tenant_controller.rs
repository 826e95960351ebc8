//! The Tenant controller against a real API server, without a running grid: a token Secret
//! owned by the Tenant, rotated on schedule with the old token kept for the grace, and a
//! status that says why the tenant is not in force (no grid, its coordinator not running).
//! Registration with a running coordinator is proven in `tests/operator_pods.rs`.

use std::sync::Arc;

use anyhow::Result;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::{CustomResourceExt, ResourceExt};
use meniscus_metrics::Registry;
use meniscus_operator::context::Context;
use meniscus_operator::crd::grid::MeniscusGrid;
use meniscus_operator::crd::tenant::Tenant;
use meniscus_testenv::{wait_for, ControlPlane};
use serde_json::json;

mod common;
use common::{install, WAIT};

fn reason(tenant: &Tenant) -> Option<String> {
    let status = tenant.status.as_ref()?;
    meniscus_operator::conditions::get(&status.conditions, "Ready")
        .map(|condition| format!("{}/{}", condition.status, condition.reason))
}

fn token(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

#[tokio::test]
async fn a_tenant_gets_a_rotating_token_and_a_status_that_says_what_is_missing() -> Result<()> {
    let cp = ControlPlane::shared().await?;
    let client = cp.client()?;
    install(&client, MeniscusGrid::crd()).await?;
    install(&client, Tenant::crd()).await?;
    let ns = cp.namespace("tenant-controller").await?;
    let registry = Registry::new();
    let context = Arc::new(Context::new(cp.client()?, &registry, Some("test".into())));
    let operator = tokio::spawn({
        let ns = ns.clone();
        async move { meniscus_operator::tenant::run(context, Some(&ns)).await }
    });

    let tenants = Api::<Tenant>::namespaced(client.clone(), &ns);
    let tenant: Tenant = serde_json::from_value(json!({
        "apiVersion": "meniscus.io/v1alpha1", "kind": "Tenant",
        "metadata": {"name": "acme"},
        "spec": {"gridRef": "main", "tokenRotation": {"every": "3s", "grace": "1h"}}
    }))?;
    tenants.create(&PostParams::default(), &tenant).await?;
    wait_for(WAIT, "GridNotFound", || async {
        Ok(reason(&tenants.get("acme").await?).as_deref() == Some("False/GridNotFound"))
    })
    .await?;
    let acme = tenants.get("acme").await?;
    let status = acme.status.clone().unwrap();
    assert_eq!(status.token_secret.as_deref(), Some("acme-token"));
    assert_eq!(status.observed_generation, acme.metadata.generation);

    // The token: owned by the Tenant, rotated every 3 s, the previous one kept.
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns);
    let first = secrets.get("acme-token").await?;
    let owner = &first.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(owner.uid, acme.uid().unwrap());
    let first_token = token(&first, "token").unwrap();
    assert_eq!(first_token.len(), 64);
    wait_for(WAIT, "the token to rotate", || async {
        let secret = secrets.get("acme-token").await?;
        Ok(token(&secret, "token").is_some_and(|token| token != first_token))
    })
    .await?;
    let rotated = secrets.get("acme-token").await?;
    assert!(
        token(&rotated, "previous-token").is_some(),
        "the previous token is kept for the grace"
    );
    assert!(rotated
        .annotations()
        .contains_key("meniscus.io/previous-valid-until"));

    // With its grid there but not reconciled (no grid controller runs here), the grid's
    // coordinator is not running: said so.
    let grids = Api::<MeniscusGrid>::namespaced(client.clone(), &ns);
    let grid: MeniscusGrid = serde_json::from_value(json!({
        "apiVersion": "meniscus.io/v1alpha1", "kind": "MeniscusGrid",
        "metadata": {"name": "main"}, "spec": {"image": "meniscus:test"}
    }))?;
    grids.create(&PostParams::default(), &grid).await?;
    wait_for(WAIT, "CoordinatorNotRunning", || async {
        Ok(reason(&tenants.get("acme").await?).as_deref() == Some("False/CoordinatorNotRunning"))
    })
    .await?;
    operator.abort();
    Ok(())
}
