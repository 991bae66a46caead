#!/usr/bin/env bash
# Where a command's time goes on the local DynamoDB endpoint, which serves one request at a
# time: starts the endpoint and a release service on it, runs N sequential `inventoryAdjust`
# (and waits for the projections), and prints the endpoint's requests and seconds per
# operation, per command. Usage: scripts/profile-dynamodb.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
commands=${1:-200}
cargo build --release --locked --bin inventory-service >&2
endpoint=$(scripts/dynamodb-local.sh start)
port=${endpoint##*:}
data=$(mktemp -d)
log=$data/service.log
target/release/inventory-service serve --listen 127.0.0.1:0 --data-dir "$data" --store dynamodb \
    --dynamodb-endpoint "$endpoint" --table-prefix "profile_" --migrate >"$log" 2>&1 &
service=$!
trap 'kill $service 2>/dev/null || true; scripts/dynamodb-local.sh stop "$port" >/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do grep -q "listening on" "$log" && break; sleep 0.2; done
url=$(sed -n 's/^listening on //p' "$log" | head -1)/graphql
gql() { curl -sf -H 'content-type: application/json' -d "$1" "$url"; }
warehouse=$(gql '{"query":"mutation { warehouseCreate(input: {name: \"P\", code: \"PROF\"}) { warehouse { id } } }"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["warehouseCreate"]["warehouse"]["id"])')
item=$(gql "{\"query\":\"mutation { inventoryItemCreate(input: {warehouseId: \\\"$warehouse\\\", sku: \\\"P-1\\\", productId: \\\"p\\\", initialQuantity: 0, reorderThreshold: 0, reorderQuantity: 0}) { inventoryItem { id } } }\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["inventoryItemCreate"]["inventoryItem"]["id"])')
sleep 2
curl -sf -X POST "$endpoint/__counts" >/dev/null
for _ in $(seq 1 "$commands"); do
    gql "{\"query\":\"mutation { inventoryAdjust(input: {itemId: \\\"$item\\\", delta: 1, reason: RECEIVED}) { inventoryItem { version } } }\"}" >/dev/null
done
sleep 3
curl -sf "$endpoint/__counts" | python3 -c "
import json, sys
counts = json.load(sys.stdin)
n = $commands
print(f'{\"operation\":<20} {\"per command\":>12} {\"ms per command\":>15}')
total = [0, 0.0]
for op, (count, seconds) in sorted(counts.items(), key=lambda kv: -kv[1][1]):
    total[0] += count; total[1] += seconds
    print(f'{op:<20} {count / n:>12.2f} {seconds * 1000 / n:>15.2f}')
print(f'{\"all\":<20} {total[0] / n:>12.2f} {total[1] * 1000 / n:>15.2f}')
"
