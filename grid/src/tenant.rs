//! Tenants: the spec users write (the same fields the `Tenant` CRD spec uses), the validated
//! form, and the registry that authenticates a tenant's token.

use foldhash::HashMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::duration::HumanDuration;
use crate::rate_limit::RateLimiter;

/// A tenant id: a DNS-1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 bytes).
///
/// Because the id becomes part of storage paths and metric labels, it is only ever built through
/// [`TenantId::parse`]; nothing derived from input reaches the disk without passing here.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TenantId(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid tenant id {id:?}: must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters)")]
pub struct InvalidTenantId {
    pub id: String,
}

impl TenantId {
    pub fn parse(id: &str) -> Result<TenantId, InvalidTenantId> {
        let bytes = id.as_bytes();
        let allowed =
            |byte: &u8| byte.is_ascii_lowercase() || byte.is_ascii_digit() || *byte == b'-';
        let valid = !bytes.is_empty()
            && bytes.len() <= 63
            && bytes.iter().all(allowed)
            && bytes[0] != b'-'
            && bytes[bytes.len() - 1] != b'-';
        if valid {
            Ok(TenantId(id.to_string()))
        } else {
            Err(InvalidTenantId {
                id: id.chars().take(80).collect(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        TenantId::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// What a user writes for one tenant (standalone YAML; later the `Tenant` CRD spec).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantSpec {
    pub id: TenantId,
    /// Accepted tokens. During a rotation, keep the previous token with a `notAfter` to give
    /// senders a grace period; a token past its `notAfter` is refused.
    pub tokens: Vec<TokenSpec>,
    /// Event producers, matched by APP-NAME (`pname`). Events that match none use the producer
    /// named `default` if there is one, otherwise a non-durable producer without a pattern.
    #[serde(default)]
    pub producers: Vec<ProducerSpec>,
    #[serde(default)]
    pub retention: RetentionSpec,
    #[serde(default)]
    pub limits: LimitsSpec,
    /// Client certificates that are this tenant's on TLS listeners verifying them
    /// (`clientCaFile`): a subject CN or DNS subject-alternative name. A device presenting
    /// one sends without a token. Names must not be shared between tenants: a shared one maps
    /// to no tenant.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls_client_identities: Vec<String>,
}

/// Per-tenant ingest limits. Without them a tenant is only bounded by the shared queues.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitsSpec {
    /// Events per second accepted over HTTP and syslog TCP/TLS. Over it, HTTP answers 429 with
    /// `Retry-After` and syslog streams are slowed down (nothing is dropped). UDP is not
    /// limited: a datagram cannot be slowed down, only dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_per_second: Option<u64>,
    /// Events accepted at once above the rate (default: one second's worth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst_events: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenSpec {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProducerSpec {
    pub name: String,
    /// Normalizer rulebase applied to this producer's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Durable: acknowledged only once on disk (HTTP 202 with a `job_id`).
    #[serde(default)]
    pub durable: bool,
    /// Its events are sealed at rest wherever they are kept: spools, the write-ahead log, the
    /// hot store (with the tenant's key) and the archive.
    #[serde(default)]
    pub encrypted: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetentionSpec {
    /// How long events stay in the hot store (on the storage worker's disk). With an archive,
    /// a file leaves the hot store only once it is archived.
    #[serde(default = "default_short_term")]
    pub short_term: HumanDuration,
    /// How long events stay in the archive (object storage); no query returns anything
    /// older. At least `shortTerm`; unset, it is `shortTerm` (the archive is then a copy that
    /// outlives a lost disk, and nothing is kept longer than before). Without an archive,
    /// events are kept for `shortTerm` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_term: Option<HumanDuration>,
}

impl RetentionSpec {
    /// The archive's retention: `longTerm`, or `shortTerm` when it is unset.
    pub fn long_term(&self) -> std::time::Duration {
        self.long_term.unwrap_or(self.short_term).0
    }
}

fn default_short_term() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(7 * 86_400))
}

impl Default for RetentionSpec {
    fn default() -> Self {
        RetentionSpec {
            short_term: default_short_term(),
            long_term: None,
        }
    }
}

/// A producer as events carry it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Producer {
    pub name: String,
    pub pattern: Option<String>,
    pub durable: bool,
    pub encrypted: bool,
}

impl Producer {
    /// A producer without a pattern, neither durable nor encrypted: what a tenant uses for
    /// events that match none of its producers unless it defines `default` itself.
    pub fn plain(name: &str) -> Producer {
        Producer {
            name: name.to_string(),
            pattern: None,
            durable: false,
            encrypted: false,
        }
    }
}

impl From<&ProducerSpec> for Producer {
    fn from(spec: &ProducerSpec) -> Self {
        Producer {
            name: spec.name.clone(),
            pattern: spec.pattern.clone(),
            durable: spec.durable,
            encrypted: spec.encrypted,
        }
    }
}

/// A validated tenant.
#[derive(Debug)]
pub struct Tenant {
    pub id: TenantId,
    pub spec: TenantSpec,
    /// foldhash, not SipHash: looked up for every message, with keys from configuration.
    producers: HashMap<String, Producer>,
    default_producer: Producer,
    /// `limits.eventsPerSecond`, when set.
    pub ingest_limit: Option<RateLimiter>,
}

impl Tenant {
    /// The producer for an APP-NAME: exact match by name, else the default.
    pub fn producer_for(&self, pname: Option<&str>) -> &Producer {
        pname
            .and_then(|name| self.producers.get(name))
            .unwrap_or(&self.default_producer)
    }

    /// Checks a presented token against every accepted token without leaking, through timing,
    /// which one matched or how many bytes did.
    pub fn token_is_valid(&self, presented: &str, now: DateTime<Utc>) -> bool {
        let mut valid = subtle::Choice::from(0u8);
        for token in &self.spec.tokens {
            let unexpired = token.not_after.is_none_or(|not_after| now <= not_after);
            let equal = token.value.as_bytes().ct_eq(presented.as_bytes());
            valid |= equal & subtle::Choice::from(unexpired as u8);
        }
        valid.into()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("tenant {0:?} is defined twice")]
    DuplicateTenant(String),
    #[error("tenant {0:?} has no token: add at least one under `tokens`")]
    NoToken(String),
    #[error("tenant {tenant:?} has an empty token")]
    EmptyToken { tenant: String },
    #[error("tenant {tenant:?} defines producer {producer:?} twice")]
    DuplicateProducer { tenant: String, producer: String },
    #[error("tenant {tenant:?} has a producer with an empty name")]
    EmptyProducerName { tenant: String },
    #[error(
        "tenant {tenant:?}: retention.longTerm ({long_term}) is shorter than retention.shortTerm \
         ({short_term}); the archive keeps events at least as long as the hot store"
    )]
    LongTermShorterThanShortTerm {
        tenant: String,
        short_term: HumanDuration,
        long_term: HumanDuration,
    },
}

