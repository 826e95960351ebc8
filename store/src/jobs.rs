//! Durable jobs: which job ids have been stored, so `GET .../jobs/{id}` answers quickly.
//!
//! The index remembers recent jobs in memory (bounded, oldest forgotten first). A job it does
//! not remember is looked up in the store itself (`job_id` column, with a Parquet bloom
//! filter), so answers stay right after a restart or for old jobs.

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;

const REMEMBERED_JOBS: usize = 1_000_000;

#[derive(Default)]
pub struct JobIndex {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    stored: HashMap<String, (String, u64)>,
    order: VecDeque<String>,
}

impl JobIndex {
    pub fn record_stored(&self, tenant: &str, job_id: &str, events: u64) {
        let mut inner = self.inner.lock();
        if let Some((_, stored)) = inner.stored.get_mut(job_id) {
            *stored += events;
            return;
        }
        inner
            .stored
            .insert(job_id.to_string(), (tenant.to_string(), events));
        inner.order.push_back(job_id.to_string());
        if inner.order.len() > REMEMBERED_JOBS {
            if let Some(oldest) = inner.order.pop_front() {
                inner.stored.remove(&oldest);
            }
        }
    }

    /// Events stored for the job, if this tenant owns it and it is remembered.
    pub fn stored_events(&self, tenant: &str, job_id: &str) -> Option<u64> {
        let inner = self.inner.lock();
        inner
            .stored
            .get(job_id)
            .filter(|(owner, _)| owner == tenant)
            .map(|(_, events)| *events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_is_only_visible_to_its_tenant() {
        let index = JobIndex::default();
        index.record_stored("a", "J1", 1);
        index.record_stored("a", "J1", 1);
        assert_eq!(index.stored_events("a", "J1"), Some(2));
        assert_eq!(index.stored_events("b", "J1"), None);
        assert_eq!(index.stored_events("a", "J2"), None);
    }
}
