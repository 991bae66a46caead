#!/usr/bin/env bash
# Local DynamoDB-compatible endpoint for tests and benchmarks: Dynoxide (MIT OR Apache-2.0), a
# DynamoDB emulator on SQLite that refuses what DynamoDB refuses (reserved words, bad
# expressions), isolates transactions and reports consumed capacity. Installed from npm through
# the committed lockfile in scripts/dynoxide/ into the git-ignored .dynamodb/.
# Not Amazon's DynamoDB Local (its licence is the vendor's own), and not moto: moto accepted a
# reserved word that DynamoDB refuses, which hid a broken outbox relay.
# Usage: dynamodb-local.sh install | start [PORT] | stop [PORT]; `start` prints one line, the endpoint URL.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=$ROOT/.dynamodb
SERVER=$DIR/node_modules/@dynoxide/linux-x64/dynoxide
TIMEOUT=${DYNAMODB_LOCAL_TIMEOUT:-30}

log() { echo "dynamodb-local: $*" >&2; }

install() {
  # Reinstall when the committed lockfile changed (a version bump).
  if [[ -x $SERVER ]] && cmp -s "$ROOT/scripts/dynoxide/package-lock.json" "$DIR/package-lock.json"; then
    return 0
  fi
  log "installing Dynoxide into $DIR"
  mkdir -p "$DIR"
  cp "$ROOT/scripts/dynoxide/package.json" "$ROOT/scripts/dynoxide/package-lock.json" "$DIR/"
  (cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error) >&2
  [[ -x $SERVER ]] || { log "no binary at $SERVER after npm ci"; exit 1; }
}

# Answers only when a real DynamoDB call works.
list_tables() {
  curl -sf --max-time 2 -X POST "http://127.0.0.1:$1/" \
    -H 'X-Amz-Target: DynamoDB_20120810.ListTables' -H 'Content-Type: application/x-amz-json-1.0' \
    -H "X-Amz-Date: $(date -u +%Y%m%dT%H%M%SZ)" \
    -H 'Authorization: AWS4-HMAC-SHA256 Credential=local/20240101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=x' \
    -d '{}' 2>/dev/null | grep -q TableNames
}

alive() { [[ -f $DIR/dynamodb-$1.pid ]] && kill -0 "$(cat "$DIR/dynamodb-$1.pid")" 2>/dev/null; }

start() {
  install
  local port=${1:-} pid i
  if [[ -z $port ]]; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  elif alive "$port"; then
    echo "http://127.0.0.1:$port"; return 0
  elif (: </dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
    log "port $port is already taken"; exit 1
  fi
  # In memory: every run starts empty and nothing is left on disk. Tests separate their tables
  # by prefix, so one server serves the whole suite.
  nohup "$SERVER" serve --host 127.0.0.1 --port "$port" >"$DIR/dynamodb-$port.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$DIR/dynamodb-$port.pid"
  for ((i = 0; i < TIMEOUT * 10; i++)); do
    if list_tables "$port"; then echo "http://127.0.0.1:$port"; return 0; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  log "failed to start on port $port; log tail:"
  tail -n 30 "$DIR/dynamodb-$port.log" >&2 || true
  stop "$port"
  exit 1
}

stop() {
  local f pid i
  for f in "$DIR"/dynamodb-${1:-*}.pid; do
    [[ -f $f ]] || continue
    pid=$(cat "$f")
    if kill "$pid" 2>/dev/null; then
      for i in {1..20}; do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -9 "$pid" 2>/dev/null || true
      log "stopped pid $pid (${f##*/})"
    fi
    rm -f "$f"
  done
}

case ${1:-} in
  install) install ;;
  start) start "${2:-}" ;;
  stop) stop "${2:-}" ;;
  *) echo "usage: $0 install | start [PORT] | stop [PORT]" >&2; exit 2 ;;
esac
