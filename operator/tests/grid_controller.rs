//! The MeniscusGrid controller against a real control plane (testenv, with kwok so pods of
//! the workloads it makes are scheduled and report ready): children with owner references,
//! status and conditions, Events, no writes at rest, spec changes rolled out, a deleted child
//! put back, and deletion held while a Tenant uses the grid.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Result;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{CustomResourceExt, ResourceExt};
use meniscus_metrics::{Exposure, Registry};
use meniscus_operator::context::Context;
use meniscus_operator::crd::grid::MeniscusGrid;
use meniscus_operator::crd::tenant::Tenant;
use meniscus_testenv::{wait_for, ControlPlane};
use serde_json::json;

mod common;
use common::{install, WAIT};

fn condition(grid: &MeniscusGrid, type_: &str) -> Option<(String, String)> {
    let status = grid.status.as_ref()?;
    meniscus_operator::conditions::get(&status.conditions, type_)
        .map(|condition| (condition.status.clone(), condition.reason.clone()))
}

/// The operator's count of API writes so far.
fn writes(registry: &Registry) -> u64 {
    registry
        .render(Exposure::Full)
        .lines()
        .filter(|line| line.starts_with("meniscus_operator_api_writes_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn a_grid_gets_its_children_a_true_status_and_waits_for_its_tenants_to_go() -> Result<()> {
    let cp = ControlPlane::shared().await?;
    anyhow::ensure!(
        cp.has_simulated_nodes(),
        "this test needs kwok (pods must get ready): unset MENISCUS_K8S_NO_KWOK"
    );
    let client = cp.client()?;
    install(&client, MeniscusGrid::crd()).await?;
    install(&client, Tenant::crd()).await?;
    let ns = cp.namespace("grid-controller").await?;
    // Volumes for the claims: correlator and storage, one replica each (and a spare).
    cp.add_volumes(4, "1Gi").await?;

    let registry = Arc::new(Registry::new());
    let context = Arc::new(Context::new(cp.client()?, &registry, Some("test".into())));
    let operator = tokio::spawn({
        let ns = ns.clone();
        async move { meniscus_operator::grid::run(context, Some(&ns)).await }
    });

    let grids = Api::<MeniscusGrid>::namespaced(client.clone(), &ns);
    let grid: MeniscusGrid = serde_json::from_value(json!({
        "apiVersion": "meniscus.io/v1alpha1", "kind": "MeniscusGrid",
        "metadata": {"name": "main"},
        "spec": {
            "image": "registry.example/meniscus:test",
            "personas": {
                "correlator": {"spoolSize": "1Gi"},
                "storage": {"storageSize": "1Gi", "resources": {"requests": {"cpu": "500m"}}},
            },
            "ingestService": {"type": "NodePort", "annotations": {"example.com/team": "logs"}},
        }
    }))?;
    grids.create(&PostParams::default(), &grid).await?;
    wait_for(WAIT * 2, "the grid to be Ready", || async {
        let grid = grids.get("main").await?;
        Ok(condition(&grid, "Ready") == Some(("True".into(), "AllPersonasReady".into())))
    })
    .await?;
    let grid = grids.get("main").await?;
    let status = grid.status.clone().unwrap();
    assert_eq!(status.observed_generation, grid.metadata.generation);
    assert_eq!(
        condition(&grid, "Progressing").unwrap().1,
        "RolloutComplete"
    );
    assert_eq!(condition(&grid, "Degraded").unwrap().1, "AsExpected");
    let personas: BTreeMap<&str, (i32, i32)> = status
        .personas
        .iter()
        .map(|(name, persona)| (name.as_str(), (persona.desired, persona.ready)))
        .collect();
    assert_eq!(
        personas,
        BTreeMap::from([
            ("broadcaster", (1, 1)),
            ("correlator", (1, 1)),
            ("normalizer", (0, 0)),
            ("storage", (1, 1)),
            ("tenant-api", (1, 1)),
        ])
    );
    assert!(
        status
            .ingest_endpoints
            .contains(&format!("main-ingest.{ns}.svc:5514/syslog-tcp")),
        "{:?}",
        status.ingest_endpoints
    );

    // The children, each owned by the grid (deleted with it).
    let uid = grid.uid().unwrap();
    let owned = |owners: Option<&Vec<_>>| {
        owners.is_some_and(
            |owners: &Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>| {
                owners
                    .iter()
                    .any(|owner| owner.uid == uid && owner.controller == Some(true))
            },
        )
    };
    let sets = Api::<StatefulSet>::namespaced(client.clone(), &ns);
    for name in ["main-correlator", "main-normalizer", "main-storage"] {
        let set = sets.get(name).await?;
        assert!(owned(set.metadata.owner_references.as_ref()), "{name}");
    }
    let storage = sets.get("main-storage").await?;
    let pod = storage
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap();
    let container = &pod.containers[0];
    assert_eq!(
        container.image.as_deref(),
        Some("registry.example/meniscus:test")
    );
    let args = container.args.clone().unwrap().join(" ");
    assert!(
        args.contains("--persona storage --listen 0.0.0.0:7400"),
        "{args}"
    );
    // The coordinator is the operator's (here: this process's), reached through its Service.
    let coordinator = format!(
        "--coordinator {}/grids/{ns}/main",
        meniscus_operator::context::DEFAULT_COORDINATOR_BASE
    );
    assert!(args.contains(&coordinator), "{args}");
    assert!(args.contains("--advertise $(POD_IP):7400"), "{args}");
    let requests = container
        .resources
        .as_ref()
        .unwrap()
        .requests
        .clone()
        .unwrap();
    assert_eq!(requests["cpu"].0, "500m");
    let correlator = sets.get("main-correlator").await?;
    let args = correlator.spec.unwrap().template.spec.unwrap().containers[0]
        .args
        .clone()
        .unwrap()
        .join(" ");
    // No normalizer hop by default: correlators normalize; the spool gets 9/10 of 1Gi.
    assert!(args.contains("--persona correlator,normalizer"), "{args}");
    assert!(args.contains("--spool-quota-bytes 966367638"), "{args}");
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    for name in ["main-broadcaster", "main-tenant-api"] {
        let deployment = deployments.get(name).await?;
        assert!(
            owned(deployment.metadata.owner_references.as_ref()),
            "{name}"
        );
    }
    let services = Api::<Service>::namespaced(client.clone(), &ns);
    let ingest = services.get("main-ingest").await?;
    assert_eq!(
        ingest
            .annotations()
            .get("example.com/team")
            .map(String::as_str),
        Some("logs")
    );
    let spec = ingest.spec.clone().unwrap();
    assert_eq!(spec.type_.as_deref(), Some("NodePort"));
    let ports: Vec<(String, i32)> = spec
        .ports
        .unwrap()
        .iter()
        .map(|port| (port.name.clone().unwrap(), port.port))
        .collect();
    assert_eq!(
        ports,
        vec![("syslog-tcp".into(), 5514), ("http".into(), 8080)]
    );
    assert_eq!(
        services
            .get("main-storage")
            .await?
            .spec
            .unwrap()
            .cluster_ip
            .as_deref(),
        Some("None"),
        "workers reach storage pod by pod"
    );
    services.get("main-api").await?;
    assert!(services.get_opt("main-coordinator").await?.is_none());
    let config = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get("main-config")
        .await?;
    let yaml = &config.data.unwrap()["meniscus.yaml"];
    assert!(
        yaml.contains("protocol: tcp, address: \"0.0.0.0:5514\""),
        "{yaml}"
    );
    assert!(!yaml.contains("udp"), "{yaml}");
    let secret = Api::<Secret>::namespaced(client.clone(), &ns)
        .get("main-secrets")
        .await?;
    let data = secret.data.clone().unwrap();
    assert_eq!(data["pairing-secret"].0.len(), 64);
    assert_ne!(data["pairing-secret"], data["admin-credential"]);
    Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns)
        .get("main-storage")
        .await?;
    let events = Api::<Event>::namespaced(client.clone(), &ns)
        .list(&ListParams::default())
        .await?;
    assert!(
        events
            .items
            .iter()
            .any(|event| event.reason.as_deref() == Some("AllPersonasReady")
                && event.involved_object.name.as_deref() == Some("main")),
        "no Ready event"
    );
    let output = cp.kubectl(&["get", "mgrid", "main", "-n", &ns]).output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("True") && text.contains("AllPersonasReady"),
        "{text}"
    );

    // At rest: a reconcile (woken by a label on the grid) writes nothing. At rest first: on a
    // loaded machine the children's status (kube-controller-manager, kwok) may still be
    // arriving after Ready, and the grid's status rightly follows it; so the count is taken
    // once it has not moved for 3 s.
    let mut before = writes(&registry);
    let settling = tokio::time::Instant::now() + WAIT;
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        let now = writes(&registry);
        if now == before {
            break;
        }
        assert!(
            tokio::time::Instant::now() < settling,
            "the operator kept writing after the grid was Ready: {}",
            registry.render(Exposure::Full)
        );
        before = now;
    }
    let versions = |sets: Vec<StatefulSet>| -> Vec<String> {
        sets.iter()
            .map(|set| set.resource_version().unwrap())
            .collect()
    };
    let sets_before = versions(sets.list(&ListParams::default()).await?.items);
    let reconciles = |registry: &Registry| {
        registry
            .render(Exposure::Full)
            .lines()
            .find_map(|line| {
                line.strip_prefix("meniscus_operator_reconciles_total{kind=\"MeniscusGrid\"} ")
                    .and_then(|value| value.parse::<u64>().ok())
            })
            .unwrap_or(0)
    };
    let reconciled = reconciles(&registry);
    grids
        .patch(
            "main",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
        )
        .await?;
    wait_for(WAIT, "a reconcile after the label", || async {
        Ok(reconciles(&registry) > reconciled)
    })
    .await?;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        writes(&registry),
        before,
        "a reconcile at rest wrote: {}",
        registry.render(Exposure::Full)
    );
    assert_eq!(
        versions(sets.list(&ListParams::default()).await?.items),
        sets_before
    );

    // A spec change is rolled out: a UDP listener reaches the config and the Service.
    grids
        .patch(
            "main",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"listeners": {"syslogUdp": 5515}}})),
        )
        .await?;
    wait_for(WAIT, "the UDP port on the ingest Service", || async {
        let ports = services
            .get("main-ingest")
            .await?
            .spec
            .unwrap()
            .ports
            .unwrap();
        Ok(ports
            .iter()
            .any(|port| port.port == 5515 && port.protocol.as_deref() == Some("UDP")))
    })
    .await?;
    wait_for(WAIT, "the new generation observed", || async {
        let grid = grids.get("main").await?;
        Ok(grid.status.unwrap().observed_generation == grid.metadata.generation)
    })
    .await?;
    // A child deleted by hand comes back.
    services
        .delete("main-api", &DeleteParams::default())
        .await?;
    wait_for(WAIT, "the tenant API Service to come back", || async {
        Ok(services
            .get_opt("main-api")
            .await?
            .is_some_and(|service| service.metadata.deletion_timestamp.is_none()))
    })
    .await?;

    // Deleting the grid waits for its tenants, and says so.
    let tenants = Api::<Tenant>::namespaced(client.clone(), &ns);
    let tenant: Tenant = serde_json::from_value(json!({
        "apiVersion": "meniscus.io/v1alpha1", "kind": "Tenant",
        "metadata": {"name": "acme"}, "spec": {"gridRef": "main"}
    }))?;
    tenants.create(&PostParams::default(), &tenant).await?;
    grids.delete("main", &DeleteParams::default()).await?;
    wait_for(WAIT, "the deletion to be held for the tenant", || async {
        let grid = grids.get("main").await?;
        Ok(condition(&grid, "Ready")
            .is_some_and(|(_, reason)| reason == "DeletionBlockedByTenants"))
    })
    .await?;
    let grid = grids.get("main").await?;
    let status = grid.status.unwrap();
    let message = &meniscus_operator::conditions::get(&status.conditions, "Ready")
        .unwrap()
        .message;
    assert!(message.contains("acme"), "{message}");
    tenants.delete("acme", &DeleteParams::default()).await?;
    wait_for(WAIT, "the grid to go once its tenant has", || async {
        Ok(grids.get_opt("main").await?.is_none())
    })
    .await?;
    wait_for(WAIT, "the children to be collected", || async {
        Ok(sets.list(&ListParams::default()).await?.items.is_empty())
    })
    .await?;
    operator.abort();
    Ok(())
}
