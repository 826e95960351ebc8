//! The Tenant controller against a real API server, without a running grid: a token Secret
//! owned by the Tenant, rotated on schedule with the old token kept for the grace, and a
//! status that says why the tenant is not in force (no grid, its coordinator not running).
//! With the grid controller beside it: dedicated ports, first come first served. Registration
//! with running workers is proven in `tests/operator_pods.rs`.

use std::sync::Arc;

use anyhow::Result;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, PostParams};
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

/// The shared control plane with the CRDs, a fresh namespace and an operator context.
async fn setup(
    namespace: &str,
) -> Result<(&'static ControlPlane, kube::Client, String, Arc<Context>)> {
    let cp = ControlPlane::shared().await?;
    let client = cp.client()?;
    install(&client, MeniscusGrid::crd()).await?;
    install(&client, Tenant::crd()).await?;
    let ns = cp.namespace(namespace).await?;
    let context = Arc::new(Context::new(
        cp.client()?,
        &Registry::new(),
        Some("test".into()),
    ));
    Ok((cp, client, ns, context))
}

/// A grid `main` with nothing but its image.
async fn create_grid(client: &kube::Client, ns: &str) -> Result<()> {
    let grid: MeniscusGrid = serde_json::from_value(json!({
        "apiVersion": "meniscus.io/v1alpha1", "kind": "MeniscusGrid",
        "metadata": {"name": "main"}, "spec": {"image": "meniscus:test"}
    }))?;
    Api::<MeniscusGrid>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &grid)
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_tenant_gets_a_rotating_token_and_a_status_that_says_what_is_missing() -> Result<()> {
    let (_cp, client, ns, context) = setup("tenant-controller").await?;
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
    create_grid(&client, &ns).await?;
    wait_for(WAIT, "CoordinatorNotRunning", || async {
        Ok(reason(&tenants.get("acme").await?).as_deref() == Some("False/CoordinatorNotRunning"))
    })
    .await?;
    operator.abort();
    Ok(())
}

/// A device that cannot send a token gets a port of its tenant's own. The oldest Tenant asking
/// for a port holds it; a newer one naming it, or one naming a port the grid listens on
/// itself, is told so in its status and gets the port once its holder is deleted.
#[tokio::test]
async fn a_dedicated_port_goes_to_the_first_tenant_and_a_taken_one_is_said() -> Result<()> {
    let (_cp, client, ns, context) = setup("dedicated-ports").await?;
    let controllers = [
        tokio::spawn({
            let (ns, context) = (ns.clone(), context.clone());
            async move { meniscus_operator::grid::run(context, Some(&ns)).await }
        }),
        tokio::spawn({
            let ns = ns.clone();
            async move { meniscus_operator::tenant::run(context, Some(&ns)).await }
        }),
    ];

    create_grid(&client, &ns).await?;
    let tenants = Api::<Tenant>::namespaced(client.clone(), &ns);
    let tenant = |name: &str, port: i32| -> Result<Tenant> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "meniscus.io/v1alpha1", "kind": "Tenant",
            "metadata": {"name": name},
            "spec": {"gridRef": "main", "dedicatedPort": port, "purgeGrace": "0s"}
        }))?)
    };
    // alpha asks first; beta wants alpha's port; gamma the grid's own syslog port.
    tenants
        .create(&PostParams::default(), &tenant("alpha", 6514)?)
        .await?;
    wait_for(WAIT, "alpha Registered", || async {
        Ok(reason(&tenants.get("alpha").await?).as_deref() == Some("True/Registered"))
    })
    .await?;
    tenants
        .create(&PostParams::default(), &tenant("beta", 6514)?)
        .await?;
    tenants
        .create(&PostParams::default(), &tenant("gamma", 5514)?)
        .await?;
    for name in ["beta", "gamma"] {
        wait_for(WAIT, &format!("{name} told its port is taken"), || async {
            Ok(reason(&tenants.get(name).await?).as_deref() == Some("False/DedicatedPortTaken"))
        })
        .await?;
    }
    let host = format!("main-ingest.{ns}.svc");
    let alpha = tenants.get("alpha").await?.status.unwrap();
    assert_eq!(
        alpha.ingest_endpoints.first(),
        Some(&format!("{host}:6514/syslog-tcp")),
        "its own port first: {:?}",
        alpha.ingest_endpoints
    );
    let beta = tenants.get("beta").await?.status.unwrap();
    let said = &meniscus_operator::conditions::get(&beta.conditions, "Ready")
        .unwrap()
        .message;
    assert!(said.contains("6514"), "{said}");
    let services = Api::<Service>::namespaced(client.clone(), &ns);
    let ports = |service: Service| -> Vec<i32> {
        service
            .spec
            .and_then(|spec| spec.ports)
            .unwrap_or_default()
            .iter()
            .map(|port| port.port)
            .collect()
    };
    wait_for(WAIT, "port 6514 on the ingest Service", || async {
        Ok(ports(services.get("main-ingest").await?).contains(&6514))
    })
    .await?;

    // alpha goes: beta, next in line, gets the port.
    tenants.delete("alpha", &DeleteParams::default()).await?;
    wait_for(WAIT, "beta Registered once alpha has gone", || async {
        Ok(reason(&tenants.get("beta").await?).as_deref() == Some("True/Registered"))
    })
    .await?;
    let beta = tenants.get("beta").await?.status.unwrap();
    assert_eq!(
        beta.ingest_endpoints.first(),
        Some(&format!("{host}:6514/syslog-tcp"))
    );
    assert_eq!(
        reason(&tenants.get("gamma").await?).as_deref(),
        Some("False/DedicatedPortTaken"),
        "the grid's own port is never a tenant's"
    );
    for controller in controllers {
        controller.abort();
    }
    Ok(())
}
