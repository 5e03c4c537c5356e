"""The session's episode file: every episode as a demonstration in robomimic's HDF5 layout, the layout
of cotrain-bench's datasets (its `tasks.dataset.load_dataset` reads the file).

`data/demo_K/obs/<key>` (T, n) float32 per layout key, `actions` (T, A) float32 as sent, `rewards` (T,)
(1 at the last step of a successful episode), `dones` (T,) (1 at the last step),
`demo_K.attrs["num_samples"]` and `["episode_seed"]` (when every episode has one); `data.attrs`:
`total`, `layout` (JSON list of [key, size]) and the session's attributes (dicts and lists as JSON).
Needs h5py (the `policy` extra).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .runner import Episode


def write_episodes(path: str | Path, layout: tuple[tuple[str, int], ...], episodes: list[Episode],
                   attrs: dict[str, Any]) -> int:
    """Write the episodes that have at least one step (atomically: a temporary file, then a rename), with
    `attrs` (None values left out) and one summary per episode in `data.attrs["episodes"]`; returns how many."""
    import h5py

    kept = [ep for ep in episodes if ep.length]
    if not kept:
        return 0
    path = Path(path)
    with_seeds = all(ep.seed is not None for ep in kept)
    file_attrs = {**{k: v for k, v in attrs.items() if v is not None},
                  "episodes": [ep.summary() | {"steps_in_file": ep.length} for ep in kept]}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w") as f:
            data = f.create_group("data")
            for i, ep in enumerate(kept):
                demo = data.create_group(f"demo_{i}")
                obs, offset = np.asarray(ep.obs, np.float32), 0
                for key, size in layout:
                    demo.create_dataset(f"obs/{key}", data=obs[:, offset:offset + size])
                    offset += size
                demo.create_dataset("actions", data=np.asarray(ep.actions, np.float32))
                rewards = np.zeros(ep.length, np.float32)
                rewards[-1] = float(bool(ep.success))
                demo.create_dataset("rewards", data=rewards)
                dones = np.zeros(ep.length, np.int64)
                dones[-1] = 1
                demo.create_dataset("dones", data=dones)
                demo.attrs["num_samples"] = ep.length
                if with_seeds:
                    demo.attrs["episode_seed"] = int(ep.seed)
            data.attrs["total"] = sum(ep.length for ep in kept)
            for key, value in file_attrs.items():
                data.attrs[key] = json.dumps(value) if isinstance(value, (dict, list, tuple)) else value
            data.attrs["layout"] = json.dumps([list(k) for k in layout])
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return len(kept)
