#!/usr/bin/env bash
# Optional check, outside the default tests: the real `lerobot` package's LeRobotDataset reads a LeRobot v3.0
# export of the suite's demos, frame for frame. It builds its own virtual environment ($LEROBOT_VENV, by
# default ~/.cache/cotrain-bench/lerobot-venv), where pip installs lerobot with torch, torchvision and the
# Hugging Face stack: several GB on the first run. Needs ./.venv (./scripts/setup.sh). Reads local files
# only (HF_HUB_OFFLINE=1).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${LEROBOT_VENV:-$HOME/.cache/cotrain-bench/lerobot-venv}
LEROBOT_VERSION=${LEROBOT_VERSION:-0.4.4}  # the first release line with LeRobotDataset v3.0 is 0.4
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
if [ ! -x "$VENV/bin/python" ]; then
  mkdir -p "$(dirname "$VENV")"
  "${PYTHON:-python3}" -m venv "$VENV"
fi
"$VENV/bin/pip" install -q "lerobot==$LEROBOT_VERSION"
.venv/bin/cotrain demos generate --quiet --pair lift/dynamics --domain target --count 2 --out "$WORK/demos.hdf5"
.venv/bin/cotrain demos export --from "$WORK/demos.hdf5" --format lerobot --out "$WORK/lerobot"
.venv/bin/python - "$WORK" <<'PY'
import sys
from pathlib import Path

import numpy as np

from tasks.dataset import load_dataset

work = Path(sys.argv[1])
data = load_dataset(work / "demos.hdf5")
np.savez(work / "expected.npz", state=np.concatenate(data.obs), action=np.concatenate(data.actions),
         episode=np.repeat(np.arange(data.n_demos), [len(a) for a in data.actions]))
PY
HF_HUB_OFFLINE=1 "$VENV/bin/python" - "$WORK" <<'PY'
import sys
from pathlib import Path

import numpy as np
from importlib.metadata import version

from lerobot.datasets.lerobot_dataset import LeRobotDataset

work = Path(sys.argv[1])
expected = np.load(work / "expected.npz")
ds = LeRobotDataset("cotrain-bench/check", root=work / "lerobot")
assert ds.num_frames == len(expected["action"]), (ds.num_frames, len(expected["action"]))
assert ds.num_episodes == int(expected["episode"].max()) + 1
for i in range(ds.num_frames):
    item = ds[i]
    np.testing.assert_array_equal(item["observation.state"].numpy(), expected["state"][i])
    np.testing.assert_array_equal(item["action"].numpy(), expected["action"][i])
    assert int(item["episode_index"]) == expected["episode"][i]
print(f"lerobot {version('lerobot')}: LeRobotDataset read {ds.num_episodes} episodes, "
      f"{ds.num_frames} frames, identical to the suite's demo file")
PY
