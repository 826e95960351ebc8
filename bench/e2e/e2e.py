#!/usr/bin/env python3
"""End-to-end syslog ingest benchmark: Meniscus standalone, Meniscus as a grid of processes,
and rsyslog (imptcp -> file).

Run through bench/e2e/run.sh, which compiles the generator (blast.c) and calls this.
Every case sends COUNT pre-rendered RFC 5424 octet-counted messages of SIZE bytes over
C TCP connections to 127.0.0.1 and waits until the server has all of them:
  rsyslog   every line is in the output file (counted incrementally)
  meniscus  SELECT count(*) FROM events answers COUNT (tenant bench, MESSAGE-TOKEN)
  grid      the same, asked of the storage worker; CPU and RSS summed over the grid's
            coordinator, correlator and storage processes
Measured per case: wall time (generator start -> all messages observed), msg/s,
server CPU seconds over that window (/proc/PID/stat utime+stime) -> µs CPU per message,
and peak RSS (VmHWM). Every wait has a timeout; every started process is killed on exit.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PEERS = os.path.join(REPO, "dev", "peers")
sys.path.insert(0, os.path.join(REPO, "bench", "lib"))
from benchproc import (STARTED, alive, cpu_seconds, free_port, listening,  # noqa: E402
                       peak_rss_mb, stop, stop_all, wait_until)


def log(*a):
    print("[e2e]", *a, file=sys.stderr, flush=True)


def parse_kv(text):
    return dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", text))


def run_gen(args, port, conns):
    p = subprocess.Popen([args.blast, "gen", "127.0.0.1", str(port), str(args.count), str(conns),
                          str(args.size), "bench"], stdout=subprocess.PIPE, text=True)
    STARTED.append(p)
    return p


def finish_gen(p, timeout):
    out, _ = p.communicate(timeout=timeout)
    STARTED.remove(p)
    if p.returncode != 0:
        raise RuntimeError(f"generator failed ({p.returncode})")
    return parse_kv(out)


# ---------------------------------------------------------------- cases

def calibrate(args, conns):
    """The generator against a discard sink: its own ceiling."""
    port = free_port()
    sink = subprocess.Popen([args.blast, "sink", str(port), str(conns)], stdout=subprocess.PIPE, text=True)
    STARTED.append(sink)
    assert sink.stdout.readline().strip() == "listening"
    g = run_gen(args, port, conns)
    gr = finish_gen(g, args.timeout)
    out, _ = sink.communicate(timeout=args.timeout)
    STARTED.remove(sink)
    sr = parse_kv(out)
    assert int(sr["bytes"]) == int(gr["bytes"]), (sr, gr)
    return {"server": "discard sink (C)", "conns": conns, "n": args.count,
            "wall": float(sr["seconds"]), "rate": float(gr["rate"]),
            "cpu_us": float(sr["cpu_s"]) * 1e6 / args.count, "rss": float("nan"),
            "gen_cpu_us": float(gr["cpu_us_per_msg"]), "gen_render_s": float(gr["render_s"])}


def settled_cpu(pids, quiet=0.02, interval=0.5, limit=30):
    """Each process's CPU seconds once they have all gone quiet (below `quiet` of a core over
    `interval`): work a server finishes after the last message is visible (a flush of its
    memory to disk) counts, so a fast server is not credited with work it merely put off."""
    before = [cpu_seconds(p) for p in pids]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        time.sleep(interval)
        after = [cpu_seconds(p) for p in pids]
        if sum(after) - sum(before) < quiet * interval:
            return after
        before = after
    return before


def measure(args, pid, port, conns, observed, poll_interval, label):
    """Send, wait until observed() == count; returns the result row. `pid` may be a list: a
    grid's processes, whose CPU and peak RSS are summed."""
    pids = pid if isinstance(pid, list) else [pid]
    g = run_gen(args, port, conns)
    # The generator renders every frame first and says so; the clock starts then.
    first = g.stdout.readline()
    if not first.startswith("rendered"):
        raise RuntimeError(f"generator said {first!r}")
    cpu0 = [cpu_seconds(p) for p in pids]
    t0 = time.monotonic()
    n = 0
    deadline = time.time() + args.timeout
    while True:
        n = observed()
        if n >= args.count:
            break
        if time.time() > deadline:
            raise TimeoutError(f"{label}: only {n} of {args.count} messages observed after {args.timeout}s")
        if not all(alive(p) for p in pids):
            raise RuntimeError(f"{label}: server exited")
        time.sleep(poll_interval)
    t1 = time.monotonic()
    cpu1 = settled_cpu(pids)
    gr = finish_gen(g, 60)
    per_process = [(b - a) * 1e6 / args.count for a, b in zip(cpu0, cpu1)]
    wall = t1 - t0
    return {"server": label, "conns": conns, "n": n, "wall": wall, "rate": args.count / wall,
            "cpu_us": sum(per_process), "cpu_split": per_process, "rss": sum(peak_rss_mb(p) for p in pids),
            "gen_rate": float(gr["rate"])}


