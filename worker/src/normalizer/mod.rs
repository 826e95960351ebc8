//! The normalizer persona: applies liblognorm-compatible rulebases to events whose producer
//! names a `pattern`, adding the fields under `normalized.<pattern>` and the rule's tags.
//!
//! A pattern names a rulebase file `<rulebaseDir>/<pattern>.rb` when such a file exists, else a
//! built-in rulebase of the same name. Files are checked for changes every few seconds and
//! reloaded without a restart; a rulebase that fails to load is reported with file, line and
//! column and the previous version stays active.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use meniscus_grid::{Batch, Event, Transform};
use meniscus_rulebase::Rulebase;
use parking_lot::RwLock;
use serde_json::Value;

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

    /// Normalizes events in place.
    pub fn normalize(&self, events: &mut [Event]) {
        let mut cached: Option<(String, Option<Arc<Rulebase>>)> = None;
        let mut matched = 0u64;
        let mut unmatched = 0u64;
        for event in events.iter_mut() {
            let Some(pattern) = event.meniscus.pattern.clone() else {
                continue;
            };
            // Events of one batch nearly always share a producer: look the rulebase up once.
            if cached.as_ref().is_none_or(|(name, _)| *name != pattern) {
                cached = Some((pattern.clone(), self.rulebase(&pattern)));
            }
            let Some((_, Some(rulebase))) = &cached else {
                continue;
            };
            let result = rulebase.normalize(&event.msg);
            if result.matched {
                matched += 1;
            } else {
                unmatched += 1;
            }
            event.tags.extend(result.tags);
            event
                .normalized
                .insert(pattern, Value::Object(result.fields));
        }
        if let Some((pattern, _)) = cached {
            self.metrics.events.add(&[&pattern, "matched"], matched);
            self.metrics.events.add(&[&pattern, "unmatched"], unmatched);
        }
    }
}

impl Transform for Normalizer {
    fn apply(&self, batch: &mut Batch) {
        self.normalize(&mut batch.events);
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
