//! A real Kubernetes control plane for tests.
//!
//! Starts `etcd`, `kube-apiserver` (RBAC, service-account token signing, generated
//! certificates), `kube-controller-manager` and — unless disabled — `kube-scheduler` and
//! `kwok` (simulated nodes, so Deployments and StatefulSets report ready replicas) on free
//! loopback ports, waits until they are ready, and hands out [`kube::Client`]s and an admin
//! kubeconfig for `kubectl`.
//!
//! The binaries are built from Go modules by `tools/k8s/build.sh` at the versions pinned in
//! `tools/k8s/versions.env`; see `testenv/README.md`.
//!
//! ```no_run
//! # async fn t() -> anyhow::Result<()> {
//! let cp = meniscus_testenv::ControlPlane::shared().await?;
//! let ns = cp.namespace("my-test").await?;
//! let client = cp.client()?;
//! let out = cp.kubectl(&["get", "pods", "-n", &ns]).output()?;
//! # Ok(()) }
//! ```
//!
//! Every child process is started with `PR_SET_PDEATHSIG(SIGKILL)` from a thread that lives
//! as long as the test process, so nothing outlives the test binary, even when it panics,
//! aborts or is killed. The shared instance is also torn down by an `atexit` handler (statics
//! are never dropped), which removes its temporary directory.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use k8s_openapi::api::core::v1::{Namespace, Node, PersistentVolume, ServiceAccount};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;

/// The pinned versions file shared with `tools/k8s/build.sh`.
const VERSIONS_ENV: &str = include_str!("../../tools/k8s/versions.env");

/// How long to wait for the control plane to become ready.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(180);

/// Pinned component versions (from `tools/k8s/versions.env`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions {
    /// Kubernetes version, e.g. `1.34.4`.
    pub kubernetes: String,
    /// etcd version, e.g. `3.6.4`.
    pub etcd: String,
    /// kwok version, e.g. `0.7.0`.
    pub kwok: String,
}

impl Versions {
    /// The versions pinned in `tools/k8s/versions.env`.
    pub fn pinned() -> Versions {
        Self::parse(VERSIONS_ENV).expect("tools/k8s/versions.env is malformed")
    }

    fn parse(text: &str) -> Result<Versions> {
        let mut map = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| anyhow!("not KEY=value: {line}"))?;
            map.insert(k.trim().to_string(), v.trim().to_string());
        }
        let get = |k: &str| {
            map.get(k)
                .cloned()
                .ok_or_else(|| anyhow!("versions.env: {k} missing"))
        };
        Ok(Versions {
            kubernetes: get("K8S_VERSION")?,
            etcd: get("ETCD_VERSION")?,
            kwok: get("KWOK_VERSION")?,
        })
    }
}

/// The directory holding the control plane binaries: `$MENISCUS_K8S_BIN` if set, otherwise
/// `${MENISCUS_CACHE:-$HOME/.cache/meniscus}/k8s/<k8s>-etcd<etcd>/bin` (as `tools/k8s/build.sh`).
pub fn bin_dir() -> PathBuf {
    resolve_bin_dir(
        std::env::var_os("MENISCUS_K8S_BIN").map(PathBuf::from),
        std::env::var_os("MENISCUS_CACHE").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
        &Versions::pinned(),
    )
}

fn resolve_bin_dir(
    k8s_bin: Option<PathBuf>,
    cache: Option<PathBuf>,
    home: Option<PathBuf>,
    v: &Versions,
) -> PathBuf {
    if let Some(dir) = k8s_bin.filter(|d| !d.as_os_str().is_empty()) {
        return dir;
    }
    let cache = cache
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| {
            home.unwrap_or_else(|| PathBuf::from("/root"))
                .join(".cache/meniscus")
        });
    cache
        .join("k8s")
        .join(format!("{}-etcd{}", v.kubernetes, v.etcd))
        .join("bin")
}

