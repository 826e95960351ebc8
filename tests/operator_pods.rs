//! The pods the operator writes really run: a `MeniscusGrid` and a `Tenant` are applied to a
//! real control plane (testenv) and reconciled by the operator's controllers; then every pod
//! template the grid controller wrote becomes a local `meniscus` process, with the command,
//! arguments, ConfigMap and Secret of its pod (addresses moved to loopback ports, the mount
//! paths to folders). Kubernetes does not run containers here (no kubelet), so this is what
//! proves the templates make a working grid: the tenant registered by the Tenant controller
//! sends syslog with `logger` and HTTP, and finds its events through the tenant API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, PodSpec, Secret};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::CustomResourceExt;
use meniscus_metrics::Registry;
use meniscus_operator::context::Context;
use meniscus_operator::crd::grid::MeniscusGrid;
use meniscus_operator::crd::tenant::Tenant;
use meniscus_testenv::ControlPlane;
use meniscus_tests::pki::Pki;
use meniscus_tests::{free_port, meniscus_binary, openssl_send};
use serde_json::{json, Value};

/// One pod as a local process: the loopback ports standing in for its listeners, and its log.
struct Pod {
    name: String,
    child: Child,
    /// Container port → the loopback port standing in for it.
    ports: BTreeMap<i32, u16>,
    log: PathBuf,
}

