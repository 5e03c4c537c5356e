"""Policy export: the bundle's two formats reproduce the PyTorch policy, load without the training or
simulation code, and a failed check leaves no bundle behind."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from baselines import PolicyConfig, load_checkpoint, make_windows
from baselines.build import build_policy
from benchmark.cli import main as cli_main
from benchmark.deploy.export import ExportError, SamplingGraph, export_bundle
from cotrain_robot.bundle import BUNDLE_VERSION, BundleError, load_bundle, read_spec
from cotrain_robot.session import bundle_test_seeds
from tasks import obs_layout
from tasks.base_tasks import LAYOUT_VERSION
from tasks.seeds import episode_seeds

TOLERANCE = 1e-4


def _histories(target, n_obs_steps: int, count: int, seed: int) -> np.ndarray:
    obs = make_windows(target, n_obs_steps, 1).obs
    return obs[np.random.default_rng(seed).choice(len(obs), count, replace=False)]


def test_policy_json_describes_the_bundle(smoke_bundle):
    spec = read_spec(smoke_bundle["bundle"])
    config = json.loads((smoke_bundle["run_dir"] / "config.json").read_text())
    method = load_checkpoint(smoke_bundle["run_dir"] / "checkpoint")
    pcfg = method.policy.config
    layout = obs_layout("lift")
    assert [(e["key"], e["size"]) for e in spec["observation"]["layout"]] == list(layout)
    units = {e["key"]: e["unit"] for e in spec["observation"]["layout"]}
    assert units["eef_pos"] == "m" and "rot6d" in units["eef_rot6d"] and "[0, 1]" in units["gripper"]
    assert "rot6d" in units["cube_rot6d"] and spec["observation"]["layout_version"] == LAYOUT_VERSION
    assert spec["observation"]["n_obs_steps"] == pcfg.n_obs_steps
    assert spec["observation"]["robot_base_position_world"] == pytest.approx([-0.56, 0.0, 0.912])
    assert spec["action"]["low"] == [-1.0] * 7 and spec["action"]["high"] == [1.0] * 7
    assert spec["action"]["position_scale_m"] > 0 and spec["action"]["layout"][6]["name"] == "gripper"
    assert spec["chunk"] == {**spec["chunk"], "horizon": pcfg.horizon, "n_action_steps": pcfg.n_action_steps}
    assert spec["sampling"]["num_inference_steps"] == len(spec["sampling"]["timesteps"]) == pcfg.num_inference_steps
    assert spec["conditioning"]["domain_token"] == 1 and spec["conditioning"]["guidance"] == method.hparams["guidance"]
    assert len(spec["normalizer"]["obs"]["center"]) == pcfg.obs_dim
    prov = spec["provenance"]
    assert prov["run_id"] == config["run_id"] and prov["method"] == smoke_bundle["method"]
    assert prov["suite_version"] == config["suite_version"] and prov["pair"] == "lift/dynamics"
    assert prov["finished"] and prov["checkpoint_step"] == prov["total_steps"] == config["profile_size"]["steps"]
    assert spec["onnx"]["opset"] == 18
    assert bundle_test_seeds(spec, 3, 4) == episode_seeds("test", 3, 4)  # an arm session's default start states
    check = spec["check"]
    assert "replay" in check["observations"] and check["samples"] > 0
    assert set(check["max_abs_diff"]) == {"onnx", "torch"}
    assert all(0 <= v <= TOLERANCE for v in check["max_abs_diff"].values())
    assert all((smoke_bundle["bundle"] / f).is_file() for f in spec["files"].values())


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_both_formats_match_pytorch_on_new_observations(smoke_bundle, backend):
    method = load_checkpoint(smoke_bundle["run_dir"] / "checkpoint")
    pcfg = method.policy.config
    obs = _histories(smoke_bundle["target"], pcfg.n_obs_steps, 6, seed=1)
    noise = np.random.default_rng(7).standard_normal((6, pcfg.horizon, pcfg.action_dim)).astype(np.float32)
    with torch.inference_mode():
        reference = method.sample(obs, "target", noise=noise)
    policy = load_bundle(smoke_bundle["bundle"], backend, num_threads=1)
    batched = policy.act(obs, noise)  # the batch dimension is dynamic
    single = np.stack([policy.act_chunk(o, n) for o, n in zip(obs, noise)])
    assert batched.shape == single.shape == (6, pcfg.horizon, pcfg.action_dim)
    assert np.abs(batched - reference).max() <= TOLERANCE
    assert np.abs(single - reference).max() <= TOLERANCE
    with pytest.raises(ValueError, match="expects"):
        policy.act(obs[:, :1], noise)


@pytest.mark.parametrize("embedding,domain,guidance", [(False, None, None), (True, 1, None), (True, 1, -0.5),
                                                       (True, 0, 1.5)])
def test_sampling_graph_is_the_policys_sampler(embedding, domain, guidance):
    torch.manual_seed(0)
    dim = sum(n for _, n in obs_layout("lift"))
    cfg = PolicyConfig(obs_dim=dim, action_dim=7, width=32, depth=2, z_dim=8, encoder_hidden=32,
                       domain_embedding=embedding)
    rng = np.random.default_rng(0)
    policy = build_policy(cfg, rng.normal(size=(50, 2, dim)), rng.normal(size=(50, 16, 7)), seed=0).eval()
    obs, noise = torch.randn(4, 2, dim), torch.randn(4, 16, 7)
    graph = SamplingGraph(policy, domain, guidance or 0.0)
    with torch.inference_mode():
        expected = policy.sample(obs, domain, guidance, noise=noise)
        got = graph(obs, noise)
    assert torch.allclose(got, expected, atol=TOLERANCE, rtol=0)  # batched vs row by row: rounding only


_BLOCKED = ("robosuite", "mujoco", "tasks", "baselines", "gymnasium", "h5py", "benchmark")


@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_bundle_loads_without_simulation_or_training_code(smoke_bundle, backend, tmp_path):
    blocked = _BLOCKED + (("torch",) if backend == "onnx" else ())
    policy = load_bundle(smoke_bundle["bundle"], backend, num_threads=1)
    obs = _histories(smoke_bundle["target"], policy.n_obs_steps, 1, seed=3)[0]
    noise = np.random.default_rng(3).standard_normal((policy.horizon, policy.action_dim)).astype(np.float32)
    np.save(tmp_path / "obs.npy", obs)
    np.save(tmp_path / "noise.npy", noise)
    np.save(tmp_path / "expected.npy", policy.act_chunk(obs, noise))
    script = textwrap.dedent(f"""
        import sys
        for name in {blocked!r}:
            sys.modules[name] = None  # any import of these raises ImportError
        import numpy as np
        from cotrain_robot.bundle import load_bundle
        policy = load_bundle({str(smoke_bundle["bundle"])!r}, {backend!r}, num_threads=1)
        out = policy.act_chunk(np.load({str(tmp_path / "obs.npy")!r}), np.load({str(tmp_path / "noise.npy")!r}))
        diff = float(np.abs(out - np.load({str(tmp_path / "expected.npy")!r})).max())
        assert diff <= 1e-6, diff
        leaked = [m for m in {blocked!r} if sys.modules.get(m) is not None]
        assert not leaked, leaked
        print("ok", out.shape)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == f"ok ({policy.horizon}, {policy.action_dim})"


