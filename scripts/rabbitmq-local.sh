#!/usr/bin/env bash
# The RabbitMQ broker the tests use, at 127.0.0.1:5672 (guest/guest): every machine of this
# project runs one. This script makes sure it answers, and starts or restarts it if it does not.
# Usage: rabbitmq-local.sh ensure | check | diagnose
#   check     exit 0 when the broker answers the AMQP protocol header with its Connection.Start
#             (a listening port is not enough: a broker whose disk filled up, or that is stuck,
#             still accepts the TCP connection and then says nothing)
#   ensure    check; if the broker does not answer, print why (diagnose), start its app, and if
#             that is not enough, restart the node; exit non-zero if it still does not answer
#   diagnose  what the broker and the machine say: alarms, free disk, the broker log's tail
set -euo pipefail

HOST=127.0.0.1
PORT=5672
WAIT=${RABBITMQ_LOCAL_WAIT:-90}

log() { echo "rabbitmq-local: $*" >&2; }

# AMQP 0-9-1: the client sends "AMQP" 0 0 9 1; the broker answers with a method frame
# (type 1) carrying Connection.Start. Anything else, or nothing within 5 s, is not an answer.
check() {
    local first
    first=$(timeout 5 bash -c "
        exec 3<>/dev/tcp/$HOST/$PORT || exit 1
        printf 'AMQP\x00\x00\x09\x01' >&3
        head -c 1 <&3 | od -An -tx1 | tr -d ' \n'
    " 2>/dev/null) || return 1
    [[ $first == 01 ]]
}

diagnose() {
    log "what the broker and the machine say:"
    df -h / /tmp /var/lib/rabbitmq 2>/dev/null | sed 's/^/  /' >&2 || true
    if command -v rabbitmq-diagnostics >/dev/null; then
        timeout 30 rabbitmq-diagnostics -q alarms 2>&1 | sed 's/^/  alarms: /' >&2 || true
        timeout 30 rabbitmq-diagnostics -q check_running 2>&1 | sed 's/^/  running: /' >&2 || true
    fi
    local logfile
    for logfile in /var/log/rabbitmq/rabbit@*.log; do
        [[ -f $logfile && $logfile != *upgrade* ]] || continue
        log "last lines of $logfile:"
        tail -n 20 "$logfile" | sed 's/^/  /' >&2 || true
    done
}

wait_until_ready() {
    local i
    for ((i = 0; i < WAIT; i++)); do
        check && return 0
        sleep 1
    done
    return 1
}

ensure() {
    check && return 0
    log "the broker at $HOST:$PORT does not answer the AMQP handshake"
    diagnose
    # Its app stopped (a run ended between `stop_app` and `start_app`), or the node is down.
    if timeout 60 rabbitmqctl start_app >/dev/null 2>&1 && wait_until_ready; then
        log "the broker's app was started again"
        return 0
    fi
    log "restarting the broker node"
    timeout 60 rabbitmqctl stop >/dev/null 2>&1 || true
    rabbitmq-server -detached >/dev/null 2>&1 || true
    if wait_until_ready; then
        log "the broker answers again"
        return 0
    fi
    log "the broker still does not answer after ${WAIT}s"
    diagnose
    return 1
}

case ${1:-} in
    check) check ;;
    ensure) ensure ;;
    diagnose) diagnose ;;
    *) echo "usage: $0 ensure | check | diagnose" >&2; exit 2 ;;
esac
