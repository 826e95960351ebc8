#!/usr/bin/env python3
"""Ingest protocols side by side: Meniscus's events per CPU-second for each way in.

Run through bench/agents/run.sh. One `meniscus standalone` process, one tenant (`bench`), and
one phase per protocol, each sending COUNT events (bench/e2e's 200-byte messages, the same
text, host, app, time and severity in every protocol; corpus.py) from stdlib Python:

  syslog-tcp  RFC 5424, octet-counted, to a TCP listener bound to the tenant (as bench/e2e)
  publish     POST /v1/tenant/bench/publish, JSON arrays of message objects
  loki        POST /loki/api/v1/push, protobuf PushRequest in a snappy block (Promtail's default)
  elastic     POST /logs-bench/_bulk, NDJSON `create` actions (Filebeat's shape)
  otlp        POST /v1/logs, protobuf ExportLogsServiceRequest (the SDK's default: uncompressed)
  relp        rsyslog's RELP to a `protocol: relp` listener: `open`, then `syslog` frames with
              their txnr, at most WINDOW unacknowledged, reading the `rsp` acks (a minimal
              client written here)
Variants (--protocols): otlp-gzip (the Collector's default encoding), relp-w128 (omrelp's
default window of 128), publish-ndjson.

Bodies and frames are rendered before the clock starts (the protobuf ones by encode.py, run
with the agents' venv python); HTTP sends BATCH events per request over keep-alive
connections. A phase: server CPU (each thread's time on CPU, /proc/PID/task/*/schedstat) noted, the
events sent, the clock stopped when the ops listener's meniscus_store_stored_events_total shows
them all, then CPU noted again once meniscus_hot_flushes_total shows the phase's own flush
(storage.flushEvents = COUNT, so every phase pays for writing exactly its events to Parquet,
and no other's). Server CPU leaves out the `ops` thread (it only answers this driver's polls).
A syslog TCP warm-up phase runs first and is not reported; then --repeat rounds (default 3) of
every protocol, taking turns, and the table shows each protocol's median run. At the end an SQL
count per transport checks every event was stored once.

Every wait is bounded; every started process is stopped on the way out (bench/lib/benchproc).
"""
import argparse
import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "bench", "lib"))
sys.path.insert(0, HERE)
import corpus  # noqa: E402
from benchproc import (STARTED, alive, cpu_seconds, free_port, listening,  # noqa: E402
                       peak_rss_mb, stop, stop_all, wait_until)

TENANT, TOKEN = "bench", "bench-token"

# name -> (label, transport column value, kind of sender)
PROTOCOLS = {
    "syslog-tcp": ("syslog TCP, octet-counted RFC 5424", "tcp", "tcp"),
    "publish": ("HTTP publish, JSON array", "http", "http"),
    "publish-ndjson": ("HTTP publish, NDJSON", "http", "http"),
    "loki": ("Loki push, protobuf + snappy", "loki", "http"),
    "elastic": ("Elasticsearch _bulk, NDJSON", "elastic", "http"),
    "otlp": ("OTLP/HTTP, protobuf", "otlp", "http"),
    "otlp-gzip": ("OTLP/HTTP, protobuf + gzip", "otlp", "http"),
    "relp": ("RELP, window {w}", "relp", "relp"),
    "relp-w128": ("RELP, window 128 (omrelp's default)", "relp", "relp"),
}
MAIN = ["syslog-tcp", "publish", "loki", "elastic", "otlp", "relp"]
GOAL = 0.7  # each protocol's events per CPU-second >= 0.7x syslog TCP's


