#!/usr/bin/env bash
# The service benchmark on one backend or both, release build. On DynamoDB also command latency
# through the library at 10, 1,000 and 100,000 prior events (snapshots on and off; the service's
# scenario 6 reaches 100,000 only without --quick, as the live projections must digest them
# first), and every projection rebuilt from a 100,000-event store (20,000 with --quick),
# compared with an independent rebuild into SQLite.
# Usage: scripts/bench.sh [sqlite|dynamodb|all] [bench flags: --repeat N --quick --skip-rss ...]
# Figures: target/bench-service-<store>.json, target/bench-latency-dynamodb.json and
# target/bench-rebuild-dynamodb.json. Each bench starts and stops its own local DynamoDB
# endpoint (Dynoxide) unless --dynamodb-endpoint URL is given.
set -euo pipefail
cd "$(dirname "$0")/.."

which=${1:-sqlite}
[[ $# -gt 0 ]] && shift
case $which in
  sqlite | dynamodb) stores=("$which") ;;
  all) stores=(sqlite dynamodb) ;;
  *) echo "usage: $0 [sqlite|dynamodb|all] [bench flags]" >&2; exit 2 ;;
esac

rebuild_events=100000 rebuild_items=1000 endpoint=()
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case ${args[i]} in
    --quick) rebuild_events=20000 rebuild_items=200 ;;
    --dynamodb-endpoint) endpoint=(--dynamodb-endpoint "${args[i + 1]:-}") ;;
    --dynamodb-endpoint=*) endpoint=("${args[i]}") ;;
  esac
done

# One build of every binary; the bench then runs the binaries as built (through `cargo run` it
# would build the service again).
cargo build --release --locked --bins
bench=target/release/bench
status=0
for store in "${stores[@]}"; do
  "$bench" service --store "$store" --service-binary target/release/inventory-service \
    --json "target/bench-service-$store.json" "$@" || status=$?
  if [[ $store == dynamodb ]]; then
    "$bench" latency --store dynamodb --sizes 10,1000,100000 \
      --json target/bench-latency-dynamodb.json "${endpoint[@]}" || status=$?
    "$bench" rebuild --store dynamodb --events "$rebuild_events" --items "$rebuild_items" \
      --json target/bench-rebuild-dynamodb.json "${endpoint[@]}" || status=$?
  fi
done
exit $status
