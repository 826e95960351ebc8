//! The autoscaler at work on a real control plane: simulated correlators heartbeat their load
//! to the grid's coordinator (hosted by the operator, as in production) while the load goes
//! up, wavers around a threshold, and falls. The correlators' StatefulSet follows: up at once,
//! steady while the load wavers (no flapping), and down only step by step.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use kube::CustomResourceExt;
use meniscus_coordinator::state::{Load, PairRequest};
use meniscus_grid::routes::Persona;
use meniscus_metrics::Registry;
use meniscus_operator::context::Context;
use meniscus_operator::crd::grid::MeniscusGrid;
use meniscus_operator::crd::tenant::Tenant;
use meniscus_testenv::{wait_for, ControlPlane};
use serde_json::json;

mod common;
use common::{install, WAIT};

/// Simulated correlators reporting in.
const WORKERS: u64 = 4;

#[tokio::test]
async fn correlators_follow_the_load_up_hold_while_it_wavers_and_come_down_in_steps() -> Result<()>
{
    let cp = ControlPlane::shared().await?;
    let client = cp.client()?;
    install(&client, MeniscusGrid::crd()).await?;
    install(&client, Tenant::crd()).await?;
    let ns = cp.namespace("autoscaling").await?;
    cp.add_volumes(6, "1Gi").await?;

    let registry = Registry::new();
    let mut context = Context::new(cp.client()?, &registry, Some("test".into()));
    context.scale_interval = Duration::from_millis(500);
    let context = Arc::new(context);
    let operator = tokio::spawn({
        let (context, ns) = (context.clone(), ns.clone());
        async move { meniscus_operator::grid::run(context, Some(&ns)).await }
    });

    // 100 events/s per correlator; up as soon as a reading asks for it, down once the
    // recommendation has held for 4 s.
    let grids = Api::<MeniscusGrid>::namespaced(client.clone(), &ns);
    let grid: MeniscusGrid = serde_json::from_value(json!({
        "apiVersion": "meniscus.io/v1alpha1", "kind": "MeniscusGrid",
        "metadata": {"name": "main"},
        "spec": {
            "image": "registry.example/meniscus:test",
            "personas": {
                "correlator": {"replicas": {"min": 1, "max": 4}, "spoolSize": "1Gi"},
                "storage": {"storageSize": "1Gi"},
            },
            "autoscaling": {
                "eventsPerSecondPerReplica": 100,
                "scaleUpWindowSeconds": 0,
                "scaleDownWindowSeconds": 4,
            },
        }
    }))?;
    grids.create(&PostParams::default(), &grid).await?;
    wait_for(WAIT, "the grid's coordinator", || async {
        Ok(context.coordinators.get(&ns, "main").is_some())
    })
    .await?;
    let coordinator = context.coordinators.get(&ns, "main").unwrap();
    let secrets = Api::<Secret>::namespaced(client.clone(), &ns)
        .get("main-secrets")
        .await?;
    let pairing = String::from_utf8(secrets.data.unwrap()["pairing-secret"].0.clone())?;

    // The load generator: every simulated correlator reports its share of `total` twice a
    // second, as real ones do.
    let total = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for n in 0..WORKERS {
        let paired = coordinator.pair(
            pairing.trim(),
            PairRequest {
                personas: vec![Persona::Correlator],
                advertise: format!("10.0.0.{n}:7400"),
                capacity: 0,
                previous: None,
                name: Some(format!("main-correlator-{n}")),
            },
        )?;
        workers.push((paired.worker_id, paired.credential));
    }
    let generator = tokio::spawn({
        let (coordinator, total) = (coordinator.clone(), total.clone());
        async move {
            loop {
                let share = total.load(Ordering::Relaxed) as f64 / WORKERS as f64;
                for (id, credential) in &workers {
                    let load = Load {
                        events_in_per_second: share,
                        ..Load::default()
                    };
                    let _ = coordinator.heartbeat(id, credential, load);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    });

    let sets = Api::<StatefulSet>::namespaced(client.clone(), &ns);
    let replicas = || async {
        let set = sets.get_opt("main-correlator").await?;
        anyhow::Ok(set.and_then(|set| set.spec?.replicas).unwrap_or(0))
    };
    // Polls the StatefulSet for `seconds`; every replica count seen, in order (repeats
    // dropped).
    let watch = |seconds: u64| async move {
        let mut seen: Vec<i32> = Vec::new();
        let end = tokio::time::Instant::now() + Duration::from_secs(seconds);
        while tokio::time::Instant::now() < end {
            let now = replicas().await?;
            if seen.last() != Some(&now) {
                seen.push(now);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        anyhow::Ok(seen)
    };

    wait_for(WAIT, "the correlators' StatefulSet at 1", || async {
        Ok(replicas().await? == 1)
    })
    .await?;

    // Up: 350 events/s asks for 4 correlators at once.
    total.store(350, Ordering::Relaxed);
    wait_for(WAIT, "4 correlators", || async {
        Ok(replicas().await? == 4)
    })
    .await?;

    // Wavering between 150 and 250 events/s (2 or 3 correlators): down to the highest
    // recommendation of the window, 3, and no further while the load keeps wavering.
    let waver = tokio::spawn({
        let total = total.clone();
        async move {
            loop {
                for load in [150, 250] {
                    total.store(load, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(700)).await;
                }
            }
        }
    });
    let wavering = watch(14).await?;
    waver.abort();
    assert_eq!(
        wavering,
        [4, 3],
        "a wavering load must not move the correlators back and forth"
    );

    // Down: 50 events/s asks for 1; at most halving per step, each after the window.
    total.store(50, Ordering::Relaxed);
    let mut falling = vec![3];
    let deadline = tokio::time::Instant::now() + WAIT;
    while falling.last() != Some(&1) {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "not down to 1 correlator: {falling:?}"
        );
        let now = replicas().await?;
        if falling.last() != Some(&now) {
            falling.push(now);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(falling, [3, 2, 1], "down step by step, never back up");

    // The decision and the load it saw are in the grid's status.
    let status = grids.get("main").await?.status.unwrap();
    let correlator = &status.personas["correlator"];
    assert_eq!(correlator.desired, 1);
    generator.abort();
    operator.abort();
    Ok(())
}
