"""The usual alternative on AWS Lightsail: what an operator writes without
snapwarden, with the official Python SDK (boto3), run from cron. Per
instance: CreateInstanceSnapshot, GetOperation every few seconds until it
ends, GetInstanceSnapshots (every page: Lightsail cannot filter by
instance), then DeleteInstanceSnapshot for every own snapshot beyond the
newest `retain` and GetOperation until each delete ends. A thread pool
works through the instances over one shared client; one shared limiter
(hooked before every HTTP send, retries included) keeps the script under the
account's request rate.

Usage: alt_lightsail.py ENDPOINT ACCESS_KEY SECRET TARGETS_FILE [OPTIONS]
The options and the JSON line printed are the ones common.script_arguments
and common.run_targets describe.
"""

import json

import boto3
from botocore.config import Config

from common import CallCounter, RateLimiter, run_targets, script_arguments

CALLS = CallCounter()


def make_client(endpoint, key, secret, workers, limiter):
    client = boto3.client(
        "lightsail",
        endpoint_url=endpoint,
        region_name="us-east-2",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(max_pool_connections=workers, retries={"mode": "standard"}),
    )

    def before_send(request, **_):
        limiter.acquire()
        target = request.headers.get("X-Amz-Target", b"")
        if isinstance(target, bytes):
            target = target.decode()
        CALLS.add(target.rpartition(".")[2] or "unknown")

    client.meta.events.register("before-send.lightsail", before_send)
    return client


def wait_operations(client, operations, poll, stop):
    for op in operations:
        while True:
            stop.sleep(poll)
            status = client.get_operation(operationId=op["id"])["operation"]["status"]
            if status in ("Succeeded", "Completed"):
                break
            if status == "Failed":
                raise RuntimeError(f"operation {op['id']} failed")


def one_instance(client, instance, args, label):
    prefix = f"{args.policy}-{instance}-"
    args.stop.check()
    created = client.create_instance_snapshot(
        instanceSnapshotName=prefix + label,
        instanceName=instance,
        tags=[{"key": "created-by", "value": "cron-script"}],
    )
    wait_operations(client, created["operations"], args.poll, args.stop)
    snapshots, token = [], None
    while True:
        args.stop.check()
        page = client.get_instance_snapshots(**({"pageToken": token} if token else {}))
        snapshots.extend(page.get("instanceSnapshots", []))
        token = page.get("nextPageToken")
        if not token:
            break
    own = sorted(
        (s for s in snapshots
         if s.get("fromInstanceName") == instance and s["name"].startswith(prefix)),
        key=lambda s: s["createdAt"],
        reverse=True,
    )
    deleted = 0
    for old in own[args.retain:]:
        args.stop.check()
        d = client.delete_instance_snapshot(instanceSnapshotName=old["name"])
        wait_operations(client, d["operations"], args.poll, args.stop)
        deleted += 1
    return deleted


def main():
    args = script_arguments("endpoint", "access_key", "secret")
    client = make_client(args.endpoint, args.access_key, args.secret, args.workers,
                         RateLimiter(args.rps))
    summary = run_targets(args.workers, args.targets,
                          lambda i: one_instance(client, i, args, args.label), args.stop)
    print(json.dumps({**summary, "calls": CALLS.as_dict()}))

if __name__ == "__main__":
    main()
