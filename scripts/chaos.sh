#!/usr/bin/env bash
# The chaos run (tests/chaos/): two instances over RabbitMQ on DynamoDB (Dynoxide behind a
# fault-injecting proxy) under steady load, with kills every 20 s, one broker outage and a
# window of latency, connection resets and DynamoDB errors; then the end checks (README,
# "Chaos run"). Exits non-zero when any check fails.
# Usage: scripts/chaos.sh [SECONDS]   (default 180; INVENTORY_CHAOS_SEED replays a run's draws,
# INVENTORY_CHAOS_LOGS=DIR keeps the instances' logs there)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-180}
[[ $seconds =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS]" >&2; exit 2; }

# RabbitMQ on 127.0.0.1:5672: start it if it is down.
if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
    echo "chaos: starting RabbitMQ" >&2
    rabbitmq-server -detached || true
    for _ in $(seq 1 90); do
        (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && break
        sleep 1
    done
fi
# A previous run stopped half-way may have left the broker's app stopped.
rabbitmqctl start_app >/dev/null 2>&1 || true

endpoint=$(scripts/dynamodb-local.sh start)
port=${endpoint##*:}
cleanup() {
    rabbitmqctl start_app >/dev/null 2>&1 || true
    scripts/dynamodb-local.sh stop "$port" || true
}
trap cleanup EXIT

# The run is bounded: the load lasts SECONDS, the checks after it a few minutes at most.
INVENTORY_TEST_DYNAMODB_ENDPOINT=$endpoint INVENTORY_CHAOS_SECONDS=$seconds \
    timeout --kill-after=30 $((seconds + 900)) \
    cargo test --locked --test chaos -- --ignored --nocapture
