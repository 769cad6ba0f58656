#!/usr/bin/env bash
# Builds the pinned Temporal CLI (dev server) and FerretDB (MongoDB wire protocol on PostgreSQL) into a cache outside
# the checkout. Idempotent: a binary already in the cache is reused. See ../shared/infra.md for why each step exists.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/common.sh"

TEMPORAL_CLI_VERSION="v1.5.1"   # later tags carry a go.mod `replace` that `go install pkg@version` refuses
# The CLI v1.5.1 (server 1.29.1) pulls modernc.org/sqlite v1.34.1, whose dev server under load ends up failing every
# persistence call with "interrupted (9)" (SQLITE_INTERRUPT) until restarted. Temporal fixed it by moving to v1.44.3
# (temporalio/temporal PR #9198; cznic/sqlite issue 241). We build the same CLI with that sqlite; libc follows sqlite's go.mod.
SQLITE_VERSION="v1.44.3"
FERRETDB_VERSION="v1.24.2"      # the two patches below are written against this exact source

need_go() {
  command -v go >/dev/null 2>&1 || die "Go toolchain not found: install Go >= 1.22 (e.g. 'apt-get install golang' or from go.dev) or put a 'temporal' binary on PATH / in TEMPORAL_CLI"
}

need_disk() {
  local avail_kb
  avail_kb=$(df -Pk "$CACHE_DIR" | awk 'NR==2 {print $4}')
  [ "${avail_kb:-0}" -gt 2000000 ] || die "less than 2 GB free under $CACHE_DIR: free disk space or set SAGE_SYNC_CACHE to another folder"
}

install_temporal() {
  if [ -n "${TEMPORAL_CLI:-}" ]; then [ -x "$TEMPORAL_CLI" ] || die "TEMPORAL_CLI=$TEMPORAL_CLI is not an executable"; return; fi
  if command -v temporal >/dev/null 2>&1 && [ "$(command -v temporal)" != "$BIN_DIR/temporal" ]; then return; fi
  # The stamp names the sqlite the cached binary was built with: a binary from before the sqlite bump (no stamp) is rebuilt.
  local stamp="$BIN_DIR/temporal.sqlite-$SQLITE_VERSION"
  [ -x "$BIN_DIR/temporal" ] && [ -f "$stamp" ] && return
  need_go; need_disk
  log "building Temporal CLI $TEMPORAL_CLI_VERSION with modernc.org/sqlite $SQLITE_VERSION into $BIN_DIR (once, about 2-4 minutes)"
  # `go install pkg@version` cannot change a dependency, so a tiny generated module requires the CLI and the newer sqlite.
  local work="$CACHE_DIR/src/temporal-cli-$TEMPORAL_CLI_VERSION-sqlite-$SQLITE_VERSION"
  rm -rf "$work"; mkdir -p "$work"
  cat > "$work/go.mod" <<EOF
module sagesync.local/temporal-build

go 1.24

require (
    github.com/temporalio/cli $TEMPORAL_CLI_VERSION
    modernc.org/sqlite $SQLITE_VERSION
)
EOF
  printf '//go:build tools\n\npackage tools\n\nimport (\n\t_ "github.com/temporalio/cli/cmd/temporal"\n\t_ "modernc.org/sqlite"\n)\n' > "$work/tools.go"
  (cd "$work" && GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod tidy) || die "go mod tidy for the Temporal CLI build failed (see above)"
  # Fail loudly if MVS did not end on the sqlite we asked for (e.g. the CLI started to require a newer one).
  (cd "$work" && GOTOOLCHAIN=local GOFLAGS=-mod=mod go list -m modernc.org/sqlite) | grep -qx "modernc.org/sqlite $SQLITE_VERSION" \
    || die "Temporal CLI build module did not resolve modernc.org/sqlite to $SQLITE_VERSION"
  (cd "$work" && GOTOOLCHAIN=local GOFLAGS=-mod=mod go build -o "$BIN_DIR/temporal.tmp" github.com/temporalio/cli/cmd/temporal) \
    || die "Temporal CLI build failed (see above)"
  mv "$BIN_DIR/temporal.tmp" "$BIN_DIR/temporal"
  rm -f "$BIN_DIR"/temporal.sqlite-*; touch "$stamp"
  [ -x "$BIN_DIR/temporal" ] || die "Temporal CLI build finished but $BIN_DIR/temporal is missing"
}

