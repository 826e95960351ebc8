//! Proof that the test control plane is a real Kubernetes API server with real controllers:
//! CRDs with structural schemas and CEL rules, watches, server-side apply of status, garbage
//! collection, RBAC refusals, `kubectl` printer columns, simulated nodes running workloads.
//!
//! All tests share one control plane (each in its own namespace), except the teardown test.
//! They fail — they do not skip — when the binaries are missing: run `tools/k8s/build.sh`.

use std::time::Duration;

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use kube::runtime::watcher;
use kube::Client;
use meniscus_testenv::{wait_for, ControlPlane};
use serde_json::json;

const CRD_NAME: &str = "widgets.testenv.meniscus.io";
const WAIT: Duration = Duration::from_secs(60);

fn crd() -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": CRD_NAME },
        "spec": {
            "group": "testenv.meniscus.io",
            "names": { "kind": "Widget", "plural": "widgets", "singular": "widget", "shortNames": ["wdg"] },
            "scope": "Namespaced",
            "versions": [{
                "name": "v1alpha1",
                "served": true,
                "storage": true,
                "subresources": { "status": {} },
                "additionalPrinterColumns": [
                    { "name": "Size", "type": "integer", "jsonPath": ".spec.size" },
                    { "name": "Max", "type": "integer", "jsonPath": ".spec.maxSize" },
                    { "name": "Phase", "type": "string", "jsonPath": ".status.phase" },
                    { "name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp" }
                ],
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["size", "maxSize"],
                            "properties": {
                                "size": { "type": "integer", "minimum": 0 },
                                "maxSize": { "type": "integer", "minimum": 0 }
                            },
                            "x-kubernetes-validations": [{
                                "rule": "self.size <= self.maxSize",
                                "message": "size must not exceed maxSize"
                            }]
                        },
                        "status": {
                            "type": "object",
                            "properties": {
                                "phase": { "type": "string" },
                                "observedGeneration": { "type": "integer", "format": "int64" }
                            }
                        }
                    }
                }}
            }]
        }
    }))
    .expect("valid CRD")
}

fn widget_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("testenv.meniscus.io", "v1alpha1", "Widget"),
        "widgets",
    )
}

fn widget(name: &str, size: i64, max: i64) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "testenv.meniscus.io/v1alpha1",
        "kind": "Widget",
        "metadata": { "name": name },
        "spec": { "size": size, "maxSize": max }
    }))
    .expect("valid widget")
}

/// Server-side applies the CRD (idempotent; tests run concurrently) and waits until it is
/// Established. Returns the namespaced Widget API.
async fn install_crd(client: &Client, ns: &str) -> Result<Api<DynamicObject>> {
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    crds.patch(
        CRD_NAME,
        &PatchParams::apply("testenv-tests").force(),
        &Patch::Apply(crd()),
    )
    .await
    .context("applying the Widget CRD")?;
    wait_for(WAIT, "the Widget CRD to be Established", || async {
        let c = crds.get(CRD_NAME).await?;
        Ok(c.status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True"))
    })
    .await?;
    let api = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &widget_resource());
    // Discovery of a new CRD can lag the Established condition by a moment.
    wait_for(WAIT, "the Widget resource to be served", || async {
        Ok(api.list(&ListParams::default()).await.is_ok())
    })
    .await?;
    Ok(api)
}

#[tokio::test]
async fn crd_is_accepted_and_custom_resources_are_watched() -> Result<()> {
    let cp = ControlPlane::shared().await?;
    let ns = cp.namespace("crd-watch").await?;
    let client = cp.client()?;
    let widgets = install_crd(&client, &ns).await?;

    let mut events = watcher(widgets.clone(), watcher::Config::default()).boxed();
    // Wait for the initial (empty) list so the creation below is seen as a live event.
    tokio::time::timeout(WAIT, async {
        while let Some(ev) = events.try_next().await? {
            if matches!(ev, watcher::Event::InitDone) {
                return anyhow::Ok(());
            }
        }
        anyhow::bail!("watch ended before the initial list")
    })
    .await
    .context("timed out waiting for the initial watch list")??;

    widgets
        .create(&PostParams::default(), &widget("watched", 1, 3))
        .await?;

    let seen = tokio::time::timeout(WAIT, async {
        while let Some(ev) = events.try_next().await? {
            if let watcher::Event::Apply(obj) = ev {
                return anyhow::Ok(obj);
            }
        }
        anyhow::bail!("watch ended without an event")
    })
    .await
    .context("timed out waiting for the watch event of the created Widget")??;
    assert_eq!(seen.metadata.name.as_deref(), Some("watched"));
    assert_eq!(seen.data["spec"]["maxSize"], 3);
    Ok(())
}

