"""What the benchmark drivers (bench/e2e/e2e.py, bench/query/query.py) share: reading a
process's CPU time and memory from /proc, finding and waiting for ports, bounded waits, and
stopping every process a benchmark started, whatever way it ends.

Every wait is bounded and every started process is stopped: a benchmark that hangs or leaves
servers behind on a shared machine spoils the next run's numbers.
"""
import os
import signal
import socket
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
STARTED = []  # Popen objects or bare pids the running benchmark owns


def pid_of(process):
    return process.pid if hasattr(process, "pid") else process


def alive(pid):
    """True while the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def cpu_seconds(pid):
    """utime + stime of the process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(") ", 1)[1].split()
    # fields[0] is field 3 (state); utime is field 14, stime field 15
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kb(pid, key):
    """A kB figure from /proc/PID/status (VmHWM, VmRSS), 0 when absent."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def peak_rss_mb(pid):
    return status_kb(pid, "VmHWM") / 1024


def parse_prometheus(text):
    """Prometheus text exposition -> {"name{labels}": value}."""
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        try:
            out[name] = float(value)
        except ValueError:
            pass
    return out


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def listening(port):
    """True once some process listens on the TCP port (read from /proc, no connection made)."""
    hexport = ":%04X" % port
    for fn in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(fn) as f:
                for line in f.readlines()[1:]:
                    parts = line.split()
                    if parts[1].endswith(hexport) and parts[3] == "0A":
                        return True
        except FileNotFoundError:
            pass
    return False


def wait_until(pred, timeout, what, pid=None, interval=0.05):
    """Polls pred until it holds; fails after timeout, or at once if process pid exits."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        if pid is not None and not alive(pid):
            raise RuntimeError(f"process {pid} exited while waiting for {what}")
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def _terminate(process):
    try:
        os.kill(pid_of(process), signal.SIGTERM)
    except ProcessLookupError:
        pass


def _finish(process, deadline):
    """Waits until deadline for the process to go, then SIGKILLs it, and reaps it."""
    pid = pid_of(process)
    while alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    if alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if hasattr(process, "wait"):
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def stop(process, timeout=15):
    """SIGTERM, then SIGKILL if it is still there after timeout seconds; forgets it."""
    _terminate(process)
    _finish(process, time.time() + timeout)
    if process in STARTED:
        STARTED.remove(process)


def stop_all(*_):
    """Stops every started process, newest first, within about ten seconds in all."""
    for process in reversed(STARTED):
        _terminate(process)
    deadline = time.time() + 10
    for process in reversed(STARTED):
        _finish(process, deadline)
    STARTED.clear()