/// Whether the simulated nodes (kube-scheduler + kwok) are wanted: `MENISCUS_K8S_NO_KWOK=1`
/// turns them off, as for `tools/k8s/build.sh`.
fn nodes_wanted() -> bool {
    std::env::var("MENISCUS_K8S_NO_KWOK").map_or(true, |v| v != "1")
}

fn required_binaries(with_nodes: bool) -> Vec<&'static str> {
    let mut v = vec!["etcd", "kube-apiserver", "kube-controller-manager"];
    if with_nodes {
        v.extend(["kube-scheduler", "kwok"]);
    }
    v
}

/// Fails with instructions when a binary is missing.
fn check_binaries(dir: &Path, with_nodes: bool) -> Result<()> {
    let missing: Vec<_> = required_binaries(with_nodes)
        .into_iter()
        .filter(|b| !dir.join(b).is_file())
        .collect();
    if !missing.is_empty() {
        bail!(
            "Kubernetes test control plane binaries missing in {}: {}.\n\
             Run `tools/k8s/build.sh` from the repository root first (builds them from Go \
             modules into the cache, slow the first time, instant afterwards), or point \
             MENISCUS_K8S_BIN at a directory holding them.",
            dir.display(),
            missing.join(", ")
        );
    }
    Ok(())
}

/// Options for a private control plane.
#[derive(Debug, Clone)]
pub struct Options {
    /// Start kube-scheduler and kwok with one simulated node. Default: true unless
    /// `MENISCUS_K8S_NO_KWOK=1`.
    pub simulated_nodes: bool,
    /// Keep the temporary directory (logs, data, certificates) after teardown. Default:
    /// `MENISCUS_K8S_KEEP=1`.
    pub keep_dir: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            simulated_nodes: nodes_wanted(),
            keep_dir: std::env::var("MENISCUS_K8S_KEEP").is_ok_and(|v| v == "1"),
        }
    }
}

/// The default StorageClass (no provisioner; see [`ControlPlane::add_volumes`]).
pub const STORAGE_CLASS: &str = "standard";

/// The name of the simulated node created when kwok runs.
pub const SIMULATED_NODE: &str = "kwok-node-0";

/// A running control plane. Dropping it stops every process and removes its directory.
pub struct ControlPlane {
    dir: PathBuf,
    kubeconfig: PathBuf,
    server: String,
    config: kube::Config,
    ca_pem: String,
    simulated_nodes: bool,
    procs: Mutex<Option<Processes>>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("server", &self.server)
            .field("dir", &self.dir)
            .finish()
    }
}

static SHARED: OnceLock<std::result::Result<ControlPlane, String>> = OnceLock::new();
static SHARED_INIT: Mutex<()> = Mutex::new(());

