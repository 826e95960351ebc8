//! The one accept path every source goes through, whatever its protocol: tenant
//! authentication, ingest limits, durable job ids, counting, and the hand-off to the next
//! stage. A source only turns its bytes into events; everything a tenant is promised happens
//! here, once.
//!
//! Errors are kinds ([`AcceptError`]), not HTTP statuses: each source answers in its own
//! protocol (the HTTP layer maps them to status codes, syslog readers slow down or close).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use meniscus_grid::event::new_ulid;
use meniscus_grid::tenant::{AuthError, Tenant, TenantRegistry};
use meniscus_grid::Transport;
use meniscus_record::stage::BoxFuture;
use meniscus_record::{Ack, Batch, Stage, StageError, WhenFull};

use crate::telemetry::IngestMetrics;

/// What to do when a tenant is over its ingest limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenLimited {
    /// Wait until the batch fits (a stream: TCP flow control slows the sender).
    Pace,
    /// Refuse the batch whole (a request: the client retries after the time given).
    Refuse,
}

/// How one source hands a batch in.
#[derive(Clone, Copy, Debug)]
pub struct Admission {
    pub transport: Transport,
    /// Raw bytes the batch came from, for `meniscus_ingest_received_bytes_total`.
    pub bytes: u64,
    /// `None`: the transport is not limited (a UDP datagram cannot be slowed, only dropped).
    pub when_limited: Option<WhenLimited>,
    pub when_full: WhenFull,
    /// Stamp a job id on a batch with durable events (the source can report it).
    pub job_ids: bool,
}

/// Why a batch was not accepted. Nothing of it was stored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AcceptError {
    #[error("the request holds no log message")]
    Empty,
    #[error(
        "tenant {tenant} is over its ingest limit of {events_per_second} events/s (burst {burst}); nothing from this request was stored, retry after {} s",
        retry_after.as_secs().max(1)
    )]
    RateLimited {
        tenant: String,
        events_per_second: u64,
        burst: u64,
        retry_after: Duration,
    },
    #[error(transparent)]
    Stage(#[from] StageError),
}

/// A batch taken by the accept path.
pub struct Admitted {
    /// The job id stamped on the batch (durable events, when the source asked for one).
    pub job_id: Option<String>,
    /// Resolves when the next stage acknowledges the batch (after fsync when durable).
    pub ack: BoxFuture<Result<Ack, StageError>>,
}

pub struct Accept {
    /// Swapped whole when the tenants change (a config reload): readers hold the `Arc` they
    /// got for one read or request, so a change never shows half-made.
    registry: parking_lot::RwLock<Arc<TenantRegistry>>,
    next: Arc<dyn Stage>,
    pub metrics: Arc<IngestMetrics>,
}

impl Accept {
    pub fn new(
        registry: TenantRegistry,
        next: Arc<dyn Stage>,
        metrics: Arc<IngestMetrics>,
    ) -> Accept {
        Accept {
            registry: parking_lot::RwLock::new(Arc::new(registry)),
            next,
            metrics,
        }
    }

    /// The tenants as they are now; hold it for one read or request.
    pub fn registry(&self) -> Arc<TenantRegistry> {
        self.registry.read().clone()
    }

    /// Makes `registry` the tenants from now on: every later read, request and connection
    /// check (tokens, producers, limits, retention) sees it. Rate limits start afresh.
    pub fn replace_registry(&self, registry: TenantRegistry) {
        *self.registry.write() = Arc::new(registry);
    }

