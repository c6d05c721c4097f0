"""Shared by the SDK conformance scripts: the simulator's control API (plain
urllib, so that no SDK is involved in seeding or fault injection), the
command line, and the step runner that prints what failed.

Standard library only."""

import argparse
import json
import os
import secrets
import sys
import time
import traceback
import urllib.error
import urllib.request


def arguments(description):
    """`--base-url` (or SNAPWARDEN_SIM_URL): the simulator, e.g.
    http://127.0.0.1:8710 (no trailing slash needed)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--base-url",
        default=os.environ.get("SNAPWARDEN_SIM_URL"),
        help="the simulator's base URL (default: $SNAPWARDEN_SIM_URL)",
    )
    args = p.parse_args()
    if not args.base_url:
        p.error("--base-url or SNAPWARDEN_SIM_URL is required")
    args.base_url = args.base_url.rstrip("/")
    return args


def run_id():
    """A suffix for the names a run creates, so that a script can run again
    against the same simulator."""
    return secrets.token_hex(4)


class Control:
    """The simulator's loopback-only control API under /_sim/."""

    def __init__(self, base_url):
        self.base = base_url

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as e:
            raise RuntimeError(
                f"control {method} {path}: HTTP {e.code}: {e.read().decode(errors='replace')}"
            ) from None
        return json.loads(raw) if raw else None

    def post(self, path, body):
        return self.call("POST", path, body)

    def get(self, path):
        return self.call("GET", path)

    def fault(self, dialect, fault, action=None, count=1):
        spec = {"dialect": dialect, "fault": fault, "count": count}
        if action is not None:
            spec["action"] = action
        return self.post("/_sim/faults", spec)

    def clear_faults(self):
        return self.call("DELETE", "/_sim/faults")

    def settings(self, **patch):
        return self.post("/_sim/settings", patch)


class Steps:
    """Runs named steps in order; a failed step is printed with its reason
    and the run goes on where later steps do not depend on it. `finish()`
    exits 0 only when every step passed."""

    def __init__(self, cloud):
        self.cloud = cloud
        self.failed = []
        self.passed = 0

    def run(self, name, fn, *args, **kwargs):
        started = time.monotonic()
        try:
            result = fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - every failure is reported
            took = time.monotonic() - started
            print(f"FAIL {self.cloud}: {name} ({took:.2f}s): {type(e).__name__}: {e}")
            traceback.print_exc(file=sys.stdout)
            self.failed.append(name)
            return None
        took = time.monotonic() - started
        print(f"ok   {self.cloud}: {name} ({took:.2f}s)")
        self.passed += 1
        return result

    def require(self, name, fn, *args, **kwargs):
        """A step later steps depend on: stop at once when it fails."""
        before = len(self.failed)
        result = self.run(name, fn, *args, **kwargs)
        if len(self.failed) > before:
            self.finish()
        return result

    def finish(self):
        if self.failed:
            print(f"{self.cloud}: {len(self.failed)} step(s) failed: {', '.join(self.failed)}")
            sys.exit(1)
        print(f"{self.cloud}: all {self.passed} steps passed")
        sys.exit(0)


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def poll(what, fn, timeout=30.0, interval=0.1):
    """Calls fn until it returns something other than None; fails after
    `timeout` seconds naming `what` and the last value seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout}s")
        time.sleep(interval)
