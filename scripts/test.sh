#!/usr/bin/env bash
# The whole test suite: starts a local DynamoDB endpoint, runs every test on the embedded store,
# then the server-level suites again on DynamoDB, and stops the endpoint.
set -euo pipefail
cd "$(dirname "$0")/.."

endpoint=$(scripts/dynamodb-local.sh start)
port=${endpoint##*:}
cleanup() {
    scripts/dynamodb-local.sh stop "$port" || true
    # Server-level tests declare durable queues under a per-test prefix ("ttmp…"); drop them.
    if command -v rabbitmqctl >/dev/null; then
        rabbitmqctl list_queues -q name 2>/dev/null | grep '^ttmp' | while read -r queue; do
            rabbitmqctl delete_queue "$queue" >/dev/null 2>&1 || true
        done
    fi
}
trap cleanup EXIT
export INVENTORY_TEST_DYNAMODB_ENDPOINT=$endpoint

cargo test --locked --no-fail-fast "$@"
# The same lifecycle, concurrency, subscription, bad-input and fault tests, on DynamoDB...
INVENTORY_TEST_BACKEND=dynamodb cargo test --locked --no-fail-fast \
    --test lifecycle --test concurrency --test subscriptions --test bad_input --test faults \
    --test multi_process --test rabbitmq --test replay "$@"
# ...and through RabbitMQ instead of the in-process bus.
INVENTORY_TEST_BUS=rabbitmq cargo test --locked --no-fail-fast \
    --test lifecycle --test concurrency --test subscriptions --test faults "$@"