def log(*a):
    print("[agents]", *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- server CPU by thread

THREAD_GROUPS = {"ingest": "ingest", "wal-committer": "wal", "hot-flusher": "flush", "ops": "ops"}


def server_cpu(pid):
    """(process utime+stime, {tid: (group, seconds on CPU)}). Threads are read from
    /proc/PID/task/TID/schedstat (nanoseconds; utime+stime come in 10 ms ticks, too coarse for
    a phase of a few tenths of a second)."""
    total = cpu_seconds(pid)
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                ns = int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        threads[tid] = (THREAD_GROUPS.get(comm, "other"), ns / 1e9)
    return total, threads


def cpu_delta(before, after):
    """CPU seconds between two server_cpu snapshots, per thread group and in all. A thread that
    ended in between is missing from the sums: what the process's utime+stime grew by beyond
    them (more than tick rounding) is added to other."""
    groups = {"ingest": 0.0, "wal": 0.0, "flush": 0.0, "ops": 0.0, "other": 0.0}
    for tid, (group, seconds) in after[1].items():
        groups[group] += seconds - before[1].get(tid, (group, 0.0))[1]
    threads = sum(groups.values())
    ended = (after[0] - before[0]) - threads
    if ended > 0.03:
        groups["other"] += ended
    groups["total"] = sum(groups.values())
    groups["server"] = groups["total"] - groups["ops"]  # what the table reports
    return groups


# ---------------------------------------------------------------- ops metrics

class Ops:
    """Scrapes the ops listener's /metrics over one keep-alive connection."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def scrape(self):
        for attempt in (1, 2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                self.conn.request("GET", "/metrics")
                r = self.conn.getresponse()
                text = r.read().decode()
                if r.status != 200:
                    raise RuntimeError(f"/metrics answered {r.status}")
                break
            except (OSError, http.client.HTTPException):
                self.conn = None
                if attempt == 2:
                    raise
        stored = flushes = 0
        for line in text.splitlines():
            if line.startswith("meniscus_store_stored_events_total"):
                stored += int(float(line.rsplit(" ", 1)[1]))
            elif line.startswith("meniscus_hot_flushes_total"):
                flushes += int(float(line.rsplit(" ", 1)[1]))
        return stored, flushes

    def ready(self):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            c.request("GET", "/readyz")
            r = c.getresponse()
            r.read()
            c.close()
            return r.status == 200
        except (OSError, http.client.HTTPException):
            return False


def sql(http_port, statement, timeout=60):
    c = http.client.HTTPConnection("127.0.0.1", http_port, timeout=timeout)
    c.request("POST", f"/v1/tenant/{TENANT}/sql", body=json.dumps({"sql": statement}).encode(),
              headers={"MESSAGE-TOKEN": TOKEN, "Content-Type": "application/json"})
    r = c.getresponse()
    body = r.read()
    c.close()
    if r.status != 200:
        raise RuntimeError(f"SQL answered {r.status}: {body[:300]!r}")
    return json.loads(body)["rows"]


# ---------------------------------------------------------------- rendering (untimed)

def split(items, parts):
    """items dealt round-robin into `parts` lists (one per connection)."""
    return [items[i::parts] for i in range(parts)]


def render_syslog_tcp(events):
    return b"".join(
        f"{len(m)} {m}".encode() for m in
        (corpus.header(stamp) + msg for stamp, _ns, msg in events))


def relp_frames(events):
    """The `syslog` frames of one session (txnr 2, 3, ...; 1 is `open`), and where each ends."""
    parts, ends, at = [], [], 0
    for txnr, (stamp, _ns, msg) in enumerate(events, start=2):
        data = (corpus.header(stamp) + msg + "\n").encode()  # rsyslog's template ends in LF
        frame = b"%d syslog %d %s\n" % (txnr, len(data), data)
        parts.append(frame)
        at += len(frame)
        ends.append(at)
    return b"".join(parts), ends


def publish_object(stamp, msg):
    return {"host": corpus.HOST, "pname": corpus.APP, "pid": corpus.PROCID, "msgid": corpus.MSGID,
            "time": stamp, "pri": corpus.PRI, "msg": msg}


def elastic_pair(stamp, msg):
    return ('{"create":{}}\n' + json.dumps(
        {"@timestamp": stamp, "message": msg, "host": {"name": corpus.HOST},
         "service": {"name": corpus.APP}, "log": {"level": corpus.SEVERITY_TEXT}},
        separators=(",", ":")) + "\n")


def batches(events, size):
    return [events[i:i + size] for i in range(0, len(events), size)]


def read_bodies(path):
    bodies = []
    with open(path, "rb") as f:
        data = f.read()
    at = 0
    while at < len(data):
        (n,) = struct.unpack_from(">I", data, at)
        bodies.append(data[at + 4:at + 4 + n])
        at += 4 + n
    return bodies


def basic(user, password):
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def http_plan(name, events, args, encoded):
    """(path, headers, bodies, accepted statuses, answer check) of an HTTP protocol."""
    agent_auth = {"X-Scope-OrgID": TENANT, "Authorization": "Bearer " + TOKEN}
    if name == "publish":
        bodies = [json.dumps([publish_object(s, m) for s, _n, m in b], separators=(",", ":")).encode()
                  for b in batches(events, args.batch)]
        return (f"/v1/tenant/{TENANT}/publish", {"MESSAGE-TOKEN": TOKEN, "Content-Type": "application/json"},
                bodies, (202, 204), None)
    if name == "publish-ndjson":
        bodies = ["".join(json.dumps(publish_object(s, m), separators=(",", ":")) + "\n" for s, _n, m in b).encode()
                  for b in batches(events, args.batch)]
        return (f"/v1/tenant/{TENANT}/publish", {"MESSAGE-TOKEN": TOKEN, "Content-Type": "application/x-ndjson"},
                bodies, (202, 204), None)
    if name == "elastic":
        bodies = ["".join(elastic_pair(s, m) for s, _n, m in b).encode() for b in batches(events, args.batch)]
        return ("/logs-bench/_bulk", {"Authorization": "ApiKey " + basic(TENANT, TOKEN),
                                      "Content-Type": "application/x-ndjson"},
                bodies, (200,), lambda answer: b'"errors":false' in answer[:200])
    if name == "loki":
        return ("/loki/api/v1/push", dict(agent_auth, **{"Content-Type": "application/x-protobuf"}),
                read_bodies(encoded[name]), (204,), None)
    if name in ("otlp", "otlp-gzip"):
        headers = dict(agent_auth, **{"Content-Type": "application/x-protobuf"})
        if name == "otlp-gzip":
            headers["Content-Encoding"] = "gzip"
        # An ExportLogsServiceResponse without partial_success (nothing rejected) is empty.
        return ("/v1/logs", headers, read_bodies(encoded[name]), (200,), lambda answer: len(answer) <= 2)
    raise ValueError(name)


# ---------------------------------------------------------------- senders (timed)

class Sender(threading.Thread):
    """One connection's worth of sending; keeps its error and counts."""

    def __init__(self, work):
        super().__init__(daemon=True)
        self.work, self.error, self.retries, self.requests = work, None, 0, 0

    def run(self):
        try:
            self.work(self)
        except BaseException as e:  # noqa: BLE001 - reported by the phase
            self.error = e


def tcp_work(port, data):
    def work(sender):
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        view = memoryview(data)
        for at in range(0, len(data), 1 << 20):
            s.sendall(view[at:at + (1 << 20)])
        s.shutdown(socket.SHUT_WR)
        s.close()
    return work


def http_work(port, path, headers, bodies, statuses, check, deadline):
    def work(sender):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for body in bodies:
            while True:
                conn.request("POST", path, body=body, headers=headers)
                r = conn.getresponse()
                answer = r.read()
                sender.requests += 1
                if r.status in (429, 503):
                    # Over the limit or queue full: wait as asked (at most 1 s), send it again.
                    sender.retries += 1
                    if time.time() > deadline:
                        raise TimeoutError(f"{path}: still {r.status} at the deadline")
                    time.sleep(min(float(r.getheader("Retry-After") or 1), 1.0))
                    continue
                if r.status not in statuses or (check and not check(answer)):
                    raise RuntimeError(f"{path} answered {r.status}: {answer[:300]!r}")
                break
        conn.close()
    return work


RELP_OFFERS = b"relp_version=0\nrelp_software=meniscus-bench,1\ncommands=syslog"
RELP_HEAD = re.compile(rb"(\d{1,9}) ([a-z]+) (\d{1,9})[ \n]")


def relp_read_frame(s, buf):
    """One whole frame from socket s (buf: bytes already read); (txnr, command, data, rest)."""
    while True:
        m = RELP_HEAD.match(buf)
        if m:
            n = int(m.group(3))
            start = m.end() if n > 0 else m.end() - 1
            if n == 0 and buf[m.end() - 1:m.end()] == b"\n":
                return int(m.group(1)), m.group(2), b"", buf[m.end():]
            if len(buf) >= start + n + 1:
                if buf[start + n:start + n + 1] != b"\n":
                    raise RuntimeError(f"RELP: bad frame {buf[:100]!r}")
                return int(m.group(1)), m.group(2), buf[start:start + n], buf[start + n + 1:]
        chunk = s.recv(65536)
        if not chunk:
            raise RuntimeError(f"RELP: the server closed the session (pending {buf[:200]!r})")
        buf += chunk


def relp_work(port, frames, ends, window):
    """open; then the frames, at most `window` unacknowledged; every `rsp` must be 200 OK;
    close once all are acknowledged."""
    ok = b" rsp 6 200 OK\n"

    def work(sender):
        s = socket.create_connection(("127.0.0.1", port), timeout=60)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(b"1 open %d %s\n" % (len(RELP_OFFERS), RELP_OFFERS))
        txnr, command, data, buf = relp_read_frame(s, b"")
        if txnr != 1 or command != b"rsp" or not data.startswith(b"200 OK"):
            raise RuntimeError(f"RELP open answered {txnr} {command} {data!r}")
        total, sent, acked = len(ends), 0, 0
        view = memoryview(frames)
        while acked < total:
            if sent < total and sent - acked < window:
                upto = min(total, acked + window)
                s.sendall(view[ends[sent - 1] if sent else 0:ends[upto - 1]])
                sent = upto
            chunk = s.recv(1 << 20)
            if not chunk:
                raise RuntimeError(f"RELP: the server closed the session after {acked} acks")
            buf += chunk
            cut = buf.rfind(b"\n") + 1
            if cut:
                whole, buf = buf[:cut], buf[cut:]
                n = whole.count(ok)
                if n != whole.count(b"\n"):
                    bad = [line for line in whole.split(b"\n") if line and not (line + b"\n").endswith(ok)]
                    raise RuntimeError(f"RELP: an answer other than 200 OK: {bad[0][:200]!r}")
                acked += n
        sender.requests = total
        close = total + 2
        s.sendall(b"%d close 0\n" % close)
        txnr, command, _data, buf = relp_read_frame(s, buf)
        if txnr != close or command != b"rsp":
            raise RuntimeError(f"RELP close answered {txnr} {command}")
        s.close()
    return work


# ---------------------------------------------------------------- phases

def prepare(name, first, args, ports, encoded, deadline_holder):
    """The senders of a phase, everything rendered; returns (senders factory, batch label)."""
    events = corpus.events(first, args.count, args.size, args.base_us)
    kind = PROTOCOLS[name][2]
    conns = args.conns
    if kind == "tcp":
        datas = [render_syslog_tcp(part) for part in split(events, conns)]
        return lambda: [Sender(tcp_work(ports["tcp"], d)) for d in datas], "stream"
    if kind == "relp":
        window = 128 if name == "relp-w128" else args.relp_window
        sessions = [relp_frames(part) for part in split(events, conns)]
        return (lambda: [Sender(relp_work(ports["relp"], f, e, window)) for f, e in sessions],
                f"window {window}")
    path, headers, bodies, statuses, check = http_plan(name, events, args, encoded)
    del events
    parts = split(bodies, conns)
    return (lambda: [Sender(http_work(ports["http"], path, headers, p, statuses, check,
                                      deadline_holder[0])) for p in parts],
            f"{args.batch}/req")


def perf_start(args, name, pid):
    """perf record of the server over this phase (--perf): its sampling costs the server CPU
    too, so the phase's row is marked."""
    data = os.path.join(args.work, f"perf-{name}.data")
    p = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "999", "-g", "-p", str(pid), "-o", data],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    STARTED.append(p)
    time.sleep(0.5)  # attached by now
    if p.poll() is not None:
        raise RuntimeError(f"perf record failed: {p.stderr.read().decode()[-500:]}")
    return p, data


