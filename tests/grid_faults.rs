//! The grid under faults, as real processes on loopback: the network between correlators
//! and normalizers cut for 30 s, then between normalizers and storage workers for 15 s, a
//! normalizer killed with `kill -9` mid-stream, the coordinator killed while ingest goes on,
//! a storage worker added mid-stream, and a storage worker that stops answering altogether. Senders
//! are HTTP publishers, rsyslog and util-linux `logger`; every producer is durable, so every
//! acknowledged event must be found exactly once afterwards.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use meniscus_tests::grid::{
    assert_exactly_once, get_json, logger_tcp, put_acme, search_all, wait_until, write_secrets,
    Coordinator, GridWorker, Publishers, TOKEN,
};
use meniscus_tests::{free_port, numbered_lines, Peer};
use serde_json::{json, Value};

const SYSLOG_TCP: &str = "[{protocol: tcp, address: \"127.0.0.1:{syslog}\"}]";

/// Publishes one durable message; the HTTP status (0 when the request failed).
fn publish(correlator: &GridWorker, msg: &str) -> u16 {
    publish_as(correlator, "web", msg)
}

/// Publishes one message from producer `pname`; the HTTP status (0 when the request failed).
fn publish_as(correlator: &GridWorker, pname: &str, msg: &str) -> u16 {
    reqwest::blocking::Client::new()
        .post(correlator.url("/v1/tenant/acme/publish"))
        .header("MESSAGE-TOKEN", TOKEN)
        .timeout(Duration::from_secs(30))
        .json(&json!({"log_message": {"pname": pname, "host": "h", "msg": msg}}))
        .send()
        .map(|response| response.status().as_u16())
        .unwrap_or(0)
}

/// `len` hex digits that zstd cannot shrink much (xorshift), seeded by `seed`.
fn incompressible(seed: u64, len: usize) -> String {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut text = String::with_capacity(len + 16);
    while text.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        text.push_str(&format!("{state:016x}"));
    }
    text.truncate(len);
    text
}

