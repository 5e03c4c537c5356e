"""Learning curves per pair on validation start states, and the training length where success stops rising.

`cotrain calibrate PAIR` trains `target_only`, `source_only` and `cotrain` (its default w) for each seed to
every step count of a doubling ladder (500, 1000, ... by default) and evaluates each on the run seed's
*validation* start states, never its test ones: the target domain for every method, and the source domain
too for `source_only` (its drop in the target is measured against its own source success; on an image pair also
in the source with its frames frozen, `EvalSpec.frozen_frames`: a visual gap shows only in a policy that reads its
frames). A longer run of
the ladder starts from the shorter run's final checkpoint, which is the same training (the optimizer, EMA,
sampler and noise streams are all in the checkpoint, and no schedule depends on the total length), so the
ladder costs one run of its longest length.

The chosen length: for each method, the first step count S from which no doubling of the ladder gains anything
the budget resolves: the paired gain from S to 2S, and every later doubling's (the same seeds and start states;
two-level bootstrap over seeds, then episodes), has a 95% interval reaching 0. A flat doubling followed by a
resolved gain is a pause, not a plateau. The pair's length is the largest over the three methods; where some
method still gains at the ladder's end, none is chosen: the ladder is too short, and the report says so.
Curves, the choice and the commands go to `results/calibration/<pair>/`.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.analysis.markdown import md_table
from benchmark.analysis.stats import paired_bootstrap_diff, wilson_interval
from benchmark.harness.config import RunConfig
from benchmark.harness.run import execute_run, pair_hooks, read_json, restore_checkpoint, write_json

CURVE_METHODS = ("target_only", "source_only", "cotrain")
LADDER = (500, 1000, 2000, 4000, 8000)
SEEDS = (0, 1, 2)
EPISODES = 50  # validation episodes per run and domain
SOURCE_EVAL = "source_eval.json"  # source_only's success in the source, beside its record
FROZEN_EVAL = "frozen_eval.json"  # an image pair's source_only in the source with its frames frozen, beside it too
REPORTS = Path(__file__).resolve().parents[2] / "results" / "calibration"  # the committed calibrations
# What a leaderboard pair must show converged (at its chosen length): target_only with room both ways,
# source_only losing this much in the target against its own source success, and M/N at least this.
TARGET_ONLY_RANGE, MIN_SOURCE_DROP, MIN_SOURCE_RATIO = (0.2, 0.7), 0.15, 10
MIN_FRAME_DROP = 0.15  # an image pair's source_only loses at least this in the source with its frames frozen


@dataclass(frozen=True)
class Calibration:
    """One pair's calibration grid: the ladder of step counts, the seeds, the validation episodes."""

    pair: str
    ladder: tuple[int, ...] = LADDER
    seeds: tuple[int, ...] = SEEDS
    episodes: int = EPISODES
    profile: str = "quick"
    methods: tuple[str, ...] = CURVE_METHODS

    def __post_init__(self) -> None:
        if len(self.ladder) < 2 or any(b != 2 * a for a, b in zip(self.ladder, self.ladder[1:])):
            raise ValueError(f"ladder {self.ladder}: needs two or more step counts, each double the one before")
        if not set(self.methods) <= set(CURVE_METHODS) or not self.methods:
            raise ValueError(f"methods {self.methods}: a calibration curves some of {', '.join(CURVE_METHODS)}")
        if not self.seeds or self.episodes < 1:
            raise ValueError(f"seeds {self.seeds} and episodes {self.episodes}: need at least one of each")
        RunConfig(pair=self.pair, profile=self.profile)  # names a bad pair or profile now

    def run(self, method: str, seed: int, steps: int) -> RunConfig:
        return RunConfig(pair=self.pair, method=method, seed=seed, profile=self.profile, steps=steps,
                         episodes=self.episodes, eval_split="validation").resolved()

    def runs(self) -> list[RunConfig]:
        return [self.run(m, s, n) for m in self.methods for s in self.seeds for n in self.ladder]


def _warm_start(shorter: Path, longer: Path) -> None:
    """Seed `longer`'s folder with `shorter`'s final checkpoint and log, so its training resumes there."""
    if (longer / "checkpoint").exists() or not (shorter / "checkpoint").exists():
        return
    longer.mkdir(parents=True, exist_ok=True)
    tmp = longer / "checkpoint.warm"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(shorter / "checkpoint", tmp)
    shutil.copyfile(shorter / "train_log.jsonl", longer / "train_log.jsonl")
    tmp.rename(longer / "checkpoint")


