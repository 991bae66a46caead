#!/usr/bin/env bash
# Export and import at scale (issue 16): writes a synthetic backup of $EVENTS events (default a
# million; `bench archive-file`, no store involved), imports it into a fresh SQLite store,
# exports that store (rate from the command's summary, peak RSS from /usr/bin/time -v), and
# imports the export into DynamoDB (Dynoxide, started and stopped here unless
# INVENTORY_TEST_DYNAMODB_ENDPOINT names one). Before the export the SQLite store gets
# $ALLOCATIONS allocations through the API (the synthetic file has none); last, it serves both
# stores and compares their answers for a sample of $COMPARE_SAMPLE items
# (scripts/archive-compare.py). Prints one JSON line of figures at the end.
# Uses the release binaries: `cargo build --release --locked --bin inventory-service --bin bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
events=${EVENTS:-1000000}
items=${ITEMS:-10000}
sample=${COMPARE_SAMPLE:-50}
allocations=${ALLOCATIONS:-200}
export_back=${EXPORT_BACK:-1} # 0: skip exporting the DynamoDB store again (minutes at a million)
bin=target/release
work=$(mktemp -d)
stop_port=""
servers=()
stop_servers() {
    for pid in "${servers[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${servers[@]}"; do wait "$pid" 2>/dev/null || true; done
    servers=()
}
cleanup() {
    stop_servers
    rm -rf "$work"
    if [ -n "$stop_port" ]; then scripts/dynamodb-local.sh stop "$stop_port" || true; fi
}
trap cleanup EXIT

endpoint=${INVENTORY_TEST_DYNAMODB_ENDPOINT:-}
if [ -z "$endpoint" ]; then
    endpoint=$(scripts/dynamodb-local.sh start)
    stop_port=${endpoint##*:}
fi

# serve NAME ARGS...: starts the service on a free port with ARGS, waits until it is ready,
# and sets $url.
serve() {
    local name=$1 port i
    shift
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    RUST_LOG=warn "$bin/inventory-service" serve --listen "127.0.0.1:$port" "$@" \
        >"$work/serve-$name.log" 2>&1 &
    servers+=("$!")
    url="http://127.0.0.1:$port"
    for ((i = 0; i < 1200; i++)); do
        if curl -sf --max-time 2 "$url/health/ready" >/dev/null; then return 0; fi
        kill -0 "${servers[-1]}" 2>/dev/null || break
        sleep 0.1
    done
    echo "archive-bench: the $name service did not become ready:" >&2
    tail -20 "$work/serve-$name.log" >&2
    return 1
}

peak_rss() { sed -n 's/.*Maximum resident set size (kbytes): //p' "$1"; }

"$bin/bench" archive-file --events "$events" --items "$items" --out "$work/synthetic.jsonl" >/dev/null
echo "archive-bench: importing the synthetic backup into SQLite" >&2
/usr/bin/time -v -o "$work/import-sqlite.time" "$bin/inventory-service" import \
    --in "$work/synthetic.jsonl" --data-dir "$work/sqlite" --snapshot-every 0 >"$work/import-sqlite.json"
echo "archive-bench: giving the SQLite store $allocations allocations through the API" >&2
serve original --data-dir "$work/sqlite"
python3 scripts/archive-compare.py allocate "$url" --count "$allocations" >"$work/allocate.json"
stop_servers
echo "archive-bench: exporting the SQLite store" >&2
/usr/bin/time -v -o "$work/export.time" "$bin/inventory-service" export \
    --out "$work/export.jsonl.gz" --data-dir "$work/sqlite" >"$work/export.json"
echo "archive-bench: importing the export into DynamoDB at $endpoint" >&2
/usr/bin/time -v -o "$work/import-dynamodb.time" "$bin/inventory-service" import \
    --in "$work/export.jsonl.gz" --store dynamodb --dynamodb-endpoint "$endpoint" \
    --table-prefix "bench$$_" --migrate --snapshot-every 0 >"$work/import-dynamodb.json"
if [ "$export_back" != 0 ]; then
    echo "archive-bench: exporting the DynamoDB store" >&2
    /usr/bin/time -v -o "$work/export-dynamodb.time" "$bin/inventory-service" export \
        --out "$work/export-dynamodb.jsonl.gz" --store dynamodb --dynamodb-endpoint "$endpoint" \
        --table-prefix "bench$$_" >"$work/export-dynamodb.json"
fi
echo "archive-bench: comparing the answers of both stores for $sample items" >&2
serve original --data-dir "$work/sqlite"
original=$url
serve restored --store dynamodb --dynamodb-endpoint "$endpoint" --table-prefix "bench$$_"
restored=$url
compare_rc=0
python3 scripts/archive-compare.py compare "$original" "$restored" --sample "$sample" \
    >"$work/compare.json" || compare_rc=$?

python3 - "$work" "$(peak_rss "$work/export.time")" "$(peak_rss "$work/import-sqlite.time")" \
    "$(peak_rss "$work/import-dynamodb.time")" \
    "$([ "$export_back" = 0 ] || peak_rss "$work/export-dynamodb.time")" \
    "$(stat -c %s "$work/export.jsonl.gz")" <<'PY'
import json, sys
work, export_rss, sqlite_rss, dynamo_rss, dynamo_export_rss, size = sys.argv[1:]
load = lambda name: json.load(open(f"{work}/{name}"))
try:
    compare = load("compare.json")
except ValueError:  # the comparison failed before its summary (its errors are above)
    compare = None
export = load("export.json")
dexport = load("export-dynamodb.json") if dynamo_export_rss else None
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
    "import_sqlite_phase_seconds": {k: round(v, 1) for k, v in isql["phaseSeconds"].items()},
    "import_dynamodb_write_events_per_s": round(idyn["written"]["eventsPerSecond"]),
    "import_dynamodb_total_seconds": round(idyn["seconds"], 1),
    "import_dynamodb_peak_rss_mb": round(int(dynamo_rss) / 1024, 1),
    "import_dynamodb_phase_seconds": {k: round(v, 1) for k, v in idyn["phaseSeconds"].items()},
    "import_dynamodb_verified": idyn["verified"],
    "export_dynamodb_events_per_s": dexport and round(dexport["eventsPerSecond"]),
    "export_dynamodb_peak_rss_mb": dexport and round(int(dynamo_export_rss) / 1024, 1),
    "same_events_back": dexport and dexport["events"] == export["events"],
    "allocations_added": load("allocate.json")["allocations"],
    "compare": compare,
}))
PY
exit "$compare_rc"
