#!/usr/bin/env python3
"""Failover times of two snapwarden nodes on a shared PostgreSQL ledger.

    python3 bench/failover.py --bin target/release/snapwarden [--rounds 10]

Starts a throwaway PostgreSQL cluster (initdb in a temp dir on a loopback
port; through `runuser -u postgres` when run as root), the simulator, and
two nodes with the default lease (15 s, renewed every 5 s). Then, `rounds`
times each:

* kill: SIGKILL the leader; the time until the other node logs that it
  took over. The killed node is started again (as the standby).
* stop: SIGTERM the leader (a clean stop releases the lease); the time
  until the other takes over. The stopped node is started again.

Prints the median and the maximum of each, and checks that no snapshot
name was created twice. A benchmark, not a test: its figures go into the
README.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from common import Cluster, SimProcess

SECRET = "sim-qingcloud-secret"


class Node:
    """One `snapwarden run`, its log lines collected."""

    def __init__(self, name, binary, config):
        self.name = name
        env = dict(os.environ, SNAPWARDEN_QY_SECRET=SECRET, RUST_LOG="info")
        self.proc = subprocess.Popen([binary, "run", "-c", config], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            with self.cond:
                self.lines.append((time.monotonic(), line))
                self.cond.notify_all()

    def wait_line(self, needle, after, timeout):
        """The monotonic time of the first line after `after` with `needle`."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for at, line in self.lines:
                    if at >= after and needle in line:
                        return at
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"no {needle!r} within {timeout} s")
                self.cond.wait(left)

    def leads(self):
        mine = (f"node {self.name} leads (epoch", f"node {self.name} took over as the leader")
        return any(m in l for _, l in self.lines for m in mine)


def config(workdir, sim_url, url, node):
    path = os.path.join(workdir, f"{node}.toml")
    with open(path, "w") as f:
        f.write(f"""[daemon]
state_url = "{url}"
node_name = "{node}"
log_format = "text"

[providers.qc]
kind = "qingcloud"
zone = "ap2a"
access_key_id = "QYSIMACCESSKEY"
secret_access_key_env = "SNAPWARDEN_QY_SECRET"
endpoint = "{sim_url}/iaas/"
requests_per_second = 50

[[policy]]
name = "db"
provider = "qc"
resource = "volume"
targets = ["vol-fo"]
schedule = "*/5 * * * * *"
retain = 1000
poll_interval = "1s"
""")
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default="target/release/snapwarden")
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    cluster = Cluster()
    url = cluster.create_database("ledger")
    sim = SimProcess(binary, job_duration="1s")
    workdir = tempfile.mkdtemp(prefix="snapwarden-failover-cfg-")
    nodes = {}
    try:
        sim.control.post("/_sim/qingcloud/volumes", {"zone": "ap2a", "volume_id": "vol-fo"})
        cfg = {n: config(workdir, sim.url, url, n) for n in ("a", "b")}
        nodes["a"] = Node("a", binary, cfg["a"])
        nodes["a"].wait_line("node a leads (epoch", 0, 30)
        nodes["b"] = Node("b", binary, cfg["b"])
        nodes["b"].wait_line("standby:", 0, 30)
        results = {"kill": [], "stop": []}
        for kind in ("kill", "stop"):
            for _ in range(args.rounds):
                leader = next(n for n in ("a", "b") if nodes[n].leads())
                other = "b" if leader == "a" else "a"
                time.sleep(6)  # the leader fires a slot (every 5 s); a run may be in flight
                t0 = time.monotonic()
                if kind == "kill":
                    nodes[leader].proc.kill()
                else:
                    nodes[leader].proc.terminate()
                nodes[leader].proc.wait()
                try:
                    took = nodes[other].wait_line("took over as the leader", t0, 60) - t0
                except RuntimeError:
                    for n in ("a", "b"):
                        print(f"--- node {n}:", "".join(l for _, l in nodes[n].lines[-30:]), file=sys.stderr)
                    raise
                results[kind].append(took)
                print(f"{kind}: {leader} -> {other} in {took:.2f} s", flush=True)
                nodes[leader] = Node(leader, binary, cfg[leader])
                nodes[leader].wait_line("standby:", time.monotonic(), 30)
        names = [r["params"].get("snapshot_name") for r in
                 sim.control.get("/_sim/requests?dialect=qingcloud&action=CreateSnapshots")["requests"]
                 if r.get("ret_code") == 0]
        dup = len(names) - len(set(names))
        for kind, xs in results.items():
            print(f"{kind}: median {statistics.median(xs):.2f} s, max {max(xs):.2f} s over {len(xs)}")
        print(f"creates: {len(names)}, created twice: {dup}")
        print("runs by state:", cluster.query("ledger", "SELECT state, count(*) FROM runs GROUP BY state ORDER BY state").replace(chr(10), ", "))
        return 1 if dup else 0
    finally:
        for n in nodes.values():
            if n.proc.poll() is None:
                n.proc.kill()
                n.proc.wait()
        sim.stop()
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