    /// Authenticates a tenant's token; a failure is counted by transport and reason.
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
            .inspect_err(|error| self.count_auth_failure(transport, error.reason()))
    }

    pub fn count_auth_failure(&self, transport: Transport, reason: &str) {
        self.metrics
            .auth_failures
            .inc(&[transport.as_str(), reason]);
    }

    /// Takes events of authenticated tenants: charges their ingest limits (pacing or
    /// refusing), stamps a job id when asked, counts them and hands them on. Returns once the
    /// next stage has the batch; the acknowledgement comes through [`Admitted::ack`].
    pub async fn admit(
        &self,
        mut batch: Batch,
        admission: Admission,
    ) -> Result<Admitted, AcceptError> {
        if batch.is_empty() {
            return Err(AcceptError::Empty);
        }
        let transport = admission.transport;
        let registry = self.registry();
        match admission.when_limited {
            Some(WhenLimited::Refuse) => self.refuse_over_limit(&registry, &batch, transport)?,
            Some(WhenLimited::Pace) => {
                let pause = self.pace(&registry, &batch, transport);
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
            None => {}
        }
        let job_id = if admission.job_ids {
            assign_job(&mut batch)?
        } else {
            None
        };
        self.count_received(&batch, transport, admission.bytes);
        // Refunded if the batch is not taken: it did not count against the limit.
        let refund = if admission.when_limited == Some(WhenLimited::Refuse) {
            charged(&registry, &batch)
        } else {
            Vec::new()
        };
        let ack = self.next.clone().hand_on(batch, admission.when_full);
        let ack: BoxFuture<Result<Ack, StageError>> = if refund.is_empty() {
            ack
        } else {
            Box::pin(async move {
                let outcome = ack.await;
                if outcome.is_err() {
                    for (tenant, count) in refund {
                        if let Some(limit) = &tenant.ingest_limit {
                            limit.refund(count);
                        }
                    }
                }
                outcome
            })
        };
        Ok(Admitted { job_id, ack })
    }

    /// Counts accepted events per tenant (a batch holds one group per tenant).
    fn count_received(&self, batch: &Batch, transport: Transport, bytes: u64) {
        for (index, (tenant, rows)) in tenant_rows(batch).enumerate() {
            self.metrics
                .received_events
                .add(&[tenant, transport.as_str()], rows);
            if index == 0 {
                self.metrics
                    .received_bytes
                    .add(&[tenant, transport.as_str()], bytes);
            }
        }
    }

    /// Charges a batch to its tenants' limits; returns how long the stream should pause to
    /// stay within them (zero when every tenant is within its limit).
    fn pace(&self, registry: &TenantRegistry, batch: &Batch, transport: Transport) -> Duration {
        let now = Instant::now();
        let mut pause = Duration::ZERO;
        for (tenant_id, rows) in tenant_rows(batch) {
            if let Some(limit) = registry
                .get(tenant_id)
                .and_then(|tenant| tenant.ingest_limit.as_ref())
            {
                let wait = limit.take(rows, now);
                if !wait.is_zero() {
                    self.metrics
                        .rate_limited_events
                        .add(&[tenant_id, transport.as_str()], rows);
                    pause = pause.max(wait);
                }
            }
        }
        pause
    }

    /// Charges a request to its tenants' limits, or refuses it whole when one is over.
    fn refuse_over_limit(
        &self,
        registry: &TenantRegistry,
        batch: &Batch,
        transport: Transport,
    ) -> Result<(), AcceptError> {
        let now = Instant::now();
        let mut charged: Vec<(&Arc<Tenant>, u64)> = Vec::new();
        for (tenant_id, rows) in tenant_rows(batch) {
            let Some(tenant) = registry.get(tenant_id) else {
                continue;
            };
            let Some(limit) = &tenant.ingest_limit else {
                continue;
            };
            if let Err(wait) = limit.try_take(rows, now) {
                // Undo what this request already took from other tenants.
                for (charged_tenant, count) in charged {
                    if let Some(limit) = &charged_tenant.ingest_limit {
                        limit.refund(count);
                    }
                }
                self.metrics
                    .rate_limited_events
                    .add(&[tenant_id, transport.as_str()], batch.rows() as u64);
                return Err(AcceptError::RateLimited {
                    tenant: tenant_id.to_string(),
                    events_per_second: limit.events_per_second(),
                    burst: limit.burst(),
                    retry_after: Duration::from_secs_f64(wait.as_secs_f64().ceil().max(1.0)),
                });
            }
            charged.push((tenant, rows));
        }
        Ok(())
    }
}

/// The limited tenants of a batch and how many events each was charged.
fn charged(registry: &TenantRegistry, batch: &Batch) -> Vec<(Arc<Tenant>, u64)> {
    tenant_rows(batch)
        .filter_map(|(tenant_id, rows)| {
            registry
                .get(tenant_id)
                .filter(|tenant| tenant.ingest_limit.is_some())
                .map(|tenant| (tenant.clone(), rows))
        })
        .collect()
}

/// Stamps one job id on every event of a batch with a durable event.
fn assign_job(batch: &mut Batch) -> Result<Option<String>, AcceptError> {
    if !batch.is_durable() {
        return Ok(None);
    }
    let job_id = new_ulid();
    for group in batch.tenants.iter_mut() {
        *group = group.with_job_id(&job_id).map_err(|error| {
            AcceptError::Stage(StageError::refused(format!(
                "cannot stamp the job id: {error}"
            )))
        })?;
    }
    Ok(Some(job_id))
}

