#!/usr/bin/env bash
# The chaos run (tests/chaos/): two instances over RabbitMQ on DynamoDB (Dynoxide behind a
# fault-injecting proxy) under steady load, with kills every 20 s, one broker outage and a
# window of latency, connection resets and DynamoDB errors; then the end checks (README,
# "Chaos run"). Exits non-zero when any check fails.
# Usage: scripts/chaos.sh [SECONDS]   (default 180, at least 45; INVENTORY_CHAOS_SEED replays a run's draws,
# INVENTORY_CHAOS_LOGS=DIR keeps the instances' logs there; by default a temporary directory,
# whose logs' tails are shown, and which is kept, when the run fails)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-180}
[[ $seconds =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS]" >&2; exit 2; }

# RabbitMQ on 127.0.0.1:5672: started (or its app started, after a run stopped half-way) if it
# does not answer.
scripts/rabbitmq-local.sh ensure

logs=${INVENTORY_CHAOS_LOGS:-$(mktemp -d -t inventory-chaos.XXXXXX)}
mkdir -p "$logs"
rm -f "$logs/server-pids"
endpoint=$(scripts/dynamodb-local.sh start)
port=${endpoint##*:}
cleanup() {
    local status=$?
    # Servers the test started and could not stop itself (it was ended first): by their ids.
    if [[ -f $logs/server-pids ]]; then
        while read -r pid; do
            [[ $pid =~ ^[0-9]+$ ]] || continue
            if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' </proc/"$pid"/cmdline | grep -q inventory-service; then
                kill -9 "$pid" 2>/dev/null || true
            fi
        done <"$logs/server-pids"
    fi
    rabbitmqctl start_app >/dev/null 2>&1 || true
    scripts/dynamodb-local.sh stop "$port" || true
    if [[ $status -ne 0 ]]; then
        for log in "$logs"/instance-*.log; do
            [[ -f $log ]] || continue
            echo "--- last lines of $log" >&2
            tail -n 40 "$log" >&2
        done
    elif [[ -z ${INVENTORY_CHAOS_LOGS:-} ]]; then
        rm -rf "$logs"
    fi
}
trap cleanup EXIT

# The run is bounded: the load lasts SECONDS, the checks after it a few minutes at most.
INVENTORY_TEST_DYNAMODB_ENDPOINT=$endpoint INVENTORY_CHAOS_SECONDS=$seconds INVENTORY_CHAOS_LOGS=$logs \
    timeout --kill-after=30 $((seconds + 900)) \
    cargo test --locked --test chaos -- --ignored --nocapture
