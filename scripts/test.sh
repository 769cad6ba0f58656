#!/usr/bin/env bash
# `npm test`: type-checks and lints, then runs the whole suite with Node's test runner against a real Temporal dev server and a
# real MongoDB-wire server (started here unless already running). `npm test unit` runs only the fast unit tests;
# `npm run test:faults` runs the full fault suite (FAULTS=full).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mode="${1:-all}"
shopt -s nullglob globstar

npx tsc -p tsconfig.json --noEmit
# Lint (typescript-eslint, small rule set in eslint.config.js) and format check (Prettier): fast enough for every run.
npx eslint .
npx prettier --check . >/dev/null || { npx prettier --list-different .; echo 'formatting differs: run npm run format' >&2; exit 1; }

case "$mode" in
  unit) files=(test/unit/**/*.test.ts) ;;
  # The full fault forms are long by design (worker-kills: 50 SIGKILLs, ~750 s alone on 2 cores): 30 min per test there.
  faults) export FAULTS=full TEST_TIMEOUT_MS="${TEST_TIMEOUT_MS:-1800000}"; files=(test/faults/**/*.test.ts) ;;
  all) files=(test/unit/**/*.test.ts test/integration/**/*.test.ts test/faults/**/*.test.ts) ;;
  *) echo "usage: scripts/test.sh [all|unit|faults]" >&2; exit 2 ;;
esac
[ ${#files[@]} -gt 0 ] || { echo "no test files found for mode $mode" >&2; exit 1; }

run() {
  node --import tsx --test --test-reporter=spec --test-concurrency=1 --test-timeout="${TEST_TIMEOUT_MS:-900000}" "${files[@]}"
}
if [ "$mode" = unit ]; then run; else
  # One workflow bundle for every test process, instead of each test file bundling on its own.
  export WORKFLOW_BUNDLE_PATH="${WORKFLOW_BUNDLE_PATH:-$PWD/test-output/workflow-bundle.js}"
  mkdir -p test-output
  node --import tsx scripts/build-workflow-bundle.ts "$WORKFLOW_BUNDLE_PATH"
  bash scripts/with-infra.sh bash -c "$(declare -f run); files=($(printf '%q ' "${files[@]}")); run"
fi
