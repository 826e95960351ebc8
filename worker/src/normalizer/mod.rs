//! The normalizer persona: applies liblognorm-compatible rulebases to events whose producer
//! names a `pattern`, adding the fields under `normalized.<pattern>` and the rule's tags.
//!
//! A pattern names a rulebase file `<rulebaseDir>/<pattern>.rb` when such a file exists, else a
//! built-in rulebase of the same name. Files are checked for changes every few seconds and
//! reloaded without a restart; a rulebase that fails to load is reported with file, line and
//! column and the previous version stays active.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arrow_array::builder::StringBuilder;
use arrow_array::{Array, ArrayRef, StringArray};
use meniscus_record::{Batch, TenantBatch, Transform};
use meniscus_rulebase::Rulebase;
use parking_lot::RwLock;
use serde_json::{Map, Value};

use crate::telemetry::NormalizerMetrics;

struct Loaded {
    rulebase: Arc<Rulebase>,
    /// Modification time of the file it came from (`None` for a built-in).
    modified: Option<SystemTime>,
}

/// Normalizes batches in place; the pipeline decides what comes next.
pub struct Normalizer {
    rulebase_dir: Option<PathBuf>,
    rulebases: RwLock<HashMap<String, Loaded>>,
    metrics: NormalizerMetrics,
}

/// A pattern may only name a file directly inside the rulebase directory.
fn is_safe_pattern(pattern: &str) -> bool {
    !pattern.is_empty()
        && pattern.len() <= 64
        && pattern
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path)
        .and_then(|metadata| metadata.modified())
        .ok()
}

impl Normalizer {
    pub fn new(rulebase_dir: Option<PathBuf>, metrics: NormalizerMetrics) -> Arc<Normalizer> {
        Arc::new(Normalizer {
            rulebase_dir,
            rulebases: RwLock::new(HashMap::new()),
            metrics,
        })
    }

    fn file_for(&self, pattern: &str) -> Option<PathBuf> {
        let dir = self.rulebase_dir.as_ref()?;
        let path = dir.join(format!("{pattern}.rb"));
        path.is_file().then_some(path)
    }

    /// Loads (or reloads) one pattern. Keeps the previous rulebase when the new one is broken.
    fn load(&self, pattern: &str) -> Option<Arc<Rulebase>> {
        if !is_safe_pattern(pattern) {
            return None;
        }
        let loaded = match self.file_for(pattern) {
            Some(path) => {
                let stamp = modified(&path);
                match Rulebase::load(&path) {
                    Ok(rulebase) => Some(Loaded {
                        rulebase: Arc::new(rulebase),
                        modified: stamp,
                    }),
                    Err(error) => {
                        self.metrics.rulebase_load_errors.inc(&[pattern]);
                        tracing::error!(pattern, %error, "rulebase not loaded; the previous version stays active");
                        // Remember the stamp so the same broken file is not reparsed every poll.
                        let mut rulebases = self.rulebases.write();
                        if let Some(previous) = rulebases.get_mut(pattern) {
                            previous.modified = stamp;
                            return Some(previous.rulebase.clone());
                        }
                        return None;
                    }
                }
            }
            None => Rulebase::builtin(pattern).map(|rulebase| Loaded {
                rulebase: Arc::new(rulebase),
                modified: None,
            }),
        };
        let loaded = loaded?;
        let rulebase = loaded.rulebase.clone();
        self.rulebases.write().insert(pattern.to_string(), loaded);
        Some(rulebase)
    }

    fn rulebase(&self, pattern: &str) -> Option<Arc<Rulebase>> {
        if let Some(loaded) = self.rulebases.read().get(pattern) {
            return Some(loaded.rulebase.clone());
        }
        self.load(pattern)
    }

    /// Reloads every file-backed pattern whose file changed (or appeared).
    pub fn reload_changed(&self) {
        let Some(_) = &self.rulebase_dir else { return };
        let known: Vec<(String, Option<SystemTime>)> = self
            .rulebases
            .read()
            .iter()
            .map(|(pattern, loaded)| (pattern.clone(), loaded.modified))
            .collect();
        for (pattern, stamp) in known {
            let current = self.file_for(&pattern).and_then(|path| modified(&path));
            if current.is_some() && current != stamp {
                tracing::info!(pattern, "rulebase changed; reloading");
                self.load(&pattern);
            }
        }
    }

