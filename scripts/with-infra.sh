#!/usr/bin/env bash
# Runs a command with the local Temporal and MongoDB-wire servers up. Servers that were already running are reused and
# left running; the ones this script started are stopped when the command ends, whatever its outcome.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/infra/common.sh"
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

temporal_was_up=0; mongo_was_up=0
port_open "$TEMPORAL_HOST" "$TEMPORAL_PORT" && temporal_was_up=1
{ [ -n "${MONGODB_URI:-}" ] || port_open 127.0.0.1 "$MONGO_PORT"; } && mongo_was_up=1

cleanup() {
  [ "$temporal_was_up" = 1 ] || bash "$here/infra/down.sh" temporal
  [ "$mongo_was_up" = 1 ] || bash "$here/infra/down.sh" mongo
}
trap cleanup EXIT
trap 'exit 130' INT TERM

TEMPORAL_EPHEMERAL="${TEMPORAL_EPHEMERAL:-1}" bash "$here/infra/up.sh" || exit 1
export TEMPORAL_ADDRESS="${TEMPORAL_ADDRESS:-$TEMPORAL_HOST:$TEMPORAL_PORT}"
export MONGODB_URI="${MONGODB_URI:-mongodb://127.0.0.1:$MONGO_PORT}"
export SAGE_SYNC_TEMPORAL_UI="http://$TEMPORAL_HOST:$TEMPORAL_UI_PORT"
"$@"