impl ControlPlane {
    /// The process-wide control plane, started on first use and stopped at process exit.
    /// Tests sharing it should each work in their own namespace ([`ControlPlane::namespace`]).
    /// If starting fails, every caller gets the same error (it is not retried).
    pub async fn shared() -> Result<&'static ControlPlane> {
        tokio::task::spawn_blocking(Self::shared_blocking)
            .await
            .context("starting the shared control plane panicked")?
    }

    /// Blocking form of [`ControlPlane::shared`], for use outside an async runtime.
    pub fn shared_blocking() -> Result<&'static ControlPlane> {
        if SHARED.get().is_none() {
            let _guard = SHARED_INIT.lock().unwrap_or_else(|e| e.into_inner());
            if SHARED.get().is_none() {
                let started =
                    Self::start_blocking(Options::default()).map_err(|e| format!("{e:#}"));
                let ok = started.is_ok();
                let _ = SHARED.set(started);
                if ok {
                    register_atexit();
                }
            }
        }
        match SHARED.get().expect("initialised above") {
            Ok(cp) => Ok(cp),
            Err(e) => Err(anyhow!(
                "the shared Kubernetes control plane failed to start: {e}"
            )),
        }
    }

    /// Starts a private control plane with default options. Stopped when dropped.
    pub async fn start() -> Result<ControlPlane> {
        Self::start_with(Options::default()).await
    }

    /// Starts a private control plane. Stopped when dropped.
    pub async fn start_with(options: Options) -> Result<ControlPlane> {
        tokio::task::spawn_blocking(move || Self::start_blocking(options))
            .await
            .context("starting a control plane panicked")?
    }

    /// Blocking form of [`ControlPlane::start_with`].
    pub fn start_blocking(options: Options) -> Result<ControlPlane> {
        remove_stale_dirs();
        let bins = bin_dir();
        check_binaries(&bins, options.simulated_nodes)?;
        let tmp = tempfile::Builder::new()
            .prefix(&format!("meniscus-k8s-{}-", std::process::id()))
            .tempdir()
            .context("creating the control plane directory")?;
        // Removed by Processes::stop (unless keep_dir), also for the shared instance.
        let dir = tmp.keep();
        let mut procs = Processes {
            children: Vec::new(),
            dir: dir.clone(),
            keep_dir: options.keep_dir,
        };
        match start_in(&bins, &dir, &options, &mut procs) {
            Ok((kubeconfig, server, config, ca_pem)) => Ok(ControlPlane {
                dir,
                kubeconfig,
                server,
                config,
                ca_pem,
                simulated_nodes: options.simulated_nodes,
                procs: Mutex::new(Some(procs)),
            }),
            Err(e) => {
                let logs = procs.log_tails(40);
                procs.stop();
                Err(e.context(format!(
                    "starting the Kubernetes control plane failed; component logs:\n{logs}"
                )))
            }
        }
    }

    /// A new admin client (`system:masters`). Create one per async runtime: a client is bound
    /// to the runtime it was created on, and `#[tokio::test]` gives each test its own.
    pub fn client(&self) -> Result<Client> {
        kube_client(self.config.clone()).context("building a kube client")
    }

    /// A copy of the admin client configuration.
    pub fn config(&self) -> kube::Config {
        self.config.clone()
    }

    /// A client authenticating with a bearer token (e.g. a ServiceAccount token from a
    /// TokenRequest) instead of the admin certificate.
    pub fn client_with_token(&self, token: &str) -> Result<Client> {
        let mut config = self.config.clone();
        config.auth_info = kube::config::AuthInfo {
            token: Some(token.to_string().into()),
            ..Default::default()
        };
        kube_client(config).context("building a kube client")
    }

    /// Path of the admin kubeconfig (for `kubectl --kubeconfig` or `KUBECONFIG`).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The API server URL, e.g. `https://127.0.0.1:40123`.
    pub fn server_url(&self) -> &str {
        &self.server
    }

    /// PEM of the cluster CA (signs the API server certificate and client certificates).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The directory holding logs (`logs/<component>.log`), data and certificates.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether kube-scheduler and kwok run, with one simulated node ([`SIMULATED_NODE`]), so
    /// that pods get scheduled and reported Running/Ready.
    pub fn has_simulated_nodes(&self) -> bool {
        self.simulated_nodes
    }

    /// A `kubectl` command (`$KUBECTL` or `kubectl` on PATH) pointed at this control plane.
    pub fn kubectl(&self, args: &[&str]) -> Command {
        let bin = std::env::var_os("KUBECTL").unwrap_or_else(|| "kubectl".into());
        let mut cmd = Command::new(bin);
        cmd.env("KUBECONFIG", &self.kubeconfig).args(args);
        cmd
    }

    /// Creates a namespace with a unique name starting with `prefix` and waits until its
    /// `default` ServiceAccount exists (so pods can be created in it right away).
    pub async fn namespace(&self, prefix: &str) -> Result<String> {
        let client = self.client()?;
        let mut base: String = prefix
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        base.truncate(50);
        let base = base.trim_matches('-');
        let base = if base.is_empty() { "test" } else { base };
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": { "generateName": format!("{base}-") }
        }))?;
        let created = Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .context("creating a test namespace")?;
        let name = created
            .metadata
            .name
            .context("created namespace has no name")?;
        let sas = Api::<ServiceAccount>::namespaced(client, &name);
        wait_for(Duration::from_secs(60), "the default ServiceAccount of a new namespace (kube-controller-manager's serviceaccount controller)", || async {
            Ok(sas.get_opt("default").await?.is_some())
        })
        .await?;
        Ok(name)
    }

    /// Creates `count` PersistentVolumes of `capacity` (e.g. `"1Gi"`) in the default
    /// StorageClass [`STORAGE_CLASS`], for kube-controller-manager's volume binder to bind
    /// to PersistentVolumeClaims (e.g. of StatefulSet `volumeClaimTemplates`). There is no
    /// dynamic provisioner; the volumes are hostPath entries that nothing ever mounts.
    /// Returns their names.
    pub async fn add_volumes(&self, count: usize, capacity: &str) -> Result<Vec<String>> {
        let pvs = Api::<PersistentVolume>::all(self.client()?);
        let mut names = Vec::new();
        for _ in 0..count {
            let pv: PersistentVolume = serde_json::from_value(serde_json::json!({
                "metadata": { "generateName": "testenv-pv-" },
                "spec": {
                    "capacity": { "storage": capacity },
                    "accessModes": ["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": STORAGE_CLASS,
                    "hostPath": { "path": "/tmp/meniscus-testenv-unused" }
                }
            }))?;
            let pv = pvs
                .create(&PostParams::default(), &pv)
                .await
                .context("creating a PersistentVolume")?;
            names.push(pv.metadata.name.unwrap_or_default());
        }
        Ok(names)
    }

    /// Stops every process and removes the directory (unless kept). Idempotent; also done
    /// on drop.
    pub fn stop(&self) {
        let procs = self.procs.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut p) = procs {
            p.stop();
        }
    }

    /// Process ids of the running components (for tests of the harness itself).
    pub fn pids(&self) -> Vec<u32> {
        self.procs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|p| p.children.iter().map(|c| c.child.id()).collect())
            .unwrap_or_default()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}

