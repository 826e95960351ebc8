//! A link between two personas: one record (the format of the WAL and the spool: Arrow IPC per
//! tenant, crc32c, zstd) per `POST /v1/link/records`, answered with the downstream stage's
//! [`Ack`] or its [`StageError`].
//!
//! HTTP/2 (cleartext, prior knowledge) rather than gRPC: a record is already a framed,
//! checksummed binary message, so protobuf would wrap bytes in bytes; HTTP/2 multiplexes the
//! records a link keeps in flight on one connection per peer, and its per-stream flow control
//! is backpressure for free; hyper is already in the binary, and no code generation is added.
//!
//! The caller is authenticated as a grid worker (`X-Meniscus-Worker` and its credential as a
//! bearer token, checked against the hashes in the routes snapshot); a stranger or a forged
//! credential is answered 401 and its record is not opened.
//!
//! Answers: 200 `{"events", "synced"}`; 503 `unavailable` when the store took nothing for 5 s
//! (a momentarily full store holds the answer instead, as it holds a syslog reader in
//! standalone; the sender's spool keeps the record and tries again); 400 for `refused` (the
//! record can never be taken as it is); 401.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use meniscus_coordinator::http::worker;
use meniscus_coordinator::state::Snapshot;
use meniscus_metrics::{Counter, Family, Registry};
use meniscus_record::columnar::{
    decode_payload, decode_payload_shared, ColumnarError, TenantBatch,
};
use meniscus_record::frame::{
    split_record, PayloadFormat, RecordCodec, HEADER_LEN, MAX_PAYLOAD_LEN,
};
use meniscus_record::stage::{Ack, Batch, Stage, StageError, WhenFull};
use serde_json::json;
use tokio::sync::watch;

use super::control::Identity;

pub const PATH: &str = "/v1/link/records";
/// Marks a record as rows a storage worker hands off (see `Batch::synced`).
const HANDOFF_HEADER: &str = "x-meniscus-handoff";

/// How long a record waits for room in a full store before the sender is told 503; well
/// under the sender's 30 s exchange timeout.
const FULL_WAIT: Duration = Duration::from_secs(5);

/// The receiving end, served by a storage worker or a normalizer hop.
pub struct Receiver {
    snapshot: watch::Receiver<Option<Snapshot>>,
    next: Arc<dyn Stage>,
    outcomes: Family<Counter>,
    /// Set while this storage worker hands its tenants off: new records are refused (503),
    /// so senders keep them in their spools, and move them to the tenants' new storage
    /// workers once this one is removed, instead of landing here after its last pass.
    refusing: Arc<AtomicBool>,
}

impl Receiver {
    pub fn new(
        snapshot: watch::Receiver<Option<Snapshot>>,
        next: Arc<dyn Stage>,
        registry: &Registry,
    ) -> Arc<Receiver> {
        Receiver::refusing_when(snapshot, next, registry, Arc::default())
    }

    /// A receiver that refuses new records while `refusing` is set (see the field).
    pub fn refusing_when(
        snapshot: watch::Receiver<Option<Snapshot>>,
        next: Arc<dyn Stage>,
        registry: &Registry,
        refusing: Arc<AtomicBool>,
    ) -> Arc<Receiver> {
        Arc::new(Receiver {
            snapshot,
            next,
            refusing,
            outcomes: registry.counters(
                "meniscus_link_records_received_total",
                "Records received on links from other workers, by outcome (taken, full, unavailable, refused, unauthorized, purged: only events of purged tenants, dropped).",
                &["outcome"],
            ),
        })
    }

    pub fn router(self: Arc<Receiver>) -> Router {
        Router::new().route(PATH, post(receive)).with_state(self)
    }

    /// The batch without the groups of tenants the snapshot orders purged; `None` when
    /// nothing is left.
    fn without_purged(&self, batch: Batch) -> Option<Batch> {
        // One look at the snapshot per record (this is every link record's path), and
        // nothing more while no purge is ordered.
        let purges = match self.snapshot.borrow().as_ref() {
            Some(snapshot) if !snapshot.purges.is_empty() => snapshot.purges.clone(),
            _ => return Some(batch),
        };
        let purged = |group: &TenantBatch| purges.contains(&group.tenant);
        if !batch.tenants.iter().any(purged) {
            return Some(batch);
        }
        let kept: Vec<TenantBatch> = batch
            .tenants
            .into_iter()
            .filter(|group| !purged(group))
            .collect();
        (!kept.is_empty()).then(|| Batch::new(kept))
    }

