//! Operator scale benchmark (`bench/operator/run.sh`): the real `meniscus-operator` binary, as
//! a process of its own, against a private testenv control plane (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler, kwok) on loopback.
//!
//! 1. One small `MeniscusGrid`, waited for until Ready (its coordinator then runs in the
//!    operator, which Tenants need to become Ready).
//! 2. `--tenants` Tenants of that grid created at once (`--in-flight` creates at a time):
//!    wall time from the first create until every one has `Ready=True` (a list every
//!    500 ms), the operator's API writes per tenant, its peak memory (VmHWM).
//! 3. The grid's correlators set to `replicas: {min: N, max: N}`: time until the StatefulSet
//!    asks for N, time until the grid's status counts N ready (kwok marks the pods ready),
//!    and the API writes that took.
//!
//! Writes are counted twice: by the operator (`meniscus_operator_api_writes_total` on its
//! `/metrics`, per kind) and by the API server (`apiserver_request_total`, on the resources
//! the operator writes), since the operator's counter does not see every write it causes
//! (e.g. the finalizers kube-runtime adds). Timings are reported, never asserted.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Node, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use meniscus_operator::crd::grid::MeniscusGrid;
use meniscus_operator::crd::tenant::Tenant;
use meniscus_testenv::{wait_for, ControlPlane, Versions};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How often readiness is polled (the resolution of the timings).
const POLL: Duration = Duration::from_millis(500);
/// The grid every tenant refers to.
const GRID: &str = "main";
const FIELD_MANAGER: &str = "meniscus-scale-bench";
/// What the operator logs when a grid's reconcile takes a tenant out of its coordinator for
/// want of a Tenant object.
const ORPHAN_WARNING: &str = "taken out of the coordinator";

#[derive(Debug, Parser)]
#[command(about = "Operator scale benchmark: many Tenants, a grid scaled out")]
struct Args {
    /// Tenants created at once.
    #[arg(long, default_value_t = 1000)]
    tenants: usize,
    /// Creates in flight at a time.
    #[arg(long, default_value_t = 32)]
    in_flight: usize,
    /// Correlator replicas the grid is scaled to.
    #[arg(long, default_value_t = 100)]
    replicas: i32,
    /// Simulated (kwok) nodes, testenv's own included.
    #[arg(long, default_value_t = 4)]
    nodes: usize,
    /// The operator binary; default: `meniscus-operator` of this example's build.
    #[arg(long, env = "MENISCUS_OPERATOR_BIN")]
    operator_bin: Option<PathBuf>,
    /// Where the operator's log goes.
    #[arg(long)]
    operator_log: Option<PathBuf>,
    /// Give up waiting after this long (per phase); what was reached is still reported.
    #[arg(long, default_value_t = 600)]
    timeout_seconds: u64,
    /// How long to keep counting writes after a phase is done (trailing writes count too).
    #[arg(long, default_value_t = 10)]
    settle_seconds: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let bin = operator_bin(&args)?;
    let log = args
        .operator_log
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("meniscus-scale-bench-operator.log"));
    progress("starting the control plane (testenv)");
    let cp = ControlPlane::start().await?;
    ensure!(
        cp.has_simulated_nodes(),
        "pods must get ready for the scale phase: unset MENISCUS_K8S_NO_KWOK"
    );
    let client = cp.client()?;
    install_crds(&client).await?;
    // kwok renews the nodes' Leases (testenv starts it so), as kubelets do.
    add_nodes(&client, args.nodes.saturating_sub(1)).await?;
    // A volume per correlator and the storage replica, and a few spare.
    cp.add_volumes(args.replicas as usize + 5, "1Gi").await?;
    let ns = cp.namespace("scale-bench").await?;

    progress(&format!(
        "starting {} (log: {})",
        bin.display(),
        log.display()
    ));
    let mut operator = Operator::start(&bin, cp.kubeconfig_path(), &log)?;
    operator.wait_healthy().await?;
    let bench = Bench {
        client,
        ns,
        timeout: Duration::from_secs(args.timeout_seconds),
        settle: Duration::from_secs(args.settle_seconds),
    };
    let grid_ready = bench.create_grid().await?;
    progress(&format!("grid Ready after {grid_ready:.1?}"));
    let tenants = bench
        .tenant_phase(&mut operator, args.tenants, args.in_flight)
        .await?;
    let scale = bench.scale_phase(&mut operator, args.replicas).await?;
    let end_memory = operator.memory()?;
    drop(operator);
    report(&args, grid_ready, &tenants, &scale, end_memory);
    Ok(())
}

