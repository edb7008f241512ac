#!/usr/bin/env bash
# The project's checks: lint (ruff, snakemake --lint), then the tests.
#   bash scripts/check.sh          lint + the fast tier (plain pytest, a few minutes)
#   bash scripts/check.sh --all    lint + every tier (what .ci/run runs)
# Extra arguments go to pytest (e.g. -x, -k name).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
MARK=()
if [ "${1:-}" = "--all" ]; then MARK=(-m ""); shift; fi
start=$(date +%s)
echo "== ruff"
$PY -m ruff check --output-format concise .
echo "== snakemake --lint"
lint=$($PY -m snakemake --lint 2>&1) || { echo "$lint"; exit 1; }
if grep -q "Lints for" <<<"$lint"; then echo "$lint"; exit 1; fi
echo "clean"
echo "== pytest ${MARK[*]:-(fast tier)}"
$PY -m pytest "${MARK[@]}" --durations=15 tests "$@"
echo "checks took $(( $(date +%s) - start )) s"
