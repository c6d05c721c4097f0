"""The simulator's own throughput at fleet scale (issue: "the simulator must
not be the bottleneck: show its own throughput").

One simulator per dialect, seeded with 10,000 targets and 3 snapshots each
(30,000 snapshots), no latency fault; C client processes, each with one
kept-alive connection, fire the calls a fleet run makes as fast as the
simulator answers for D seconds:
  QingCloud  DescribeSnapshots of one volume (limit 100), DescribeJobs of up
             to 100 job ids, CreateSnapshots of one volume (its own slice)
  Lightsail  GetInstanceSnapshots (walking the pages, 100 a page),
             GetOperation, CreateInstanceSnapshot (its own slice)
Reported: requests, req/s reached, the simulator's CPU seconds and CPU per
request (from /proc), and the req/s one core of simulator would serve at
that cost. The clients share the machine's cores with the simulator, so
req/s reached is a floor; CPU per request is the simulator's own cost.
"""

import base64
import datetime
import hashlib
import hmac
import http.client
import json
import multiprocessing
import random
import time
import urllib.parse

from common import SimProcess, proc_cpu_seconds

QC_KEY, QC_SECRET, ZONE = "QYSIMACCESSKEY", "sim-qingcloud-secret", "ap2a"
LS_KEY, LS_SECRET = "AKIASIMLIGHTSAIL0001", "sim-lightsail-secret"


def quote(s):
    return urllib.parse.quote(str(s), safe="-_.~")


def qingcloud_path(params):
    params = dict(params)
    params.update(zone=ZONE, access_key_id=QC_KEY, version=1, signature_method="HmacSHA256",
                  signature_version=1,
                  time_stamp=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    query = "&".join(f"{quote(k)}={quote(params[k])}" for k in sorted(params))
    digest = hmac.new(QC_SECRET.encode(), f"GET\n/iaas/\n{query}".encode(), hashlib.sha256).digest()
    return f"/iaas/?{query}&signature={quote(base64.b64encode(digest).decode())}"


class Conn:
    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        self.host, self.port = u.hostname, u.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def send(self, method, path, body=None, headers=None):
        self.conn.request(method, path, body=body, headers=headers or {})
        resp = self.conn.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw else None


def qingcloud_worker(url, volumes, seconds, seed, out):
    rng = random.Random(seed)
    c = Conn(url)
    counts, errors, jobs = {}, 0, []
    own = list(volumes)
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        roll = rng.random()
        if roll < 0.4:
            action, params = "DescribeSnapshots", {"resource_id": rng.choice(volumes), "limit": 100,
                                                   "verbose": 0}
        elif roll < 0.7 and jobs:
            action = "DescribeJobs"
            params = {f"jobs.{k + 1}": j for k, j in enumerate(jobs[-100:])}
            params["limit"] = 100
        else:
            action = "CreateSnapshots"
            params = {"resources.1": own[i % len(own)], "snapshot_name": f"tp-{i}", "is_full": 1}
            i += 1
        params["action"] = action
        status, body = c.send("GET", qingcloud_path(params))
        counts[action] = counts.get(action, 0) + 1
        if status != 200 or not body or body.get("ret_code") != 0:
            errors += 1
        elif action == "CreateSnapshots":
            j = body["job_id"]
            jobs.append(j[0] if isinstance(j, list) else j)
    out.put({"counts": counts, "errors": errors})


def lightsail_worker(url, instances, seconds, seed, out):
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    creds = Credentials(LS_KEY, LS_SECRET)
    rng = random.Random(seed)
    c = Conn(url)
    endpoint = f"{url}/lightsail"
    counts, errors, ops = {}, 0, []
    token, i = None, 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        roll = rng.random()
        if roll < 0.5:
            action, body = "GetInstanceSnapshots", ({"pageToken": token} if token else {})
        elif roll < 0.75 and ops:
            action, body = "GetOperation", {"operationId": rng.choice(ops[-500:])}
        else:
            action = "CreateInstanceSnapshot"
            body = {"instanceName": instances[i % len(instances)],
                    "instanceSnapshotName": f"tp-{seed}-{i}"}
            i += 1
        data = json.dumps(body).encode()
        req = AWSRequest(method="POST", url=endpoint, data=data, headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"Lightsail_20161128.{action}"})
        SigV4Auth(creds, "lightsail", "us-east-2").add_auth(req)
        status, answer = c.send("POST", "/lightsail", body=data, headers=dict(req.headers.items()))
        counts[action] = counts.get(action, 0) + 1
        if status != 200 or answer is None:
            errors += 1
        elif action == "GetInstanceSnapshots":
            token = answer.get("nextPageToken")
        elif action == "CreateInstanceSnapshot":
            ops.extend(o["id"] for o in answer["operations"])
    out.put({"counts": counts, "errors": errors})


