"""Lightsail conformance: boto3 against `snapwarden sim`'s /lightsail.

Usage: lightsail.py --base-url http://127.0.0.1:PORT (or SNAPWARDEN_SIM_URL).
Exit 0 only when every step passed."""

import boto3
import botocore.config
from botocore.exceptions import ClientError

from simctl import Control, Steps, arguments, check, poll, run_id

ACCESS_KEY = "AKIASIMLIGHTSAIL0001"
SECRET = "sim-lightsail-secret"
REGION = "us-east-2"
RUN = run_id()
DISK = f"sdk-disk-{RUN}"


def client(base, secret=SECRET, retries=None):
    config = botocore.config.Config(
        retries=retries or {"mode": "standard", "total_max_attempts": 3},
        # The throttle step must see botocore's own retry; nothing else
        # should wait long.
        connect_timeout=5,
        read_timeout=30,
    )
    return boto3.client(
        "lightsail",
        endpoint_url=base + "/lightsail",
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=secret,
        config=config,
    )


def wait_operation(ls, op_id):
    """GetOperation until the operation leaves Started."""

    def done():
        op = ls.get_operation(operationId=op_id)["operation"]
        return op if op["status"] not in ("NotStarted", "Started") else None

    op = poll(f"operation {op_id}", done)
    check(op["status"] == "Succeeded", f"operation {op_id} ended {op['status']}")
    return op


def wait_snapshot(ls, name):
    def done():
        snap = ls.get_disk_snapshot(diskSnapshotName=name)["diskSnapshot"]
        return snap if snap["state"] != "pending" else None

    snap = poll(f"disk snapshot {name}", done)
    check(snap["state"] == "completed", f"snapshot {name} ended {snap['state']}")
    return snap