def test_export_above_tolerance_fails_and_leaves_nothing(smoke_bundle, capsys, monkeypatch):
    import shutil

    import benchmark.deploy.export as export

    # the graphs are the fixture's (exporting them again would only cost time); the check runs for real
    monkeypatch.setattr(export, "_export_files", lambda graph, example, out, opset: [
        shutil.copy(smoke_bundle["bundle"] / name, out / name) for name in export.FILES.values()])
    monkeypatch.setattr(export, "env_facts", lambda pair, magnitude: {})
    out = smoke_bundle["runs_dir"] / "too_strict"
    code = cli_main(["export", str(smoke_bundle["run_dir"]), "--out", str(out), "--tolerance", "1e-12"])
    assert code == 2
    assert "differs from PyTorch by more than 1e-12" in capsys.readouterr().err
    assert not out.exists()
    assert not [p for p in smoke_bundle["runs_dir"].iterdir() if p.name.startswith(".")], "a temporary bundle is left"


def test_export_refuses_to_overwrite_and_bundles_are_checked(smoke_bundle, tmp_path):
    with pytest.raises(ValueError, match="exists"):
        export_bundle(smoke_bundle["run_dir"], smoke_bundle["bundle"])
    with pytest.raises(BundleError, match="missing"):
        load_bundle(tmp_path)
    with pytest.raises(ValueError, match="backend"):
        load_bundle(smoke_bundle["bundle"], "tensorrt")
    older = {**read_spec(smoke_bundle["bundle"]), "bundle_version": BUNDLE_VERSION - 1}  # e.g. a quaternion layout
    (tmp_path / "policy.json").write_text(json.dumps(older))
    with pytest.raises(BundleError, match=f"expected .* version {BUNDLE_VERSION}"):
        load_bundle(tmp_path)
    assert issubclass(ExportError, RuntimeError)