#[tokio::test]
async fn cel_validation_rule_rejects_a_bad_object() -> Result<()> {
    let cp = ControlPlane::shared().await?;
    let ns = cp.namespace("crd-cel").await?;
    let widgets = install_crd(&cp.client()?, &ns).await?;

    let err = widgets
        .create(&PostParams::default(), &widget("too-big", 5, 2))
        .await
        .expect_err("the CEL rule must reject size > maxSize");
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422, "{s:?}");
            assert!(
                s.message.contains("size must not exceed maxSize"),
                "{}",
                s.message
            );
        }
        other => panic!("expected an API error, got {other:?}"),
    }
    // The structural schema is enforced too (minimum: 0).
    let err = widgets
        .create(&PostParams::default(), &widget("negative", -1, 2))
        .await
        .expect_err("minimum: 0 must reject a negative size");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 422),
        "{err:?}"
    );
    // A good one is accepted.
    widgets
        .create(&PostParams::default(), &widget("fine", 2, 2))
        .await?;
    Ok(())
}

#[tokio::test]
async fn status_is_written_with_server_side_apply() -> Result<()> {
    let cp = ControlPlane::shared().await?;
    let ns = cp.namespace("ssa-status").await?;
    let widgets = install_crd(&cp.client()?, &ns).await?;

    let created = widgets
        .create(&PostParams::default(), &widget("w", 1, 2))
        .await?;
    let generation = created.metadata.generation.context("generation")?;

    // Status written through the main resource is ignored when the status subresource is on.
    let mut with_status = widget("w", 1, 2);
    with_status.data["status"] = json!({ "phase": "Sneaky" });
    let after_main = widgets
        .patch(
            "w",
            &PatchParams::apply("testenv-spec").force(),
            &Patch::Apply(&with_status),
        )
        .await?;
    assert!(
        after_main.data.get("status").is_none(),
        "{:?}",
        after_main.data
    );

    let status = json!({
        "apiVersion": "testenv.meniscus.io/v1alpha1",
        "kind": "Widget",
        "metadata": { "name": "w" },
        "status": { "phase": "Ready", "observedGeneration": generation }
    });
    let patched = widgets
        .patch_status(
            "w",
            &PatchParams::apply("testenv-status").force(),
            &Patch::Apply(&status),
        )
        .await?;
    assert_eq!(patched.data["status"]["phase"], "Ready");
    assert_eq!(patched.data["status"]["observedGeneration"], generation);
    // Status writes do not bump the generation.
    assert_eq!(patched.metadata.generation, Some(generation));

    let managers = patched.metadata.managed_fields.unwrap_or_default();
    assert!(
        managers
            .iter()
            .any(|m| m.manager.as_deref() == Some("testenv-status")
                && m.operation.as_deref() == Some("Apply")
                && m.subresource.as_deref() == Some("status")),
        "managedFields: {managers:?}"
    );

    // A spec change through the main resource keeps the status and bumps the generation.
    let spec_change = widgets
        .patch(
            "w",
            &PatchParams::apply("testenv-spec").force(),
            &Patch::Apply(&widget("w", 2, 2)),
        )
        .await?;
    assert_eq!(spec_change.data["status"]["phase"], "Ready");
    assert_eq!(spec_change.metadata.generation, Some(generation + 1));

    // Status SSA is validated against the schema like any write.
    let bad = json!({
        "apiVersion": "testenv.meniscus.io/v1alpha1",
        "kind": "Widget",
        "metadata": { "name": "w" },
        "status": { "phase": 7 }
    });
    let err = widgets
        .patch_status(
            "w",
            &PatchParams::apply("testenv-status").force(),
            &Patch::Apply(&bad),
        )
        .await
        .expect_err("a status of the wrong type must be rejected");
    // The real server answers a mistyped apply configuration with 500 "failed to create typed
    // patch object" (not 422): something a mock would get wrong.
    match err {
        kube::Error::Api(s) => assert!(
            s.message.contains(".status.phase: expected string"),
            "{s:?}"
        ),
        other => panic!("expected an API error, got {other:?}"),
    }
    assert_eq!(
        widgets.get_status("w").await?.data["status"]["phase"],
        "Ready"
    );
    Ok(())
}

