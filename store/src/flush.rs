//! The flusher: writes frozen memtables to Parquet and, between flushes, compacts closed
//! windows one group at a time, so a waiting flush is never held up by more than one group.
//!
//! A flush that fails (a full disk) is retried; the events stay in memory and the WAL, and
//! ingest slows behind it. A compaction group that fails is retried with a backoff, and one
//! that fails repeatedly — or holds a file missing from disk — is set aside until its files
//! change: its files stay live and queryable, and compaction of other windows goes on.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::compaction::{self, CompactionOptions};
use crate::hot::{FileEntry, Frozen, HotStore};
use crate::metrics::StoreMetrics;
use crate::wal;

/// Failures in a row after which a compaction group is set aside.
const COMPACTION_ATTEMPTS: u32 = 3;
/// Wait after a failed compaction before the next try.
const COMPACTION_RETRY: Duration = Duration::from_secs(5);
/// Wait between attempts to write a flush that failed.
const FLUSH_RETRY: Duration = Duration::from_secs(5);

/// A failing compaction group, known by its tenant, window and file paths: when the files
/// change (a late flush, retention) it is a new group and gets new attempts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct GroupKey {
    tenant: String,
    window: i64,
    paths: Vec<String>,
}

impl GroupKey {
    fn of(group: &[FileEntry]) -> Option<GroupKey> {
        let first = group.first()?;
        let mut paths: Vec<String> = group.iter().map(|entry| entry.path.clone()).collect();
        paths.sort();
        Some(GroupKey {
            tenant: first.tenant.clone(),
            window: first.window,
            paths,
        })
    }
}

struct GroupFailures {
    attempts: u32,
    retry_at: Instant,
}

pub(crate) struct Flusher {
    receiver: std::sync::mpsc::Receiver<Arc<Frozen>>,
    hot: Arc<HotStore>,
    wal_dir: PathBuf,
    metrics: Arc<StoreMetrics>,
    compaction: CompactionOptions,
    failing_groups: HashMap<GroupKey, GroupFailures>,
}

impl Flusher {
    pub(crate) fn new(
        receiver: std::sync::mpsc::Receiver<Arc<Frozen>>,
        hot: Arc<HotStore>,
        wal_dir: PathBuf,
        metrics: Arc<StoreMetrics>,
        compaction: CompactionOptions,
    ) -> Flusher {
        Flusher {
            receiver,
            hot,
            wal_dir,
            metrics,
            compaction,
            failing_groups: HashMap::new(),
        }
    }

    pub(crate) fn run(mut self) {
        let mut compacting = false;
        loop {
            // While compaction has work, only look for a waiting flush between groups.
            let wait = if compacting {
                Duration::ZERO
            } else {
                Duration::from_secs(1)
            };
            match self.receiver.recv_timeout(wait) {
                Ok(frozen) => self.flush(&frozen),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
            }
            compacting = self.compact_one();
            self.hot.delete_retired();
            self.metrics
                .hot_missing_files
                .set(self.hot.missing_files() as u64);
        }
    }

    fn flush(&self, frozen: &Arc<Frozen>) {
        let started = Instant::now();
        loop {
            match self.hot.flush(frozen) {
                Ok(files) => {
                    self.metrics.hot_flushes.inc();
                    tracing::info!(
                        events = frozen.events(),
                        files = files.len(),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "flushed to parquet"
                    );
                    if let Err(error) = wal::delete_through(&self.wal_dir, frozen.wal_seq) {
                        tracing::warn!(%error, "cannot delete flushed write-ahead log segments; they are deleted at the next start");
                    }
                    return;
                }
                Err(error) => {
                    // A full disk, say: the events are still in memory and the WAL, so retry
                    // rather than drop; ingest slows down behind us meanwhile.
                    self.metrics.hot_flush_failures.inc();
                    tracing::error!(%error, "flush to parquet failed; retrying in 5s");
                    thread::sleep(FLUSH_RETRY);
                }
            }
        }
    }

