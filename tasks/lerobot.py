"""Demonstrations in Hugging Face LeRobot's dataset layout, codebase version v3.0: write and read.

`write_lerobot(dataset, root)` writes, in one chunk and one file each:
- `meta/info.json`: `codebase_version` "v3.0", `fps` (the control rate), `features`, the totals,
  `chunks_size`, `data_files_size_in_mb`, `video_files_size_in_mb`, the `data_path` template,
  `video_path` null (no videos), `splits` {"train": "0:N"}, `robot_type` null.
- `data/chunk-000/file-000.parquet`: one row per step: `observation.state` (float32, the flat
  layout; names `<key>.<j>`), `action` (float32), `next.reward` (float32), `next.done` (bool),
  `timestamp` (float32, frame_index / fps), `frame_index`, `episode_index`, `index`, `task_index`
  (int64); image datasets add `observation.images.<camera>` (dtype "image": PNG bytes).
- `meta/episodes/chunk-000/file-000.parquet`: one row per episode: `episode_index`, `tasks`,
  `length`, `data/chunk_index`, `data/file_index`, `dataset_from_index`, `dataset_to_index`,
  `meta/episodes/chunk_index`, `meta/episodes/file_index`, `stats/<feature>/<stat>`.
- `meta/tasks.parquet`: the task description (index "task") and its `task_index`.
- `meta/stats.json`: per feature min, max, mean, std, count and the q01..q99 quantiles (image
  features per channel, in [0, 1], shape (3, 1, 1)).
- `meta/cotrain_bench.json`: the suite's attributes, layout and episode seeds (LeRobot ignores it).

`read_lerobot(root)` reads such a dataset back as the suite's `Dataset` (a dataset written elsewhere
needs `observation.state` and `action`; it is read as target demos), and names what does not match.
"""
from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from common.dataset import Dataset, DatasetError, Layout

from .base_tasks import BASE_TASKS
from .env import CONTROL_FREQ

CODEBASE_VERSION = "v3.0"
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
SUITE_META = "meta/cotrain_bench.json"
QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
STATE, ACTION, IMAGE_PREFIX = "observation.state", "action", "observation.images."
INDEX_FEATURES = {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64", "index": "int64",
                  "task_index": "int64"}


def _feature(dtype: str, shape: tuple[int, ...], names: list[str] | None = None) -> dict[str, Any]:
    return {"dtype": dtype, "shape": list(shape), "names": names}


def _stats(values: np.ndarray, image: bool) -> dict[str, np.ndarray]:
    """LeRobot's statistics of one feature over frames (images: per channel, scaled to [0, 1])."""
    x = values.astype(np.float64)
    if image:  # (N, H, W, C) -> (N * H * W, C); results shaped (C, 1, 1)
        x = x.reshape(-1, x.shape[-1]) / 255.0
    elif x.ndim == 1:
        x = x[:, None]
    out = {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0),
           **{name: np.quantile(x, q, axis=0) for name, q in QUANTILES.items()}}
    if image:
        out = {k: v[:, None, None] for k, v in out.items()}
    return out | {"count": np.array([len(values)])}


def _png(frame: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG")
    return buf.getvalue()


def _column(values: np.ndarray, dtype: str) -> pa.Array:
    """One column of `values` (N,) or (N, n): a scalar column for shape (1,), else a fixed-size list."""
    kind = pa.from_numpy_dtype(np.dtype(dtype))
    if values.ndim == 1:
        return pa.array(values, type=kind)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), type=kind), values.shape[1])


def task_description(attrs: dict[str, Any]) -> str:
    """The natural-language task of a demo set: its base task's description, else its pair's name."""
    base = attrs.get("base_task")
    return BASE_TASKS[base].description if base in BASE_TASKS.names() else str(attrs.get("pair", "demonstrations"))