def _source_eval(cfg: RunConfig, run_dir: Path, progress: bool, frozen_frames: bool = False) -> dict[str, Any]:
    """`source_only`'s success in the source on the same validation start states, cached beside its record
    (`FROZEN_EVAL` with `frozen_frames`: an image pair's policy given one fixed start state's frames throughout,
    what it achieves without reading its frames; else `SOURCE_EVAL`)."""
    path = run_dir / (FROZEN_EVAL if frozen_frames else SOURCE_EVAL)
    if not path.exists():
        restore_checkpoint(cfg, run_dir.parent, progress)  # committed finished before this file was written
        evaluation = pair_hooks(cfg.pair).evaluate(cfg, run_dir, progress, domains=("source",),
                                                   frozen_frames=frozen_frames)
        write_json(path, evaluation["source"])
    return read_json(path)


def run_calibration(cal: Calibration, runs_dir: Path, workers: int = 1, progress: bool = True,
                    log=print) -> None:
    """Run every chain (method, seed) up the ladder; finished runs are read back, never redone."""
    from tasks import get_pair

    image = get_pair(cal.pair).obs == "image"
    for method in cal.methods:
        for seed in cal.seeds:
            previous: Path | None = None
            for steps in cal.ladder:
                cfg = cal.run(method, seed, steps)
                run_dir = runs_dir / cfg.run_id()
                if previous is not None and not (run_dir / "done").exists():
                    _warm_start(previous, run_dir)
                record = execute_run(replace(cfg, workers=workers), runs_dir, progress)
                if method == "source_only":
                    _source_eval(cfg, run_dir, progress)
                    if image:
                        _source_eval(cfg, run_dir, progress, frozen_frames=True)
                log(f"{cal.pair} {method} seed {seed} {steps} steps: validation success "
                    f"{record['eval']['target']['success_rate']:.2f}")
                previous = run_dir


def curves(cal: Calibration, runs_dir: Path) -> dict[str, Any]:
    """Per method and step count: the seeds' outcomes, mean success with its interval; the chosen length."""
    out: dict[str, Any] = {"pair": cal.pair, "ladder": list(cal.ladder), "seeds": list(cal.seeds),
                           "episodes": cal.episodes, "profile": cal.profile, "methods": {}}
    for method in cal.methods:
        rows = []
        outcomes: dict[int, dict[int, np.ndarray]] = {}
        for steps in cal.ladder:
            per_seed = {}
            source, frozen = [], []
            for seed in cal.seeds:
                run_dir = runs_dir / cal.run(method, seed, steps).run_id()
                if not (run_dir / "done").exists():
                    continue
                episodes = read_json(run_dir / "record.json")["eval"]["target"]["episodes"]
                per_seed[seed] = np.array([float(e["success"]) for e in episodes])
                if (run_dir / SOURCE_EVAL).exists():
                    source.append(read_json(run_dir / SOURCE_EVAL)["success_rate"])
                if (run_dir / FROZEN_EVAL).exists():
                    frozen.append(read_json(run_dir / FROZEN_EVAL)["success_rate"])
            outcomes[steps] = per_seed
            if not per_seed:
                rows.append({"steps": steps, "seeds": 0})
                continue
            k = int(sum(v.sum() for v in per_seed.values()))
            n = int(sum(v.size for v in per_seed.values()))
            rows.append({"steps": steps, "seeds": len(per_seed), "success": k / n, "ci95": wilson_interval(k, n),
                         "per_seed": {s: float(v.mean()) for s, v in per_seed.items()},
                         **({"source_success": float(np.mean(source)), "source_seeds": len(source)}
                            if source else {}),
                         **({"frozen_success": float(np.mean(frozen)), "frozen_seeds": len(frozen)}
                            if frozen else {})})
        gains = []
        for short, long in zip(cal.ladder, cal.ladder[1:]):
            if set(outcomes[short]) & set(outcomes[long]):
                gains.append({"from": short, "to": long,
                              **dict(zip(("gain", "lo", "hi"), paired_bootstrap_diff(outcomes[long], outcomes[short])))})
        out["methods"][method] = {"curve": rows, "gains": gains, "converged_at": _converged(cal.ladder, gains)}
    chosen = [m["converged_at"] for m in out["methods"].values()]
    out["steps"] = None if None in chosen else max(chosen)
    out.update(zip(("pair_version", "n_target", "n_source"), _definition(cal.pair, cal.profile)))
    return out


