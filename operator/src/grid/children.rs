//! What a `MeniscusGrid` is made of in Kubernetes, as pure functions of its spec: the
//! workers' configuration, the coordinator, one workload per persona, the Services tenants
//! and workers reach them by, and disruption budgets. The reconciler applies these; tests
//! read them.
//!
//! The grid's coordinator is not among them: the operator serves it (see
//! `crate::coordinator_host`). Workloads that hold data the grid has acknowledged are
//! StatefulSets with volume claims: storage (WAL, hot store), and correlators and normalizers (their link spools hold durable events until the next hop takes them; on
//! an emptyDir a rescheduled pod would lose them, the failure Vector's users meet with disk
//! buffers in a Deployment). The tenant API and broadcasters hold nothing: Deployments.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::ObjectMeta;
use kube::Resource;
use serde_json::{json, Value};

use crate::crd::grid::{MeniscusGrid, Resources};
use crate::crd::tenant::Tenant;

/// Port every worker serves the grid on: links between personas, pairing, /healthz, /metrics.
pub const GRID_PORT: i32 = 7400;
/// Where a pod finds its configuration, secrets and data.
const CONFIG_DIR: &str = "/etc/meniscus";
const SECRETS_DIR: &str = "/etc/meniscus/secrets";
const TLS_DIR: &str = "/etc/meniscus/tls";
const TLS_CLIENT_CA_DIR: &str = "/etc/meniscus/tls-client-ca";
const DATA_DIR: &str = "/var/lib/meniscus";
/// Seconds a correlator or normalizer keeps sending its spool after SIGTERM; the pod's grace
/// period is longer, so Kubernetes does not kill it mid-drain.
const DRAIN_SECONDS: i64 = 30;
/// The field manager of every object the operator applies.
pub const MANAGER: &str = "meniscus-operator";

/// What the controllers watch of the kinds they own: only the objects the operator made.
pub fn made_by_the_operator() -> kube::runtime::watcher::Config {
    kube::runtime::watcher::Config::default()
        .labels(&format!("app.kubernetes.io/managed-by={MANAGER}"))
}

/// A persona as a workload: its name in objects and labels, and its `--persona` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Component {
    Broadcaster,
    Correlator,
    Normalizer,
    Storage,
    TenantApi,
}

impl Component {
    pub const ALL: [Component; 5] = [
        Component::Broadcaster,
        Component::Correlator,
        Component::Normalizer,
        Component::Storage,
        Component::TenantApi,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Component::Broadcaster => "broadcaster",
            Component::Correlator => "correlator",
            Component::Normalizer => "normalizer",
            Component::Storage => "storage",
            Component::TenantApi => "tenant-api",
        }
    }

    /// The persona the coordinator knows its workers by.
    pub fn persona(self) -> meniscus_grid::routes::Persona {
        use meniscus_grid::routes::Persona;
        match self {
            Component::Broadcaster => Persona::Broadcaster,
            Component::Correlator => Persona::Correlator,
            Component::Normalizer => Persona::Normalizer,
            Component::Storage => Persona::Storage,
            Component::TenantApi => Persona::TenantApi,
        }
    }

    /// StatefulSet (holds acknowledged data) or Deployment.
    pub fn is_stateful(self) -> bool {
        !matches!(self, Component::Broadcaster | Component::TenantApi)
    }

    /// Whether the grid works without it (normalizers: correlators normalize themselves).
    pub fn is_required(self) -> bool {
        self != Component::Normalizer
    }
}

/// `NAME-COMPONENT`, the name of a grid's workload and of its Service.
pub fn component_name(grid: &MeniscusGrid, component: Component) -> String {
    format!("{}-{}", grid_name(grid), component.as_str())
}

pub fn grid_name(grid: &MeniscusGrid) -> String {
    grid.metadata.name.clone().unwrap_or_default()
}

/// The Secret with the pairing secret and the admin credential (made once, never applied).
pub fn secrets_name(grid: &MeniscusGrid) -> String {
    format!("{}-secrets", grid_name(grid))
}

pub fn config_name(grid: &MeniscusGrid) -> String {
    format!("{}-config", grid_name(grid))
}

