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
        for (index, (tenant, run)) in tenant_runs(events).enumerate() {
            self.metrics
                .received_events
                .add(&[tenant, transport.as_str()], run as u64);
            if index == 0 {
                self.metrics
                    .received_bytes
                    .add(&[tenant, transport.as_str()], bytes);
            }
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
        for (tenant_id, run) in tenant_runs(events) {
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
        }
        pause
    }

    /// Authenticates and counts a failure by reason.
    pub fn authenticate<'r>(
        &self,
        registry: &'r TenantRegistry,
        tenant: &str,
        token: Option<&str>,
        transport: Transport,
        now: DateTime<Utc>,
    ) -> Result<&'r Arc<Tenant>, AuthError> {
        registry
            .authenticate(tenant, token, now)
            .inspect_err(|error| {
                self.metrics
                    .auth_failures
                    .inc(&[transport.as_str(), error.reason()]);
            })
    }
}

/// Consecutive events of one tenant, as (tenant, how many). Events of one read nearly always
/// share a tenant, so per-tenant work is done per run, not per event.
fn tenant_runs(events: &[meniscus_grid::Event]) -> impl Iterator<Item = (&str, usize)> {
    let mut rest = events;
    std::iter::from_fn(move || {
        let tenant = rest.first()?.meniscus.tenant.as_str();
        let run = rest
            .iter()
            .take_while(|event| event.meniscus.tenant == tenant)
            .count();
        rest = &rest[run..];
        Some((tenant, run))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use meniscus_grid::{Correlation, Event, Producer};

    #[test]
    fn runs_follow_tenant_changes_in_order() {
        let event = |tenant: &str| {
            let correlation = Correlation::new(
                tenant,
                &Producer::plain("default"),
                Transport::Tcp,
                Utc::now(),
            );
            Event::from_message("m".into(), correlation)
        };
        let events = ["a", "a", "b", "a", "a", "a"].map(event);
        let runs: Vec<(&str, usize)> = tenant_runs(&events).collect();
        assert_eq!(runs, [("a", 2), ("b", 1), ("a", 3)]);
        assert_eq!(tenant_runs(&[]).count(), 0);
    }
}
