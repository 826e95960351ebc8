//! A real Google Cloud Storage endpoint for the archive's GCS test: fake-gcs-server
//! (BSD-2-Clause), the GCS emulator, on a free loopback port, built by
//! `tools/fake-gcs-server/build.sh` into the cache. Tests fail (never skip) without it.
//!
//! Meniscus talks to it as to GCS, through `object_store`'s GCS client: the JSON API for
//! listings, the XML API for objects. The emulator takes no OAuth token, so the service
//! account key given to Meniscus says `disable_oauth` (its other fields are unused).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, repo_root};

/// The emulator of the version pinned in `tools/fake-gcs-server/versions.env`.
fn binary() -> PathBuf {
    let output = Command::new(repo_root().join("tools/fake-gcs-server/build.sh"))
        .arg("--print-bin")
        .output()
        .expect("run tools/fake-gcs-server/build.sh");
    let binary = PathBuf::from(String::from_utf8(output.stdout).unwrap().trim());
    assert!(
        binary.is_file(),
        "{} is missing: run tools/fake-gcs-server/build.sh (dev/test does)",
        binary.display()
    );
    binary
}

/// A running emulator with one bucket, its objects in a folder of its own. Dropping it kills
/// it.
pub struct FakeGcs {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub bucket: String,
    child: Child,
}

impl FakeGcs {
    pub fn start(bucket: &str) -> FakeGcs {
        let dir = tempfile::tempdir().unwrap();
        // Each folder under `-data` is a bucket the emulator starts with.
        std::fs::create_dir_all(dir.path().join("seed").join(bucket)).unwrap();
        let port = free_port();
        let child = Command::new(binary())
            .args(["-scheme", "http", "-host", "127.0.0.1", "-port"])
            .arg(port.to_string())
            .args(["-public-host"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-backend", "filesystem", "-filesystem-root"])
            .arg(dir.path().join("objects"))
            .arg("-data")
            .arg(dir.path().join("seed"))
            .args(["-log-level", "warn"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start fake-gcs-server");
        let server = FakeGcs {
            dir,
            port,
            bucket: bucket.to_string(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while server.list("").is_none() {
            assert!(
                Instant::now() < deadline,
                "fake-gcs-server did not come up on port {port}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        server
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The names of the bucket's objects under `prefix` (JSON API), sorted; `None` while the
    /// emulator does not answer.
    pub fn list(&self, prefix: &str) -> Option<Vec<String>> {
        let url = format!(
            "{}/storage/v1/b/{}/o?prefix={prefix}",
            self.endpoint(),
            self.bucket
        );
        let page: serde_json::Value = reqwest::blocking::get(url).ok()?.json().ok()?;
        let mut names: Vec<String> = page["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|item| item["name"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        Some(names)
    }

    /// An object's bytes, as stored.
    pub fn get(&self, name: &str) -> Vec<u8> {
        let url = format!("{}/{}/{name}", self.endpoint(), self.bucket);
        reqwest::blocking::get(url)
            .and_then(|response| response.error_for_status())
            .and_then(|response| response.bytes())
            .unwrap_or_else(|error| panic!("get {name}: {error}"))
            .to_vec()
    }

    /// The `archive:` section of a Meniscus configuration that archives under `prefix`,
    /// uploading every second.
    pub fn archive_config(&self, prefix: &str) -> String {
        let key = format!(
            r#"{{"disable_oauth": true, "client_email": "", "private_key": "", "private_key_id": "", "gcs_base_url": "{}"}}"#,
            self.endpoint()
        );
        format!(
            "archive:\n  url: gs://{}/{prefix}\n  uploadInterval: 1s\n  options: {{google_service_account_key: '{key}', allow_http: \"true\"}}\n",
            self.bucket
        )
    }
}

impl Drop for FakeGcs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
