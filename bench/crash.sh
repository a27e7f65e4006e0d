#!/usr/bin/env bash
# The long crash test: tests/interop/test_crash.py against the release build with
# more kill -9 cycles and producers than CI runs; the result goes into
# docs/benchmarks.md (raw: bench/out/crash.json), the other parts are kept.
#
#   bench/crash.sh [CYCLES [PRODUCERS [SEED]]]     default 200 cycles, 8 producers, a random seed
set -euo pipefail
cd "$(dirname "$0")/.."
CYCLES=${1:-200}
PRODUCERS=${2:-8}
SEED_ARGS=()
if [[ -n "${3:-}" ]]; then SEED_ARGS=(--crash-seed "$3"); fi

for pkg in python3-qpid-proton python3-pytest; do
    if ! dpkg -s "$pkg" >/dev/null 2>&1; then
        SUDO=()
        if [[ $(id -u) -ne 0 ]]; then SUDO=(sudo); fi
        "${SUDO[@]}" apt-get update
        DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y --no-install-recommends python3-qpid-proton python3-pytest
        break
    fi
done

echo "==> cargo build --release -p shoal -p shoal-bench" >&2
cargo build --release -p shoal -p shoal-bench
exec /usr/bin/python3 bench/bench.py --skip-router --skip-broker --crash-cycles "$CYCLES" \
    --crash-producers "$PRODUCERS" "${SEED_ARGS[@]}"