# Replace exactly one occurrence of a text in a file, or fail loudly (the pinned source changed under us).
patch_once() {
  local file="$1" from="$2" to="$3"
  python3 - "$file" "$from" "$to" <<'PY'
import sys
path, old, new = sys.argv[1], sys.argv[2], sys.argv[3]
src = open(path).read()
n = src.count(old)
if n != 1:
    sys.exit(f"patch target found {n} times (expected 1) in {path}: FerretDB source is not the pinned one")
open(path, "w").write(src.replace(old, new))
PY
}

install_ferretdb() {
  [ -x "$BIN_DIR/ferretdb" ] && return
  need_go; need_disk
  log "building FerretDB $FERRETDB_VERSION (patched) into $BIN_DIR (once, about 1-2 minutes)"
  GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod download "github.com/FerretDB/FerretDB@$FERRETDB_VERSION"
  local src; src="$(go env GOMODCACHE)/github.com/!ferret!d!b/!ferret!d!b@$FERRETDB_VERSION"
  local work="$CACHE_DIR/src/ferretdb-$FERRETDB_VERSION"
  rm -rf "$work"; mkdir -p "$(dirname "$work")"; cp -r "$src" "$work"; chmod -R u+w "$work"
  echo "$FERRETDB_VERSION" > "$work/build/version/version.txt"

  # Fix 1: bulk updates deadlock once a command holds more backend connections than the pool has (defer in a loop).
  patch_once "$work/internal/handler/msg_update.go" \
$'\t\tcloser := iterator.NewMultiCloser()\n\t\tdefer closer.Close()\n' \
$'\t\tcloser := iterator.NewMultiCloser()\n'
  patch_once "$work/internal/handler/msg_update.go" \
$'\t\tresult, err := common.UpdateDocument(ctx, c, "update", iter, &u)\n' \
$'\t\tresult, err := common.UpdateDocument(ctx, c, "update", iter, &u)\n\t\tcloser.Close()\n'

  # Fix 2: equality on a string/ObjectID _id becomes a plain `_id` column comparison, which the _id index serves.
  patch_once "$work/internal/backends/postgresql/query.go" \
$'\t\tcase float64, string, types.ObjectID, bool, time.Time, int32, int64:\n' \
$'\t\tcase float64, string, types.ObjectID, bool, time.Time, int32, int64:\n\t\t\tif rootKey == "_id" {\n\t\t\t\tswitch v.(type) {\n\t\t\t\tcase string, types.ObjectID:\n\t\t\t\t\tfilters = append(filters, metadata.IDColumn+" = "+p.Next())\n\t\t\t\t\targs = append(args, string(must.NotFail(sjson.MarshalSingleValue(v))))\n\t\t\t\t\tcontinue\n\t\t\t\t}\n\t\t\t}\n'
  (cd "$work" && GOTOOLCHAIN=local go build -o "$BIN_DIR/ferretdb.tmp" ./cmd/ferretdb) || die "FerretDB build failed (see above)"
  mv "$BIN_DIR/ferretdb.tmp" "$BIN_DIR/ferretdb"
}

install_postgres_check() {
  command -v initdb >/dev/null 2>&1 || [ -x /usr/lib/postgresql/15/bin/initdb ] || {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      log "PostgreSQL not found: installing Debian's postgresql package"
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    else
      die "PostgreSQL (initdb, pg_ctl) not found: install it (Debian: apt-get install postgresql) or set MONGODB_URI"
    fi
  }
}

mkdir -p "$BIN_DIR"
case "${1:-all}" in
  temporal) install_temporal ;;
  ferretdb) install_postgres_check; install_ferretdb ;;
  all) install_temporal; if [ -z "${MONGODB_URI:-}" ] && ! command -v mongod >/dev/null 2>&1; then install_postgres_check; install_ferretdb; fi ;;
  *) die "usage: install.sh [all|temporal|ferretdb]" ;;
esac