def _definition(pair: str, profile: str) -> tuple[int, int, int]:
    """What a calibration of `pair` holds for: the pair's version and its N and M at `profile`."""
    from tasks import get_pair

    cfg = RunConfig(pair=pair, profile=profile).resolved()
    return get_pair(pair).version, cfg.n_target, cfg.n_source


def facts(data: dict[str, Any]) -> list[str]:
    """The leaderboard criteria read off curves (`curves`) at the chosen length, one line each, marked met or not."""
    if data.get("steps") is None:
        return ["no training length chosen yet: the criteria are read at it"]
    at = {m: next(r for r in info["curve"] if r["steps"] == data["steps"]) for m, info in data["methods"].items()}
    lines = [f"chosen training length {data['steps']} steps ({data['profile']} profile otherwise), "
             f"N = {data['n_target']}, M = {data['n_source']}"]
    low, high = TARGET_ONLY_RANGE
    if "target_only" in at:
        rate = at["target_only"]["success"]
        lines.append(f"target_only {rate:.2f} in the target: {'meets' if low <= rate <= high else 'misses'} "
                     f"[{low}, {high}]")
    if "source_only" in at and "source_success" in at["source_only"]:
        row = at["source_only"]
        drop = row["source_success"] - row["success"]
        lines.append(f"source_only {row['success']:.2f} in the target against {row['source_success']:.2f} in the "
                     f"source, a drop of {drop:.2f}: {'meets' if drop >= MIN_SOURCE_DROP else 'misses'} "
                     f">= {MIN_SOURCE_DROP}")
    if "source_only" in at and {"source_success", "frozen_success"} <= set(at["source_only"]):
        row = at["source_only"]
        drop = row["source_success"] - row["frozen_success"]
        lines.append(f"source_only reads its frames: {row['frozen_success']:.2f} in the source with them frozen "
                     f"against {row['source_success']:.2f}, a drop of {drop:.2f}: "
                     f"{'meets' if drop >= MIN_FRAME_DROP else 'misses'} >= {MIN_FRAME_DROP}")
    if "cotrain" in at:
        lines.append(f"cotrain {at['cotrain']['success']:.2f} in the target")
    ratio = data["n_source"] / data["n_target"]
    lines.append(f"M/N = {ratio:g}: {'meets' if ratio >= MIN_SOURCE_RATIO else 'misses'} >= {MIN_SOURCE_RATIO}")
    return lines


def committed_facts(pair: str) -> list[str] | None:
    """`facts` of the pair's committed calibration (None without one); a calibration of another pair version
    or other demo counts says it is stale."""
    path = REPORTS / pair.replace("/", "_") / "curves.json"
    if not path.exists():
        return None
    data = read_json(path)
    made = (data.get("pair_version"), data.get("n_target"), data.get("n_source"))
    now = _definition(pair, data.get("profile", "quick"))
    if made != now:
        return [f"stale: calibrated at version {made[0]}, N = {made[1]}, M = {made[2]}; the pair is now version "
                f"{now[0]}, N = {now[1]}, M = {now[2]}"]
    return facts(data)


def _converged(ladder: tuple[int, ...], gains: list[dict[str, Any]]) -> int | None:
    """The first step count from which no doubling of the ladder gains anything resolved: its gain to the next
    doubling, and every later one, has a 95% interval reaching 0 (None: the last doubling still gains, or the
    curve is incomplete). A flat doubling followed by a resolved gain is a pause, not a plateau."""
    if len(gains) < len(ladder) - 1:
        return None
    converged = None
    for gain in gains:
        if gain["lo"] > 0.0:
            converged = None
        elif converged is None:
            converged = gain["from"]
    return converged


