"""PowerVS conformance: ibm-cloud-sdk-core (IAMAuthenticator + BaseService)
against `snapwarden sim`'s /powervs, on the pcloud snapshot paths.

Usage: powervs.py --base-url http://127.0.0.1:PORT (or SNAPWARDEN_SIM_URL).
Exit 0 only when every step passed.

The pcloud snapshot listing has no paging (the API answers every snapshot of
the workspace at once), so the listing step checks the whole list instead."""

import time

import jwt
from ibm_cloud_sdk_core import ApiException, BaseService
from ibm_cloud_sdk_core.authenticators import IAMAuthenticator

from simctl import Control, Steps, arguments, check, poll, run_id

API_KEY = "sim-powervs-api-key"
RUN = run_id()
WORKSPACE = f"ws-{RUN}"
PVM = f"pvm-{RUN}"
VOLUMES = [f"vol-{RUN}-a", f"vol-{RUN}-b"]


def service(base, apikey=API_KEY):
    auth = IAMAuthenticator(apikey, url=base + "/powervs")
    svc = BaseService(service_url=base + "/powervs", authenticator=auth)
    return svc, auth


class Pcloud:
    def __init__(self, svc, crn):
        self.svc = svc
        self.crn = crn

    def call(self, method, path, body=None):
        req = self.svc.prepare_request(
            method=method,
            url=f"/pcloud/v1/cloud-instances/{WORKSPACE}{path}",
            headers={"CRN": self.crn, "Accept": "application/json"},
            data=body,
        )
        return self.svc.send(req)

    def snapshot(self, sid):
        return self.call("GET", f"/snapshots/{sid}").get_result()

    def wait(self, sid, busy):
        def done():
            snap = self.snapshot(sid)
            return snap if snap["status"] != busy else None

        snap = poll(f"snapshot {sid} leaving {busy}", done)
        check(snap["status"] == "available", f"snapshot {sid}: {snap}")
        return snap


def journal(sim, action):
    return sim.get(f"/_sim/requests?dialect=powervs&action={action}")["requests"]


