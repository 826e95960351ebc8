//! SQL through the grid's tenant API when a tenant's events are on several storage workers:
//! the statement runs here, once, over the rows each worker sends for it
//! ([`meniscus_store::query::distributed`]: only the columns it reads and the rows its
//! filters keep, as Arrow). Bounded like a query on one worker: the same memory, deadline,
//! row and byte limits, and at most `maxConcurrentQueries` such statements at once.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use futures::future::BoxFuture;
use meniscus_grid::routes::WorkerId;
use meniscus_store::query::distributed::{
    sql_across, AcrossError, EventPart, PartAnswer, PartFailure,
};
use meniscus_store::query::{QueryError, UnreadableWindow};
use serde_json::{json, Value};

use super::fanout::{none_answered, pass_on, with_incomplete, Fanout};
use crate::http::error::ApiError;
use crate::tenant_api::UNREADABLE_HEADER;

/// One storage worker's share of the tenant's events, fetched with the caller's token.
struct StoragePart {
    fanout: Arc<Fanout>,
    worker: WorkerId,
    address: String,
    path: String,
    headers: HeaderMap,
    /// The tenant API's own runtime: fetches run there, so the HTTP client's pooled
    /// connections never belong to a query's short-lived threads.
    runtime: tokio::runtime::Handle,
}

impl EventPart for StoragePart {
    fn fetch(&self, sql: String) -> BoxFuture<'static, Result<PartAnswer, PartFailure>> {
        let (fanout, address, path, headers) = (
            self.fanout.clone(),
            self.address.clone(),
            self.path.clone(),
            self.headers.clone(),
        );
        let worker = self.worker.0.clone();
        let failed = worker.clone();
        let fetch = self.runtime.spawn(async move {
            let body = Bytes::from(json!({"sql": sql, "format": "arrow"}).to_string());
            let request = fanout.request(&Method::POST, &address, &path, &headers, body);
            match fanout
                .send_with_headers(request, super::fanout::ASK_TIMEOUT)
                .await
            {
                Ok((StatusCode::OK, headers, stream)) => {
                    let unreadable: Vec<UnreadableWindow> = headers
                        .get(UNREADABLE_HEADER)
                        .and_then(|value| serde_json::from_slice(value.as_bytes()).ok())
                        .unwrap_or_default();
                    Ok(PartAnswer {
                        stream: stream.to_vec(),
                        unreadable,
                    })
                }
                Ok((status, _, body)) => Err(PartFailure {
                    worker,
                    status: Some(status.as_u16()),
                    body: body.to_vec(),
                }),
                Err(reason) => Err(PartFailure {
                    worker,
                    status: None,
                    body: reason.into_bytes(),
                }),
            }
        });
        Box::pin(async move {
            fetch.await.unwrap_or_else(|error| {
                Err(PartFailure {
                    worker: failed,
                    status: None,
                    body: format!("the fetch stopped: {error}").into_bytes(),
                })
            })
        })
    }
}

/// Runs `sql` over the events `holders` keep between them; `incomplete` names workers that
/// did not answer the census (they are reported, as for searches).
pub(super) async fn across(
    fanout: &Arc<Fanout>,
    tenant: &str,
    holders: Vec<(WorkerId, String)>,
    headers: &HeaderMap,
    sql: &str,
    incomplete: Vec<Value>,
) -> Result<Response, ApiError> {
    let Ok(_permit) = fanout.across_permits.try_acquire() else {
        return Err(QueryError::Busy(
            "as many SQL statements across storage workers as this tenant API runs at once are running".into(),
        )
        .into());
    };
    let path = format!("/v1/tenant/{tenant}/sql");
    let parts: Vec<Arc<dyn EventPart>> = holders
        .into_iter()
        .map(|(worker, address)| {
            Arc::new(StoragePart {
                fanout: fanout.clone(),
                worker,
                address,
                path: path.clone(),
                headers: headers.clone(),
                runtime: tokio::runtime::Handle::current(),
            }) as Arc<dyn EventPart>
        })
        .collect();
    match sql_across(parts, sql, &fanout.query_limits).await {
        Ok(result) => Ok(with_incomplete(
            serde_json::to_value(result).unwrap_or(Value::Null),
            incomplete,
        )),
        Err(AcrossError::Query(error)) => Err(error.into()),
        Err(AcrossError::Part(PartFailure {
            status: Some(status),
            body,
            ..
        })) => Ok(pass_on(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            Bytes::from(body),
        )),
        Err(AcrossError::Part(PartFailure {
            worker,
            status: None,
            body,
        })) => Ok(none_answered(vec![json!({
            "worker": worker,
            "reason": String::from_utf8_lossy(&body),
        })])),
    }
}
