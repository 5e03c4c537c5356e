#!/usr/bin/env bash
# Install (./.venv) and run the quick benchmark: every method on one pair, one seed.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/cotrain quickstart "$@"
