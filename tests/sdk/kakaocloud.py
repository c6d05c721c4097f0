"""KakaoCloud conformance by raw HTTP (KakaoCloud has no Python SDK) against
`snapwarden sim`'s /kakaocloud, with the shapes of KakaoCloud's generated
API clients: Keystone-style IAM token (`X-Subject-Token`), `X-Auth-Token`
on every call, `{"snapshot": {...}}` bodies, `pagination` on listings.

Usage: kakaocloud.py --base-url http://127.0.0.1:PORT (or SNAPWARDEN_SIM_URL).
Exit 0 only when every step passed.

Standard library only. The throttle step follows what KakaoCloud's
Terraform provider does with HTTP 429: wait (Retry-After, else 1 s) and
send the call again."""

import json
import time
import urllib.error
import urllib.parse
import urllib.request

from simctl import Control, Steps, arguments, check, poll, run_id

CREDENTIAL_ID = "kc-sim-access-key"
SECRET = "sim-kakaocloud-secret"
RUN = run_id()
INSTANCE = f"inst-{RUN}"
VOLUME = f"vol-{RUN}"
ROOT = f"root-{RUN}"
ZONE = "kr-central-2-a"


class HttpError(Exception):
    def __init__(self, status, headers, body):
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.headers = headers
        self.body = body


class Api:
    def __init__(self, base):
        self.base = base + "/kakaocloud"
        self.token = None
        self.retries = 0

    def raw(self, method, path, body=None, headers=None, params=None):
        url = self.base + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
                return resp.status, resp.headers, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = raw.decode(errors="replace")
            raise HttpError(e.code, e.headers, parsed) from None

    def issue_token(self, secret=SECRET):
        body = {
            "auth": {
                "identity": {
                    "methods": ["application_credential"],
                    "application_credential": {"id": CREDENTIAL_ID, "secret": secret},
                }
            }
        }
        status, headers, answer = self.raw("POST", "/iam/identity/v3/auth/tokens", body)
        token = headers.get("X-Subject-Token")
        check(200 <= status < 300 and token, f"token issue: {status} {headers}")
        return token, answer

    def call(self, method, path, body=None, params=None):
        """A BCS / Volume call with the token; HTTP 429 waited out and sent
        again, up to 3 times."""
        for attempt in range(4):
            try:
                return self.raw(method, path, body, {"X-Auth-Token": self.token}, params)
            except HttpError as e:
                if e.status != 429 or attempt == 3:
                    raise
                self.retries += 1
                time.sleep(min(float(e.headers.get("Retry-After") or 1), 2.0))
        raise AssertionError("unreachable")