#[tokio::test]
async fn owned_objects_are_garbage_collected_after_the_owner_is_deleted() -> Result<()> {
    let cp = ControlPlane::shared().await?;
    let ns = cp.namespace("gc").await?;
    let cms = Api::<ConfigMap>::namespaced(cp.client()?, &ns);

    let owner: ConfigMap = serde_json::from_value(json!({ "metadata": { "name": "owner" } }))?;
    let owner = cms.create(&PostParams::default(), &owner).await?;
    let uid = owner.metadata.uid.context("owner uid")?;
    let child: ConfigMap = serde_json::from_value(json!({
        "metadata": {
            "name": "child",
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid,
                "controller": true, "blockOwnerDeletion": true
            }]
        }
    }))?;
    cms.create(&PostParams::default(), &child).await?;
    let bystander: ConfigMap =
        serde_json::from_value(json!({ "metadata": { "name": "bystander" } }))?;
    cms.create(&PostParams::default(), &bystander).await?;

    cms.delete("owner", &DeleteParams::background()).await?;
    wait_for(
        WAIT,
        "the garbage collector to delete the owned ConfigMap",
        || async { Ok(cms.get_opt("child").await?.is_none()) },
    )
    .await?;
    assert!(
        cms.get_opt("bystander").await?.is_some(),
        "unowned objects must stay"
    );
    Ok(())
}

#[tokio::test]
async fn service_account_without_permission_is_refused() -> Result<()> {
    let cp = ControlPlane::shared().await?;
    let ns = cp.namespace("rbac").await?;
    let client = cp.client()?;

    let sa: ServiceAccount = serde_json::from_value(json!({ "metadata": { "name": "limited" } }))?;
    Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &sa)
        .await?;
    let role: Role = serde_json::from_value(json!({
        "metadata": { "name": "read-configmaps" },
        "rules": [{ "apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"] }]
    }))?;
    Api::<Role>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &role)
        .await?;
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": "limited-reads-configmaps" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-configmaps" },
        "subjects": [{ "kind": "ServiceAccount", "name": "limited", "namespace": ns }]
    }))?;
    Api::<RoleBinding>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &binding)
        .await?;

    // A real token, signed by kube-apiserver's service-account key.
    let tr: TokenRequest = serde_json::from_value(json!({ "spec": { "audiences": [] } }))?;
    let token = Api::<ServiceAccount>::namespaced(client.clone(), &ns)
        .create_token_request("limited", &PostParams::default(), &tr)
        .await?
        .status
        .context("TokenRequest has no status")?
        .token;
    let as_sa = cp.client_with_token(&token)?;

    // Allowed.
    Api::<ConfigMap>::namespaced(as_sa.clone(), &ns)
        .list(&ListParams::default())
        .await
        .context("the bound Role allows listing configmaps")?;
    // Refused.
    let err = Api::<Secret>::namespaced(as_sa.clone(), &ns)
        .list(&ListParams::default())
        .await
        .expect_err("listing secrets must be forbidden");
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 403, "{s:?}");
            assert!(
                s.message
                    .contains(&format!("system:serviceaccount:{ns}:limited")),
                "{}",
                s.message
            );
        }
        other => panic!("expected 403, got {other:?}"),
    }
    let err = Api::<ConfigMap>::namespaced(as_sa, "default")
        .list(&ListParams::default())
        .await
        .expect_err("the Role does not reach other namespaces");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403),
        "{err:?}"
    );

    // kubectl agrees (SubjectAccessReview through impersonation).
    let who = format!("system:serviceaccount:{ns}:limited");
    let out = cp
        .kubectl(&["auth", "can-i", "list", "secrets", "-n", &ns, "--as", &who])
        .output()?;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no", "{out:?}");
    let out = cp
        .kubectl(&[
            "auth",
            "can-i",
            "list",
            "configmaps",
            "-n",
            &ns,
            "--as",
            &who,
        ])
        .output()?;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "yes",
        "{out:?}"
    );
    Ok(())
}

