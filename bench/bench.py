"""snapwarden at fleet scale, side by side with the usual alternative.

Run through bench/run.sh (which builds the release binary and the venv).
Scenarios (see bench/README.md):
  fleet       N targets on one provider: slot -> last delete confirmed
  alternative the same work by a cron-style Python script (boto3 / requests)
  idle        500 policies, nothing due: RSS and CPU over a window
  timeliness  1,000 targets due the same second: slot -> create lag
  simthroughput  the simulator alone at 30,000 snapshots, no latency:
              req/s and CPU per request (simthroughput.py)
The alternative runs under a wall-time cap (--alt-cap, default 600 s); one
stopped there is reported as "did not finish: k of N targets done" with
the calls made so far, never extrapolated.
Every figure comes from /proc (the daemon's and the script's own process),
the simulator's request counters and the daemon's ledger.
"""

import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time

from common import Cluster, SimProcess, percentile, proc_cpu_seconds, proc_memory_kib, stop_process

HERE = os.path.dirname(os.path.abspath(__file__))
PY = sys.executable

QC_KEY, QC_SECRET, ZONE = "QYSIMACCESSKEY", "sim-qingcloud-secret", "ap2a"
LS_KEY, LS_SECRET = "AKIASIMLIGHTSAIL0001", "sim-lightsail-secret"
SECRET_ENV = "SNAPWARDEN_BENCH_SECRET"
POLICY = "db"
LATENCY_MS = 20
JOB_DURATION_S = 2
RPS = 200
RETAIN = 2
LS_PAGE_SIZE = 100  # GetInstanceSnapshots page size set in the simulator
QC_LIST_LIMIT = 100  # snapwarden's DescribeSnapshots/DescribeJobs batch
POLL = "2s"  # snapwarden's first poll; the scripts poll every 2 s too


def ts(t):
    """The ledger's timestamp format (RFC 3339, milliseconds, Z)."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def label(t):
    return t.strftime("%Y%m%dT%H%M%SZ")


def parse_ts(s):
    return datetime.datetime.strptime(s.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")


def log(msg):
    print(f"[{datetime.datetime.now().strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---- configuration -------------------------------------------------------

def provider_block(dialect, sim_url, rps, max_in_flight):
    if dialect == "qingcloud":
        kind, place, key, endpoint = "qingcloud", f'zone = "{ZONE}"', QC_KEY, f"{sim_url}/iaas/"
    else:
        kind, place, key, endpoint = ("lightsail", 'region = "us-east-2"', LS_KEY,
                                      f"{sim_url}/lightsail")
    return f"""[providers.p]
kind = "{kind}"
{place}
access_key_id = "{key}"
secret_access_key_env = "{SECRET_ENV}"
endpoint = "{endpoint}"
requests_per_second = {rps}
max_in_flight = {max_in_flight}
"""


def resource_of(dialect):
    return "volume" if dialect == "qingcloud" else "instance"


def policy_block(name, dialect, targets, schedule):
    quoted = ", ".join(f'"{t}"' for t in targets)
    return f"""[[policy]]
name = "{name}"
provider = "p"
resource = "{resource_of(dialect)}"
targets = [{quoted}]
schedule = "{schedule}"
retain = {RETAIN}
poll_interval = "{POLL}"
poll_max_interval = "10s"
timeout = "2h"
"""


def write_config(workdir, dialect, sim_url, policies, rps=RPS, max_in_flight=10_000, state_url=None):
    ledger = (f'state_url = "{state_url}"\nnode_name = "bench"' if state_url
              else f'state_path = "{workdir}/state.db"')
    text = f"""[daemon]
{ledger}
log_format = "json"
timezone = "UTC"

