//! A real Azure Blob Storage endpoint for the archive's Azure test: Azurite (MIT), the Azure
//! Storage emulator, on a free loopback port, installed from npm by `tools/azurite/install.sh`
//! into the cache. Tests fail (never skip) without it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, repo_root};

/// The emulator's well-known account and key (public; Azurite accepts nothing else by default).
pub const ACCOUNT: &str = "devstoreaccount1";
pub const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// Where tools/azurite/install.sh put Azurite and the Azure client (installs it if missing).
fn install_dir() -> PathBuf {
    let output = Command::new(repo_root().join("tools/azurite/install.sh"))
        .arg("--print-dir")
        .stderr(Stdio::inherit())
        .output()
        .expect("run tools/azurite/install.sh");
    assert!(output.status.success(), "tools/azurite/install.sh failed");
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

/// A running Azurite with one container; its blobs in a folder of its own. Dropping it kills
/// it.
pub struct Azurite {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

impl Azurite {
    pub fn start(container: &str) -> Azurite {
        let install = install_dir();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(install.join("node_modules/.bin/azurite-blob"))
            .args([
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &port.to_string(),
                "--skipApiVersionCheck",
                "--location",
            ])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start azurite-blob");
        let azurite = Azurite { dir, port, child };
        // The container, made with Azure's own client once the emulator answers.
        let script = format!(
            "const {{BlobServiceClient}} = require('@azure/storage-blob');\
             BlobServiceClient.fromConnectionString('{}').getContainerClient('{container}').create()\
             .then(() => process.exit(0), error => {{ console.error(error.message); process.exit(1); }});",
            azurite.connection_string()
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let created = Command::new("node")
                .args(["-e", &script])
                .current_dir(&install)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success());
            if created {
                return azurite;
            }
            assert!(
                Instant::now() < deadline,
                "Azurite did not come up on port {port}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};BlobEndpoint={};",
            self.endpoint()
        )
    }

    /// The `archive:` section of a Meniscus configuration that archives to `container` under
    /// `prefix`, uploading every second.
    pub fn archive_config(&self, container: &str, prefix: &str) -> String {
        format!(
            "archive:\n  url: az://{container}/{prefix}\n  uploadInterval: 1s\n  options: {{azure_storage_account_name: {ACCOUNT}, azure_storage_account_key: \"{ACCOUNT_KEY}\", azure_storage_endpoint: \"{}\", azure_allow_http: \"true\"}}\n",
            self.endpoint()
        )
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