/// `meniscus-operator` beside this example's build (`target/PROFILE/examples/..`).
fn operator_bin(args: &Args) -> Result<PathBuf> {
    if let Some(bin) = &args.operator_bin {
        return Ok(bin.clone());
    }
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("this example's directory")?;
    let bin = profile_dir.join("meniscus-operator");
    ensure!(
        bin.is_file(),
        "{} missing: `cargo build -p meniscus-operator --bin meniscus-operator` (same profile), or pass --operator-bin",
        bin.display()
    );
    Ok(bin)
}

/// The 1-minute load average: the machine may be shared (builds, tests), which the timings
/// should be read against.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn progress(message: &str) {
    eprintln!("scale_bench: {message}");
}

/// The CRDs as the repository ships them (`crds/*.yaml`), applied and Established.
async fn install_crds(client: &Client) -> Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_none_or(|ext| ext != "yaml") {
            continue;
        }
        let crd: CustomResourceDefinition = serde_yaml::from_str(&std::fs::read_to_string(&path)?)
            .with_context(|| format!("parsing {}", path.display()))?;
        let name = crd.metadata.name.clone().unwrap_or_default();
        let apply = PatchParams::apply(FIELD_MANAGER).force();
        crds.patch(&name, &apply, &Patch::Apply(&crd)).await?;
        wait_for(
            Duration::from_secs(60),
            "a CRD to be Established",
            || async {
                let crd = crds.get(&name).await?;
                Ok(crd
                    .status
                    .and_then(|status| status.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True"))
            },
        )
        .await?;
    }
    Ok(())
}

/// More simulated nodes beside testenv's one, managed by the same kwok (its annotation), so
/// the scaled-out grid spreads as it would.
async fn add_nodes(client: &Client, count: usize) -> Result<()> {
    let nodes = Api::<Node>::all(client.clone());
    for i in 1..=count {
        let name = format!("kwok-bench-{i}");
        let node: Node = serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                           "kubernetes.io/arch": "amd64", "type": "kwok"}
            },
            "status": {
                "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                "capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"}
            }
        }))?;
        nodes.create(&PostParams::default(), &node).await?;
        wait_for(
            Duration::from_secs(60),
            "kwok to make a node Ready",
            || async {
                let node = nodes.get(&name).await?;
                Ok(node
                    .status
                    .and_then(|status| status.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True"))
            },
        )
        .await?;
    }
    Ok(())
}

/// A free loopback port (bound, read, released).
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Peak and current resident memory of a process, in KiB.
#[derive(Clone, Copy, Debug, Default)]
struct Memory {
    peak_kib: u64,
    rss_kib: u64,
}

/// The operator binary as a child process; killed when dropped.
struct Operator {
    child: Child,
    metrics: SocketAddr,
    log: PathBuf,
}

