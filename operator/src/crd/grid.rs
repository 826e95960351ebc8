//! `MeniscusGrid`: one Meniscus grid (its personas, listeners, archive and scaling), the
//! resource a platform team applies once.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::Condition;

#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "meniscus.io",
    version = "v1alpha1",
    kind = "MeniscusGrid",
    plural = "meniscusgrids",
    namespaced,
    status = "MeniscusGridStatus",
    shortname = "mgrid",
    category = "meniscus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Routes","type":"integer","jsonPath":".status.routeVersion"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct MeniscusGridSpec {
    /// The worker image (the `meniscus` binary), e.g. `registry.example/meniscus:0.1.0`.
    #[x_kube(validation = Rule::new("self != ''").message("image must name an image"))]
    pub image: String,
    /// Replicas, resources and storage of each persona.
    #[serde(default)]
    pub personas: Personas,
    /// Ports the ingest Service exposes.
    #[serde(default)]
    pub listeners: Listeners,
    #[serde(default)]
    pub ingest_service: IngestService,
    /// Secret (`tls.crt`, `tls.key`) for syslog over TLS (RFC 5425); no TLS listener without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret: Option<String>,
    /// Secret with `ca.crt`: the TLS listener verifies client certificates against it
    /// (without requiring one: token senders still connect), and a certificate named in a
    /// Tenant's `tlsClientIdentities` sends as that tenant without a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_ca_secret: Option<String>,
    /// Long-term storage; without it events are kept for the tenants' short term only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<Archive>,
    /// Retention of tenants that do not set their own.
    #[serde(default)]
    pub retention: Retention,
    #[serde(default)]
    pub autoscaling: Autoscaling,
    /// Storage workers that hold each tenant's data (rendezvous hashing): more spreads a
    /// tenant's load and keeps it queryable through a lost worker; fewer keeps its queries
    /// on fewer workers.
    #[serde(default = "two")]
    #[schemars(range(min = 1))]
    pub storage_copies: i32,
}

fn two() -> i32 {
    2
}

/// Every persona of the grid.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.correlator.replicas.max >= 1 && self.storage.replicas.max >= 1 && self.tenantApi.replicas.max >= 1 && self.broadcaster.replicas.max >= 1").message("correlator, storage, tenantApi and broadcaster need replicas.max of at least 1 (only normalizer may be 0)"))]
pub struct Personas {
    #[serde(default)]
    pub correlator: SpoolingPersona,
    /// Normalizers of their own between correlators and storage. None by default
    /// (`replicas: {min: 0, max: 0}`): correlators then normalize what they receive
    /// themselves, which saves a hop; a hop of its own scales rulebase work apart from ingest.
    #[serde(default = "no_normalizers")]
    pub normalizer: SpoolingPersona,
    #[serde(default)]
    pub storage: StoragePersona,
    #[serde(default)]
    pub tenant_api: Persona,
    #[serde(default)]
    pub broadcaster: Persona,
}

#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Persona {
    #[serde(default)]
    pub replicas: Replicas,
    /// Requests and limits, as a container's `resources` (`{requests: {cpu: 500m}}`).
    #[serde(default)]
    pub resources: Resources,
}

fn no_normalizers() -> SpoolingPersona {
    SpoolingPersona {
        replicas: Replicas { min: 0, max: 0 },
        ..SpoolingPersona::default()
    }
}

impl Default for Personas {
    fn default() -> Self {
        Personas {
            correlator: SpoolingPersona::default(),
            normalizer: no_normalizers(),
            storage: StoragePersona::default(),
            tenant_api: Persona::default(),
            broadcaster: Persona::default(),
        }
    }
}

