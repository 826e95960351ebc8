//! Where archived objects go: an `object_store` built from a URL.
//!
//! `s3://bucket/prefix` (AWS or any S3-compatible server), `gs://bucket/prefix`,
//! `az://container/prefix` and `file:///dir`. Settings come, later ones winning, from the
//! process environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`, as each SDK reads them), a credentials
//! file of `KEY=VALUE` lines (a mounted Kubernetes Secret, an env file), and the configuration's
//! `options`. Keys are `object_store`'s configuration keys, case-insensitive:
//! `aws_access_key_id`, `aws_secret_access_key`, `aws_endpoint`, `aws_region`,
//! `aws_allow_http`, `aws_virtual_hosted_style_request`, `google_service_account`, ….

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;

use crate::disk::Disk;

/// The target's object store and the prefix every object key starts with.
#[derive(Clone)]
pub struct Target {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: ObjectPath,
    /// The URL with any credentials left out, for logs and `/readyz`.
    pub display: String,
    /// For a `file://` target, its directory: object_store's local store writes without
    /// fsync, so the archive syncs what it uploads there itself ([`Target::local_path`]).
    pub local_dir: Option<PathBuf>,
}

impl Target {
    /// Where the object `location` of a `file://` target is on disk (`None` for an object
    /// store, where a PUT that returned is durable).
    pub fn local_path(&self, location: &ObjectPath) -> Option<PathBuf> {
        let dir = self.local_dir.as_ref()?;
        Some(
            location
                .parts()
                .fold(dir.clone(), |path, part| path.join(part.as_ref())),
        )
    }

    /// On a `file://` target, fsyncs the files at `locations` and every directory from theirs
    /// up to the target's (object_store's local store syncs nothing), so what a manifest or a
    /// key rotation relies on survives a power loss as a `kill -9`. Object stores need
    /// nothing: a PUT that returned is durable.
    pub fn sync_local(&self, locations: &[&ObjectPath], disk: &dyn Disk) -> std::io::Result<()> {
        let Some(root) = &self.local_dir else {
            return Ok(());
        };
        let mut dirs = std::collections::BTreeSet::new();
        for location in locations {
            let Some(file) = self.local_path(location) else {
                continue;
            };
            disk.sync_file(&file)?;
            let mut dir = file.parent();
            while let Some(current) = dir.filter(|current| current.starts_with(root)) {
                dirs.insert(current.to_path_buf());
                dir = current.parent();
            }
        }
        // Deepest first: an entry is durable before the one naming its directory.
        for dir in dirs.iter().rev() {
            disk.sync_dir(dir)?;
        }
        Ok(())
    }

    /// The prefix holding every object of `tenant`.
    pub fn tenant_prefix(&self, tenant: &str) -> ObjectPath {
        self.prefix
            .parts()
            .chain(ObjectPath::from(tenant).parts())
            .collect()
    }
}

/// Builds the target of `url`. A `file://` directory is created if missing.
pub fn build(
    url: &str,
    credentials_file: Option<&Path>,
    options: &BTreeMap<String, String>,
) -> anyhow::Result<Target> {
    let parsed = url::Url::parse(url)
        .map_err(|error| anyhow::anyhow!("archive url {url:?} is not a URL: {error}"))?;
    let mut settings: BTreeMap<String, String> = BTreeMap::new();
    for (key, value) in std::env::vars() {
        let lower = key.to_ascii_lowercase();
        if lower.starts_with("aws_") || lower.starts_with("google_") || lower.starts_with("azure_")
        {
            settings.insert(lower, value);
        }
    }
    if let Some(file) = credentials_file {
        let text = std::fs::read_to_string(file).map_err(|error| {
            anyhow::anyhow!(
                "cannot read archive credentials {}: {error}",
                file.display()
            )
        })?;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let Some((key, value)) = line.split_once('=') else {
                anyhow::bail!(
                    "archive credentials {} line {}: expected KEY=VALUE",
                    file.display(),
                    number + 1
                );
            };
            let value = value.trim().trim_matches('"').trim_matches('\'');
            settings.insert(key.trim().to_ascii_lowercase(), value.to_string());
        }
    }
    for (key, value) in options {
        settings.insert(key.to_ascii_lowercase(), value.clone());
    }
    if parsed.scheme() == "file" {
        let dir = parsed
            .to_file_path()
            .map_err(|_| anyhow::anyhow!("archive url {url:?}: not a local path"))?;
        std::fs::create_dir_all(&dir).map_err(|error| {
            anyhow::anyhow!("cannot create archive directory {}: {error}", dir.display())
        })?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(&dir)?
            .with_automatic_cleanup(true);
        return Ok(Target {
            store: Arc::new(store),
            prefix: ObjectPath::default(),
            display: url.to_string(),
            local_dir: Some(dir),
        });
    }
    let (store, prefix) = object_store_of(&parsed, settings)
        .map_err(|error| anyhow::anyhow!("archive url {url:?}: {error}"))?;
    let mut display = parsed.clone();
    let _ = display.set_password(None);
    let _ = display.set_username("");
    Ok(Target {
        store,
        prefix,
        display: display.to_string(),
        local_dir: None,
    })
}

/// How often a request to the target is retried before it fails: three times, within ten
/// seconds. object_store's default (ten times, up to three minutes) kept a query waiting
/// about half a minute for a server that was gone before answering that an archived hour
/// could not be read; uploads do not need it either, since each upload pass retries what
/// failed.
fn retry() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: 3,
        retry_timeout: std::time::Duration::from_secs(10),
        ..Default::default()
    }
}

/// The store of an `s3://`, `gs://` or `az://` URL with `settings` (object_store
/// configuration keys; unknown ones are left out) and [`retry`]; the prefix in it.
fn object_store_of(
    url: &url::Url,
    settings: BTreeMap<String, String>,
) -> object_store::Result<(Arc<dyn ObjectStore>, ObjectPath)> {
    use object_store::ObjectStoreScheme;
    /// A builder from the URL, then every setting its configuration keys know.
    macro_rules! build {
        ($builder:ty) => {{
            let builder = settings.iter().fold(
                <$builder>::new().with_url(url.to_string()),
                |builder, (key, value)| match key.parse() {
                    Ok(key) => builder.with_config(key, value.clone()),
                    Err(_) => builder,
                },
            );
            Arc::new(builder.with_retry(retry()).build()?) as Arc<dyn ObjectStore>
        }};
    }
    let (scheme, path) = ObjectStoreScheme::parse(url)?;
    let store = match scheme {
        ObjectStoreScheme::AmazonS3 => build!(object_store::aws::AmazonS3Builder),
        ObjectStoreScheme::GoogleCloudStorage => {
            build!(object_store::gcp::GoogleCloudStorageBuilder)
        }
        ObjectStoreScheme::MicrosoftAzure => build!(object_store::azure::MicrosoftAzureBuilder),
        other => {
            return Err(object_store::Error::NotSupported {
                source: format!("{other:?} is not an archive target (s3, gs, az or file)").into(),
            })
        }
    };
    Ok((store, ObjectPath::parse(path)?))
}
