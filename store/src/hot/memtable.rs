//! Events not yet in Parquet: the Arrow batches they arrived in, grouped by tenant and hourly
//! window, and the event ids seen, which storage dedupes on.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;

/// The event ids of one memtable, as sorted runs: one per inserted batch.
///
/// A hash set of a million ids made every insert a random access into 32 MB (a cache miss
/// per event: 7 % of the server's CPU in a bench/e2e profile, pre-sized or not). Ids are ULIDs
/// stamped with the receive time, so the ids of one batch (one read, one request) are close
/// together and nearly always already sorted; a batch is checked against the few runs whose
/// range overlaps it (other connections in the same milliseconds) by merging two sorted
/// lists, sequentially, and then kept as a run of its own.
#[derive(Default)]
pub struct IdSet {
    /// Runs spanning at most [`NARROW_SPAN`], by (smallest id, insertion number).
    narrow: BTreeMap<(u128, u64), Run>,
    /// The few runs that span more (ids loaded at start, a redelivered backlog).
    wide: Vec<Run>,
    inserted_runs: u64,
    len: usize,
}

/// Ids sorted ascending, and their range.
struct Run {
    ids: Vec<u128>,
    lowest: u128,
    highest: u128,
}

/// The widest range a run may span to be found by the range query: about four seconds of ULID
/// time (the 48-bit millisecond stamp sits above 80 random bits). A batch's ids share its
/// receive time, so only unusual runs are wider.
const NARROW_SPAN: u128 = 4096 << 80;

impl Run {
    fn overlaps(&self, lowest: u128, highest: u128) -> bool {
        self.lowest <= highest && self.highest >= lowest
    }

    /// Marks `duplicate[index]` for every id of `sorted` (pairs of id and its index in the
    /// batch, ascending) that this run holds.
    fn mark_held(&self, sorted: &[(u128, usize)], duplicate: &mut [bool]) {
        let (mut mine, mut theirs) = (0, 0);
        while mine < self.ids.len() && theirs < sorted.len() {
            let (id, index) = sorted[theirs];
            match self.ids[mine].cmp(&id) {
                std::cmp::Ordering::Less => mine += 1,
                std::cmp::Ordering::Greater => theirs += 1,
                std::cmp::Ordering::Equal => {
                    duplicate[index] = true;
                    theirs += 1;
                }
            }
        }
    }
}

impl IdSet {
    /// Runs that may hold ids between `lowest` and `highest`.
    fn overlapping(&self, lowest: u128, highest: u128) -> impl Iterator<Item = &Run> {
        let from = (lowest.saturating_sub(NARROW_SPAN), 0);
        self.narrow
            .range(from..=(highest, u64::MAX))
            .map(|(_, run)| run)
            .chain(self.wide.iter())
            .filter(move |run| run.overlaps(lowest, highest))
    }

    /// Marks the ids of a batch (sorted pairs of id and index) that this set holds.
    pub fn mark_held(&self, sorted: &[(u128, usize)], duplicate: &mut [bool]) {
        let (Some(first), Some(last)) = (sorted.first(), sorted.last()) else {
            return;
        };
        for run in self.overlapping(first.0, last.0) {
            run.mark_held(sorted, duplicate);
        }
    }

    pub fn contains(&self, key: &u128) -> bool {
        let mut duplicate = [false];
        self.mark_held(&[(*key, 0)], &mut duplicate);
        duplicate[0]
    }

    /// Adds the ids of a batch not marked duplicate (sorted pairs of id and index) as a run.
    pub fn insert_run(&mut self, sorted: &[(u128, usize)], duplicate: &[bool]) {
        let ids: Vec<u128> = sorted
            .iter()
            .filter(|(_, index)| !duplicate[*index])
            .map(|(id, _)| *id)
            .collect();
        let (Some(&lowest), Some(&highest)) = (ids.first(), ids.last()) else {
            return;
        };
        self.len += ids.len();
        let run = Run {
            ids,
            lowest,
            highest,
        };
        if highest - lowest <= NARROW_SPAN {
            self.inserted_runs += 1;
            self.narrow.insert((lowest, self.inserted_runs), run);
        } else {
            self.wide.push(run);
        }
    }

    /// Adds one id; false if it was already there.
    pub fn insert(&mut self, key: u128) -> bool {
        if self.contains(&key) {
            return false;
        }
        self.insert_run(&[(key, 0)], &[false]);
        true
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The ids of a batch as (id, row) pairs sorted by id, with duplicates inside the batch
/// marked (all but the first of equal ids). Batches of one read come sorted; sorting is
/// skipped then.
pub fn sorted_keys(keys: &[u128], duplicate: &mut [bool]) -> Vec<(u128, usize)> {
    let mut sorted: Vec<(u128, usize)> = keys.iter().copied().zip(0..).collect();
    if !sorted.windows(2).all(|pair| pair[0].0 <= pair[1].0) {
        sorted.sort_unstable();
    }
    for pair in 1..sorted.len() {
        if sorted[pair].0 == sorted[pair - 1].0 {
            duplicate[sorted[pair].1] = true;
        }
    }
    sorted
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
    fn id_sets_find_what_they_hold_and_nothing_else() {
        let mut ids = IdSet::default();
        assert!(!ids.contains(&0));
        for key in [500u128, 100, 300] {
            assert!(ids.insert(key));
        }
        assert!(!ids.insert(300), "a second insert reports the duplicate");
        assert_eq!(ids.len(), 3);
        assert!(ids.contains(&100) && ids.contains(&500) && ids.contains(&300));
        assert!(!ids.contains(&99) && !ids.contains(&501) && !ids.contains(&200));
    }

    #[test]
    fn a_batch_is_checked_against_overlapping_runs_and_itself() {
        let millis = |ms: u128| ms << 80;
        let mut ids = IdSet::default();
        // Two connections' reads in the same millisecond, interleaved ids.
        let first = [millis(7) + 1, millis(7) + 3, millis(7) + 5];
        let mut duplicate = vec![false; 3];
        let sorted = sorted_keys(&first, &mut duplicate);
        ids.mark_held(&sorted, &mut duplicate);
        ids.insert_run(&sorted, &duplicate);
        // Unsorted, with one id held already and one repeated inside the batch.
        let second = [millis(7) + 4, millis(7) + 3, millis(7) + 2, millis(7) + 4];
        let mut duplicate = vec![false; 4];
        let sorted = sorted_keys(&second, &mut duplicate);
        ids.mark_held(&sorted, &mut duplicate);
        assert_eq!(duplicate, [false, true, false, true]);
        ids.insert_run(&sorted, &duplicate);
        assert_eq!(ids.len(), 5);
        // A wide run (ids loaded at start) is found too.
        let wide = [millis(1), millis(900_000)];
        let mut duplicate = vec![false; 2];
        let sorted = sorted_keys(&wide, &mut duplicate);
        ids.insert_run(&sorted, &duplicate);
        assert!(ids.contains(&millis(900_000)) && ids.contains(&(millis(7) + 2)));
        assert!(!ids.contains(&millis(500_000)));
    }
}