/// The Service tenants send to (correlators).
pub fn ingest_service_name(grid: &MeniscusGrid) -> String {
    format!("{}-ingest", grid_name(grid))
}

/// The Service tenants query (the tenant API persona).
pub fn api_service_name(grid: &MeniscusGrid) -> String {
    format!("{}-api", grid_name(grid))
}

/// Labels that select a grid's pods of one component.
pub fn selector(grid: &MeniscusGrid, component: Component) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "meniscus".to_string()),
        ("app.kubernetes.io/instance".to_string(), grid_name(grid)),
        (
            "app.kubernetes.io/component".to_string(),
            component.as_str().to_string(),
        ),
    ])
}

/// The labels of a grid's objects that belong to no one persona.
pub fn grid_labels(grid: &MeniscusGrid) -> BTreeMap<String, String> {
    labels(grid, None)
}

fn labels(grid: &MeniscusGrid, component: Option<Component>) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "meniscus".to_string()),
        ("app.kubernetes.io/instance".to_string(), grid_name(grid)),
        (
            "app.kubernetes.io/managed-by".to_string(),
            MANAGER.to_string(),
        ),
    ]);
    if let Some(component) = component {
        labels.insert(
            "app.kubernetes.io/component".into(),
            component.as_str().into(),
        );
    }
    labels
}

/// Metadata of a child: in the grid's namespace, owned by it (deleted with it).
fn meta(grid: &MeniscusGrid, name: String, component: Option<Component>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: grid.metadata.namespace.clone(),
        labels: Some(labels(grid, component)),
        owner_references: grid.controller_owner_ref(&()).map(|owner| vec![owner]),
        ..ObjectMeta::default()
    }
}

/// A port of the ingest Service that belongs to one tenant (`Tenant.spec.dedicatedPort`):
/// syslog over TCP and UDP on it is that tenant's, without a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dedicated {
    pub tenant: String,
    pub port: i32,
}

/// The grid's Tenants, not being deleted, oldest first (by name among equals): the order in
/// which they claim what only one may hold (a dedicated port, a TLS client identity).
/// Whoever asked first keeps it: a newer tenant naming a held one never takes it over (its
/// devices' logs would become the newcomer's).
pub fn in_claim_order<'a>(grid: &MeniscusGrid, tenants: &'a [Tenant]) -> Vec<&'a Tenant> {
    let mut ours: Vec<&Tenant> = tenants
        .iter()
        .filter(|tenant| {
            tenant.spec.grid_ref == grid_name(grid)
                && tenant.metadata.namespace == grid.metadata.namespace
                && tenant.metadata.deletion_timestamp.is_none()
        })
        .collect();
    ours.sort_by_key(|tenant| {
        (
            tenant
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|time| time.0),
            tenant.metadata.name.clone(),
        )
    });
    ours
}

