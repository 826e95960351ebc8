//! A real S3-compatible server for the archive's tests: SeaweedFS (Apache-2.0), its `weed mini`
//! command (master, volume, filer and S3 gateway in one process) on free loopback ports, built
//! by `tools/seaweedfs/build.sh` into the cache. Tests fail (never skip) without it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use meniscus_store::archive::target::{self, Target};
use meniscus_store::object_store::{ObjectStore, ObjectStoreExt};

use crate::{free_port, repo_root};

pub const ACCESS_KEY: &str = "meniscus-test";
/// Which of the ten ports is the S3 gateway's.
const S3_PORT: usize = 6;
pub const SECRET_KEY: &str = "meniscus-test-secret-key";

/// The `weed` binary of the version pinned in `tools/seaweedfs/versions.env`.
pub fn weed_binary() -> PathBuf {
    let versions = std::fs::read_to_string(repo_root().join("tools/seaweedfs/versions.env"))
        .expect("read tools/seaweedfs/versions.env");
    let version = versions
        .lines()
        .find_map(|line| line.strip_prefix("SEAWEEDFS_VERSION="))
        .expect("SEAWEEDFS_VERSION in tools/seaweedfs/versions.env")
        .trim()
        .to_string();
    let cache = std::env::var_os("MENISCUS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/meniscus"));
    let binary = cache.join("seaweedfs").join(version).join("weed");
    assert!(
        binary.is_file(),
        "{} is missing: run tools/seaweedfs/build.sh (dev/test does)",
        binary.display()
    );
    binary
}

/// A running SeaweedFS with one bucket, its data in a folder of its own. Dropping it kills it
/// (and prints its log when the test failed).
pub struct SeaweedFs {
    pub dir: tempfile::TempDir,
    pub bucket: String,
    ports: Vec<u16>,
    child: Option<Child>,
}

