//! The grid's coordinator as a real process (`meniscus worker --persona coordinator`):
//! pairing refused without the secret, workers paired, followed and taken out of the routes
//! when silent, tenants edited while it runs, and everything still there after `kill -9`.

use std::process::{Command, Stdio};
use std::time::Duration;

use meniscus_tests::grid::{write_secrets, Coordinator, KillOnDrop};
use meniscus_tests::{free_port, meniscus_binary};
use serde_json::{json, Value};

/// A paired worker: its id and the headers it authenticates with.
struct Worker {
    id: String,
    bearer: String,
}

impl Worker {
    fn pair(coordinator: &Coordinator, personas: &[&str], address: &str) -> Worker {
        let (status, paired) = coordinator.call(
            "POST",
            "/v1/pair",
            &[],
            Some(json!({"secret": "grid-secret", "personas": personas, "advertise": address})),
        );
        assert_eq!(status, 200, "{paired}");
        Worker {
            id: paired["workerId"].as_str().unwrap().to_string(),
            bearer: format!("Bearer {}", paired["credential"].as_str().unwrap()),
        }
    }

    fn headers(&self) -> [(&str, &str); 2] {
        [
            ("X-Meniscus-Worker", self.id.as_str()),
            ("Authorization", self.bearer.as_str()),
        ]
    }

    fn heartbeat(&self, coordinator: &Coordinator) -> u16 {
        coordinator
            .call(
                "POST",
                "/v1/heartbeat",
                &self.headers(),
                Some(json!({"eventsInPerSecond": 100.0})),
            )
            .0
    }

    fn snapshot(&self, coordinator: &Coordinator) -> (u16, Value) {
        coordinator.call("GET", "/v1/snapshot", &self.headers(), None)
    }
}

