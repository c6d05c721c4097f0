#!/usr/bin/env bash
# snapwarden at fleet scale, side by side with the usual alternative.
#
#   bench/run.sh [--quick] [more options of bench/bench.py]
#
# Builds the release binary, makes a venv with boto3 and requests under
# bench/.venv (once), then runs every scenario against the built-in
# simulator on loopback and prints a results table; the figures are kept in
# bench/results/latest.json. --quick: N = 100 and 1,000 only, idle 30 s.
# Not part of the tests: a full run (N = 100, 1,000 and 10,000) takes about
# an hour and a half; the Python alternative is stopped at --alt-cap seconds
# (600) and then reported as not finished, with how far it got.
#
#   bench/run.sh --sizes 10000 --dialects qingcloud --only fleet
#   bench/run.sh --only simthroughput      # the simulator's own req/s
#
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
target="${CARGO_TARGET_DIR:-$repo/target}"

(cd "$repo" && cargo build --release --quiet)
bin="$target/release/snapwarden"

if [ ! -x "$here/.venv/bin/python" ]; then
    python3 -m venv "$here/.venv"
    "$here/.venv/bin/pip" install --quiet -r "$here/requirements.txt"
fi

cd "$here"
exec "$here/.venv/bin/python" "$here/bench.py" --bin "$bin" "$@"
