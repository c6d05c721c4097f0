"""Shared pieces of the benchmark: starting the simulator, talking to its
control API over one kept-alive connection, reading a process's peak memory
and CPU time from /proc, and a thread-safe request-rate limiter for the
Python alternatives."""

import argparse
import collections
import datetime
import glob
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid):
    """utime + stime of a live process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        # The command name may contain spaces: split after its closing paren.
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_memory_kib(pid):
    """(VmHWM, VmRSS) of a live process, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(rest.split()[0])
    return out.get("VmHWM", 0), out.get("VmRSS", 0)


class Control:
    """The simulator's control API, one connection kept alive."""

    def __init__(self, url):
        parsed = urllib.parse.urlparse(url)
        self.host, self.port = parsed.hostname, parsed.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"} if data else {}
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                raw = resp.read()
                break
            except (http.client.HTTPException, OSError):
                if attempt:
                    raise
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        if resp.status >= 300:
            raise RuntimeError(f"{method} {path} -> {resp.status}: {raw[:300]!r}")
        return json.loads(raw) if raw else None

    def post(self, path, body):
        return self.call("POST", path, body)

    def get(self, path):
        return self.call("GET", path)

    def delete(self, path):
        return self.call("DELETE", path)

    def counters(self):
        """{(dialect, action): requests} since the journal was cleared."""
        v = self.get("/_sim/counters")
        return {(c["dialect"], c["action"]): c["requests"] for c in v["counters"]}


