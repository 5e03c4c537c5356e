#!/usr/bin/env bash
# Install (./.venv) and run the default test suite on two worker processes (pytest-xdist); pass pytest
# arguments through (e.g. -m slow, or -n 0 for one process).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python -m pytest -q -n 2 "$@"
