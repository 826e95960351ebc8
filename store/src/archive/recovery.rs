//! What a crash or a lost data directory leaves of an archive, and how it is made whole.
//!
//! - **After a crash** ([`Archive::finish_interrupted`], at the start of every upload pass):
//!   an upload the manifest names in `uploading` whose file is still live is simply uploaded
//!   again under the same name (the file was pinned again on open); one whose file is gone
//!   (compacted into another, expired, purged) has its half-done object deleted, or the
//!   object would hold rows that another object holds too. Keys in `deleting` are deleted.
//! - **After a lost data directory** ([`Archive::rebuild`], `meniscus archive rebuild`): the
//!   manifest is made again from a listing of the target. Sound because of the above: every
//!   object of an origin is one the manifest recorded or was about to. It needs the tenants'
//!   keys (a key directory kept apart from the data directory, such as a mounted Secret).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{TimeZone, Utc};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;

use super::manifest::{skip_index_key, ArchivedObject, ObjectFormat, SIDECAR_SUFFIX};
use super::Archive;
use crate::hot::{window_dir_name, HotStore};

/// What [`Archive::rebuild`] found.
#[derive(Debug, Default)]
pub struct Rebuilt {
    /// The origins whose objects were taken.
    pub adopted: Vec<String>,
    /// Objects recorded now.
    pub recorded: usize,
    /// Rows of the objects recorded now.
    pub rows: u64,
    /// Objects the manifest held already (or whose upload it names).
    pub known: usize,
    /// Objects that could not be opened (key or reason), left unrecorded.
    pub unreadable: Vec<(String, String)>,
    /// Objects of other origins (other storage workers sharing the target), left alone.
    pub other_origins: BTreeMap<String, usize>,
}

/// An archived object's key, taken apart: `PREFIX/TENANT/YYYY/MM/DD/HH/ORIGIN-NAME.events.enc`
/// (`.parquet.enc`: uploaded as Parquet).
#[derive(Debug, PartialEq, Eq)]
struct ObjectName {
    tenant: String,
    window: i64,
    origin: String,
    /// The hot-store file's name without `.parquet`.
    stem: String,
    format: ObjectFormat,
}

impl ObjectName {
    fn parse(prefix: &ObjectPath, location: &ObjectPath) -> Option<ObjectName> {
        let parts: Vec<String> = location
            .prefix_match(prefix)?
            .map(|part| part.as_ref().to_string())
            .collect();
        let [tenant, year, month, day, hour, name] = parts.as_slice() else {
            return None;
        };
        meniscus_grid::TenantId::parse(tenant).ok()?;
        let number = |text: &str| text.parse::<u32>().ok();
        let start = Utc
            .with_ymd_and_hms(
                year.parse().ok()?,
                number(month)?,
                number(day)?,
                number(hour)?,
                0,
                0,
            )
            .single()?;
        let (format, name) = ObjectFormat::of_key(name)?;
        let (origin, stem) = name.split_once('-')?;
        Some(ObjectName {
            tenant: tenant.clone(),
            window: start.timestamp(),
            origin: origin.to_string(),
            stem: stem.to_string(),
            format,
        })
    }
}

impl Archive {
    /// Finishes what a crash interrupted (see the module's comment).
    pub(super) async fn finish_interrupted(&self, hot: &HotStore) -> anyhow::Result<()> {
        let (uploading, deleting) = {
            let manifest = self.manifest.lock();
            (manifest.uploading.clone(), manifest.deleting.clone())
        };
        if uploading.is_empty() && deleting.is_empty() {
            return Ok(());
        }
        let live: HashSet<String> = hot
            .file_entries()
            .into_iter()
            .map(|entry| entry.path)
            .collect();
        let mut gone = HashSet::new();
        for upload in uploading
            .iter()
            .filter(|upload| !live.contains(&upload.source))
        {
            self.delete_object(&upload.key).await?;
            tracing::info!(key = %upload.key, source = %upload.source, "deleted the object of an upload a crash interrupted: its file is gone, its rows are in another");
            gone.insert(upload.key.clone());
        }
        for key in &deleting {
            self.delete_object(key).await?;
            gone.insert(key.clone());
        }
        self.change_manifest(|manifest| {
            manifest
                .uploading
                .retain(|upload| !gone.contains(&upload.key));
            manifest.deleting.retain(|key| !gone.contains(key));
        })
        .await?;
        Ok(())
    }

