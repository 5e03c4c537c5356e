"""Demonstration datasets in robomimic's HDF5 layout, plus the suite's domain attributes.

File layout: `data/demo_K/obs/<key>` (T, n) per layout key, `data/demo_K/next_obs/<key>` (the
observation one step later; the last step repeats its own, since the episode's final observation is
not kept; stored as HDF5 virtual datasets over `obs`, so they take no room), `data/demo_K/actions`
(T, 7), `rewards` (T,), `dones` (T,), `data/demo_K.attrs["num_samples"]`, `["episode_seed"]`;
`mask/train` and `mask/valid`: robomimic's filter keys, a split of the demo names (`split_demos`);
`data.attrs`: `env_args` (JSON, robomimic), `total`, and the suite's `pair`, `pair_version`,
`domain`, `gaps` (JSON list of [name, magnitude]), `magnitude`, `layout` (JSON list of
[key, size]), `layout_version`, `backend` (the simulation backend that ran the episodes),
`expert`, `expert_noise`, `seed`, `tried`, `kept`. Image datasets add
`data/demo_K/obs/<camera>` (T, H, W, 3) uint8, gzip-compressed in chunks of 16 frames (and its
`next_obs` view), and `data.attrs["image_keys"]` (JSON list of camera keys).

robomimic 0.3.0's `SequenceDataset` reads these files with its default settings (`load_next_obs=True`,
`filter_by_attribute` "train" or "valid"). There are no `states` (MuJoCo states): robomimic's playback
and observation-extraction scripts cannot replay the demos. `env_args` names the robosuite
environment (`env_name`, type 1) but its `env_kwargs` are the suite's (pair, domain, magnitude), not
robosuite constructor arguments: robomimic cannot rebuild the environment from it (its
`EnvRobosuite` also needs mujoco_py and robosuite < 1.5). The gap factors and the `fast` backend exist
only in the suite: `tasks.make_env(pair, domain, magnitude, backend=...)` rebuilds the environment
that made a file from its `pair`, `domain`, `magnitude` and `backend` attributes.
Files written before `next_obs` and `mask` were added read the same through `load_dataset`;
`cotrain demos export --from OLD --format robomimic --out NEW` rewrites one in full.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from common.dataset import Dataset, DatasetError, Layout

IMAGE_GZIP_LEVEL = 4
IMAGE_CHUNK_FRAMES = 16  # consecutive frames compress together: about 3.6x smaller files than one frame per chunk
VALID_FRACTION = 0.1  # demos in robomimic's "valid" filter key
SPLIT_SEED = 0


def _split(flat: np.ndarray, layout: Layout) -> dict[str, np.ndarray]:
    out, i = {}, 0
    for key, n in layout:
        out[key] = flat[:, i:i + n]
        i += n
    return out


def split_demos(n_demos: int) -> tuple[list[int], list[int]]:
    """robomimic's train/valid split of demo indices: a permutation seeded with SPLIT_SEED; the first
    round(VALID_FRACTION * n) (at least one where there are two demos or more) are "valid", the rest
    "train"; both sorted. The same count always gives the same split."""
    n_valid = max(1, round(VALID_FRACTION * n_demos)) if n_demos > 1 else 0
    order = np.random.default_rng(SPLIT_SEED).permutation(n_demos)
    return sorted(int(i) for i in order[n_valid:]), sorted(int(i) for i in order[:n_valid])


def _add_next_obs(demo: h5py.Group, key: str) -> None:
    """`next_obs/<key>`: a virtual dataset over `obs/<key>` shifted by one step, the last step repeated."""
    obs = demo[f"obs/{key}"]
    source = h5py.VirtualSource(".", obs.name, shape=obs.shape, dtype=obs.dtype)  # ".": this same file
    layout = h5py.VirtualLayout(shape=obs.shape, dtype=obs.dtype)
    layout[:-1] = source[1:]
    layout[-1:] = source[-1:]
    demo.create_virtual_dataset(f"next_obs/{key}", layout)


def write_dataset(path: str | Path, dataset: Dataset, overwrite: bool = True) -> Path:
    """Write atomically (temporary file, then rename): an interruption leaves no partial file.

    overwrite: replace a file at `path`; False: raise FileExistsError instead (checked atomically when the
    file is put in place). A set without demos raises DatasetError (`load_dataset` could not read it back)."""
    path = Path(path)
    if not dataset.n_demos:
        raise DatasetError(f"{path}: no demos to write (a file without demos cannot be read back)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w") as f:
            data = f.create_group("data")
            total = 0
            for i, (obs, act) in enumerate(zip(dataset.obs, dataset.actions)):
                demo = data.create_group(f"demo_{i}")
                for key, arr in _split(obs, dataset.layout).items():
                    demo.create_dataset(f"obs/{key}", data=arr)
                for key, frames in dataset.images.items():
                    chunks = (min(len(frames[i]), IMAGE_CHUNK_FRAMES), *frames[i].shape[1:])
                    demo.create_dataset(f"obs/{key}", data=frames[i], chunks=chunks, compression="gzip",
                                        compression_opts=IMAGE_GZIP_LEVEL)
                for key in demo["obs"]:
                    _add_next_obs(demo, key)
                demo.create_dataset("actions", data=act)
                rew = dataset.rewards[i] if dataset.rewards else np.zeros(len(act))
                demo.create_dataset("rewards", data=rew)
                dones = np.zeros(len(act), dtype=np.int64)
                dones[-1] = 1
                demo.create_dataset("dones", data=dones)
                demo.attrs["num_samples"] = len(act)
                if dataset.episode_seeds:
                    demo.attrs["episode_seed"] = dataset.episode_seeds[i]
                total += len(act)
            data.attrs["total"] = total
            for name, indices in zip(("train", "valid"), split_demos(dataset.n_demos)):
                f.create_dataset(f"mask/{name}", data=np.array([f"demo_{i}" for i in indices], dtype="S"))
            for key, value in dataset.attrs.items():
                data.attrs[key] = json.dumps(value) if isinstance(value, (dict, list, tuple)) else value
            data.attrs["layout"] = json.dumps([list(k) for k in dataset.layout])
            if dataset.images:
                data.attrs["image_keys"] = json.dumps(list(dataset.images))
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails, leaving `path` alone, where a file is already there
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    return value


def load_dataset(path: str | Path, layout: Layout | None = None) -> Dataset:
    """Read a dataset file (the suite's, or a plain robomimic file with the layout's keys).

    layout: the expected layout; defaults to the one the file records. Missing keys or
    mismatched sizes raise `DatasetError` naming the file, demo and key.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset not found: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise DatasetError(f"{path}: not a readable HDF5 file ({err})") from None
    with f:
        if "data" not in f:
            raise DatasetError(f"{path}: no 'data' group (not a robomimic-layout file)")
        data = f["data"]
        attrs = {k: _attr(v) for k, v in data.attrs.items()}
        recorded = tuple((k, int(n)) for k, n in attrs.pop("layout", []))
        layout = tuple((k, int(n)) for k, n in layout) if layout is not None else recorded
        if not layout:
            raise DatasetError(f"{path}: the file records no layout; pass the expected one")
        if recorded and recorded != layout:
            raise DatasetError(f"{path}: layout {recorded} does not match the expected {layout}")
        names = sorted((k for k in data if k.startswith("demo_")), key=lambda k: int(k.split("_")[1]))
        obs, actions, rewards, seeds = [], [], [], []
        images: dict[str, list[np.ndarray]] = {key: [] for key in attrs.pop("image_keys", [])}
        for name in names:
            demo = data[name]
            cols = []
            for key, n in layout:
                if f"obs/{key}" not in demo:
                    raise DatasetError(f"{path}: {name} has no observation key {key!r}")
                arr = np.asarray(demo[f"obs/{key}"], dtype=np.float32).reshape(len(demo["actions"]), -1)
                if arr.shape[1] != n:
                    raise DatasetError(f"{path}: {name}/obs/{key} has size {arr.shape[1]}, expected {n}")
                cols.append(arr)
            obs.append(np.concatenate(cols, axis=1))
            actions.append(np.asarray(demo["actions"], dtype=np.float32))
            rewards.append(np.asarray(demo["rewards"]) if "rewards" in demo else np.zeros(len(actions[-1])))
            if "episode_seed" in demo.attrs:
                seeds.append(int(demo.attrs["episode_seed"]))
            for key, frames in images.items():
                if f"obs/{key}" not in demo:
                    raise DatasetError(f"{path}: {name} has no image key {key!r}")
                frames.append(np.asarray(demo[f"obs/{key}"], dtype=np.uint8))
    if not obs:
        raise DatasetError(f"{path}: no demos")
    return Dataset(obs, actions, layout, attrs, rewards, seeds, images)