/// Correlators and normalizers keep what the next hop has not acknowledged in a spool on a
/// volume of their own, so a rescheduled pod loses nothing it acknowledged.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpoolingPersona {
    #[serde(default)]
    pub replicas: Replicas,
    #[serde(default)]
    pub resources: Resources,
    /// Size of each replica's spool volume; the spool may fill nine tenths of it, then
    /// senders are slowed (TCP) or refused (HTTP 503).
    /// Fixed once set: a StatefulSet's volume claims cannot change.
    #[serde(default = "default_spool_size")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spoolSize cannot change: volume claims are fixed once made"))]
    pub spool_size: String,
    /// StorageClass of the volumes; the cluster's default without it. Fixed once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("storageClass cannot change: volume claims are fixed once made"))]
    pub storage_class: Option<String>,
}

impl Default for SpoolingPersona {
    fn default() -> Self {
        SpoolingPersona {
            replicas: Replicas::default(),
            resources: Resources::default(),
            spool_size: default_spool_size(),
            storage_class: None,
        }
    }
}

fn default_spool_size() -> String {
    "2Gi".into()
}

impl Personas {
    /// The volume size and StorageClass of each replica of a persona that keeps data; `None`
    /// for those that keep none.
    pub fn volume(
        &self,
        persona: crate::grid::children::Component,
    ) -> Option<(String, Option<String>)> {
        use crate::grid::children::Component;
        match persona {
            Component::Correlator => Some((
                self.correlator.spool_size.clone(),
                self.correlator.storage_class.clone(),
            )),
            Component::Normalizer => Some((
                self.normalizer.spool_size.clone(),
                self.normalizer.storage_class.clone(),
            )),
            Component::Storage => Some((
                self.storage.storage_size.clone(),
                self.storage.storage_class.clone(),
            )),
            Component::Broadcaster | Component::TenantApi => None,
        }
    }
}

/// The storage persona also holds data: a volume per replica.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoragePersona {
    #[serde(default)]
    pub replicas: Replicas,
    #[serde(default)]
    pub resources: Resources,
    /// Size of each replica's volume (WAL and hot store).
    /// Fixed once set: a StatefulSet's volume claims cannot change.
    #[serde(default = "default_storage_size")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$"))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("storageSize cannot change: volume claims are fixed once made"))]
    pub storage_size: String,
    /// StorageClass of the volumes; the cluster's default without it. Fixed once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("storageClass cannot change: volume claims are fixed once made"))]
    pub storage_class: Option<String>,
}

impl Default for StoragePersona {
    fn default() -> Self {
        StoragePersona {
            replicas: Replicas::default(),
            resources: Resources::default(),
            storage_size: default_storage_size(),
            storage_class: None,
        }
    }
}

fn default_storage_size() -> String {
    "20Gi".into()
}

/// The range the autoscaler keeps a persona in; the operator owns `replicas` (no HPA).
/// Correlators, normalizers and storage scale on the events they take (storage only up: its
/// workers hold data), the tenant API on its requests, broadcasters on the workers they
/// inform (see `autoscaling`).
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[x_kube(validation = Rule::new("self.min <= self.max").message("replicas.min must not be above replicas.max"))]
pub struct Replicas {
    #[serde(default = "one")]
    #[schemars(range(min = 0))]
    pub min: i32,
    #[serde(default = "three")]
    #[schemars(range(min = 0))]
    pub max: i32,
}

impl Default for Replicas {
    fn default() -> Self {
        Replicas {
            min: one(),
            max: three(),
        }
    }
}

fn one() -> i32 {
    1
}

fn three() -> i32 {
    3
}

#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, String>,
}

#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listeners {
    /// Syslog over TCP (RFC 6587 framing).
    #[serde(default = "syslog_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub syslog_tcp: i32,
    /// Syslog over UDP; none without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub syslog_udp: Option<i32>,
    /// Syslog over TLS (needs `tlsSecret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub syslog_tls: Option<i32>,
    /// HTTP: publish, the agents' protocols, the tenant API.
    #[serde(default = "http_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub http: i32,
}

impl Default for Listeners {
    fn default() -> Self {
        Listeners {
            syslog_tcp: syslog_port(),
            syslog_udp: None,
            syslog_tls: None,
            http: http_port(),
        }
    }
}

fn syslog_port() -> i32 {
    5514
}