#[tokio::test]
async fn kubectl_get_shows_printer_columns() -> Result<()> {
    let cp = ControlPlane::shared().await?;
    let ns = cp.namespace("kubectl").await?;
    let widgets = install_crd(&cp.client()?, &ns).await?;
    widgets
        .create(&PostParams::default(), &widget("shown", 2, 9))
        .await?;
    let status = json!({
        "apiVersion": "testenv.meniscus.io/v1alpha1", "kind": "Widget",
        "metadata": { "name": "shown" }, "status": { "phase": "Ready" }
    });
    widgets
        .patch_status(
            "shown",
            &PatchParams::apply("testenv-status"),
            &Patch::Apply(&status),
        )
        .await?;

    // The short name resolves through discovery, as users type it.
    let out = cp.kubectl(&["get", "wdg", "-n", &ns]).output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAME", "SIZE", "MAX", "PHASE", "AGE"], "{stdout}");
    let row: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(&row[..4], ["shown", "2", "9", "Ready"], "{stdout}");
    Ok(())
}

#[tokio::test]
async fn deployments_report_ready_replicas_on_simulated_nodes() -> Result<()> {
    let cp = ControlPlane::shared().await?;
    assert!(
        cp.has_simulated_nodes(),
        "this test needs kwok + kube-scheduler (unset MENISCUS_K8S_NO_KWOK and run tools/k8s/build.sh)"
    );
    let ns = cp.namespace("workloads").await?;
    let deployments = Api::<Deployment>::namespaced(cp.client()?, &ns);
    let d: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{ "name": "web", "image": "example.invalid/web:1" }] }
            }
        }
    }))?;
    deployments.create(&PostParams::default(), &d).await?;
    wait_for(
        Duration::from_secs(120),
        "Deployment web to report 2 ready replicas",
        || async {
            let d = deployments.get("web").await?;
            Ok(d.status.and_then(|s| s.ready_replicas) == Some(2))
        },
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn statefulsets_with_volume_claims_report_ready_replicas() -> Result<()> {
    let cp = ControlPlane::shared().await?;
    assert!(
        cp.has_simulated_nodes(),
        "this test needs kwok + kube-scheduler (unset MENISCUS_K8S_NO_KWOK and run tools/k8s/build.sh)"
    );
    let ns = cp.namespace("statefulset").await?;
    cp.add_volumes(2, "1Gi").await?;
    let sets = Api::<StatefulSet>::namespaced(cp.client()?, &ns);
    let s: StatefulSet = serde_json::from_value(json!({
        "metadata": { "name": "store" },
        "spec": {
            "replicas": 2,
            "serviceName": "store",
            "selector": { "matchLabels": { "app": "store" } },
            "template": {
                "metadata": { "labels": { "app": "store" } },
                "spec": { "containers": [{
                    "name": "store", "image": "example.invalid/store:1",
                    "volumeMounts": [{ "name": "data", "mountPath": "/data" }]
                }] }
            },
            "volumeClaimTemplates": [{
                "metadata": { "name": "data" },
                "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } }
            }]
        }
    }))?;
    sets.create(&PostParams::default(), &s).await?;
    wait_for(
        Duration::from_secs(120),
        "StatefulSet store to report 2 ready replicas",
        || async {
            let s = sets.get("store").await?;
            Ok(s.status.and_then(|s| s.ready_replicas) == Some(2))
        },
    )
    .await?;
    Ok(())
}

/// A private control plane stops all its processes and removes its directory when dropped.
#[tokio::test]
async fn private_control_plane_is_torn_down_on_drop() -> Result<()> {
    let cp = ControlPlane::start_with(meniscus_testenv::Options {
        simulated_nodes: false,
        keep_dir: false,
    })
    .await?;
    let client = cp.client()?;
    let v = client.apiserver_version().await?;
    let pinned = meniscus_testenv::Versions::pinned().kubernetes;
    assert_eq!(v.git_version, format!("v{pinned}"));

    let pids = cp.pids();
    let dir = cp.dir().to_path_buf();
    assert_eq!(
        pids.len(),
        3,
        "etcd, kube-apiserver, kube-controller-manager"
    );
    drop(cp);
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} still exists after drop"
        );
    }
    assert!(!dir.exists(), "{} still exists after drop", dir.display());
    Ok(())
}
