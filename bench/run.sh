#!/usr/bin/env bash
# Benchmarks shoal against the Qpid Proton C broker example and writes
# docs/benchmarks.md (raw runs: bench/out/results.json).
#
#   bench/run.sh [bench.py options]    e.g. bench/run.sh --runs 1 --duration 3
#
# Needs: cargo, gcc, pkg-config, libqpid-proton11-dev(-examples), python3.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

echo "==> cargo build --release -p shoal -p shoal-bench" >&2
cargo build --release -p shoal -p shoal-bench

EXAMPLES=/usr/share/proton/examples/c
OUT="$ROOT/target/bench"
mkdir -p "$OUT"
echo "==> building the Proton C broker example into target/bench" >&2
if pkg-config --exists libqpid-proton-core libqpid-proton-proactor; then
    PROTON_FLAGS=$(pkg-config --cflags --libs libqpid-proton-core libqpid-proton-proactor)
else
    PROTON_FLAGS=$(pkg-config --cflags --libs libqpid-proton 2>/dev/null || echo -lqpid-proton)
fi
# shellcheck disable=SC2086 # a list of flags
gcc -O2 -o "$OUT/broker" -I"$EXAMPLES" "$EXAMPLES/broker.c" $PROTON_FLAGS -lpthread
# The example looks for ssl-certs/ in its working directory (TLS is unused here, but it warns without).
if [[ -d "$EXAMPLES/ssl-certs" && ! -e "$OUT/ssl-certs" ]]; then
    ln -s "$EXAMPLES/ssl-certs" "$OUT/ssl-certs"
fi

exec python3 "$ROOT/bench/bench.py" "$@"
