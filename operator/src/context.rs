//! What every reconcile shares: the API client, the Event recorder and the operator's
//! metrics.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::runtime::events::{Recorder, Reporter};
use kube::Client;
use meniscus_metrics::{Counter, Family, Registry};
use parking_lot::Mutex;

/// The chart's coordinator Service for release `meniscus` in `meniscus-system`.
pub const DEFAULT_COORDINATOR_BASE: &str =
    "http://meniscus-operator-coordinator.meniscus-system.svc:7400";

pub struct Context {
    pub client: Client,
    /// The grids' coordinators this replica serves.
    pub coordinators: Arc<crate::coordinator_host::Coordinators>,
    /// Where workers reach those coordinators (the operator's coordinator Service);
    /// each grid's are under `/grids/NAMESPACE/NAME`.
    pub coordinator_base: String,
    pub recorder: Recorder,
    pub metrics: Metrics,
    /// Failures in a row per object (`Kind/namespace/name`), for the retry backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// The autoscaler's recent recommendations per grid and persona.
    pub histories: Mutex<HashMap<String, crate::autoscaler::History>>,
    /// The last reconcile errors (at most [`KEPT_ERRORS`]), for tests and debugging: a
    /// forbidden call reads differently from a passing conflict.
    pub recent_errors: Mutex<Vec<String>>,
    /// The autoscaler's clock starts here.
    pub started: Instant,
    /// How often a grid that may scale is looked at again.
    pub scale_interval: Duration,
    /// How often the Tenants' counts (events, bytes, last event) are brought up to date; a
    /// Tenant whose counts did not move costs no write.
    pub usage_interval: Duration,
    /// The Tenant statuses this replica wrote last (see [`crate::apply::StatusMemo`]).
    pub tenant_statuses: crate::apply::StatusMemo<crate::crd::tenant::TenantStatus>,
    /// The grid statuses this replica wrote last.
    pub grid_statuses: crate::apply::StatusMemo<crate::crd::grid::MeniscusGridStatus>,
}

/// How many reconcile errors [`Context::recent_errors`] keeps.
pub const KEPT_ERRORS: usize = 64;

impl Context {
    /// `instance` tells this operator replica's Events apart (its pod name).
    pub fn new(client: Client, registry: &Registry, instance: Option<String>) -> Context {
        let reporter = Reporter {
            controller: crate::grid::children::MANAGER.into(),
            instance,
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            coordinators: Arc::default(),
            coordinator_base: DEFAULT_COORDINATOR_BASE.to_string(),
            metrics: Metrics::register(registry),
            failures: Mutex::default(),
            histories: Mutex::default(),
            recent_errors: Mutex::default(),
            started: Instant::now(),
            scale_interval: Duration::from_secs(15),
            usage_interval: Duration::from_secs(30),
            tenant_statuses: Default::default(),
            grid_statuses: Default::default(),
        }
    }

    /// The API of a namespaced kind where the controllers watch: one namespace, or all.
    pub fn watched<K>(&self, namespace: Option<&str>) -> kube::Api<K>
    where
        K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        match namespace {
            Some(namespace) => kube::Api::namespaced(self.client.clone(), namespace),
            None => kube::Api::all(self.client.clone()),
        }
    }

    /// Counts one more failure of `key` in a row; how many there have been.
    pub fn failures(&self, key: &str) -> u32 {
        let mut failures = self.failures.lock();
        let count = failures.entry(key.to_string()).or_insert(0);
        *count += 1;
        *count
    }

    /// `key` reconciled: its next failure starts the backoff over.
    pub fn succeeded(&self, key: &str) {
        self.failures.lock().remove(key);
    }
}

pub struct Metrics {
    /// Creates and applies of children, by kind: flat at rest (see `apply`).
    pub writes: Family<Counter>,
    pub reconciles: Family<Counter>,
    pub reconcile_errors: Family<Counter>,
}

impl Metrics {
    fn register(registry: &Registry) -> Metrics {
        Metrics {
            writes: registry.counters(
                "meniscus_operator_api_writes_total",
                "Objects the operator created or applied, by kind (status writes included).",
                &["kind"],
            ),
            reconciles: registry.counters(
                "meniscus_operator_reconciles_total",
                "Reconciles run, by resource kind.",
                &["kind"],
            ),
            reconcile_errors: registry.counters(
                "meniscus_operator_reconcile_errors_total",
                "Reconciles that failed (retried with backoff), by resource kind.",
                &["kind"],
            ),
        }
    }
}
