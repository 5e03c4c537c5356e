#!/usr/bin/env bash
# Create ./.venv (Python 3.10+) and install the suite with its pinned dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# Optional system packages: offscreen rendering for image pairs (MuJoCo through EGL; osmesa as the fallback)
# and Chromium for the leaderboard page's headless browser test.
GL_PACKAGES="libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6"
BROWSER_PACKAGES="chromium"
if command -v dpkg >/dev/null && ! dpkg -s $GL_PACKAGES $BROWSER_PACKAGES >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $GL_PACKAGES $BROWSER_PACKAGES >/dev/null
  else
    echo "note: install $GL_PACKAGES for image observations (rendering)" \
      "and $BROWSER_PACKAGES for the leaderboard page's browser test" >&2
  fi
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip >/dev/null
.venv/bin/pip install -q -c constraints.txt -e ./robot -e ".[test]"
# robomimic for the dataset-format test (its SequenceDataset reads the suite's demo files), without its
# dependencies: they pull a torchvision that does not import beside the suite's torch, and SequenceDataset
# imports only what the suite already has (torch, h5py, numpy, tqdm, termcolor).
.venv/bin/pip install -q --no-deps robomimic==0.3.0
