//! Events not yet in Parquet: the Arrow batches they arrived in, grouped by tenant and hourly
//! window, and the event ids seen, which storage dedupes on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;

/// The key storage dedupes on: an `event_id` ULID as its 128 bits. An id that is not a ULID
/// (none of ours; a replay of foreign data) is hashed instead, so it still dedupes.
pub fn event_key(event_id: &str) -> u128 {
    match ulid::Ulid::from_string(event_id) {
        Ok(ulid) => ulid.0,
        Err(_) => {
            use std::hash::{BuildHasher, Hasher};
            let hash = |seed: u64| {
                let mut hasher = foldhash::quality::FixedState::with_seed(seed).build_hasher();
                hasher.write(event_id.as_bytes());
                hasher.finish() as u128
            };
            (hash(1) << 64) | hash(2)
        }
    }
}

/// The event ids of one memtable, with the lowest and highest of them. Ids are ULIDs, which
/// grow with time, so a fresh id lies above every id of an older memtable and is ruled out
/// there without probing its set (a cache miss per event at a million ids).
#[derive(Default)]
pub struct IdSet {
    ids: foldhash::HashSet<u128>,
    lowest: u128,
    highest: u128,
}

impl IdSet {
    pub fn contains(&self, key: &u128) -> bool {
        (self.lowest..=self.highest).contains(key) && self.ids.contains(key)
    }

    /// Adds the id; false if it was already there.
    pub fn insert(&mut self, key: u128) -> bool {
        if self.ids.is_empty() {
            (self.lowest, self.highest) = (key, key);
        } else {
            self.lowest = self.lowest.min(key);
            self.highest = self.highest.max(key);
        }
        self.ids.insert(key)
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Events not yet in Parquet, as the Arrow batches they arrived in.
#[derive(Default)]
pub struct MemTable {
    pub partitions: HashMap<(String, i64), Vec<RecordBatch>>,
    pub event_ids: IdSet,
    pub events: usize,
    pub bytes: usize,
    pub started: Option<Instant>,
}

/// A memtable being written to Parquet: still queryable until its files are live.
pub struct Frozen {
    pub partitions: Vec<((String, i64), Vec<RecordBatch>)>,
    pub event_ids: Arc<IdSet>,
    /// The WAL segment that held the last of these events.
    pub wal_seq: u64,
}

impl Frozen {
    pub fn events(&self) -> usize {
        self.event_ids.len()
    }
}

/// How much one insert added.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Inserted {
    /// New events per tenant, in order of first appearance.
    pub per_tenant: Vec<(String, u64)>,
    /// Events already held (redelivered), skipped.
    pub duplicates: u64,
    /// Durable jobs with new events: tenant, job id, events.
    pub jobs: Vec<(String, String, u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_sets_rule_out_ids_outside_their_range_and_find_those_inside() {
        let mut ids = IdSet::default();
        assert!(!ids.contains(&0));
        for key in [500u128, 100, 300] {
            assert!(ids.insert(key));
        }
        assert!(!ids.insert(300), "a second insert reports the duplicate");
        assert_eq!((ids.lowest, ids.highest, ids.len()), (100, 500, 3));
        assert!(ids.contains(&100) && ids.contains(&500) && ids.contains(&300));
        assert!(!ids.contains(&99) && !ids.contains(&501) && !ids.contains(&200));
    }
}