def perf_stop(args, name, perf):
    p, data = perf
    p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout=30)
    finally:
        stop(p)
    report = os.path.join(args.work, f"perf-{name}.txt")
    with open(report, "w") as f:
        subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "-g", "none",
                        "--percent-limit", "0.5", "--sort", "comm,dso,symbol"],
                       stdout=f, stderr=subprocess.DEVNULL, timeout=300)
    top = [re.sub(r"(\s+-)*\s*$", "", line) for line in open(report)
           if line.strip() and not line.startswith("#")][:25]
    log(f"perf profile of {name} ({report}), top entries:\n" + "\n".join(top))
    args.keep = True


def run_phase(name, first, args, pid, ports, ops, encoded, profile=False):
    deadline_holder = [time.time() + args.timeout]
    make, batch = prepare(name, first, args, ports, encoded, deadline_holder)
    perf = perf_start(args, name, pid) if profile else None
    stored0, flushes0 = ops.scrape()
    senders = make()
    cpu0 = server_cpu(pid)
    client0 = time.process_time()
    t0 = time.monotonic()
    deadline = time.time() + args.timeout
    deadline_holder[0] = deadline
    for s in senders:
        s.start()
    target = stored0 + args.count
    t_sent = None
    while True:
        stored, flushes = ops.scrape()
        if t_sent is None and not any(s.is_alive() for s in senders):
            t_sent = time.monotonic()
        if stored >= target:
            break
        errors = [s.error for s in senders if s.error]
        if errors:
            raise RuntimeError(f"{name}: sending failed: {errors[0]!r}")
        if time.time() > deadline:
            raise TimeoutError(f"{name}: {stored - stored0} of {args.count} events stored after {args.timeout}s")
        if not alive(pid):
            raise RuntimeError(f"{name}: meniscus exited")
        time.sleep(args.poll)
    t_stored = time.monotonic()
    cpu_stored = server_cpu(pid)
    for s in senders:
        s.join(max(0.0, deadline - time.time()))
        if s.is_alive():
            raise TimeoutError(f"{name}: a sender still runs at the deadline")
        if s.error:
            raise RuntimeError(f"{name}: sending failed: {s.error!r}")
    if t_sent is None:
        t_sent = time.monotonic()
    client_cpu = time.process_time() - client0
    # The phase's own flush (storage.flushEvents = count): its Parquet encoding is part of
    # what these events cost.
    wait_until(lambda: ops.scrape()[1] >= flushes0 + 1, max(1.0, deadline - time.time()),
               f"{name}: the phase's flush", pid=pid, interval=args.poll)
    t_flushed = time.monotonic()
    cpu1 = server_cpu(pid)
    if perf:
        perf_stop(args, name, perf)
    stored, _ = ops.scrape()
    if stored != target:
        log(f"WARNING: {name}: {stored - stored0} events stored, {args.count} sent")
    d = cpu_delta(cpu0, cpu1)
    d_stored = cpu_delta(cpu0, cpu_stored)
    wall = t_stored - t0
    label = PROTOCOLS[name][0].format(w=args.relp_window) + (" [perf]" if perf else "")
    return {"name": name, "label": label, "batch": batch,
            "n": args.count, "wall": wall, "rate": args.count / wall, "sent_wall": t_sent - t0,
            "flush_wall": t_flushed - t_stored, "cpu": d, "cpu_at_stored": d_stored["server"],
            "client_cpu": client_cpu, "retries": sum(s.retries for s in senders),
            "requests": sum(s.requests for s in senders), "first": first,
            "transport": PROTOCOLS[name][1]}