fn register_atexit() {
    extern "C" fn stop_shared() {
        if let Some(Ok(cp)) = SHARED.get() {
            cp.stop();
        }
    }
    // SAFETY: registering a plain extern "C" function; it only touches 'static data.
    unsafe {
        libc::atexit(stop_shared);
    }
}

struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

struct Processes {
    children: Vec<Proc>,
    dir: PathBuf,
    keep_dir: bool,
}

impl Processes {
    fn spawn(&mut self, name: &'static str, bin: &Path, args: &[String]) -> Result<()> {
        let logs = self.dir.join("logs");
        fs::create_dir_all(&logs)?;
        let log = logs.join(format!("{name}.log"));
        let out = File::create(&log)?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .current_dir(&self.dir);
        let child = spawn_reaped(cmd).with_context(|| format!("spawning {}", bin.display()))?;
        self.children.push(Proc { name, child, log });
        Ok(())
    }

    /// Fails (with the tail of its log) if a component has exited.
    fn check_alive(&mut self) -> Result<()> {
        for p in &mut self.children {
            if let Some(status) = p.child.try_wait()? {
                bail!(
                    "{} exited early ({status}); see {}",
                    p.name,
                    p.log.display()
                );
            }
        }
        Ok(())
    }

    fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for p in &self.children {
            out.push_str(&format!("----- {} ({}) -----\n", p.name, p.log.display()));
            out.push_str(&tail(&p.log, lines));
            out.push('\n');
        }
        out
    }

    fn stop(&mut self) {
        // Reverse start order: nodes, controllers, apiserver, etcd last. Test data is
        // throwaway, so SIGKILL is fine and fast.
        for p in self.children.iter_mut().rev() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        self.children.clear();
        if !self.keep_dir {
            let _ = fs::remove_dir_all(&self.dir);
        } else {
            eprintln!(
                "meniscus-testenv: kept control plane directory {}",
                self.dir.display()
            );
        }
    }
}