def write_lerobot(dataset: Dataset, root: str | Path, overwrite: bool = False) -> Path:
    """Write `dataset` as a LeRobot v3.0 dataset folder at `root` (built aside, then moved in place).

    overwrite: replace an existing LeRobot dataset at `root` (a folder with meta/info.json). An existing
    `root` without it, or any other existing path, raises ValueError."""
    root = Path(root)
    if not dataset.n_demos:
        raise DatasetError(f"{root}: no demos to write")
    if root.exists() and not overwrite:
        raise ValueError(f"{root} exists (pass overwrite=True / --overwrite to replace it)")
    if root.exists() and not (root / "meta" / "info.json").is_file():
        raise ValueError(f"{root} exists and is not a LeRobot dataset (no meta/info.json): it is not replaced")
    lengths = [len(a) for a in dataset.actions]
    n = sum(lengths)
    frame_index = np.concatenate([np.arange(t) for t in lengths])
    episode_index = np.repeat(np.arange(dataset.n_demos), lengths)
    done = np.concatenate([np.arange(t) == t - 1 for t in lengths])
    rewards = [np.asarray(r, np.float32) for r in dataset.rewards] or [np.zeros(t, np.float32) for t in lengths]
    names = [f"{key}.{j}" for key, size in dataset.layout for j in range(size)]
    columns: dict[str, tuple[np.ndarray, dict[str, Any]]] = {
        STATE: (np.concatenate(dataset.obs).astype(np.float32), _feature("float32", (dataset.obs_dim,), names)),
        ACTION: (np.concatenate(dataset.actions).astype(np.float32),
                 _feature("float32", (dataset.action_dim,), [f"action.{j}" for j in range(dataset.action_dim)])),
        "next.reward": (np.concatenate(rewards), _feature("float32", (1,))),
        "next.done": (done, _feature("bool", (1,))),
        "timestamp": ((frame_index / CONTROL_FREQ).astype(np.float32), _feature("float32", (1,))),
        "frame_index": (frame_index, _feature("int64", (1,))),
        "episode_index": (episode_index, _feature("int64", (1,))),
        "index": (np.arange(n), _feature("int64", (1,))),
        "task_index": (np.zeros(n, np.int64), _feature("int64", (1,))),
    }
    for key, frames in dataset.images.items():
        columns[IMAGE_PREFIX + key] = (np.concatenate(frames), _feature(
            "image", frames[0].shape[1:], ["height", "width", "channels"]))
    features = {name: feature for name, (_, feature) in columns.items()}
    arrays = {}
    for name, (values, feature) in columns.items():
        if feature["dtype"] == "image":
            arrays[name] = pa.array([{"bytes": _png(f), "path": None} for f in values],
                                    type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
        else:
            arrays[name] = _column(values, feature["dtype"])

    def stats_of(rows: slice) -> dict[str, dict[str, np.ndarray]]:
        return {name: _stats(values[rows], feature["dtype"] == "image") for name, (values, feature) in columns.items()}

    ends = np.cumsum(lengths)
    episodes: dict[str, list] = {
        "episode_index": list(range(dataset.n_demos)), "tasks": [[task_description(dataset.attrs)]] * dataset.n_demos,
        "length": lengths, "data/chunk_index": [0] * dataset.n_demos, "data/file_index": [0] * dataset.n_demos,
        "dataset_from_index": [int(e - t) for e, t in zip(ends, lengths)], "dataset_to_index": [int(e) for e in ends],
        "meta/episodes/chunk_index": [0] * dataset.n_demos, "meta/episodes/file_index": [0] * dataset.n_demos}
    for end, t in zip(ends, lengths):
        for name, stats in stats_of(slice(end - t, end)).items():
            for stat, value in stats.items():
                episodes.setdefault(f"stats/{name}/{stat}", []).append(value.tolist())
    info = {
        "codebase_version": CODEBASE_VERSION, "robot_type": None, "total_episodes": dataset.n_demos,
        "total_frames": n, "total_tasks": 1, "chunks_size": 1000, "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 200, "fps": CONTROL_FREQ, "splits": {"train": f"0:{dataset.n_demos}"},
        "data_path": DATA_PATH, "video_path": None, "features": features,
    }
    suite = {"attrs": dataset.attrs, "layout": [list(k) for k in dataset.layout],
             "episode_seeds": list(dataset.episode_seeds)}
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = root.with_name(f".{root.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        (tmp / "meta").mkdir(parents=True)
        data_file = tmp / DATA_PATH.format(chunk_index=0, file_index=0)
        data_file.parent.mkdir(parents=True)
        pq.write_table(pa.table(arrays), data_file)
        (tmp / EPISODES_PATH).parent.mkdir(parents=True)
        pq.write_table(pa.table(episodes), tmp / EPISODES_PATH)
        tasks = pd.DataFrame({"task_index": [0]}, index=pd.Index([task_description(dataset.attrs)], name="task"))
        tasks.to_parquet(tmp / "meta" / "tasks.parquet")
        stats = {name: {k: v.tolist() for k, v in s.items()} for name, s in stats_of(slice(0, n)).items()}
        for name, content in (("info.json", info), ("stats.json", stats), (Path(SUITE_META).name, suite)):
            (tmp / "meta" / name).write_text(json.dumps(content, indent=2))
        if root.exists():
            shutil.rmtree(root)
        tmp.rename(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def _load_info(root: Path) -> dict[str, Any]:
    path = root / "meta" / "info.json"
    if not path.is_file():
        raise DatasetError(f"{root}: not a LeRobot dataset (no meta/info.json)")
    info = json.loads(path.read_text())
    version = info.get("codebase_version")
    if version != CODEBASE_VERSION:
        raise DatasetError(f"{root}: codebase_version {version!r}, expected {CODEBASE_VERSION!r} (convert older "
                           "datasets with lerobot's convert_dataset_v21_to_v30)")
    features = info.get("features", {})
    for name in (STATE, ACTION, *INDEX_FEATURES):
        if name not in features:
            raise DatasetError(f"{root}: meta/info.json declares no feature {name!r}")
    for name in (STATE, ACTION):
        shape = features[name].get("shape")
        if not (isinstance(shape, list) and len(shape) == 1):
            raise DatasetError(f"{root}: feature {name!r} has shape {shape}, expected one dimension [n]")
    return info


def _layout(root: Path, features: dict[str, Any], suite: dict[str, Any], layout: Layout | None) -> Layout:
    """The expected layout, else the one the suite recorded, else one parsed from the state's `<key>.<j>`
    names, else the whole state as one key; its size must equal the state's dimension."""
    dim = int(features[STATE]["shape"][0])
    names = features[STATE].get("names")
    if layout is None and suite.get("layout"):
        layout = tuple((k, int(n)) for k, n in suite["layout"])
    if layout is None and isinstance(names, list) and len(names) == dim and all("." in str(n) for n in names):
        keys = [str(n).rsplit(".", 1)[0] for n in names]
        layout = tuple((k, keys.count(k)) for k in dict.fromkeys(keys))
    layout = tuple((k, int(n)) for k, n in layout) if layout is not None else ((STATE, dim),)
    if sum(n for _, n in layout) != dim:
        raise DatasetError(f"{root}: feature {STATE!r} has {dim} dims, the layout {layout} has "
                           f"{sum(n for _, n in layout)}")
    return layout


def read_lerobot(root: str | Path, layout: Layout | None = None) -> Dataset:
    """Read a LeRobot v3.0 dataset folder as the suite's `Dataset` (see the module docstring).

    layout: the expected observation layout (its total size must be the state's dimension). Raises
    DatasetError naming the mismatch: no info.json, another codebase version, a missing feature or
    column, or dimensions that differ from what info.json declares."""
    root = Path(root)
    info = _load_info(root)
    features = info["features"]
    suite_path = root / SUITE_META
    suite = json.loads(suite_path.read_text()) if suite_path.is_file() else {}
    layout = _layout(root, features, suite, layout)
    files = sorted((root / "data").glob("*/*.parquet"))
    if not files:
        raise DatasetError(f"{root}: no data files (data/chunk-*/file-*.parquet)")
    table = pa.concat_tables([pq.read_table(f) for f in files])
    arrays: dict[str, np.ndarray] = {}
    for name, feature in features.items():
        if feature.get("dtype") == "video":
            raise DatasetError(f"{root}: feature {name!r} is a video; only parquet-stored features are read")
        if name not in table.column_names:
            raise DatasetError(f"{root}: data files have no column {name!r} (declared in meta/info.json)")
        column = table.column(name).combine_chunks()
        if feature["dtype"] == "image":
            arrays[name] = np.stack([np.asarray(Image.open(io.BytesIO(v["bytes"]))) for v in column.to_pylist()])
        elif pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type):
            flat = column.flatten().to_numpy(zero_copy_only=False)
            if len(flat) % max(len(column), 1):
                raise DatasetError(f"{root}: column {name!r} has rows of different lengths")
            arrays[name] = flat.reshape(len(column), -1).astype(feature["dtype"])
        else:
            arrays[name] = column.to_numpy(zero_copy_only=False)
        shape = tuple(int(s) for s in feature["shape"])
        got = arrays[name].shape[1:] or (1,)
        if got != shape:
            raise DatasetError(f"{root}: column {name!r} has shape {list(got)} per frame, meta/info.json "
                               f"declares {list(shape)}")
    order = np.lexsort((arrays["frame_index"], arrays["episode_index"]))
    episode = arrays["episode_index"][order]
    starts = np.flatnonzero(np.r_[True, episode[1:] != episode[:-1]])
    bounds = list(zip(starts, np.r_[starts[1:], len(order)]))

    def split(values: np.ndarray, dtype: Any) -> list[np.ndarray]:
        values = values[order]
        return [np.asarray(values[a:b], dtype=dtype) for a, b in bounds]

    rewards = split(arrays["next.reward"], np.float32) if "next.reward" in arrays else []
    images = {name[len(IMAGE_PREFIX):]: split(values, np.uint8) for name, values in arrays.items()
              if features[name]["dtype"] == "image" and name.startswith(IMAGE_PREFIX)}
    attrs = suite.get("attrs") or {"domain": "target", "fps": info.get("fps")}
    return Dataset(split(arrays[STATE], np.float32), split(arrays[ACTION], np.float32), layout, attrs, rewards,
                   [int(s) for s in suite.get("episode_seeds", [])], images)


def read_demos(path: str | Path) -> Dataset:
    """Demos from a suite or robomimic HDF5 file, or from a LeRobot v3.0 dataset folder."""
    from .dataset import load_dataset

    return read_lerobot(path) if Path(path).is_dir() else load_dataset(path)


def export_demos(dataset: Dataset, fmt: str, out: str | Path, overwrite: bool = False) -> Path:
    """Write `dataset` as `fmt`: "robomimic" (the suite's HDF5 file, complete for robomimic's
    `SequenceDataset`) or "lerobot" (a LeRobot v3.0 folder). An existing `out` is replaced only with
    `overwrite` (ValueError otherwise)."""
    from .dataset import write_dataset
    from .demos import check_output_path

    out = Path(out)
    if out.exists() and not overwrite:
        raise ValueError(f"{out} exists (pass overwrite=True / --overwrite to replace it)")
    if fmt == "lerobot":
        return write_lerobot(dataset, out, overwrite=overwrite)
    if fmt == "robomimic":
        return write_dataset(check_output_path(out), dataset)
    raise ValueError(f"unknown demo format {fmt!r}; known: robomimic, lerobot")