    /// Makes the manifest again from a listing of the target: every object of the adopted
    /// origins that it does not hold is opened (which proves its tenant's key is here) and
    /// recorded. `origins` empty adopts this archive's own origin when the target has objects
    /// of it, else the only origin the target has; several others are refused, since each
    /// belongs to one storage worker and adopting another's would show its rows twice.
    ///
    /// Objects of this archive's own origin keep their hot-store file as source, so a live
    /// copy is still read instead of the object. Those of another origin (a data directory
    /// lost with its `ORIGIN`) get a source no hot-store file is ever named, and this
    /// archive's new uploads go under its own origin, never over them.
    pub async fn rebuild(
        self: &std::sync::Arc<Self>,
        origins: &[String],
    ) -> anyhow::Result<Rebuilt> {
        let prefix = self.target.prefix.clone();
        let listed: Vec<object_store::ObjectMeta> =
            self.target.store.list(Some(&prefix)).try_collect().await?;
        let present: HashSet<String> = listed
            .iter()
            .map(|meta| meta.location.to_string())
            .collect();
        let mut found: HashMap<String, usize> = HashMap::new();
        let mut objects = Vec::new();
        for meta in &listed {
            if let Some(name) = ObjectName::parse(&prefix, &meta.location) {
                *found.entry(name.origin.clone()).or_default() += 1;
                objects.push((name, meta));
            }
        }
        let adopted: Vec<String> = if !origins.is_empty() {
            origins.to_vec()
        } else if found.contains_key(&self.origin) {
            vec![self.origin.clone()]
        } else if found.len() <= 1 {
            found.keys().cloned().collect()
        } else {
            let mut listing: Vec<String> = found
                .iter()
                .map(|(origin, count)| format!("{origin} ({count} objects)"))
                .collect();
            listing.sort();
            anyhow::bail!(
                "the archive {} holds objects of several origins (storage workers sharing it): {}; \
                 name the one(s) this data directory held with --origin",
                self.target.display,
                listing.join(", ")
            );
        };
        let mut rebuilt = Rebuilt {
            adopted: adopted.clone(),
            ..Rebuilt::default()
        };
        let known: HashSet<String> = {
            let manifest = self.manifest.lock();
            manifest
                .objects
                .iter()
                .map(|object| object.key.clone())
                .chain(manifest.uploading.iter().map(|upload| upload.key.clone()))
                .collect()
        };
        let mut records = Vec::new();
        for (name, meta) in objects {
            if !adopted.contains(&name.origin) {
                *rebuilt.other_origins.entry(name.origin).or_default() += 1;
                continue;
            }
            let key = meta.location.to_string();
            if known.contains(&key) {
                rebuilt.known += 1;
                continue;
            }
            if !present.contains(&format!("{key}{SIDECAR_SUFFIX}")) {
                rebuilt
                    .unreadable
                    .push((key, "its key sidecar is missing".to_string()));
                continue;
            }
            let file = if name.origin == self.origin {
                format!("{}.parquet", name.stem)
            } else {
                format!("{}-{}.parquet", name.origin, name.stem)
            };
            let provisional = ArchivedObject {
                source: format!("{}/{}/{file}", name.tenant, window_dir_name(name.window)),
                tenant: name.tenant,
                window: name.window,
                skip_index: present.contains(&skip_index_key(&key)),
                key: key.clone(),
                rows: 0,
                plain_bytes: 0,
                stored_bytes: meta.size,
                msg_tokens: false,
                format: name.format,
                uploaded: meta.last_modified.timestamp(),
            };
            let opened = async {
                let file = self.clone().fetch_one(provisional.clone(), true).await?;
                if provisional.format == ObjectFormat::Events {
                    let rows = self.events_directory(&provisional.key, &file).await?.rows;
                    let plain_bytes = file
                        .chunked
                        .as_ref()
                        .map_or(0, |copy| copy.layout.plain_bytes);
                    return anyhow::Ok((rows as u64, false, plain_bytes));
                }
                let key = provisional.key.clone();
                tokio::task::spawn_blocking(move || {
                    let copy = file.reader(&key)?;
                    let plain_bytes = datafusion::parquet::file::reader::Length::len(&copy);
                    let reader = ParquetRecordBatchReaderBuilder::try_new(copy)?;
                    let rows = reader.metadata().file_metadata().num_rows().max(0) as u64;
                    let msg_tokens = reader.schema().field_with_name("msg_t0").is_ok();
                    anyhow::Ok((rows, msg_tokens, plain_bytes))
                })
                .await?
            };
            match opened.await {
                Ok((rows, msg_tokens, plain_bytes)) => {
                    rebuilt.rows += rows;
                    records.push(ArchivedObject {
                        rows,
                        msg_tokens,
                        plain_bytes,
                        ..provisional
                    });
                }
                Err(error) => rebuilt.unreadable.push((key, format!("{error:#}"))),
            }
        }
        rebuilt.recorded = records.len();
        self.change_manifest(|manifest| {
            for record in records {
                if !manifest
                    .objects
                    .iter()
                    .any(|object| object.key == record.key)
                {
                    manifest.objects.push(record);
                }
            }
        })
        .await?;
        Ok(rebuilt)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::archive::manifest;
    use crate::archive::test_support::{hot_with, messages, no_grace, objects_in, open};
    use crate::disk::LocalDisk;

    /// Turns the recorded object back into an upload the manifest names as begun: what a
    /// crash after the upload and before the record leaves.
    fn crash_before_the_record(root: &Path) {
        let dir = root.join("archive");
        let mut written = manifest::read(&dir).unwrap();
        let object = written.objects.pop().unwrap();
        written.uploading.push(manifest::Upload {
            tenant: object.tenant,
            source: object.source,
            key: object.key,
        });
        manifest::write(&LocalDisk, &dir, &written).unwrap();
    }

    /// A crash between upload and record: the file still live is uploaded again under the
    /// same name; one compacted away meanwhile has its object deleted, since its rows are in
    /// the compacted file (and its object): otherwise a rebuild from a listing would show
    /// them twice.
    #[tokio::test]
    async fn an_upload_a_crash_interrupted_is_finished_or_its_object_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let (root, objects, keys) = (
            dir.path().join("data"),
            dir.path().join("objects"),
            dir.path().join("keys"),
        );
        let hot = hot_with(&root, "one");
        let archive = open(&root, &objects, &keys);
        assert_eq!(archive.upload_pass(&hot, &no_grace()).await.unwrap(), 1);
        let key = objects_in(&archive).await;
        assert_eq!(key.len(), 1);
        drop(archive);

        crash_before_the_record(&root);
        let archive = open(&root, &objects, &keys);
        archive.attach(&hot);
        assert!(archive.sources().is_empty());
        assert_eq!(archive.upload_pass(&hot, &no_grace()).await.unwrap(), 1);
        assert_eq!(
            objects_in(&archive).await,
            key,
            "the same name, no second object"
        );
        assert!(archive.manifest.lock().uploading.is_empty());
        drop(archive);

        crash_before_the_record(&root);
        let archive = open(&root, &objects, &keys);
        archive.attach(&hot);
        let path = hot.file_entries()[0].path.clone();
        assert!(
            hot.release(&path).unwrap(),
            "the file is gone before the next pass"
        );
        assert_eq!(archive.upload_pass(&hot, &no_grace()).await.unwrap(), 0);
        assert!(
            objects_in(&archive).await.is_empty(),
            "the half-done object is deleted"
        );
        let left = archive.manifest.lock().clone();
        assert!(left.uploading.is_empty() && left.objects.is_empty());
    }