    fn is_peer(&self, headers: &HeaderMap) -> bool {
        let (id, presented) = worker(headers);
        self.snapshot
            .borrow()
            .as_ref()
            .is_some_and(|snapshot| snapshot.knows(&id, presented))
    }
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    if !receiver.is_peer(&headers) {
        receiver.outcomes.inc(&["unauthorized"]);
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"kind": "unauthorized", "reason": "unknown worker or wrong worker credential"})),
        )
            .into_response();
    }
    if receiver.refusing.load(Ordering::Relaxed) {
        return answer(
            &receiver,
            Err(StageError::unavailable(
                "this storage worker is handing its tenants off: send to the storage workers the routes give them",
            )),
        );
    }
    // Read only once the sender is known: a stranger does not get to make this worker
    // buffer a record's worth of bytes.
    let body = match axum::body::to_bytes(body, MAX_PAYLOAD_LEN + HEADER_LEN).await {
        Ok(body) => body,
        Err(error) => {
            return answer(
                &receiver,
                Err(StageError::refused(format!(
                    "unreadable request body: {error}"
                ))),
            )
        }
    };
    let batch = match open(body) {
        Ok(batch) => batch,
        Err(error) => return answer(&receiver, Err(error)),
    };
    // Events of a purged tenant still in a sender's spool are taken and dropped: the tenant
    // is gone, and its data must not come back after the purge.
    let Some(batch) = receiver.without_purged(batch) else {
        receiver.outcomes.inc(&["purged"]);
        return Json(Ack {
            events: 0,
            synced: true,
        })
        .into_response();
    };
    // Answered once in the write-ahead log (fsynced when durable), whatever the producer:
    // the sender's spool forgets the record on this answer, so an answer on queueing alone
    // would let a storage crash lose what the spool had kept. Rows a storage worker hands
    // off are fsynced first whatever their producer: it deletes its copy on the answer.
    let mut batch = batch.acknowledged_when_written();
    batch.synced = headers.contains_key(HANDOFF_HEADER);
    // A store that is momentarily full (a flush under way) holds the answer, as it holds a
    // syslog reader in standalone: the link slows down instead of backing off for seconds.
    // Past the wait, 503: the sender keeps the record and tries again (if the store took it
    // after all, it dedupes the second copy). A store whose log cannot be written waits too,
    // so the answer names both causes.
    let taken = tokio::time::timeout(
        FULL_WAIT,
        receiver.next.clone().hand_on(batch, WhenFull::Wait),
    )
    .await
    .unwrap_or_else(|_| {
        Err(StageError::unavailable(
            "the store took nothing for 5 s: full, or its write-ahead log cannot be written (see its /readyz)",
        ))
    });
    answer(&receiver, taken)
}

/// The batch a link record carries. A plain record (sent uncompressed) comes with the batch,
/// so the store writes it to its log as it is instead of encoding the events again.
fn open(record: Bytes) -> Result<Batch, StageError> {
    let unreadable = |error: &dyn std::fmt::Display| {
        StageError::refused(format!("not a readable record: {error}"))
    };
    let (_, flags, format, consumed) = split_record(&record).map_err(|e| unreadable(&e))?;
    if consumed != record.len()
        || PayloadFormat::from_code(format).ok() != Some(PayloadFormat::ArrowIpc)
    {
        return Err(StageError::refused(
            "a link request carries exactly one Arrow IPC record",
        ));
    }
    let not_a_batch =
        |error: ColumnarError| StageError::refused(format!("not a readable batch: {error}"));
    if flags == 0 {
        // Decoded in place: the batches share the received bytes, which go to the log as
        // they are.
        let payload = record.slice(HEADER_LEN..consumed);
        let tenants = decode_payload_shared(payload.into()).map_err(not_a_batch)?;
        return Ok(Batch::new(tenants).with_sealed_record(record));
    }
    let (_, payload, _) = RecordCodec::plain()
        .open(&record)
        .map_err(|e| unreadable(&e))?;
    Ok(Batch::new(decode_payload(&payload).map_err(not_a_batch)?))
}

fn answer(receiver: &Receiver, taken: Result<Ack, StageError>) -> Response {
    match taken {
        Ok(ack) => {
            receiver.outcomes.inc(&["taken"]);
            Json(ack).into_response()
        }
        Err(error) => {
            let (status, outcome) = match &error {
                StageError::Full => (StatusCode::SERVICE_UNAVAILABLE, "full"),
                StageError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
                StageError::Refused { .. } => (StatusCode::BAD_REQUEST, "refused"),
            };
            receiver.outcomes.inc(&[outcome]);
            (status, Json(error)).into_response()
        }
    }
}

/// Why a record did not get through.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No answer: the peer is down or unreachable (worth a down report).
    #[error("{address} unreachable: {reason}")]
    Unreachable { address: String, reason: String },
    /// The peer does not know this worker (yet: its routes may be older than this worker's
    /// pairing).
    #[error("{address} refused this worker's credential")]
    Unauthorized { address: String },
    /// The peer's stage answered with an error.
    #[error("{address}: {error}")]
    Stage { address: String, error: StageError },
}

/// The sending end: one HTTP/2 connection per peer, records multiplexed on it.
#[derive(Clone)]
pub struct Sender {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for Sender {
    fn default() -> Self {
        Sender::new()
    }
}

impl Sender {
    pub fn new() -> Sender {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        connector.set_nodelay(true);
        Sender {
            // The timer drives the HTTP/2 pings that find a peer gone without a word (a
            // vanished host sends no reset), and the idle pool's expiry.
            client: Client::builder(TokioExecutor::new())
                .timer(TokioTimer::new())
                .pool_timer(TokioTimer::new())
                .http2_only(true)
                .http2_keep_alive_interval(Duration::from_secs(10))
                .http2_keep_alive_timeout(Duration::from_secs(5))
                .build(connector),
        }
    }

