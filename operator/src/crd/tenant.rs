//! `Tenant`: one tenant of a grid. Its name is the tenant id.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::Condition;

#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "meniscus.io",
    version = "v1alpha1",
    kind = "Tenant",
    plural = "tenants",
    namespaced,
    status = "TenantStatus",
    shortname = "mten",
    category = "meniscus",
    // The name is the tenant id, which becomes storage paths and metric labels: a DNS-1123
    // label, stricter than the subdomain Kubernetes allows for names.
    validation = Rule::new("self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 63").message("a Tenant's name is its id: lowercase letters, digits and '-', at most 63"),
    printcolumn = r#"{"name":"Grid","type":"string","jsonPath":".spec.gridRef"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Events","type":"integer","jsonPath":".status.eventsReceived"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.gridRef == oldSelf.gridRef").message("gridRef is immutable: a tenant's data lives in its grid"))]
pub struct TenantSpec {
    /// The `MeniscusGrid` (same namespace) that serves this tenant.
    pub grid_ref: String,
    /// Event producers, matched by APP-NAME; unmatched events use `default` if there is one.
    #[serde(default)]
    pub producers: Vec<Producer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<TenantRetention>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// How often the operator rotates the tenant's token, and how long the old one still
    /// works; no rotation without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_rotation: Option<TokenRotation>,
    /// Client certificates that are this tenant's on the grid's TLS listener (the grid needs
    /// `tlsClientCaSecret`): subject CNs or DNS subject-alternative names. A device
    /// presenting one sends without a token. The oldest Tenant naming one keeps it; a newer
    /// one is told so in its status.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls_client_identities: Vec<String>,
    /// A port of its own on the ingest Service, for devices that cannot send a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub dedicated_port: Option<i32>,
    /// How long after the Tenant is deleted its data is purged.
    #[serde(default = "purge_grace")]
    #[schemars(regex(pattern = r"^[0-9]+(s|m|h|d)$"))]
    pub purge_grace: String,
}

fn purge_grace() -> String {
    "24h".into()
}

#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Producer {
    #[x_kube(validation = Rule::new("self != ''").message("a producer needs a name"))]
    pub name: String,
    /// Normalizer rulebase for its events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Acknowledged only once on disk (HTTP 202 with a job id).
    #[serde(default)]
    pub durable: bool,
    /// Its events are sealed at rest wherever a worker keeps them: spools, the write-ahead log,
    /// the hot store (with the tenant's key) and the archive.
    #[serde(default)]
    pub encrypted: bool,
}

#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantRetention {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(s|m|h|d)$"))]
    pub short_term: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(s|m|h|d)$"))]
    pub long_term: Option<String>,
}

#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub events_per_second: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub burst_events: Option<i64>,
}

#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenRotation {
    #[schemars(regex(pattern = r"^[0-9]+(s|m|h|d)$"))]
    #[x_kube(validation = Rule::new("!self.matches('^0+[smhd]$')").message("tokenRotation.every must be at least 1s"))]
    pub every: String,
    #[serde(default = "token_grace")]
    #[schemars(regex(pattern = r"^[0-9]+(s|m|h|d)$"))]
    pub grace: String,
}

fn token_grace() -> String {
    "24h".into()
}

#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The Secret holding the tenant's token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret: Option<String>,
    /// What to put in rsyslog's (or an agent's) config.
    #[serde(default)]
    pub ingest_endpoints: Vec<String>,
    #[serde(default)]
    pub events_received: i64,
    #[serde(default)]
    pub bytes_stored: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_time: Option<String>,
}
