//! The jobs a correlator has acknowledged (a durable publish answered 202): what makes the
//! `accepted` job status observable in a grid, between that 202 and a storage worker having
//! the events (`stored`).
//!
//! The tenant-API persona asks storage workers and correlators at once: a storage worker
//! that has the job's events wins (`stored`, `archived`); otherwise a correlator that
//! acknowledged it says `accepted`. So a correlator need not know when a job is stored: it
//! keeps every job it acknowledged for [`KEEP`], at most [`MAX_JOBS`] of them (the oldest go
//! first), which covers a storage outage of that long. Kept in memory only: after a
//! correlator restarts, a job still in its spool is unknown until it is stored.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::http::error::ApiError;
use crate::http::{authorize, AppState};

/// How long an acknowledged job is remembered.
pub const KEEP: Duration = Duration::from_secs(3600);
/// At most this many jobs are remembered (about 100 bytes each).
pub const MAX_JOBS: usize = 200_000;

#[derive(Default)]
pub struct AcceptedJobs {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// (tenant, job id) → events.
    jobs: HashMap<(String, String), u64>,
    /// Oldest first, for expiry.
    order: VecDeque<(Instant, (String, String))>,
}

impl AcceptedJobs {
    /// `events` more events of `job` were acknowledged.
    pub fn accepted(&self, tenant: &str, job: &str, events: u64) {
        self.accepted_at(tenant, job, events, Instant::now());
    }

    fn accepted_at(&self, tenant: &str, job: &str, events: u64, now: Instant) {
        let mut inner = self.inner.lock();
        let key = (tenant.to_string(), job.to_string());
        match inner.jobs.get_mut(&key) {
            Some(count) => *count += events,
            None => {
                inner.jobs.insert(key.clone(), events);
                inner.order.push_back((now, key));
            }
        }
        inner.expire(now);
    }

    /// The events of `job` this correlator acknowledged, if it remembers the job.
    pub fn events(&self, tenant: &str, job: &str) -> Option<u64> {
        self.events_at(tenant, job, Instant::now())
    }

    fn events_at(&self, tenant: &str, job: &str, now: Instant) -> Option<u64> {
        let mut inner = self.inner.lock();
        inner.expire(now);
        inner
            .jobs
            .get(&(tenant.to_string(), job.to_string()))
            .copied()
    }
}

/// `GET /v1/tenant/{tenant_id}/jobs/{job_id}` on a correlator's grid address, for the
/// tenant-API persona (with the tenant's own token): `accepted` with the events this
/// correlator acknowledged, or 404.
pub fn router(state: Arc<AppState>, jobs: Arc<AcceptedJobs>) -> Router {
    Router::new()
        .route("/v1/tenant/{tenant_id}/jobs/{job_id}", get(job_status))
        .with_state((state, jobs))
}

async fn job_status(
    State((state, jobs)): State<(Arc<AppState>, Arc<AcceptedJobs>)>,
    Path((tenant_id, job_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let tenant = authorize(&state, &tenant_id, &headers)?;
    match jobs.events(tenant.id.as_str(), &job_id) {
        Some(events) => Ok(Json(
            json!({ "job_id": job_id, "status": "accepted", "events": events }),
        )),
        None => Err(ApiError::not_found(
            "unknown_job",
            format!("this correlator acknowledged no job {job_id:?} for tenant {tenant_id}"),
        )),
    }
}

impl Inner {
    fn expire(&mut self, now: Instant) {
        while let Some((at, _)) = self.order.front() {
            let too_old = now.saturating_duration_since(*at) > KEEP;
            if !too_old && self.order.len() <= MAX_JOBS {
                break;
            }
            if let Some((_, key)) = self.order.pop_front() {
                self.jobs.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_remembered_per_tenant_summed_and_forgotten_after_an_hour() {
        let jobs = AcceptedJobs::default();
        let start = Instant::now();
        jobs.accepted_at("acme", "J1", 3, start);
        jobs.accepted_at("acme", "J1", 2, start);
        assert_eq!(jobs.events_at("acme", "J1", start), Some(5));
        assert_eq!(
            jobs.events_at("other", "J1", start),
            None,
            "another tenant's job"
        );
        assert_eq!(jobs.events_at("acme", "J2", start), None);
        let later = start + KEEP + Duration::from_secs(1);
        assert_eq!(jobs.events_at("acme", "J1", later), None);
    }

    #[test]
    fn the_oldest_jobs_go_first_past_the_cap() {
        let jobs = AcceptedJobs::default();
        let now = Instant::now();
        for n in 0..MAX_JOBS + 10 {
            jobs.accepted_at("acme", &n.to_string(), 1, now);
        }
        assert_eq!(jobs.events_at("acme", "9", now), None);
        assert_eq!(jobs.events_at("acme", "10", now), Some(1));
        assert_eq!(jobs.inner.lock().jobs.len(), MAX_JOBS);
    }
}