# ---------------------------------------------------------------- report

def table(args, rows, notes):
    L = []
    L.append(f"# bench/agents: {args.count:,} events per protocol and run ({args.size}-byte RFC 5424 equivalents), "
             f"{args.conns} connection(s) each, one meniscus standalone, 127.0.0.1")
    L.append(f"# {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {os.cpu_count()} cpus, load average at start "
             f"{args.loadavg}; binary {args.meniscus_bin} ({args.build})")
    L.append("# wall = first byte sent -> meniscus_store_stored_events_total shows every event; "
             "server CPU = time on CPU of the meniscus threads (but `ops`) from before sending until the "
             "phase's own Parquet flush is done (per-thread schedstat, ns)")
    L.append("")
    hdr = (f"{'protocol':<38} {'batch':>10} {'wall s':>7} {'events/s':>10} {'CPU s':>7} {'ingest':>7} "
           f"{'wal':>6} {'flush':>6} {'other':>6} {'µs/ev':>6} {'ev/CPU-s':>10} {'x syslog':>8} "
           f"{'x publish':>9} {'client CPU s':>12}")
    L.append(hdr)
    L.append("-" * len(hdr))
    by = {r["name"]: r for r in rows}

    def per_cpu(r):
        return r["n"] / r["cpu"]["server"] if r["cpu"]["server"] > 0 else float("inf")

    base_s, base_p = by.get("syslog-tcp"), by.get("publish")
    for r in rows:
        c = r["cpu"]
        xs = f"{per_cpu(r) / per_cpu(base_s):.2f}" if base_s else "-"
        xp = f"{per_cpu(r) / per_cpu(base_p):.2f}" if base_p else "-"
        L.append(f"{r['label']:<38} {r['batch']:>10} {r['wall']:>7.2f} {r['rate']:>10,.0f} {c['server']:>7.2f} "
                 f"{c['ingest']:>7.2f} {c['wal']:>6.2f} {c['flush']:>6.2f} {c['other']:>6.2f} "
                 f"{c['server'] * 1e6 / r['n']:>6.2f} {per_cpu(r):>10,.0f} {xs:>8} {xp:>9} {r['client_cpu']:>12.2f}")
    L.append("")
    if base_s:
        judged = [r for r in rows if r["name"] in MAIN and r["name"] != "syslog-tcp"]
        missed = [r["name"] for r in judged if per_cpu(r) / per_cpu(base_s) < GOAL]
        parts = ", ".join(f"{r['name']} {per_cpu(r) / per_cpu(base_s):.2f}x" for r in judged)
        L.append(f"goal: each protocol >= {GOAL}x syslog TCP's events per CPU-second: "
                 + ("**met**" if not missed else f"**not met** ({', '.join(missed)})") + f" [{parts}]")
        variants = [r for r in rows if r["name"] not in MAIN]
        if variants:
            L.append("variants (not judged): " + ", ".join(
                f"{r['name']} {per_cpu(r) / per_cpu(base_s):.2f}x" for r in variants))
        L.append("")
    L.extend("# " + n for n in notes)
    return "\n".join(L) + "\n"


