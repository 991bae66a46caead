#!/usr/bin/env bash
# The service benchmark on one backend or both, release build.
# Usage: scripts/bench.sh [sqlite|dynamodb|all] [bench flags: --repeat N --quick --skip-rss ...]
# Figures: target/bench-service-<store>.json (the bench starts and stops its own DynamoDB endpoint).
set -euo pipefail
cd "$(dirname "$0")/.."

which=${1:-sqlite}
[[ $# -gt 0 ]] && shift
case $which in
  sqlite | dynamodb) stores=("$which") ;;
  all) stores=(sqlite dynamodb) ;;
  *) echo "usage: $0 [sqlite|dynamodb|all] [bench flags]" >&2; exit 2 ;;
esac

cargo build --release --locked --bins
status=0
for store in "${stores[@]}"; do
  cargo run --release --locked --bin bench -- service --store "$store" \
    --json "target/bench-service-$store.json" "$@" || status=$?
done
exit $status
