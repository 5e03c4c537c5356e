#!/usr/bin/env bash
# Install (./.venv) and run the default test suite; pass pytest arguments through (e.g. -m slow).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