# ---------------------------------------------------------------- main

def start_meniscus(args, wd, ports):
    os.makedirs(os.path.join(wd, "data"))
    conf = os.path.join(wd, "meniscus.yaml")
    with open(conf, "w") as f:
        f.write(f"""# Generated by bench/agents/agents.py
listeners:
  - protocol: tcp
    address: "127.0.0.1:{ports['tcp']}"
    tenant: {TENANT}
  - protocol: relp
    address: "127.0.0.1:{ports['relp']}"
    tenant: {TENANT}
http:
  address: "127.0.0.1:{ports['http']}"
ops:
  address: "127.0.0.1:{ports['ops']}"
storage:
  # One flush per phase, of exactly that phase's events (each phase sends flushEvents events
  # and waits for its flush); no flush by size or age in between; no compaction.
  flushEvents: {args.count}
  flushBytes: 34359738368
  flushInterval: 24h
  compactionZstdLevel: 0
tenants:
  - id: {TENANT}
    tokens:
      - value: {TOKEN}
    producers:
      - name: {corpus.APP}
        durable: {"true" if args.durable else "false"}
""")
    logf = open(os.path.join(wd, "meniscus.log"), "wb")
    p = subprocess.Popen([args.meniscus_bin, "standalone", "--data-dir", os.path.join(wd, "data"),
                          "--config", conf], stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    STARTED.append(p)
    return p, logf


def encode_protobuf(args, work, plan):
    """Runs encode.py (venv python) for the protobuf phases; {name: file of bodies}."""
    wanted = [(name, first) for name, first in plan if name in ("loki", "otlp", "otlp-gzip")]
    if not wanted:
        return {}
    spec = {"size": args.size, "base_us": args.base_us, "batch": args.batch, "count": args.count,
            "phases": [{"kind": name, "first": first, "out": os.path.join(work, f"{name}-{first}.bodies")}
                       for name, first in wanted]}
    t = time.monotonic()
    out = subprocess.run([args.venv_python, os.path.join(HERE, "encode.py")], input=json.dumps(spec),
                         capture_output=True, text=True, timeout=args.timeout)
    if out.returncode != 0:
        raise RuntimeError(f"encode.py failed ({out.returncode}): {out.stderr[-2000:]}")
    for line in out.stdout.splitlines():
        log("encoded", line)
    log(f"protobuf bodies encoded in {time.monotonic() - t:.1f} s (untimed)")
    return {f"{name}@{first}": p["out"] for (name, first), p in zip(wanted, spec["phases"])}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=300_000, help="events per protocol (default 300,000)")
    ap.add_argument("--size", type=int, default=200, help="bytes of the RFC 5424 message (bench/e2e's 200)")
    ap.add_argument("--batch", type=int, default=1000, help="events per HTTP request (default 1000)")
    ap.add_argument("--relp-window", type=int, default=1000,
                    help="RELP frames in flight, unacknowledged (default 1000, as --batch; omrelp's is 128)")
    ap.add_argument("--conns", type=int, default=1, help="connections per protocol (default 1)")
    ap.add_argument("--protocols", default=",".join(MAIN + ["otlp-gzip", "relp-w128"]),
                    help=f"phases in order, of {', '.join(PROTOCOLS)}")
    ap.add_argument("--repeat", type=int, default=3,
                    help="rounds of every protocol, taking turns; the table shows each one's median (default 3: "
                         "phases are short and this machine is shared)")
    ap.add_argument("--no-warmup", action="store_true", help="skip the unreported syslog TCP phase first")
    ap.add_argument("--durable", action="store_true", help="the producer is durable (fsync before answers/acks)")
    ap.add_argument("--meniscus-bin", default=os.environ.get("MENISCUS_BIN") or os.path.join(
        os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target"), "release", "meniscus"))
    ap.add_argument("--venv-python", default=os.path.join(
        os.environ.get("MENISCUS_CACHE") or os.path.expanduser("~/.cache/meniscus"), "venv-agents", "bin", "python"),
        help="python with protobuf, grpcio-tools, cramjam, opentelemetry-proto (dev/peers/python-clients.sh)")
    ap.add_argument("--timeout", type=float, default=300, help="per-phase limit (seconds)")
    ap.add_argument("--start-timeout", type=float, default=60)
    ap.add_argument("--poll", type=float, default=0.02, help="seconds between /metrics polls")
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results", "agents.txt"))
    ap.add_argument("--keep", action="store_true", help="keep the data directory and log")
    ap.add_argument("--perf", default="", help="phases to profile with `perf record` (comma list; the "
                    "profile, kept in the work directory, is logged; sampling inflates those rows' CPU)")
    args = ap.parse_args()
    args.loadavg = " ".join(open("/proc/loadavg").read().split()[:3])
    names = [n for n in args.protocols.split(",") if n]
    unknown = [n for n in names if n not in PROTOCOLS]
    if unknown or len(set(names)) != len(names):
        ap.error(f"--protocols: unknown or repeated {unknown or names}; known: {', '.join(PROTOCOLS)}")
    if not os.access(args.meniscus_bin, os.X_OK):
        sys.exit(f"agents.py: no executable at {args.meniscus_bin} (cargo build --release -p meniscus-worker "
                 "--bin meniscus with dev/env.sh sourced, or set MENISCUS_BIN)")
    real = os.path.realpath(args.meniscus_bin)
    args.build = "DEBUG build" if f"{os.sep}debug{os.sep}" in real else "release build"
    # Every event of the run gets its own seq (and time): phase k sends k*count .. (k+1)*count-1.
    args.base_us = time.time_ns() // 1000
    plan = ([] if args.no_warmup else [("syslog-tcp", 0)])
    rounds = [name for _ in range(args.repeat) for name in names]
    plan += [(name, (i + 1) * args.count) for i, name in enumerate(rounds)]

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
    work = args.work = tempfile.mkdtemp(prefix="meniscus-agents.")
    args.perf = [n for n in args.perf.split(",") if n]
    if args.perf and not shutil.which("perf"):
        ap.error("--perf: perf is not installed")
    runs, notes = {}, []
    p = logf = None
    try:
        needs_venv = any(n in ("loki", "otlp", "otlp-gzip") for n in names)
        if needs_venv and not os.access(args.venv_python, os.X_OK):
            raise RuntimeError(f"{args.venv_python} is missing: run dev/peers/python-clients.sh")
        encoded = {}
        for key, path in encode_protobuf(args, work, plan).items():
            encoded[key] = path
        ports = {k: free_port() for k in ("tcp", "relp", "http", "ops")}
        p, logf = start_meniscus(args, os.path.join(work, "meniscus"), ports)
        wait_until(lambda: all(listening(v) for v in ports.values()), args.start_timeout,
                   "meniscus to listen on every port", pid=p.pid)
        ops = Ops(ports["ops"])
        wait_until(ops.ready, args.start_timeout, "meniscus /readyz", pid=p.pid, interval=0.2)
        for i, (name, first) in enumerate(plan):
            phase_encoded = {name: encoded.get(f"{name}@{first}")}
            warmup = i == 0 and not args.no_warmup
            r = run_phase(name, first, args, p.pid, ports, ops, phase_encoded,
                          profile=name in args.perf and not warmup)
            c = r["cpu"]
            what = "warm-up (not reported)" if warmup else r["label"]
            log(f"{what}: {r['n']:,} events in {r['wall']:.2f} s ({r['rate']:,.0f}/s; sent in {r['sent_wall']:.2f} s, "
                f"flushed {r['flush_wall']:.2f} s later), server CPU {c['server']:.2f} s (ingest {c['ingest']:.2f}, "
                f"wal {c['wal']:.2f}, flush {c['flush']:.2f}, other {c['other']:.2f}; polls {c['ops']:.3f}; "
                f"{r['cpu_at_stored']:.2f} by the time all were stored) -> {r['n'] / max(c['server'], 1e-9):,.0f} "
                f"events/CPU-s; {r['requests']:,} requests/frames, {r['retries']} retried; client CPU {r['client_cpu']:.2f} s")
            if what != r["label"]:
                continue
            runs.setdefault(name, []).append(r)
        # Every event stored once, for its transport (untimed): rows and distinct seq numbers
        # (MSG's "seq=NNNNNNNNNN"; one query per transport keeps each under the query memory limit).
        expected = {}
        for name, _first in plan:
            t = PROTOCOLS[name][1]
            expected[t] = expected.get(t, 0) + args.count
        counts = {}
        for t in sorted(expected):
            row = sql(ports["http"], "SELECT count(*) AS n, count(DISTINCT substr(msg, 5, 10)) AS d "
                                     f"FROM events WHERE transport = '{t}'")[0]
            counts[t] = (int(row["n"]), int(row["d"]))
        total = int(sql(ports["http"], "SELECT count(*) AS n FROM events")[0]["n"])
        bad = {t: counts[t] for t in expected if counts[t] != (expected[t], expected[t])}
        if bad or total != sum(expected.values()):
            raise RuntimeError(f"stored events per transport (rows, distinct seq) differ from what was sent "
                               f"{expected}: {bad}; {total} rows in all")
        log("checked: every event stored once, per transport:", counts)
        rss = peak_rss_mb(p.pid)
        notes.append("checked after the run: count(*) and count(DISTINCT seq) per transport show every event "
                     "stored once, per transport: " + ", ".join(f"{t} {n:,}" for t, (n, _d) in sorted(counts.items())))
        notes.append(f"meniscus peak RSS over the run {rss:.0f} MB; producer durable: {args.durable}; "
                     f"storage.flushEvents = {args.count} (one Parquet flush per phase, counted in its CPU), "
                     "compaction off")
    except Exception:
        if p is not None and logf is not None:
            logf.flush()
            tail = open(os.path.join(work, "meniscus", "meniscus.log"), "rb").read()[-3000:].decode(errors="replace")
            log(f"failed; meniscus's log ({work}/meniscus/meniscus.log) ends with:\n{tail}")
            args.keep = True
        raise
    finally:
        if p is not None:
            stop(p)
        stop_all()
        if logf:
            logf.close()
        if args.keep:
            log("kept", work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    notes.append("columns: CPU s = server CPU (events / it = ev/CPU-s); ingest = the `ingest` runtime threads "
                 "(reading, parsing, decoding, HTTP), wal = `wal-committer`, flush = `hot-flusher` (Parquet), other = "
                 "the rest (main thread, ended threads); x syslog / x publish = ev/CPU-s over that row's; client CPU = "
                 "this driver (stdlib Python), for scale only")
    notes.append("events: bench/e2e's 200-byte RFC 5424 message (APP-NAME bench, PROCID 1000, MSGID ID47, "
                 "local0.info) or, for the other protocols, its MSG as line/message/body with the same time, host "
                 "(bench-host), app (bench) and severity; bodies rendered before the clock starts "
                 "(protobuf by bench/agents/encode.py with the agents' venv)")
    notes.append(f"HTTP: {args.batch} events per request, keep-alive, one request at a time per connection; "
                 f"RELP: up to {args.relp_window} frames unacknowledged (relp-w128: 128); "
                 + ("a syslog TCP warm-up phase ran first, unreported" if not args.no_warmup else "no warm-up"))
    # Each protocol's row: its median run by events per CPU-second.
    rows = [sorted(rs, key=lambda r: r["n"] / r["cpu"]["server"])[len(rs) // 2] for rs in runs.values()]
    if args.repeat > 1:
        notes.append(f"each row is the median (by events per CPU-s) of {args.repeat} runs, the protocols taking "
                     "turns in the order above; all runs, events per CPU-s: " + "; ".join(
                         f"{name} " + " ".join(f"{r['n'] / r['cpu']['server'] / 1000:,.0f}k" for r in rs)
                         for name, rs in runs.items()))
    text = table(args, rows, notes)
    print(text, end="")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    log("written", args.out)


if __name__ == "__main__":
    main()
