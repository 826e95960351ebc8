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

    /// Charges a batch to its tenants' ingest limits and returns how long the stream should
    /// pause to stay within them (zero when every tenant is within its limit).
    pub fn pace(
        &self,
        registry: &TenantRegistry,
        events: &[meniscus_grid::Event],
        transport: Transport,
    ) -> std::time::Duration {
        let now = std::time::Instant::now();
        let mut pause = std::time::Duration::ZERO;
        let mut first = 0;
        while first < events.len() {
            let tenant_id = &events[first].meniscus.tenant;
            let run = events[first..]
                .iter()
                .take_while(|event| &event.meniscus.tenant == tenant_id)
                .count();
            if let Some(limit) = registry
                .get(tenant_id)
                .and_then(|tenant| tenant.ingest_limit.as_ref())
            {
                let wait = limit.take(run as u64, now);
                if !wait.is_zero() {
                    self.metrics
                        .rate_limited
                        .add(&[tenant_id, transport.as_str()], run as u64);
                    pause = pause.max(wait);
                }
            }
            first += run;
        }
        pause
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
