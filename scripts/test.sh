#!/usr/bin/env bash
# The whole test suite: starts a local DynamoDB endpoint, runs every test on the embedded store,
# then the server-level suites again on DynamoDB, and stops the endpoint.
set -euo pipefail
cd "$(dirname "$0")/.."

endpoint=$(scripts/dynamodb-local.sh start)
port=${endpoint##*:}
trap 'scripts/dynamodb-local.sh stop "$port" || true' EXIT
export INVENTORY_TEST_DYNAMODB_ENDPOINT=$endpoint

cargo test --locked "$@"
# The same lifecycle, concurrency, subscription, bad-input and fault tests, on DynamoDB.
INVENTORY_TEST_BACKEND=dynamodb cargo test --locked \
    --test lifecycle --test concurrency --test subscriptions --test bad_input --test faults --test multi_process "$@"