impl Operator {
    fn start(bin: &Path, kubeconfig: &Path, log: &Path) -> Result<Operator> {
        let metrics = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
        // Not the default 0.0.0.0:7400: tests running beside the bench may use it.
        let coordinators = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()?));
        let out =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(bin)
            .env("KUBECONFIG", kubeconfig)
            // As deployed (the chart sets no filter): info, JSON, so logging costs count.
            .env("RUST_LOG", "info")
            .args(["--metrics-address", &metrics.to_string()])
            .args(["--coordinator-address", &coordinators.to_string()])
            .args(["--instance", "scale-bench"])
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        Ok(Operator {
            child,
            metrics,
            log: log.to_path_buf(),
        })
    }

    /// Fails, pointing at the log, once the operator has exited.
    fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("the operator exited ({status}); see {}", self.log.display());
        }
        Ok(())
    }

    async fn wait_healthy(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.check_alive()?;
            if http_get(self.metrics, "/healthz").await.is_ok() {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "the operator's /healthz did not answer"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn metrics(&mut self) -> Result<String> {
        self.check_alive()?;
        http_get(self.metrics, "/metrics").await
    }

    /// Lines of its log that contain `text`.
    fn log_lines(&self, text: &str) -> usize {
        std::fs::read_to_string(&self.log).map_or(0, |log| {
            log.lines().filter(|line| line.contains(text)).count()
        })
    }

    /// VmHWM and VmRSS from /proc: the operator's own, since it is a process of its own.
    fn memory(&self) -> Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
                .with_context(|| format!("{name} missing in /proc/PID/status"))
        };
        Ok(Memory {
            peak_kib: field("VmHWM:")?,
            rss_kib: field("VmRSS:")?,
        })
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET: the operator's endpoints are plain HTTP and the crate has no HTTP
/// client of its own (no new dependency for a benchmark).
async fn http_get(address: SocketAddr, path: &str) -> Result<String> {
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let response = String::from_utf8(response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("an HTTP response without a body")?;
    ensure!(
        head.starts_with("HTTP/1.1 200"),
        "GET {path}: {}",
        head.lines().next().unwrap_or_default()
    );
    Ok(body.to_string())
}

/// One Prometheus sample line: its labels and value.
fn sample<'a>(line: &'a str, metric: &str) -> Option<(BTreeMap<&'a str, &'a str>, f64)> {
    let rest = line.strip_prefix(metric)?.strip_prefix('{')?;
    let (labels, value) = rest.rsplit_once("} ")?;
    let labels = labels
        .split("\",")
        .filter_map(|pair| {
            let (key, value) = pair.split_once("=\"")?;
            Some((key, value.trim_end_matches('"')))
        })
        .collect();
    Some((labels, value.trim().parse().ok()?))
}

/// A counter family summed by the values of one label.
fn by_label(text: &str, metric: &str, label: &str) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for (labels, value) in text.lines().filter_map(|line| sample(line, metric)) {
        let key = labels.get(label).copied().unwrap_or("").to_string();
        *counts.entry(key).or_default() += value as u64;
    }
    counts
}

/// Writes the API server served on the resources the operator writes, as
/// `resource[/subresource] VERB`. Status subresources of workloads and PDBs are left out
/// (kube-controller-manager writes those), and Events (every component makes them).
fn server_writes(text: &str) -> BTreeMap<String, u64> {
    const WRITES: [&str; 6] = [
        "POST",
        "PUT",
        "PATCH",
        "APPLY",
        "DELETE",
        "DELETECOLLECTION",
    ];
    const OURS: [&str; 2] = ["tenants", "meniscusgrids"];
    const CHILDREN: [&str; 6] = [
        "secrets",
        "statefulsets",
        "deployments",
        "services",
        "configmaps",
        "poddisruptionbudgets",
    ];
    let mut counts = BTreeMap::new();
    let samples = text
        .lines()
        .filter_map(|line| sample(line, "apiserver_request_total"));
    for (labels, value) in samples {
        let (resource, sub, verb) = (
            labels.get("resource").copied().unwrap_or(""),
            labels.get("subresource").copied().unwrap_or(""),
            labels.get("verb").copied().unwrap_or(""),
        );
        let wanted = OURS.contains(&resource) || (CHILDREN.contains(&resource) && sub.is_empty());
        if !wanted || !WRITES.contains(&verb) {
            continue;
        }
        let key = match sub {
            "" => format!("{resource} {verb}"),
            sub => format!("{resource}/{sub} {verb}"),
        };
        *counts.entry(key).or_default() += value as u64;
    }
    counts
}

/// Counters at one moment.
#[derive(Clone, Debug, Default)]
struct Snapshot {
    writes: BTreeMap<String, u64>,
    reconciles: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    server: BTreeMap<String, u64>,
}