fn http_port() -> i32 {
    8080
}

#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IngestService {
    /// `ClusterIP`, `NodePort` or `LoadBalancer`.
    #[serde(rename = "type", default)]
    pub type_: ServiceType,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceType {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
}

#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Archive {
    /// `s3://bucket/prefix`, `gs://…`, `az://…`.
    #[x_kube(validation = Rule::new("self.matches('^(s3|gs|az)://[^/]+')").message("archive.url must be s3://, gs:// or az:// with a bucket"))]
    pub url: String,
    /// Secret whose keys are the object store's settings (`AWS_ACCESS_KEY_ID`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
}

#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// In the hot store (`7d`, `36h`).
    #[serde(default = "seven_days")]
    #[schemars(regex(pattern = r"^[0-9]+(s|m|h|d)$"))]
    pub short_term: String,
    /// In the archive; `shortTerm` without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(s|m|h|d)$"))]
    pub long_term: Option<String>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            short_term: seven_days(),
            long_term: None,
        }
    }
}

fn seven_days() -> String {
    "7d".into()
}

/// Targets the autoscaler holds each persona to, and how quickly it moves.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Autoscaling {
    /// Events per second one replica should carry.
    #[serde(default = "events_per_replica")]
    #[schemars(range(min = 1))]
    pub events_per_second_per_replica: i64,
    /// Queued or spooled events per replica above which it scales up.
    #[serde(default = "backlog_per_replica")]
    #[schemars(range(min = 1))]
    pub backlog_per_replica: i64,
    /// How long load must stay high before scaling up.
    #[serde(default = "scale_up_window")]
    #[schemars(range(min = 0))]
    pub scale_up_window_seconds: i32,
    /// How long load must stay low before scaling down; also the least time between two steps
    /// down (each at most halves the replicas).
    #[serde(default = "scale_down_window")]
    #[schemars(range(min = 0))]
    pub scale_down_window_seconds: i32,
    /// Tenant API requests (searches, SQL, counts, job lookups, Loki queries) per second one
    /// tenant API replica should answer.
    #[serde(default = "requests_per_tenant_api")]
    #[schemars(range(min = 1))]
    pub requests_per_second_per_tenant_api: i64,
    /// Workers one broadcaster keeps informed of route and tenant changes.
    #[serde(default = "workers_per_broadcaster")]
    #[schemars(range(min = 1))]
    pub workers_per_broadcaster: i64,
}

impl Default for Autoscaling {
    fn default() -> Self {
        Autoscaling {
            events_per_second_per_replica: events_per_replica(),
            backlog_per_replica: backlog_per_replica(),
            scale_up_window_seconds: scale_up_window(),
            scale_down_window_seconds: scale_down_window(),
            requests_per_second_per_tenant_api: requests_per_tenant_api(),
            workers_per_broadcaster: workers_per_broadcaster(),
        }
    }
}

fn events_per_replica() -> i64 {
    50_000
}

fn backlog_per_replica() -> i64 {
    200_000
}

fn scale_up_window() -> i32 {
    30
}

fn scale_down_window() -> i32 {
    300
}

fn requests_per_tenant_api() -> i64 {
    200
}

/// bench/grid: 1,000 workers long-polling 2 broadcasters had a route change in 0.9 s (goal
/// < 2 s); 250 each leaves room on smaller nodes.
fn workers_per_broadcaster() -> i64 {
    250
}

#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeniscusGridStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Per persona: desired and ready replicas, events per second.
    #[serde(default)]
    pub personas: BTreeMap<String, PersonaStatus>,
    #[serde(default)]
    pub route_version: i64,
    /// Where tenants send: `host:port` per protocol.
    #[serde(default)]
    pub ingest_endpoints: Vec<String>,
}

#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonaStatus {
    pub desired: i32,
    pub ready: i32,
    /// The load the autoscaler last saw: events per second (correlator, normalizer,
    /// storage), requests per second (tenant-api), or workers following (broadcaster).
    #[serde(default)]
    pub events_per_second: f64,
}
