//! What the agent protocols (Loki push, Elasticsearch `_bulk`, OTLP/HTTP) share: whose request
//! it is, reading and decompressing its body, the severity names agents use, and handing the
//! events to the accept path. Each protocol converts its body to events and renders errors in
//! its own wire shape; the status of each error is chosen once, in [`ApiError`].
//!
//! Credentials, for every agent protocol alike (agents already know how to send these):
//! - the tenant: `X-Scope-OrgID` (Loki's multi-tenancy header), else the Basic-auth user name,
//!   else the id of an Elasticsearch `ApiKey`;
//! - the token: `MESSAGE-TOKEN`, `Authorization: Bearer TOKEN`, the Basic-auth password
//!   (`TENANT:TOKEN`, so Basic alone is enough), or the key of `ApiKey base64(TENANT:TOKEN)`.

use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};
use base64::Engine;
use chrono::Utc;
use meniscus_grid::tenant::{AuthError, Tenant};
use meniscus_grid::Transport;
use meniscus_record::{Batch, WhenFull};

use crate::correlator::sources::http_publish::body::decode_body;
use crate::correlator::{AcceptError, Admission, WhenLimited};
use crate::http::error::ApiError;
use crate::http::{read_body, AppState, Unauthorized};

/// The tenant and token an agent presented.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    pub tenant: Option<String>,
    pub token: Option<String>,
}

impl Credentials {
    pub fn from_headers(headers: &HeaderMap) -> Credentials {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::trim)
                .filter(|value| !value.is_empty())
        };
        let mut credentials = Credentials {
            tenant: text("x-scope-orgid").map(str::to_string),
            token: text("message-token").map(str::to_string),
        };
        let Some(authorization) = text(header::AUTHORIZATION.as_str()) else {
            return credentials;
        };
        let (scheme, value) = authorization
            .split_once(' ')
            .map_or((authorization, ""), |(scheme, value)| {
                (scheme, value.trim())
            });
        let pair = |encoded: &str| -> Option<(String, String)> {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()?;
            let decoded = String::from_utf8(decoded).ok()?;
            let (user, password) = decoded.split_once(':')?;
            Some((user.to_string(), password.to_string()))
        };
        let (tenant, token) = match scheme.to_ascii_lowercase().as_str() {
            "bearer" => (None, Some(value.to_string())),
            "basic" | "apikey" => match pair(value) {
                Some((user, password)) => (Some(user), Some(password)),
                None => (None, None),
            },
            _ => (None, None),
        };
        if credentials.tenant.is_none() {
            credentials.tenant = tenant.filter(|tenant| !tenant.is_empty());
        }
        if credentials.token.is_none() {
            credentials.token = token;
        }
        credentials
    }
}

/// The tenant an agent's (or a Loki client's) credentials name, once its token is checked;
/// refusals are counted per transport, as every refusal is.
pub fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    transport: Transport,
) -> Result<Arc<Tenant>, ApiError> {
    let credentials = Credentials::from_headers(headers);
    let accept = &state.correlator.accept;
    let Some(tenant_id) = credentials.tenant else {
        accept.count_auth_failure(transport, AuthError::UnknownTenant.reason());
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing_tenant",
            "name the tenant with the X-Scope-OrgID header, or as the user of Basic auth \
             (TENANT:TOKEN) or of an ApiKey",
        ));
    };
    let registry = accept.registry();
    accept
        .authenticate(
            &registry,
            &tenant_id,
            credentials.token.as_deref(),
            transport,
            Utc::now(),
        )
        .cloned()
        .map_err(|error| {
            ApiError::from(Unauthorized {
                tenant: tenant_id.clone(),
                error,
            })
        })
}

/// Checks an agent's credentials ([`authenticate`]), then reads and decompresses the body
/// (`Content-Encoding: gzip` or `zstd`, within the body limit and timeout). The token is
/// checked before a byte of the body is read.
pub async fn authorized_body(
    state: &AppState,
    headers: &HeaderMap,
    body: axum::body::Body,
    transport: Transport,
) -> Result<(Arc<Tenant>, Vec<u8>), ApiError> {
    let tenant = authenticate(state, headers, transport)?;
    let limit = state.correlator.max_http_body_bytes;
    let raw = read_body(state, headers, body, limit).await?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|value| value.to_str().ok());
    let decoded = decode_body(encoding, &raw, limit)?;
    Ok((tenant, decoded))
}

