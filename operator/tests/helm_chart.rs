//! The Helm chart: it lints, `manifests/meniscus.yaml` is what it renders, and once installed
//! into the real API server its ServiceAccount's RBAC is enough for the operator — which runs
//! here with that ServiceAccount's token, not as admin — to bring a grid to Ready and give a
//! tenant its token, and no more than that (no deletes; the garbage collector does those).
//! The example grid and tenant of `manifests/examples/` are what it reconciles.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{Api, ListParams, PostParams};
use meniscus_metrics::{Exposure, Registry};
use meniscus_operator::context::Context;
use meniscus_operator::crd::grid::MeniscusGrid;
use meniscus_operator::crd::tenant::Tenant;
use meniscus_operator::leader;
use meniscus_testenv::{wait_for, ControlPlane};
use serde_json::json;

mod common;
use common::WAIT;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The helm `tools/helm/build.sh` builds (`$MENISCUS_HELM` if set).
fn helm() -> PathBuf {
    if let Some(helm) = std::env::var_os("MENISCUS_HELM") {
        return helm.into();
    }
    let output = Command::new(root().join("tools/helm/build.sh"))
        .arg("--print-bin-dir")
        .output()
        .expect("tools/helm/build.sh");
    let bin = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()).join("helm");
    assert!(
        bin.exists(),
        "{} is missing: run tools/helm/build.sh (dev/test does)",
        bin.display()
    );
    bin
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("run a command");
    assert!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_chart_lints_and_manifests_are_what_it_renders() {
    let chart = root().join("charts/meniscus");
    run(Command::new(helm()).arg("lint").arg("--strict").arg(&chart));
    let rendered = run(Command::new(helm())
        .args(["template", "meniscus"])
        .arg(&chart)
        .args(["--namespace", "meniscus-system", "--include-crds"]));
    let committed = std::fs::read_to_string(root().join("manifests/meniscus.yaml")).unwrap();
    assert!(
        committed.ends_with(&rendered),
        "manifests/meniscus.yaml differs from the chart: run dev/render-manifests and commit it"
    );
    // One namespace watched: a Role there, no ClusterRole (the leader Lease's Role is always
    // namespaced).
    let namespaced = run(Command::new(helm())
        .args(["template", "meniscus"])
        .arg(&chart)
        .args(["--set", "watchNamespace=logs"]));
    assert!(namespaced.contains("kind: Role\n") && !namespaced.contains("kind: ClusterRole"));
    assert!(rendered.contains("--leader-elect"));
    assert!(namespaced.contains("--namespace=logs"));
}

