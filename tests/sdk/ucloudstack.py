"""UCloudStack conformance: ucloud-sdk-python3 against `snapwarden sim`'s
/ucloudstack/api.

Usage: ucloudstack.py --base-url http://127.0.0.1:PORT (or SNAPWARDEN_SIM_URL).
Exit 0 only when every step passed.

The SDK raises `RetCodeException` for a non-zero `RetCode`. Its own retry
covers HTTP 429/502/503/504 and RetCodes above 2000 only: the documented
throttle code 165 is not retryable to it (`retryable` is False), so the
throttle step checks the SDK surfaces 165 at once, and a 503 from the
gateway checks the SDK's retry itself."""

import logging

from ucloud.core import exc
from ucloud.core.client import Client

from simctl import Control, Steps, arguments, check, poll, run_id

PUBLIC_KEY = "UCSSIMPUBLICKEY"
PRIVATE_KEY = "sim-ucloudstack-private-key"
REGION = "cn"
ZONE = "zone-01"
RUN = run_id()
DISK = f"disk-{RUN}"
QUIET = logging.getLogger("sdk-conformance-ucloudstack")
QUIET.setLevel(logging.CRITICAL)
QUIET.propagate = False


def client(base, private_key=PRIVATE_KEY):
    return Client(
        {
            "region": REGION,
            "base_url": base + "/ucloudstack/api",
            "public_key": PUBLIC_KEY,
            "private_key": private_key,
            "max_retries": 2,
            "timeout": 30,
        },
        # The SDK logs every request, answer and expected error: the steps report.
        logger=QUIET,
    )


def describe(ucs, snapshot_id):
    infos = ucs.invoke("DescribeSnapshot", {"Zone": ZONE, "SnapshotIDs": [snapshot_id]})["Infos"]
    return infos[0] if infos else None


def disk_status(ucs):
    infos = ucs.invoke("DescribeDisk", {"Zone": ZONE, "DiskIDs": [DISK]})["Infos"]
    check(len(infos) == 1, f"DescribeDisk {DISK}: {infos}")
    return infos[0]["DiskStatus"]


def wait_normal(ucs, snapshot_id):
    def done():
        info = describe(ucs, snapshot_id)
        check(info is not None, f"snapshot {snapshot_id} vanished")
        return info if info["SnapshotStatus"] in ("Normal", "Failure") else None

    info = poll(f"snapshot {snapshot_id}", done)
    check(info["SnapshotStatus"] == "Normal", f"snapshot {snapshot_id}: {info}")
    return info


def journal(sim, action):
    return sim.get(f"/_sim/requests?dialect=ucloudstack&action={action}")["requests"]


