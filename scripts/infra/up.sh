#!/usr/bin/env bash
# Starts (or reuses) the local Temporal dev server and a MongoDB-wire server. Idempotent; records the pids it started
# in $RUN_DIR so down.sh stops exactly those. Prints `export` lines on stdout for callers that want the addresses.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/common.sh"
mkdir -p "$RUN_DIR"

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_for() { # wait_for <what> <seconds> <command...>; on timeout prints the tail of the newest log in $RUN_DIR
  local what="$1" secs="$2"; shift 2
  local deadline=$((SECONDS + secs))
  until "$@"; do
    if [ $SECONDS -ge $deadline ]; then
      local latest; latest="$(ls -t "$RUN_DIR"/*.log 2>/dev/null | head -n 1)"
      [ -n "$latest" ] && { log "last lines of $latest:"; tail -n 20 "$latest" >&2; }
      die "$what did not become ready within ${secs}s (logs in $RUN_DIR)"
    fi
    sleep 0.5
  done
}

temporal_bin() {
  if [ -n "${TEMPORAL_CLI:-}" ]; then echo "$TEMPORAL_CLI"; elif command -v temporal >/dev/null 2>&1; then command -v temporal; else echo "$BIN_DIR/temporal"; fi
}

start_temporal() {
  if port_open "$TEMPORAL_HOST" "$TEMPORAL_PORT"; then log "Temporal already listening on $TEMPORAL_HOST:$TEMPORAL_PORT, reusing it"; return; fi
  bash "$here/install.sh" temporal
  local bin; bin="$(temporal_bin)"
  mkdir -p "$DATA_DIR/temporal"
  # Test runs start from an empty in-memory server (TEMPORAL_EPHEMERAL=1) so no earlier run's schedules or timers linger.
  local db_args=(--db-filename "$DATA_DIR/temporal/temporal-$TEMPORAL_PORT.db")
  [ "${TEMPORAL_EPHEMERAL:-0}" = 1 ] && db_args=()
  log "starting Temporal dev server on $TEMPORAL_HOST:$TEMPORAL_PORT (UI :$TEMPORAL_UI_PORT)"
  setsid "$bin" server start-dev --ip "$TEMPORAL_HOST" --port "$TEMPORAL_PORT" --ui-port "$TEMPORAL_UI_PORT" \
    "${db_args[@]}" \
    --search-attribute TenantId=Keyword --search-attribute SageProvider=Keyword --search-attribute ConnectionState=Keyword \
    --ui-codec-endpoint "$CODEC_ENDPOINT" --log-level warn \
    >"$RUN_DIR/temporal-$TEMPORAL_PORT.log" 2>&1 < /dev/null &
  echo $! > "$RUN_DIR/temporal-$TEMPORAL_PORT.pid"
  wait_for "Temporal" 60 "$bin" operator cluster health --address "$TEMPORAL_HOST:$TEMPORAL_PORT" >/dev/null 2>&1
  # The namespace and search attributes are registered asynchronously after SERVING; wait until they are visible.
  wait_for "Temporal search attributes" 60 bash -c "'$bin' operator search-attribute list --address '$TEMPORAL_HOST:$TEMPORAL_PORT' 2>/dev/null | grep -q ConnectionState"
}

pg_run() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

