//! The correlator persona: takes syslog (TCP, UDP, TLS) and HTTP, identifies and
//! authenticates the tenant, builds CEE events and hands them to the next stage.

pub mod http_publish;
pub mod syslog_event;
pub mod tcp;
pub mod tls;
pub mod udp;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use meniscus_grid::tenant::{AuthError, Tenant, TenantRegistry};
use meniscus_grid::Transport;
use parking_lot::RwLock;

use crate::pipeline::Stage;
use crate::telemetry::Metrics;

/// What every ingest path shares: the tenants, the next stage and the counters.
pub struct Correlator {
    registry: RwLock<Arc<TenantRegistry>>,
    pub next: Arc<dyn Stage>,
    pub metrics: Arc<Metrics>,
    pub max_message_bytes: usize,
    pub max_http_body_bytes: usize,
}

impl Correlator {
    pub fn new(
        registry: TenantRegistry,
        next: Arc<dyn Stage>,
        metrics: Arc<Metrics>,
        max_message_bytes: usize,
        max_http_body_bytes: usize,
    ) -> Arc<Correlator> {
        Arc::new(Correlator {
            registry: RwLock::new(Arc::new(registry)),
            next,
            metrics,
            max_message_bytes,
            max_http_body_bytes,
        })
    }

    pub fn registry(&self) -> Arc<TenantRegistry> {
        self.registry.read().clone()
    }

    /// Authenticates and counts a failure by reason.
    pub fn authenticate(
        &self,
        registry: &TenantRegistry,
        tenant: &str,
        token: Option<&str>,
        transport: Transport,
        now: DateTime<Utc>,
    ) -> Result<Arc<Tenant>, AuthError> {
        registry
            .authenticate(tenant, token, now)
            .cloned()
            .inspect_err(|error| {
                self.metrics
                    .auth_failures
                    .inc(&[transport.as_str(), error.reason()]);
            })
    }
}