/// The dedicated ports the grid's tenants get: the oldest Tenant asking for a port gets it
/// (by name among equals); a port the grid itself listens on, or another tenant's, is refused. Tenants
/// being deleted give theirs up.
pub fn dedicated_ports(grid: &MeniscusGrid, tenants: &[Tenant]) -> Vec<Dedicated> {
    let listeners = &grid.spec.listeners;
    let mut taken: Vec<i32> = [
        Some(listeners.syslog_tcp),
        listeners.syslog_udp,
        listeners.syslog_tls,
        Some(listeners.http),
        Some(GRID_PORT),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut dedicated = Vec::new();
    for tenant in in_claim_order(grid, tenants) {
        let Some(port) = tenant.spec.dedicated_port else {
            continue;
        };
        if taken.contains(&port) {
            continue;
        }
        taken.push(port);
        dedicated.push(Dedicated {
            tenant: tenant.metadata.name.clone().unwrap_or_default(),
            port,
        });
    }
    dedicated
}

/// One syslog port the correlators listen on: the grid's own (`syslog-tcp`, `syslog-udp`,
/// `syslog-tls`) or a tenant's dedicated one (`tcp-PORT`, `udp-PORT`). The configuration,
/// the container ports, the ingest Service and the endpoints all list them from here.
struct SyslogPort {
    name: String,
    port: i32,
    /// As the configuration names it: `tcp`, `udp` or `tls`.
    protocol: &'static str,
    /// The tenant a dedicated port belongs to.
    tenant: Option<String>,
}

impl SyslogPort {
    /// `port` (a container or Service port) with the protocol set when it is UDP; TCP, the
    /// default, is left out.
    fn with_protocol(&self, mut port: Value) -> Value {
        if self.protocol == "udp" {
            port["protocol"] = json!("UDP");
        }
        port
    }
}

/// The grid's own syslog listeners: TCP always, UDP if set, TLS if set and given a Secret.
fn grid_syslog_ports(grid: &MeniscusGrid) -> Vec<SyslogPort> {
    let listeners = &grid.spec.listeners;
    let tls = listeners
        .syslog_tls
        .filter(|_| grid.spec.tls_secret.is_some());
    [
        ("syslog-tcp", Some(listeners.syslog_tcp), "tcp"),
        ("syslog-udp", listeners.syslog_udp, "udp"),
        ("syslog-tls", tls, "tls"),
    ]
    .into_iter()
    .filter_map(|(name, port, protocol)| {
        Some(SyslogPort {
            name: name.to_string(),
            port: port?,
            protocol,
            tenant: None,
        })
    })
    .collect()
}

/// The tenants' dedicated ports, each on TCP and UDP.
fn dedicated_syslog_ports(dedicated: &[Dedicated]) -> Vec<SyslogPort> {
    dedicated
        .iter()
        .flat_map(|Dedicated { tenant, port }| {
            ["tcp", "udp"].map(|protocol| SyslogPort {
                name: format!("{protocol}-{port}"),
                port: *port,
                protocol,
                tenant: Some(tenant.clone()),
            })
        })
        .collect()
}

/// The workers' configuration file (`meniscus.yaml`): listeners from the spec and the
/// tenants' dedicated ports, the HTTP address, and the archive. Tenants are not in it: they
/// come from the coordinator.
pub fn config(grid: &MeniscusGrid, dedicated: &[Dedicated]) -> ConfigMap {
    let listeners = &grid.spec.listeners;
    let mut yaml = String::from("listeners:\n");
    for port in grid_syslog_ports(grid)
        .into_iter()
        .chain(dedicated_syslog_ports(dedicated))
    {
        let SyslogPort {
            protocol,
            port,
            tenant,
            ..
        } = port;
        yaml += &format!("  - {{protocol: {protocol}, address: \"0.0.0.0:{port}\"");
        if protocol == "tls" {
            yaml += &format!(", tls: {{certFile: {TLS_DIR}/tls.crt, keyFile: {TLS_DIR}/tls.key");
            // Verified when presented, not required: token senders share the listener.
            if grid.spec.tls_client_ca_secret.is_some() {
                yaml += &format!(
                    ", clientCaFile: {TLS_CLIENT_CA_DIR}/ca.crt, clientCertOptional: true"
                );
            }
            yaml += "}";
        }
        if let Some(tenant) = tenant {
            yaml += &format!(", tenant: {tenant}");
        }
        yaml += "}\n";
    }
    yaml += &format!("http: {{address: \"0.0.0.0:{}\"}}\n", listeners.http);
    match &grid.spec.archive {
        // Credentials come as AWS_*/GOOGLE_*/AZURE_* variables from the Secret (envFrom).
        Some(archive) => yaml += &format!("archive: {{enabled: true, url: {:?}}}\n", archive.url),
        None => yaml += "archive: {enabled: false}\n",
    }
    ConfigMap {
        metadata: meta(grid, config_name(grid), None),
        data: Some(BTreeMap::from([("meniscus.yaml".to_string(), yaml)])),
        ..ConfigMap::default()
    }
}

/// What the children depend on besides the grid's spec: its tenants' dedicated ports, and
/// where its workers reach the coordinator (the operator's coordinator Service, then
/// `/grids/NAMESPACE/NAME`).
pub struct Inputs<'a> {
    pub dedicated: &'a [Dedicated],
    pub coordinator: &'a str,
}

