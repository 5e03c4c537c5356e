"""Rollout videos of a finished run's own test episodes, for the leaderboard page to link.

`record_videos` re-runs the first target-domain test episodes of a run's ``record.json`` with the run's
checkpoint, on the backend, device and episode seeds the record used, through the evaluation's own rollout
(`benchmark.harness.evaluate`, with `EvalSpec.render`): an episode is a pure function of (checkpoint, domain,
episode seed), so the re-simulation is the record's very episode. Each is checked against the record
(success and length): a match is named as the record's episode; a mismatch (another machine, library or
device, an edited record) keeps the video but its file name ends in ``__resim-differs``, and the page says
"re-simulation, differs from the record". File names:
``<pair>__<method>__seed<S>__ep<EPISODE SEED>__<success|failure>[__resim-differs].<gif|mp4>``, the pair
with ``/`` written ``-`` (`video_name`; the page reads them back with `parse_video_name`).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

from benchmark.harness.run import read_json

FORMATS = ("gif", "mp4")
DIFFERS = "resim-differs"
MATCH_LABEL, DIFFERS_LABEL = "the record's episode", "re-simulation, differs from the record"
VIDEOS_NOTE = (f"Rollouts from cotrain videos re-run a record's own target test episodes (its checkpoint, backend "
               f"and episode seeds): \"{MATCH_LABEL}\" when success and length equal record.json's, else "
               f"\"{DIFFERS_LABEL}\".")
_NAME = re.compile(r"^(?P<pair>.+?)__(?P<method>.+?)__seed(?P<seed>\d+)__ep(?P<episode_seed>\d+)"
                   r"__(?P<outcome>success|failure)(?P<differs>__" + DIFFERS + r")?$")


def video_name(pair: str, method: str, seed: int, episode_seed: int, success: bool, matches: bool, fmt: str) -> str:
    """The file name of one episode's video (module docstring)."""
    if fmt not in FORMATS:
        raise ValueError(f"video format must be one of {FORMATS}, got {fmt!r}")
    outcome = "success" if success else "failure"
    return (f"{pair.replace('/', '-')}__{method}__seed{seed}__ep{episode_seed}__{outcome}"
            f"{'' if matches else '__' + DIFFERS}.{fmt}")


def parse_video_name(name: str) -> dict[str, Any] | None:
    """The fields of a `video_name` (pair as written, ``/`` as ``-``; ``matches``), the ``episode`` they name
    and its ``label`` (MATCH_LABEL or DIFFERS_LABEL) as text; None for other names."""
    m = _NAME.match(Path(name).stem)
    if m is None:
        return None
    matches = m["differs"] is None
    return {"pair": m["pair"], "method": m["method"], "seed": int(m["seed"]), "episode_seed": int(m["episode_seed"]),
            "success": m["outcome"] == "success", "matches": matches,
            "episode": f"{m['pair']} \u00b7 {m['method']} \u00b7 seed {m['seed']} \u00b7 episode seed "
                       f"{m['episode_seed']} \u00b7 {m['outcome']}",
            "label": MATCH_LABEL if matches else DIFFERS_LABEL}


def _device(device: str | None, config: dict) -> str:
    """`device`, else the run's own when this machine has it, else the CPU (the match check tells)."""
    import torch

    if device is not None:
        return device
    run_device = config.get("device", "cpu")
    return run_device if not run_device.startswith("cuda") or torch.cuda.is_available() else "cpu"