fn status_of(snapshot: &Value, id: &str) -> String {
    snapshot["routes"]["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|worker| worker["id"] == id)
        .map(|worker| worker["status"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

#[test]
fn the_coordinator_pairs_follows_and_drops_workers_and_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    write_secrets(dir.path());
    let port = free_port();
    let coordinator = Coordinator::start(dir.path(), port);

    // A wrong pairing secret is refused and counted; nothing is paired.
    let (status, answer) = coordinator.call(
        "POST",
        "/v1/pair",
        &[],
        Some(json!({"secret": "guess", "personas": ["storage"], "advertise": "evil:1"})),
    );
    assert_eq!(status, 401, "{answer}");
    assert!(coordinator
        .metrics()
        .contains("meniscus_coordinator_refused_total{reason=\"pairing_secret\"} 1"));

    let storage = Worker::pair(&coordinator, &["storage"], "127.0.0.1:7001");
    let both = Worker::pair(&coordinator, &["correlator", "storage"], "127.0.0.1:7002");
    let (status, snapshot) = storage.snapshot(&coordinator);
    assert_eq!(status, 200);
    assert_eq!(snapshot["routes"]["workers"].as_array().unwrap().len(), 2);
    // A forged credential reads nothing (the snapshot holds tenant tokens).
    let forged = [
        ("X-Meniscus-Worker", storage.id.as_str()),
        ("Authorization", "Bearer forged"),
    ];
    assert_eq!(
        coordinator.call("GET", "/v1/snapshot", &forged, None).0,
        401
    );

    // A worker waiting for updates hears of a tenant an administrator adds while it runs.
    let route_version = snapshot["routes"]["version"].as_u64().unwrap();
    let follower = {
        let (base, headers) = (
            coordinator.base.clone(),
            both.headers().map(|(n, v)| (n.to_string(), v.to_string())),
        );
        std::thread::spawn(move || {
            let mut request = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(40))
                .build()
                .unwrap()
                .get(format!("{base}/v1/updates?route={route_version}&tenants=0"));
            for (name, value) in &headers {
                request = request.header(name, value);
            }
            request.send().unwrap().json::<Value>().unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let tenant = json!({"id": "acme", "tokens": [{"value": "acme-token"}]});
    let (status, _) = coordinator.call(
        "PUT",
        "/v1/admin/tenants/acme",
        &[("Authorization", "Bearer nope")],
        Some(tenant.clone()),
    );
    assert_eq!(status, 401);
    let (status, answer) = coordinator.call(
        "PUT",
        "/v1/admin/tenants/acme",
        &[("Authorization", "Bearer admin-secret")],
        Some(tenant),
    );
    assert_eq!(status, 200, "{answer}");
    let update = follower.join().unwrap();
    assert_eq!(update["tenants"]["specs"][0]["id"], "acme", "{update}");

    // The worker that stops heartbeating leaves the routes after the timeout; the other stays.
    coordinator.wait_until("the silent worker is offline", || {
        assert_eq!(storage.heartbeat(&coordinator), 200);
        status_of(&storage.snapshot(&coordinator).1, &both.id) == "offline"
    });
    assert_eq!(
        status_of(&storage.snapshot(&coordinator).1, &storage.id),
        "online"
    );
    // Its next heartbeat brings it back.
    assert_eq!(both.heartbeat(&coordinator), 200);
    assert_eq!(
        status_of(&storage.snapshot(&coordinator).1, &both.id),
        "online"
    );
    let before = storage.snapshot(&coordinator).1;

    // kill -9 and a restart on the same data directory: the same workers, credentials,
    // routes and tenants.
    drop(coordinator);
    let coordinator = Coordinator::start(dir.path(), port);
    let (status, after) = storage.snapshot(&coordinator);
    assert_eq!(status, 200, "the credential survived: {after}");
    assert_eq!(after, before);
    assert_eq!(both.heartbeat(&coordinator), 200);

    // A combination of personas that is not built says so.
    let output = Command::new(meniscus_binary())
        .args(["worker", "--persona", "normalizer,storage", "--data-dir"])
        .arg(dir.path().join("storage"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("meniscus standalone"));
}

#[test]
fn a_worker_keeps_its_routes_through_coordinator_outages_and_pairs_again_when_forgotten() {
    use meniscus_coordinator::state::{Load, Snapshot};
    type Snapshots = tokio::sync::watch::Receiver<Option<Snapshot>>;
    use meniscus_grid::routes::Persona;
    use meniscus_worker::grid::control::{ControlError, ControlOptions, ControlPlane};

    let dir = tempfile::tempdir().unwrap();
    write_secrets(dir.path());
    let port = free_port();
    let mut coordinator = Coordinator::start(dir.path(), port);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _entered = runtime.enter();
    let options = |secret: &str| ControlOptions {
        coordinator: format!("http://127.0.0.1:{port}"),
        pairing_secret: secret.into(),
        personas: vec![Persona::Storage],
        advertise: "127.0.0.1:7101".into(),
        name: None,
        capacity: 10,
        data_dir: dir.path().join("worker"),
        heartbeat_interval: Duration::from_millis(200),
    };
    let admin = [("Authorization", "Bearer admin-secret")];
    let workers =
        |coordinator: &Coordinator| coordinator.call("GET", "/v1/admin/workers", &admin, None).1;

    // A wrong secret: refused, and nothing is kept.
    let refused = ControlPlane::new(options("guess"));
    assert!(matches!(
        runtime.block_on(refused.pair()),
        Err(ControlError::Refused(_))
    ));
    assert!(refused.saved_identity().is_none());

    // The control loop pairs, heartbeats with the worker's load and follows the tenants.
    let registry = meniscus_metrics::Registry::new();
    let (snapshots, task) =
        std::sync::Arc::new(ControlPlane::new(options("grid-secret"))).spawn(&registry, || Load {
            events_in_per_second: 42.0,
            ..Load::default()
        });
    let has_tenant = |snapshots: &Snapshots| {
        snapshots.borrow().as_ref().is_some_and(|snapshot| {
            snapshot
                .tenants
                .specs
                .iter()
                .any(|spec| spec.id.as_str() == "acme")
        })
    };
    coordinator.wait_until("the worker is paired", || snapshots.borrow().is_some());
    let identity = ControlPlane::new(options("grid-secret"))
        .saved_identity()
        .unwrap();
    let tenant = json!({"id": "acme", "tokens": [{"value": "acme-token"}]});
    assert_eq!(
        coordinator
            .call("PUT", "/v1/admin/tenants/acme", &admin, Some(tenant))
            .0,
        200
    );
    coordinator.wait_until("the new tenant reaches the worker", || {
        has_tenant(&snapshots)
    });
    // The versions it runs on are in its metrics.
    coordinator.wait_until("the worker's metrics show its versions", || {
        let (route, tenants) = snapshots
            .borrow()
            .as_ref()
            .map(|snapshot| (snapshot.routes.version, snapshot.tenants.version))
            .unwrap();
        let rendered = registry.render(meniscus_metrics::Exposure::Full);
        rendered.contains(&format!("meniscus_grid_route_version {route}\n"))
            && rendered.contains(&format!("meniscus_grid_tenants_version {tenants}\n"))
    });
    coordinator.wait_until("its load reaches the coordinator", || {
        workers(&coordinator)["workers"][0]["load"]["eventsInPerSecond"] == 42.0
    });

    // kill -9 of the coordinator: the worker runs on what it has, and a worker restarted
    // meanwhile starts from the saved snapshot.
    drop(coordinator);
    std::thread::sleep(Duration::from_millis(700));
    assert!(has_tenant(&snapshots));
    let restarted = ControlPlane::new(options("grid-secret"));
    assert!(restarted
        .saved_snapshot()
        .is_some_and(|snapshot| snapshot.tenants.specs.len() == 1));

    // The coordinator returns with its state: the worker goes on as itself (loads are not
    // saved, so seeing one again means heartbeats resumed).
    coordinator = Coordinator::start(dir.path(), port);
    coordinator.wait_until("heartbeats resume", || {
        let listing = workers(&coordinator);
        listing["workers"][0]["id"] == identity.worker_id.0.as_str()
            && listing["workers"][0]["load"]["eventsInPerSecond"] == 42.0
    });
    assert_eq!(
        workers(&coordinator)["workers"].as_array().unwrap().len(),
        1
    );

    // A coordinator that lost its state no longer knows the worker: it pairs again, with a
    // new credential, and gets routes again.
    drop(coordinator);
    std::fs::remove_file(dir.path().join("data/coordinator/state.json")).unwrap();
    coordinator = Coordinator::start(dir.path(), port);
    coordinator.wait_until("the worker pairs again", || {
        workers(&coordinator)["workers"]
            .as_array()
            .is_some_and(|list| list.len() == 1)
    });
    coordinator.wait_until("its new identity is kept", || {
        ControlPlane::new(options("grid-secret"))
            .saved_identity()
            .is_some_and(|saved| saved.credential != identity.credential)
    });
    task.abort();
}

#[test]
fn a_broadcaster_serves_workers_checks_their_credentials_and_the_coordinator_stands_in_for_it() {
    use meniscus_coordinator::state::Load;
    use meniscus_grid::routes::Persona;
    use meniscus_worker::grid::control::{ControlOptions, ControlPlane};

    let dir = tempfile::tempdir().unwrap();
    write_secrets(dir.path());
    let port = free_port();
    let coordinator = Coordinator::start(dir.path(), port);
    let admin = [("Authorization", "Bearer admin-secret")];
    let broadcaster_port = free_port();
    let mut broadcaster = KillOnDrop(
        Command::new(meniscus_binary())
            .args(["worker", "--persona", "broadcaster", "--coordinator"])
            .arg(&coordinator.base)
            .arg("--listen")
            .arg(format!("127.0.0.1:{broadcaster_port}"))
            .arg("--data-dir")
            .arg(dir.path().join("broadcaster"))
            .arg("--pairing-secret-file")
            .arg(dir.path().join("pairing-secret"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let broadcaster_url = format!("http://127.0.0.1:{broadcaster_port}");
    coordinator.wait_until("the broadcaster is paired and follows", || {
        coordinator.call("GET", "/v1/admin/workers", &admin, None).1["workers"]
            .as_array()
            .is_some_and(|workers| workers.len() == 1)
            && coordinator
                .client
                .get(format!("{broadcaster_url}/v1/snapshot"))
                .send()
                .is_ok_and(|response| response.status() == 401)
    });

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _entered = runtime.enter();
    let control = std::sync::Arc::new(ControlPlane::new(ControlOptions {
        coordinator: coordinator.base.clone(),
        pairing_secret: "grid-secret".into(),
        personas: vec![Persona::Correlator],
        advertise: "127.0.0.1:7201".into(),
        name: None,
        capacity: 10,
        data_dir: dir.path().join("worker"),
        heartbeat_interval: Duration::from_millis(200),
    }));
    let registry = meniscus_metrics::Registry::new();
    let (snapshots, task) = control.clone().spawn(&registry, Load::default);
    let tenants = |snapshots: &tokio::sync::watch::Receiver<
        Option<meniscus_coordinator::state::Snapshot>,
    >| {
        snapshots
            .borrow()
            .as_ref()
            .map(|snapshot| snapshot.tenants.specs.len())
            .unwrap_or_default()
    };
    coordinator.wait_until("the worker is paired", || snapshots.borrow().is_some());
    let broadcaster_answers = || {
        coordinator
            .client
            .get(format!("{broadcaster_url}/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap()
            .lines()
            .filter(|line| {
                line.starts_with("meniscus_broadcaster_answers_total{outcome=\"snapshot\"}")
                    || line.starts_with("meniscus_broadcaster_answers_total{outcome=\"update\"}")
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>()
    };
    let answered_before = broadcaster_answers();

    // A tenant added at the coordinator reaches the worker through the broadcaster.
    let tenant = |id: &str| json!({"id": id, "tokens": [{"value": format!("{id}-token")}]});
    assert_eq!(
        coordinator
            .call(
                "PUT",
                "/v1/admin/tenants/acme",
                &admin,
                Some(tenant("acme"))
            )
            .0,
        200
    );
    coordinator.wait_until("the tenant reaches the worker", || tenants(&snapshots) == 1);
    assert!(
        broadcaster_answers() > answered_before,
        "served by the broadcaster"
    );

    // The broadcaster hands the snapshot (tenant tokens) only to workers the coordinator paired.
    let identity = control.saved_identity().unwrap();
    let forged = coordinator
        .client
        .get(format!("{broadcaster_url}/v1/snapshot"))
        .header("X-Meniscus-Worker", identity.worker_id.0.as_str())
        .header("Authorization", "Bearer forged")
        .send()
        .unwrap();
    assert_eq!(forged.status(), 401);

    // Without the broadcaster, the coordinator answers the worker itself.
    broadcaster.0.kill().unwrap();
    broadcaster.0.wait().unwrap();
    assert_eq!(
        coordinator
            .call(
                "PUT",
                "/v1/admin/tenants/beta",
                &admin,
                Some(tenant("beta"))
            )
            .0,
        200
    );
    coordinator.wait_until("the second tenant reaches the worker", || {
        tenants(&snapshots) == 2
    });
    task.abort();
}
