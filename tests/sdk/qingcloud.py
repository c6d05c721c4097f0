"""QingCloud conformance: qingcloud-sdk against `snapwarden sim`'s /iaas/.

Usage: qingcloud.py --base-url http://127.0.0.1:PORT (or SNAPWARDEN_SIM_URL).
Exit 0 only when every step passed.

The SDK raises no exception for an API error: it returns the answer, whose
`ret_code` is the error (1200 for a failed signature); it retries 5000 and
5100 ("server busy") itself."""

import urllib.parse

from qingcloud.iaas.connection import APIConnection

from simctl import Control, Steps, arguments, check, poll, run_id

ACCESS_KEY = "QYSIMACCESSKEY"
SECRET = "sim-qingcloud-secret"
ZONE = "pek3a"
# QingCloud ids are a prefix and 8 characters; a fresh one per run.
VOLUME = f"vol-{run_id()}"


def connect(base, secret=SECRET):
    url = urllib.parse.urlsplit(base)
    return APIConnection(
        ACCESS_KEY,
        secret,
        ZONE,
        host=url.hostname,
        port=url.port or (443 if url.scheme == "https" else 80),
        protocol=url.scheme,
        retry_time=2,
        http_socket_timeout=30,
    )


def ok(resp, what):
    check(isinstance(resp, dict), f"{what}: no answer ({resp!r})")
    check(resp.get("ret_code") == 0, f"{what}: {resp}")
    return resp


def wait_job(conn, job_id):
    def done():
        jobs = ok(conn.describe_jobs(jobs=[job_id]), "DescribeJobs")["job_set"]
        check(len(jobs) == 1, f"DescribeJobs {job_id}: {jobs}")
        return jobs[0] if jobs[0]["status"] not in ("pending", "working") else None

    job = poll(f"job {job_id}", done)
    check(job["status"] == "successful", f"job {job_id} ended {job['status']}")
    return job


def main():
    args = arguments(__doc__)
    sim = Control(args.base_url)
    steps = Steps("qingcloud")
    conn = connect(args.base_url)
    state = {}

    def seed():
        # Long enough that a restored volume is still seen pending while its
        # job runs, even on a loaded machine.
        sim.settings(job_duration_ms=1000)
        sim.post("/_sim/qingcloud/volumes", {"zone": ZONE, "volume_id": VOLUME, "volume_name": "sdk"})

    steps.require("seed a volume through the control API", seed)

    def authenticate_and_list():
        vols = ok(conn.describe_volumes(volumes=[VOLUME]), "DescribeVolumes")["volume_set"]
        check([v["volume_id"] for v in vols] == [VOLUME], f"DescribeVolumes: {vols}")
        check(vols[0]["status"] == "in-use" or vols[0]["status"] == "available", f"{vols[0]}")

    steps.require("authenticate (signature) and DescribeVolumes", authenticate_and_list)

    def create():
        resp = ok(conn.create_snapshots(resources=[VOLUME], snapshot_name="sdk-1"), "CreateSnapshots")
        check(len(resp["snapshots"]) == 1, f"CreateSnapshots: {resp}")
        state["snap"] = resp["snapshots"][0]
        state["job"] = resp["job_id"]

    steps.require("CreateSnapshots", create)
    steps.run("DescribeJobs until successful", lambda: wait_job(conn, state["job"]))

    def snapshot_available():
        snaps = ok(conn.describe_snapshots(snapshots=[state["snap"]]), "DescribeSnapshots")
        snaps = snaps["snapshot_set"]
        check(len(snaps) == 1 and snaps[0]["status"] == "available", f"snapshot: {snaps}")

    steps.run("DescribeSnapshots says available", snapshot_available)

    def page():
        for name in ("sdk-2", "sdk-3"):
            resp = ok(conn.create_snapshots(resources=[VOLUME], snapshot_name=name), "CreateSnapshots")
            wait_job(conn, resp["job_id"])
        seen, offset, total = [], 0, None
        while True:
            resp = ok(
                conn.describe_snapshots(resource_id=VOLUME, offset=offset, limit=2),
                "DescribeSnapshots page",
            )
            total = resp["total_count"]
            items = resp["snapshot_set"]
            check(len(items) <= 2, f"page larger than limit: {len(items)}")
            seen += [s["snapshot_id"] for s in items]
            offset += len(items)
            if not items or offset >= total:
                break
        check(total == 3 and len(set(seen)) == 3, f"paged {seen} of total_count {total}")

    steps.run("DescribeSnapshots paged by offset/limit", page)

    def restore():
        resp = ok(
            conn.create_volume_from_snapshot(snapshot=state["snap"], volume_name="sdk-restored"),
            "CreateVolumeFromSnapshot",
        )
        vol = resp["volume_id"]
        vols = ok(conn.describe_volumes(volumes=[vol]), "DescribeVolumes")["volume_set"]
        check(
            len(vols) == 1 and (vols[0]["status"], vols[0]["transition_status"]) == ("pending", "creating"),
            f"a volume being restored: {vols}",
        )
        wait_job(conn, resp["job_id"])
        vols = ok(conn.describe_volumes(volumes=[vol]), "DescribeVolumes")["volume_set"]
        check(len(vols) == 1 and vols[0]["status"] == "available", f"restored volume: {vols}")

    steps.run("CreateVolumeFromSnapshot and wait for its job", restore)

    def rollback():
        resp = ok(conn.apply_snapshots(snapshots=[state["snap"]]), "ApplySnapshots")
        wait_job(conn, resp["job_id"])

    steps.run("ApplySnapshots (rollback) and wait for its job", rollback)

    def delete():
        resp = ok(conn.delete_snapshots(snapshots=[state["snap"]]), "DeleteSnapshots")
        wait_job(conn, resp["job_id"])
        snaps = ok(conn.describe_snapshots(snapshots=[state["snap"]]), "DescribeSnapshots")
        live = [s for s in snaps["snapshot_set"] if s["status"] not in ("ceased", "deleted")]
        check(not live, f"deleted snapshot still listed: {live}")

    steps.run("DeleteSnapshots and wait for its job", delete)

    def wrong_secret():
        resp = connect(args.base_url, secret="not-the-secret").describe_volumes(volumes=[VOLUME])
        check(isinstance(resp, dict) and resp.get("ret_code") == 1200, f"wrong secret: {resp}")

    steps.run("wrong secret -> ret_code 1200", wrong_secret)

    def throttle():
        sim.call("DELETE", "/_sim/requests")
        sim.fault("qingcloud", "throttle", action="DescribeVolumes", count=1)
        try:
            ok(conn.describe_volumes(volumes=[VOLUME]), "DescribeVolumes after a throttle")
        finally:
            sim.clear_faults()
        seen = sim.get("/_sim/requests?dialect=qingcloud&action=DescribeVolumes")["requests"]
        codes = [r.get("ret_code") for r in seen]
        check(codes == [5100, 0], f"expected the SDK to retry 5100 once, journal: {codes}")

    steps.run("throttle (5100) -> the SDK retries it", throttle)
    steps.finish()


if __name__ == "__main__":
    main()