def _copy_run(smoke_bundle: dict, runs_dir: Path) -> Path:
    """The fixture's run folder and its replay demos, copied into `runs_dir`."""
    import shutil

    shutil.copytree(smoke_bundle["runs_dir"] / "_demos", runs_dir / "_demos")
    return Path(shutil.copytree(smoke_bundle["run_dir"], runs_dir / smoke_bundle["run_dir"].name))


def test_an_unfinished_run_is_refused_unless_allowed_and_then_says_so(smoke_bundle, tmp_path, capsys, monkeypatch):
    import shutil

    import benchmark.deploy.export as export

    run = _copy_run(smoke_bundle, tmp_path / "runs")
    config = json.loads((run / "config.json").read_text())
    step = config["profile_size"]["steps"]
    config["profile_size"]["steps"] = 2 * step  # a run of twice the steps, stopped after its checkpoint halfway
    (run / "config.json").write_text(json.dumps(config))
    out = tmp_path / "bundle"
    assert cli_main(["export", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{run} is not finished: no done marker, its checkpoint is at step {step} of {2 * step}" in err
    assert "--allow-unfinished" in err and not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["runs"]

    # the graphs are the fixture's (the same checkpoint; exporting them again would only cost time)
    monkeypatch.setattr(export, "_export_files", lambda graph, example, out, opset: [
        shutil.copy(smoke_bundle["bundle"] / name, out / name) for name in export.FILES.values()])
    monkeypatch.setattr(export, "env_facts", lambda pair, magnitude: {})
    assert cli_main(["export", str(run), "--out", str(out), "--allow-unfinished"]) == 0
    assert f"warning: {run} is not finished" in capsys.readouterr().err
    prov = read_spec(out)["provenance"]
    assert (prov["finished"], prov["checkpoint_step"], prov["total_steps"], prov["success"]) == (False, step, 2 * step, None)
    assert export.training_progress(run, {**config, "steps": step})["finished"]  # a length set apart from the profile
    (run / "done").touch()  # what a finished run's folder has
    assert export.training_progress(run, config)["finished"]


def test_an_unwritable_output_folder_gives_one_line_and_leaves_nothing(smoke_bundle):
    from unprivileged import reachable_dir, run_cotrain

    with reachable_dir() as root:
        run = _copy_run(smoke_bundle, root / "runs")
        for path in (root / "runs").rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        (root / "runs").chmod(0o755)
        (root / "readonly").mkdir(mode=0o555)
        proc = run_cotrain(["export", str(run), "--out", str(root / "readonly" / "bundle")], home=root)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and "permission denied" in lines[0], proc.stderr
        assert lines[0].startswith(f"cotrain export: error: permission denied: {root / 'readonly'}/")
        assert lines[0].endswith(f"(while writing the bundle {root / 'readonly' / 'bundle'})")
        assert list((root / "readonly").iterdir()) == []