    /// A data directory lost: its archive's objects are recorded again from a listing, with
    /// the keys that survived it. Another storage worker's objects in the same target are
    /// left to it; without keys, nothing is recorded.
    #[tokio::test]
    async fn a_lost_manifest_is_rebuilt_from_a_listing_of_its_own_origin_only() {
        let dir = tempfile::tempdir().unwrap();
        let objects = dir.path().join("objects");
        let mut origins = Vec::new();
        for name in ["a", "b"] {
            let root = dir.path().join(name);
            let hot = hot_with(&root, &format!("held by {name}"));
            let archive = open(&root, &objects, &root.join("keys"));
            assert_eq!(archive.upload_pass(&hot, &no_grace()).await.unwrap(), 1);
            origins.push(archive.origin.clone());
        }

        // a's data directory is lost; its keys were kept apart.
        let fresh = dir.path().join("a-again");
        let archive = open(&fresh, &objects, &dir.path().join("a/keys"));
        assert_ne!(archive.origin, origins[0], "a new origin for new uploads");
        let refused = archive.rebuild(&[]).await.unwrap_err().to_string();
        assert!(
            refused.contains("several origins") && refused.contains(&origins[1]),
            "{refused}"
        );
        let rebuilt = archive.rebuild(&origins[..1]).await.unwrap();
        assert_eq!((rebuilt.recorded, rebuilt.rows, rebuilt.known), (1, 1, 0));
        assert!(rebuilt.unreadable.is_empty());
        assert_eq!(rebuilt.other_origins.get(&origins[1]), Some(&1));
        let recorded = archive.only_archived(&HashSet::new());
        assert_eq!(recorded.len(), 1);
        assert_eq!(messages(&archive, &recorded[0]).await, ["held by a"]);
        assert!(
            !recorded[0].source.starts_with(char::is_numeric)
                && recorded[0].source.contains(&origins[0]),
            "a source no new hot-store file is named: {}",
            recorded[0].source
        );
        let again = archive.rebuild(&origins[..1]).await.unwrap();
        assert_eq!(
            (again.recorded, again.known),
            (0, 1),
            "nothing recorded twice"
        );

        // With b's keys, a's objects do not open: reported, not recorded.
        let wrong = open(
            &dir.path().join("wrong"),
            &objects,
            &dir.path().join("b/keys"),
        );
        let rebuilt = wrong.rebuild(&origins[..1]).await.unwrap();
        assert_eq!(rebuilt.recorded, 0);
        assert_eq!(rebuilt.unreadable.len(), 1);
        assert!(wrong.only_archived(&HashSet::new()).is_empty());
    }