def main():
    args = arguments(__doc__)
    sim = Control(args.base_url)
    steps = Steps("ucloudstack")
    ucs = client(args.base_url)
    state = {}

    def seed():
        # Long enough that the disk is still Snapshoting / Rollbacking when
        # the next call looks, even on a loaded machine.
        sim.settings(job_duration_ms=1500)
        sim.post(
            "/_sim/ucloudstack/disks",
            {"region": REGION, "zone": ZONE, "disk_id": DISK, "name": "sdk"},
        )

    steps.require("seed a disk through the control API", seed)

    def authenticate_and_list():
        check(disk_status(ucs) == "Unbound", "a fresh disk is Unbound")

    steps.require("authenticate (signature) and DescribeDisk", authenticate_and_list)

    def create():
        resp = ucs.invoke("CreateSnapshot", {"Zone": ZONE, "DiskID": DISK, "Name": "sdk-1"})
        state["snap"] = resp["SnapshotID"]
        # While the snapshot is being made the disk says so.
        check(disk_status(ucs) == "Snapshoting", "the disk is not Snapshoting meanwhile")

    steps.require("CreateSnapshot (the disk is Snapshoting)", create)
    steps.run("DescribeSnapshot until Normal", lambda: wait_normal(ucs, state["snap"]))

    def page():
        for name in ("sdk-2", "sdk-3"):
            sid = ucs.invoke("CreateSnapshot", {"Zone": ZONE, "DiskID": DISK, "Name": name})
            wait_normal(ucs, sid["SnapshotID"])
        seen, offset = [], 0
        while True:
            resp = ucs.invoke(
                "DescribeSnapshot", {"Zone": ZONE, "DiskID": DISK, "Offset": offset, "Limit": 2}
            )
            items = resp["Infos"]
            check(len(items) <= 2, f"page larger than Limit: {len(items)}")
            seen += [s["SnapshotID"] for s in items]
            offset += len(items)
            if not items or offset >= resp["TotalCount"]:
                break
        check(resp["TotalCount"] == 3 and len(set(seen)) == 3, f"paged {seen} of {resp['TotalCount']}")

    steps.run("DescribeSnapshot paged by Offset/Limit", page)

    def rename():
        ucs.invoke(
            "ModifyNameAndRemark",
            {"Zone": ZONE, "ResourceID": state["snap"], "Name": "sdk-renamed", "Remark": "kept"},
        )
        info = describe(ucs, state["snap"])
        check(info["Name"] == "sdk-renamed" and info["Remark"] == "kept", f"renamed: {info}")

    steps.run("ModifyNameAndRemark", rename)

    def rollback():
        ucs.invoke("RollbackSnapshot", {"Zone": ZONE, "DiskID": DISK, "SnapshotID": state["snap"]})
        check(disk_status(ucs) == "Rollbacking", "the disk is not Rollbacking meanwhile")
        poll("rollback to finish", lambda: True if disk_status(ucs) == "Unbound" else None)
        wait_normal(ucs, state["snap"])

    steps.run("RollbackSnapshot (the disk is Rollbacking, then Unbound)", rollback)

    def delete():
        ucs.invoke("DeleteSnapshot", {"Zone": ZONE, "SnapshotID": state["snap"]})

        def gone():
            info = describe(ucs, state["snap"])
            return True if info is None or info["SnapshotStatus"] == "Released" else None

        poll(f"snapshot {state['snap']} released", gone)

    steps.run("DeleteSnapshot until released", delete)

    def wrong_secret():
        try:
            client(args.base_url, private_key="not-the-key").invoke("DescribeDisk", {"Zone": ZONE})
        except exc.RetCodeException as e:
            check(e.code == 171, f"wrong private key: RetCode {e.code}: {e.message}")
            return
        raise AssertionError("a wrong private key was accepted")

    steps.run("wrong private key -> RetCodeException 171", wrong_secret)

    def throttle():
        sim.call("DELETE", "/_sim/requests")
        sim.fault("ucloudstack", "throttle", action="DescribeDisk", count=1)
        try:
            ucs.invoke("DescribeDisk", {"Zone": ZONE, "DiskIDs": [DISK]})
        except exc.RetCodeException as e:
            check(e.code == 165, f"throttled: RetCode {e.code}: {e.message}")
            check(not e.retryable, "the SDK's own rule: codes up to 2000 are not retried")
            check(len(journal(sim, "DescribeDisk")) == 1, "the SDK retried 165")
            return
        finally:
            sim.clear_faults()
        raise AssertionError("the throttle did not surface")

    steps.run("throttle -> RetCodeException 165", throttle)

    def gateway_busy():
        sim.call("DELETE", "/_sim/requests")
        sim.fault("ucloudstack", "server_error", action="DescribeDisk", count=1)
        try:
            check(disk_status(ucs) == "Unbound", "answer after the retry")
        finally:
            sim.clear_faults()
        seen = journal(sim, "DescribeDisk")
        check(
            [r.get("http_status") for r in seen] == [503, 200],
            f"expected the SDK to retry the 503 once: {seen}",
        )

    steps.run("HTTP 503 -> the SDK's retry", gateway_busy)
    steps.finish()


if __name__ == "__main__":
    main()
