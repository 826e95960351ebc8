//! A tenant's token: a Secret of its own (`TENANT-token`, key `token`), random, made once and
//! owned by the Tenant. With `tokenRotation`, a new token replaces it every `every`; the old
//! one (key `previous-token`) keeps working for `grace`, so senders can be moved over.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Resource, ResourceExt};
use meniscus_grid::duration::HumanDuration;

use crate::context::Context;
use crate::crd::tenant::Tenant;
use crate::Error;

/// When the current token was made (RFC 3339).
const ROTATED_AT: &str = "meniscus.io/rotated-at";
/// Until when the previous token still works (RFC 3339).
const PREVIOUS_VALID_UNTIL: &str = "meniscus.io/previous-valid-until";

/// The tokens in force for a tenant.
pub struct Token {
    pub secret_name: String,
    pub current: String,
    /// The token before the last rotation and when it stops working, while it still does.
    pub previous: Option<(String, DateTime<Utc>)>,
    /// How long until the next rotation is due, when the spec asks for rotation.
    pub next_rotation: Option<Duration>,
}

pub fn secret_name(tenant: &Tenant) -> String {
    format!("{}-token", tenant.name_any())
}

/// The tenant's tokens, making the Secret on first use and rotating when due.
pub async fn ensure(tenant: &Tenant, context: &Context) -> Result<Token, Error> {
    let name = secret_name(tenant);
    let namespace = tenant.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(context.client.clone(), &namespace);
    let now = Utc::now();
    let rotation = match &tenant.spec.token_rotation {
        Some(rotation) => {
            let every = parse(&rotation.every)?;
            if every < chrono::Duration::seconds(1) {
                return Err(Error::msg("tokenRotation.every must be at least 1s"));
            }
            // A grace longer than the period would be cut short by the next rotation (one
            // previous token is kept): it ends with the period.
            Some((every, parse(&rotation.grace)?.min(every)))
        }
        None => None,
    };
    let live = api.get_opt(&name).await?;
    let (mut current, mut previous, mut rotated_at) = match &live {
        Some(secret) => read(secret),
        None => (None, None, None),
    };
    let due = match (rotation, rotated_at) {
        (Some((every, _)), Some(at)) => now >= at + every,
        _ => false,
    };
    if current.is_none() || due {
        if let (Some(old), Some((_, grace))) = (current.take(), rotation) {
            previous = Some((old, now + grace));
        }
        current = Some(crate::random_token().map_err(Error)?);
        rotated_at = Some(now);
        let secret = secret(tenant, &name, current.as_deref(), previous.as_ref(), now);
        context.metrics.writes.inc(&["Secret"]);
        match live {
            None => api.create(&PostParams::default(), &secret).await?,
            Some(live) => {
                let mut secret = secret;
                secret.metadata.resource_version = live.resource_version();
                api.replace(&name, &PostParams::default(), &secret).await?
            }
        };
    }
    let previous = previous.filter(|(_, until)| *until > now);
    let next_rotation = match (rotation, rotated_at) {
        (Some((every, _)), Some(at)) => Some((at + every - now).to_std().unwrap_or_default()),
        _ => None,
    };
    Ok(Token {
        secret_name: name,
        current: current.unwrap_or_default(),
        previous,
        next_rotation,
    })
}

pub(crate) fn parse(duration: &str) -> Result<chrono::Duration, Error> {
    let duration: HumanDuration = duration.parse().map_err(Error::msg)?;
    chrono::Duration::from_std(duration.0).map_err(Error::msg)
}

type Read = (
    Option<String>,
    Option<(String, DateTime<Utc>)>,
    Option<DateTime<Utc>>,
);

/// (current token, previous token and its end, when the current one was made).
fn read(secret: &Secret) -> Read {
    let data = secret.data.clone().unwrap_or_default();
    let text = |key: &str| {
        data.get(key)
            .and_then(|bytes| String::from_utf8(bytes.0.clone()).ok())
            .filter(|text| !text.is_empty())
    };
    let time = |key: &str| {
        secret
            .annotations()
            .get(key)
            .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
            .map(|time| time.with_timezone(&Utc))
    };
    let previous = text("previous-token").zip(time(PREVIOUS_VALID_UNTIL));
    (text("token"), previous, time(ROTATED_AT))
}

fn secret(
    tenant: &Tenant,
    name: &str,
    current: Option<&str>,
    previous: Option<&(String, DateTime<Utc>)>,
    now: DateTime<Utc>,
) -> Secret {
    let mut data = BTreeMap::from([(
        "token".to_string(),
        ByteString(current.unwrap_or_default().as_bytes().to_vec()),
    )]);
    let mut annotations = BTreeMap::from([(ROTATED_AT.to_string(), now.to_rfc3339())]);
    if let Some((token, until)) = previous {
        data.insert(
            "previous-token".into(),
            ByteString(token.as_bytes().to_vec()),
        );
        annotations.insert(PREVIOUS_VALID_UNTIL.into(), until.to_rfc3339());
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: tenant.namespace(),
            labels: Some(BTreeMap::from([
                ("app.kubernetes.io/name".to_string(), "meniscus".to_string()),
                (
                    "app.kubernetes.io/managed-by".to_string(),
                    crate::grid::children::MANAGER.to_string(),
                ),
                ("meniscus.io/tenant".to_string(), tenant.name_any()),
            ])),
            annotations: Some(annotations),
            owner_references: tenant.controller_owner_ref(&()).map(|owner| vec![owner]),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..Secret::default()
    }
}
