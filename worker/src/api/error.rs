//! API errors: a status code and a JSON body that says what was wrong and what to do.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::pipeline::StageError;
use crate::storage::query::QueryError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after_seconds: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after_seconds: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": { "code": self.code, "message": self.message } }));
        let mut response = (self.status, body).into_response();
        if let Some(seconds) = self.retry_after_seconds {
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

impl From<StageError> for ApiError {
    fn from(error: StageError) -> Self {
        let mut api_error = match error {
            StageError::Full => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "backpressure",
                "the ingest queue is full; nothing from this request was stored, retry after the given seconds",
            ),
            StageError::Unavailable(reason) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                format!("{reason}; nothing from this request was acknowledged, retry later"),
            ),
        };
        api_error.retry_after_seconds = Some(1);
        api_error
    }
}

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> Self {
        let message = error.to_string();
        match error {
            QueryError::Invalid(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", message)
            }
            QueryError::Timeout(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "query_timeout", message)
            }
            QueryError::Memory => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "query_memory", message)
            }
            QueryError::Internal(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
            }
        }
    }
}