/// Hands an agent's batch to the accept path, as HTTP publish does: over a tenant's limit or
/// with the queue full the request is refused whole (the agent retries); answered once
/// stored — after the fsync for durable producers.
pub async fn hand_on(
    state: &AppState,
    batch: Batch,
    transport: Transport,
    bytes: usize,
) -> Result<(), AcceptError> {
    let admission = Admission {
        transport,
        bytes: bytes as u64,
        when_limited: Some(WhenLimited::Refuse),
        when_full: WhenFull::Refuse,
        job_ids: false,
    };
    let admitted = state.correlator.accept.admit(batch, admission).await?;
    admitted.ack.await.map_err(AcceptError::from)?;
    Ok(())
}

/// Counts a refused request as `meniscus_ingest_rejected_messages_total{transport,reason}`
/// (credential failures are counted where they are found) and its answer per route.
pub fn count_answer(
    state: &AppState,
    route: &str,
    transport: Transport,
    error: Option<&ApiError>,
    status: StatusCode,
) {
    if let Some(error) = error {
        if error.status != StatusCode::UNAUTHORIZED {
            state
                .correlator
                .accept
                .metrics
                .rejected_messages
                .inc(&[transport.as_str(), error.code]);
        }
    }
    state.http_metrics.requests.inc(&[route, status.as_str()]);
}

/// The syslog severity (0 emergency … 7 debug) for the level names agents use
/// (`error`, `WARN`, `fatal`, `information`, ...); `None` for others.
pub fn severity_from_level(level: &str) -> Option<u8> {
    Some(match level.trim().to_ascii_lowercase().as_str() {
        "emerg" | "emergency" | "panic" => 0,
        "alert" => 1,
        "crit" | "critical" | "fatal" => 2,
        "err" | "error" | "eror" => 3,
        "warn" | "warning" => 4,
        "notice" => 5,
        "info" | "information" | "informational" => 6,
        "debug" | "trace" | "dbug" => 7,
        _ => return None,
    })
}

/// PRI of a message of facility `user` (1) with `severity`: what agents without a facility
/// are stored as.
pub fn user_pri(severity: u8) -> u8 {
    8 + severity.min(7)
}

/// An event's `native` object written as JSON text field by field, so what many events share
/// (an OTLP scope's resource, a Loki stream's labels) is written once and copied.
#[derive(Clone, Default)]
pub struct NativeJson(String);

impl NativeJson {
    /// A field whose value is already JSON text.
    pub fn raw(&mut self, key: &str, json: &str) {
        self.0.push(if self.0.is_empty() { '{' } else { ',' });
        self.0.push('"');
        self.0.push_str(key);
        self.0.push_str("\":");
        self.0.push_str(json);
    }

    pub fn text(&mut self, key: &str, value: &str) {
        let quoted = serde_json::to_string(value).unwrap_or_else(|_| "\"\"".into());
        self.raw(key, &quoted);
    }

    /// The object, or `None` when it has no field.
    pub fn finish(mut self) -> Option<String> {
        if self.0.is_empty() {
            return None;
        }
        self.0.push('}');
        Some(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn basic(user: &str, password: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    }

    #[test]
    fn agents_name_the_tenant_and_token_the_ways_they_know() {
        let both = |tenant: &str, token: &str| Credentials {
            tenant: Some(tenant.into()),
            token: Some(token.into()),
        };
        assert_eq!(
            Credentials::from_headers(&headers(&[
                ("x-scope-orgid", "acme"),
                ("authorization", "Bearer s3cret")
            ])),
            both("acme", "s3cret")
        );
        let basic_auth = format!("Basic {}", basic("acme", "s3cret"));
        assert_eq!(
            Credentials::from_headers(&headers(&[("authorization", &basic_auth)])),
            both("acme", "s3cret")
        );
        // X-Scope-OrgID wins over the Basic user (Loki's convention).
        assert_eq!(
            Credentials::from_headers(&headers(&[
                ("x-scope-orgid", "acme"),
                (
                    "authorization",
                    &format!("Basic {}", basic("ignored", "s3cret"))
                )
            ])),
            both("acme", "s3cret")
        );
        let api_key = format!("ApiKey {}", basic("acme", "s3cret"));
        assert_eq!(
            Credentials::from_headers(&headers(&[("authorization", &api_key)])),
            both("acme", "s3cret")
        );
        assert_eq!(
            Credentials::from_headers(&headers(&[("authorization", "Basic !!!")])),
            Credentials::default()
        );
    }

    #[test]
    fn level_names_map_to_syslog_severities() {
        assert_eq!(severity_from_level("ERROR"), Some(3));
        assert_eq!(severity_from_level("warning"), Some(4));
        assert_eq!(severity_from_level("fatal"), Some(2));
        assert_eq!(severity_from_level("verbose"), None);
        assert_eq!(user_pri(3), 11);
    }
}