    /// Whether a group may be tried now; false while it backs off or is set aside.
    fn may_try(&self, key: &GroupKey) -> bool {
        self.failing_groups.get(key).is_none_or(|failures| {
            failures.attempts < COMPACTION_ATTEMPTS && Instant::now() >= failures.retry_at
        })
    }

    /// Compacts one group if one is due; true when it did (more may be waiting).
    fn compact_one(&mut self) -> bool {
        let files = self.hot.compactable_entries();
        let now = chrono::Utc::now().timestamp();
        let plan = compaction::plan(&files, now, &self.compaction);
        let backlog = compaction::backlog(&files, now, &self.compaction);
        self.metrics.hot_compaction_backlog.set(backlog as u64);
        // Forget failures of groups that no longer exist (their files changed).
        let planned: Vec<GroupKey> = plan
            .iter()
            .filter_map(|group| GroupKey::of(group))
            .collect();
        self.failing_groups.retain(|key, _| planned.contains(key));
        self.publish_set_aside();
        let Some((group, key)) = plan.iter().zip(planned).find(|(_, key)| self.may_try(key)) else {
            return false;
        };
        if let Some(missing) = group.iter().find(|entry| self.hot.is_missing(entry)) {
            self.set_aside(key, &format!("{} is missing from disk", missing.path), true);
            return true;
        }
        let started = Instant::now();
        match self.hot.compact(group, &self.compaction) {
            Ok(Some(entry)) => {
                self.metrics.hot_compactions.inc();
                let bytes_before: u64 = group.iter().map(|old| old.bytes).sum();
                tracing::info!(
                    tenant = %entry.tenant,
                    window = entry.window,
                    files = group.len(),
                    rows = entry.rows,
                    bytes_before,
                    bytes_after = entry.bytes,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "compacted a closed window"
                );
                true
            }
            // Retention removed a file of the group meanwhile; the next plan sees that.
            Ok(None) => true,
            Err(error) => {
                self.metrics.hot_compaction_failures.inc();
                let not_found = error.kind() == std::io::ErrorKind::NotFound;
                self.set_aside(key, &error.to_string(), not_found);
                // The next turn waits a second for a flush first: a failing disk is not
                // hammered, and other groups go on after that.
                false
            }
        }
    }

    /// Tells the metrics and the hot store (so the archive takes their files as they are)
    /// which groups are set aside.
    fn publish_set_aside(&self) {
        let set_aside: Vec<&GroupKey> = self
            .failing_groups
            .iter()
            .filter(|(_, failures)| failures.attempts >= COMPACTION_ATTEMPTS)
            .map(|(key, _)| key)
            .collect();
        self.metrics
            .hot_compaction_set_aside
            .set(set_aside.len() as u64);
        self.hot.set_aside(
            set_aside
                .into_iter()
                .flat_map(|key| key.paths.iter().cloned())
                .collect(),
        );
    }

    /// Counts a failure of a group; at once set aside when `for_good` (a missing file will
    /// not come back by retrying).
    fn set_aside(&mut self, key: GroupKey, reason: &str, for_good: bool) {
        let failures = self
            .failing_groups
            .entry(key.clone())
            .or_insert(GroupFailures {
                attempts: 0,
                retry_at: Instant::now(),
            });
        failures.attempts = if for_good {
            COMPACTION_ATTEMPTS
        } else {
            failures.attempts + 1
        };
        failures.retry_at = Instant::now() + COMPACTION_RETRY;
        let set_aside = failures.attempts >= COMPACTION_ATTEMPTS;
        if set_aside {
            self.publish_set_aside();
            tracing::error!(
                tenant = %key.tenant,
                window = key.window,
                files = key.paths.len(),
                reason,
                "compaction group set aside; its files stay live and queryable (the archive, if on, takes them as they are), other windows go on"
            );
        } else {
            tracing::warn!(
                tenant = %key.tenant,
                window = key.window,
                reason,
                "compaction failed; retrying later"
            );
        }
    }
}