/// The coordinator URL of a grid's workers, under the operator's coordinator base URL.
pub fn coordinator_url(base: &str, grid: &MeniscusGrid) -> String {
    format!(
        "{}/grids/{}/{}",
        base.trim_end_matches('/'),
        grid.metadata.namespace.as_deref().unwrap_or("default"),
        grid_name(grid)
    )
}

/// The `meniscus worker` arguments of a component.
fn args(grid: &MeniscusGrid, component: Component, coordinator: &str) -> Vec<String> {
    // Without normalizers of their own, correlators normalize what they receive.
    let personas = match component {
        Component::Correlator if grid.spec.personas.normalizer.replicas.max == 0 => {
            "correlator,normalizer"
        }
        component => component.as_str(),
    };
    let mut args: Vec<String> = vec![
        "worker".into(),
        "--persona".into(),
        personas.into(),
        "--listen".into(),
        format!("0.0.0.0:{GRID_PORT}"),
        "--data-dir".into(),
        DATA_DIR.into(),
        "--pairing-secret-file".into(),
        format!("{SECRETS_DIR}/pairing-secret"),
        "--coordinator".into(),
        coordinator_url(coordinator, grid),
        // Kubernetes expands $(POD_IP) and $(POD_NAME) from the env below: workers link pod
        // to pod, and the pod's name tells the operator a storage worker's ordinal.
        "--advertise".into(),
        format!("$(POD_IP):{GRID_PORT}"),
        "--name".into(),
        "$(POD_NAME)".into(),
        "--config".into(),
        format!("{CONFIG_DIR}/meniscus.yaml"),
    ];
    if matches!(component, Component::Correlator | Component::Normalizer) {
        let (spool, _) = grid.spec.personas.volume(component).unwrap_or_default();
        // A tenth of the volume stays free for the spool's own bookkeeping and compaction.
        let quota = crate::quantity::bytes(&spool).unwrap_or(1 << 30) / 10 * 9;
        args.extend([
            "--spool-quota-bytes".into(),
            quota.to_string(),
            "--drain-seconds".into(),
            DRAIN_SECONDS.to_string(),
        ]);
    }
    args
}

/// Container ports of a component: the grid port, and the listeners for correlators and
/// the HTTP port for the tenant API.
fn ports(grid: &MeniscusGrid, component: Component, dedicated: &[Dedicated]) -> Vec<Value> {
    let mut ports = vec![json!({"name": "grid", "containerPort": GRID_PORT})];
    let listeners = &grid.spec.listeners;
    if component == Component::Correlator {
        for port in grid_syslog_ports(grid)
            .into_iter()
            .chain(dedicated_syslog_ports(dedicated))
        {
            ports.push(port.with_protocol(json!({"name": port.name, "containerPort": port.port})));
        }
    }
    if matches!(component, Component::Correlator | Component::TenantApi) {
        ports.push(json!({"name": "http", "containerPort": listeners.http}));
    }
    ports
}

fn resources(grid: &MeniscusGrid, component: Component) -> Resources {
    let personas = &grid.spec.personas;
    match component {
        Component::Broadcaster => personas.broadcaster.resources.clone(),
        Component::Correlator => personas.correlator.resources.clone(),
        Component::Normalizer => personas.normalizer.resources.clone(),
        Component::Storage => personas.storage.resources.clone(),
        Component::TenantApi => personas.tenant_api.resources.clone(),
    }
}

