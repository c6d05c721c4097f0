"""The usual alternative on QingCloud: what an operator writes without
snapwarden, run from cron. Per volume: CreateSnapshots, DescribeJobs every
few seconds until the job ends, DescribeSnapshots of the volume, then
DeleteSnapshots for every own snapshot beyond the newest `retain`, and
DescribeJobs until each delete ends. Plain per-call HTTP requests (a new
connection per call, as `requests.get` does without a session), signed by
hand (signature_version 1, HmacSHA256, as the QingCloud API reference
describes). A thread pool works through the volumes; one shared limiter
keeps the whole script under the account's request rate.

Usage: alt_qingcloud.py ENDPOINT ZONE ACCESS_KEY SECRET TARGETS_FILE [OPTIONS]
The options and the JSON line printed are the ones common.script_arguments
and common.run_targets describe.
"""

import base64
import datetime
import hashlib
import hmac
import json
import urllib.parse

import requests

from common import CallCounter, RateLimiter, run_targets, script_arguments

CALLS = CallCounter()


def quote(s):
    return urllib.parse.quote(str(s), safe="-_.~")


class QingCloud:
    def __init__(self, endpoint, zone, key, secret, limiter, stop):
        self.stop = stop
        self.endpoint = endpoint
        self.path = urllib.parse.urlparse(endpoint).path or "/"
        self.zone, self.key, self.secret = zone, key, secret
        self.limiter = limiter

    def call(self, action, **params):
        params.update(
            action=action,
            zone=self.zone,
            time_stamp=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            access_key_id=self.key,
            version=1,
            signature_method="HmacSHA256",
            signature_version=1,
        )
        query = "&".join(f"{quote(k)}={quote(params[k])}" for k in sorted(params))
        to_sign = f"GET\n{self.path}\n{query}"
        digest = hmac.new(self.secret.encode(), to_sign.encode(), hashlib.sha256).digest()
        signature = quote(base64.b64encode(digest).decode())
        for attempt in range(5):
            self.stop.check()
            self.limiter.acquire()
            CALLS.add(action)
            r = requests.get(f"{self.endpoint}?{query}&signature={signature}", timeout=30)
            body = r.json()
            if body.get("ret_code") == 0:
                return body
            if body.get("ret_code") in (5000, 5100, 5200):  # busy / throttled
                self.stop.sleep(1 + attempt)
                continue
            raise RuntimeError(f"{action}: {body}")
        raise RuntimeError(f"{action}: gave up after retries")

    def wait_job(self, job_id, poll):
        while True:
            self.stop.sleep(poll)
            job = self.call("DescribeJobs", **{"jobs.1": job_id})["job_set"][0]
            if job["status"] == "successful":
                return
            if job["status"] == "failed":
                raise RuntimeError(f"job {job_id} failed")


def one_volume(qc, volume, args, label):
    prefix = f"{args.policy}-{volume}-"
    created = qc.call(
        "CreateSnapshots",
        **{"resources.1": volume, "snapshot_name": prefix + label, "is_full": 1},
    )
    job = created["job_id"]
    qc.wait_job(job[0] if isinstance(job, list) else job, args.poll)
    listed = qc.call("DescribeSnapshots", resource_id=volume, limit=100)["snapshot_set"]
    own = sorted(
        (s for s in listed
         if s["snapshot_name"].startswith(prefix) and s["status"] not in ("deleted", "ceased")),
        key=lambda s: s["create_time"],
        reverse=True,
    )
    deleted = 0
    for old in own[args.retain:]:
        d = qc.call("DeleteSnapshots", **{"snapshots.1": old["snapshot_id"]})
        qc.wait_job(d["job_id"], args.poll)
        deleted += 1
    return deleted


def main():
    args = script_arguments("endpoint", "zone", "access_key", "secret")
    qc = QingCloud(args.endpoint, args.zone, args.access_key, args.secret, RateLimiter(args.rps),
                   args.stop)
    summary = run_targets(args.workers, args.targets,
                          lambda v: one_volume(qc, v, args, args.label), args.stop)
    print(json.dumps({**summary, "calls": CALLS.as_dict()}))

if __name__ == "__main__":
    main()
