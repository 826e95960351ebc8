#!/usr/bin/env python3
"""Noisy-neighbour benchmark: does one tenant's ingest hold up while a second tenant keeps its
query cap busy and a stranger holds 5,000 idle connections?

Run through bench/noisy/run.sh, which compiles the generator (bench/e2e/blast.c) and calls this.

Each run starts a fresh `meniscus standalone` with two tenants, each with a TCP listener bound
to it (octet-counting, as in bench/e2e; the tenant comes from the port, so blast.c needs no
credentials): `quiet` and `noisy`. Then:
  1. preload: PRELOAD messages into `noisy` (so its queries have data to scan), wait until
     SELECT count(*) shows them all; nothing is ingested by `noisy` after this.
  2. noise (case "noisy" only, before the clock starts, running until it stops):
     - the stranger: IDLE TCP connections to quiet's syslog port, bound to STRANGER_ADDRS
       source addresses 127.0.0.2, .3, ... (so maxConnectionsPerAddress alone does not refuse
       them); they send nothing. Kept/refused = the server's meniscus_ingest_open_connections
       and meniscus_ingest_refused_connections_total{reason}; the client side counts the
       connects that succeeded and the sockets the server had closed by the end of the window.
     - the noisy tenant: QUERY_THREADS threads (default 2 = maxConcurrentQueriesPerTenant) each
       looping heavy SQL over its own events (GROUP BY msg, regexp scans, sorts), answers
       counted by status (200, 422 deadline, 429 over the cap, other, errors).
  3. the window: `quiet` sends COUNT pre-rendered messages over CONNS connections (blast gen);
     the clock runs from the generator's go to SELECT count(*) for quiet == COUNT
     (polled every 0.05 s through meniscus_store_stored_events_total{tenant="quiet"}, then
     confirmed by SQL) -> msg/s.
     p99 ingest-to-queryable: meniscus_store_ingest_to_queryable_seconds scraped before and after
     the window; quantile of the bucket deltas with Prometheus histogram_quantile's linear
     interpolation inside the bucket (the bucket's upper bound is shown next to it). The
     histogram is global, one observation per stored batch (its oldest event's receive time to
     queryable); noisy ingests nothing during the window, so it covers quiet's batches only.
     /healthz on the ops listener and on the public HTTP listener, sampled every 0.5 s during
     the window (new connection each time, as a probe does): the maximum latency.
Cases "baseline" (steps 1 and 3) and "noisy" (1, 2, 3) take turns, REPEAT times; the table shows
the median of each column and the ratios noisy/baseline against the goal (rate >= 0.8x,
p99 <= 2x). A run that fails (quiet's connection refused, a timeout) is listed as failed and
counts against the goal. Features the binary does not know (an older build without the ops
listener or the query/connection caps) are found with `meniscus check-config` and noted.
Every wait has a timeout; every process started is stopped on exit.
"""
import argparse
import json
import os
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "bench", "lib"))
from benchproc import (STARTED, alive, cpu_seconds, free_port, listening,  # noqa: E402
                       parse_prometheus, peak_rss_mb, stop, stop_all, wait_until)

QUIET, NOISY = "quiet", "noisy"
TOKENS = {QUIET: "quiet-token", NOISY: "noisy-token"}
HIST = "meniscus_store_ingest_to_queryable_seconds"
# The noisy tenant's queries: each scans all of its events; grouping by msg (every msg is
# distinct) builds a hash table of all of them.
HEAVY_SQL = [
    "SELECT msg, count(*) AS n FROM events GROUP BY msg ORDER BY n DESC LIMIT 10",
    "SELECT count(*) AS n FROM events WHERE regexp_like(msg, 'items/[0-9]*7 status=2.*u9[0-9]{2}')",
    "SELECT u, count(*) AS n FROM (SELECT regexp_replace(msg, '.*user=(u[0-9]+).*', '$1') AS u "
    "FROM events) GROUP BY u ORDER BY n DESC LIMIT 10",
    "SELECT msg FROM events WHERE msg LIKE '%fox%' ORDER BY msg DESC LIMIT 10",
]


def log(*a):
    print("[noisy]", *a, file=sys.stderr, flush=True)


class RunFailed(Exception):
    pass


def parse_kv(text):
    return dict(part.split("=", 1) for part in text.split() if "=" in part)


# ---------------------------------------------------------------- the binary's features

