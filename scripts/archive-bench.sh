#!/usr/bin/env bash
# Export and import at scale (issue 16): writes a synthetic backup of $EVENTS events (default a
# million; `bench archive-file`, no store involved), imports it into a fresh SQLite store,
# exports that store (rate from the command's summary, peak RSS from /usr/bin/time -v), and
# imports the export into DynamoDB (Dynoxide, started and stopped here unless
# INVENTORY_TEST_DYNAMODB_ENDPOINT names one). Prints one JSON line of figures at the end.
# Uses the release binaries: `cargo build --release --locked --bin inventory-service --bin bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
events=${EVENTS:-1000000}
items=${ITEMS:-10000}
bin=target/release
work=$(mktemp -d)
stop_port=""
cleanup() {
    rm -rf "$work"
    if [ -n "$stop_port" ]; then scripts/dynamodb-local.sh stop "$stop_port" || true; fi
}
trap cleanup EXIT

endpoint=${INVENTORY_TEST_DYNAMODB_ENDPOINT:-}
if [ -z "$endpoint" ]; then
    endpoint=$(scripts/dynamodb-local.sh start)
    stop_port=${endpoint##*:}
fi

peak_rss() { sed -n 's/.*Maximum resident set size (kbytes): //p' "$1"; }

"$bin/bench" archive-file --events "$events" --items "$items" --out "$work/synthetic.jsonl" >/dev/null
echo "archive-bench: importing the synthetic backup into SQLite" >&2
/usr/bin/time -v -o "$work/import-sqlite.time" "$bin/inventory-service" import \
    --in "$work/synthetic.jsonl" --data-dir "$work/sqlite" --snapshot-every 0 >"$work/import-sqlite.json"
echo "archive-bench: exporting the SQLite store" >&2
/usr/bin/time -v -o "$work/export.time" "$bin/inventory-service" export \
    --out "$work/export.jsonl.gz" --data-dir "$work/sqlite" >"$work/export.json"
echo "archive-bench: importing the export into DynamoDB at $endpoint" >&2
/usr/bin/time -v -o "$work/import-dynamodb.time" "$bin/inventory-service" import \
    --in "$work/export.jsonl.gz" --store dynamodb --dynamodb-endpoint "$endpoint" \
    --table-prefix "bench$$_" --migrate --snapshot-every 0 >"$work/import-dynamodb.json"
echo "archive-bench: exporting the DynamoDB store" >&2
/usr/bin/time -v -o "$work/export-dynamodb.time" "$bin/inventory-service" export \
    --out "$work/export-dynamodb.jsonl.gz" --store dynamodb --dynamodb-endpoint "$endpoint" \
    --table-prefix "bench$$_" >"$work/export-dynamodb.json"

python3 - "$work" "$(peak_rss "$work/export.time")" "$(peak_rss "$work/import-sqlite.time")" \
    "$(peak_rss "$work/import-dynamodb.time")" "$(peak_rss "$work/export-dynamodb.time")" \
    "$(stat -c %s "$work/export.jsonl.gz")" <<'PY'
import json, sys
work, export_rss, sqlite_rss, dynamo_rss, dynamo_export_rss, size = sys.argv[1:]
load = lambda name: json.load(open(f"{work}/{name}"))
export, dexport = load("export.json"), load("export-dynamodb.json")
isql, idyn = load("import-sqlite.json"), load("import-dynamodb.json")
print(json.dumps({
    "events": export["events"],
    "export_sqlite_events_per_s": round(export["eventsPerSecond"]),
    "export_sqlite_seconds": round(export["seconds"], 1),
    "export_sqlite_peak_rss_mb": round(int(export_rss) / 1024, 1),
    "export_gzip_bytes": int(size),
    "import_sqlite_write_events_per_s": round(isql["written"]["eventsPerSecond"]),
    "import_sqlite_total_seconds": round(isql["seconds"], 1),
    "import_sqlite_peak_rss_mb": round(int(sqlite_rss) / 1024, 1),
    "import_dynamodb_write_events_per_s": round(idyn["written"]["eventsPerSecond"]),
    "import_dynamodb_total_seconds": round(idyn["seconds"], 1),
    "import_dynamodb_peak_rss_mb": round(int(dynamo_rss) / 1024, 1),
    "export_dynamodb_events_per_s": round(dexport["eventsPerSecond"]),
    "export_dynamodb_peak_rss_mb": round(int(dynamo_export_rss) / 1024, 1),
    "same_events_back": dexport["events"] == export["events"],
}))
PY