def seed(sim, dialect, targets, per_target):
    """`targets` targets with `per_target` old snapshots each, in bulk."""
    c = sim.control
    day = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=10)
    names = [f"vol-{i:08x}" if dialect == "qingcloud" else f"web-{i:05d}" for i in range(targets)]
    chunk = 2000
    if dialect == "lightsail":
        c.post("/_sim/lightsail/settings", {"page_size": 100})
    for start in range(0, targets, chunk):
        part = names[start:start + chunk]
        if dialect == "qingcloud":
            c.post("/_sim/qingcloud/seed", {
                "volumes": [{"zone": ZONE, "volume_id": t, "volume_name": t} for t in part],
                "snapshots": [{"zone": ZONE, "resource_id": t, "snapshot_name": f"old-{t}-{k}",
                               "create_time": (day + datetime.timedelta(hours=k)).isoformat()}
                              for t in part for k in range(per_target)]})
        else:
            c.post("/_sim/lightsail/seed", {
                "instances": [{"name": t} for t in part],
                "snapshots": [{"name": f"old-{t}-{k}", "source": t, "resource": "instance",
                               "created_at": (day + datetime.timedelta(hours=k)).isoformat()}
                              for t in part for k in range(per_target)]})
    return names


def measure(binary, dialect, clients, seconds, targets=10_000, per_target=3, log_path=None):
    sim = SimProcess(binary, "2s", log_path)
    try:
        t0 = time.monotonic()
        names = seed(sim, dialect, targets, per_target)
        seed_s = time.monotonic() - t0
        sim.control.delete("/_sim/requests")
        worker = qingcloud_worker if dialect == "qingcloud" else lightsail_worker
        out = multiprocessing.Queue()
        procs = [multiprocessing.Process(target=worker, args=(
            sim.url, names[k::clients], seconds, k, out)) for k in range(clients)]
        cpu0, start = proc_cpu_seconds(sim.pid), time.monotonic()
        for p in procs:
            p.start()
        results = [out.get(timeout=seconds + 120) for _ in procs]
        wall = time.monotonic() - start
        cpu = proc_cpu_seconds(sim.pid) - cpu0
        for p in procs:
            p.join()
        counts = {}
        for r in results:
            for a, k in r["counts"].items():
                counts[a] = counts.get(a, 0) + k
        total = sum(counts.values())
        served = sum(sim.control.counters().values())
        return {
            "dialect": dialect, "snapshots_seeded": targets * per_target, "targets": targets,
            "seed_s": seed_s, "clients": clients, "seconds": wall, "requests": total,
            "requests_seen_by_sim": served, "errors": sum(r["errors"] for r in results),
            "by_action": counts, "req_per_s": total / wall, "sim_cpu_s": cpu,
            "sim_cpu_us_per_request": 1e6 * cpu / total if total else None,
            "sim_req_per_s_per_core": total / cpu if cpu > 0 else None,
        }
    finally:
        sim.stop()
