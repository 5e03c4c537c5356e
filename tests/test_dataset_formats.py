"""Demo files in the field's formats: robomimic's own SequenceDataset reads them with its default settings,
and LeRobot v3.0 export (checked against the documented layout with pyarrow) reads back unchanged."""
from __future__ import annotations

import json
import re
import shutil

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from robomimic.utils.dataset import SequenceDataset

from benchmark.cli import main
from common.dataset import Dataset, DatasetError
from tasks.dataset import load_dataset, split_demos
from tasks.demos import generate_demos
from tasks.env import CONTROL_FREQ
from tasks.lerobot import read_demos, read_lerobot, write_lerobot

LOWDIM_STATS = ("min", "max", "mean", "std", "q01", "q10", "q50", "q90", "q99")


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("formats") / "lift_target.hdf5"
    return generate_demos("lift/dynamics", "target", 1.0, 3, seed=1, out=path, progress=False, backend="fast")


def _robomimic_demos(path, keys, filter_key):
    """Each demo robomimic's SequenceDataset yields (defaults but the required arguments and the filter key):
    name -> (obs (T, D), next_obs (T, D), actions (T, 7))."""
    ds = SequenceDataset(str(path), obs_keys=keys, dataset_keys=("actions", "rewards", "dones"),
                         filter_by_attribute=filter_key)
    out = {}
    for name in ds.demos:
        start, length = ds._demo_id_to_start_indices[name], ds._demo_id_to_demo_length[name]
        items = [ds[start + t] for t in range(length)]
        out[name] = tuple(np.concatenate([np.stack([it[part][k][0] for it in items]) for k in keys], axis=1)
                          for part in ("obs", "next_obs")) + (np.stack([it["actions"][0] for it in items]),)
    return out


def test_robomimic_sequence_dataset_reads_the_suite_files_with_its_defaults(demo_file):
    data = load_dataset(demo_file)
    keys = [k for k, _ in data.layout]
    train, valid = (_robomimic_demos(demo_file, keys, f) for f in ("train", "valid"))
    assert [sorted(int(n[5:]) for n in d) for d in (train, valid)] == list(split_demos(3))
    assert len(valid) == 1 and len(train) == 2
    for name, (obs, next_obs, actions) in {**train, **valid}.items():
        i = int(name[5:])
        np.testing.assert_array_equal(obs, data.obs[i])
        np.testing.assert_array_equal(actions, data.actions[i])
        np.testing.assert_array_equal(next_obs, np.concatenate([data.obs[i][1:], data.obs[i][-1:]]))
    with h5py.File(demo_file) as f:
        env_args = json.loads(f["data"].attrs["env_args"])
        assert env_args["env_name"] == "Lift" and f["data"].attrs["total"] == sum(len(a) for a in data.actions)


def test_split_is_seeded_and_covers_every_demo():
    for n in (1, 2, 10, 25):
        train, valid = split_demos(n)
        assert sorted(train + valid) == list(range(n)) and (train, valid) == split_demos(n)
        assert len(valid) == (0 if n == 1 else max(1, round(0.1 * n)))


def test_an_older_file_exports_to_a_complete_robomimic_file(demo_file, tmp_path, capsys):
    old = shutil.copy(demo_file, tmp_path / "old.hdf5")
    with h5py.File(old, "a") as f:  # as files were written before next_obs and the filter keys
        del f["mask"]
        for name in f["data"]:
            del f[f"data/{name}/next_obs"]
    data = load_dataset(old)
    assert main(["demos", "export", "--from", str(old), "--format", "robomimic", "--out", str(tmp_path / "new.hdf5")]) == 0
    keys = [k for k, _ in data.layout]
    demos = _robomimic_demos(tmp_path / "new.hdf5", keys, None)
    assert sorted(demos) == ["demo_0", "demo_1", "demo_2"]
    np.testing.assert_array_equal(demos["demo_2"][2], data.actions[2])
    again = load_dataset(tmp_path / "new.hdf5")
    assert again.attrs == data.attrs and all(np.array_equal(a, b) for a, b in zip(again.obs, data.obs))


def _arrow_type(feature: dict) -> pa.DataType:
    """The documented feature -> column mapping: shape [1] a scalar, [n] a fixed-size list, "image" PNG bytes."""
    if feature["dtype"] == "image":
        return pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    scalar = pa.from_numpy_dtype(np.dtype(feature["dtype"]))
    return scalar if feature["shape"] == [1] else pa.list_(scalar, feature["shape"][0])