/// Each sender's spool bytes and events spooled / acknowledged, for failure messages.
fn spool_state<W: std::borrow::Borrow<GridWorker>>(correlators: &[W]) -> String {
    correlators
        .iter()
        .map(|correlator| {
            let correlator = correlator.borrow();
            format!(
                "{}: {} bytes spooled, {}/{} events acknowledged",
                correlator.name,
                correlator.metric("meniscus_link_spool_bytes"),
                correlator.metric("meniscus_link_events_acknowledged_total"),
                correlator.metric("meniscus_link_events_spooled_total"),
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Polls `done` every 200 ms for up to `seconds`; whether it became true.
/// A grid's directory (its secrets written) and coordinator, with acme's one durable
/// producer.
fn acme_grid() -> (tempfile::TempDir, Coordinator) {
    let dir = tempfile::tempdir().unwrap();
    write_secrets(dir.path());
    let coordinator = Coordinator::start(dir.path(), free_port());
    put_acme(&coordinator, json!([{"name": "default", "durable": true}]));
    (dir, coordinator)
}

/// A storage worker (with the tenant API) named `storage`.
fn storage_worker(dir: &std::path::Path, coordinator: &Coordinator) -> GridWorker {
    GridWorker::start(dir, "storage", "storage,tenant-api", coordinator, "[]")
}

fn wait_for(seconds: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

#[test]
fn a_grid_rides_out_cut_links_a_normalizer_crash_a_coordinator_outage_and_a_new_storage_worker() {
    let dir = tempfile::tempdir().unwrap();
    write_secrets(dir.path());
    let coordinator_port = free_port();
    let mut coordinator = Some(Coordinator::start(dir.path(), coordinator_port));
    let grid = coordinator.as_ref().unwrap();
    // Everything durable; the `web` producer's records are also sealed in the spools, and
    // the `sshd` producer's events go through the built-in sshd rulebase.
    put_acme(
        grid,
        json!([
            {"name": "web", "durable": true, "encrypted": true},
            {"name": "sshd", "pattern": "sshd", "durable": true},
            {"name": "default", "durable": true},
        ]),
    );
    let broadcaster = GridWorker::start(dir.path(), "broadcaster", "broadcaster", grid, "[]");
    let (storage_a, proxy_a) =
        GridWorker::start_behind_proxy(dir.path(), "storage-a", "storage,tenant-api", grid, "[]");
    let (storage_b, proxy_b) =
        GridWorker::start_behind_proxy(dir.path(), "storage-b", "storage,tenant-api", grid, "[]");
    // Normalizers of their own: correlators send to them, they send to storage.
    let (normalizer_a, cut_a) =
        GridWorker::start_behind_proxy(dir.path(), "normalizer-a", "normalizer", grid, "[]");
    let (mut normalizer_b, cut_b) =
        GridWorker::start_behind_proxy(dir.path(), "normalizer-b", "normalizer", grid, "[]");
    let correlators = [
        GridWorker::start(dir.path(), "correlator-a", "correlator", grid, SYSLOG_TCP),
        GridWorker::start(dir.path(), "correlator-b", "correlator", grid, SYSLOG_TCP),
    ];
    let tenant_api = GridWorker::start(dir.path(), "tenant-api", "tenant-api", grid, "[]");
    wait_until("all eight workers are online", 60, || grid.online() == 8);
    let mut expected = Vec::new();
    for correlator in &correlators {
        let first = format!("first-{}", correlator.name);
        wait_until("the correlator takes a durable publish", 60, || {
            publish(correlator, &first) == 202
        });
        expected.push(first);
    }
    let rsyslog = Peer::start(
        "rsyslog-forward.sh",
        correlators[0].syslog,
        "octet",
        None,
        &[("TENANT", "acme"), ("TOKEN", TOKEN)],
    );
    // sshd logins (through the rulebase) alongside rsyslog and logger lines.
    let mut logins = Vec::new();
    let mut syslog_batch = |phase: &str, expected: &mut Vec<String>| {
        let lines = numbered_lines(&format!("rsyslog-{phase}"), 200);
        rsyslog.send_lines(&lines.iter().map(|line| line.rfc5424()).collect::<Vec<_>>());
        expected.extend(lines.into_iter().map(|line| line.msg));
        for n in 0..10 {
            let message = format!("logger-{phase}-{n}");
            logger_tcp(&correlators[1], &message);
            expected.push(message);
        }
        for (n, correlator) in correlators.iter().enumerate() {
            let user = format!("{phase}{n}");
            let login = format!("Accepted publickey for {user} from 10.0.0.{n} port 5214 ssh2");
            if publish_as(correlator, "sshd", &login) == 202 {
                expected.push(login.clone());
                logins.push((login, user));
            }
        }
    };
    // About 200 events a second each: the test is about faults, not throughput.
    let pause = Duration::from_millis(25);
    let publishers = [
        Publishers::start_paced(&correlators[0], "http-a", 1, pause),
        Publishers::start_paced(&correlators[1], "http-b", 1, pause),
    ];
    let more = |count: usize| {
        for publishers in &publishers {
            publishers.wait_for_more(count);
        }
    };
    more(100);

    // 1. The network between correlators and normalizers fails for 30 s: the correlators
    // keep acknowledging from their spools, and send everything on once it is back.
    cut_a.cut();
    cut_b.cut();
    let cut_at = Instant::now();
    syslog_batch("cut", &mut expected);
    more(200);
    for correlator in &correlators {
        assert!(
            correlator.metric("meniscus_link_spool_bytes") > 0.0,
            "{} acknowledged during the cut with an empty spool",
            correlator.name
        );
    }
    std::thread::sleep(Duration::from_secs(30).saturating_sub(cut_at.elapsed()));
    wait_until_sent_on(&correlators, || {
        cut_a.restore();
        cut_b.restore();
    });
    more(100);
    let unreachable: f64 = correlators
        .iter()
        .map(|correlator| {
            correlator.metric("meniscus_link_records_sent_total{outcome=\"unreachable\"}")
        })
        .sum();
    assert!(unreachable > 0.0, "no send failed during the cut");

    // 2. The network to both storage workers fails for 15 s: now the normalizers keep what
    // they take in their spools.
    proxy_a.cut();
    proxy_b.cut();
    let cut_at = Instant::now();
    syslog_batch("storage-cut", &mut expected);
    more(200);
    wait_until("a normalizer spools for storage", 30, || {
        normalizer_a.metric("meniscus_link_spool_bytes") > 0.0
            || normalizer_b.metric("meniscus_link_spool_bytes") > 0.0
    });
    // A job that has passed the correlator and waits in a normalizer's spool is `accepted`,
    // its events counted once though both hops remember it.
    let job: Value = reqwest::blocking::Client::new()
        .post(correlators[0].url("/v1/tenant/acme/publish"))
        .header("MESSAGE-TOKEN", TOKEN)
        .json(&json!([
            {"log_message": {"pname": "web", "host": "h", "msg": "pending-1"}},
            {"log_message": {"pname": "web", "host": "h", "msg": "pending-2"}},
        ]))
        .send()
        .unwrap()
        .json()
        .unwrap();
    expected.extend(["pending-1".to_string(), "pending-2".to_string()]);
    let job_url = tenant_api.url(&format!(
        "/v1/tenant/acme/jobs/{}",
        job["job_id"].as_str().unwrap()
    ));
    wait_until_sent_on(&correlators, || {});
    let job = get_json(&job_url);
    assert_eq!(job["status"], "accepted", "{job}");
    assert_eq!(job["events"], 2, "{job}");
    std::thread::sleep(Duration::from_secs(15).saturating_sub(cut_at.elapsed()));
    wait_until_sent_on([&normalizer_a, &normalizer_b], || {
        proxy_a.restore();
        proxy_b.restore();
    });
    more(100);

    // 3. A normalizer is killed mid-stream and comes back 5 s later: what it had taken is in
    // its spool, what it had not is still in the correlators'.
    normalizer_b.kill9();
    more(100);
    syslog_batch("normalizer-killed", &mut expected);
    std::thread::sleep(Duration::from_secs(5));
    normalizer_b.restart();
    wait_until("the normalizer is back, under the id it had", 30, || {
        grid.online() == 8 && grid.workers().len() == 8
    });
    more(100);

    // 4. The coordinator dies: ingest goes on, and so do queries, on the last routes.
    drop(coordinator.take());
    more(200);
    syslog_batch("no-coordinator", &mut expected);
    let page = get_json(&tenant_api.url("/v1/tenant/acme/events?limit=10"));
    assert!(page.get("incomplete").is_none(), "{page}");
    assert_eq!(page["events"].as_array().map(Vec::len), Some(10), "{page}");
    // It comes back with its state; every worker is heard from again (a worker it did not
    // hear from within 2 s would be offline).
    coordinator = Some(Coordinator::start(dir.path(), coordinator_port));
    let grid = coordinator.as_ref().unwrap();
    std::thread::sleep(Duration::from_secs(3));
    wait_until("all eight workers are online again", 30, || {
        grid.online() == 8
    });

    // 5. A third storage worker joins while ingest goes on: every worker runs on the new
    // routes soon after, and nothing is lost on the way.
    let storage_c = GridWorker::start(dir.path(), "storage-c", "storage,tenant-api", grid, "[]");
    wait_until("nine workers are online", 30, || grid.online() == 9);
    let version = grid.route_version();
    let workers = [
        &broadcaster,
        &storage_a,
        &storage_b,
        &storage_c,
        &normalizer_a,
        &normalizer_b,
        &correlators[0],
        &correlators[1],
        &tenant_api,
    ];
    wait_until("every worker runs on the new routes", 30, || {
        workers
            .iter()
            .all(|worker| worker.metric("meniscus_grid_route_version") >= version)
    });
    more(200);
    syslog_batch("three-storage", &mut expected);
    more(100);

    let mut not_acknowledged = 0;
    for publishers in publishers {
        let (acknowledged, refused) = publishers.finish();
        expected.extend(acknowledged);
        not_acknowledged += refused;
    }
    // A backlog may remain from the cuts (publishers outpace the links on a loaded machine).
    let senders = [
        &correlators[0],
        &correlators[1],
        &normalizer_a,
        &normalizer_b,
    ];
    let mut last = String::new();
    let empty = wait_for(300, || {
        last = spool_state(&senders);
        senders
            .iter()
            .all(|sender| sender.metric("meniscus_link_spool_bytes") == 0.0)
    });
    assert!(empty, "the spools did not empty within 300 s: {last}");
    let (_, total) = assert_exactly_once(
        &[&storage_a, &storage_b, &storage_c],
        &expected,
        not_acknowledged,
    );
    // The tenant API answers for all three storage workers: every event once.
    let paged = search_all(&tenant_api);
    assert_eq!(paged.len(), total.len(), "search through the tenant API");
    assert!(paged.values().all(|n| *n == 1), "an event on two pages");
    // Every login went through a normalizer, whichever way it took.
    let rows = tenant_api.sql(
        "acme",
        TOKEN,
        "SELECT msg, normalized FROM events WHERE msg LIKE 'Accepted publickey%'",
    );
    assert_eq!(rows.len(), logins.len(), "{rows:?}");
    for (login, user) in &logins {
        let row = rows
            .iter()
            .find(|row| row["msg"] == *login.as_str())
            .unwrap_or_else(|| panic!("{login:?} not found"));
        let normalized: Value =
            serde_json::from_str(row["normalized"].as_str().unwrap_or("null")).unwrap();
        assert_eq!(normalized["sshd"]["user"], *user.as_str(), "{row:?}");
    }
    assert!(
        normalizer_a.metric("meniscus_link_records_received_total{outcome=\"taken\"}") > 0.0
            && normalizer_b.metric("meniscus_link_records_received_total{outcome=\"taken\"}") > 0.0,
        "both normalizers took links"
    );
    assert!(
        rsyslog.is_running(),
        "rsyslog died: {}",
        rsyslog.diagnostics()
    );
}

/// Once `restore` has brought the network back: waits until every one of `senders` has had
/// acknowledged every event it had spooled by then (what they spool afterwards may still be
/// on its way).
fn wait_until_sent_on<'a>(
    senders: impl IntoIterator<Item = &'a GridWorker>,
    restore: impl FnOnce(),
) {
    let senders: Vec<&GridWorker> = senders.into_iter().collect();
    let spooled: Vec<f64> = senders
        .iter()
        .map(|sender| sender.metric("meniscus_link_events_spooled_total"))
        .collect();
    restore();
    wait_until(
        "what the spools held at the end of the cut is sent",
        180,
        || {
            senders.iter().zip(&spooled).all(|(sender, spooled)| {
                sender.metric("meniscus_link_events_acknowledged_total") >= *spooled
            })
        },
    );
}

#[test]
fn a_stalled_storage_worker_fills_the_spool_quota_and_senders_are_held_back_until_it_recovers() {
    let (dir, coordinator) = acme_grid();
    let storage = storage_worker(dir.path(), &coordinator);
    let correlator = GridWorker::start_with_args(
        dir.path(),
        "correlator",
        "correlator",
        &coordinator,
        SYSLOG_TCP,
        &["--spool-quota-bytes", "65536"],
    );
    let mut expected = vec!["first".to_string()];
    wait_until("the correlator takes a durable publish", 60, || {
        publish(&correlator, "first") == 202
    });

    // The storage worker stops answering anything (SIGSTOP): alive, connections accepted by
    // the kernel, nothing read.
    storage.signal("STOP");
    let mut refusal = None;
    for n in 0..20_000 {
        let msg = format!("while-stalled-{n}");
        let response = reqwest::blocking::Client::new()
            .post(correlator.url("/v1/tenant/acme/publish"))
            .header("MESSAGE-TOKEN", TOKEN)
            .json(&json!({"log_message": {"pname": "web", "host": "h", "msg": msg}}))
            .send()
            .unwrap();
        match response.status().as_u16() {
            202 => expected.push(msg),
            503 => {
                let retry_after = response.headers().get("retry-after").cloned();
                refusal = Some((retry_after, response.json::<Value>().unwrap()));
                break;
            }
            other => panic!("publish answered {other}: {}", response.text().unwrap()),
        }
    }
    let (retry_after, refusal) = refusal.expect("the 64 KiB spool quota never filled");
    assert_eq!(refusal["error"]["code"], "backpressure", "{refusal}");
    assert!(retry_after.is_some(), "503 without Retry-After");
    eprintln!(
        "{} events acknowledged before the quota filled",
        expected.len()
    );
    // Records that wait for a storage worker are compressed, so the quota covers a longer
    // outage; the first ones, sent at once, were not.
    let spooled = |compressed: &str| {
        correlator.metric(&format!(
            "meniscus_link_records_spooled_total{{compressed=\"{compressed}\"}}"
        ))
    };
    assert!(
        spooled("true") > 0.0 && spooled("false") > 0.0,
        "records spooled compressed / not: {} / {}",
        spooled("true"),
        spooled("false")
    );

    // Syslog over TCP is held back by flow control rather than refused: the correlator stops
    // reading, the sender's writes stop completing, and nothing is dropped.
    let lines: Vec<String> = (0..400_000).map(|n| format!("tcp-held-{n}")).collect();
    let mut wire = Vec::new();
    for msg in &lines {
        let line = format!(
            "<14>1 2026-12-03T00:00:00Z h web - - [meniscus@32473 tenant=\"acme\" token=\"{TOKEN}\"] {msg}\n"
        );
        wire.extend_from_slice(line.as_bytes());
    }
    let mut stream = TcpStream::connect(("127.0.0.1", correlator.syslog)).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut written = 0;
    let blocked = loop {
        match stream.write(&wire[written..]) {
            Ok(0) => panic!("the correlator closed the connection"),
            Ok(n) => written += n,
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break true
            }
            Err(error) => panic!("write to the correlator: {error}"),
        }
        if written == wire.len() {
            break false;
        }
    };
    assert!(
        blocked,
        "{} bytes of syslog went through without the correlator pushing back",
        wire.len()
    );
    eprintln!("the syslog sender was held back after {written} bytes");

    // Memory stays bounded while senders keep knocking: a thousand more refused publishes.
    // Each is larger than any accepted one: records vary by a few bytes (zstd, job ids), and
    // a smaller one could still fit the room the last refused publish left.
    let before = correlator.rss_kib();
    for n in 0..1000 {
        let msg = format!("refused-{n}-{}", incompressible(n, 4096));
        assert_eq!(publish(&correlator, &msg), 503);
    }
    let after = correlator.rss_kib();
    assert!(
        after < before + 32 * 1024,
        "the correlator grew from {before} KiB to {after} KiB while refusing"
    );

    // The storage worker answers again: the spool drains, publishes are taken again, and the
    // held-back syslog sender finishes.
    storage.signal("CONT");
    wait_until("publishes are taken again", 120, || {
        publish(&correlator, "after-recovery") == 202
    });
    expected.push("after-recovery".to_string());
    stream.set_write_timeout(None).unwrap();
    stream.write_all(&wire[written..]).unwrap();
    drop(stream);
    expected.extend(lines);
    wait_until("the spool is empty", 120, || {
        correlator.metric("meniscus_link_spool_bytes") == 0.0
            && correlator.metric("meniscus_link_events_acknowledged_total")
                >= correlator.metric("meniscus_link_events_spooled_total")
    });
    // "after-recovery" may have been stored more than once if an earlier attempt got 503
    // after all; refused publishes were never acknowledged: neither counts as lost.
    let (_, total) = assert_exactly_once(&[&storage], &expected, 1000);
    assert!(!total.keys().any(|msg| msg.starts_with("refused-")));
}

/// A flood of connections to a storage worker's grid port takes no more file descriptors
/// than the process's socket budget: the connections past it are refused and counted, the
/// store keeps its reserve (its log and Parquet files open), and events keep arriving over
/// the link already open. Before, the grid port accepted until `accept` failed with "Too many
/// open files", and the store's next file would have failed the same way.
#[test]
fn a_flood_of_connections_to_the_grid_port_leaves_the_store_its_file_descriptors() {
    meniscus_tests::raise_open_files();
    let (dir, coordinator) = acme_grid();
    // 512 descriptors: 256 kept for the store, the rest for sockets.
    let storage = GridWorker::start_with_open_files(
        dir.path(),
        "storage",
        "storage,tenant-api",
        &coordinator,
        "[]",
        512,
    );
    let correlator = GridWorker::start(
        dir.path(),
        "correlator",
        "correlator",
        &coordinator,
        SYSLOG_TCP,
    );
    let count = || {
        storage.sql("acme", TOKEN, "SELECT count(*) AS n FROM events")[0]["n"]
            .as_u64()
            .unwrap()
    };
    wait_until("the correlator takes a durable publish", 60, || {
        publish(&correlator, "before the flood") == 202
    });
    wait_until("the first event is stored", 60, || count() == 1);

    let flood: Vec<TcpStream> = (0..600)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", storage.listen)).ok())
        .collect();
    for n in 0..50 {
        assert_eq!(publish(&correlator, &format!("during the flood {n}")), 202);
    }
    // Flushed to Parquet while the flood holds every socket the budget allows.
    std::thread::sleep(Duration::from_secs(3));
    drop(flood);
    wait_until("the events sent during the flood are stored", 60, || {
        count() == 51
    });
    let refused = storage.metric(
        "meniscus_grid_refused_connections_total{transport=\"grid\",reason=\"file_descriptors\"}",
    );
    assert!(refused > 0.0, "no connection was refused");
    let log = storage.log();
    assert!(!log.contains("Too many open files"), "{log}");
    assert!(storage.metric("meniscus_hot_flushes_total") >= 1.0);
}

/// Sockets that open the grid port and never speak (a stranger's, a port scanner's) are closed
/// after the port's first-bytes timeout (10 s) and counted, instead of holding the socket
/// budget for as long as they stay open; workers' own connections go on meanwhile.
#[test]
fn silent_connections_to_the_grid_port_are_closed() {
    use std::io::Read;
    let (dir, coordinator) = acme_grid();
    let storage = storage_worker(dir.path(), &coordinator);
    let correlator = GridWorker::start(
        dir.path(),
        "correlator",
        "correlator",
        &coordinator,
        SYSLOG_TCP,
    );
    wait_until("the correlator takes a durable publish", 60, || {
        publish(&correlator, "before the silent sockets") == 202
    });
    let silent: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(("127.0.0.1", storage.listen)).unwrap())
        .collect();
    assert_eq!(publish(&correlator, "while they are open"), 202);
    for mut socket in silent {
        socket
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut byte = [0u8; 1];
        match socket.read(&mut byte) {
            // End of stream, or a reset: the worker closed it.
            Ok(0) => {}
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("a silent socket was not closed: {other:?}"),
        }
    }
    let closed = storage
        .metric("meniscus_grid_refused_connections_total{transport=\"grid\",reason=\"silent\"}");
    assert!(closed >= 20.0, "{closed} silent connections counted");
    assert_eq!(publish(&correlator, "after they are closed"), 202);
    let stored = |msg: &str| {
        let sql = format!("SELECT count(*) AS n FROM events WHERE msg = '{msg}'");
        storage.sql("acme", TOKEN, &sql)[0]["n"].as_u64().unwrap()
    };
    wait_until("the events sent around them are stored", 60, || {
        stored("while they are open") == 1 && stored("after they are closed") == 1
    });
}