def probe_features(args, work):
    """Which config fields this binary knows (an older build may predate some): field -> bool."""
    probes = {
        "ops.address": 'ops:\n  address: "127.0.0.1:1"\n',
        "limits.maxConcurrentQueriesPerTenant": "limits:\n  maxConcurrentQueriesPerTenant: 2\n",
        "limits.maxConnections": "limits:\n  maxConnections: 4096\n",
        "limits.maxConnectionsPerAddress": "limits:\n  maxConnectionsPerAddress: 256\n",
        "limits.idleTimeout": "limits:\n  idleTimeout: 10m\n",
    }
    known = {}
    path = os.path.join(work, "probe.yaml")
    for field, text in probes.items():
        with open(path, "w") as f:
            f.write(text)
        out = subprocess.run([args.meniscus_bin, "check-config", path], capture_output=True, text=True,
                             timeout=30, stdin=subprocess.DEVNULL)
        if out.returncode == 0:
            known[field] = True
        elif "unknown field" in out.stdout + out.stderr:
            known[field] = False
        else:
            raise RuntimeError(f"`meniscus check-config` failed on a probe for {field}: "
                               f"{(out.stdout + out.stderr).strip()[:500]}")
    if args.limits:
        with open(path, "w") as f:
            f.write(f"limits: {args.limits}\n")
        out = subprocess.run([args.meniscus_bin, "check-config", path], capture_output=True, text=True,
                             timeout=30, stdin=subprocess.DEVNULL)
        if out.returncode != 0:
            raise RuntimeError(f"--limits {args.limits!r} refused by the binary: "
                               f"{(out.stdout + out.stderr).strip()[:500]}")
    os.remove(path)
    return known


# ---------------------------------------------------------------- HTTP and metrics