impl Tenant {
    pub fn from_spec(spec: TenantSpec) -> Result<Tenant, SpecError> {
        let tenant_name = spec.id.to_string();
        if spec.tokens.is_empty() {
            return Err(SpecError::NoToken(tenant_name));
        }
        if spec.tokens.iter().any(|token| token.value.is_empty()) {
            return Err(SpecError::EmptyToken {
                tenant: tenant_name,
            });
        }
        if let Some(long_term) = spec.retention.long_term {
            if long_term.0 < spec.retention.short_term.0 {
                return Err(SpecError::LongTermShorterThanShortTerm {
                    tenant: tenant_name,
                    short_term: spec.retention.short_term,
                    long_term,
                });
            }
        }
        let mut producers = HashMap::default();
        for producer in &spec.producers {
            if producer.name.is_empty() {
                return Err(SpecError::EmptyProducerName {
                    tenant: tenant_name,
                });
            }
            if producers
                .insert(producer.name.clone(), Producer::from(producer))
                .is_some()
            {
                return Err(SpecError::DuplicateProducer {
                    tenant: tenant_name,
                    producer: producer.name.clone(),
                });
            }
        }
        let default_producer = producers
            .get("default")
            .cloned()
            .unwrap_or_else(|| Producer::plain("default"));
        let ingest_limit = spec.limits.events_per_second.map(|rate| {
            RateLimiter::new(
                rate,
                spec.limits.burst_events.unwrap_or(rate),
                std::time::Instant::now(),
            )
        });
        Ok(Tenant {
            id: spec.id.clone(),
            spec,
            producers,
            default_producer,
            ingest_limit,
        })
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum AuthError {
    #[error("unknown tenant")]
    UnknownTenant,
    #[error("missing token")]
    MissingToken,
    #[error("invalid token")]
    InvalidToken,
}

impl AuthError {
    /// Metric label for `meniscus_auth_failures_total{reason}`.
    pub fn reason(self) -> &'static str {
        match self {
            AuthError::UnknownTenant => "unknown_tenant",
            AuthError::MissingToken => "missing_token",
            AuthError::InvalidToken => "invalid_token",
        }
    }
}

/// Every known tenant, looked up by id.
#[derive(Debug, Default)]
pub struct TenantRegistry {
    tenants: HashMap<String, Arc<Tenant>>,
}

impl TenantRegistry {
    pub fn from_specs(specs: Vec<TenantSpec>) -> Result<TenantRegistry, SpecError> {
        let mut tenants = HashMap::default();
        for spec in specs {
            let tenant = Tenant::from_spec(spec)?;
            let id = tenant.id.to_string();
            if tenants.insert(id.clone(), Arc::new(tenant)).is_some() {
                return Err(SpecError::DuplicateTenant(id));
            }
        }
        Ok(TenantRegistry { tenants })
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Tenant>> {
        self.tenants.get(id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.tenants.keys().map(String::as_str)
    }

    /// The tenant whose `tlsClientIdentities` hold one of `names` (a verified client
    /// certificate's CN and DNS SANs, in that order); none when the first name found is
    /// claimed by more than one tenant.
    pub fn by_client_identity(&self, names: &[String]) -> Option<&Arc<Tenant>> {
        names.iter().find_map(|name| {
            let mut holders = self
                .tenants
                .values()
                .filter(|tenant| tenant.spec.tls_client_identities.contains(name));
            let first = holders.next()?;
            match holders.next() {
                None => Some(Some(first)),
                Some(_) => Some(None),
            }
        })?
    }

    /// The tenant, if the token is one of its current tokens.
    pub fn authenticate(
        &self,
        id: &str,
        token: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<&Arc<Tenant>, AuthError> {
        let tenant = self.tenants.get(id).ok_or(AuthError::UnknownTenant)?;
        let token = token
            .filter(|token| !token.is_empty())
            .ok_or(AuthError::MissingToken)?;
        if tenant.token_is_valid(token, now) {
            Ok(tenant)
        } else {
            Err(AuthError::InvalidToken)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> TenantSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn a_client_identity_maps_to_the_one_tenant_claiming_it() {
        let registry = TenantRegistry::from_specs(vec![
            spec("{id: acme, tokens: [{value: a}], tlsClientIdentities: [gw-1, shared]}"),
            spec("{id: other, tokens: [{value: o}], tlsClientIdentities: [sensor.example.net, shared]}"),
        ])
        .unwrap();
        let names = |names: &[&str]| {
            names
                .iter()
                .map(|name| name.to_string())
                .collect::<Vec<_>>()
        };
        let id = |found: Option<&Arc<Tenant>>| found.map(|tenant| tenant.id.to_string());
        assert_eq!(
            id(registry.by_client_identity(&names(&["gw-1"]))),
            Some("acme".into())
        );
        // The CN maps to nothing; a DNS SAN does.
        assert_eq!(
            id(registry.by_client_identity(&names(&["unknown", "sensor.example.net"]))),
            Some("other".into())
        );
        // A name two tenants claim is nobody's, even if a later name is someone's.
        assert_eq!(
            id(registry.by_client_identity(&names(&["shared", "gw-1"]))),
            None
        );
        assert_eq!(id(registry.by_client_identity(&names(&[]))), None);
    }

    #[test]
    fn tenant_ids_must_be_dns_labels() {
        for good in ["a", "acme", "acme-prod-1", "0abc"] {
            assert!(TenantId::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "Acme",
            "a_b",
            "a.b",
            "../etc",
            "a/b",
            &"a".repeat(64),
        ] {
            assert!(TenantId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn yaml_with_a_bad_id_is_refused_with_the_reason() {
        let error =
            serde_yaml::from_str::<TenantSpec>("id: ../x\ntokens: [{value: t}]").unwrap_err();
        assert!(error.to_string().contains("DNS-1123"), "{error}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let error =
            serde_yaml::from_str::<TenantSpec>("id: a\ntokens: [{value: t}]\ntokn: x").unwrap_err();
        assert!(error.to_string().contains("tokn"), "{error}");
    }

    #[test]
    fn producers_match_by_app_name_with_a_default() {
        let tenant = Tenant::from_spec(spec(
            "id: acme\ntokens: [{value: t}]\nproducers:\n- {name: sshd, pattern: sshd, durable: true}\n",
        ))
        .unwrap();
        assert!(tenant.producer_for(Some("sshd")).durable);
        assert_eq!(
            tenant.producer_for(Some("sshd")).pattern.as_deref(),
            Some("sshd")
        );
        assert_eq!(tenant.producer_for(Some("nginx")).name, "default");
        assert!(!tenant.producer_for(None).durable);
    }

    #[test]
    fn previous_token_is_valid_until_not_after() {
        let registry = TenantRegistry::from_specs(vec![spec(
            "id: acme\ntokens:\n- value: new\n- value: old\n  notAfter: 2026-01-02T00:00:00Z\n",
        )])
        .unwrap();
        let before = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let after = DateTime::parse_from_rfc3339("2026-01-03T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(registry.authenticate("acme", Some("old"), before).is_ok());
        assert_eq!(
            registry
                .authenticate("acme", Some("old"), after)
                .unwrap_err(),
            AuthError::InvalidToken
        );
        assert!(registry.authenticate("acme", Some("new"), after).is_ok());
        assert_eq!(
            registry
                .authenticate("acme", Some("ne"), after)
                .unwrap_err(),
            AuthError::InvalidToken
        );
        assert_eq!(
            registry.authenticate("acme", None, after).unwrap_err(),
            AuthError::MissingToken
        );
        assert_eq!(
            registry
                .authenticate("other", Some("new"), after)
                .unwrap_err(),
            AuthError::UnknownTenant
        );
    }

    #[test]
    fn invalid_specs_say_what_is_wrong() {
        assert_eq!(
            Tenant::from_spec(spec("id: a\ntokens: []")).unwrap_err(),
            SpecError::NoToken("a".into())
        );
        let duplicate = vec![
            spec("id: a\ntokens: [{value: t}]"),
            spec("id: a\ntokens: [{value: u}]"),
        ];
        assert_eq!(
            TenantRegistry::from_specs(duplicate).unwrap_err(),
            SpecError::DuplicateTenant("a".into())
        );
    }
}