def main():
    args = arguments(__doc__)
    sim = Control(args.base_url)
    steps = Steps("powervs")
    svc, auth = service(args.base_url)
    state = {}

    def seed():
        sim.settings(job_duration_ms=300)
        ws = sim.post("/_sim/powervs/workspaces", {"cloud_instance_id": WORKSPACE})
        state["crn"] = ws["crn"]
        sim.post(
            "/_sim/powervs/instances",
            {"cloud_instance_id": WORKSPACE, "pvm_instance_id": PVM, "volume_ids": VOLUMES},
        )

    steps.require("seed a workspace and an instance through the control API", seed)
    pc = Pcloud(svc, state["crn"])

    def tokens():
        # Several tokens (each authenticator asks for its own): each must be
        # a JWT the SDK can read (exp, iat).
        for _ in range(8):
            _, fresh = service(args.base_url)
            token = fresh.token_manager.get_token()
            claims = jwt.decode(token, options={"verify_signature": False})
            check(claims["exp"] > time.time() > claims["iat"] - 60, f"claims: {claims}")
            header = jwt.get_unverified_header(token)
            check(header.get("alg") == "RS256", f"JWT header: {header}")

    steps.require("IAMAuthenticator gets well-formed JWTs", tokens)

    def instances():
        pvms = pc.call("GET", "/pvm-instances").get_result()["pvmInstances"]
        check([p["pvmInstanceID"] for p in pvms] == [PVM], f"pvm-instances: {pvms}")
        one = pc.call("GET", f"/pvm-instances/{PVM}").get_result()
        check(sorted(one["volumeIDs"]) == sorted(VOLUMES), f"instance volumes: {one}")
        # crn:v1:bluemix:public:power-iaas:LOCATION:a/ACCOUNT:WORKSPACE:pvm-instance:ID
        parts = one.get("crn", "").split(":")
        check(
            len(parts) == 10 and parts[:5] == ["crn", "v1", "bluemix", "public", "power-iaas"],
            f"instance CRN: {one.get('crn')}",
        )
        check(parts[8:] == ["pvm-instance", PVM], f"instance CRN: {one.get('crn')}")

    steps.require("list pvm-instances and get one", instances)

    def create():
        resp = pc.call("POST", f"/pvm-instances/{PVM}/snapshots", {"name": f"sdk-1-{RUN}"})
        check(resp.get_status_code() == 202, f"create: HTTP {resp.get_status_code()}")
        state["snap"] = resp.get_result()["snapshotID"]

    steps.require("create a snapshot (202)", create)
    steps.run("poll the snapshot until available", lambda: pc.wait(state["snap"], "creating"))

    def listing():
        resp = pc.call("POST", f"/pvm-instances/{PVM}/snapshots", {"name": f"sdk-2-{RUN}"})
        pc.wait(resp.get_result()["snapshotID"], "creating")
        snaps = pc.call("GET", "/snapshots").get_result()["snapshots"]
        names = sorted(s["name"] for s in snaps)
        check(names == [f"sdk-1-{RUN}", f"sdk-2-{RUN}"], f"workspace snapshots: {names}")
        mine = pc.call("GET", f"/pvm-instances/{PVM}/snapshots").get_result()["snapshots"]
        check(len(mine) == 2, f"instance snapshots: {mine}")

    steps.run("list the workspace's and the instance's snapshots", listing)

    def rename():
        pc.call("PUT", f"/snapshots/{state['snap']}", {"description": "kept"})
        check(pc.snapshot(state["snap"])["description"] == "kept", "description not kept")

    steps.run("PUT a snapshot's description", rename)

    def restore():
        resp = pc.call(
            "POST", f"/pvm-instances/{PVM}/snapshots/{state['snap']}/restore", {"force": False}
        )
        check(resp.get_status_code() == 202, f"restore: HTTP {resp.get_status_code()}")
        pc.wait(state["snap"], "restoring")

    steps.run("restore the snapshot and wait", restore)

    def delete():
        pc.call("DELETE", f"/snapshots/{state['snap']}")

        def gone():
            try:
                pc.snapshot(state["snap"])
            except ApiException as e:
                check(e.status_code == 404, f"after delete: {e.status_code} {e.message}")
                return True
            return None

        poll(f"snapshot {state['snap']} gone", gone)

    steps.run("delete the snapshot until it is 404", delete)

    def wrong_key():
        bad, _ = service(args.base_url, apikey="not-the-key")
        try:
            Pcloud(bad, state["crn"]).call("GET", "/snapshots")
        except ApiException as e:
            check(e.status_code == 400, f"wrong API key: {e.status_code} {e.message}")
            return
        raise AssertionError("a wrong API key was accepted")

    steps.run("wrong API key -> ApiException from the token request", wrong_key)

    def throttle():
        svc.enable_retries(max_retries=2, retry_interval=1.0)
        sim.call("DELETE", "/_sim/requests")
        sim.fault("powervs", "throttle", action="pcloud.cloudinstances.snapshots.getall", count=1)
        try:
            resp = pc.call("GET", "/snapshots")
        finally:
            sim.clear_faults()
            svc.disable_retries()
        check(resp.get_status_code() == 200, f"after the retry: {resp.get_status_code()}")
        seen = [r.get("http_status") for r in journal(sim, "pcloud.cloudinstances.snapshots.getall")]
        check(seen == [429, 200], f"expected the SDK to retry the 429 once: {seen}")

    steps.run("throttle (429) -> the SDK's retry", throttle)

    def throttle_surfaces():
        sim.fault("powervs", "throttle", action="pcloud.cloudinstances.snapshots.getall", count=1)
        try:
            pc.call("GET", "/snapshots")
        except ApiException as e:
            check(e.status_code == 429, f"throttled: {e.status_code} {e.message}")
            return
        finally:
            sim.clear_faults()
        raise AssertionError("the throttle did not surface without retries")

    steps.run("throttle without retries -> ApiException 429", throttle_surfaces)
    steps.finish()


if __name__ == "__main__":
    main()