start_postgres() {
  local dir="$DATA_DIR/pg-$PG_PORT"
  if pg_run pg_ctl -D "$dir" status >/dev/null 2>&1; then return; fi
  if [ ! -f "$dir/PG_VERSION" ]; then
    mkdir -p "$dir"; [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir" "$DATA_DIR"
    pg_run initdb -D "$dir" -U postgres -A trust >/dev/null
  fi
  # fsync=off: this is a throwaway dev/test cluster; never use these settings for data you want to keep.
  log "starting PostgreSQL for FerretDB on 127.0.0.1:$PG_PORT"
  pg_run pg_ctl -D "$dir" -l "$dir/log" -w -t 60 -o "-p $PG_PORT -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" start >/dev/null
  touch "$RUN_DIR/postgres-$PG_PORT.started"
  pg_run psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='ferretdb'" | grep -q 1 \
    || pg_run createdb -h 127.0.0.1 -p "$PG_PORT" -U postgres ferretdb
}

start_mongo() {
  if [ -n "${MONGODB_URI:-}" ]; then log "MONGODB_URI is set, using it as is"; return; fi
  if port_open 127.0.0.1 "$MONGO_PORT"; then log "a MongoDB-wire server already listens on 127.0.0.1:$MONGO_PORT, reusing it"; return; fi
  if command -v mongod >/dev/null 2>&1; then
    mkdir -p "$DATA_DIR/mongod-$MONGO_PORT"
    log "starting mongod on 127.0.0.1:$MONGO_PORT"
    setsid mongod --bind_ip 127.0.0.1 --port "$MONGO_PORT" --dbpath "$DATA_DIR/mongod-$MONGO_PORT" \
      >"$RUN_DIR/mongo-$MONGO_PORT.log" 2>&1 < /dev/null &
    echo $! > "$RUN_DIR/mongo-$MONGO_PORT.pid"
  else
    bash "$here/install.sh" ferretdb
    start_postgres
    mkdir -p "$DATA_DIR/ferretdb-$MONGO_PORT"
    # One retry: a FerretDB that exits during start-up (e.g. its debug port was taken meanwhile) gets a second chance
    # with the debug listener on a kernel-chosen port.
    local attempt
    for attempt in 1 2; do
      log "starting FerretDB (PostgreSQL backend) on 127.0.0.1:$MONGO_PORT"
      setsid "$BIN_DIR/ferretdb" --handler=postgresql --postgresql-url="postgres://postgres@127.0.0.1:$PG_PORT/ferretdb" \
        --listen-addr="127.0.0.1:$MONGO_PORT" --debug-addr="127.0.0.1:$FERRET_DEBUG_PORT" \
        --state-dir="$DATA_DIR/ferretdb-$MONGO_PORT" --telemetry=disable --log-level=warn \
        >"$RUN_DIR/mongo-$MONGO_PORT.log" 2>&1 < /dev/null &
      local pid=$!
      echo "$pid" > "$RUN_DIR/mongo-$MONGO_PORT.pid"
      local deadline=$((SECONDS + 60))
      while ! port_open 127.0.0.1 "$MONGO_PORT" && kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
      port_open 127.0.0.1 "$MONGO_PORT" && return
      if ! kill -0 "$pid" 2>/dev/null; then
        log "FerretDB exited during start-up:"; tail -n 20 "$RUN_DIR/mongo-$MONGO_PORT.log" >&2
        # Its own port taken by another process: waiting cannot help, and the caller should pick another port.
        grep -q "127.0.0.1:$MONGO_PORT.*address already in use" "$RUN_DIR/mongo-$MONGO_PORT.log" \
          && die "port $MONGO_PORT is taken by another process; FerretDB cannot listen there"
      fi
      kill -TERM -- "-$pid" 2>/dev/null || true
      FERRET_DEBUG_PORT=0
    done
  fi
  wait_for "MongoDB-wire server" 60 port_open 127.0.0.1 "$MONGO_PORT"
}

# `up.sh [temporal|mongo]`: one server only (a test's separate FerretDB must never bring up a Temporal of its own on the
# shared port when that one happens to be down: it would live on with a data directory the test deletes).
what="${1:-all}"
case "$what" in all|temporal|mongo) ;; *) die "usage: up.sh [temporal|mongo]" ;; esac
[ "$what" = mongo ] || start_temporal
[ "$what" = temporal ] || start_mongo
log "ready: Temporal $TEMPORAL_HOST:$TEMPORAL_PORT (UI http://$TEMPORAL_HOST:$TEMPORAL_UI_PORT), MongoDB ${MONGODB_URI:-mongodb://127.0.0.1:$MONGO_PORT}"