{provider_block(dialect, sim_url, rps, max_in_flight)}
""" + "\n".join(policies)
    path = os.path.join(workdir, "snapwarden.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def cron_at(t):
    return f"{t.second} {t.minute} {t.hour} * * *"


def secret_of(dialect):
    return QC_SECRET if dialect == "qingcloud" else LS_SECRET


def env_for(dialect):
    env = dict(os.environ)
    env[SECRET_ENV] = secret_of(dialect)
    env.setdefault("RUST_LOG", "info")
    return env


# ---- seeding -------------------------------------------------------------

def target_names(dialect, n):
    return [f"vol-{i:08x}" if dialect == "qingcloud" else f"web-{i:05d}" for i in range(n)]


SEED_CHUNK = 2000  # targets per bulk seeding request


def seed_sim(sim, dialect, targets, old_slots):
    """Targets and RETAIN old own snapshots each (named, and on Lightsail
    tagged, as snapwarden names/tags them), through the simulator's bulk
    seeding endpoints (one request per SEED_CHUNK targets).
    Returns {target: [(slot, name, id)]}."""
    c = sim.control
    seeded = {}
    if dialect == "lightsail":
        c.post("/_sim/lightsail/settings", {"page_size": LS_PAGE_SIZE})
    stamps = [(slot, label(slot), slot.isoformat().replace("+00:00", "Z")) for slot in old_slots]
    for start in range(0, len(targets), SEED_CHUNK):
        part = targets[start:start + SEED_CHUNK]
        # Lightsail names carry the policy name's length (`-p{N}-`).
        infix = f"-p{len(POLICY)}" if dialect == "lightsail" else ""
        wanted = [(t, slot, f"{POLICY}-{t}{infix}-{lab}", iso)
                  for t in part for slot, lab, iso in stamps]
        if dialect == "qingcloud":
            v = c.post("/_sim/qingcloud/seed", {
                "volumes": [{"zone": ZONE, "volume_id": t, "volume_name": t} for t in part],
                "snapshots": [{"zone": ZONE, "resource_id": t, "snapshot_name": name,
                               "create_time": iso} for t, _, name, iso in wanted]})
            ids = v["snapshot_ids"]
        else:
            c.post("/_sim/lightsail/seed", {
                "instances": [{"name": t} for t in part],
                "snapshots": [{"name": name, "source": t, "resource": "instance",
                               "created_at": iso,
                               "tags": [{"key": "snapwarden:policy", "value": POLICY},
                                        {"key": "snapwarden:target", "value": t},
                                        {"key": "snapwarden:slot", "value": label(slot)}]}
                              for t, slot, name, iso in wanted]})
            ids = [f"InstanceSnapshot/{name}" for _, _, name, _ in wanted]
        for (t, slot, name, _), sid in zip(wanted, ids):
            seeded.setdefault(t, []).append((slot, name, sid))
    return seeded


class SqliteView:
    """The ledger as the benchmark reads it: SQLite, read-only."""

    def __init__(self, workdir):
        self.db = sqlite3.connect(f"file:{workdir}/state.db?mode=ro", uri=True, timeout=30)

    def one(self, sql, args=()):
        try:
            return self.db.execute(sql, args).fetchone()
        except sqlite3.OperationalError:
            return None

    def close(self):
        self.db.close()


class PgView:
    """The same reads on a PostgreSQL ledger (through psql)."""

    def __init__(self, cluster, db):
        self.cluster, self.name = cluster, db

    def one(self, sql, args=()):
        for a in args:
            sql = sql.replace("?", "'" + str(a).replace("'", "''") + "'", 1)
        row = self.cluster.query(self.name, sql)
        return tuple(None if v == "" else v for v in row.split("|")) if row else None

    def close(self):
        pass


def seed_pg_ledger(cluster, db, seeded):
    """seed_ledger for a PostgreSQL ledger: the same rows, one transaction."""
    runs, snaps = [], []
    rid = 0
    for target, rows in seeded.items():
        for slot, name, sid in rows:
            rid += 1
            t = ts(slot)
            runs.append(f"({rid},'{POLICY}','{target}','p','{t}','{name}',true,'succeeded','{t}','{t}')")
            snaps.append(f"({rid},'p','{POLICY}','{target}','{t}','{name}','{sid}','available',true,'{t}','{t}')")
    sql = ("BEGIN;\n"
           'INSERT INTO runs (id, policy, target, provider, slot, name, "full", state, started_at, finished_at) VALUES\n'
           + ",\n".join(runs) + ";\n"
           'INSERT INTO snapshots (run_id, provider, policy, target, slot, name, snapshot_id, state, "full", created_at, completed_at) VALUES\n'
           + ",\n".join(snaps) + ";\n"
           "SELECT setval(pg_get_serial_sequence('runs', 'id'), (SELECT max(id) FROM runs));\n"
           "COMMIT;\n")
    cluster.query(db, sql)


def create_ledger(binary, workdir, dialect, sim_url):
    """The ledger's schema, made by snapwarden itself (a one-target prune
    against a target the simulator does not know: one list call)."""
    sub = os.path.join(workdir, "schema")
    os.makedirs(sub, exist_ok=True)
    cfg = write_config(workdir, dialect, sim_url,
                       [policy_block("schema-only", dialect, ["vol-00000000" if dialect == "qingcloud" else "schema-probe"], "0 0 0 1 1 *")])
    out = subprocess.run([binary, "prune", "-c", cfg], env=env_for(dialect),
                         capture_output=True, text=True)
    if not os.path.exists(os.path.join(workdir, "state.db")):
        raise RuntimeError(f"prune did not create the ledger: {out.stderr[-2000:]}")


def seed_ledger(workdir, seeded, dialect):
    """The old snapshots as succeeded runs in the ledger, in one transaction
    (what snapwarden would have recorded when it made them)."""
    db = sqlite3.connect(os.path.join(workdir, "state.db"))
    with db:
        for target, rows in seeded.items():
            for slot, name, sid in rows:
                cur = db.execute(
                    "INSERT INTO runs (policy, target, provider, slot, name, full, state,"
                    " started_at, finished_at) VALUES (?,?,?,?,?,1,'succeeded',?,?)",
                    (POLICY, target, "p", ts(slot), name, ts(slot), ts(slot)))
                db.execute(
                    "INSERT INTO snapshots (run_id, provider, policy, target, slot, name,"
                    " snapshot_id, state, full, created_at, completed_at)"
                    " VALUES (?,?,?,?,?,?,?,'available',1,?,?)",
                    (cur.lastrowid, "p", POLICY, target, ts(slot), name, sid, ts(slot), ts(slot)))
    db.close()


def set_latency(sim, dialect):
    sim.control.post("/_sim/faults", {"dialect": dialect, "fault": "latency",
                                      "latency_ms": LATENCY_MS, "probability": 1.0})


# ---- lower bound ---------------------------------------------------------

def lower_bound(dialect, n):
    """The fewest calls that do the same work and the least time they take
    at RPS: calls / RPS + one create job + one delete job."""
    if dialect == "qingcloud":
        # create + list (DescribeSnapshots filters one volume) + delete per
        # target; job status in batches of 100 (DescribeJobs), once for the
        # creates and once for the deletes.
        calls = 3 * n + 2 * math.ceil(n / QC_LIST_LIMIT)
    else:
        # create + delete per target; no batched status or per-instance
        # listing exists, so the fewest is one full listing (every page)
        # once creates are done (confirms them and finds the old ones) and
        # one once deletes are done.
        calls = 2 * n + math.ceil(3 * n / LS_PAGE_SIZE) + math.ceil(2 * n / LS_PAGE_SIZE)
    return calls, calls / RPS + 2 * JOB_DURATION_S


# ---- scenarios -----------------------------------------------------------

class Daemon:
    def __init__(self, binary, cfg, dialect, log_path):
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([binary, "run", "-c", cfg], env=env_for(dialect),
                                     stdout=subprocess.DEVNULL, stderr=self.log)

    def stop(self):
        stop_process(self.proc, self.log, 30)


@contextlib.contextmanager
def scenario(binary, root, prefix):
    """A scratch directory under `root` and a simulator logging into it,
    stopped on the way out."""
    workdir = tempfile.mkdtemp(prefix=prefix, dir=root)
    sim = SimProcess(binary, f"{JOB_DURATION_S}s", os.path.join(workdir, "sim.log"))
    try:
        yield workdir, sim
    finally:
        sim.stop()


def wait_until(t):
    while True:
        now = datetime.datetime.now(datetime.timezone.utc)
        if now >= t:
            return
        time.sleep(min(0.2, (t - now).total_seconds()))


def fleet_snapwarden(binary, dialect, n, root, ledger="sqlite", cluster=None):
    with scenario(binary, root, f"fleet-{dialect}-{n}-{ledger}-") as (workdir, sim):
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        old = [now - datetime.timedelta(days=2), now - datetime.timedelta(days=1)]
        targets = target_names(dialect, n)
        state_url = None
        if ledger == "postgres":
            dbname = "fleet_" + os.path.basename(workdir).replace("-", "_").lower()
            state_url = cluster.create_database(dbname)
            # The schema, made by snapwarden itself (status connects and
            # migrates; it writes nothing).
            probe = "vol-00000000" if dialect == "qingcloud" else "schema-probe"
            cfg = write_config(workdir, dialect, sim.url, [policy_block("schema-only", dialect, [probe], "0 0 0 1 1 *")],
                               state_url=state_url)
            subprocess.run([binary, "status", "-c", cfg], env=env_for(dialect), capture_output=True, check=True)
        else:
            create_ledger(binary, workdir, dialect, sim.url)
        log(f"snapwarden {dialect} N={n} ({ledger}): seeding")
        seeded = seed_sim(sim, dialect, targets, old)
        if ledger == "postgres":
            seed_pg_ledger(cluster, dbname, seeded)
        else:
            seed_ledger(workdir, seeded, dialect)
        set_latency(sim, dialect)
        # Leave the daemon time to start (and parse N targets) before the slot.
        slot = (datetime.datetime.now(datetime.timezone.utc)
                + datetime.timedelta(seconds=6 + n / 2000)).replace(microsecond=0)
        cfg = write_config(workdir, dialect, sim.url,
                           [policy_block(POLICY, dialect, targets, cron_at(slot))], state_url=state_url)
        sim.control.delete("/_sim/requests")
        daemon = Daemon(binary, cfg, dialect, os.path.join(workdir, "daemon.log"))
        try:
            wait_until(slot)
            sim_cpu0 = proc_cpu_seconds(sim.pid)
            daemon_cpu0 = proc_cpu_seconds(daemon.proc.pid)
            # The database server's own work, beside the daemon's (SQLite
            # does its work inside the daemon).
            db_cpu0 = cluster.cpu_seconds() if ledger == "postgres" else None
            log(f"snapwarden {dialect} N={n}: slot {slot:%H:%M:%S}")
            db = PgView(cluster, dbname) if ledger == "postgres" else SqliteView(workdir)
            _, lb_time = lower_bound(dialect, n)
            deadline = time.monotonic() + 10 * lb_time + 300
            done = 0
            while time.monotonic() < deadline:
                time.sleep(0.5)
                if daemon.proc.poll() is not None:
                    raise RuntimeError(f"the daemon exited ({daemon.proc.returncode}); see {workdir}")
                row = db.one(
                    "SELECT count(*) FROM runs WHERE policy = ? AND slot = ?"
                    " AND state IN ('succeeded', 'failed', 'skipped')",
                    (POLICY, ts(slot)))
                if row is None:
                    continue
                done = int(row[0])
                if done >= n:
                    break
            cpu = proc_cpu_seconds(daemon.proc.pid)
            slot_cpu = cpu - daemon_cpu0
            db_cpu = cluster.cpu_seconds() - db_cpu0 if ledger == "postgres" else None
            hwm, rss = proc_memory_kib(daemon.proc.pid)
            sim_cpu = proc_cpu_seconds(sim.pid) - sim_cpu0
            counters = sim.control.counters()
            if ledger == "postgres":
                last, failed, with_error = db.one(
                    "SELECT to_char(max(finished_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
                    " count(*) FILTER (WHERE state != 'succeeded'), count(*) FILTER (WHERE error IS NOT NULL)"
                    " FROM runs WHERE policy = ? AND slot = ?", (POLICY, ts(slot)))
            else:
                last, failed, with_error = db.one(
                    "SELECT max(finished_at), sum(state != 'succeeded'), sum(error IS NOT NULL)"
                    " FROM runs WHERE policy = ? AND slot = ?", (POLICY, ts(slot)))
            deleted = int(db.one("SELECT count(*) FROM snapshots WHERE state = 'deleted'")[0])
            kept = int(db.one("SELECT count(*) FROM snapshots WHERE state = 'available'")[0])
            db.close()
        finally:
            daemon.stop()
        if done < n:
            raise RuntimeError(f"only {done} of {n} runs ended in time; see {workdir}")
        wall = (parse_ts(last) - slot).total_seconds()
        calls = {a: k for (d, a), k in counters.items() if d == dialect}
        total = sum(calls.values())
        return {
            "who": "snapwarden", "ledger": ledger, "dialect": dialect, "n": n, "wall_s": wall,
            "cpu_s": cpu, "slot_cpu_s": slot_cpu, "db_server_cpu_s": db_cpu, "peak_rss_mib": hwm / 1024, "calls": calls, "calls_total": total,
            "calls_per_snapshot": total / n, "runs_not_succeeded": int(failed or 0),
            "runs_with_error_note": int(with_error or 0), "deleted": deleted, "kept": kept,
            "sim_cpu_s": sim_cpu, "sim_req_per_s": total / wall if wall > 0 else None,
            "workdir": workdir,
        }


def fleet_alternative(binary, dialect, n, root, workers, cap):
    with scenario(binary, root, f"alt-{dialect}-{n}-") as (workdir, sim):
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        old = [now - datetime.timedelta(days=2), now - datetime.timedelta(days=1)]
        targets = target_names(dialect, n)
        log(f"alternative {dialect} N={n}: seeding")
        seed_sim(sim, dialect, targets, old)
        set_latency(sim, dialect)
        tfile = os.path.join(workdir, "targets.txt")
        with open(tfile, "w") as f:
            f.write("\n".join(targets) + "\n")
        if dialect == "qingcloud":
            cmd = [PY, os.path.join(HERE, "alt_qingcloud.py"), f"{sim.url}/iaas/", ZONE,
                   QC_KEY, QC_SECRET, tfile]
        else:
            cmd = [PY, os.path.join(HERE, "alt_lightsail.py"), f"{sim.url}/lightsail",
                   LS_KEY, LS_SECRET, tfile]
        cmd += ["--workers", str(workers), "--rps", str(RPS), "--retain", str(RETAIN),
                "--policy", POLICY, "--cap", str(cap)]
        sim.control.delete("/_sim/requests")
        sim_cpu0 = proc_cpu_seconds(sim.pid)
        out_path = os.path.join(workdir, "alt.out")
        log(f"alternative {dialect} N={n}: start ({workers} threads)")
        with open(out_path, "w") as out, open(os.path.join(workdir, "alt.err"), "w") as err:
            start = time.monotonic()
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=HERE)
            # The script stops itself at the cap (within a poll or two); a
            # script that does not is killed a minute later and reported so.
            killed = False
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if cap > 0 and not killed and time.monotonic() - start > cap + 60:
                    proc.kill()
                    killed = True
                time.sleep(0.2)
            wall = time.monotonic() - start
            proc.returncode = status
        sim_cpu = proc_cpu_seconds(sim.pid) - sim_cpu0
        with open(out_path) as f:
            lines = f.read().strip().splitlines()
        result = json.loads(lines[-1]) if lines and not killed else {
            "ok": 0, "failed": 0, "deleted": 0, "finished": False, "interrupted": None,
            "not_started": None}
        counters = sim.control.counters()
        calls = {a: k for (d, a), k in counters.items() if d == dialect}
        total = sum(calls.values())
        finished = bool(result.get("finished", True)) and not killed
        done = result["ok"]
        return {
            "who": "alternative", "dialect": dialect, "n": n, "wall_s": wall,
            "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mib": usage.ru_maxrss / 1024,
            "calls": calls, "calls_total": total,
            # Per snapshot only for a run that finished; a run stopped at the
            # cap gets no such figure (its calls include unfinished targets'),
            # only the raw ratio of calls so far to targets done.
            "calls_per_snapshot": total / n if finished else None,
            "calls_so_far_per_target_done": total / done if done else None,
            "finished": finished, "cap_s": cap, "killed_after_cap": killed,
            "targets_done": done, "targets_interrupted": result.get("interrupted"),
            "targets_not_started": result.get("not_started"),
            "runs_not_succeeded": result["failed"], "deleted": result["deleted"],
            "sim_cpu_s": sim_cpu, "sim_req_per_s": total / wall if wall > 0 else None,
            "workers": workers, "workdir": workdir,
        }


def idle(binary, root, policies, window):
    with scenario(binary, root, "idle-") as (workdir, sim):
        blocks = [policy_block(f"idle-{i:03d}", "qingcloud", [f"vol-idle{i:04d}"], "0 0 0 1 1 *")
                  for i in range(policies)]
        cfg = write_config(workdir, "qingcloud", sim.url, blocks)
        sim.control.delete("/_sim/requests")
        daemon = Daemon(binary, cfg, "qingcloud", os.path.join(workdir, "daemon.log"))
        try:
            time.sleep(5)  # start-up is not idling
            if daemon.proc.poll() is not None:
                raise RuntimeError(f"the daemon exited; see {workdir}")
            cpu0 = proc_cpu_seconds(daemon.proc.pid)
            log(f"idle: {policies} policies, {window} s window")
            time.sleep(window)
            cpu = proc_cpu_seconds(daemon.proc.pid) - cpu0
            hwm, rss = proc_memory_kib(daemon.proc.pid)
        finally:
            daemon.stop()
        return {"policies": policies, "window_s": window, "cpu_s": cpu,
                "cpu_percent": 100.0 * cpu / window, "rss_mib": rss / 1024,
                "peak_rss_mib": hwm / 1024, "api_calls": sum(sim.control.counters().values())}


def timeliness(binary, root, n, rps):
    with scenario(binary, root, "timely-") as (workdir, sim):
        targets = target_names("qingcloud", n)
        create_ledger(binary, workdir, "qingcloud", sim.url)
        for t in targets:
            sim.control.post("/_sim/qingcloud/volumes", {"zone": ZONE, "volume_id": t, "volume_name": t})
        set_latency(sim, "qingcloud")
        slot = (datetime.datetime.now(datetime.timezone.utc)
                + datetime.timedelta(seconds=6)).replace(microsecond=0)
        cfg = write_config(workdir, "qingcloud", sim.url,
                           [policy_block(POLICY, "qingcloud", targets, cron_at(slot))], rps=rps)
        sim.control.delete("/_sim/requests")
        daemon = Daemon(binary, cfg, "qingcloud", os.path.join(workdir, "daemon.log"))
        try:
            wait_until(slot)
            log(f"timeliness: {n} targets due at {slot:%H:%M:%S}, {rps} req/s")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                time.sleep(0.5)
                if sim.control.counters().get(("qingcloud", "CreateSnapshots"), 0) >= n:
                    break
            creates = sim.control.get("/_sim/requests?dialect=qingcloud&action=CreateSnapshots")
        finally:
            daemon.stop()
        times = sorted(parse_ts_any(r["time"]) for r in creates["requests"])
        lags = [(t - slot).total_seconds() for t in times]
        # The k-th create cannot leave before k / rps: what is left is the
        # daemon's own lag.
        beyond = sorted(max(0.0, lag - k / rps) for k, lag in enumerate(lags))
        return {
            "n": n, "rps": rps, "creates": len(lags),
            "lag_p50_s": percentile(lags, 50), "lag_p99_s": percentile(lags, 99),
            "lag_max_s": lags[-1] if lags else None,
            "beyond_rate_limit_p50_s": percentile(beyond, 50),
            "beyond_rate_limit_p99_s": percentile(beyond, 99),
            "beyond_rate_limit_max_s": beyond[-1] if beyond else None,
            "rate_limit_floor_s": (n - 1) / rps,
        }


def parse_ts_any(s):
    """RFC 3339 with any fraction (the journal's chrono serialisation)."""
    s = s.replace("Z", "+00:00")
    head, _, frac_tz = s.partition(".")
    if frac_tz:
        digits = frac_tz[:len(frac_tz) - len(frac_tz.lstrip("0123456789"))]
        tz = frac_tz[len(digits):]
        s = f"{head}.{digits[:6]:0<6}{tz}"
    return datetime.datetime.fromisoformat(s)


# ---- main ----------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--quick", action="store_true", help="N = 100 and 1,000 only; idle 30 s")
    ap.add_argument("--only", default="fleet,alternative,idle,timeliness,simthroughput")
    ap.add_argument("--sizes", default=None, help="comma-separated N (overrides --quick)")
    ap.add_argument("--dialects", default="qingcloud,lightsail")
    ap.add_argument("--alt-max", type=int, default=10000,
                    help="largest N the Python alternative runs at")
    ap.add_argument("--alt-cap", type=float, default=600,
                    help="wall-time cap of one alternative run, seconds (0 = none); a run"
                         " stopped there is reported as not finished, k of N targets done")
    ap.add_argument("--sim-clients", type=int, default=8,
                    help="client processes of the simthroughput scenario")
    ap.add_argument("--sim-seconds", type=float, default=20,
                    help="length of one simthroughput measurement")
    ap.add_argument("--workers", type=int, default=100)
    ap.add_argument("--ledgers", default="sqlite",
                    help="fleet on these ledgers, side by side: sqlite, postgres (a throwaway cluster)")
    ap.add_argument("--repeat", type=int, default=1, help="fleet runs per ledger, alternating")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    args = ap.parse_args()
    sizes = ([int(s) for s in args.sizes.split(",")] if args.sizes
             else [100, 1000] if args.quick else [100, 1000, 10000])
    only = set(args.only.split(","))
    # A throwaway PostgreSQL cluster for the shared-ledger runs.
    cluster = Cluster() if "postgres" in args.ledgers.split(",") else None
    os.makedirs(args.out, exist_ok=True)
    root = tempfile.mkdtemp(prefix="snapwarden-bench-")
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                    "load_at_start": os.getloadavg()},
        "settings": {"latency_ms": LATENCY_MS, "job_duration_s": JOB_DURATION_S, "rps": RPS,
                     "retain": RETAIN, "lightsail_page_size": LS_PAGE_SIZE, "poll": POLL,
                     "alternative_workers": args.workers},
        "fleet": [], "idle": None, "timeliness": None, "simthroughput": [],
    }

    def save():
        path = os.path.join(args.out, "latest.json")
        with open(path, "w") as f:
            json.dump(results, f, indent=2, default=str)

    for dialect in args.dialects.split(","):
        for n in sizes:
            calls_lb, time_lb = lower_bound(dialect, n)
            if "fleet" in only:
                # Each ledger in turn, `--repeat` times, side by side.
                for _ in range(args.repeat):
                    for ledger in args.ledgers.split(","):
                        r = fleet_snapwarden(args.bin, dialect, n, root, ledger, cluster)
                        r.update(lb_calls=calls_lb, lb_time_s=time_lb,
                                 calls_ratio=r["calls_total"] / calls_lb, time_ratio=r["wall_s"] / time_lb)
                        results["fleet"].append(r)
                        log(json.dumps({k: v for k, v in r.items() if k != "workdir"}))
                        save()
            if "alternative" in only and n <= args.alt_max:
                r = fleet_alternative(args.bin, dialect, n, root, args.workers, args.alt_cap)
                # Ratios to the lower bound only for a run that did the work.
                r.update(lb_calls=calls_lb, lb_time_s=time_lb,
                         calls_ratio=r["calls_total"] / calls_lb if r["finished"] else None,
                         time_ratio=r["wall_s"] / time_lb if r["finished"] else None)
                results["fleet"].append(r)
                log(json.dumps({k: v for k, v in r.items() if k != "workdir"}))
                save()
    if "simthroughput" in only:
        import simthroughput
        for dialect in args.dialects.split(","):
            log(f"simthroughput {dialect}: 30,000 snapshots, {args.sim_clients} clients,"
                f" {args.sim_seconds:.0f} s")
            r = simthroughput.measure(args.bin, dialect, args.sim_clients, args.sim_seconds,
                                      log_path=os.path.join(root, f"simtp-{dialect}.log"))
            results["simthroughput"].append(r)
            log(json.dumps(r))
            save()
    if "idle" in only:
        results["idle"] = idle(args.bin, root, 500, 30 if args.quick else 60)
        log(json.dumps(results["idle"]))
        save()
    if "timeliness" in only:
        results["timeliness"] = timeliness(args.bin, root, 1000, 1000)
        log(json.dumps(results["timeliness"]))
        save()
    results["machine"]["load_at_end"] = os.getloadavg()
    save()
    if cluster is not None:
        cluster.stop()
    print(table(results))


