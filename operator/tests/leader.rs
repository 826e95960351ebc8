//! Leader election on the real API server: one replica leads, another waits while the lease
//! is renewed, takes over once the leader stops renewing (a crash), and a leader whose lease
//! is taken from it is told, so it stops reconciling.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams};
use meniscus_operator::leader::{self, Options};
use meniscus_testenv::ControlPlane;
use serde_json::json;

fn options(ns: &str, identity: &str) -> Options {
    Options {
        lease_duration: Duration::from_secs(2),
        retry: Duration::from_millis(200),
        ..Options::new(ns, identity)
    }
}

#[test]
fn one_replica_leads_and_another_takes_over_when_it_stops_renewing() -> Result<()> {
    let cp = ControlPlane::shared_blocking()?;
    let runtime = tokio::runtime::Runtime::new()?;
    let ns = runtime.block_on(cp.namespace("leader"))?;

    // Replica A on a runtime of its own, so that dropping it is a crash: renewals stop.
    let a_runtime = tokio::runtime::Runtime::new()?;
    let a_client = a_runtime.block_on(async { cp.client() })?;
    let _a_lost = a_runtime.block_on(leader::lead(a_client, options(&ns, "a")));

    let b_client = runtime.block_on(async { cp.client() })?;
    let b = runtime.spawn(leader::lead(b_client, options(&ns, "b")));
    std::thread::sleep(Duration::from_secs(4));
    assert!(!b.is_finished(), "b took a lease a renews");

    drop(a_runtime);
    let mut b_lost = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(15), b)
            .await
            .expect("b leads once a stopped renewing")
    })?;
    let client = runtime.block_on(async { cp.client() })?;
    let leases = Api::<Lease>::namespaced(client, &ns);
    let lease = runtime.block_on(leases.get("meniscus-operator"))?;
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));
    assert!(b_lost.try_recv().is_err(), "b lost a lease it holds");

    // Someone else takes the lease: b hears that it no longer leads.
    let taken = json!({"spec": {"holderIdentity": "c"}});
    runtime.block_on(leases.patch(
        "meniscus-operator",
        &PatchParams::default(),
        &Patch::Merge(&taken),
    ))?;
    let why = runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), b_lost)
            .await
            .expect("b is told it lost the lease")
    })?;
    assert!(why.contains("another replica"), "{why}");
    Ok(())
}