/// The pod template of a component: one container running `meniscus worker`, non-root with
/// a read-only root filesystem, probed on /healthz.
fn pod_template(grid: &MeniscusGrid, component: Component, inputs: &Inputs) -> Value {
    let dedicated = inputs.dedicated;
    let mut volumes = vec![
        json!({"name": "config", "configMap": {"name": config_name(grid)}}),
        json!({"name": "secrets", "secret": {"secretName": secrets_name(grid), "defaultMode": 0o400}}),
    ];
    let mut mounts = vec![
        json!({"name": "config", "mountPath": CONFIG_DIR, "readOnly": true}),
        json!({"name": "secrets", "mountPath": SECRETS_DIR, "readOnly": true}),
        json!({"name": "data", "mountPath": DATA_DIR}),
    ];
    if !component.is_stateful() {
        volumes.push(json!({"name": "data", "emptyDir": {}}));
    }
    if let (Component::Correlator, Some(secret)) = (component, &grid.spec.tls_secret) {
        volumes
            .push(json!({"name": "tls", "secret": {"secretName": secret, "defaultMode": 0o400}}));
        mounts.push(json!({"name": "tls", "mountPath": TLS_DIR, "readOnly": true}));
        if let Some(ca) = &grid.spec.tls_client_ca_secret {
            volumes.push(
                json!({"name": "tls-client-ca", "secret": {"secretName": ca, "defaultMode": 0o400}}),
            );
            mounts.push(
                json!({"name": "tls-client-ca", "mountPath": TLS_CLIENT_CA_DIR, "readOnly": true}),
            );
        }
    }
    let mut container = json!({
        "name": "meniscus",
        "image": grid.spec.image,
        "args": args(grid, component, inputs.coordinator),
        "env": [
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "RUST_LOG", "value": "info"},
        ],
        "ports": ports(grid, component, dedicated),
        "volumeMounts": mounts,
        "resources": resources(grid, component),
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "grid"}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "grid"}, "periodSeconds": 10, "failureThreshold": 6},
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]},
        },
    });
    if let (Component::Storage, Some(archive)) = (component, &grid.spec.archive) {
        if let Some(secret) = &archive.credentials_secret {
            container["envFrom"] = json!([{"secretRef": {"name": secret}}]);
        }
    }
    // Workers read their configuration at start: a changed one rolls the pods. Only
    // correlators listen, so a tenant's port rolls only them.
    let config = if component == Component::Correlator {
        config(grid, dedicated)
    } else {
        config(grid, &[])
    };
    let config_digest = crate::apply::digest(&config.data).expect("a ConfigMap serializes");
    json!({
        "metadata": {
            "labels": selector(grid, component),
            "annotations": {"meniscus.io/config-digest": config_digest},
        },
        "spec": {
            "containers": [container],
            "volumes": volumes,
            // Volumes are written by the container's group.
            "securityContext": {"fsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "terminationGracePeriodSeconds": DRAIN_SECONDS + 15,
            "enableServiceLinks": false,
        },
    })
}

/// The Deployment (broadcaster, tenant API) of a component with `replicas`.
pub fn deployment(
    grid: &MeniscusGrid,
    component: Component,
    replicas: i32,
    inputs: &Inputs,
) -> Deployment {
    let spec = json!({
        "replicas": replicas,
        "selector": {"matchLabels": selector(grid, component)},
        "template": pod_template(grid, component, inputs),
    });
    Deployment {
        metadata: meta(grid, component_name(grid, component), Some(component)),
        spec: Some(serde_json::from_value(spec).expect("a Deployment spec")),
        ..Deployment::default()
    }
}

/// The StatefulSet of a component that holds data, with a volume claim per replica.
pub fn stateful_set(
    grid: &MeniscusGrid,
    component: Component,
    replicas: i32,
    inputs: &Inputs,
) -> StatefulSet {
    let (size, class) = grid.spec.personas.volume(component).unwrap_or_default();
    let mut claim = json!({
        "metadata": {"name": "data"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": size}},
        },
    });
    if let Some(class) = class {
        claim["spec"]["storageClassName"] = json!(class);
    }
    // A storage worker is removed by a scale-down only once it has handed every tenant off
    // (see `scaling`), so its volume holds nothing anyone needs, and deleting it keeps a
    // later worker of the same ordinal from starting on stale (perhaps purged) data. A
    // spool's volume stays: records a worker could not send yet are sent when it returns.
    let when_scaled = if component == Component::Storage {
        "Delete"
    } else {
        "Retain"
    };
    let spec = json!({
        "replicas": replicas,
        "serviceName": component_name(grid, component),
        "selector": {"matchLabels": selector(grid, component)},
        "template": pod_template(grid, component, inputs),
        "volumeClaimTemplates": [claim],
        // Workers pair on their own; none waits for another to start.
        "podManagementPolicy": "Parallel",
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": when_scaled},
    });
    StatefulSet {
        metadata: meta(grid, component_name(grid, component), Some(component)),
        spec: Some(serde_json::from_value(spec).expect("a StatefulSet spec")),
        ..StatefulSet::default()
    }
}

