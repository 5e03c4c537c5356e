"""The command lines explain themselves: every option of `cotrain` and `cotrain-robot` has help text and
shows its default, fixed value sets are declared as choices, one option name means one thing (the glossary
in `benchmark/cli/__init__.py`), `--json` prints what the text shows, and options are honoured (`--log-csv`,
`quickstart --quiet`)."""
from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path

import pytest
from cotrain_robot.cli import build_parser as robot_parser

import benchmark.cli
from benchmark.cli import build_parser, main
from benchmark.harness.config import RunConfig

TOY_RUN = ["--pair", "toy/shift", "--method", "target_only", "--profile", "smoke", "--episodes", "1"]
FIXED_SETS = {"backend", "network", "profile", "domain", "executor", "runtime", "action"}


def _commands() -> list[tuple[str, argparse.ArgumentParser]]:
    """(name, parser) of both programs and every subcommand, depth first."""
    out, todo = [], [("cotrain", build_parser()), ("cotrain-robot", robot_parser())]
    while todo:
        name, parser = todo.pop()
        out.append((name, parser))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo += [(f"{name} {sub}", p) for sub, p in action.choices.items()]
    return out


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._VersionAction,
                                                             argparse._SubParsersAction))]


def _glossary() -> dict[str, str]:
    """The glossary table of the `benchmark.cli` docstring: option -> meaning."""
    rows = re.findall(r"^\| (`--.+?) \| (.+?) \|$", benchmark.cli.__doc__, flags=re.M)
    return {opt: meaning for opts, meaning in rows for opt in re.findall(r"`(--[\w-]+)`", opts)}


def test_every_option_has_help_text_and_shows_its_default():
    commands = _commands()
    assert len(commands) > 15
    for name, parser in commands:
        assert issubclass(parser.formatter_class, argparse.ArgumentDefaultsHelpFormatter), name
        text = " ".join(parser.format_help().split())
        for action in _options(parser):
            assert action.help and action.help != argparse.SUPPRESS, f"{name} {action.option_strings or action.dest}"
            default = action.default
            if action.option_strings and default not in (None, False, []):
                assert f"(default: {default})" in text, f"{name} {action.option_strings}"
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                assert all(choice.help for choice in action._choices_actions), name


def test_fixed_value_sets_are_declared_as_choices():
    for name, parser in _commands():
        for action in _options(parser):
            if action.dest in FIXED_SETS:
                assert action.choices, f"{name} {action.option_strings or action.dest}"


def test_one_name_per_meaning():
    glossary = _glossary()
    used: dict[str, set[str]] = {}
    for name, parser in _commands():
        for action in _options(parser):
            for opt in action.option_strings:
                used.setdefault(opt, set()).add(name)
    same = {"cotrain-robot eval": "cotrain arm-eval", "cotrain-robot serve": "cotrain arm-server"}  # one code
    shared = {opt for opt, names in used.items() if len({same.get(n, n) for n in names}) > 1}
    assert shared - set(glossary) == set(), "options of several commands must be in the glossary"
    assert set(glossary) - set(used) == set(), "the glossary names options that no command has"
    for old in ("-n", "--timeout", "--max-step", "--grid-seeds"):  # now --count, --link-timeout, --max-eef-step
        assert old not in used
    assert "cotrain toy" not in used["--seeds"]  # a count there: --n-seeds
    assert used["--driver"] == {"cotrain arm-server", "cotrain-robot serve"}
    assert used["--robot"] == {"cotrain arm-eval", "cotrain-robot eval"}
    assert used["--runtime"] == {"cotrain arm-eval", "cotrain-robot eval"}
    assert "cotrain arm-eval" not in used["--backend"]