def test_lerobot_export_follows_the_v3_layout(demo_file, tmp_path):
    data = load_dataset(demo_file)
    root = write_lerobot(data, tmp_path / "lerobot")
    info = json.loads((root / "meta/info.json").read_text())
    lengths = [len(a) for a in data.actions]
    assert info["codebase_version"] == "v3.0" and info["fps"] == CONTROL_FREQ
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, sum(lengths), 1)
    assert info["splits"] == {"train": "0:3"} and info["video_path"] is None
    features = info["features"]
    for name, dtype in {"timestamp": "float32", "frame_index": "int64", "episode_index": "int64", "index": "int64",
                        "task_index": "int64"}.items():
        assert features[name] == {"dtype": dtype, "shape": [1], "names": None}
    assert features["observation.state"]["shape"] == [data.obs_dim] and features["action"]["shape"] == [7]
    assert features["observation.state"]["names"][:3] == ["eef_pos.0", "eef_pos.1", "eef_pos.2"]
    data_file = root / info["data_path"].format(chunk_index=0, file_index=0)
    assert data_file == root / "data/chunk-000/file-000.parquet"
    schema = pq.read_schema(data_file)
    assert set(schema.names) == set(features)
    for name, feature in features.items():
        assert schema.field(name).type == _arrow_type(feature), name
    table = pq.read_table(data_file).to_pydict()
    np.testing.assert_array_equal(table["index"], np.arange(sum(lengths)))
    np.testing.assert_allclose(table["timestamp"], np.asarray(table["frame_index"]) / CONTROL_FREQ, rtol=1e-6)
    episodes = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pydict()
    assert episodes["episode_index"] == [0, 1, 2] and episodes["length"] == lengths
    assert episodes["dataset_to_index"] == list(np.cumsum(lengths))
    assert episodes["dataset_from_index"] == [0] + list(np.cumsum(lengths)[:-1])
    for column in ("data/chunk_index", "data/file_index", "meta/episodes/chunk_index", "meta/episodes/file_index"):
        assert episodes[column] == [0, 0, 0]
    assert episodes["stats/action/count"] == [[t] for t in lengths]
    tasks = pq.read_table(root / "meta/tasks.parquet").to_pydict()
    assert tasks["task_index"] == [0] and episodes["tasks"] == [tasks["task"]] * 3
    stats = json.loads((root / "meta/stats.json").read_text())
    assert set(stats) == set(features)
    for stat in LOWDIM_STATS:
        assert len(stats["observation.state"][stat]) == data.obs_dim and len(stats["action"][stat]) == 7
    np.testing.assert_allclose(stats["action"]["mean"], np.concatenate(data.actions).mean(0), rtol=1e-5, atol=1e-7)
    assert stats["index"]["count"] == [sum(lengths)]


def test_lerobot_round_trip_gives_the_same_demos(demo_file, tmp_path, capsys):
    data = load_dataset(demo_file)
    assert main(["demos", "export", "--from", str(demo_file), "--format", "lerobot", "--out", str(tmp_path / "lr")]) == 0
    again = read_demos(tmp_path / "lr")
    assert again.layout == data.layout and again.attrs == data.attrs and again.episode_seeds == data.episode_seeds
    for a, b in zip(data.obs + data.actions + data.rewards, again.obs + again.actions + again.rewards):
        np.testing.assert_array_equal(a, b)
    assert main(["demos", "export", "--from", str(demo_file), "--out", str(tmp_path / "lr")]) == 2
    assert "exists (pass overwrite=True / --overwrite to replace it)" in capsys.readouterr().err
    assert main(["demos", "export", "--from", str(demo_file), "--pair", "stack/dynamics",
                 "--out", str(tmp_path / "other")]) == 2
    assert "holds pair 'lift/dynamics' demos, not --pair 'stack/dynamics'" in capsys.readouterr().err
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match="not a LeRobot dataset"):
        write_lerobot(data, tmp_path / "plain", overwrite=True)


def test_a_foreign_lerobot_dataset_reads_as_target_demos_with_images(tmp_path):
    rng = np.random.default_rng(0)
    data = Dataset([rng.normal(size=(t, 3)).astype(np.float32) for t in (4, 2)],
                   [rng.normal(size=(t, 2)).astype(np.float32) for t in (4, 2)], (("a", 2), ("b", 1)),
                   images={"cam": [rng.integers(0, 256, (t, 6, 5, 3), dtype=np.uint8) for t in (4, 2)]})
    root = write_lerobot(data, tmp_path / "lr")
    (root / "meta/cotrain_bench.json").unlink()  # as a dataset made elsewhere
    again = read_lerobot(root)
    assert again.layout == data.layout and again.domain == "target" and again.episode_seeds == []
    for a, b in zip(data.obs + data.actions + data.images["cam"], again.obs + again.actions + again.images["cam"]):
        np.testing.assert_array_equal(a, b)
    stats = json.loads((root / "meta/stats.json").read_text())["observation.images.cam"]
    assert np.asarray(stats["mean"]).shape == (3, 1, 1) and 0 <= np.min(stats["min"]) <= np.max(stats["max"]) <= 1


@pytest.mark.parametrize("corrupt,message", [
    ("no_action_feature", "meta/info.json declares no feature 'action'"),
    ("old_version", "codebase_version 'v2.1', expected 'v3.0'"),
    ("no_action_column", "data files have no column 'action' (declared in meta/info.json)"),
    ("wrong_action_dims", "column 'action' has shape [7] per frame, meta/info.json declares [6]"),
    ("wrong_layout", "feature 'observation.state' has 22 dims, the layout (('x', 3),) has 3"),
])
def test_a_mismatched_lerobot_dataset_is_refused_by_name(demo_file, tmp_path, corrupt, message):
    root = write_lerobot(load_dataset(demo_file), tmp_path / "lr")
    info_path, data_file = root / "meta/info.json", root / "data/chunk-000/file-000.parquet"
    info = json.loads(info_path.read_text())
    layout = None
    if corrupt == "no_action_feature":
        del info["features"]["action"]
    elif corrupt == "old_version":
        info["codebase_version"] = "v2.1"
    elif corrupt == "no_action_column":
        pq.write_table(pq.read_table(data_file).drop_columns(["action"]), data_file)
    elif corrupt == "wrong_action_dims":
        info["features"]["action"]["shape"] = [6]
    else:
        layout = (("x", 3),)
    info_path.write_text(json.dumps(info))
    with pytest.raises(DatasetError, match=re.escape(message)):
        read_lerobot(root, layout)
