#!/usr/bin/env bash
# Stops exactly what up.sh started (by recorded pid, never by name). Safe to run twice.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/common.sh"

stop_pid_file() {
  local f="$1"; [ -f "$f" ] || return 0
  local pid; pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    log "stopping $(basename "$f" .pid) (pid $pid)"
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && { kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; }
  fi
  rm -f "$f"
}

# `down.sh` stops everything of ours; `down.sh temporal` or `down.sh mongo` stops only that one.
what="${1:-all}"
[ "$what" = all ] || [ "$what" = temporal ] && stop_pid_file "$RUN_DIR/temporal-$TEMPORAL_PORT.pid"
[ "$what" = all ] || [ "$what" = mongo ] && stop_pid_file "$RUN_DIR/mongo-$MONGO_PORT.pid"
if { [ "$what" = all ] || [ "$what" = mongo ]; } && [ -f "$RUN_DIR/postgres-$PG_PORT.started" ]; then
  log "stopping PostgreSQL on $PG_PORT"
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- pg_ctl -D "$DATA_DIR/pg-$PG_PORT" -m fast -w stop >/dev/null 2>&1 || true
  else pg_ctl -D "$DATA_DIR/pg-$PG_PORT" -m fast -w stop >/dev/null 2>&1 || true; fi
  rm -f "$RUN_DIR/postgres-$PG_PORT.started"
fi