def http(method, url, body=None, headers=None, timeout=10):
    """(status, body bytes); HTTP error statuses are answers, not exceptions."""
    req = urllib.request.Request(url, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def label(series, key):
    """The value of label key in 'name{a="x",key="y"}', or None."""
    marker = f'{key}="'
    i = series.find(marker)
    if i < 0:
        return None
    j = series.find('"', i + len(marker))
    return series[i + len(marker):j]


def histogram_buckets(prom):
    """[(upper bound, cumulative count)] of HIST, sorted, +Inf last."""
    out = []
    for series, value in prom.items():
        if series.startswith(HIST + "_bucket{"):
            le = label(series, "le")
            out.append((float("inf") if le == "+Inf" else float(le), value))
    return sorted(out)


def quantile(q, before, after):
    """(interpolated value, bucket upper bound, observations) of the deltas between two scrapes.

    Interpolation as Prometheus histogram_quantile: linear inside the bucket holding the rank,
    from the previous bound (0 for the first); a rank in +Inf answers the highest finite bound.
    """
    b0 = dict(histogram_buckets(before))
    buckets = [(le, cum - b0.get(le, 0.0)) for le, cum in histogram_buckets(after)]
    if not buckets or buckets[-1][1] <= 0:
        return float("nan"), float("nan"), 0
    total = buckets[-1][1]
    rank = q * total
    prev_le, prev_cum = 0.0, 0.0
    for le, cum in buckets:
        if cum >= rank:
            if le == float("inf"):
                finite = [b for b, _ in buckets if b != float("inf")]
                return finite[-1], le, int(total)
            inside = cum - prev_cum
            value = le if inside <= 0 else prev_le + (le - prev_le) * (rank - prev_cum) / inside
            return value, le, int(total)
        prev_le, prev_cum = le, cum
    return float("nan"), float("nan"), int(total)


class Server:
    def __init__(self, args, work, features, name):
        self.args = args
        self.dir = os.path.join(work, name)
        os.makedirs(os.path.join(self.dir, "data"))
        self.ports = {QUIET: free_port(), NOISY: free_port()}
        self.http_port = free_port()
        self.ops_port = free_port() if features.get("ops.address") else None
        conf = os.path.join(self.dir, "meniscus.yaml")
        text = "# Generated by bench/noisy/noisy.py\nlisteners:\n"
        for tenant in (QUIET, NOISY):
            text += (f"  - protocol: tcp\n    address: \"127.0.0.1:{self.ports[tenant]}\"\n"
                     f"    framing: octet-counting\n    tenant: {tenant}\n")
        text += f"http:\n  address: \"127.0.0.1:{self.http_port}\"\n"
        if self.ops_port:
            text += f"ops:\n  address: \"127.0.0.1:{self.ops_port}\"\n"
        if args.limits:
            text += f"limits: {args.limits}\n"
        text += "tenants:\n"
        for tenant in (QUIET, NOISY):
            text += (f"  - id: {tenant}\n    tokens:\n      - value: {TOKENS[tenant]}\n"
                     f"    producers:\n      - name: bench\n        durable: false\n")
        with open(conf, "w") as f:
            f.write(text)
        self.logpath = os.path.join(self.dir, "meniscus.log")
        self.logf = open(self.logpath, "wb")
        # The server gets the open-file limit the shell had, not the one this driver raised
        # for the stranger's sockets (Meniscus raises its own as far as it wants).
        soft = args.orig_nofile

        def limit_files():
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        self.p = subprocess.Popen([args.meniscus_bin, "standalone", "--data-dir", os.path.join(self.dir, "data"),
                                   "--config", conf], stdout=self.logf, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, preexec_fn=limit_files)
        STARTED.append(self.p)
        self.pid = self.p.pid
        need = [self.ports[QUIET], self.ports[NOISY], self.http_port] + ([self.ops_port] if self.ops_port else [])
        # Every series is on the ops listener; an older build has only the public one.
        self.metrics_port = self.ops_port or self.http_port

        def ready():
            try:
                return self.count(QUIET) == 0
            except (OSError, ValueError, KeyError, RuntimeError):
                return False
        try:
            wait_until(lambda: all(listening(p) for p in need), args.start_timeout,
                       f"meniscus to listen on {need}", pid=self.pid)
            wait_until(ready, args.start_timeout, "meniscus SQL endpoint to answer", pid=self.pid, interval=0.2)
        except Exception:
            log(f"meniscus did not start; its log ({self.logpath}) ends with:\n{self.log_tail()}")
            args.keep = True
            raise

    def sql(self, tenant, sql, timeout=10):
        return http("POST", f"http://127.0.0.1:{self.http_port}/v1/tenant/{tenant}/sql",
                    json.dumps({"sql": sql}).encode(),
                    {"MESSAGE-TOKEN": TOKENS[tenant], "Content-Type": "application/json"}, timeout)

    def count(self, tenant, timeout=10):
        status, body = self.sql(tenant, "SELECT count(*) AS n FROM events", timeout)
        if status != 200:
            raise RuntimeError(f"count(*) for {tenant} -> {status}: {body[:300]!r}")
        rows = json.loads(body).get("rows") or []
        return int(rows[0]["n"]) if rows else 0

    def prom(self, timeout=10):
        status, body = http("GET", f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=timeout)
        if status != 200:
            raise RuntimeError(f"/metrics -> {status}")
        return parse_prometheus(body.decode())

    def stored(self, tenant):
        """meniscus_store_stored_events_total{tenant}, or None when this listener hides it."""
        v = self.prom().get(f'meniscus_store_stored_events_total{{tenant="{tenant}"}}')
        return None if v is None else int(v)

    def log_tail(self, n=3000):
        self.logf.flush()
        return open(self.logpath, "rb").read()[-n:].decode(errors="replace")

    def close(self):
        stop(self.p)
        self.logf.close()


def prom_sum(prom, name, **labels):
    total = 0.0
    for series, value in prom.items():
        if series.split("{")[0] != name:
            continue
        if all(label(series, k) == v for k, v in labels.items()):
            total += value
    return total


def prom_by(prom, name, key):
    out = {}
    for series, value in prom.items():
        if series.split("{")[0] == name:
            k = label(series, key) or ""
            out[k] = out.get(k, 0.0) + value
    return out


# ---------------------------------------------------------------- load

def start_gen(args, port, count, conns, errpath):
    errf = open(errpath, "wb")
    p = subprocess.Popen([args.blast, "gen", "127.0.0.1", str(port), str(count), str(conns), str(args.size),
                          "bench"], stdout=subprocess.PIPE, stderr=errf, text=True, stdin=subprocess.DEVNULL)
    errf.close()
    STARTED.append(p)
    first = p.stdout.readline()
    if not first.startswith("rendered"):
        p.wait(timeout=10)
        STARTED.remove(p)
        raise RunFailed(f"generator said {first!r} (rc {p.returncode}): {open(errpath).read()[-500:]}")
    return p


def gen_failure(p, errpath):
    rc = p.returncode
    why = "killed by SIGPIPE: the server closed the connection" if rc == -signal.SIGPIPE else f"exit {rc}"
    err = open(errpath, errors="replace").read().strip()[-300:]
    return f"generator {why}" + (f" ({err})" if err else "")


def preload(server, args):
    """PRELOAD messages into the noisy tenant; returns once SQL shows them all."""
    if args.preload <= 0:
        return
    errpath = os.path.join(server.dir, "preload.err")
    p = start_gen(args, server.ports[NOISY], args.preload, 1, errpath)
    try:
        out, _ = p.communicate(timeout=args.timeout)
    finally:
        if p in STARTED:
            STARTED.remove(p)
    if p.returncode != 0:
        raise RunFailed("preload: " + gen_failure(p, errpath))
    deadline = time.time() + args.timeout
    while True:
        n = server.count(NOISY, timeout=30)
        if n >= args.preload:
            break
        if time.time() > deadline:
            raise RunFailed(f"preload: only {n} of {args.preload} noisy events queryable after {args.timeout}s")
        time.sleep(0.1)
    if n != args.preload:
        raise RunFailed(f"preload: noisy counts {n} events, {args.preload} were sent")


class Stranger:
    """IDLE idle TCP connections from ADDRS loopback source addresses, held in this process."""

    def __init__(self, port, idle, addrs, timeout):
        self.socks, self.failed = [], {}
        deadline = time.time() + timeout
        for i in range(idle):
            src = f"127.0.0.{2 + i % addrs}"
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.settimeout(max(0.1, min(5.0, deadline - time.time())))
                s.bind((src, 0))
                s.connect(("127.0.0.1", port))
                s.setblocking(False)
                self.socks.append(s)
            except OSError as e:
                s.close()
                key = type(e).__name__ if e.errno is None else os.strerror(e.errno)
                self.failed[key] = self.failed.get(key, 0) + 1
            if time.time() > deadline:
                self.failed["not tried (stranger timeout)"] = idle - i - 1
                break

    def closed_by_server(self):
        """How many sockets the server has closed (end of stream or reset)."""
        poller = select.poll()
        for s in self.socks:
            poller.register(s.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
        closed = 0
        ready = {fd for fd, _ in poller.poll(0)}
        for s in self.socks:
            if s.fileno() in ready:
                try:
                    if s.recv(1) == b"":
                        closed += 1
                except BlockingIOError:
                    pass
                except OSError:
                    closed += 1
        return closed

    def close(self):
        for s in self.socks:
            s.close()
        self.socks = []


class NoisyQueries:
    """THREADS threads looping HEAVY_SQL as the noisy tenant; answers counted by status."""

    def __init__(self, server, threads, timeout):
        self.server, self.timeout = server, timeout
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.counts = {"200": 0, "422": 0, "429": 0, "other": 0, "error": 0}
        self.other = {}
        self.threads = [threading.Thread(target=self.loop, args=(i,), daemon=True) for i in range(threads)]
        for t in self.threads:
            t.start()

    def loop(self, i):
        n = i
        while not self.stop_flag.is_set():
            sql = HEAVY_SQL[n % len(HEAVY_SQL)]
            n += 1
            try:
                status, body = self.server.sql(NOISY, sql, timeout=self.timeout)
                key = str(status) if str(status) in self.counts else "other"
            except OSError as e:
                status, body, key = None, str(e).encode(), "error"
            with self.lock:
                self.counts[key] += 1
                if key != "200" and len(self.other) < 5:
                    # The first answers that are not 200, to say why (deadline, memory limit, ...).
                    self.other.setdefault(f"{status}: {body[:200].decode(errors='replace')}", True)
            if status == 429:
                # Over the cap: try again soon, so the cap stays full.
                self.stop_flag.wait(0.05)
            elif key == "error":
                self.stop_flag.wait(0.2)

    def snapshot(self):
        with self.lock:
            return dict(self.counts)

    def close(self):
        self.stop_flag.set()
        deadline = time.time() + self.timeout + 5
        for t in self.threads:
            t.join(max(0.1, deadline - time.time()))
        return [t for t in self.threads if t.is_alive()]


class HealthProbe:
    """GET /healthz on each listener every INTERVAL s (a new connection each time): latencies."""

    def __init__(self, ports, interval, timeout=5):
        self.ports, self.interval, self.timeout = ports, interval, timeout
        self.samples = {name: [] for name in ports}
        self.failures = {name: 0 for name in ports}
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop_flag.is_set():
            for name, port in self.ports.items():
                t0 = time.monotonic()
                try:
                    status, _ = http("GET", f"http://127.0.0.1:{port}/healthz", timeout=self.timeout)
                    ok = status == 200
                except OSError:
                    ok = False
                dt = time.monotonic() - t0
                self.samples[name].append(dt)
                if not ok:
                    self.failures[name] += 1
            self.stop_flag.wait(self.interval)

    def close(self):
        self.stop_flag.set()
        self.thread.join(self.timeout * len(self.ports) + 5)

    def max_ms(self, name):
        s = self.samples.get(name)
        return max(s) * 1000 if s else float("nan")


# ---------------------------------------------------------------- one run

def window(server, args, row):
    """Quiet sends COUNT messages; returns once SQL count(*) for quiet says COUNT."""
    probe_ports = {"public": server.http_port}
    if server.ops_port:
        probe_ports["ops"] = server.ops_port
    before = server.prom()
    errpath = os.path.join(server.dir, "quiet.err")
    cpu0 = cpu_seconds(server.pid)
    health = HealthProbe(probe_ports, args.health_interval)
    g = None
    try:
        g = start_gen(args, server.ports[QUIET], args.count, args.conns, errpath)
        t0 = time.monotonic()
        row["_t0"] = t0
        deadline = time.time() + args.timeout
        n, refused_counts, last_err = 0, 0, None
        cheap = True
        while True:
            if cheap:
                try:
                    stored = server.stored(QUIET)
                except (OSError, RuntimeError) as e:
                    stored, last_err = 0, e
                if stored is None:
                    cheap = False  # this listener hides tenant series: ask SQL every time
            if not cheap or stored >= args.count:
                try:
                    n = server.count(QUIET, timeout=30)
                except RuntimeError as e:
                    refused_counts += 1
                    last_err = e
                except OSError as e:
                    last_err = e
            if n >= args.count:
                break
            if g.poll() is not None and g.returncode != 0:
                raise RunFailed(f"quiet: {gen_failure(g, errpath)}; {n} of {args.count} queryable")
            if time.time() > deadline:
                raise RunFailed(f"quiet: only {n} of {args.count} queryable after {args.timeout}s"
                                + (f" (last error: {last_err})" if last_err else ""))
            if not alive(server.pid):
                raise RunFailed("meniscus exited")
            time.sleep(args.poll_interval if cheap else max(args.poll_interval, 0.1))
        t1 = time.monotonic()
        cpu1 = cpu_seconds(server.pid)
        row["_t1"] = t1
        out, _ = g.communicate(timeout=60)
        STARTED.remove(g)
        g = None
    finally:
        health.close()
        if g is not None:
            stop(g)
    if n != args.count:
        raise RunFailed(f"quiet counts {n} events, {args.count} were sent")
    # The last batch's observation is made just after it becomes queryable.
    time.sleep(0.3)
    after = server.prom()
    wall = t1 - t0
    p99, le, obs = quantile(0.99, before, after)
    row.update(wall=wall, rate=args.count / wall, p99=p99, p99_le=le, batches=obs,
               cpu_us=(cpu1 - cpu0) * 1e6 / args.count, rss=peak_rss_mb(server.pid),
               health_public=health.max_ms("public"), health_ops=health.max_ms("ops"),
               health_fail=sum(health.failures.values()), count_refusals=refused_counts,
               gen_rate=float(parse_kv(out).get("rate", "nan")))


def one_run(args, work, features, case, i):
    row = {"case": case, "run": i, "ok": False}
    server = Server(args, work, features, f"{case}-{i}")
    stranger = queries = None
    try:
        preload(server, args)
        if case == "noisy":
            prom0 = server.prom()
            stranger = Stranger(server.ports[QUIET], args.idle, args.stranger_addrs, args.stranger_timeout)
            # Let the server accept (or refuse) everything the kernel queued.
            time.sleep(args.settle)
            prom1 = server.prom()
            row["stranger_connected"] = len(stranger.socks)
            row["stranger_connect_failed"] = stranger.failed
            row["server_open"] = prom_sum(prom1, "meniscus_ingest_open_connections", transport="tcp")
            ref0 = prom_by(prom0, "meniscus_ingest_refused_connections_total", "reason")
            ref1 = prom_by(prom1, "meniscus_ingest_refused_connections_total", "reason")
            row["server_refused"] = {k: int(v - ref0.get(k, 0)) for k, v in ref1.items() if v - ref0.get(k, 0) > 0}
            row["refused_metric"] = "meniscus_ingest_refused_connections_total" in {
                s.split("{")[0] for s in prom1}
            log(f"{case} run {i}: stranger connected {len(stranger.socks)} of {args.idle}"
                f"{' (failed: ' + str(stranger.failed) + ')' if stranger.failed else ''}; server holds "
                f"{row['server_open']:.0f} tcp connections, refused {row['server_refused'] or 0}")
            queries = NoisyQueries(server, args.query_threads, args.query_timeout)
            time.sleep(args.settle)  # the cap is busy before the clock starts
            q0 = queries.snapshot()
        try:
            window(server, args, row)
            row["ok"] = True
        except RunFailed as e:
            row["error"] = str(e)
        if queries is not None:
            q1 = queries.snapshot()
            row["queries"] = {k: q1[k] - q0[k] for k in q1}
            if "wall" in row:
                row["queries_per_s"] = row["queries"]["200"] / row["wall"]
        if stranger is not None:
            row["stranger_closed"] = stranger.closed_by_server()
            prom2 = server.prom()
            ref2 = prom_by(prom2, "meniscus_ingest_refused_connections_total", "reason")
            row["server_refused_end"] = {k: int(v - ref0.get(k, 0)) for k, v in ref2.items()
                                         if v - ref0.get(k, 0) > 0}
    except RunFailed as e:
        row["error"] = str(e)
    except Exception as e:
        row["error"] = f"{type(e).__name__}: {e}"
        log(f"{case} run {i} failed; meniscus log ({server.logpath}) ends with:\n{server.log_tail()}")
        args.keep = True
        raise
    finally:
        if queries is not None:
            stuck = queries.close()
            if stuck:
                log(f"WARNING: {len(stuck)} query threads still waiting for an answer")
            if queries.other:
                row["query_other"] = list(queries.other)
        if stranger is not None:
            stranger.close()
        server.close()
        if not args.keep:
            shutil.rmtree(server.dir, ignore_errors=True)
    return row


def describe(row):
    if not row["ok"]:
        return f"FAILED: {row.get('error')}"
    s = (f"{row['rate']:,.0f} msg/s, wall {row['wall']:.2f} s, p99 {row['p99']:.3f} s (le {row['p99_le']:g}, "
         f"{row['batches']} batches), healthz max public {fmt(row['health_public'], '.1f')} ms / ops "
         f"{fmt(row['health_ops'], '.1f')} ms, {row['cpu_us']:.2f} µs CPU/msg, peak RSS {row['rss']:.0f} MB")
    if "queries" in row:
        s += f", noisy queries {row['queries']}"
    return s


# ---------------------------------------------------------------- report

def med(rows, key):
    vals = [r[key] for r in rows if r.get("ok") and r.get(key) == r.get(key)]
    return statistics.median(vals) if vals else float("nan")


def fmt(v, spec, dash="-"):
    return dash if v != v else format(v, spec)


def table(args, features, runs, notes):
    lines = []
    lines.append(f"# bench/noisy: tenant quiet sends {args.count:,} RFC 5424 messages ({args.size} B, octet-counted, "
                 f"{args.conns} TCP conn, listener bound to quiet) into meniscus standalone")
    lines.append(f"# noisy case: tenant noisy ({args.preload:,} events preloaded) loops heavy SQL on "
                 f"{args.query_threads} threads; a stranger holds {args.idle:,} idle TCP connections to quiet's "
                 f"port from {args.stranger_addrs} source addresses")
    lines.append(f"# {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {os.cpu_count()} cpus, load average at start "
                 f"{args.loadavg}; binary {args.meniscus_bin} ({args.bin_mtime})")
    lines.append("# wall = generator go -> SQL count(*) for quiet == count; p99 = ingest-to-queryable "
                 "(histogram_quantile interpolation; le = bucket upper bound); healthz = max of samples every "
                 f"{args.health_interval} s")
    lines.append("# cpu µs/msg = server utime+stime over the window / count (in the noisy case it includes noisy's "
                 "queries and the stranger's sockets)")
    lines.append("")
    hdr = (f"{'case':<9} {'runs ok':>7} {'wall s':>7} {'msg/s':>11} {'p99 s':>7} {'(le)':>6} {'batches':>7} "
           f"{'cpu µs/msg':>10} {'healthz max ms public/ops':>25} {'noisy SQL 200/422/429/other/err':>31}")
    lines.append(hdr)
    lines.append("-" * len(hdr))
    med_rows = {}
    for case in args.cases:
        rs = runs[case]
        ok = [r for r in rs if r["ok"]]
        m = {k: med(rs, k) for k in ("wall", "rate", "p99", "p99_le", "batches", "cpu_us", "health_public",
                                      "health_ops")}
        med_rows[case] = m
        q = "-"
        if case == "noisy":
            qs = [r["queries"] for r in rs if "queries" in r]
            if qs:
                q = "/".join(str(sum(x[k] for x in qs)) for k in ("200", "422", "429", "other", "error"))
        health = f"{fmt(m['health_public'], '.1f')}/{fmt(m['health_ops'], '.1f')}"
        lines.append(f"{case:<9} {len(ok):>3}/{len(rs):<3} {fmt(m['wall'], '7.2f'):>7} {fmt(m['rate'], '11,.0f'):>11} "
                     f"{fmt(m['p99'], '7.3f'):>7} {fmt(m['p99_le'], 'g'):>6} {fmt(m['batches'], '.0f'):>7} "
                     f"{fmt(m['cpu_us'], '.2f'):>10} {health:>25} {q:>31}")
    lines.append("")
    verdict = []
    if "baseline" in med_rows and "noisy" in med_rows:
        b, n = med_rows["baseline"], med_rows["noisy"]
        failed = [r for r in runs["noisy"] if not r["ok"]]
        rate_ratio = n["rate"] / b["rate"] if b["rate"] == b["rate"] else float("nan")
        p99_ratio = n["p99"] / b["p99"] if b["p99"] == b["p99"] and b["p99"] > 0 else float("nan")
        met_rate = rate_ratio == rate_ratio and rate_ratio >= 0.8 and not failed
        met_p99 = p99_ratio == p99_ratio and p99_ratio <= 2.0 and not failed
        lines.append(f"noisy/baseline msg/s: {fmt(rate_ratio, '.2f')}   goal >= 0.80: {'met' if met_rate else 'NOT MET'}")
        lines.append(f"noisy/baseline p99:   {fmt(p99_ratio, '.2f')}   goal <= 2.00: {'met' if met_p99 else 'NOT MET'}")
        if failed:
            verdict.append(f"{len(failed)} of {len(runs['noisy'])} noisy runs failed, so the goal is not met "
                           "whatever the ratios of the others say")
        lines.append("")
    for case in args.cases:
        for r in runs[case]:
            lines.append(f"# {case} run {r['run']}: {describe(r)}")
            if case == "noisy" and "stranger_connected" in r:
                failed_conn = f", connect failed {r['stranger_connect_failed']}" if r["stranger_connect_failed"] else ""
                # A counter with no samples yet is not exposed: none refused.
                refused = r["server_refused"] or "none"
                lines.append(f"#   stranger: {r['stranger_connected']} of {args.idle} connects succeeded{failed_conn}; "
                             f"server held {r['server_open']:.0f} tcp connections before the window, refused "
                             f"{refused}; {r.get('stranger_closed', '?')} of the stranger's sockets closed by the "
                             f"server by the end (refused by the end: {r.get('server_refused_end') or 'none'})")
                if r.get("queries_per_s") is not None:
                    lines.append(f"#   noisy queries answered 200: {r['queries_per_s']:.2f}/s during the window")
                for o in r.get("query_other", []):
                    lines.append(f"#   noisy query answer: {o}")
            if r.get("count_refusals"):
                lines.append(f"#   quiet's count(*) polls not answered 200: {r['count_refusals']}")
            if r.get("health_fail"):
                lines.append(f"#   /healthz samples failed or timed out: {r['health_fail']}")
    lines.extend("# " + v for v in verdict)
    lines.extend("# " + n for n in notes)
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blast", required=True, help="the bench/e2e/blast.c binary")
    ap.add_argument("--count", type=int, default=2_000_000, help="messages quiet sends in the window")
    ap.add_argument("--size", type=int, default=200)
    ap.add_argument("--conns", type=int, default=1, help="quiet's TCP connections")
    ap.add_argument("--preload", type=int, default=500_000, help="noisy's events, loaded before the window")
    ap.add_argument("--idle", type=int, default=5000, help="the stranger's idle connections")
    ap.add_argument("--stranger-addrs", type=int, default=20, help="source addresses 127.0.0.2 ... for them")
    ap.add_argument("--stranger-timeout", type=float, default=120, help="limit for opening them all")
    ap.add_argument("--query-threads", type=int, default=2,
                    help="noisy's query loops (default: maxConcurrentQueriesPerTenant's default, 2)")
    ap.add_argument("--query-timeout", type=float, default=60, help="client timeout of one noisy query")
    ap.add_argument("--limits", default="",
                    help="YAML flow mapping for the config's limits, e.g. '{maxConnections: 8192}' (both cases)")
    ap.add_argument("--cases", default="baseline,noisy")
    ap.add_argument("--repeat", type=int, default=3, help="runs per case, taking turns; the table shows medians")
    ap.add_argument("--health-interval", type=float, default=0.5)
    ap.add_argument("--poll-interval", type=float, default=0.05)
    ap.add_argument("--settle", type=float, default=1.0,
                    help="seconds after the stranger connects, and after the queries start, before the clock")
    ap.add_argument("--meniscus-bin", default=os.environ.get("MENISCUS_BIN") or os.path.join(
        os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target"), "release", "meniscus"))
    ap.add_argument("--timeout", type=float, default=300, help="limit for a preload or a window")
    ap.add_argument("--start-timeout", type=float, default=60)
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results", "noisy.txt"))
    ap.add_argument("--keep", action="store_true", help="keep the data dirs and logs")
    args = ap.parse_args()
    args.cases = [c for c in args.cases.split(",") if c]
    for c in args.cases:
        if c not in ("baseline", "noisy"):
            ap.error(f"unknown case {c!r}: baseline, noisy")
    if not 1 <= args.stranger_addrs <= 250:
        ap.error("--stranger-addrs: 1 to 250 (127.0.0.2 ... 127.0.0.251)")
    args.loadavg = " ".join(open("/proc/loadavg").read().split()[:3])
    if not os.access(args.meniscus_bin, os.X_OK):
        sys.exit(f"noisy.py: no executable at {args.meniscus_bin} (build with `cargo build --release` "
                 "or set MENISCUS_BIN)")
    args.bin_mtime = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(os.path.getmtime(args.meniscus_bin)))

    # The stranger's sockets live in this process: raise the soft open-file limit to the hard one.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    args.orig_nofile = soft
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    have = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if have != resource.RLIM_INFINITY and have < args.idle + 200:
        sys.exit(f"noisy.py: open-file limit {have} (hard {hard}) is too low for {args.idle} idle connections; "
                 "raise it (ulimit -Hn) or pass a smaller --idle")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
    work = tempfile.mkdtemp(prefix="meniscus-noisy.")
    runs = {c: [] for c in args.cases}
    notes = []
    try:
        features = probe_features(args, work)
        missing = [f for f, ok in features.items() if not ok]
        if missing:
            notes.append(f"this binary does not know {', '.join(missing)} (a build older than those features): "
                         + ("no ops listener, so metrics and the 'ops' healthz come from the public listener "
                            "(no ops column); " if not features["ops.address"] else "")
                         + ("noisy's queries run uncapped; " if not features["limits.maxConcurrentQueriesPerTenant"]
                            else "")
                         + ("connections are not limited; " if not features["limits.maxConnections"] else "")
                         + "rebuild (cargo build --release -p meniscus-worker) to measure the current code")
            log("NOTE:", notes[-1])
        for i in range(1, args.repeat + 1):
            # The cases take turns, so a slow spell of this shared machine lands on both alike.
            for case in args.cases:
                log(f"{case} run {i}/{args.repeat} ...")
                r = one_run(args, work, features, case, i)
                runs[case].append(r)
                log(f"{case} run {i}/{args.repeat}: {describe(r)}")
    finally:
        stop_all()
        if args.keep:
            log("kept", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    notes.append("generator: bench/e2e/blast.c, frames pre-rendered before the clock starts; quiet's and "
                 "noisy's listeners are bound to their tenant (no credentials in the messages); the stranger "
                 "sends nothing at all on its connections")
    notes.append("noisy SQL (round robin per thread): " + " | ".join(HEAVY_SQL))
    notes.append("the ingest-to-queryable histogram has one observation per stored batch (oldest event's "
                 "receive time -> queryable), so p99 is over batches, not events; its buckets are coarse "
                 "(… 0.1, 0.25, 0.5, 1, 2.5 s), read the le column with the interpolated value")
    if args.repeat > 1:
        notes.append(f"each column is the median of the successful runs of its case ({args.repeat} runs each, "
                     "the cases taking turns); the noisy SQL column sums all runs; every run is listed above")
    text = table(args, features, runs, notes)
    print(text, end="")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    log("written", args.out)


if __name__ == "__main__":
    try:
        main()
    except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as e:
        # Everything started is stopped by main's finally; say what went wrong, plainly.
        sys.exit(f"noisy.py: {type(e).__name__}: {e}")