def main():
    args = arguments(__doc__)
    sim = Control(args.base_url)
    steps = Steps("kakaocloud")
    api = Api(args.base_url)
    state = {}

    def seed():
        sim.settings(job_duration_ms=300)
        sim.post("/_sim/kakaocloud/volumes", {"volume_id": VOLUME, "name": "sdk", "size_gb": 10})
        sim.post("/_sim/kakaocloud/volumes", {"volume_id": ROOT, "name": "sdk-root"})
        sim.post(
            "/_sim/kakaocloud/instances",
            {
                "instance_id": INSTANCE,
                "name": "sdk",
                "volumes": [{"volume_id": ROOT, "is_root": True}, {"volume_id": VOLUME}],
            },
        )

    steps.require("seed an instance and volumes through the control API", seed)

    def authenticate():
        token, answer = api.issue_token()
        check("expires_at" in answer["token"], f"token body: {answer}")
        api.token = token
        status, headers, valid = api.raw(
            "GET",
            "/iam/identity/v3/auth/tokens",
            headers={"X-Auth-Token": token, "X-Subject-Token": token},
        )
        check(status == 200 and headers.get("X-Subject-Token") == token, f"validate: {status}")
        check(valid["token"]["expires_at"] == answer["token"]["expires_at"], f"validate: {valid}")

    steps.require("issue a token (X-Subject-Token) and validate it", authenticate)

    def listing():
        _, _, inst = api.call("GET", f"/bcs/api/v1/instances/{INSTANCE}")
        check(inst["instance"]["id"] == INSTANCE, f"instance: {inst}")
        for vm_state, expected in (("active", True), ("stopped", False)):
            _, _, listed = api.call("GET", "/bcs/api/v1/instances", params={"vm_state": vm_state})
            found = any(i["id"] == INSTANCE for i in listed["instances"])
            check(found == expected, f"vm_state={vm_state}: {listed['instances']}")
        _, _, vols = api.call("GET", "/volume/api/v1/volumes", params={"instance_id": INSTANCE})
        ids = sorted(v["id"] for v in vols["volumes"])
        check(ids == sorted([ROOT, VOLUME]), f"volumes of {INSTANCE}: {ids}")
        _, _, roots = api.call(
            "GET", "/volume/api/v1/volumes", params={"instance_id": INSTANCE, "is_root": "true"}
        )
        check([v["id"] for v in roots["volumes"]] == [ROOT], f"is_root filter: {roots}")
        check(roots["pagination"]["total"] == 1, f"pagination: {roots['pagination']}")

    steps.require("get and list instances (vm_state), list volumes (is_root)", listing)

    def create(name, incremental):
        status, _, answer = api.call(
            "POST",
            f"/volume/api/v1/volumes/{VOLUME}/snapshots",
            {"snapshot": {"name": name, "description": "sdk", "is_incremental": incremental}},
        )
        check(200 <= status < 300, f"create: HTTP {status}")
        return answer["snapshot"]["id"]

    def wait(sid, busy):
        def done():
            _, _, snap = api.call("GET", f"/volume/api/v1/snapshots/{sid}")
            return snap["snapshot"] if snap["snapshot"]["status"] != busy else None

        snap = poll(f"snapshot {sid} leaving {busy}", done)
        check(snap["status"] == "available", f"snapshot {sid}: {snap}")
        return snap

    def first():
        state["snap"] = create(f"sdk-1-{RUN}", False)

    steps.require("create the first (full) snapshot", first)
    steps.run("poll it until available", lambda: wait(state["snap"], "creating"))

    def page():
        for i in (2, 3):
            wait(create(f"sdk-{i}-{RUN}", True), "creating")
        seen, offset = [], 0
        while True:
            _, _, resp = api.call(
                "GET",
                "/volume/api/v1/snapshots",
                params={"volume_id": VOLUME, "limit": 2, "offset": offset},
            )
            items, pg = resp["snapshots"], resp["pagination"]
            check(len(items) <= 2, f"page larger than limit: {len(items)}")
            seen += [s["id"] for s in items]
            offset += len(items)
            if not items or offset >= pg["total"]:
                break
        check(pg["total"] == 3 and len(set(seen)) == 3, f"paged {seen}, pagination {pg}")

    steps.run("list snapshots paged by limit/offset", page)

    def update():
        status, _, answer = api.call(
            "PUT", f"/volume/api/v1/snapshots/{state['snap']}", {"snapshot": {"description": "kept"}}
        )
        check(status == 200 and answer["snapshot"]["id"] == state["snap"], f"update: {answer}")
        _, _, snap = api.call("GET", f"/volume/api/v1/snapshots/{state['snap']}")
        check(snap["snapshot"]["description"] == "kept", f"after update: {snap}")

    steps.run("PUT a snapshot's description", update)

    def restore():
        status, _, answer = api.call(
            "POST",
            f"/volume/api/v1/snapshots/{state['snap']}/restore",
            {"restore": {"name": f"restored-{RUN}", "availability_zone": ZONE}},
        )
        check(200 <= status < 300, f"restore: HTTP {status}")
        vid = answer["restore"]["volume_id"]

        def ready():
            _, _, vol = api.call("GET", f"/volume/api/v1/volumes/{vid}")
            return vol["volume"] if vol["volume"]["status"] != "creating" else None

        vol = poll(f"restored volume {vid}", ready)
        check(vol["status"] == "available", f"restored volume: {vol}")

    steps.run("restore to a new volume and wait", restore)

    def delete():
        # The newest incremental first: the chain's parents are refused
        # (409) while incrementals depend on them.
        _, _, resp = api.call("GET", "/volume/api/v1/snapshots", params={"volume_id": VOLUME})
        newest = resp["snapshots"][0]["id"]
        api.call("DELETE", f"/volume/api/v1/snapshots/{newest}")

        def gone():
            try:
                api.call("GET", f"/volume/api/v1/snapshots/{newest}")
            except HttpError as e:
                check(e.status == 404, f"after delete: {e}")
                return True
            return None

        poll(f"snapshot {newest} gone", gone)

    steps.run("delete a snapshot until it is 404", delete)

    def wrong_secret():
        try:
            api.issue_token(secret="not-the-secret")
        except HttpError as e:
            check(e.status == 401, f"wrong secret: {e}")
            check(e.body["error"]["code"] == 401, f"Keystone error body: {e.body}")
            return
        raise AssertionError("a wrong secret was accepted")

    steps.run("wrong secret -> 401 with the Keystone error body", wrong_secret)

    def bad_token():
        try:
            api.raw("GET", "/volume/api/v1/snapshots", headers={"X-Auth-Token": "not-a-token"})
        except HttpError as e:
            check(e.status == 401, f"bad token: {e}")
            return
        raise AssertionError("a bad token was accepted")

    steps.run("unknown token -> 401", bad_token)

    def throttle():
        sim.fault("kakaocloud", "throttle", action="ListSnapshots", count=1)
        try:
            try:
                api.raw("GET", "/volume/api/v1/snapshots", headers={"X-Auth-Token": api.token})
            except HttpError as e:
                check(e.status == 429, f"throttled: {e}")
                check(e.headers.get("Retry-After"), "no Retry-After on the 429")
            else:
                raise AssertionError("the throttle did not surface")
            sim.fault("kakaocloud", "throttle", action="ListSnapshots", count=1)
            before = api.retries
            _, _, resp = api.call("GET", "/volume/api/v1/snapshots", params={"volume_id": VOLUME})
            check(api.retries == before + 1, "the 429 was not retried")
            check("pagination" in resp, f"answer after the retry: {resp}")
        finally:
            sim.clear_faults()

    steps.run("throttle -> 429 with Retry-After, retried", throttle)
    steps.finish()


if __name__ == "__main__":
    main()