/// A stateful component's own Service, headless: its workers are reached pod by pod, and
/// their StatefulSet's pods get stable names under it.
pub fn component_service(grid: &MeniscusGrid, component: Component) -> Service {
    let spec = json!({
        "selector": selector(grid, component),
        "ports": [{"name": "grid", "port": GRID_PORT, "targetPort": "grid"}],
        "clusterIP": "None",
        // Peers must find a starting worker before it is ready (it pairs first).
        "publishNotReadyAddresses": true,
    });
    Service {
        metadata: meta(grid, component_name(grid, component), Some(component)),
        spec: Some(serde_json::from_value(spec).expect("a Service spec")),
        ..Service::default()
    }
}

/// The ingest Service: the syslog listeners and HTTP of the correlators, of the type and with
/// the annotations the spec asks for.
pub fn ingest_service(grid: &MeniscusGrid, dedicated: &[Dedicated]) -> Service {
    let service_port = |port: SyslogPort| {
        port.with_protocol(json!({"name": port.name, "port": port.port, "targetPort": port.name}))
    };
    let mut ports: Vec<Value> = grid_syslog_ports(grid)
        .into_iter()
        .map(service_port)
        .collect();
    let http = grid.spec.listeners.http;
    ports.push(json!({"name": "http", "port": http, "targetPort": "http"}));
    ports.extend(
        dedicated_syslog_ports(dedicated)
            .into_iter()
            .map(service_port),
    );
    let spec = json!({
        "type": format!("{:?}", grid.spec.ingest_service.type_),
        "selector": selector(grid, Component::Correlator),
        "ports": ports,
    });
    let mut metadata = meta(grid, ingest_service_name(grid), None);
    if !grid.spec.ingest_service.annotations.is_empty() {
        metadata.annotations = Some(grid.spec.ingest_service.annotations.clone());
    }
    Service {
        metadata,
        spec: Some(serde_json::from_value(spec).expect("a Service spec")),
        ..Service::default()
    }
}

/// The Service tenants query: the tenant API persona's HTTP port.
pub fn api_service(grid: &MeniscusGrid) -> Service {
    let spec = json!({
        "selector": selector(grid, Component::TenantApi),
        "ports": [{"name": "http", "port": grid.spec.listeners.http, "targetPort": "http"}],
    });
    Service {
        metadata: meta(grid, api_service_name(grid), None),
        spec: Some(serde_json::from_value(spec).expect("a Service spec")),
        ..Service::default()
    }
}

/// At most one pod of a component down at a time for voluntary disruptions (drains): a
/// storage worker's tenants are then served by their other copies.
pub fn disruption_budget(grid: &MeniscusGrid, component: Component) -> PodDisruptionBudget {
    let spec = json!({
        "maxUnavailable": 1,
        "selector": {"matchLabels": selector(grid, component)},
    });
    PodDisruptionBudget {
        metadata: meta(grid, component_name(grid, component), Some(component)),
        spec: Some(serde_json::from_value(spec).expect("a PodDisruptionBudget spec")),
        ..PodDisruptionBudget::default()
    }
}

/// The ingest Service's name in the cluster's DNS.
pub fn ingest_host(grid: &MeniscusGrid) -> String {
    format!(
        "{}.{}.svc",
        ingest_service_name(grid),
        grid.metadata.namespace.as_deref().unwrap_or("default")
    )
}