#[tokio::test]
async fn the_operator_does_its_work_with_the_charts_serviceaccount_and_no_more() -> Result<()> {
    let cp = ControlPlane::shared().await?;
    anyhow::ensure!(
        cp.has_simulated_nodes(),
        "this test needs kwok (pods must get ready)"
    );
    let ns = cp.namespace("helm").await?;
    let kubeconfig = cp.kubeconfig_path().to_path_buf();
    // The chart's CRDs (the other tests of this control plane may have installed them
    // already, which `helm install` would skip), then the chart.
    let output = cp
        .kubectl(&["apply", "--server-side", "--force-conflicts", "-f"])
        .arg(root().join("charts/meniscus/crds"))
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    run(Command::new(helm())
        .args(["install", "meniscus"])
        .arg(root().join("charts/meniscus"))
        .args(["--namespace", &ns, "--skip-crds", "--kubeconfig"])
        .arg(&kubeconfig));

    // The operator's ServiceAccount token, as its pod would have it.
    let admin = cp.client()?;
    let accounts = Api::<ServiceAccount>::namespaced(admin.clone(), &ns);
    let request: TokenRequest = serde_json::from_value(json!({"spec": {"audiences": []}}))?;
    let token = accounts
        .create_token_request("meniscus-operator", &PostParams::default(), &request)
        .await
        .context("a token for the chart's ServiceAccount")?
        .status
        .context("TokenRequest has no status")?
        .token;
    let client = cp.client_with_token(&token)?;

    // What it may not do.
    let sa = format!("system:serviceaccount:{ns}:meniscus-operator");
    for (verb, resource) in [
        ("delete", "statefulsets"),
        ("delete", "secrets"),
        ("create", "pods"),
        ("create", "clusterrolebindings"),
        ("update", "customresourcedefinitions"),
    ] {
        let output = cp
            .kubectl(&["auth", "can-i", verb, resource, "--as", &sa, "-n", &ns])
            .output()?;
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            "no",
            "the operator may {verb} {resource}"
        );
    }

    // It may hold the leader Lease in its own namespace.
    tokio::time::timeout(
        Duration::from_secs(20),
        leader::lead(client.clone(), leader::Options::new(&ns, "helm-test")),
    )
    .await
    .context("the chart's ServiceAccount takes the leader Lease")?;

    // And label its own Pod as the leader (the coordinator Service selects on that).
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(admin.clone(), &ns);
    let selector = ListParams::default().labels("app.kubernetes.io/component=operator");
    wait_for(WAIT, "the chart's operator pods", || async {
        Ok(!pods.list(&selector).await?.items.is_empty())
    })
    .await?;
    let pod = pods.list(&selector).await?.items[0]
        .metadata
        .name
        .clone()
        .unwrap();
    leader::mark_pod(client.clone(), &ns, &pod, true).await?;
    let labels = pods.get(&pod).await?.metadata.labels.unwrap_or_default();
    assert_eq!(
        labels.get(leader::LEADER_LABEL).map(String::as_str),
        Some("true")
    );

    let registry = Arc::new(Registry::new());
    let context = Arc::new(Context::new(client, &registry, Some("helm-test".into())));
    let operator = tokio::spawn({
        let context = context.clone();
        async move {
            tokio::join!(
                meniscus_operator::grid::run(context.clone(), None),
                meniscus_operator::tenant::run(context, None),
            )
        }
    });
    cp.add_volumes(6, "100Gi").await?;
    for example in ["grid.yaml", "tenant.yaml"] {
        let output = cp
            .kubectl(&["apply", "-n", &ns, "-f"])
            .arg(root().join("manifests/examples").join(example))
            .output()?;
        anyhow::ensure!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let grids = Api::<MeniscusGrid>::namespaced(admin.clone(), &ns);
    let ready = wait_for(WAIT * 3, "the example grid to be Ready", || async {
        let grid = grids.get("main").await?;
        Ok(grid.status.as_ref().is_some_and(|status| {
            meniscus_operator::conditions::get(&status.conditions, "Ready")
                .is_some_and(|ready| ready.status == "True")
        }))
    })
    .await;
    if let Err(error) = ready {
        // A forbidden call shows as Degraded/ApplyFailed with the API server's answer.
        let status = grids.get("main").await?.status;
        anyhow::bail!("{error:#}; the grid's status: {status:?}");
    }
    let tenants = Api::<Tenant>::namespaced(admin.clone(), &ns);
    wait_for(WAIT, "the example tenant's token", || async {
        let tenant = tenants.get("acme").await?;
        Ok(tenant
            .status
            .and_then(|status| status.token_secret)
            .is_some())
    })
    .await?;
    Api::<Secret>::namespaced(admin.clone(), &ns)
        .get("acme-token")
        .await?;
    // A reconcile may fail once on a passing conflict (two writers of one object) and
    // succeed on its retry, as the Ready grid above shows; a call the RBAC forbids never
    // does, and fails the test.
    let errors = context.recent_errors.lock().clone();
    let forbidden: Vec<&String> = errors
        .iter()
        .filter(|error| error.contains("forbidden") || error.contains("403"))
        .collect();
    assert!(
        forbidden.is_empty(),
        "forbidden calls: {forbidden:?}; metrics:\n{}",
        registry.render(Exposure::Full)
    );
    operator.abort();
    run(Command::new(helm())
        .args(["uninstall", "meniscus", "--namespace", &ns, "--kubeconfig"])
        .arg(&kubeconfig));
    Ok(())
}