def _shown(path: Path) -> str:
    """`path` relative to the working folder where it lies under it (a report names no machine's paths)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _gain_text(gain: dict[str, Any]) -> str:
    """The gain with its interval; a zero-width one (no episode differs in any resample) is said so."""
    if gain["lo"] == gain["hi"]:
        return f"{gain['gain']:+.3f} (no interval: every resample gives it)"
    return f"{gain['gain']:+.3f} [{gain['lo']:+.3f}, {gain['hi']:+.3f}]"


def _curve_row(method: str, row: dict[str, Any], gain: dict[str, Any] | None) -> list[str]:
    """One row of the report's table: success, the source's (and frozen frames') success, the gain to 2×."""
    if not row["seeds"]:
        return [method, str(row["steps"]), "0", "—", "—", "—"]
    lo, hi = row["ci95"]

    def of(kind: str) -> str:  # a mean over fewer seeds than the row's says so (an evaluation not yet cached)
        seeds = row.get(f"{kind}_seeds", row["seeds"])
        fewer = f" on {seeds} of {row['seeds']} seeds" if seeds < row["seeds"] else ""
        return f"{row[f'{kind}_success']:.3f}{fewer}"
    source = (of("source") if "source_success" in row else "—") + (
        f" (frames frozen {of('frozen')})" if "frozen_success" in row else "")
    return [method, str(row["steps"]), str(row["seeds"]), f"{row['success']:.3f} [{lo:.3f}, {hi:.3f}]", source,
            _gain_text(gain) if gain else "—"]


def report_dir(pair: str) -> Path:
    """Where a pair's calibration report goes unless told otherwise: `results/calibration/<pair>/`."""
    return Path("results/calibration") / pair.replace("/", "_")


def command(cal: Calibration, runs_dir: Path, out_dir: Path | None = None) -> str:
    """The `cotrain calibrate` command line that runs `cal` and writes its report to `out_dir` (its options where
    they differ from the defaults: `--out` where the report is not the pair's own, `report_dir`)."""
    given = [(flag, value) for flag, value, default in (
        ("--ladder", cal.ladder, LADDER), ("--seeds", cal.seeds, SEEDS), ("--episodes", (cal.episodes,), (EPISODES,)),
        ("--methods", cal.methods, CURVE_METHODS)) if tuple(value) != tuple(default)]
    profile = [] if cal.profile == Calibration.profile else [f"--profile {cal.profile}"]
    own = out_dir is None or _shown(out_dir) == str(report_dir(cal.pair))
    out = [] if own else [f"--out {_shown(out_dir)}"]
    return " ".join([f"cotrain calibrate {cal.pair}", *(f"{flag} {' '.join(map(str, v))}" for flag, v in given),
                     *profile, f"--runs-dir {_shown(runs_dir)}", *out])


def write_report(cal: Calibration, runs_dir: Path, out_dir: Path) -> Path:
    """`curves.json` and `README.md` (the curves as a table, the chosen length, the command)."""
    data = curves(cal, runs_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "curves.json", data)
    lines = [f"# Calibration of `{cal.pair}` (validation start states)", "",
             f"Command: `{command(cal, runs_dir, out_dir)}` ({cal.profile} profile except its "
             f"steps; seeds {', '.join(map(str, cal.seeds))}; {cal.episodes} validation episodes per run and domain).",
             "Success in the target, pooled over seeds, with its 95% Wilson interval; `source_only` also in the "
             "source (on an image pair also with its frames frozen). Gain: paired difference to the next doubling "
             "(two-level bootstrap over seeds, then episodes).",
             "", md_table(["method", "steps", "seeds", "success [95%]", "source", "gain to 2× [95%]"],
                          [_curve_row(method, row, {g["from"]: g for g in info["gains"]}.get(row["steps"]))
                           for method, info in data["methods"].items() for row in info["curve"]])]
    lines += ["", "Converged (first step count from which no doubling gains anything resolved): " + ", ".join(
        f"`{m}` {info['converged_at'] or 'not within the ladder'}" for m, info in data["methods"].items()),
        "", f"**Chosen training length: {data['steps'] or 'none yet (incomplete, or still rising at the ladder end)'}"
        + (" steps.**" if data["steps"] else "**"), "",
        f"Leaderboard criteria at that length (target_only in [{TARGET_ONLY_RANGE[0]}, {TARGET_ONLY_RANGE[1]}], "
        f"source_only's drop >= {MIN_SOURCE_DROP}, M/N >= {MIN_SOURCE_RATIO}; `cotrain tasks show {cal.pair}` "
        "prints them):", ""] + [f"- {line}" for line in facts(data)] + [""]
    (out_dir / "README.md").write_text("\n".join(lines))
    return out_dir / "README.md"