/// Where tenants send, as `host:port/protocol` (what goes in rsyslog's or an agent's
/// configuration).
pub fn ingest_endpoints(grid: &MeniscusGrid) -> Vec<String> {
    let host = ingest_host(grid);
    let mut endpoints: Vec<String> = grid_syslog_ports(grid)
        .into_iter()
        .map(|port| format!("{host}:{}/{}", port.port, port.name))
        .collect();
    endpoints.push(format!("http://{host}:{}", grid.spec.listeners.http));
    endpoints
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> MeniscusGrid {
        serde_json::from_value(json!({
            "metadata": {"name": "main", "namespace": "logs", "uid": "u1"},
            "spec": {"image": "m", "listeners": {"syslogTcp": 5514, "syslogUdp": 5515, "http": 8080}}
        }))
        .unwrap()
    }

    fn tenant(name: &str, grid: &str, port: Option<i32>) -> Tenant {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "logs"},
            "spec": {"gridRef": grid, "dedicatedPort": port}
        }))
        .unwrap()
    }

    #[test]
    fn dedicated_ports_go_first_come_by_name_and_never_to_the_grids_own() {
        let tenants = [
            tenant("zeta", "main", Some(6601)),
            tenant("acme", "main", Some(6601)),
            tenant("beta", "main", Some(5515)),
            tenant("gamma", "other", Some(6602)),
            tenant("delta", "main", Some(6603)),
            tenant("eps", "main", None),
        ];
        let granted = dedicated_ports(&grid(), &tenants);
        assert_eq!(
            granted,
            vec![
                Dedicated {
                    tenant: "acme".into(),
                    port: 6601
                },
                Dedicated {
                    tenant: "delta".into(),
                    port: 6603
                },
            ]
        );
        let config = config(&grid(), &granted).data.unwrap()["meniscus.yaml"].clone();
        assert!(
            config.contains("{protocol: tcp, address: \"0.0.0.0:6601\", tenant: acme}"),
            "{config}"
        );
        assert!(
            config.contains("{protocol: udp, address: \"0.0.0.0:6603\", tenant: delta}"),
            "{config}"
        );
        let service = ingest_service(&grid(), &granted);
        let ports: Vec<String> = service
            .spec
            .unwrap()
            .ports
            .unwrap()
            .into_iter()
            .map(|port| port.name.unwrap())
            .collect();
        assert_eq!(
            ports,
            [
                "syslog-tcp",
                "syslog-udp",
                "http",
                "tcp-6601",
                "udp-6601",
                "tcp-6603",
                "udp-6603"
            ]
        );
    }

    #[test]
    fn a_client_ca_makes_the_tls_listener_verify_certificates_it_does_not_require() {
        let mut grid = grid();
        grid.spec.tls_secret = Some("ingest-tls".into());
        grid.spec.listeners.syslog_tls = Some(6514);
        let config = |grid: &MeniscusGrid| config(grid, &[]).data.unwrap()["meniscus.yaml"].clone();
        assert!(!config(&grid).contains("clientCaFile"), "{}", config(&grid));
        grid.spec.tls_client_ca_secret = Some("device-ca".into());
        let yaml = config(&grid);
        assert!(
            yaml.contains("{protocol: tls, address: \"0.0.0.0:6514\", tls: {certFile: /etc/meniscus/tls/tls.crt, keyFile: /etc/meniscus/tls/tls.key, clientCaFile: /etc/meniscus/tls-client-ca/ca.crt, clientCertOptional: true}}"),
            "{yaml}"
        );
        let inputs = Inputs {
            dedicated: &[],
            coordinator: "http://operator:7400",
        };
        let pod = stateful_set(&grid, Component::Correlator, 1, &inputs)
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        let volume = pod
            .volumes
            .unwrap()
            .into_iter()
            .find(|volume| volume.name == "tls-client-ca")
            .expect("the CA Secret is a volume");
        assert_eq!(
            volume.secret.unwrap().secret_name.as_deref(),
            Some("device-ca")
        );
        assert!(pod.containers[0]
            .volume_mounts
            .iter()
            .flatten()
            .any(|mount| mount.mount_path == "/etc/meniscus/tls-client-ca"));
    }

    #[test]
    fn a_changed_configuration_rolls_the_pods() {
        let digest = |dedicated: &[Dedicated]| {
            let inputs = Inputs {
                dedicated,
                coordinator: "http://operator:7400",
            };
            let set = stateful_set(&grid(), Component::Correlator, 1, &inputs);
            set.spec
                .unwrap()
                .template
                .metadata
                .unwrap()
                .annotations
                .unwrap()["meniscus.io/config-digest"]
                .clone()
        };
        let port = Dedicated {
            tenant: "acme".into(),
            port: 6601,
        };
        assert_eq!(digest(&[]), digest(&[]));
        assert_ne!(digest(&[]), digest(&[port]));
    }
}