def who(r):
    """snapwarden, naming its ledger where it is not the default."""
    ledger = r.get("ledger", "sqlite")
    return r["who"] if ledger == "sqlite" else f"{r['who']} ({ledger})"


def ledger_comparison(fleet):
    """The fleet runs of each ledger side by side, when more than one ran:
    every run's figures, and the database server's CPU beside the
    daemon's (SQLite works inside the daemon; PostgreSQL in its server)."""
    runs = {}
    for r in fleet:
        if r["who"] == "snapwarden":
            runs.setdefault((r["dialect"], r["n"], r.get("ledger", "sqlite")), []).append(r)
    if len({ledger for (_, _, ledger) in runs}) < 2:
        return []

    def each(rs, key):
        return ", ".join("—" if r.get(key) is None else f"{r[key]:.2f}" for r in rs)

    lines = ["", "| dialect | N | ledger | runs | wall s | daemon CPU s | daemon CPU from the slot s "
                 "| database server CPU from the slot s |",
             "|---|---|---|---|---|---|---|---|"]
    for (dialect, n, ledger), rs in runs.items():
        lines.append(f"| {dialect} | {n} | {ledger} | {len(rs)} | {each(rs, 'wall_s')} | {each(rs, 'cpu_s')} "
                     f"| {each(rs, 'slot_cpu_s')} | {each(rs, 'db_server_cpu_s')} |")
    return lines