    pub fn spawn_reloader(self: &Arc<Self>, every: Duration) {
        let normalizer = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(every);
            loop {
                interval.tick().await;
                let Some(normalizer) = normalizer.upgrade() else {
                    break;
                };
                tokio::task::block_in_place(|| normalizer.reload_changed());
            }
        });
    }

    /// Normalizes the events of one tenant: for every row whose producer names a pattern, the
    /// rulebase's fields go under `normalized.<pattern>` and its tags into `tags` (merged with
    /// what the event already had). `None` when no row names a pattern (most batches).
    ///
    /// A row without earlier `normalized`/`tags` values (the common case) gets its JSON text
    /// written directly: `{"PATTERN":` + [`Rulebase::normalize_json_into`]'s fields + `}`,
    /// and the rule's tags as a JSON array, byte for byte what serializing the
    /// `serde_json::Map` and `Vec<String>` gives (the merge path below).
    fn normalize_group(&self, group: &TenantBatch) -> Option<TenantBatch> {
        let text = |name: &str| {
            group
                .batch
                .column_by_name(name)
                .and_then(|column| column.as_any().downcast_ref::<StringArray>())
        };
        let patterns = text("pattern")?;
        if patterns.null_count() == patterns.len() {
            return None;
        }
        let (messages, normalized, tags) = (text("msg")?, text("normalized")?, text("tags")?);
        let rows = group.batch.num_rows();
        let mut normalized_out = StringBuilder::with_capacity(rows, rows * 64);
        let mut tags_out = StringBuilder::with_capacity(rows, rows * 16);
        // reused per row: `{"PATTERN":` for the current pattern, and the texts being built
        let mut prefix = String::new();
        let mut json = String::new();
        let mut tags_json = String::new();
        fn value_at(column: &StringArray, row: usize) -> Option<&str> {
            (!column.is_null(row)).then(|| column.value(row))
        }
        // Rows of one batch nearly always share a producer: the rulebase is looked up once
        // per run of one pattern, and counted per run.
        let mut current: Option<(&str, Option<Arc<Rulebase>>, u64, u64)> = None;
        for row in 0..rows {
            let existing_normalized = value_at(normalized, row);
            let existing_tags = value_at(tags, row);
            let Some(pattern) = value_at(patterns, row) else {
                normalized_out.append_option(existing_normalized);
                tags_out.append_option(existing_tags);
                continue;
            };
            if current.as_ref().is_none_or(|(name, ..)| *name != pattern) {
                if let Some(done) = current.take() {
                    self.count(done);
                }
                current = Some((pattern, self.rulebase(pattern), 0, 0));
                prefix.clear();
                prefix.push('{');
                prefix.push_str(&serde_json::to_string(pattern).unwrap_or_default());
                prefix.push(':');
            }
            let Some((_, Some(rulebase), matched, unmatched)) = current.as_mut() else {
                normalized_out.append_option(existing_normalized);
                tags_out.append_option(existing_tags);
                continue;
            };
            let message = messages.value(row);
            let (line_matched, rule_tags): (bool, Cow<'_, [String]>) = match existing_normalized {
                // nothing to merge with: the stored text is written directly
                None => {
                    json.clear();
                    json.push_str(&prefix);
                    let result = rulebase.normalize_json_into(message, &mut json);
                    json.push('}');
                    normalized_out.append_value(&json);
                    (result.matched, Cow::Borrowed(result.tags))
                }
                Some(existing) => {
                    let result = rulebase.normalize(message);
                    let mut object = match serde_json::from_str::<Value>(existing) {
                        Ok(Value::Object(object)) => object,
                        _ => Map::new(),
                    };
                    object.insert(pattern.to_string(), Value::Object(result.fields));
                    normalized_out.append_option(serde_json::to_string(&object).ok());
                    (result.matched, Cow::Owned(result.tags))
                }
            };
            if line_matched {
                *matched += 1;
            } else {
                *unmatched += 1;
            }
            match existing_tags {
                None if rule_tags.is_empty() => tags_out.append_null(),
                // `["a","b"]`, as serde_json serializes a Vec<String>
                None => {
                    tags_json.clear();
                    tags_json.push('[');
                    for (i, tag) in rule_tags.iter().enumerate() {
                        if i > 0 {
                            tags_json.push(',');
                        }
                        meniscus_rulebase::push_json_string(&mut tags_json, tag);
                    }
                    tags_json.push(']');
                    tags_out.append_value(&tags_json);
                }
                Some(existing) => {
                    let mut all_tags =
                        serde_json::from_str::<Vec<String>>(existing).unwrap_or_default();
                    all_tags.extend(rule_tags.iter().cloned());
                    if all_tags.is_empty() {
                        tags_out.append_null();
                    } else {
                        tags_out.append_option(serde_json::to_string(&all_tags).ok());
                    }
                }
            }
        }
        if let Some(done) = current.take() {
            self.count(done);
        }
        let normalized_out: ArrayRef = Arc::new(normalized_out.finish());
        let tags_out: ArrayRef = Arc::new(tags_out.finish());
        let replaced = group
            .with_column("normalized", normalized_out)
            .and_then(|group| group.with_column("tags", tags_out));
        match replaced {
            Ok(group) => Some(group),
            Err(error) => {
                tracing::error!(%error, "normalizer output does not fit the batch; events stored without it");
                None
            }
        }
    }

    fn count(
        &self,
        (pattern, rulebase, matched, unmatched): (&str, Option<Arc<Rulebase>>, u64, u64),
    ) {
        if rulebase.is_some() {
            self.metrics.events.add(&[pattern, "matched"], matched);
            self.metrics.events.add(&[pattern, "unmatched"], unmatched);
        }
    }
}

impl Transform for Normalizer {
    fn apply(&self, batch: &mut Batch) {
        for group in batch.tenants.iter_mut() {
            if let Some(normalized) = self.normalize_group(group) {
                *group = normalized;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_cannot_name_paths() {
        assert!(is_safe_pattern("sshd"));
        assert!(is_safe_pattern("access-log"));
        for bad in ["", "../etc/passwd", "a/b", "a.rb", ".."] {
            assert!(!is_safe_pattern(bad), "{bad}");
        }
    }
}