def record_videos(run_dir: str | Path, out_dir: str | Path, episodes: int = 2, fmt: str = "gif",
                  device: str | None = None, log: Callable[[str], None] = lambda line: None) -> list[Path]:
    """Videos of the first `episodes` target test episodes of the run in `run_dir`, re-simulated with its
    checkpoint and checked against its record, written to `out_dir` (earlier videos of the same episodes
    there are replaced); return their paths. `device`: torch device (default: the run's, else the CPU)."""
    from benchmark.analysis.records import read_record
    from benchmark.harness.evaluate import EvalPool, EvalSpec, evaluate
    from tasks.video import write_episode_video

    if fmt not in FORMATS:
        raise ValueError(f"video format must be one of {FORMATS}, got {fmt!r}")
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    record, config = read_record(run_dir / "record.json"), read_json(run_dir / "config.json")
    recorded = record["eval"]["target"]["episodes"][:episodes]
    spec = EvalSpec(str(run_dir / "checkpoint"), config["pair"], "target", float(config["magnitude"]),
                    backend=config["backend"], device=_device(device, config), render=True)
    paths = []
    with EvalPool(1) as pool:  # this process: the policy and the env are loaded once for every episode
        for episode in recorded:
            (resim,) = evaluate(spec, [int(episode["seed"])], progress=False, pool=pool)
            matches = (resim["success"], resim["length"]) == (bool(episode["success"]), int(episode["length"]))
            name = video_name(config["pair"], config["method"], config["seed"], resim["seed"], resim["success"],
                              matches, fmt)
            _remove_videos_of(out_dir, parse_video_name(name))
            paths.append(write_episode_video(resim["frames"], out_dir / name))
            log(f"{paths[-1]}: " + (MATCH_LABEL if matches else
                                    f"{DIFFERS_LABEL} (record: success {episode['success']}, "
                                    f"length {episode['length']}; re-simulated: success {resim['success']}, "
                                    f"length {resim['length']})"))
    return paths


def _remove_videos_of(out_dir: Path, episode: dict[str, Any]) -> None:
    """Delete the videos in `out_dir` of `episode`'s (pair, method, seed, episode seed), whatever their label."""
    same = ("pair", "method", "seed", "episode_seed")
    for path in out_dir.iterdir() if out_dir.is_dir() else []:
        fields = parse_video_name(path.name)
        if fields is not None and path.suffix[1:] in FORMATS and all(fields[k] == episode[k] for k in same):
            path.unlink()


def _filmed_runs(runs_dir: Path, train_missing: bool) -> list[Path]:
    """One finished trained run folder per (pair, method) with a simulator and a checkpoint (or, with
    `train_missing`, without one: it is trained again): of the lowest seed, and among its runs the largest gap
    magnitude's."""
    from tasks import BASE_TASKS, get_pair

    chosen: dict[tuple[str, str], tuple[tuple, Path]] = {}
    for config_path in sorted(runs_dir.glob("*/config.json")):
        run_dir = config_path.parent
        if not (run_dir / "record.json").is_file() or not (train_missing or (run_dir / "checkpoint").exists()):
            continue
        config = read_json(config_path)
        if "checkpoint_of" in config:  # an evaluation of another run's checkpoint: that run is filmed
            continue
        if not BASE_TASKS[get_pair(config["pair"]).base_task].env_name:  # toy pairs: nothing to film
            continue
        rank = (int(config["seed"]), -float(config["magnitude"]), run_dir.name)
        key = (config["pair"], config["method"])
        if key not in chosen or rank < chosen[key][0]:
            chosen[key] = (rank, run_dir)
    return [run_dir for _, run_dir in sorted(chosen.values())]


def board_videos(runs: str | Path, out_dir: str | Path, episodes: int = 2, fmt: str = "gif",
                 device: str | None = None, log: Callable[[str], None] = lambda line: None,
                 train_missing: bool = False) -> list[Path]:
    """`record_videos` of one run folder, or of a runs folder's first seed of each (pair, method). With
    `train_missing`, a run whose small files came without its checkpoint is trained again first
    (`benchmark.harness.run.restore_checkpoint`: deterministic, checked against its record)."""
    from benchmark.harness.run import config_of_record, restore_checkpoint

    runs = Path(runs)
    if (runs / "record.json").is_file():
        run_dirs = [runs]
    elif runs.is_dir():
        run_dirs = _filmed_runs(runs, train_missing)
    else:
        raise FileNotFoundError(f"{runs}: neither a run folder (record.json) nor a folder of run folders")
    if not run_dirs:
        raise ValueError(f"{runs}: no finished run with a checkpoint and a simulator to film (--train-missing "
                         f"trains a run committed without its checkpoint again)")
    paths = []
    for run_dir in run_dirs:
        if train_missing:
            restore_checkpoint(config_of_record(read_json(run_dir / "config.json")), run_dir.parent, log=log)
        paths += record_videos(run_dir, out_dir, episodes, fmt, device, log)
    return paths
