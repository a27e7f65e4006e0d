#!/usr/bin/env bash
# Benchmarks shoal and writes docs/benchmarks.md (raw runs: bench/out/*.json):
# the router against the Qpid Proton C broker example, the broker's queues
# against RabbitMQ (rabbitmq_amqp1_0) and ActiveMQ 5 (its AMQP connector), and
# the MQTT gateway against mosquitto (`--skip-mqtt` keeps the last MQTT figures).
#
#   bench/run.sh [bench.py options]    e.g. bench/run.sh --runs 1 --duration 3
#   bench/run.sh --skip-broker         the router part only (keeps the last broker figures)
#   bench/run.sh --skip-router         the broker part only
#   bench/run.sh --skip-mesh           keeps the last router-mesh figures (2 and 3 hops)
#   bench/crash.sh                     the long crash test
#
# Installs what it needs with apt (Debian): the Proton C examples, rabbitmq-server,
# activemq (and Java), unzip, pytest and Proton for Python (for the crash test).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

PACKAGES=(gcc pkg-config libqpid-proton11-dev libqpid-proton11-dev-examples rabbitmq-server activemq unzip mosquitto
          python3-qpid-proton python3-pytest)
missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "==> installing ${missing[*]}" >&2
    SUDO=()
    if [[ $(id -u) -ne 0 ]]; then SUDO=(sudo); fi
    "${SUDO[@]}" apt-get update
    # The packages' own services are not wanted (the benchmark runs private instances),
    # and in containers they could not start anyway: keep them from starting.
    DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi

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

# Debian's python3 explicitly: the crash test needs Debian's proton module.
exec /usr/bin/python3 "$ROOT/bench/bench.py" "$@"