def main():
    args = arguments(__doc__)
    sim = Control(args.base_url)
    steps = Steps("lightsail")
    ls = client(args.base_url)
    state = {}

    def seed():
        sim.settings(job_duration_ms=300)
        sim.post("/_sim/lightsail/disks", {"name": DISK, "availability_zone": REGION + "a"})

    steps.require("seed a disk through the control API", seed)

    def authenticate_and_list():
        disks = ls.get_disks()["disks"]
        check(any(d["name"] == DISK for d in disks), f"{DISK} not in GetDisks: {disks}")
        rid = ls.get_disks()["ResponseMetadata"]["RequestId"]
        check(rid, "no x-amzn-RequestId on the answer")

    steps.require("authenticate (SigV4) and GetDisks", authenticate_and_list)

    def create():
        ops = ls.create_disk_snapshot(diskName=DISK, diskSnapshotName=f"sdk-snap-1-{RUN}")["operations"]
        # One operation on the snapshot, one on the disk, as AWS answers.
        kinds = sorted(o["resourceType"] for o in ops)
        check(kinds == ["Disk", "DiskSnapshot"], f"CreateDiskSnapshot operations: {ops}")
        state["op"] = next(o["id"] for o in ops if o["resourceType"] == "DiskSnapshot")

    steps.require("CreateDiskSnapshot", create)
    steps.run("GetOperation until Succeeded", lambda: wait_operation(ls, state["op"]))
    steps.run("GetDiskSnapshot is completed", lambda: wait_snapshot(ls, f"sdk-snap-1-{RUN}"))

    def operations_for_resource():
        # The disk's side of the create: its own operation, naming the snapshot.
        ops = ls.get_operations_for_resource(resourceName=DISK)["operations"]
        mine = [
            o
            for o in ops
            if o["operationType"] == "CreateDiskSnapshot"
            and o["operationDetails"] == f"sdk-snap-1-{RUN}"
        ]
        check(len(mine) == 1, f"the create is not listed for {DISK}: {ops}")

    steps.run("GetOperationsForResource lists the create", operations_for_resource)

    def page():
        sim.post("/_sim/lightsail/settings", {"page_size": 1})
        for name in (f"sdk-snap-2-{RUN}", f"sdk-snap-3-{RUN}"):
            op = ls.create_disk_snapshot(diskName=DISK, diskSnapshotName=name)["operations"][0]
            wait_operation(ls, op["id"])
        names = []
        pages = 0
        for pg in ls.get_paginator("get_disk_snapshots").paginate():
            pages += 1
            names += [s["name"] for s in pg["diskSnapshots"] if s["name"].endswith(RUN)]
        check(pages >= 3, f"expected at least 3 pages of 1, got {pages}")
        check(
            sorted(names) == [f"sdk-snap-{i}-{RUN}" for i in (1, 2, 3)],
            f"paged listing: {names}",
        )
        sim.post("/_sim/lightsail/settings", {"page_size": 100})

    steps.run("GetDiskSnapshots paged by the SDK's paginator", page)

    def restore():
        ops = ls.create_disk_from_snapshot(
            diskName=f"sdk-restored-{RUN}",
            diskSnapshotName=f"sdk-snap-1-{RUN}",
            availabilityZone=REGION + "a",
            sizeInGb=8,
        )["operations"]
        wait_operation(ls, ops[0]["id"])
        disk = ls.get_disk(diskName=f"sdk-restored-{RUN}")["disk"]
        check(disk["state"] == "available", f"restored disk: {disk['state']}")

    steps.run("CreateDiskFromSnapshot and wait", restore)

    def delete():
        op = ls.delete_disk_snapshot(diskSnapshotName=f"sdk-snap-2-{RUN}")["operations"][0]
        wait_operation(ls, op["id"])
        try:
            ls.get_disk_snapshot(diskSnapshotName=f"sdk-snap-2-{RUN}")
        except ClientError as e:
            code = e.response["Error"]["Code"]
            check(code == "NotFoundException", f"deleted snapshot: {code}")
            return
        raise AssertionError("the deleted snapshot is still served")

    steps.run("DeleteDiskSnapshot, then NotFoundException", delete)

    def wrong_secret():
        bad = client(args.base_url, secret="not-the-secret")
        try:
            bad.get_disks()
        except ClientError as e:
            code = e.response["Error"]["Code"]
            check(code == "InvalidSignatureException", f"wrong secret: {code}")
            return
        raise AssertionError("a wrong secret was accepted")

    steps.run("wrong secret -> ClientError InvalidSignatureException", wrong_secret)

    def bogus_session_token():
        bad = boto3.client(
            "lightsail",
            endpoint_url=args.base_url + "/lightsail",
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET,
            aws_session_token="not-a-session-token",
        )
        try:
            bad.get_disks()
        except ClientError as e:
            code = e.response["Error"]["Code"]
            check(code == "UnrecognizedClientException", f"bogus session token: {code}")
            return
        raise AssertionError("a bogus session token was accepted")

    steps.run("bogus session token -> ClientError UnrecognizedClientException", bogus_session_token)

    def throttle():
        sim.fault("lightsail", "throttle", action="GetDisks", count=1)
        resp = ls.get_disks()
        attempts = resp["ResponseMetadata"]["RetryAttempts"]
        check(attempts >= 1, f"botocore did not retry the throttle (RetryAttempts={attempts})")
        # Throttled without end: the SDK gives up with ThrottlingException.
        sim.fault("lightsail", "throttle", action="GetDisks", count=10)
        try:
            ls.get_disks()
        except ClientError as e:
            code = e.response["Error"]["Code"]
            retried = e.response["ResponseMetadata"]["RetryAttempts"]
            check(code == "ThrottlingException", f"persistent throttle: {code}")
            check(retried == 2, f"3 attempts in all means 2 retries, saw {retried}")
            return
        finally:
            sim.clear_faults()
        raise AssertionError("ten throttles in a row did not surface")

    steps.run("throttle -> botocore retries (RetryAttempts > 0)", throttle)
    steps.finish()


if __name__ == "__main__":
    main()