def table(results):
    lines = [f"date {results['date']}, {results['machine']['cpus']} CPUs, "
             f"load {results['machine']['load_at_start']} -> {results['machine'].get('load_at_end')}",
             "",
             "| dialect | N | who | wall s | lower bound s | wall ratio | API calls | calls/snapshot "
             "| lower bound calls | calls ratio | CPU s | peak RSS MiB | sim CPU s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    def num(v, fmt):
        return "—" if v is None else format(v, fmt)

    for r in results["fleet"]:
        if r.get("finished", True):
            wall = f"{r['wall_s']:.1f}"
        else:
            wall = (f"did not finish: stopped at {r['wall_s']:.0f} s cap,"
                    f" {r['targets_done']} of {r['n']} targets done")
        lines.append(
            f"| {r['dialect']} | {r['n']} | {who(r)} | {wall} | {r['lb_time_s']:.1f} "
            f"| {num(r['time_ratio'], '.2f')} | {r['calls_total']}"
            f"{'' if r.get('finished', True) else ' so far'} "
            f"| {num(r['calls_per_snapshot'], '.2f')} "
            f"| {r['lb_calls']} | {num(r['calls_ratio'], '.2f')} | {r['cpu_s']:.2f} "
            f"| {r['peak_rss_mib']:.1f} | {r['sim_cpu_s']:.2f} |")
    lines += ledger_comparison(results["fleet"])
    for t in results.get("simthroughput") or []:
        lines += ["", f"simulator {t['dialect']}: {t['snapshots_seeded']} snapshots, "
                      f"{t['clients']} clients for {t['seconds']:.0f} s: {t['requests']} requests "
                      f"({t['errors']} answered with an error), {t['req_per_s']:.0f} req/s "
                      f"= {t['req_per_s'] / RPS:.1f}x the {RPS}/s rate limit; sim CPU "
                      f"{num(t['sim_cpu_us_per_request'], '.0f')} us/request = "
                      f"{num(t['sim_req_per_s_per_core'], '.0f')} req/s per core"]
    if results["idle"]:
        i = results["idle"]
        lines += ["", f"idle: {i['policies']} policies over {i['window_s']} s: RSS {i['rss_mib']:.1f} MiB "
                      f"(peak {i['peak_rss_mib']:.1f}), CPU {i['cpu_s']:.3f} s = {i['cpu_percent']:.4f} %, "
                      f"API calls {i['api_calls']}"]
    if results["timeliness"]:
        t = results["timeliness"]
        lines += ["", f"timeliness: {t['n']} targets, {t['rps']} req/s: slot->create lag "
                      f"p50 {t['lag_p50_s']:.3f} s, p99 {t['lag_p99_s']:.3f} s, max {t['lag_max_s']:.3f} s; "
                      f"beyond the rate-limit floor p50 {t['beyond_rate_limit_p50_s']:.3f} s, "
                      f"p99 {t['beyond_rate_limit_p99_s']:.3f} s, max {t['beyond_rate_limit_max_s']:.3f} s"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
