# Shared settings for the infra scripts. Every path and port can be overridden so two runs can coexist.
CACHE_DIR="${SAGE_SYNC_CACHE:-$HOME/.cache/sage-sync}"
BIN_DIR="$CACHE_DIR/bin"
# PostgreSQL refuses to run as root and cannot enter /root (mode 700), so data lives under /var/tmp by default.
DATA_DIR="${SAGE_SYNC_DATA:-/var/tmp/sage-sync}"
TEMPORAL_HOST="${TEMPORAL_HOST:-127.0.0.1}"
TEMPORAL_PORT="${TEMPORAL_PORT:-7233}"
TEMPORAL_UI_PORT="${TEMPORAL_UI_PORT:-8233}"
MONGO_PORT="${MONGO_PORT:-27017}"
PG_PORT="${PG_PORT:-54329}"
FERRET_DEBUG_PORT="${FERRET_DEBUG_PORT:-$((MONGO_PORT + 1000))}"
CODEC_ENDPOINT="${CODEC_ENDPOINT:-${PUBLIC_BASE_URL:-http://localhost:${PORT:-3000}}/codec}"
RUN_DIR="$DATA_DIR/run"
export PATH="$BIN_DIR:/usr/lib/postgresql/15/bin:$PATH"

log() { printf '[infra] %s\n' "$*" >&2; }
die() { printf '[infra] error: %s\n' "$*" >&2; exit 1; }