impl Snapshot {
    /// What grew since `before`.
    fn since(&self, before: &Snapshot) -> Snapshot {
        let diff = |after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>| {
            after
                .iter()
                .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0).min(*v)))
                .filter(|(_, v)| *v > 0)
                .collect()
        };
        Snapshot {
            writes: diff(&self.writes, &before.writes),
            reconciles: diff(&self.reconciles, &before.reconciles),
            errors: diff(&self.errors, &before.errors),
            server: diff(&self.server, &before.server),
        }
    }

    /// The bench's own writes taken out of the API server's count.
    fn without_own(mut self, own: &[(&str, u64)]) -> Snapshot {
        for (key, count) in own {
            if let Some(value) = self.server.get_mut(*key) {
                *value = value.saturating_sub(*count);
            }
        }
        self.server.retain(|_, v| *v > 0);
        self
    }
}

fn total(counts: &BTreeMap<String, u64>) -> u64 {
    counts.values().sum()
}

/// Polls `check` every [`POLL`] until it holds, or `timeout` after `start`: how long after
/// `start` it held. Errors count as "not yet" (the API server is busy), and are shown.
async fn poll<F, Fut>(start: Instant, timeout: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    loop {
        match check().await {
            Ok(true) => return Some(start.elapsed()),
            Ok(false) => {}
            Err(error) => progress(&format!("poll: {error:#}")),
        }
        if start.elapsed() >= timeout {
            return None;
        }
        tokio::time::sleep(POLL).await;
    }
}

fn ready(conditions: &[meniscus_operator::crd::common::Condition]) -> bool {
    meniscus_operator::conditions::get(conditions, "Ready").is_some_and(|c| c.status == "True")
}

struct Bench {
    client: Client,
    ns: String,
    timeout: Duration,
    settle: Duration,
}

/// What the tenant phase measured.
struct TenantPhase {
    count: usize,
    in_flight: usize,
    created_in: Option<Duration>,
    ready_in: Option<Duration>,
    ready_count: usize,
    /// Counted until all were Ready, and until `settle` after.
    at_ready: Snapshot,
    settled: Snapshot,
    memory: Memory,
    /// Tenants in the coordinator's saved state once settled (it should hold them all).
    registered: Option<usize>,
    /// The operator's warnings that it took a tenant out of the coordinator as an orphan.
    taken_out: usize,
    load_before: String,
}

/// What the scale phase measured.
struct ScalePhase {
    replicas: i32,
    load_before: String,
    applied_in: Option<Duration>,
    ready_in: Option<Duration>,
    ready_count: i32,
    at_ready: Snapshot,
    settled: Snapshot,
}

impl Bench {
    fn grids(&self) -> Api<MeniscusGrid> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    fn tenants(&self) -> Api<Tenant> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn snapshot(&self, operator: &mut Operator) -> Result<Snapshot> {
        let ours = operator.metrics().await?;
        let request = http::Request::get("/metrics").body(Vec::new())?;
        let server = self.client.request_text(request).await?;
        Ok(Snapshot {
            writes: by_label(&ours, "meniscus_operator_api_writes_total", "kind"),
            reconciles: by_label(&ours, "meniscus_operator_reconciles_total", "kind"),
            errors: by_label(&ours, "meniscus_operator_reconcile_errors_total", "kind"),
            server: server_writes(&server),
        })
    }

    /// A grid with one replica of each persona, small requests; how long until Ready.
    async fn create_grid(&self) -> Result<Duration> {
        // Requests small enough for 100+ pods on a few simulated nodes.
        let small = json!({"requests": {"cpu": "10m", "memory": "32Mi"}});
        let one = json!({"min": 1, "max": 1});
        let grid: MeniscusGrid = serde_json::from_value(json!({
            "apiVersion": "meniscus.io/v1alpha1", "kind": "MeniscusGrid",
            "metadata": {"name": GRID},
            "spec": {
                "image": "registry.example/meniscus:bench",
                "personas": {
                    "correlator": {"replicas": one, "spoolSize": "1Gi", "resources": small},
                    "storage": {"replicas": one, "storageSize": "1Gi", "resources": small},
                    "tenantApi": {"replicas": one, "resources": small},
                    "broadcaster": {"replicas": one, "resources": small},
                }
            }
        }))?;
        let start = Instant::now();
        self.grids().create(&PostParams::default(), &grid).await?;
        let grids = self.grids();
        poll(start, self.timeout, || async {
            let grid = grids.get(GRID).await?;
            Ok(grid.status.is_some_and(|status| ready(&status.conditions)))
        })
        .await
        .context("the grid did not become Ready")
    }