def test_tasks_list_json_and_aligned_columns(capsys):
    from tasks import PAIRS

    assert main(["tasks", "list", "--json"]) == 0
    pairs = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in pairs] == PAIRS.names()
    assert main(["tasks", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(pairs)
    for line, pair in zip(lines, pairs):
        assert line.split()[:5] == [pair["name"], f"v{pair['version']}", f"N={pair['n_target']}",
                                    f"M={pair['n_source']}", pair["obs"]]
        assert (pair["image_size"] == PAIRS[pair["name"]].image_size) if pair["obs"] == "image" else (
            pair["image_size"] is None)
        assert (f"{pair['image_size']}px" in line.split()) == (pair["obs"] == "image")
    longest = max(len(p["name"]) for p in pairs)
    assert {line.index(" v") for line in lines} == {longest + 1}  # one column start, two past the longest name
    assert len({line.index(" N=") for line in lines}) == 1 and len({line.index(" M=") for line in lines}) == 1


def test_tasks_show_json(capsys):
    assert main(["tasks", "show", "lift/dynamics", "--json"]) == 0
    pair = json.loads(capsys.readouterr().out)
    assert main(["tasks", "show", "lift/dynamics"]) == 0
    text = capsys.readouterr().out
    assert pair["name"] == "lift/dynamics" and pair["description"] in text and len(pair["gaps"]) == 3
    for gap in pair["gaps"]:
        assert re.search(rf"{re.escape(gap['token'])}\s+\[{gap['family']}, {gap['kind']}", text), gap


def test_methods_json_and_what_a_none_default_means(capsys):
    from baselines import METHODS

    assert main(["methods", "list", "--json"]) == 0
    methods = json.loads(capsys.readouterr().out)
    assert {m["name"]: m["description"] for m in methods} == {n: METHODS[n].description for n in METHODS.names()}
    assert main(["methods", "show", "cotrain", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    hparams = {h["name"]: h for h in shown["hparams"]}
    assert {n: h["default"] for n, h in hparams.items()} == {
        n: d for n, (d, _) in METHODS["cotrain"].hparam_space.items()}
    nones = {n for n, h in hparams.items() if h["default"] is None}
    assert nones and nones == {n for n, h in hparams.items() if "none_means" in h}
    assert main(["methods", "show", "cotrain"]) == 0
    text = capsys.readouterr().out
    for n in nones:
        assert re.search(rf"^  {n}\s+{re.escape(hparams[n]['none_means'])}$", text, flags=re.M), n


def test_study_and_toy_write_to_a_fresh_folder_unless_told(tmp_path):
    parser = build_parser()
    for argv in (["study", str(tmp_path)], ["toy"]):
        assert parser.parse_args(argv).out is None  # resolved to runs/<kind>-<date>-<time> by the command
    for argv in (["study", str(tmp_path), "--out", "results/study"], ["toy", "--out", "results/toy"]):
        assert parser.parse_args(argv).out == argv[-1]
    with pytest.raises(SystemExit):  # guidance evaluation runs on one thread: no --threads to ignore
        parser.parse_args(["study", str(tmp_path), "--threads", "2"])


def _csv_matches_jsonl(run_dir: Path) -> None:
    log = [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]
    with open(run_dir / "train_log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(log) > 1
    for row, record in zip(rows, log):
        assert {k: float(v) for k, v in row.items() if v != ""} == record


def test_train_log_csv_follows_the_jsonl_log_through_a_resume(lift_datasets, tmp_path):
    """Validation lines bring a column the first line lacks; a resumed run drops the lines past its checkpoint."""
    from baselines import PolicyConfig, make_windows
    from baselines.build import build_training
    from benchmark.harness.train import TrainConfig, train

    def setup():
        cfg = PolicyConfig(obs_dim=lift_datasets[0].obs_dim, action_dim=7, horizon=8, n_action_steps=4, width=32,
                           depth=1, z_dim=8, encoder_hidden=32)
        src, tgt = (make_windows(d, cfg.n_obs_steps, cfg.horizon) for d in lift_datasets)
        built = build_training(cfg, "cotrain", {"batch_size": 32, "w": 0.25}, src, tgt, seed=0)
        return built.method, built.sampler, tgt

    def config(steps: int, log_csv: bool = True) -> TrainConfig:
        return TrainConfig(steps=steps, batch_size=32, log_every=5, ckpt_every=10, val_every=10, log_csv=log_csv)

    train(*setup()[:2], config(5, log_csv=False), tmp_path / "plain", progress=False)
    assert not (tmp_path / "plain" / "train_log.csv").exists()
    method, sampler, val = setup()
    train(method, sampler, config(10), tmp_path / "run", val_target=val, progress=False)
    with open(tmp_path / "run" / "train_log.jsonl", "a") as log:  # a line written after the checkpoint, then a crash
        log.write(json.dumps({"step": 11, "loss": 0.0}) + "\n")
    method, sampler, val = setup()
    train(method, sampler, config(20), tmp_path / "run", val_target=val, progress=False)
    _csv_matches_jsonl(tmp_path / "run")
    header = (tmp_path / "run" / "train_log.csv").read_text().splitlines()[0]
    assert header == "step,loss,diffusion,val_target"


def test_log_csv_is_not_part_of_a_run(tmp_path):
    plain = RunConfig(pair="toy/shift", method="target_only", profile="smoke")
    logged = RunConfig(pair="toy/shift", method="target_only", profile="smoke", log_csv=True)
    assert logged.run_id() == plain.run_id() and logged.to_json() == plain.to_json()


@pytest.mark.slow
def test_run_and_sweep_log_csv(tmp_path, capsys):
    """`cotrain run --log-csv` and `cotrain sweep --log-csv` write train_log.csv; the run folder is the same
    run's (~25 s)."""
    run_id = RunConfig(pair="toy/shift", method="target_only", profile="smoke", episodes=1).run_id()
    plain, with_csv, swept = tmp_path / "plain", tmp_path / "csv", tmp_path / "swept"
    assert main(["run", *TOY_RUN, "--runs-dir", str(plain), "--quiet"]) == 0
    assert main(["run", *TOY_RUN, "--runs-dir", str(with_csv), "--quiet", "--log-csv"]) == 0
    grid = tmp_path / "grid.yaml"
    grid.write_text("pairs: [toy/shift]\nmethods: [target_only]\nprofile: smoke\nepisodes: 1\n")
    assert main(["sweep", str(grid), "--runs-dir", str(swept), "--quiet", "--log-csv"]) == 0
    capsys.readouterr()
    assert not (plain / run_id / "train_log.csv").exists()
    for runs in (with_csv, swept):
        _csv_matches_jsonl(runs / run_id)
        assert (runs / run_id / "config.json").read_text() == (plain / run_id / "config.json").read_text()


@pytest.mark.slow
def test_quickstart_quiet_prints_no_progress(tmp_path, capsys):
    """`cotrain quickstart --quiet`: the leaderboard only, no progress bars or per-method lines (about a minute)."""
    assert main(["quickstart", "--pair", "toy/shift", "--profile", "smoke", "--runs-dir", str(tmp_path),
                 "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "# Quickstart: toy/shift" in out and "[1/" not in out
