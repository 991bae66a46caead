#!/usr/bin/env bash
# Local DynamoDB-compatible endpoint for tests: moto's server (Apache-2.0, PyPI), kept in .dynamodb/venv.
# Not Amazon's DynamoDB Local: its licence is the vendor's own (needs an AWS account), so it is not used.
# Usage: dynamodb-local.sh install | start [PORT] | stop [PORT]; `start` prints one line, the endpoint URL.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=$ROOT/.dynamodb
VENV=$DIR/venv
SERVER=$VENV/bin/moto_server
TIMEOUT=${DYNAMODB_LOCAL_TIMEOUT:-60}

log() { echo "dynamodb-local: $*" >&2; }

install() {
  if [[ -x $SERVER ]]; then return 0; fi
  log "installing moto server into $VENV"
  mkdir -p "$DIR"
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" >&2; then
    log "python3 -m venv failed; installing python3-venv"
    { apt-get update -qq && apt-get install -y -qq python3-venv; } >&2
    rm -rf "$VENV" && python3 -m venv "$VENV" >&2
  fi
  # moto[server] pulls in every service's deps (~300 MB); DynamoDB needs only these.
  "$VENV/bin/pip" install -q --disable-pip-version-check "moto[dynamodb]>=5,<6" flask flask-cors >&2
}

# Answers only when a real DynamoDB call works. moto keys tables by account and region, and every
# unregistered static access key maps to the same default account, so different credentials see
# the same tables (what -sharedDb gives DynamoDB Local); the region still separates them.
list_tables() {
  curl -sf --max-time 2 -X POST "http://127.0.0.1:$1/" \
    -H 'X-Amz-Target: DynamoDB_20120810.ListTables' -H 'Content-Type: application/x-amz-json-1.0' \
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
  nohup "$VENV/bin/python" "$ROOT/scripts/moto_serialized.py" 127.0.0.1 "$port" >"$DIR/dynamodb-$port.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$DIR/dynamodb-$port.pid"
  for ((i = 0; i < TIMEOUT * 4; i++)); do
    if list_tables "$port"; then echo "http://127.0.0.1:$port"; return 0; fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
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
