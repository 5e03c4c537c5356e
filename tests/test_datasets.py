"""Demo generation, dataset round trips, and the `tasks` / `demos` commands' bad inputs."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from benchmark.cli import main
from benchmark.harness.config import RunConfig
from benchmark.harness.run import ensure_demos
from tasks import GAP_FACTORS, GapFactor, custom_pair, get_pair, obs_layout
from common.dataset import Dataset, DatasetError
from tasks.dataset import load_dataset, write_dataset
from tasks.demos import generate_demos
from tasks.seeds import episode_seeds


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("demos") / "lift_target.hdf5"
    generate_demos("lift/dynamics", "target", 1.0, 3, seed=2, out=path, progress=False)
    return path


def test_generated_file_has_robomimic_layout_and_domain_attributes(demo_file):
    with h5py.File(demo_file) as f:
        data = f["data"]
        assert sorted(data) == ["demo_0", "demo_1", "demo_2"]
        demo = data["demo_0"]
        for key, size in obs_layout("lift"):
            assert demo[f"obs/{key}"].shape[1] == size
        assert demo["actions"].shape[1] == 7
        assert demo["dones"][-1] == 1 and demo["rewards"][-1] == 1
        assert "env_args" in data.attrs and data.attrs["domain"] == "target"
        assert data.attrs["tried"] >= 3 and data.attrs["kept"] == 3
    data = load_dataset(demo_file)
    assert data.n_demos == 3 and data.domain == "target"
    assert data.attrs["gaps"][0][0] == "object_friction"
    assert set(data.episode_seeds) <= set(episode_seeds("target_demos", 2, 100))


def test_round_trip_is_exact(demo_file, tmp_path):
    data = load_dataset(demo_file)
    again = load_dataset(write_dataset(tmp_path / "copy.hdf5", data))
    for a, b in zip(data.obs + data.actions, again.obs + again.actions):
        np.testing.assert_array_equal(a, b)
    assert again.attrs == data.attrs and again.episode_seeds == data.episode_seeds


def test_demos_are_diverse_and_reproducible(demo_file, tmp_path):
    data = load_dataset(demo_file)
    assert not np.allclose(data.actions[0][:10], data.actions[1][:10])
    again = load_dataset(generate_demos("lift/dynamics", "target", 1.0, 3, seed=2, out=tmp_path / "b.hdf5",
                                        progress=False))
    np.testing.assert_array_equal(np.concatenate(data.obs), np.concatenate(again.obs))


def test_loader_names_missing_and_mismatched_keys(demo_file, tmp_path):
    with pytest.raises(DatasetError, match="does not match the expected"):
        load_dataset(demo_file, layout=obs_layout("stack"))
    plain = tmp_path / "plain.hdf5"  # a plain robomimic file: no recorded layout
    with h5py.File(plain, "w") as f:
        f.create_dataset("data/demo_0/obs/eef_pos", data=np.zeros((4, 3)))
        f.create_dataset("data/demo_0/actions", data=np.zeros((4, 7)))
    with pytest.raises(DatasetError, match="demo_0 has no observation key 'cubeA_pos'"):
        load_dataset(plain, layout=(("eef_pos", 3), ("cubeA_pos", 3)))
    assert load_dataset(plain, layout=(("eef_pos", 3),)).obs_dim == 3
    bad = tmp_path / "bad.hdf5"
    with h5py.File(bad, "w") as f:
        f.create_dataset("data/demo_0/obs/eef_pos", data=np.zeros((4, 2)))
        f.create_dataset("data/demo_0/actions", data=np.zeros((4, 7)))
    with pytest.raises(DatasetError, match="eef_pos has size 2, expected 3"):
        load_dataset(bad, layout=(("eef_pos", 3),))
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(tmp_path / "missing.hdf5")


def test_interrupted_write_leaves_no_file(tmp_path):
    layout = obs_layout("lift")
    data = Dataset([np.zeros((3, sum(n for _, n in layout)), np.float32)], [np.zeros((3, 7), np.float32)], layout)
    data.obs.append("not an array")  # the second demo fails halfway through the write
    data.actions.append(np.zeros((3, 7), np.float32))
    with pytest.raises(Exception):
        write_dataset(tmp_path / "x.hdf5", data)
    assert list(tmp_path.iterdir()) == []


def test_demo_cache_is_keyed_by_what_made_the_demos(tmp_path):
    made = {}
    for backend in ("robosuite", "fast"):
        cfg = RunConfig(pair="lift/dynamics", method="cotrain", profile="smoke", backend=backend)
        made[backend] = ensure_demos(tmp_path, cfg, "target", 1, "target_demos", progress=False)
        assert load_dataset(made[backend]).attrs["backend"] == backend  # the env that ran says so
    assert made["robosuite"] != made["fast"]
    toy = {ensure_demos(tmp_path, RunConfig(pair="toy/shift", method="cotrain", profile="smoke", backend=backend),
                        "target", 2, "target_demos", progress=False) for backend in ("robosuite", "fast")}
    assert len(toy) == 1  # no simulator makes the toy's demos: the backend is not part of their key


def test_custom_pair_and_bad_factors():
    pair = custom_pair("lift", [GapFactor("object_mass", 0.5), "obs_bias"])
    assert [g.name for g in pair.target.gaps] == ["object_mass", "obs_bias"]
    with pytest.raises(KeyError, match="unknown gap factor 'gravity'.*object_mass"):
        custom_pair("lift", ["gravity"])
    with pytest.raises(ValueError, match="outside"):
        GapFactor("object_mass", 1.5)
    with pytest.raises(ValueError, match="outside"):
        get_pair("lift/dynamics").domain("target", -0.1)


@pytest.mark.parametrize("argv,message", [
    (["--pair", "lift/nope"], "unknown task pair 'lift/nope'; known: lift/action"),
    (["--magnitude", "2"], "outside [0, 1]"),
    (["--count", "-1"], "--count (demos to generate) must be >= 1, got -1"),
    (["--count", "0"], "--count (demos to generate) must be >= 1, got 0"),
    (["--out", "{file}/x.hdf5"], "cannot write"),
])
def test_demos_command_bad_input(argv, message, tmp_path, capsys):
    (tmp_path / "file").write_text("a file, not a folder")
    base = {"--pair": "lift/dynamics", "--domain": "target", "--magnitude": "1", "--count": "1",
            "--out": str(tmp_path / "out.hdf5")}
    for flag, value in zip(argv[::2], argv[1::2]):
        base[flag] = value.format(file=tmp_path / "file")
    args = ["demos", "generate", "--quiet"] + [x for kv in base.items() for x in kv]
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.hdf5").exists()


def test_demos_command_replaces_a_file_only_with_overwrite(tmp_path, capsys):
    out = tmp_path / "demos.hdf5"
    out.write_bytes(b"someone's file")
    args = ["demos", "generate", "--quiet", "--pair", "lift/dynamics", "--domain", "target", "--count", "1",
            "--out", str(out)]
    assert main(args) == 2
    assert f"{out} exists (pass overwrite=True / --overwrite to replace it)" in capsys.readouterr().err
    assert out.read_bytes() == b"someone's file"
    assert main(args + ["--overwrite"]) == 0
    assert load_dataset(out).n_demos == 1


def test_writer_refuses_an_empty_set_and_a_file_it_may_not_replace(demo_file, tmp_path):
    data = load_dataset(demo_file)
    with pytest.raises(DatasetError, match="no demos to write"):
        write_dataset(tmp_path / "empty.hdf5", data.select([]))
    (tmp_path / "kept.hdf5").write_bytes(b"kept")
    with pytest.raises(FileExistsError):
        write_dataset(tmp_path / "kept.hdf5", data, overwrite=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.hdf5"]
    assert (tmp_path / "kept.hdf5").read_bytes() == b"kept"
    assert load_dataset(write_dataset(tmp_path / "kept.hdf5", data)).n_demos == data.n_demos  # overwrite=True


def test_tasks_commands(capsys):
    assert main(["tasks", "list"]) == 0
    out = capsys.readouterr().out
    assert "lift/dynamics" in out and "square/embodiment" in out
    assert main(["tasks", "show", "lift/embodiment"]) == 0
    out = capsys.readouterr().out
    assert "categorical (0 or 1 only)" in out and "Sawyer" in out
    assert main(["tasks", "show", "lift/sensing"]) == 0
    steps = GAP_FACTORS["obs_latency"].max_steps
    assert f"step-valued: round(m x {steps}) steps" in capsys.readouterr().out
    assert main(["tasks", "show", "nope"]) == 2