    /// Sends one record to the worker at `address` (`host:port`) and waits for its answer.
    pub async fn send(
        &self,
        address: &str,
        identity: &Identity,
        record: Bytes,
    ) -> Result<Ack, SendError> {
        self.send_record(address, identity, record, false).await
    }

    /// Sends rows this storage worker hands off: answered only once fsynced there.
    pub async fn send_handoff(
        &self,
        address: &str,
        identity: &Identity,
        record: Bytes,
    ) -> Result<Ack, SendError> {
        self.send_record(address, identity, record, true).await
    }

    async fn send_record(
        &self,
        address: &str,
        identity: &Identity,
        record: Bytes,
        handoff: bool,
    ) -> Result<Ack, SendError> {
        let unreachable = |reason: String| SendError::Unreachable {
            address: address.to_string(),
            reason,
        };
        let request = Request::post(format!("http://{address}{PATH}"))
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .header("x-meniscus-worker", identity.worker_id.0.as_str())
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", identity.credential),
            );
        let request = if handoff {
            request.header(HANDOFF_HEADER, "1")
        } else {
            request
        };
        let request = request
            .body(Full::new(record))
            .map_err(|error| unreachable(error.to_string()))?;
        // Long enough for a storage worker's fsync under load; a peer that takes longer is
        // treated as down and the record sent again (it dedupes). The whole exchange is timed,
        // the answer's body too: a peer that sends headers and then stalls must not hold the
        // link forever.
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|error| unreachable(error.to_string()))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|error| unreachable(error.to_string()))?
                .to_bytes();
            Ok::<_, SendError>((status, body))
        };
        let (status, body) = tokio::time::timeout(Duration::from_secs(30), exchange)
            .await
            .map_err(|_| unreachable("no answer in 30 s".to_string()))??;
        match status {
            StatusCode::OK => serde_json::from_slice(&body)
                .map_err(|error| unreachable(format!("unreadable acknowledgement: {error}"))),
            StatusCode::UNAUTHORIZED => Err(SendError::Unauthorized {
                address: address.to_string(),
            }),
            _ => {
                let error = serde_json::from_slice(&body).unwrap_or_else(|_| {
                    StageError::unavailable(format!(
                        "answered {status}: {}",
                        String::from_utf8_lossy(&body)
                    ))
                });
                Err(SendError::Stage {
                    address: address.to_string(),
                    error,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use meniscus_coordinator::state::{PairRequest, Rules, State as Coordination};
    use meniscus_grid::routes::Persona;
    use meniscus_grid::{Correlation, Event, Producer, Transport};
    use meniscus_record::columnar::encode_payload_into;
    use tower::ServiceExt;

    use super::*;

    /// A store that never takes anything (full, or its log cannot be written).
    struct TakesNothing;

    impl Stage for TakesNothing {
        fn hand_on(
            self: Arc<Self>,
            _: Batch,
            _: WhenFull,
        ) -> meniscus_record::stage::BoxFuture<Result<Ack, StageError>> {
            Box::pin(std::future::pending())
        }
    }

    /// Waits the real 5 s (tokio's paused clock is a feature this crate does not build).
    #[tokio::test]
    async fn a_store_that_takes_nothing_for_5_s_gets_the_record_answered_503() {
        let paired = Coordination::default()
            .pair(
                true,
                PairRequest {
                    personas: vec![Persona::Correlator],
                    advertise: "correlator:7403".into(),
                    capacity: 0,
                    previous: None,
                    name: None,
                },
                &Rules::default(),
                chrono::Utc::now(),
            )
            .unwrap();
        let (_keep, snapshots) = watch::channel(Some(paired.snapshot));
        let receiver = Receiver::new(snapshots, Arc::new(TakesNothing), &Registry::new());
        let correlation = Correlation::new(
            "acme",
            &Producer::plain("default"),
            Transport::Http,
            chrono::Utc::now(),
        );
        let batch = Batch::from_events(&[Event::from_message("m".into(), correlation)]).unwrap();
        let mut record = vec![0u8; HEADER_LEN];
        encode_payload_into(&batch.tenants, &mut record).unwrap();
        let record = RecordCodec::plain()
            .seal_prefixed(PayloadFormat::ArrowIpc, record)
            .unwrap();
        let request = Request::post(PATH)
            .header("x-meniscus-worker", paired.worker_id.0.as_str())
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", paired.credential),
            )
            .body(Body::from(record))
            .unwrap();
        let response = receiver.clone().router().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let error: StageError = serde_json::from_slice(&body).unwrap();
        assert!(
            matches!(&error, StageError::Unavailable { reason } if reason.contains("5 s")),
            "{error:?}"
        );
        assert_eq!(receiver.outcomes.get(&["unavailable"]), 1);
    }
}
