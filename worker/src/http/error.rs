//! API errors: a status code and a JSON body that says what was wrong and what to do. Every
//! error kind of the layers below (accept path, stage, query) gets its status here, and only
//! here.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use meniscus_grid::tenant::AuthError;
use meniscus_record::StageError;
use meniscus_store::query::QueryError;
use serde_json::json;

use crate::correlator::sources::http_publish::PublishError;
use crate::correlator::AcceptError;
use crate::http::{BodyError, Unauthorized};

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

    /// Adds the `Retry-After` header, when the error has one, to a response written in
    /// another shape (the agent protocols' own error bodies).
    pub fn add_retry_after(&self, response: &mut Response) {
        if let Some(seconds) = self.retry_after_seconds {
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
    }

    /// The error as Loki answers (push and the query API alike): the status, and the reason
    /// as one line of plain text.
    pub fn plain_text(&self) -> Response {
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}\n", self.message),
        )
            .into_response();
        self.add_retry_after(&mut response);
        response
    }

    fn retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after_seconds = Some(seconds.max(1));
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": { "code": self.code, "message": self.message } }));
        let mut response = (self.status, body).into_response();
        self.add_retry_after(&mut response);
        response
    }
}

impl From<Unauthorized> for ApiError {
    fn from(Unauthorized { tenant, error }: Unauthorized) -> Self {
        match error {
            // The same answer as a wrong token: a stranger must not learn which tenants exist.
            AuthError::UnknownTenant | AuthError::InvalidToken => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                format!("the token is not valid for tenant {tenant:?}"),
            ),
            AuthError::MissingToken => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing_token",
                "send the tenant token in the MESSAGE-TOKEN header or as Authorization: Bearer",
            ),
        }
    }
}

impl From<StageError> for ApiError {
    fn from(error: StageError) -> Self {
        match error {
            StageError::Full => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "backpressure",
                "the ingest queue is full; nothing from this request was stored, retry after the given seconds",
            )
            .retry_after(1),
            StageError::Unavailable { reason } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                format!("{reason}; nothing from this request was acknowledged, retry later"),
            )
            .retry_after(1),
            StageError::Refused { reason } => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "refused",
                format!("{reason}; nothing from this request was stored, send it in smaller requests"),
            ),
        }
    }
}

impl From<AcceptError> for ApiError {
    fn from(error: AcceptError) -> Self {
        let message = error.to_string();
        match error {
            AcceptError::Empty => ApiError::bad_request(message),
            AcceptError::RateLimited { retry_after, .. } => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
                    .retry_after(retry_after.as_secs())
            }
            AcceptError::Stage(stage) => stage.into(),
        }
    }
}

impl From<PublishError> for ApiError {
    fn from(error: PublishError) -> Self {
        let message = error.to_string();
        match error {
            PublishError::Auth(auth) => auth.into(),
            PublishError::BadBody(_) => ApiError::bad_request(message),
            PublishError::TooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
            }
            PublishError::UnsupportedMediaType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                message,
            ),
            PublishError::UnsupportedEncoding(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                message,
            ),
            PublishError::LineRefused { .. } => {
                ApiError::new(StatusCode::UNAUTHORIZED, "line_refused", message)
            }
            PublishError::Accept(accept) => accept.into(),
            PublishError::Body(body) => body.into(),
        }
    }
}

impl From<BodyError> for ApiError {
    fn from(error: BodyError) -> Self {
        let message = error.to_string();
        match error {
            BodyError::TooLarge { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
            }
            BodyError::Timeout(_) => {
                ApiError::new(StatusCode::REQUEST_TIMEOUT, "body_timeout", message)
            }
            BodyError::Read(_) => ApiError::bad_request(message),
        }
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
            QueryError::Memory(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "query_memory", message)
            }
            QueryError::Busy(_) => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_queries", message)
                    .retry_after(1)
            }
            QueryError::Archive(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "archive_unavailable",
                message,
            )
            .retry_after(5),
            QueryError::Internal(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
            }
        }
    }
}