/// Last `lines` lines of a file (reads at most 64 KiB from its end).
fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return "(no log)".into();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Spawns `cmd` from a thread that lives as long as the process, with
/// `PR_SET_PDEATHSIG(SIGKILL)`: the kernel kills the child when that thread (and so the test
/// process) dies. Spawning from the calling thread would kill the child as soon as that
/// thread ends (e.g. a test's or a blocking-pool thread), which is not what we want.
fn spawn_reaped(cmd: Command) -> Result<Child> {
    type Req = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Req>>> = OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Req>();
        std::thread::Builder::new()
            .name("meniscus-testenv-spawner".into())
            .spawn(move || {
                // Never returns while the process lives: the sender is held in a static.
                for (mut cmd, reply) in rx {
                    let _ = reply.send(spawn_with_pdeathsig(&mut cmd));
                }
            })
            .expect("spawning the process spawner thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    tx.lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, reply_tx))
        .map_err(|_| anyhow!("process spawner thread is gone"))?;
    Ok(reply_rx
        .recv()
        .map_err(|_| anyhow!("process spawner thread is gone"))??)
}

fn spawn_with_pdeathsig(cmd: &mut Command) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls (prctl, getppid, _exit) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Removes directories of earlier test processes that were killed (their pid is gone).
fn remove_stale_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("meniscus-k8s-") else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

/// A free loopback TCP port (bind to port 0, read it, close).
fn free_port() -> Result<u16> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(l.local_addr()?.port())
}

