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

use crate::pipeline::Stage;
use crate::telemetry::Metrics;

/// What every ingest path shares: the tenants, the next stage and the counters.
pub struct Correlator {
    registry: Arc<TenantRegistry>,
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
            registry: Arc::new(registry),
            next,
            metrics,
            max_message_bytes,
            max_http_body_bytes,
        })
    }

    pub fn registry(&self) -> Arc<TenantRegistry> {
        self.registry.clone()
    }

    /// Counts accepted events per tenant. Events of one read nearly always share a tenant, so
    /// runs are counted, not single events.
    pub fn count_received(
        &self,
        events: &[meniscus_grid::Event],
        transport: Transport,
        bytes: u64,
    ) {
        let mut first = 0;
        while first < events.len() {
            let tenant = &events[first].meniscus.tenant;
            let run = events[first..]
                .iter()
                .take_while(|event| &event.meniscus.tenant == tenant)
                .count();
            self.metrics
                .received_events
                .add(&[tenant, transport.as_str()], run as u64);
            if first == 0 {
                self.metrics
                    .received_bytes
                    .add(&[tenant, transport.as_str()], bytes);
            }
            first += run;
        }
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
