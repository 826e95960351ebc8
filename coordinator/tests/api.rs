//! The coordinator's API as workers and administrators call it, over HTTP on loopback, and
//! its state across a restart.

use std::sync::Arc;
use std::time::Duration;

use meniscus_coordinator::state::Rules;
use meniscus_coordinator::{http, Coordinator, Secrets};
use meniscus_metrics::Registry;
use serde_json::{json, Value};

struct Client {
    base: String,
}

impl Client {
    async fn call(
        &self,
        method: &str,
        path: &str,
        auth: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut stream = tokio::net::TcpStream::connect(self.base.as_str())
            .await
            .unwrap();
        let body = body.map(|body| body.to_string()).unwrap_or_default();
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: c\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n", body.len());
        for (name, value) in auth {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(&body);
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        let status: u16 = answer[9..12].parse().unwrap();
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, body)| body)
            .unwrap_or_default();
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }
}

async fn serve(state_file: &std::path::Path) -> (Arc<Coordinator>, Client, Registry) {
    let registry = Registry::new();
    let coordinator = Coordinator::open(
        state_file,
        Rules::default(),
        Secrets {
            pairing: "grid-secret".into(),
            admin: "admin-secret".into(),
        },
        &registry,
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = listener.local_addr().unwrap().to_string();
    let app = http::router(coordinator.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (coordinator, Client { base }, registry)
}

#[tokio::test]
async fn workers_pair_report_and_follow_updates_and_the_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("coordinator.json");
    let (coordinator, client, registry) = serve(&state_file).await;

    // A wrong secret: refused, counted, nothing paired.
    let pair = |secret: &str, address: &str| json!({"secret": secret, "personas": ["storage"], "advertise": address, "capacity": 100});
    let (status, _) = client
        .call("POST", "/v1/pair", &[], Some(pair("guess", "evil:1")))
        .await;
    assert_eq!(status, 401);
    assert!(registry
        .render(meniscus_metrics::Exposure::Full)
        .contains("meniscus_coordinator_refused_total{reason=\"pairing_secret\"} 1"));
    assert!(coordinator.snapshot().routes.workers.is_empty());

    let (status, first) = client
        .call(
            "POST",
            "/v1/pair",
            &[],
            Some(pair("grid-secret", "s0:7000")),
        )
        .await;
    assert_eq!(status, 200, "{first}");
    let (_, second) = client
        .call(
            "POST",
            "/v1/pair",
            &[],
            Some(pair("grid-secret", "s1:7000")),
        )
        .await;
    let id = first["workerId"].as_str().unwrap().to_string();
    let bearer = format!("Bearer {}", first["credential"].as_str().unwrap());
    let auth = [
        ("X-Meniscus-Worker", id.as_str()),
        ("Authorization", bearer.as_str()),
    ];

    // Heartbeats and snapshots need the worker's own credential.
    let (status, _) = client
        .call(
            "POST",
            "/v1/heartbeat",
            &[
                ("X-Meniscus-Worker", &id),
                ("Authorization", "Bearer forged"),
            ],
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 401);
    let (status, versions) = client
        .call(
            "POST",
            "/v1/heartbeat",
            &auth,
            Some(json!({"eventsInPerSecond": 12.5, "queueDepth": 3})),
        )
        .await;
    assert_eq!((status, versions["routeVersion"].as_u64()), (200, Some(2)));
    let (status, snapshot) = client.call("GET", "/v1/snapshot", &auth, None).await;
    assert_eq!(status, 200);
    assert_eq!(snapshot["routes"]["workers"].as_array().unwrap().len(), 2);

    // A follower waiting for updates is answered as soon as an administrator adds a tenant.
    let waiting = {
        let client = Client {
            base: client.base.clone(),
        };
        let (id, bearer) = (id.clone(), bearer.clone());
        tokio::spawn(async move {
            let auth = [
                ("X-Meniscus-Worker", id.as_str()),
                ("Authorization", bearer.as_str()),
            ];
            client
                .call("GET", "/v1/updates?route=2&tenants=0", &auth, None)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "nothing new yet");
    let tenant = json!({"id": "acme", "tokens": [{"value": "acme-token"}], "producers": [{"name": "web", "durable": true}]});
    let (status, _) = client
        .call(
            "PUT",
            "/v1/admin/tenants/acme",
            &[("Authorization", "Bearer wrong")],
            Some(tenant.clone()),
        )
        .await;
    assert_eq!(status, 401);
    // Bad specs are refused with the reason, and change nothing (the good one below is
    // version 1).
    for (body, says) in [
        (
            json!({"id": "acme", "tokens": [{"value": "t"}], "colour": "red"}),
            "not a tenant spec",
        ),
        (json!({"id": "acme", "tokens": []}), "token"),
        (
            json!({"id": "other", "tokens": [{"value": "t"}]}),
            "the path",
        ),
    ] {
        let (status, answer) = client
            .call(
                "PUT",
                "/v1/admin/tenants/acme",
                &[("Authorization", "Bearer admin-secret")],
                Some(body),
            )
            .await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer["error"].as_str().unwrap_or_default().contains(says),
            "{answer}"
        );
    }
    let (status, answer) = client
        .call(
            "PUT",
            "/v1/admin/tenants/acme",
            &[("Authorization", "Bearer admin-secret")],
            Some(tenant),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, update) = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(update["tenants"]["version"], 1);
    assert_eq!(update["tenants"]["specs"][0]["id"], "acme");
    let (status, rotated) = client
        .call(
            "POST",
            "/v1/admin/tenants/acme/rotate-token",
            &[("Authorization", "Bearer admin-secret")],
            Some(json!({"graceSeconds": 60})),
        )
        .await;
    assert_eq!(status, 200);
    let new_token = rotated["token"].as_str().unwrap().to_string();

    // A down report about the other worker from the only other one takes it out.
    let (status, down) = client
        .call(
            "POST",
            "/v1/down",
            &auth,
            Some(json!({"target": second["workerId"]})),
        )
        .await;
    assert_eq!((status, down["routesChanged"].as_bool()), (200, Some(true)));

    // Restart: workers, credentials, statuses and tenants are all still there.
    drop(coordinator);
    let (restarted, client, _) = serve(&state_file).await;
    let snapshot = restarted.snapshot();
    assert_eq!(
        snapshot.routes.version, 3,
        "two pairings and a worker reported down"
    );
    assert_eq!(snapshot.routes.workers.len(), 2);
    assert_eq!(
        snapshot.tenants.specs[0].tokens.last().unwrap().value,
        new_token
    );
    let (status, _) = client.call("GET", "/v1/snapshot", &auth, None).await;
    assert_eq!(status, 200, "the credential still works");
    let (status, workers) = client
        .call(
            "GET",
            "/v1/admin/workers",
            &[("Authorization", "Bearer admin-secret")],
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(workers["workers"][1]["status"], "offline");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&state_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}

/// The purge orders as an administrator (or the operator's Tenant finalizer) uses them: an
/// order names the storage workers that still hold the tenant's data until each reports it
/// carried the order out; a malformed tenant id is a 400, not a stored order.
#[tokio::test]
async fn a_purge_waits_for_every_storage_worker_and_a_bad_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_coordinator, client, _registry) = serve(&dir.path().join("coordinator.json")).await;
    let admin = [("Authorization", "Bearer admin-secret")];
    let (status, paired) = client
        .call(
            "POST",
            "/v1/pair",
            &[],
            Some(json!({"secret": "grid-secret", "personas": ["storage"], "advertise": "s0:7000", "capacity": 100})),
        )
        .await;
    assert_eq!(status, 200, "{paired}");
    let worker = paired["workerId"].as_str().unwrap().to_string();
    let bearer = format!("Bearer {}", paired["credential"].as_str().unwrap());
    let auth = [
        ("X-Meniscus-Worker", worker.as_str()),
        ("Authorization", bearer.as_str()),
    ];

    for bad in ["Acme.Corp", "-acme", "a%2Fb"] {
        let path = format!("/v1/admin/purges/{bad}");
        let (status, answer) = client.call("PUT", &path, &admin, None).await;
        assert_eq!(status, 400, "{bad}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{answer}"
        );
    }
    let (status, _) = client
        .call(
            "PUT",
            "/v1/admin/purges/acme",
            &[("Authorization", "Bearer wrong")],
            None,
        )
        .await;
    assert_eq!(status, 401);
    let (_, listed) = client.call("GET", "/v1/admin/purges", &admin, None).await;
    assert_eq!(listed, json!({"purges": []}), "refused orders are not kept");

    let (status, ordered) = client
        .call("PUT", "/v1/admin/purges/acme", &admin, None)
        .await;
    assert_eq!(status, 202, "{ordered}");
    assert_eq!(ordered["waitingFor"], json!([worker]));
    // The storage worker carries the order out and says so in its heartbeat.
    let (status, _) = client
        .call(
            "POST",
            "/v1/heartbeat",
            &auth,
            Some(json!({"purged": ["acme"]})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, listed) = client.call("GET", "/v1/admin/purges", &admin, None).await;
    assert_eq!(
        listed,
        json!({"purges": [{"tenant": "acme", "waitingFor": []}]})
    );
    let (status, _) = client
        .call("DELETE", "/v1/admin/purges/acme", &admin, None)
        .await;
    assert_eq!(status, 204);
    let (_, listed) = client.call("GET", "/v1/admin/purges", &admin, None).await;
    assert_eq!(listed, json!({"purges": []}));
}