    /// Creates `count` Tenants, `in_flight` at a time; how long after `start` the last
    /// create returned.
    async fn create_tenants(
        api: Api<Tenant>,
        count: usize,
        in_flight: usize,
        start: Instant,
    ) -> Result<Duration> {
        futures::stream::iter(0..count)
            .map(|i| {
                let api = api.clone();
                async move {
                    let tenant: Tenant = serde_json::from_value(json!({
                        "apiVersion": "meniscus.io/v1alpha1", "kind": "Tenant",
                        "metadata": {"name": format!("tenant-{i:04}")},
                        "spec": {"gridRef": GRID, "producers": [{"name": "default"}]}
                    }))?;
                    api.create(&PostParams::default(), &tenant).await?;
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(in_flight)
            .try_collect::<()>()
            .await?;
        Ok(start.elapsed())
    }

    /// Tenants in the grid's coordinator, as its saved state (the Secret) has them.
    async fn registered_tenants(&self) -> Result<usize> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.ns);
        let secret = secrets.get(&format!("{GRID}-coordinator-state")).await?;
        let bytes = secret
            .data
            .and_then(|mut data| data.remove("state.json"))
            .context("no state.json in the coordinator's Secret")?;
        let state: serde_json::Value = serde_json::from_slice(&bytes.0)?;
        Ok(state["tenants"]["specs"].as_array().map_or(0, Vec::len))
    }

    /// How many Tenants of the namespace are Ready (one list).
    async fn count_ready(&self) -> Result<usize> {
        let list = self.tenants().list(&Default::default()).await?;
        Ok(list
            .items
            .iter()
            .filter(|tenant| tenant.status.as_ref().is_some_and(|s| ready(&s.conditions)))
            .count())
    }

    async fn tenant_phase(
        &self,
        operator: &mut Operator,
        count: usize,
        in_flight: usize,
    ) -> Result<TenantPhase> {
        progress(&format!("creating {count} tenants, {in_flight} at a time"));
        let load_before = load_average();
        let before = self.snapshot(operator).await?;
        let start = Instant::now();
        let creates = tokio::spawn(Self::create_tenants(
            self.tenants(),
            count,
            in_flight,
            start,
        ));
        let last = std::cell::Cell::new(0);
        let ready_in = poll(start, self.timeout, || async {
            let ready = self.count_ready().await?;
            if ready / 100 != last.get() / 100 {
                progress(&format!(
                    "{ready}/{count} tenants Ready after {:.1?}",
                    start.elapsed()
                ));
            }
            last.set(ready);
            Ok(ready >= count)
        })
        .await;
        let at_ready = self.snapshot(operator).await?.since(&before);
        let created_in = creates.await?.ok();
        tokio::time::sleep(self.settle).await;
        let settled = self.snapshot(operator).await?.since(&before);
        let own = [("tenants POST", count as u64)];
        Ok(TenantPhase {
            load_before,
            count,
            in_flight,
            created_in,
            ready_in,
            ready_count: self.count_ready().await.unwrap_or(last.get()),
            at_ready: at_ready.without_own(&own),
            settled: settled.without_own(&own),
            memory: operator.memory()?,
            registered: self.registered_tenants().await.ok(),
            taken_out: operator.log_lines(ORPHAN_WARNING),
        })
    }

    /// The correlators' ready replicas in the grid's status.
    async fn ready_correlators(&self) -> Result<i32> {
        let grid = self.grids().get(GRID).await?;
        Ok(grid
            .status
            .and_then(|status| status.personas.get("correlator").map(|p| p.ready))
            .unwrap_or(0))
    }

    async fn scale_phase(&self, operator: &mut Operator, replicas: i32) -> Result<ScalePhase> {
        progress(&format!("scaling the grid's correlators to {replicas}"));
        let load_before = load_average();
        let before = self.snapshot(operator).await?;
        let sets: Api<StatefulSet> = Api::namespaced(self.client.clone(), &self.ns);
        let start = Instant::now();
        let patch = json!({"spec": {"personas": {"correlator": {"replicas": {"min": replicas, "max": replicas}}}}});
        self.grids()
            .patch(GRID, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        let applied_in = std::cell::Cell::new(None);
        let last = std::cell::Cell::new(0);
        let ready_in = poll(start, self.timeout, || async {
            if applied_in.get().is_none() {
                let set = sets.get(&format!("{GRID}-correlator")).await?;
                if set.spec.and_then(|spec| spec.replicas) == Some(replicas) {
                    applied_in.set(Some(start.elapsed()));
                }
            }
            let ready = self.ready_correlators().await?;
            if ready / 10 != last.get() / 10 {
                progress(&format!(
                    "{ready}/{replicas} correlators ready after {:.1?}",
                    start.elapsed()
                ));
            }
            last.set(ready);
            Ok(ready >= replicas)
        })
        .await;
        let at_ready = self.snapshot(operator).await?.since(&before);
        tokio::time::sleep(self.settle).await;
        let settled = self.snapshot(operator).await?.since(&before);
        let own = [("meniscusgrids PATCH", 1)];
        Ok(ScalePhase {
            load_before,
            replicas,
            applied_in: applied_in.get(),
            ready_in,
            ready_count: self.ready_correlators().await.unwrap_or(last.get()),
            at_ready: at_ready.without_own(&own),
            settled: settled.without_own(&own),
        })
    }
}

fn seconds(time: Option<Duration>) -> String {
    time.map_or("timed out".into(), |t| format!("{:.1} s", t.as_secs_f64()))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn yes(met: bool) -> &'static str {
    if met {
        "yes"
    } else {
        "NO"
    }
}

fn row(metric: &str, value: &str, goal: &str, met: &str) {
    println!("{metric:<58} {value:>11}  {goal:<10} {met}");
}

/// `KEY N, KEY N` of the counts.
fn listed(counts: &BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return "none".into();
    }
    let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    parts.join(", ")
}

/// The writes of a phase per kind: until done, and including the settling time after.
fn breakdown(
    title: &str,
    at_ready: &Snapshot,
    settled: &Snapshot,
    per: Option<usize>,
    settle: u64,
) {
    println!("{title}");
    println!("  operator's meniscus_operator_api_writes_total by kind: until done / +{settle} s");
    for (kind, count) in &settled.writes {
        let early = at_ready.writes.get(kind).copied().unwrap_or(0);
        println!("    {kind:<28} {early:>7} / {count:>7}");
    }
    let (early, late) = (total(&at_ready.writes), total(&settled.writes));
    println!("    {:<28} {early:>7} / {late:>7}", "total");
    let server = total(&settled.server);
    let per = per.map_or(String::new(), |n| {
        format!(" = {:.2} per tenant", server as f64 / n as f64)
    });
    println!(
        "  API server's apiserver_request_total on the operator's resources (+{settle} s, the bench's own writes left out): {server}{per}"
    );
    println!("    {}", listed(&settled.server));
    println!(
        "  reconciles: {}; failed: {}",
        listed(&settled.reconciles),
        listed(&settled.errors)
    );
}

fn report(args: &Args, grid_ready: Duration, t: &TenantPhase, s: &ScalePhase, end: Memory) {
    let build = if cfg!(debug_assertions) {
        "dev profile (debug: workspace crates unoptimized, dependencies at opt-level 1)"
    } else {
        "optimized profile"
    };
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "bench/operator: meniscus-operator ({build}) as its own process against testenv \
         (Kubernetes {}, kube-scheduler, kwok: {} simulated nodes); {}, {cpus} cpus",
        Versions::pinned().kubernetes,
        args.nodes,
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    println!(
        "grid `{GRID}` (1 replica per persona, small requests) Ready {:.1} s after its create",
        grid_ready.as_secs_f64()
    );
    println!();
    row("metric", "value", "goal", "met?");
    tenant_rows(t);
    scale_rows(s);
    let end_peak = mib(end.peak_kib);
    let value = format!("{end_peak:.1} MiB");
    let met = yes(end_peak < 100.0);
    row(
        "operator peak memory (VmHWM) at the end",
        &value,
        "< 100 MiB",
        met,
    );
    println!();
    tenant_details(t, args.settle_seconds);
    let title = format!(
        "scale: {} of {} correlators ready at the end; operator RSS at the end {:.1} MiB; load average before {}",
        s.ready_count,
        s.replicas,
        mib(end.rss_kib),
        s.load_before
    );
    breakdown(&title, &s.at_ready, &s.settled, None, args.settle_seconds);
}

/// The three goals for the tenants.
fn tenant_rows(t: &TenantPhase) {
    let label = format!("{} Tenants at once: first create -> all Ready", t.count);
    let met = t.ready_in.is_some_and(|d| d < Duration::from_secs(60));
    row(&label, &seconds(t.ready_in), "< 60 s", yes(met));
    // The grid's coordinator state (one Secret, written with SSA) is saved once the
    // registrations settle: writes for the whole burst, not per tenant. Token Secrets are
    // created (POST), so the APPLYs on secrets are those saves.
    let saves = t.settled.server.get("secrets APPLY").copied().unwrap_or(0);
    let own = (total(&t.settled.server) - saves) as f64 / t.count as f64;
    let label = "  API writes per tenant: its own (API server's count)";
    row(label, &format!("{own:.3}"), "<= 3", yes(own <= 3.0));
    let label = "  + coordinator state saves for the whole burst";
    row(label, &saves.to_string(), "-", "-");
    let ours = total(&t.settled.writes) as f64 / t.count as f64;
    let label = "  API writes per tenant, all (operator's count)";
    row(label, &format!("{ours:.3}"), "-", "-");
    let server = total(&t.settled.server) as f64 / t.count as f64;
    let label = "  API writes per tenant, all (API server's count)";
    row(label, &format!("{server:.3}"), "-", "-");
    let peak = mib(t.memory.peak_kib);
    let label = "  operator peak memory (VmHWM) after the tenants";
    row(
        label,
        &format!("{peak:.1} MiB"),
        "< 100 MiB",
        yes(peak < 100.0),
    );
}

fn scale_rows(s: &ScalePhase) {
    let label = format!(
        "grid correlators 1 -> {}: StatefulSet asks for them",
        s.replicas
    );
    row(&label, &seconds(s.applied_in), "-", "-");
    let label = format!(
        "grid correlators 1 -> {}: status counts them ready",
        s.replicas
    );
    row(&label, &seconds(s.ready_in), "-", "-");
    let ours = total(&s.settled.writes).to_string();
    row("  API writes (operator's count)", &ours, "-", "-");
    let server = total(&s.settled.server).to_string();
    row("  API writes (API server's count)", &server, "-", "-");
}

fn tenant_details(t: &TenantPhase, settle: u64) {
    let title = format!(
        "tenants: {} created, {} in flight, creates done after {}; {} Ready at the end; operator RSS then {:.1} MiB; load average before {}",
        t.count,
        t.in_flight,
        seconds(t.created_in),
        t.ready_count,
        mib(t.memory.rss_kib),
        t.load_before
    );
    breakdown(&title, &t.at_ready, &t.settled, Some(t.count), settle);
    let registered = t
        .registered
        .map_or("unreadable".to_string(), |n| n.to_string());
    println!(
        "  the coordinator's saved state holds {registered} of {} tenants {settle} s after; the operator \
         logged {} \"{ORPHAN_WARNING}\" warnings",
        t.count, t.taken_out
    );
}
