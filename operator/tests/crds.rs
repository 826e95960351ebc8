//! The CRDs: the committed files match the types, and a real kube-apiserver (testenv) takes
//! them and enforces their rules (defaults, `min <= max`, an immutable grid reference, tenant
//! names that are valid tenant ids).

use anyhow::Result;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::CustomResourceExt;
use meniscus_operator::crd::grid::MeniscusGrid;
use meniscus_operator::crd::tenant::Tenant;
use meniscus_testenv::{wait_for, ControlPlane};
use serde_json::json;

mod common;
use common::{install, WAIT};

#[test]
fn committed_crds_match_the_types() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for dir in ["crds", "charts/meniscus/crds"] {
        for (name, yaml) in meniscus_operator::crd::all() {
            let committed = std::fs::read_to_string(root.join(dir).join(name)).unwrap_or_default();
            assert_eq!(
                committed,
                format!("{}{yaml}", meniscus_operator::crd::HEADER),
                "{dir}/{name} differs from the types: run `cargo run -p meniscus-operator --bin crdgen` and commit it"
            );
        }
    }
}

/// The API server's refusal message, or a failure when it accepted.
fn refusal<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> String {
    match result {
        Ok(accepted) => panic!("accepted: {accepted:?}"),
        Err(error) => error.to_string(),
    }
}

#[tokio::test]
async fn the_api_server_applies_defaults_and_enforces_the_rules() -> Result<()> {
    let cp = ControlPlane::shared().await?;
    let client = cp.client()?;
    install(&client, MeniscusGrid::crd()).await?;
    install(&client, Tenant::crd()).await?;
    let ns = cp.namespace("crds").await?;
    let grids = Api::<MeniscusGrid>::namespaced(client.clone(), &ns);
    let tenants = Api::<Tenant>::namespaced(client.clone(), &ns);
    wait_for(WAIT, "the resources to be served", || async {
        Ok(grids.list(&ListParams::default()).await.is_ok()
            && tenants.list(&ListParams::default()).await.is_ok())
    })
    .await?;

    // A minimal grid gets the schema's defaults from the server.
    let grid: MeniscusGrid = serde_json::from_value(json!({
        "apiVersion": "meniscus.io/v1alpha1", "kind": "MeniscusGrid",
        "metadata": {"name": "main"}, "spec": {"image": "meniscus:test"}
    }))?;
    let created = grids.create(&PostParams::default(), &grid).await?;
    assert_eq!(created.spec.personas.storage.storage_size, "20Gi");
    assert_eq!(created.spec.listeners.syslog_tcp, 5514);
    assert_eq!(created.spec.retention.short_term, "7d");
    // No normalizer hop unless asked for: correlators normalize.
    assert_eq!(created.spec.personas.normalizer.replicas.max, 0);
    assert_eq!(created.spec.personas.correlator.spool_size, "2Gi");
    assert_eq!(created.spec.storage_copies, 2);

    // min above max, an empty image, a bad archive URL, a bad duration: refused, and said why.
    let bad = |spec: serde_json::Value| -> MeniscusGrid {
        serde_json::from_value(json!({
            "apiVersion": "meniscus.io/v1alpha1", "kind": "MeniscusGrid",
            "metadata": {"name": "bad"}, "spec": spec
        }))
        .unwrap()
    };
    let message = refusal(grids.create(&PostParams::default(), &bad(json!({"image": "m", "personas": {"storage": {"replicas": {"min": 5, "max": 2}}}}))).await);
    assert!(
        message.contains("replicas.min must not be above replicas.max"),
        "{message}"
    );
    let message = refusal(grids.create(&PostParams::default(), &bad(json!({"image": "m", "personas": {"correlator": {"replicas": {"min": 0, "max": 0}}}}))).await);
    assert!(message.contains("only normalizer may be 0"), "{message}");
    let message = refusal(
        grids
            .create(
                &PostParams::default(),
                &bad(json!({"image": "m", "personas": {"storage": {"storageSize": "lots"}}})),
            )
            .await,
    );
    assert!(message.contains("storageSize"), "{message}");
    let message = refusal(
        grids
            .create(&PostParams::default(), &bad(json!({"image": ""})))
            .await,
    );
    assert!(message.contains("image must name an image"), "{message}");
    let message = refusal(
        grids
            .create(
                &PostParams::default(),
                &bad(json!({"image": "m", "archive": {"url": "ftp://x"}})),
            )
            .await,
    );
    assert!(message.contains("s3://, gs:// or az://"), "{message}");
    let message = refusal(
        grids
            .create(
                &PostParams::default(),
                &bad(json!({"image": "m", "retention": {"shortTerm": "a week"}})),
            )
            .await,
    );
    assert!(message.contains("shortTerm"), "{message}");

    // A tenant's name is its id; its grid reference cannot change.
    let tenant = |name: &str, grid: &str| -> Tenant {
        serde_json::from_value(json!({
            "apiVersion": "meniscus.io/v1alpha1", "kind": "Tenant",
            "metadata": {"name": name},
            "spec": {"gridRef": grid, "producers": [{"name": "web", "durable": true}]}
        }))
        .unwrap()
    };
    tenants
        .create(&PostParams::default(), &tenant("acme", "main"))
        .await?;
    let message = refusal(
        tenants
            .create(&PostParams::default(), &tenant("acme.corp", "main"))
            .await,
    );
    assert!(message.contains("name is its id"), "{message}");
    // A token rotated every 0 s would be a new token on every reconcile.
    let mut rotating = tenant("rotating", "main");
    rotating.spec.token_rotation = serde_json::from_value(json!({"every": "0s"}))?;
    let message = refusal(tenants.create(&PostParams::default(), &rotating).await);
    assert!(message.contains("at least 1s"), "{message}");
    // Volume claims cannot change, so neither can the sizes they come from.
    let resized = Patch::Merge(json!({"spec": {"personas": {"storage": {"storageSize": "40Gi"}}}}));
    let message = refusal(grids.patch("main", &PatchParams::default(), &resized).await);
    assert!(message.contains("storageSize cannot change"), "{message}");
    let moved = Patch::Merge(json!({"spec": {"gridRef": "other"}}));
    let message = refusal(tenants.patch("acme", &PatchParams::default(), &moved).await);
    assert!(message.contains("gridRef is immutable"), "{message}");

    // kubectl shows the printer columns and finds them by short name and category.
    let output = cp.kubectl(&["get", "mgrid,mten", "-n", &ns]).output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("ROUTES") && text.contains("GRID") && text.contains("acme"),
        "{text}"
    );
    let output = cp.kubectl(&["get", "meniscus", "-n", &ns]).output()?;
    assert!(String::from_utf8_lossy(&output.stdout).contains("main"));
    Ok(())
}