class SimProcess:
    """`snapwarden sim` on a port of its choosing."""

    def __init__(self, binary, job_duration="2s", log_path=None):
        self.log = open(log_path or os.devnull, "w")
        self.proc = subprocess.Popen(
            [binary, "sim", "--listen", "127.0.0.1:0", "--job-duration", job_duration],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        prefix = "snapwarden sim listening on "
        self.url = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith(prefix):
                self.url = line[len(prefix):].strip()
                break
        if not self.url:
            self.stop()
            raise RuntimeError("the simulator did not print its listening line")
        # Keep draining stdout so the simulator never blocks on a full pipe.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        self.control = Control(self.url)

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        stop_process(self.proc, self.log, 10)


def stop_process(proc, log, timeout):
    """SIGTERM, SIGKILL if it is still running after `timeout` seconds;
    then closes its log."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log.close()


class CallCounter:
    """API calls by action, counted from many threads."""

    def __init__(self):
        self.counts = collections.Counter()
        self.lock = threading.Lock()

    def add(self, action):
        with self.lock:
            self.counts[action] += 1

    def as_dict(self):
        with self.lock:
            return dict(self.counts)


class RateLimiter:
    """At most `rate` acquisitions per second across threads (a token bucket
    of one token: evenly spaced calls), as an operator's script would do to
    stay under the cloud's published request limit."""

    def __init__(self, rate):
        self.interval = 1.0 / rate
        self.lock = threading.Lock()
        self.next = time.monotonic()

    def acquire(self):
        with self.lock:
            now = time.monotonic()
            at = max(now, self.next)
            self.next = at + self.interval
        delay = at - now
        if delay > 0:
            time.sleep(delay)


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


class Stopped(Exception):
    """The wall-time cap was reached: the work in hand is left unfinished."""


class Cap:
    """A wall-time cap for a script (0 = none). Once it is reached, `check()`
    raises Stopped in every worker and the pool's queued work is cancelled,
    so the script ends within about one poll interval and reports how far it
    got instead of being extrapolated."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.event = threading.Event()
        self.start = time.monotonic()
        self.pool = None

    def arm(self, pool):
        self.pool = pool
        if self.seconds > 0:
            timer = threading.Timer(self.seconds, self.fire)
            timer.daemon = True
            timer.start()

    def fire(self):
        self.event.set()
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)

    def check(self):
        if self.event.is_set():
            raise Stopped()

    def sleep(self, seconds):
        """Sleeps, or raises Stopped as soon as the cap is reached."""
        if self.event.wait(seconds):
            raise Stopped()


def run_targets(pool_size, targets, work, cap):
    """Runs `work(target)` for every target on a thread pool under `cap`;
    returns the summary every alternative prints as one JSON line (with its
    "calls" by action added): {"ok": n, "failed": n, "deleted": n,
    "finished": bool, "interrupted": n, "not_started": n, ...}; with a cap,
    work still in hand at the cap is stopped and counted, never
    extrapolated."""
    import concurrent.futures
    ok = failed = deleted = interrupted = not_started = 0
    pool = concurrent.futures.ThreadPoolExecutor(pool_size)
    cap.arm(pool)
    futures = [pool.submit(work, t) for t in targets]
    # Not as_completed: futures cancelled by the cap's shutdown never notify
    # its waiter, while result() of a cancelled future returns at once.
    for fut in futures:
        try:
            deleted += fut.result()
            ok += 1
        except concurrent.futures.CancelledError:
            not_started += 1
        except Stopped:
            interrupted += 1
        except Exception:  # an operator's script logs and goes on
            failed += 1
    pool.shutdown(wait=True)
    return {"ok": ok, "failed": failed, "deleted": deleted, "targets": len(targets),
            "finished": not cap.event.is_set(), "interrupted": interrupted,
            "not_started": not_started, "cap_s": cap.seconds,
            "elapsed_s": time.monotonic() - cap.start}


def script_arguments(*positional):
    """The command line both alternative scripts take: their own positional
    arguments, then `targets_file` and the shared options. Adds `stop` (the
    wall-time Cap), `targets` (the file's lines) and `label` (the run's UTC
    time stamp, part of every snapshot name). The options: [--workers 100]
    [--rps 200] [--poll 2] [--retain 2] [--policy db] [--cap SECONDS]."""
    ap = argparse.ArgumentParser()
    for name in positional:
        ap.add_argument(name)
    ap.add_argument("targets_file")
    ap.add_argument("--workers", type=int, default=100)
    ap.add_argument("--rps", type=float, default=200)
    ap.add_argument("--poll", type=float, default=2.0)
    ap.add_argument("--retain", type=int, default=2)
    ap.add_argument("--policy", default="db")
    ap.add_argument("--cap", type=float, default=0,
                    help="wall-time cap in seconds (0 = none): stop there and say how far it got")
    args = ap.parse_args()
    args.stop = Cap(args.cap)
    with open(args.targets_file) as f:
        args.targets = [line.strip() for line in f if line.strip()]
    args.label = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return args


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A throwaway PostgreSQL cluster, stopped and removed by stop()."""

    def __init__(self):
        bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
        if not os.path.exists(os.path.join(bindir, "initdb")):
            found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
            if not found:
                sys.exit("PostgreSQL's initdb not found: install Debian's postgresql package")
            bindir = os.path.dirname(found[-1])
        self.bindir = bindir
        self.dir = tempfile.mkdtemp(prefix="snapwarden-failover-")
        self.as_user = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        data = os.path.join(self.dir, "data")
        self.run("initdb", "-D", data, "-A", "trust", "-U", "postgres", "-N", "-E", "UTF8", "--locale=C")
        opts = f"-k {self.dir} -p {self.port} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.run("pg_ctl", "-D", data, "-l", os.path.join(self.dir, "log"), "-o", opts, "-w", "start")
        self.data = data

    def create_database(self, name):
        """A new empty database; its URL."""
        self.run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-c", f"CREATE DATABASE {name}")
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}?sslmode=disable"

    def run(self, tool, *args):
        subprocess.run(self.as_user + [os.path.join(self.bindir, tool), *args], check=True,
                       cwd=self.dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def query(self, db, sql):
        """psql's unaligned answer to `sql` on database `db`; SQL may also
        come in on stdin when it is long."""
        out = subprocess.run(self.as_user + [os.path.join(self.bindir, "psql"), "-h", "127.0.0.1", "-p", str(self.port),
                              "-U", "postgres", "-d", db, "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"],
                             input=sql, cwd=self.dir, capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"psql failed: {out.stderr[-1000:]}")
        return out.stdout.strip()

    def cpu_seconds(self):
        """CPU time of the whole server so far: the postmaster, its live
        processes (backends, writers) and those that exited (the
        postmaster waited for them: its cutime + cstime)."""
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            postmaster = int(f.readline())
        with open(f"/proc/{postmaster}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total = sum(int(x) for x in fields[11:15]) / CLK_TCK
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            if int(fields[1]) == postmaster:
                total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        return total

    def stop(self):
        subprocess.run(self.as_user + [os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", "immediate", "stop"],
                       cwd=self.dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)