/// Polls `check` every 250 ms until it returns true, failing after `timeout` with `what`.
/// Errors from `check` count as "not yet" (the last one is reported on timeout).
pub async fn wait_for<F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() >= deadline {
            return Err(match last_err {
                Some(e) => e.context(format!("timed out after {timeout:?} waiting for {what}")),
                None => anyhow!("timed out after {timeout:?} waiting for {what}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

struct Pki {
    ca_pem: String,
}

/// Generates the CA, the apiserver serving certificate, client certificates and the
/// service-account signing key into `dir/pki`.
fn generate_pki(dir: &Path) -> Result<Pki> {
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let pki = dir.join("pki");
    fs::create_dir_all(&pki)?;
    let write = |name: &str, text: &str| -> Result<()> {
        let p = pki.join(name);
        fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
    };

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name = DistinguishedName::new();
    ca.distinguished_name
        .push(DnType::CommonName, "meniscus-testenv-ca");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;
    write("ca.crt", &ca_cert.pem())?;
    let issuer = Issuer::new(ca, ca_key);

    let leaf =
        |file: &str, cn: &str, orgs: &[&str], sans: Vec<String>, server: bool| -> Result<()> {
            let key = KeyPair::generate()?;
            let mut p = CertificateParams::new(sans)?;
            p.distinguished_name = DistinguishedName::new();
            p.distinguished_name.push(DnType::CommonName, cn);
            for o in orgs {
                p.distinguished_name.push(DnType::OrganizationName, *o);
            }
            p.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            p.extended_key_usages = vec![if server {
                ExtendedKeyUsagePurpose::ServerAuth
            } else {
                ExtendedKeyUsagePurpose::ClientAuth
            }];
            let cert = p.signed_by(&key, &issuer)?;
            write(&format!("{file}.crt"), &cert.pem())?;
            write(&format!("{file}.key"), &key.serialize_pem())?;
            Ok(())
        };
    leaf(
        "apiserver",
        "kube-apiserver",
        &[],
        vec![
            "127.0.0.1".into(),
            "localhost".into(),
            "10.0.0.1".into(),
            "kubernetes".into(),
            "kubernetes.default".into(),
            "kubernetes.default.svc".into(),
            "kubernetes.default.svc.cluster.local".into(),
        ],
        true,
    )?;
    leaf(
        "admin",
        "meniscus-testenv-admin",
        &["system:masters"],
        vec![],
        false,
    )?;
    leaf(
        "controller-manager",
        "system:kube-controller-manager",
        &[],
        vec![],
        false,
    )?;
    leaf("scheduler", "system:kube-scheduler", &[], vec![], false)?;

    // Service-account token signing key (ECDSA P-256, ES256) and its public half.
    let sa = KeyPair::generate()?;
    write("sa.key", &sa.serialize_pem())?;
    write("sa.pub", &sa.public_key_pem())?;
    Ok(Pki {
        ca_pem: ca_cert.pem(),
    })
}

fn write_kubeconfig(path: &Path, server: &str, pki: &Path, user: &str) -> Result<()> {
    let p = |f: &str| pki.join(f).display().to_string();
    let text = serde_yaml::to_string(&serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "meniscus-testenv", "cluster": {
            "server": server, "certificate-authority": p("ca.crt") } }],
        "users": [{ "name": user, "user": {
            "client-certificate": p(&format!("{user}.crt")),
            "client-key": p(&format!("{user}.key")) } }],
        "contexts": [{ "name": "meniscus-testenv", "context": {
            "cluster": "meniscus-testenv", "user": user, "namespace": "default" } }],
        "current-context": "meniscus-testenv",
    }))?;
    fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

type Started = (PathBuf, String, kube::Config, String);

fn start_in(bins: &Path, dir: &Path, options: &Options, procs: &mut Processes) -> Result<Started> {
    let pki_dir = dir.join("pki");
    let pki = generate_pki(dir)?;
    let pk = |f: &str| pki_dir.join(f).display().to_string();

    // etcd
    let etcd_client = free_port()?;
    let etcd_peer = free_port()?;
    let etcd_url = format!("http://127.0.0.1:{etcd_client}");
    let peer_url = format!("http://127.0.0.1:{etcd_peer}");
    procs.spawn(
        "etcd",
        &bins.join("etcd"),
        &[
            "--name=testenv".into(),
            format!("--data-dir={}", dir.join("etcd").display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=testenv={peer_url}"),
            "--unsafe-no-fsync=true".into(),
            "--log-level=warn".into(),
        ],
    )?;

    // kube-apiserver
    let api_port = free_port()?;
    let server = format!("https://127.0.0.1:{api_port}");
    procs.spawn(
        "kube-apiserver",
        &bins.join("kube-apiserver"),
        &[
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={api_port}"),
            format!("--cert-dir={}", dir.join("apiserver-certs").display()),
            format!("--tls-cert-file={}", pk("apiserver.crt")),
            format!("--tls-private-key-file={}", pk("apiserver.key")),
            format!("--client-ca-file={}", pk("ca.crt")),
            "--authorization-mode=RBAC".into(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!("--service-account-key-file={}", pk("sa.pub")),
            format!("--service-account-signing-key-file={}", pk("sa.key")),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            "--allow-privileged=true".into(),
            "--profiling=false".into(),
            "--endpoint-reconciler-type=none".into(),
            "--v=0".into(),
        ],
    )?;

    let kubeconfig = dir.join("admin.kubeconfig");
    write_kubeconfig(&kubeconfig, &server, &pki_dir, "admin")?;
    let cm_kubeconfig = dir.join("controller-manager.kubeconfig");
    write_kubeconfig(&cm_kubeconfig, &server, &pki_dir, "controller-manager")?;
    let sched_kubeconfig = dir.join("scheduler.kubeconfig");
    write_kubeconfig(&sched_kubeconfig, &server, &pki_dir, "scheduler")?;

    // One runtime for the startup checks; the clients made here die with it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let config = rt.block_on(async {
        let kc = Kubeconfig::read_from(&kubeconfig)?;
        let config =
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
        anyhow::Ok(config)
    })?;

    rt.block_on(async {
        let client = kube_client(config.clone())?;
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let mut last: String;
        loop {
            procs.check_alive()?;
            let req = http::Request::get("/readyz").body(Vec::new())?;
            match client.request_text(req).await {
                Ok(body) if body.trim() == "ok" => break,
                Ok(body) => last = body,
                Err(e) => last = format!("{e}"),
            }
            if Instant::now() >= deadline {
                bail!("kube-apiserver not ready after {STARTUP_TIMEOUT:?}: {last}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        anyhow::Ok(())
    })?;

    // kube-controller-manager
    let cm_port = free_port()?;
    let cmk = cm_kubeconfig.display().to_string();
    procs.spawn(
        "kube-controller-manager",
        &bins.join("kube-controller-manager"),
        &[
            format!("--kubeconfig={cmk}"),
            format!("--authentication-kubeconfig={cmk}"),
            format!("--authorization-kubeconfig={cmk}"),
            "--bind-address=127.0.0.1".into(),
            format!("--secure-port={cm_port}"),
            format!(
                "--cert-dir={}",
                dir.join("controller-manager-certs").display()
            ),
            "--leader-elect=false".into(),
            "--use-service-account-credentials=true".into(),
            format!("--service-account-private-key-file={}", pk("sa.key")),
            format!("--root-ca-file={}", pk("ca.crt")),
            format!("--cluster-signing-cert-file={}", pk("ca.crt")),
            "--controllers=*".into(),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            // Namespaces are deleted promptly; GC and workload controllers sync quickly.
            "--concurrent-gc-syncs=5".into(),
            // kwok's simulated nodes post status about once a minute, later than the default
            // 50 s grace: the node lifecycle controller would mark them NotReady every minute,
            // flipping pods' readiness and waking every controller under test.
            "--node-monitor-grace-period=10m".into(),
            "--v=0".into(),
        ],
    )?;

    if options.simulated_nodes {
        let s_port = free_port()?;
        let sk = sched_kubeconfig.display().to_string();
        procs.spawn(
            "kube-scheduler",
            &bins.join("kube-scheduler"),
            &[
                format!("--kubeconfig={sk}"),
                format!("--authentication-kubeconfig={sk}"),
                format!("--authorization-kubeconfig={sk}"),
                "--bind-address=127.0.0.1".into(),
                format!("--secure-port={s_port}"),
                "--leader-elect=false".into(),
                "--v=0".into(),
            ],
        )?;
        let kwok_port = free_port()?;
        procs.spawn(
            "kwok",
            &bins.join("kwok"),
            &[
                format!("--kubeconfig={}", kubeconfig.display()),
                "--manage-all-nodes=false".into(),
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake".into(),
                "--cidr=10.0.1.0/24".into(),
                "--node-ip=10.0.1.1".into(),
                format!("--server-address=127.0.0.1:{kwok_port}"),
                // Renew a node Lease (every quarter of this), as a kubelet does.
                "--node-lease-duration-seconds=40".into(),
            ],
        )?;
    }

    rt.block_on(async {
        let client = kube_client(config.clone())?;
        // kube-controller-manager works once it has created the default ServiceAccount.
        let sas = Api::<ServiceAccount>::namespaced(client.clone(), "default");
        wait_checked(
            procs,
            "kube-controller-manager to create the default ServiceAccount",
            || async { Ok(sas.get_opt("default").await?.is_some()) },
        )
        .await?;
        let sc: StorageClass = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": STORAGE_CLASS,
                "annotations": { "storageclass.kubernetes.io/is-default-class": "true" }
            },
            "provisioner": "kubernetes.io/no-provisioner",
            "volumeBindingMode": "Immediate",
            "reclaimPolicy": "Delete"
        }))?;
        Api::<StorageClass>::all(client.clone())
            .create(&PostParams::default(), &sc)
            .await
            .context("creating the default StorageClass")?;
        if options.simulated_nodes {
            let nodes = Api::<Node>::all(client.clone());
            let node: Node = serde_json::from_value(simulated_node())?;
            nodes
                .create(&PostParams::default(), &node)
                .await
                .context("creating the kwok node")?;
            wait_checked(procs, "kwok to report the simulated node Ready", || async {
                let n = nodes.get(SIMULATED_NODE).await?;
                Ok(n.status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .await?;
        }
        anyhow::Ok(())
    })?;
    drop(rt);

    Ok((kubeconfig, server, config, pki.ca_pem))
}

/// Like [`wait_for`], also failing as soon as a component has exited.
async fn wait_checked<F, Fut>(procs: &mut Processes, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    let mut last_err = None;
    loop {
        procs.check_alive()?;
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() >= deadline {
            return Err(match last_err {
                Some(e) => e.context(format!(
                    "timed out after {STARTUP_TIMEOUT:?} waiting for {what}"
                )),
                None => anyhow!("timed out after {STARTUP_TIMEOUT:?} waiting for {what}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn simulated_node() -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": SIMULATED_NODE,
            "annotations": { "kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0" },
            "labels": {
                "kubernetes.io/hostname": SIMULATED_NODE,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/role": "agent",
                "type": "kwok"
            }
        },
        "status": {
            "allocatable": { "cpu": "32", "memory": "256Gi", "pods": "110" },
            "capacity": { "cpu": "32", "memory": "256Gi", "pods": "110" }
        }
    })
}

/// A kube client for `config`. Installs ring as rustls' process-wide crypto provider first:
/// when the whole workspace is built together, another crate's dependencies also enable
/// aws-lc-rs, and rustls then refuses to pick a default on its own.
fn kube_client(config: kube::Config) -> std::result::Result<Client, kube::Error> {
    static PROVIDER: std::sync::Once = std::sync::Once::new();
    PROVIDER.call_once(|| {
        // Err only when a provider is installed already, which is what we want anyway.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    Client::try_from(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_file_parses() {
        let v = Versions::pinned();
        assert!(v.kubernetes.starts_with("1."), "{v:?}");
        assert!(v.etcd.starts_with("3."), "{v:?}");
    }

    #[test]
    fn bin_dir_prefers_env_then_cache_then_home() {
        let v = Versions {
            kubernetes: "1.2.3".into(),
            etcd: "3.4.5".into(),
            kwok: "0.1.0".into(),
        };
        assert_eq!(
            resolve_bin_dir(Some("/x".into()), Some("/c".into()), Some("/h".into()), &v),
            PathBuf::from("/x")
        );
        assert_eq!(
            resolve_bin_dir(None, Some("/c".into()), Some("/h".into()), &v),
            PathBuf::from("/c/k8s/1.2.3-etcd3.4.5/bin")
        );
        assert_eq!(
            resolve_bin_dir(Some("".into()), None, Some("/h".into()), &v),
            PathBuf::from("/h/.cache/meniscus/k8s/1.2.3-etcd3.4.5/bin")
        );
    }

    #[test]
    fn missing_binaries_name_the_build_script() {
        let dir = tempfile::tempdir().unwrap();
        let err = check_binaries(dir.path(), true).unwrap_err().to_string();
        assert!(err.contains("tools/k8s/build.sh"), "{err}");
        assert!(err.contains("kube-apiserver"), "{err}");
    }

    #[test]
    fn pki_is_generated() {
        let dir = tempfile::tempdir().unwrap();
        let pki = generate_pki(dir.path()).unwrap();
        assert!(pki.ca_pem.contains("BEGIN CERTIFICATE"));
        for f in [
            "ca.crt",
            "apiserver.crt",
            "apiserver.key",
            "admin.crt",
            "admin.key",
            "sa.key",
        ] {
            assert!(dir.path().join("pki").join(f).is_file(), "{f}");
        }
    }
}
