#!/usr/bin/env bash
# The whole test suite: installs what the JS client tests need (tests/js packages, Chromium),
# starts a local DynamoDB endpoint, runs every test on the embedded store, then the server-level
# suites again on DynamoDB, stops the endpoint, and ends with the chaos run (scripts/chaos.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# The JS client tests (tests/js_clients.rs) need the npm packages of tests/js and Debian's
# Chromium. `npm ci` runs only when the lockfile changed since the last install (or there is
# none), so a warm run costs nothing.
if ! command -v npm >/dev/null; then
    echo "scripts/test.sh: Node.js and npm are needed (the GraphiQL build and tests/js); install them first" >&2
    exit 1
fi
js_stamp=tests/js/node_modules/.installed-from-lock
if ! cmp -s tests/js/package-lock.json "$js_stamp"; then
    echo "installing tests/js packages (npm ci)" >&2
    (cd tests/js && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    cp tests/js/package-lock.json "$js_stamp"
fi
if [ ! -x /usr/bin/chromium ]; then
    echo "installing Debian's chromium for the browser tests" >&2
    sudo_if_needed=()
    [ "$(id -u)" -eq 0 ] || sudo_if_needed=(sudo)
    "${sudo_if_needed[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo_if_needed[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

# Free disk: a full disk stops RabbitMQ answering (its disk alarm, then its own writes) long
# before it makes a test fail on its own; the suite's debug build takes about 5 GB.
read -r free_gb mount < <(df -Pk . | awk 'NR == 2 { print int($4 / 1048576), $6 }')
echo "scripts/test.sh: ${free_gb} GB free on $mount" >&2
[ "$free_gb" -ge 10 ] || echo "scripts/test.sh: warning: under 10 GB free; the broker may stop answering" >&2

endpoint=$(scripts/dynamodb-local.sh start)
port=${endpoint##*:}
cleanup() {
    scripts/dynamodb-local.sh stop "$port" || true
    # Server-level tests declare durable queues under a per-test prefix ("ttmp…"); drop them.
    if command -v rabbitmqctl >/dev/null; then
        rabbitmqctl list_queues -q name 2>/dev/null | grep '^ttmp' | while read -r queue; do
            # Its stdin is not the list: rabbitmqctl reads stdin, and would swallow the rest of
            # it (only the first queue was ever deleted, and the others piled up run by run).
            rabbitmqctl delete_queue "$queue" </dev/null >/dev/null 2>&1 || true
        done
    fi
}
trap cleanup EXIT
export INVENTORY_TEST_DYNAMODB_ENDPOINT=$endpoint

# One pass of `cargo test`, with the broker checked before it (started again if it stopped
# answering) and, when the pass fails with the broker silent, what the broker and the machine
# said at its end.
pass() {
    scripts/rabbitmq-local.sh ensure
    if ! "$@"; then
        scripts/rabbitmq-local.sh check || scripts/rabbitmq-local.sh diagnose
        return 1
    fi
}

pass cargo test --locked --no-fail-fast "$@"
# The same lifecycle, idempotency, pagination, concurrency, subscription, bad-input, fault,
# start-up repair, transfer, expiry, count and export/import tests, on DynamoDB...
INVENTORY_TEST_BACKEND=dynamodb pass cargo test --locked --no-fail-fast \
    --test lifecycle --test idempotency --test pagination --test concurrency --test subscriptions \
    --test bad_input --test faults --test multi_process --test rabbitmq --test replay \
    --test projection_repair --test api_key_revocation --test authorization_roles \
    --test authorization_scope --test authorization_subscriptions --test transfers \
    --test expiry --test counts_and_bulk --test export_import --test replay_handshake "$@"
# ...and through RabbitMQ instead of the in-process bus (projector_stall picks its stores
# itself: the embedded one, and DynamoDB behind the fault proxy).
INVENTORY_TEST_BUS=rabbitmq pass cargo test --locked --no-fail-fast \
    --test lifecycle --test idempotency --test pagination --test concurrency --test subscriptions \
    --test faults --test projection_repair --test transfers --test expiry --test counts_and_bulk \
    --test projector_stall "$@"
# Last, the chaos run (tests/chaos/): 3 minutes of load over two instances with kills, a broker
# outage and injected DynamoDB faults, then its end checks. It starts its own DynamoDB endpoint.
scripts/chaos.sh 180