/// Each tenant of a batch with its number of events.
fn tenant_rows(batch: &Batch) -> impl Iterator<Item = (&str, u64)> {
    batch
        .tenants
        .iter()
        .map(|group| (group.tenant.as_str(), group.batch.num_rows() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use meniscus_grid::{Correlation, Event, Producer};
    use meniscus_metrics::Registry;
    use meniscus_record::columnar::batch_to_events;
    use parking_lot::Mutex;

    /// A next stage that keeps what it is handed, or refuses everything.
    struct Keep {
        batches: Mutex<Vec<Batch>>,
        refuse: bool,
    }

    impl Stage for Keep {
        fn hand_on(
            self: Arc<Self>,
            batch: Batch,
            _when_full: WhenFull,
        ) -> BoxFuture<Result<Ack, StageError>> {
            let events = batch.rows() as u64;
            let refuse = self.refuse;
            if !refuse {
                self.batches.lock().push(batch);
            }
            Box::pin(async move {
                if refuse {
                    Err(StageError::Full)
                } else {
                    Ok(Ack {
                        events,
                        synced: true,
                    })
                }
            })
        }
    }

    fn event(tenant: &str, durable: bool) -> Event {
        let mut producer = Producer::plain("default");
        producer.durable = durable;
        let correlation = Correlation::new(tenant, &producer, Transport::Http, Utc::now());
        Event::from_message("m".into(), correlation)
    }

    fn batch(events: &[Event]) -> Batch {
        Batch::from_events(events).unwrap()
    }

    fn accept_with(refuse: bool) -> (Accept, Arc<Keep>) {
        let specs = serde_yaml::from_str(
            "- {id: acme, tokens: [{value: t}], limits: {eventsPerSecond: 1, burstEvents: 3}}\n- {id: free, tokens: [{value: u}]}",
        )
        .unwrap();
        let registry = TenantRegistry::from_specs(specs).unwrap();
        let next = Arc::new(Keep {
            batches: Mutex::new(Vec::new()),
            refuse,
        });
        let metrics = Arc::new(IngestMetrics::register(&Registry::new()));
        (Accept::new(registry, next.clone(), metrics), next)
    }

    fn http() -> Admission {
        Admission {
            transport: Transport::Http,
            bytes: 10,
            when_limited: Some(WhenLimited::Refuse),
            when_full: WhenFull::Refuse,
            job_ids: true,
        }
    }

    #[tokio::test]
    async fn durable_batches_get_one_job_id_and_are_counted() {
        let (accept, next) = accept_with(false);
        let admitted = accept
            .admit(batch(&[event("free", true), event("free", false)]), http())
            .await
            .unwrap();
        let job_id = admitted.job_id.clone().unwrap();
        assert_eq!(admitted.ack.await.unwrap().events, 2);
        let kept = batch_to_events(&next.batches.lock()[0].tenants[0].batch, "free");
        assert!(kept
            .iter()
            .all(|event| event.meniscus.job_id.as_deref() == Some(job_id.as_str())));
        assert_eq!(accept.metrics.received_events.get(&["free", "http"]), 2);
        let none = accept
            .admit(batch(&[event("free", false)]), http())
            .await
            .unwrap();
        assert!(none.job_id.is_none());
        assert!(matches!(
            accept.admit(Batch::default(), http()).await,
            Err(AcceptError::Empty)
        ));
    }

    #[tokio::test]
    async fn over_the_limit_a_request_is_refused_whole_and_a_refused_one_is_refunded() {
        let (accept, next) = accept_with(false);
        let events =
            |count: usize| batch(&(0..count).map(|_| event("acme", false)).collect::<Vec<_>>());
        // The burst (3) is taken; the next request is refused whole, with the wait.
        accept
            .admit(events(3), http())
            .await
            .unwrap()
            .ack
            .await
            .unwrap();
        let error = accept.admit(events(2), http()).await.err().unwrap();
        assert!(
            matches!(&error, AcceptError::RateLimited { tenant, burst: 3, retry_after, .. } if tenant == "acme" && retry_after.as_secs() >= 1),
            "{error:?}"
        );
        assert!(error.to_string().contains("1 events/s"), "{error}");
        assert_eq!(
            next.batches.lock().len(),
            1,
            "nothing of the refused request went on"
        );
        assert_eq!(accept.metrics.rate_limited_events.get(&["acme", "http"]), 2);
        // Another tenant is not slowed by acme's limit.
        accept
            .admit(batch(&[event("free", false)]), http())
            .await
            .unwrap();

        // A batch the next stage refuses does not use up the tenant's limit.
        let (accept, _) = accept_with(true);
        for _ in 0..3 {
            let admitted = accept.admit(events(3), http()).await.unwrap();
            assert_eq!(admitted.ack.await, Err(StageError::Full));
        }
    }
}