impl SeaweedFs {
    pub fn start(bucket: &str) -> SeaweedFs {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        let identities = serde_json::json!({"identities": [{
            "name": "meniscus",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]});
        std::fs::write(dir.path().join("s3.json"), identities.to_string()).unwrap();
        let mut server = SeaweedFs {
            dir,
            bucket: bucket.to_string(),
            ports: (0..10).map(|_| free_port()).collect(),
            child: None,
        };
        server.spawn_retrying(true);
        server
    }

    /// Starts `weed mini`, choosing new ports when one was taken meanwhile (free ports are
    /// ephemeral ones, and other tests' connections take them). After the first start the S3
    /// port stays: Meniscus is configured with it.
    fn spawn_retrying(&mut self, first: bool) {
        for attempt in 1..=5 {
            match self.spawn() {
                Ok(()) => return,
                Err(log) if attempt < 5 && log.contains("address already in use") => {
                    if first {
                        // The failed start left a volume behind with its own cluster id; a
                        // master started afresh beside it refuses to grow volumes ("volume
                        // growth frozen") and uploads fail. Nothing is stored yet: start over.
                        let data = self.dir.path().join("data");
                        let _ = std::fs::remove_dir_all(&data);
                        std::fs::create_dir_all(&data).unwrap();
                    }
                    for (index, port) in self.ports.iter_mut().enumerate() {
                        if first || index != S3_PORT {
                            *port = free_port();
                        }
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(log) => panic!("weed mini did not start:\n{log}"),
            }
        }
    }

    /// The S3 endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports[S3_PORT])
    }

    fn spawn(&mut self) -> Result<(), String> {
        let port = |index: usize| self.ports[index].to_string();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("weed.log"))
            .unwrap();
        let child = Command::new(weed_binary())
            .arg("mini")
            .arg(format!("-dir={}", self.dir.path().join("data").display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1"])
            .arg(format!("-master.port={}", port(0)))
            .arg(format!("-master.port.grpc={}", port(1)))
            .arg(format!("-volume.port={}", port(2)))
            .arg(format!("-volume.port.grpc={}", port(3)))
            .arg(format!("-filer.port={}", port(4)))
            .arg(format!("-filer.port.grpc={}", port(5)))
            .arg(format!("-s3.port={}", port(S3_PORT)))
            .arg(format!("-s3.port.grpc={}", port(7)))
            .arg(format!("-admin.port={}", port(8)))
            .arg(format!("-admin.port.grpc={}", port(9)))
            .args([
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-admin.port.legacy=0",
                "-webdav=false",
                "-admin.ui=false",
                "-master.telemetry=false",
                // A missing bucket is an error, as on AWS.
                "-s3.autoCreateBucket=false",
            ])
            .arg(format!("-bucket={}", self.bucket))
            .arg(format!(
                "-s3.config={}",
                self.dir.path().join("s3.json").display()
            ))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start weed mini");
        self.child = Some(child);
        // Ready once the bucket can be listed with the test's credentials.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self.list_raw("").is_ok() {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!("weed mini exited with {status}:\n{}", self.log()));
            }
            assert!(
                Instant::now() < deadline,
                "SeaweedFS did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default()
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.remove_sockets();
    }

    /// Deletes the local gRPC sockets `weed mini` makes at fixed paths in `/tmp`
    /// (`seaweedfs-KIND-PORT.sock`), which it leaves behind: hundreds per test run otherwise.
    fn remove_sockets(&self) {
        let Ok(entries) = std::fs::read_dir("/tmp") else {
            return;
        };
        let suffixes: Vec<String> = self
            .ports
            .iter()
            .map(|port| format!("-{port}.sock"))
            .collect();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("seaweedfs-")
                && suffixes
                    .iter()
                    .any(|suffix| name.ends_with(suffix.as_str()))
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Starts it again on the same data and S3 port.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn_retrying(false);
    }

    /// The `archive:` section of a Meniscus configuration that archives to this server under
    /// `prefix`, uploading every second.
    pub fn archive_config(&self, prefix: &str) -> String {
        format!(
            "archive:\n  url: s3://{}/{prefix}\n  uploadInterval: 1s\n  options: {{aws_endpoint: \"{}\", aws_allow_http: \"true\", aws_region: us-east-1, aws_access_key_id: {ACCESS_KEY}, aws_secret_access_key: {SECRET_KEY}}}\n",
            self.bucket,
            self.endpoint()
        )
    }

    fn target(&self) -> Target {
        let options = [
            ("aws_endpoint", self.endpoint()),
            ("aws_allow_http", "true".to_string()),
            ("aws_region", "us-east-1".to_string()),
            ("aws_access_key_id", ACCESS_KEY.to_string()),
            ("aws_secret_access_key", SECRET_KEY.to_string()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_string(), value))
        .collect();
        target::build(&format!("s3://{}", self.bucket), None, &options).expect("target")
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn list_raw(&self, prefix: &str) -> Result<Vec<String>, String> {
        use futures::TryStreamExt;
        let target = self.target();
        let prefix =
            (!prefix.is_empty()).then(|| meniscus_store::object_store::path::Path::from(prefix));
        Self::runtime().block_on(async {
            target
                .store
                .list(prefix.as_ref())
                .map_ok(|meta| meta.location.to_string())
                .try_collect::<Vec<_>>()
                .await
                .map_err(|error| error.to_string())
        })
    }

    /// Every object key under `prefix`, sorted.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        let mut keys = self.list_raw(prefix).expect("list the bucket");
        keys.sort();
        keys
    }

    pub fn get(&self, key: &str) -> Vec<u8> {
        let target = self.target();
        let location = meniscus_store::object_store::path::Path::from(key);
        Self::runtime()
            .block_on(async { target.store.get(&location).await?.bytes().await })
            .unwrap_or_else(|error| panic!("get {key}: {error}"))
            .to_vec()
    }

    pub fn put(&self, key: &str, bytes: Vec<u8>) {
        let target = self.target();
        let location = meniscus_store::object_store::path::Path::from(key);
        Self::runtime()
            .block_on(async { target.store.put(&location, bytes.into()).await })
            .unwrap_or_else(|error| panic!("put {key}: {error}"));
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- weed log (last lines) ---");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}