impl Pod {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the pods of a grid share: the files of the ConfigMap and Secret they mount.
struct Mounts {
    config: String,
    secrets: PathBuf,
    /// Other Secret volumes (the TLS certificate, the client CA): mount path, local folder;
    /// longest path first, so `/etc/meniscus/tls-client-ca` is not taken for
    /// `/etc/meniscus/tls` + `-client-ca`.
    others: Vec<(String, PathBuf)>,
}

/// Starts pod `ordinal` of a workload from its template: mounts become folders, `0.0.0.0`
/// and `$(POD_IP)` become loopback with a port of its own, `$(POD_NAME)` is `name`; `grid`
/// stands for the grid port.
/// The coordinator is the operator's, in this process: the templates already name it.
fn start_pod(dir: &Path, name: &str, pod: &PodSpec, mounts: &Mounts, grid: u16) -> Pod {
    let container = &pod.containers[0];
    let root = dir.join(name);
    std::fs::create_dir_all(&root).unwrap();
    // Every address the configuration binds (a pod has its own network; here they share
    // one), declared as a container port or not.
    let mut ports = BTreeMap::new();
    let mut config = mounts.config.clone();
    for (path, local) in &mounts.others {
        config = config.replace(path.as_str(), local.to_str().unwrap());
    }
    assert!(
        !config.contains("/etc/meniscus"),
        "{name}: a path in the configuration this harness does not map:\n{config}"
    );
    let declared = container
        .ports
        .iter()
        .flatten()
        .map(|port| port.container_port);
    let bound = mounts.config.split("0.0.0.0:").skip(1).filter_map(|rest| {
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    });
    for port in declared.chain(bound) {
        if port == 7400 || ports.contains_key(&port) {
            continue;
        }
        let local = free_port();
        ports.insert(port, local);
        config = config.replace(&format!("0.0.0.0:{port}"), &format!("127.0.0.1:{local}"));
    }
    std::fs::write(root.join("meniscus.yaml"), config).unwrap();
    let args: Vec<String> = container
        .args
        .iter()
        .flatten()
        .map(|arg| {
            arg.replace("/etc/meniscus/secrets", mounts.secrets.to_str().unwrap())
                .replace(
                    "/etc/meniscus/meniscus.yaml",
                    root.join("meniscus.yaml").to_str().unwrap(),
                )
                .replace("/var/lib/meniscus", root.join("data").to_str().unwrap())
                .replace("0.0.0.0:7400", &format!("127.0.0.1:{grid}"))
                .replace("$(POD_IP):7400", &format!("127.0.0.1:{grid}"))
                .replace("$(POD_NAME)", name)
        })
        .collect();
    assert!(
        !args
            .iter()
            .any(|arg| arg.contains("$(") || arg.contains("/etc/meniscus")),
        "{name}: an argument this harness does not map: {args:?}"
    );
    let log = dir.join(format!("{name}.log"));
    let mut command = Command::new(meniscus_binary());
    command.args(&args);
    for env in container.env.iter().flatten() {
        if let Some(value) = &env.value {
            command.env(&env.name, value);
        }
    }
    let child = command
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start a pod's process");
    let pod = Pod {
        name: name.to_string(),
        child,
        ports,
        log,
    };
    let client = reqwest::blocking::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !client
        .get(format!("http://127.0.0.1:{grid}/healthz"))
        .send()
        .is_ok_and(|response| response.status().is_success())
    {
        assert!(
            Instant::now() < deadline,
            "{name} did not answer /healthz:\n{}",
            pod.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    pod
}

fn wait_until(what: &str, pods: &[Pod], mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        if Instant::now() > deadline {
            for pod in pods {
                eprintln!("--- {} ---\n{}", pod.name, pod.log());
            }
            panic!("timed out waiting until {what}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `logger` sends one RFC 5424 line over TCP to a loopback port.
fn logger(port: u16, args: &[&str], message: &str) {
    let status = Command::new("logger")
        .args([
            "--server",
            "127.0.0.1",
            "--tcp",
            "--port",
            &port.to_string(),
            "--rfc5424",
        ])
        .args(args)
        .arg(message)
        .status()
        .unwrap();
    assert!(status.success(), "logger failed");
}

fn condition(tenant: &Tenant, type_: &str) -> Option<(String, String)> {
    let status = tenant.status.as_ref()?;
    meniscus_operator::conditions::get(&status.conditions, type_)
        .map(|condition| (condition.status.clone(), condition.reason.clone()))
}

#[test]
fn the_pods_the_operator_writes_make_a_grid_that_takes_and_answers_a_tenants_logs() {
    let cp = ControlPlane::shared_blocking().expect("the control plane (tools/k8s/build.sh)");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let client = runtime.block_on(async { cp.client() }).unwrap();
    let ns = runtime.block_on(cp.namespace("operator-pods")).unwrap();
    runtime.block_on(async {
        for crd in [MeniscusGrid::crd(), Tenant::crd()] {
            let crds = Api::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>::all(client.clone());
            crds.patch(
                crd.metadata.name.as_deref().unwrap(),
                &kube::api::PatchParams::apply("meniscus-tests").force(),
                &kube::api::Patch::Apply(&crd),
            )
            .await
            .unwrap();
        }
        meniscus_testenv::wait_for(Duration::from_secs(60), "the CRDs to be served", || async {
            Ok(Api::<Tenant>::namespaced(client.clone(), &ns).list(&ListParams::default()).await.is_ok()
                && Api::<MeniscusGrid>::namespaced(client.clone(), &ns).list(&ListParams::default()).await.is_ok())
        })
        .await
        .unwrap();
    });

    // The operator, in this process, serving the grids' coordinators on a loopback port the
    // pod templates it writes will name.
    let coordinators = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let registry = Registry::new();
    let mut context = Context::new(client.clone(), &registry, Some("test".into()));
    context.coordinator_base = format!("http://{}", coordinators.local_addr().unwrap());
    context.scale_interval = Duration::from_secs(1);
    context.usage_interval = Duration::from_secs(1);
    let context = Arc::new(context);
    let router = context.coordinators.clone().router();
    runtime.spawn(async move { axum::serve(coordinators, router).await });
    runtime.spawn({
        let (context, ns) = (context.clone(), ns.clone());
        async move { meniscus_operator::grid::run(context, Some(&ns)).await }
    });
    runtime.spawn({
        let (context, ns) = (context.clone(), ns.clone());
        async move { meniscus_operator::tenant::run(context, Some(&ns)).await }
    });

    // Syslog over TLS with the server certificate's Secret, and a CA whose client
    // certificates identify tenants (tlsClientIdentities).
    let pki = Pki::generate();
    let (server_cert, server_key) = pki.server();
    let gateway = pki.client("gateway", "gateway-3.acme.example", &[]);
    let secret_of = |name: &str, files: &[(&str, &Path)]| -> Secret {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "stringData": files
                .iter()
                .map(|(key, path)| (key.to_string(), Value::from(std::fs::read_to_string(path).unwrap())))
                .collect::<serde_json::Map<_, _>>(),
        }))
        .unwrap()
    };
    let secrets_api = Api::<Secret>::namespaced(client.clone(), &ns);
    for secret in [
        secret_of(
            "ingest-tls",
            &[("tls.crt", &server_cert), ("tls.key", &server_key)],
        ),
        secret_of("device-ca", &[("ca.crt", &pki.ca())]),
    ] {
        runtime
            .block_on(secrets_api.create(&PostParams::default(), &secret))
            .unwrap();
    }
    let grids = Api::<MeniscusGrid>::namespaced(client.clone(), &ns);
    let grid: MeniscusGrid = serde_json::from_value(json!({
        "apiVersion": "meniscus.io/v1alpha1", "kind": "MeniscusGrid",
        "metadata": {"name": "main"},
        "spec": {
            "image": "meniscus:test", "storageCopies": 1,
            "listeners": {"syslogTls": 6514},
            "tlsSecret": "ingest-tls", "tlsClientCaSecret": "device-ca",
        },
    }))
    .unwrap();
    runtime
        .block_on(grids.create(&PostParams::default(), &grid))
        .unwrap();

    // A tenant, by kubectl, with a port of its own for devices that cannot send a token: the
    // Tenant controller makes its token and registers it (once the coordinator runs); the
    // grid controller adds its port to the correlators.
    let tenant_yaml = dir.path().join("tenant.yaml");
    std::fs::write(
        &tenant_yaml,
        format!("apiVersion: meniscus.io/v1alpha1\nkind: Tenant\nmetadata: {{name: acme, namespace: {ns}}}\nspec:\n  gridRef: main\n  producers:\n    - {{name: web, durable: true}}\n    - {{name: sshd, pattern: sshd}}\n  dedicatedPort: 6601\n  tlsClientIdentities: [gateway-3.acme.example]\n  purgeGrace: 2s\n"),
    )
    .unwrap();
    let output = cp
        .kubectl(&["apply", "-f", tenant_yaml.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // What the grid controller wrote.
    let sets = Api::<StatefulSet>::namespaced(client.clone(), &ns);
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    let templates = runtime.block_on(async {
        meniscus_testenv::wait_for(
            Duration::from_secs(60),
            "the grid's workloads, the tenant's port in",
            || async {
                let correlator = sets.get_opt("main-correlator").await?;
                let dedicated = correlator
                    .and_then(|set| set.spec?.template.spec)
                    .is_some_and(|pod| {
                        pod.containers[0]
                            .ports
                            .iter()
                            .flatten()
                            .any(|port| port.container_port == 6601)
                    });
                Ok(dedicated
                    && sets.list(&ListParams::default()).await?.items.len() == 3
                    && deployments.list(&ListParams::default()).await?.items.len() == 2)
            },
        )
        .await
        .unwrap();
        let mut templates: BTreeMap<String, (i32, PodSpec)> = BTreeMap::new();
        for set in sets.list(&ListParams::default()).await.unwrap() {
            let spec = set.spec.unwrap();
            templates.insert(
                set.metadata.name.unwrap(),
                (spec.replicas.unwrap_or(1), spec.template.spec.unwrap()),
            );
        }
        for deployment in deployments.list(&ListParams::default()).await.unwrap() {
            let spec = deployment.spec.unwrap();
            templates.insert(
                deployment.metadata.name.unwrap(),
                (spec.replicas.unwrap_or(1), spec.template.spec.unwrap()),
            );
        }
        templates
    });
    let (config, secret) = runtime.block_on(async {
        let config = Api::<ConfigMap>::namespaced(client.clone(), &ns)
            .get("main-config")
            .await
            .unwrap();
        let secret = Api::<Secret>::namespaced(client.clone(), &ns)
            .get("main-secrets")
            .await
            .unwrap();
        (config, secret)
    });
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    for (key, value) in secret.data.unwrap() {
        std::fs::write(secrets.join(key), value.0).unwrap();
    }
    // Every other Secret a template mounts, as a folder of its own.
    let mut others: Vec<(String, PathBuf)> = Vec::new();
    for (_, pod) in templates.values() {
        let mounted = pod.containers[0].volume_mounts.iter().flatten();
        for mount in mounted.filter(|mount| mount.mount_path != "/etc/meniscus/secrets") {
            let secret = pod
                .volumes
                .iter()
                .flatten()
                .find(|volume| volume.name == mount.name)
                .and_then(|volume| volume.secret.as_ref())
                .and_then(|secret| secret.secret_name.clone());
            let Some(secret) = secret else { continue };
            if others.iter().any(|(path, _)| *path == mount.mount_path) {
                continue;
            }
            let local = dir.path().join("mounts").join(&secret);
            std::fs::create_dir_all(&local).unwrap();
            let secret = runtime
                .block_on(Api::<Secret>::namespaced(client.clone(), &ns).get(&secret))
                .unwrap();
            for (key, value) in secret.data.unwrap_or_default() {
                std::fs::write(local.join(key), value.0).unwrap();
            }
            others.push((mount.mount_path.clone(), local));
        }
    }
    others.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
    let mounts = Mounts {
        config: config.data.unwrap()["meniscus.yaml"].clone(),
        secrets,
        others,
    };

    // Every pod of every workload.
    let mut pods = Vec::new();
    for (workload, (replicas, pod)) in &templates {
        for ordinal in 0..*replicas {
            let name = format!("{workload}-{ordinal}");
            pods.push(start_pod(dir.path(), &name, pod, &mounts, free_port()));
        }
    }
    let pod = |prefix: &str| {
        pods.iter()
            .find(|pod| pod.name.starts_with(prefix))
            .unwrap()
    };
    let correlator = pod("main-correlator");
    let tenant_api = pod("main-tenant-api");
    let syslog = correlator.ports[&5514];
    let publish = format!(
        "http://127.0.0.1:{}/v1/tenant/acme/publish",
        correlator.ports[&8080]
    );
    let events = format!(
        "http://127.0.0.1:{}/v1/tenant/acme/events?limit=100",
        tenant_api.ports[&8080]
    );

    let tenants = Api::<Tenant>::namespaced(client.clone(), &ns);
    wait_until("the tenant is registered", &pods, || {
        let tenant = runtime.block_on(tenants.get("acme")).unwrap();
        condition(&tenant, "Ready") == Some(("True".into(), "Registered".into()))
    });
    let tenant = runtime.block_on(tenants.get("acme")).unwrap();
    let token_secret = tenant.status.unwrap().token_secret.unwrap();
    let token = runtime
        .block_on(Api::<Secret>::namespaced(client.clone(), &ns).get(&token_secret))
        .unwrap();
    let token = String::from_utf8(token.data.unwrap()["token"].0.clone()).unwrap();
    assert_eq!(token.len(), 64);

    // The workers get the tenant through the broadcaster: a durable publish is taken...
    let http = reqwest::blocking::Client::new();
    let send = |token: &str, msg: &str| {
        http.post(&publish)
            .header("MESSAGE-TOKEN", token)
            .json(&json!([{"log_message": {"pname": "web", "host": "h", "msg": msg}}]))
            .send()
            .map(|response| response.status().as_u16())
            .unwrap_or(0)
    };
    wait_until("the correlator takes the tenant's publish", &pods, || {
        send(&token, "over http") == 202
    });
    // ... and syslog from logger, normalized by the correlator (no normalizer hop by default).
    let token_sd = format!("token=\"{token}\"");
    logger(
        syslog,
        &[
            "--sd-id",
            "meniscus@32473",
            "--sd-param",
            "tenant=\"acme\"",
            "--sd-param",
            &token_sd,
            "--tag",
            "sshd",
        ],
        "Accepted publickey for alice from 10.0.0.7 port 5214 ssh2",
    );
    // A wrong token is refused and stores nothing.
    assert_eq!(send("not-the-token", "refused"), 401);
    let found = |msg: &str| -> Option<Value> {
        let page: Value = http
            .get(&events)
            .header("MESSAGE-TOKEN", &token)
            .send()
            .ok()?
            .json()
            .ok()?;
        page["events"]
            .as_array()?
            .iter()
            .find(|event| event["msg"] == msg)
            .cloned()
    };
    wait_until(
        "both events are found through the tenant API",
        &pods,
        || {
            found("over http").is_some()
                && found("Accepted publickey for alice from 10.0.0.7 port 5214 ssh2").is_some()
        },
    );
    // A device without a token, on the tenant's own port.
    let dedicated = correlator.ports[&6601];
    logger(
        dedicated,
        &["--tag", "router"],
        "link up on the tenant's own port",
    );
    wait_until("the tokenless event is the tenant's", &pods, || {
        found("link up on the tenant's own port").is_some()
    });
    // A device with a certificate the Tenant names, over TLS, without a token.
    let outcome = openssl_send(
        correlator.ports[&6514],
        &pki.ca(),
        Some((&gateway.0, &gateway.1)),
        &format!(
            "<13>1 {} gateway-3 app - - - sent with a client certificate\n",
            chrono::Utc::now().to_rfc3339()
        ),
    );
    assert!(outcome.success, "{outcome:?}");
    wait_until("the certificate's event is the tenant's", &pods, || {
        found("sent with a client certificate").is_some()
    });
    let status = runtime
        .block_on(tenants.get("acme"))
        .unwrap()
        .status
        .unwrap();
    assert_eq!(
        status.ingest_endpoints[0],
        format!("main-ingest.{ns}.svc:6601/syslog-tcp"),
        "{:?}",
        status.ingest_endpoints
    );
    let login = found("Accepted publickey for alice from 10.0.0.7 port 5214 ssh2").unwrap();
    assert_eq!(login["normalized"]["sshd"]["user"], "alice", "{login}");
    assert!(found("refused").is_none());

    // The coordinator fails over (this replica stops serving it, as a new leader would start
    // cold): the next one starts from the state in the grid's Secret, so every worker carries
    // on under the id it had (no pairing again) and the tenant's token still works.
    let coordinator = context.coordinators.get(&ns, "main").unwrap();
    let ids = |coordinator: &meniscus_coordinator::Coordinator| {
        coordinator.with_state(|state| {
            let mut ids: Vec<String> = state
                .workers
                .iter()
                .map(|worker| worker.id.0.clone())
                .collect();
            ids.sort();
            ids
        })
    };
    let workers = ids(&coordinator);
    assert_eq!(workers.len(), pods.len());
    // A replica stopping on SIGTERM flushes the newest state into the Secret first.
    runtime.block_on(context.coordinators.flush(Duration::from_secs(10)));
    let in_memory = coordinator.with_state(|state| (state.route_version, state.next_worker));
    let saved = runtime
        .block_on(Api::<Secret>::namespaced(client.clone(), &ns).get("main-coordinator-state"))
        .unwrap();
    let saved: meniscus_coordinator::state::State =
        serde_json::from_slice(&saved.data.unwrap()["state.json"].0).unwrap();
    assert_eq!((saved.route_version, saved.next_worker), in_memory);
    drop(coordinator);
    context.coordinators.stop(&ns, "main");
    wait_until("a coordinator serves the grid again", &pods, || {
        context.coordinators.get(&ns, "main").is_some()
    });
    let coordinator = context.coordinators.get(&ns, "main").unwrap();
    wait_until("every worker is heard from again", &pods, || {
        coordinator.with_state(|state| {
            state
                .workers
                .iter()
                .filter(|worker| worker.status == meniscus_grid::routes::WorkerStatus::Online)
                .count()
        }) == pods.len()
    });
    assert_eq!(
        ids(&coordinator),
        workers,
        "workers paired again: the state was not carried over"
    );
    wait_until("the tenant publishes after the failover", &pods, || {
        send(&token, "after the failover") == 202
    });
    wait_until("it is found", &pods, || {
        found("after the failover").is_some()
    });

    // The autoscaler: at 2 events/s per replica, a steady 10 events/s asks for the second
    // correlator and the second storage worker the ranges allow (the storage worker reports
    // the events it stores); 10 searches a second, at 1 per tenant API replica, a second
    // tenant API; 3 workers following the broadcaster, at 2 each, a second broadcaster. The
    // workloads follow the decisions in the status.
    let patch_grid = |patch: &Value| {
        runtime
            .block_on(grids.patch(
                "main",
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(patch),
            ))
            .unwrap();
    };
    let patch = json!({"spec": {
        "personas": {
            "correlator": {"replicas": {"min": 1, "max": 2}},
            "storage": {"replicas": {"min": 1, "max": 2}},
            "tenantApi": {"replicas": {"min": 1, "max": 2}},
            "broadcaster": {"replicas": {"min": 1, "max": 2}},
        },
        "autoscaling": {
            "eventsPerSecondPerReplica": 2, "scaleUpWindowSeconds": 0,
            "requestsPerSecondPerTenantApi": 1, "workersPerBroadcaster": 2,
        },
    }});
    patch_grid(&patch);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = std::thread::spawn({
        let (stop, publish, token) = (stop.clone(), publish.clone(), token.clone());
        let events = events.clone();
        move || {
            let http = reqwest::blocking::Client::new();
            let mut sent = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = json!([{"log_message": {"pname": "web", "host": "h", "msg": format!("load {sent}")}}]);
                let _ = http
                    .post(&publish)
                    .header("MESSAGE-TOKEN", &token)
                    .json(&body)
                    .send();
                let _ = http.get(&events).header("MESSAGE-TOKEN", &token).send();
                sent += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });
    let replicas = |name: &str| {
        let set = runtime.block_on(sets.get(name)).unwrap();
        set.spec.unwrap().replicas
    };
    let deployment_replicas = |name: &str| {
        let deployment = runtime.block_on(deployments.get(name)).unwrap();
        deployment.spec.unwrap().replicas
    };
    wait_until(
        "the autoscaler asks for a second replica of each persona",
        &pods,
        || {
            replicas("main-correlator") == Some(2)
                && replicas("main-storage") == Some(2)
                && deployment_replicas("main-tenant-api") == Some(2)
                && deployment_replicas("main-broadcaster") == Some(2)
        },
    );
    // The decision is written to the status right after the StatefulSet.
    let decided = |persona: &str| {
        let grid = runtime.block_on(grids.get("main")).unwrap();
        grid.status.unwrap().personas[persona].clone()
    };
    wait_until("the grid's status keeps the decisions", &pods, || {
        ["correlator", "storage", "tenant-api", "broadcaster"]
            .iter()
            .all(|persona| decided(persona).desired == 2)
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    load.join().unwrap();
    let correlator = decided("correlator");
    assert!(correlator.events_per_second > 2.0, "{correlator:?}");
    assert!(decided("storage").events_per_second > 2.0);
    assert!(decided("tenant-api").events_per_second > 1.0);
    assert_eq!(
        decided("broadcaster").events_per_second,
        3.0,
        "workers followed"
    );

    // Storage scales down without a loss. The second storage worker runs now, as its
    // StatefulSet asks, and holds events of its own (published to it directly); then the
    // range is lowered to one. The operator has it hand its tenants off before the
    // StatefulSet drops it, the StatefulSet deletes its volume, and once its pod is gone it
    // leaves the grid. (The other personas' second replicas never run here, and a reading
    // from fewer workers than replicas holds their scale-down: the autoscaler's table tests
    // cover that.)
    let storage_template = templates["main-storage"].1.clone();
    let second = start_pod(
        dir.path(),
        "main-storage-1",
        &storage_template,
        &mounts,
        free_port(),
    );
    let coordinator = context.coordinators.get(&ns, "main").unwrap();
    let named = |name: &str| {
        coordinator.with_state(|state| {
            state
                .workers
                .iter()
                .find(|worker| worker.name.as_deref() == Some(name))
                .map(|worker| (worker.status, worker.draining, worker.load.handed_off))
        })
    };
    let online = meniscus_grid::routes::WorkerStatus::Online;
    wait_until("the second storage worker is online", &pods, || {
        named("main-storage-1").is_some_and(|(status, _, _)| status == online)
    });
    let direct = format!(
        "http://127.0.0.1:{}/v1/tenant/acme/publish",
        second.ports[&8080]
    );
    let held: Vec<String> = (0..20)
        .map(|n| format!("held by the second storage worker {n}"))
        .collect();
    for msg in &held {
        wait_until("the second storage worker takes a publish", &pods, || {
            http.post(&direct)
                .header("MESSAGE-TOKEN", &token)
                .json(&json!([{"log_message": {"pname": "web", "host": "h", "msg": msg}}]))
                .send()
                .is_ok_and(|response| response.status().as_u16() == 202)
        });
    }
    wait_until("its events are found", &pods, || {
        held.iter().all(|msg| found(msg).is_some())
    });
    let patch = json!({"spec": {"personas": {"storage": {"replicas": {"min": 1, "max": 1}}}}});
    patch_grid(&patch);
    wait_until(
        "the storage StatefulSet shrinks once the hand-off is done",
        &pods,
        || replicas("main-storage") == Some(1),
    );
    assert_eq!(
        named("main-storage-1").map(|(_, draining, handed_off)| (draining, handed_off)),
        Some((true, true)),
        "it shrank only after the hand-off"
    );
    let policy = runtime
        .block_on(sets.get("main-storage"))
        .unwrap()
        .spec
        .unwrap()
        .persistent_volume_claim_retention_policy
        .unwrap();
    assert_eq!(policy.when_scaled.as_deref(), Some("Delete"));
    let manifest = dir.path().join("main-storage-1/data/hot/MANIFEST.json");
    let manifest = std::fs::read_to_string(&manifest).unwrap();
    assert!(!manifest.contains("\"acme\""), "files left: {manifest}");
    // The StatefulSet controller deletes the pod (here: the harness stops its process).
    drop(second);
    wait_until("the drained worker leaves the grid", &pods, || {
        named("main-storage-1").is_none()
    });
    wait_until("everything it held is found on the first", &pods, || {
        held.iter().all(|msg| found(msg).is_some())
    });

    // The Tenant's status counts what the correlators took (every publish above, the
    // load included) and when.
    let sent_before_load = 5;
    wait_until("the Tenant's status counts its events", &pods, || {
        let status = runtime.block_on(tenants.get("acme")).unwrap().status;
        status.is_some_and(|status| {
            status.events_received > sent_before_load && status.last_event_time.is_some()
        })
    });

    // Deleting the Tenant takes it out of the grid at once (its token stops working), and
    // after its purgeGrace (2 s) the storage worker deletes its data; then the Tenant goes.
    runtime
        .block_on(tenants.delete("acme", &DeleteParams::default()))
        .unwrap();
    wait_until("the deleted tenant's token is refused", &pods, || {
        send(&token, "after delete") == 401
    });
    wait_until("the Tenant is gone", &pods, || {
        runtime.block_on(tenants.get_opt("acme")).unwrap().is_none()
    });
    let storage = pod("main-storage");
    let log = storage.log();
    let purged = log
        .lines()
        .find(|line| line.contains("tenant purged") && line.contains("acme"))
        .unwrap_or_else(|| panic!("no purge in the storage worker's log:\n{log}"));
    // The purge flushed what was in memory first, then deleted those files too.
    let files: usize = purged
        .split("\"files\":")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("{purged}"));
    assert!(files >= 1, "{purged}");
    let hot = dir.path().join(&storage.name).join("data/hot");
    assert!(hot.join("MANIFEST.json").exists(), "{}", hot.display());
    assert!(!hot.join("acme").exists(), "acme's files are still there");
    let manifests: String = std::fs::read_dir(&hot)
        .unwrap()
        .flatten()
        .filter(|entry| entry.path().is_file())
        .map(|entry| std::fs::read_to_string(entry.path()).unwrap_or_default())
        .collect();
    assert!(
        !manifests.contains("\"acme\""),
        "the hot manifest still names acme"
    );
    // Done: the coordinator forgot the order.
    let coordinator = context.coordinators.get(&ns, "main").unwrap();
    assert!(coordinator.with_state(|state| state.purges.is_empty()));
}
