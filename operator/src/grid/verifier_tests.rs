//! The grid reconciler's requests, checked one by one against a mock API server (the
//! `ApiServerVerifier` pattern of kube-rs's controller-rs): what a deletion blocked by a
//! tenant writes, what an unblocked one writes, and that a new grid first gets its finalizer.
//! The real API server tests (tests/grid_controller.rs) prove the outcome; these prove the
//! exact calls, including the ones that must not happen.

use std::sync::Arc;

use http::{Method, Request, Response};
use kube::client::Body;
use kube::Client;
use meniscus_metrics::Registry;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::context::Context;
use crate::crd::grid::MeniscusGrid;

/// The test's end of the mock API server: each request the client makes, with where to send
/// its answer.
type Handle = mpsc::UnboundedReceiver<(Request<Body>, oneshot::Sender<Response<Body>>)>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn context() -> (Arc<Context>, Handle) {
    let (requests, handle) = mpsc::unbounded_channel();
    let service = tower::service_fn(move |request: Request<Body>| {
        let requests = requests.clone();
        async move {
            let (send, answer) = oneshot::channel();
            requests
                .send((request, send))
                .map_err(|_| BoxError::from("the test stopped listening"))?;
            answer
                .await
                .map_err(|_| BoxError::from("the test did not answer"))
        }
    });
    let client = Client::new(service, "logs");
    let registry = Registry::new();
    (
        Arc::new(Context::new(client, &registry, Some("test".into()))),
        handle,
    )
}

fn grid(finalizers: &[&str], deleting: bool) -> MeniscusGrid {
    let mut metadata = json!({
        "name": "main", "namespace": "logs", "uid": "u1", "generation": 3,
        "resourceVersion": "7", "finalizers": finalizers,
    });
    if deleting {
        metadata["deletionTimestamp"] = json!("2026-12-01T00:00:00Z");
    }
    serde_json::from_value(json!({
        "apiVersion": "meniscus.io/v1alpha1", "kind": "MeniscusGrid",
        "metadata": metadata, "spec": {"image": "m"}
    }))
    .unwrap()
}

/// Expects the next request to be `method` on `path` (query included if given); answers
/// `answer`, and returns the request body as JSON (Null if empty).
async fn expect(handle: &mut Handle, method: Method, path: &str, answer: Value) -> Value {
    let (request, send) = handle.recv().await.expect("a request");
    assert_eq!(request.method(), method, "{}", request.uri());
    let uri = request.uri().to_string();
    assert!(uri.starts_with(path), "expected {method} {path}, got {uri}");
    let bytes = request.into_body().collect_bytes().await.unwrap();
    let _ = send.send(
        Response::builder()
            .body(Body::from(serde_json::to_vec(&answer).unwrap()))
            .unwrap(),
    );
    if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    }
}

fn tenants(grid_refs: &[&str]) -> Value {
    let items: Vec<Value> = grid_refs
        .iter()
        .enumerate()
        .map(|(n, grid)| {
            json!({"apiVersion": "meniscus.io/v1alpha1", "kind": "Tenant",
                   "metadata": {"name": format!("t{n}"), "namespace": "logs"},
                   "spec": {"gridRef": grid}})
        })
        .collect();
    json!({"apiVersion": "meniscus.io/v1alpha1", "kind": "TenantList", "metadata": {}, "items": items})
}

/// A reconcile of grid `main` being deleted, past its first request: the Tenants of the
/// namespace, answered with tenants of these grids.
async fn deleting_with_tenants_of(
    grid_refs: &[&str],
) -> (
    tokio::task::JoinHandle<Result<kube::runtime::controller::Action, crate::Error>>,
    Handle,
) {
    let (context, mut handle) = context();
    let reconcile = tokio::spawn(super::reconcile(
        Arc::new(grid(&[super::FINALIZER], true)),
        context,
    ));
    expect(
        &mut handle,
        Method::GET,
        "/apis/meniscus.io/v1alpha1/namespaces/logs/tenants",
        tenants(grid_refs),
    )
    .await;
    (reconcile, handle)
}

#[tokio::test]
async fn a_new_grid_first_gets_its_finalizer_and_nothing_else() {
    let (context, mut handle) = context();
    let reconcile = tokio::spawn(super::reconcile(Arc::new(grid(&[], false)), context));
    let patch = expect(
        &mut handle,
        Method::PATCH,
        "/apis/meniscus.io/v1alpha1/namespaces/logs/meniscusgrids/main?",
        serde_json::to_value(grid(&[super::FINALIZER], false)).unwrap(),
    )
    .await;
    // A JSON patch that adds the finalizer, guarded by a test of the list it found.
    let text = patch.to_string();
    assert!(
        text.contains("\"op\":\"test\"") && text.contains(super::FINALIZER),
        "{text}"
    );
    reconcile
        .await
        .unwrap()
        .expect("adding the finalizer succeeds");
}

#[tokio::test]
async fn a_deletion_waits_for_the_grids_tenants_and_says_which() {
    let (reconcile, mut handle) = deleting_with_tenants_of(&["main", "other"]).await;
    let event = expect(
        &mut handle,
        Method::POST,
        "/apis/events.k8s.io/v1/namespaces/logs/events",
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"}, "eventTime": "2026-12-01T00:00:00.000000Z"}),
    )
    .await;
    assert_eq!(event["reason"], "DeletionBlockedByTenants", "{event}");
    assert_eq!(event["type"], "Warning", "{event}");
    let status = expect(
        &mut handle,
        Method::PATCH,
        "/apis/meniscus.io/v1alpha1/namespaces/logs/meniscusgrids/main/status?",
        serde_json::to_value(grid(&[super::FINALIZER], true)).unwrap(),
    )
    .await;
    let ready = &status["status"]["conditions"][0];
    assert_eq!(ready["reason"], "DeletionBlockedByTenants", "{status}");
    // Only the grid's own tenant is named; the other grid's is not.
    let message = ready["message"].as_str().unwrap();
    assert!(
        message.contains("t0") && !message.contains("t1"),
        "{message}"
    );
    // The finalizer stays, and the grid is looked at again: a wait, not a failed reconcile.
    let outcome = reconcile.await.unwrap().expect("a wait is not an error");
    assert_eq!(
        outcome,
        kube::runtime::controller::Action::requeue(std::time::Duration::from_secs(30))
    );
    // And nothing else was asked: no finalizer removal (None: the client is gone).
    let next = tokio::time::timeout(std::time::Duration::from_millis(100), handle.recv());
    if let Ok(Some((request, _))) = next.await {
        panic!(
            "an unexpected request: {} {}",
            request.method(),
            request.uri()
        );
    }
}

#[tokio::test]
async fn a_deletion_without_tenants_removes_the_finalizer_and_nothing_else() {
    let (reconcile, mut handle) = deleting_with_tenants_of(&["other"]).await;
    let patch = expect(
        &mut handle,
        Method::PATCH,
        "/apis/meniscus.io/v1alpha1/namespaces/logs/meniscusgrids/main?",
        serde_json::to_value(grid(&[], true)).unwrap(),
    )
    .await;
    assert!(patch.to_string().contains("\"op\":\"remove\""), "{patch}");
    reconcile.await.unwrap().expect("the finalizer goes");
}
