//! Compaction: once an hourly window is closed, its Parquet files (one per flush, written fast
//! with zstd level 3 in arrival order) are rewritten into fewer files, sorted by `pname` then
//! `ts` and compressed harder. Messages of one program sit together, so zstd finds their
//! shared text; on the bench/query corpus this takes the hot store from about 0.21 to about
//! 0.18 of the raw bytes, and a window becomes one file instead of one per flush.
//!
//! The swap is crash-safe the way flushes are: the new file is written under a temporary name
//! and fsynced, then one atomic manifest rewrite replaces the old entries with the new one.
//! Old files are deleted a few minutes later, so queries that listed them finish first; a
//! crash in between leaves orphans that the next start deletes.

use std::time::Duration;

use crate::hot::{FileEntry, WINDOW_SECONDS};

#[derive(Clone, Debug)]
pub struct CompactionOptions {
    /// zstd level of compacted files; 0 turns compaction off.
    pub zstd_level: i32,
    /// Most rows in one compacted file: bounds the memory one compaction needs (the rows are
    /// sorted in memory).
    pub max_rows: u64,
    /// How long a window is left alone after it ends and after its newest file was written:
    /// late events and a backlog being replayed land first, then the window is compacted once.
    pub grace: Duration,
    /// Store each message's first words in columns of their own (see `msg_tokens`): smaller
    /// files, costlier searches.
    pub split_messages: bool,
}

impl Default for CompactionOptions {
    fn default() -> Self {
        CompactionOptions {
            zstd_level: 9,
            max_rows: 256 * 1024,
            grace: Duration::from_secs(120),
            split_messages: false,
        }
    }
}

/// Files to compact, in groups that each become one file. Windows that closed at least
/// `grace` before `now` (seconds since the epoch), whose newest file is at least `grace` old,
/// and that still have files not yet compacted are taken: those files, plus compacted files of the same window under half of `max_rows` (late
/// events then merge into what is there instead of adding file after file). Groups never
/// exceed `max_rows` unless one file alone does (it is then recompressed alone).
pub fn plan(files: &[FileEntry], now: i64, options: &CompactionOptions) -> Vec<Vec<FileEntry>> {
    if options.zstd_level <= 0 {
        return Vec::new();
    }
    let grace = options.grace.as_secs() as i64;
    let closed = |entry: &FileEntry| entry.window + WINDOW_SECONDS + grace <= now;
    let mut newest: std::collections::HashMap<(&str, i64), i64> = Default::default();
    for entry in files {
        let created = newest
            .entry((entry.tenant.as_str(), entry.window))
            .or_insert(i64::MIN);
        *created = (*created).max(entry.created);
    }
    let quiet = |entry: &FileEntry| newest[&(entry.tenant.as_str(), entry.window)] + grace <= now;
    let due: std::collections::HashSet<(&str, i64)> = files
        .iter()
        .filter(|entry| !entry.compacted && closed(entry) && quiet(entry))
        .map(|entry| (entry.tenant.as_str(), entry.window))
        .collect();
    let mut candidates: Vec<&FileEntry> = files
        .iter()
        .filter(|entry| due.contains(&(entry.tenant.as_str(), entry.window)))
        .filter(|entry| !entry.compacted || entry.rows < options.max_rows / 2)
        .collect();
    candidates.sort_by(|a, b| (&a.tenant, a.window, &a.path).cmp(&(&b.tenant, b.window, &b.path)));
    let mut groups: Vec<Vec<FileEntry>> = Vec::new();
    let mut rows_in_last = 0u64;
    for entry in candidates {
        let joins_last = groups.last().is_some_and(|group| {
            let first = &group[0];
            first.tenant == entry.tenant
                && first.window == entry.window
                && rows_in_last + entry.rows <= options.max_rows
        });
        if joins_last {
            rows_in_last += entry.rows;
            if let Some(group) = groups.last_mut() {
                group.push(entry.clone());
            }
        } else {
            rows_in_last = entry.rows;
            groups.push(vec![entry.clone()]);
        }
    }
    groups
}

/// Files not yet compacted in windows that have ended: what compaction still has to do, now or
/// once the window has been quiet for the grace (the `meniscus_hot_compaction_backlog_files`
/// gauge).
pub fn backlog(files: &[FileEntry], now: i64, options: &CompactionOptions) -> usize {
    if options.zstd_level <= 0 {
        return 0;
    }
    files
        .iter()
        .filter(|entry| !entry.compacted && entry.window + WINDOW_SECONDS <= now)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(tenant: &str, window: i64, name: &str, rows: u64, compacted: bool) -> FileEntry {
        FileEntry {
            tenant: tenant.into(),
            window,
            path: format!("{tenant}/{window}/{name}"),
            rows,
            bytes: rows * 40,
            compacted,
            created: 0,
            msg_tokens: false,
            sealed: false,
        }
    }

    fn names(groups: &[Vec<FileEntry>]) -> Vec<Vec<String>> {
        groups
            .iter()
            .map(|group| group.iter().map(|entry| entry.path.clone()).collect())
            .collect()
    }

    #[test]
    fn plans_follow_windows_tenants_and_row_limits() {
        let options = CompactionOptions {
            zstd_level: 9,
            max_rows: 100,
            grace: Duration::from_secs(60),
            split_messages: false,
        };
        let hour = WINDOW_SECONDS;
        let now = 10 * hour + 30;
        let files = vec![
            file("a", 0, "1", 40, false),
            file("a", 0, "2", 40, false),
            file("a", 0, "3", 40, false), // over 100 with the first two: a group of its own
            file("a", 0, "old", 90, true), // compacted and over half the limit: left alone
            file("b", 0, "0-small", 20, true), // compacted and small: merged with new files
            file("b", 0, "1", 10, false), // another tenant: its own group
            file("a", hour, "1", 500, false), // alone over the limit: recompressed alone
            file("a", 9 * hour, "1", 5, false), // closed at 10h, but within the grace
            file("a", 10 * hour, "1", 5, false), // still open
        ];
        let groups = plan(&files, now, &options);
        assert_eq!(
            names(&groups),
            vec![
                vec!["a/0/1", "a/0/2"],
                vec!["a/0/3"],
                vec!["a/3600/1"],
                vec!["b/0/0-small", "b/0/1"],
            ]
        );
        assert_eq!(
            backlog(&files, now, &options),
            6,
            "every uncompacted file of an ended window"
        );
        // After the grace the 9h window is due too.
        assert_eq!(plan(&files, now + 60, &options).len(), 5);
        // A window still being written to waits until it has been quiet for the grace.
        let mut busy = files.clone();
        busy[4].created = now - 10; // tenant b's window 0 got a file ten seconds ago
        assert_eq!(plan(&busy, now, &options).len(), 3);
        assert_eq!(plan(&busy, now + 50, &options).len(), 5);
        // A window whose files are all compacted is done, however small they are.
        assert!(plan(&[file("c", 0, "1", 5, true)], now, &options).is_empty());
    }

    #[test]
    fn level_zero_turns_compaction_off() {
        let options = CompactionOptions {
            zstd_level: 0,
            ..CompactionOptions::default()
        };
        assert!(plan(&[file("a", 0, "1", 1, false)], i64::MAX / 2, &options).is_empty());
    }
}