    #[test]
    fn object_keys_are_taken_apart_under_the_targets_prefix() {
        let prefix = ObjectPath::from("logs/prod");
        let name = ObjectName::parse(
            &prefix,
            &ObjectPath::from(
                "logs/prod/acme/2026/12/04/13/01kbxyz-000000000012-00000.parquet.enc",
            ),
        )
        .unwrap();
        assert_eq!(
            name,
            ObjectName {
                tenant: "acme".into(),
                window: Utc
                    .with_ymd_and_hms(2026, 12, 4, 13, 0, 0)
                    .unwrap()
                    .timestamp(),
                origin: "01kbxyz".into(),
                stem: "000000000012-00000".into(),
                format: ObjectFormat::Parquet,
            }
        );
        let events = ObjectName::parse(
            &prefix,
            &ObjectPath::from("logs/prod/acme/2026/12/04/13/01kbxyz-000000000012-00000.events.enc"),
        )
        .unwrap();
        assert_eq!(
            (events.format, events.stem.as_str()),
            (ObjectFormat::Events, "000000000012-00000")
        );
        for other in [
            "logs/prod/acme/2026/12/04/13/01kbxyz-000000000012-00000.parquet.enc.key",
            "logs/prod/acme/2026/12/04/13/01kbxyz-000000000012-00000.skip.enc",
            "logs/prod/acme/2026/12/04/13/01kbxyz-000000000012-00000.events.enc.key",
            "logs/other/acme/2026/12/04/13/01kbxyz-000000000012-00000.parquet.enc",
            "logs/prod/acme/2026/13/04/13/01kbxyz-000000000012-00000.parquet.enc",
            "logs/prod/../2026/12/04/13/01kbxyz-000000000012-00000.parquet.enc",
        ] {
            assert_eq!(
                ObjectName::parse(&prefix, &ObjectPath::from(other)),
                None,
                "{other}"
            );
        }
    }
}