def rsyslog_case(args, work, conns):
    wd = os.path.join(work, f"rsyslog-{conns}")
    port = free_port()
    out = subprocess.run([os.path.join(PEERS, "rsyslog-sink.sh"), wd, str(port)],
                         capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError("rsyslog-sink.sh failed: " + out.stderr)
    kv = parse_kv(out.stdout)
    pid = int(kv["pid"])
    STARTED.append(pid)
    state = {"f": None, "lines": 0}

    def observed():
        if state["f"] is None:
            if not os.path.exists(kv["out"]):
                return 0
            state["f"] = open(kv["out"], "rb")
        while True:
            b = state["f"].read(8 << 20)
            if not b:
                return state["lines"]
            state["lines"] += b.count(b"\n")

    try:
        row = measure(args, pid, port, conns, observed, 0.05, "rsyslog imptcp->file")
    finally:
        if state["f"]:
            state["f"].close()
        stop(pid)
    if args.verify:
        seqs = set()
        with open(kv["out"], "rb") as f:
            for line in f:
                m = re.search(rb"seq=(\d+)", line)
                seqs.add(m.group(1))
        row["distinct"] = len(seqs)
        log(f"rsyslog {conns} conn: {len(seqs)} distinct seq values in the file")
    shutil.rmtree(wd, ignore_errors=True)
    return row


def sql_count(http_port, token, timeout=5):
    req = urllib.request.Request(
        f"http://127.0.0.1:{http_port}/v1/tenant/bench/sql",
        data=json.dumps({"sql": "SELECT count(*) AS n FROM events"}).encode(),
        headers={"MESSAGE-TOKEN": token, "Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        body = json.loads(r.read())
    rows = body.get("rows") or []
    if not rows:
        return 0
    row = rows[0]
    return int(row["n"] if isinstance(row, dict) else row[0])


def metric_sum(port, prefix, timeout=5):
    """The sum of the samples whose line starts with `prefix` in a /metrics scrape."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def stored_events(ops_port, timeout=5):
    """meniscus_store_stored_events_total summed over tenants: a /metrics scrape of the ops
    listener (the public one leaves tenant series out), far cheaper than a query."""
    return int(metric_sum(ops_port, "meniscus_store_stored_events_total", timeout))


def meniscus_case(args, work, conns, durable):
    label = "meniscus standalone" + (" durable" if durable else "")
    wd = os.path.join(work, f"meniscus-{conns}-{'durable' if durable else 'fast'}")
    os.makedirs(os.path.join(wd, "data"))
    tcp_port, http_port, ops_port = free_port(), free_port(), free_port()
    conf = os.path.join(wd, "meniscus.yaml")
    with open(conf, "w") as f:
        f.write(f"""# Generated by bench/e2e/e2e.py
listeners:
  - protocol: tcp
    address: "127.0.0.1:{tcp_port}"
    tenant: bench
http:
  address: "127.0.0.1:{http_port}"
ops:
  address: "127.0.0.1:{ops_port}"
tenants:
  - id: bench
    tokens:
      - value: bench-token
    producers:
      - name: bench
        durable: {"true" if durable else "false"}
""")
    logf = open(os.path.join(wd, "meniscus.log"), "wb")
    last_err = {"e": None}
    p = subprocess.Popen([args.meniscus_bin, "standalone", "--data-dir", os.path.join(wd, "data"),
                          "--config", conf], stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    STARTED.append(p)
    try:
        wait_until(lambda: listening(tcp_port) and listening(http_port), args.start_timeout,
                   f"meniscus to listen on {tcp_port} and {http_port}", pid=p.pid)

        def ready():
            try:
                return sql_count(http_port, "bench-token") == 0
            except (urllib.error.URLError, OSError, ValueError, KeyError):
                return False
        wait_until(ready, args.start_timeout, "meniscus SQL endpoint to answer", pid=p.pid, interval=0.2)

        def observed():
            # Polled as often as rsyslog's file (every 0.05 s) through the cheap stored-events
            # counter; the count is taken only once a query confirms every event is queryable.
            try:
                if stored_events(ops_port) < args.count:
                    return 0
                return sql_count(http_port, "bench-token")
            except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
                last_err["e"] = e
                return 0
        row = measure(args, p.pid, tcp_port, conns, observed, 0.05, label)
        if row["n"] != args.count:
            log(f"WARNING: {label} counted {row['n']} events, sent {args.count}")
    except Exception:
        if last_err["e"]:
            log("last SQL error:", last_err["e"])
        logf.flush()
        tail = open(os.path.join(wd, "meniscus.log"), "rb").read()[-3000:].decode(errors="replace")
        log(f"{label} failed; its log ({wd}/meniscus.log) ends with:\n{tail}")
        args.keep = True
        raise
    finally:
        stop(p)
        logf.close()
    if not args.keep:
        shutil.rmtree(wd, ignore_errors=True)
    return row


def admin_put(base, path, body, credential):
    req = urllib.request.Request(f"{base}{path}", data=json.dumps(body).encode(), method="PUT",
                                 headers={"Authorization": f"Bearer {credential}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        r.read()


def online_workers(base, credential):
    """How many workers the coordinator has online."""
    req = urllib.request.Request(f"{base}/v1/admin/workers", headers={"Authorization": f"Bearer {credential}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return sum(1 for w in json.loads(r.read())["workers"] if w["status"] == "online")


def grid_case(args, work, conns, durable, hop=False):
    """The same messages through a grid on this machine: a coordinator, a correlator
    (`correlator,normalizer`) taking syslog and forwarding over its spooled HTTP/2 link, and a
    storage worker (`storage,tenant-api`) answering the count. CPU and peak RSS are summed
    over the processes. With `hop`, the normalizer is a process of its own between a
    `correlator` and the storage worker (two links instead of one)."""
    label = ("meniscus grid + normalizer (4 processes)" if hop else "meniscus grid (3 processes)") \
        + (" durable" if durable else "")
    wd = os.path.join(work, f"grid{'-hop' if hop else ''}-{conns}-{'durable' if durable else 'fast'}")
    os.makedirs(wd)
    with open(os.path.join(wd, "pairing-secret"), "w") as f:
        f.write("bench-pairing-secret\n")
    with open(os.path.join(wd, "admin-credential"), "w") as f:
        f.write("bench-admin\n")
    coordinator_port, tcp_port = free_port(), free_port()
    storage_listen, storage_http, correlator_listen, correlator_http, normalizer_listen = (
        free_port() for _ in range(5))
    coordinator_url = f"http://127.0.0.1:{coordinator_port}"
    procs, logs = [], []

    def start(name, argv):
        logf = open(os.path.join(wd, f"{name}.log"), "wb")
        logs.append(logf)
        p = subprocess.Popen([args.meniscus_bin, "worker", *argv], stdout=logf, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
        STARTED.append(p)
        procs.append(p)
        return p

    def worker(name, personas, listen, config):
        conf = os.path.join(wd, f"{name}.yaml")
        with open(conf, "w") as f:
            f.write("# Generated by bench/e2e/e2e.py\n" + config)
        return start(name, ["--persona", personas, "--coordinator", coordinator_url,
                            "--pairing-secret-file", os.path.join(wd, "pairing-secret"),
                            "--listen", f"127.0.0.1:{listen}", "--config", conf,
                            "--data-dir", os.path.join(wd, name)])

    try:
        coordinator = start("coordinator", [
            "--persona", "coordinator", "--listen", f"127.0.0.1:{coordinator_port}",
            "--data-dir", os.path.join(wd, "coordinator"),
            "--pairing-secret-file", os.path.join(wd, "pairing-secret"),
            "--admin-credential-file", os.path.join(wd, "admin-credential")])
        wait_until(lambda: listening(coordinator_port), args.start_timeout, "the coordinator to listen",
                   pid=coordinator.pid)
        admin_put(coordinator_url, "/v1/admin/tenants/bench", {
            "id": "bench", "tokens": [{"value": "bench-token"}],
            "producers": [{"name": "bench", "durable": durable}]}, "bench-admin")
        storage = worker("storage", "storage,tenant-api", storage_listen,
                         f'http: {{address: "127.0.0.1:{storage_http}"}}\n')
        if hop:
            # In the routes before the correlator pairs: it sends to storage directly (events
            # unnormalized) only while the grid has no normalizer.
            normalizer = worker("normalizer", "normalizer", normalizer_listen, "")
            wait_until(lambda: online_workers(coordinator_url, "bench-admin") >= 2, args.start_timeout,
                       "the normalizer to pair", pid=normalizer.pid, interval=0.1)
        correlator = worker("correlator", "correlator" if hop else "correlator,normalizer",
                            correlator_listen, f"""listeners:
  - protocol: tcp
    address: "127.0.0.1:{tcp_port}"
    tenant: bench
http:
  address: "127.0.0.1:{correlator_http}"
""")
        pids = [coordinator.pid, correlator.pid, storage.pid] + ([normalizer.pid] if hop else [])

        def ready():
            try:
                return sql_count(storage_http, "bench-token") == 0 and listening(tcp_port)
            except (urllib.error.URLError, OSError, ValueError, KeyError):
                return False
        wait_until(ready, args.start_timeout, "the grid to take the bench tenant", pid=storage.pid, interval=0.2)

        def observed():
            try:
                if stored_events(storage_listen) < args.count:
                    return 0
                return sql_count(storage_http, "bench-token")
            except (urllib.error.URLError, OSError, ValueError, KeyError):
                return 0
        row = measure(args, pids, tcp_port, conns, observed, 0.05, label)
        # Link records are compressed only when they wait (the storage worker is behind):
        # the share shows whether the link kept up.
        spooled = "meniscus_link_records_spooled_total{compressed="
        compressed = metric_sum(correlator_listen, spooled + '"true"}')
        plain = metric_sum(correlator_listen, spooled + '"false"}')
        outcomes = {outcome: int(metric_sum(correlator_listen, f'meniscus_link_records_sent_total{{outcome="{outcome}"}}'))
                    for outcome in ("acknowledged", "full", "unavailable", "unreachable")}
        handoffs = metric_sum(correlator_listen, "meniscus_link_handoff_seconds_count")
        handoff_mean = metric_sum(correlator_listen, "meniscus_link_handoff_seconds_sum") / max(handoffs, 1)
        if hop:
            taken = metric_sum(normalizer_listen, 'meniscus_link_records_received_total{outcome="taken"}')
            if taken == 0:
                raise RuntimeError("the normalizer took no link record")
            log(f"{label}: the normalizer took {int(taken)} link records")
        log(f"{label}: link records {int(plain + compressed)}, compressed because they waited: "
            f"{int(compressed)}; sent: {outcomes}; mean hand-off {handoff_mean * 1000:.1f} ms")
    except Exception:
        for logf in logs:
            logf.flush()
            tail = open(logf.name, "rb").read()[-2000:].decode(errors="replace")
            log(f"{label} failed; {logf.name} ends with:\n{tail}")
        args.keep = True
        raise
    finally:
        for p in procs:
            stop(p)
        for logf in logs:
            logf.close()
    if not args.keep:
        shutil.rmtree(wd, ignore_errors=True)
    return row


def median(runs):
    """The run with the median wall time, with the median CPU per message of all runs (per
    process too): on a shared machine the two vary apart, and a ratio of CPU taken from one
    lucky or unlucky run says little."""
    row = dict(sorted(runs, key=lambda r: r["wall"])[len(runs) // 2])
    mid = lambda values: sorted(values)[len(values) // 2]
    row["cpu_us"] = mid([r["cpu_us"] for r in runs])
    row["cpu_split"] = [mid([r["cpu_split"][i] for r in runs]) for i in range(len(row["cpu_split"]))]
    return row


# ---------------------------------------------------------------- report

def table(args, rows, notes):
    lines = []
    lines.append(f"# bench/e2e: {args.count} RFC 5424 messages, {args.size} bytes each, octet-counted TCP, 127.0.0.1")
    lines.append(f"# {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {os.cpu_count()} cpus, "
                 f"load average at start {args.loadavg}")
    lines.append("# wall = first byte sent -> last message observed (file lines / SQL count(*)); "
                 "cpu = server utime+stime from the first byte until the server is idle again "
                 "(work it does after the last message is visible, such as a flush, counts)")
    lines.append("")
    hdr = f"{'case':<34} {'conns':>5} {'wall s':>8} {'msg/s':>11} {'x rsyslog':>9} {'cpu µs/msg':>10} {'x rsyslog':>9} {'peak RSS MB':>11}"
    lines.append(hdr)
    lines.append("-" * len(hdr))
    base = {r["conns"]: r for r in rows if r["server"].startswith("rsyslog")}
    for r in rows:
        b = base.get(r["conns"])
        if r["server"].startswith("meniscus") and b:
            rx = f"{r['rate'] / b['rate']:.2f}"
            cx = f"{r['cpu_us'] / b['cpu_us']:.2f}"
        else:
            rx = cx = "-"
        rss = "-" if r["rss"] != r["rss"] else f"{r['rss']:.0f}"
        lines.append(f"{r['server']:<34} {r['conns']:>5} {r['wall']:>8.2f} {r['rate']:>11,.0f} {rx:>9} "
                     f"{r['cpu_us']:>10.2f} {cx:>9} {rss:>11}")
    lines.append("")
    lines.extend("# " + n for n in notes)
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--blast", required=True)
    ap.add_argument("--count", type=int, default=2_000_000)
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--conns", default="1,4")
    ap.add_argument("--targets", default="generator,rsyslog,meniscus,meniscus-durable")
    ap.add_argument("--meniscus-bin", default=os.environ.get("MENISCUS_BIN") or os.path.join(
        os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target"), "release", "meniscus"))
    ap.add_argument("--timeout", type=float, default=300, help="per-case limit for all messages to arrive")
    ap.add_argument("--start-timeout", type=float, default=60)
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results", "e2e.txt"))
    ap.add_argument("--verify", action="store_true", help="check rsyslog's file has COUNT distinct seq values")
    ap.add_argument("--keep", action="store_true", help="keep Meniscus data dirs")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per server case; the table shows the median (this machine is shared and noisy)")
    args = ap.parse_args()
    args.loadavg = " ".join(open("/proc/loadavg").read().split()[:3])
    conns_list = [int(c) for c in args.conns.split(",")]
    targets = args.targets.split(",")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
    work = tempfile.mkdtemp(prefix="meniscus-e2e.")
    rows, notes = [], []
    try:
        if "generator" in targets:
            for c in conns_list:
                r = calibrate(args, c)
                log(f"generator -> discard sink, {c} conn: {r['rate']:,.0f} msg/s, "
                    f"generator {r['gen_cpu_us']:.3f} µs CPU/msg (render {r['gen_render_s']:.2f} s, untimed)")
                rows.append(r)
                notes.append(f"generator alone ({c} conn, into the C discard sink): {r['rate']:,.0f} msg/s, "
                             f"{r['gen_cpu_us']:.3f} µs generator CPU per message")
        for c in conns_list:
            # The cases take turns, run after run, so a slow spell of this shared machine
            # lands on every server alike instead of on whichever ran during it.
            cases = []
            if "rsyslog" in targets:
                cases.append(lambda c=c: rsyslog_case(args, work, c))
            for t in ("meniscus", "meniscus-durable", "grid", "grid-durable", "grid-hop", "grid-hop-durable"):
                if t not in targets:
                    continue
                durable = t.endswith("-durable")
                if t.startswith("grid-hop"):
                    run_case = lambda args, work, c, durable: grid_case(args, work, c, durable, hop=True)
                else:
                    run_case = grid_case if t.startswith("grid") else meniscus_case
                if not os.access(args.meniscus_bin, os.X_OK):
                    msg = f"SKIPPED {t}: no executable at {args.meniscus_bin} (build with `cargo build --release` or set MENISCUS_BIN)"
                    if msg not in notes:
                        log(msg)
                        notes.append(msg)
                    continue
                cases.append(lambda c=c, durable=durable, run_case=run_case: run_case(args, work, c, durable))
            runs = [[] for _ in cases]
            for i in range(args.repeat):
                for case, case_runs in zip(cases, runs):
                    r = case()
                    log(f"{r['server']} {c} conn, run {i + 1}/{args.repeat}: {r['rate']:,.0f} msg/s, "
                        f"{r['cpu_us']:.2f} µs CPU/msg, {r['rss']:.0f} MB")
                    case_runs.append(r)
            rows.extend(median(case_runs) for case_runs in runs)
    finally:
        stop_all()
        if args.keep:
            log("kept", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    standalone = {(r["conns"], r["server"].endswith("durable")): r
                  for r in rows if r["server"].startswith("meniscus standalone")}
    for r in rows:
        s_row = standalone.get((r["conns"], r["server"].endswith("durable")))
        if r["server"].startswith("meniscus grid") and s_row:
            names = ["coordinator", "correlator", "storage", "normalizer"]
            split = ", ".join(f"{name} {cpu:.2f}" for name, cpu in zip(names, r["cpu_split"]))
            notes.append(f"{r['server']} vs standalone, {r['conns']} conn: {r['cpu_us'] / s_row['cpu_us']:.2f}x the CPU "
                         f"per message, {r['rate'] / s_row['rate']:.2f}x the throughput; µs CPU per message by process: "
                         f"{split}")
    notes.append("generator: bench/e2e/blast.c, frames pre-rendered before the clock starts; "
                 "server rows count only the server's CPU")
    notes.append("both servers are polled every 0.05 s: rsyslog's file for its line count, Meniscus's "
                 "/metrics for meniscus_store_stored_events_total, then SQL count(*) to confirm every event is "
                 "queryable; durable = fsync before storage acknowledges (syslog itself cannot acknowledge)")
    if args.repeat > 1:
        notes.append(f"each server row is the median of {args.repeat} runs (wall time and CPU each), the servers "
                     "taking turns; every run is listed in the log above the table")
    text = table(args, rows, notes)
    print(text, end="")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    log("written", args.out)


if __name__ == "__main__":
    main()
