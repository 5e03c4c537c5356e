"""What a set of run records cost to make, per pair (or another config key): training and evaluation time from
each record's `timing`.

The records hold the wall seconds of each stage; core-seconds are training's times the run's torch threads and
evaluation's times its evaluation workers (an upper bound where workers idle). A run whose training resumed from a
checkpoint recorded only its last process: its training time is scaled to the whole run
(`steps / (steps - start_step)`) and counted in `resumed`. Demo generation and the representation metrics are
timed by newer records only (`timing.demos_s`, `timing.metrics_s`: wall seconds in the run's process; demos made
by an earlier run of the seed take it near none): they are summed apart, over the records that time them, and
a table shows them where any does. A checkpoint trained again for a later evaluation is not timed.
"""
from __future__ import annotations

import pandas as pd

COST_NOTE = ("Hours the records' own stages took (training, and evaluation; demos and metrics not timed), in "
             "core-hours: training time times the run's torch threads, evaluation time times its workers. A run whose "
             "training resumed counts its training scaled to the whole run; an untimed record is left out.")
COST_COLUMNS = ["pair", "runs", "trained", "resumed", "untimed", "train_h", "eval_h", "total_h",
                "minutes_per_trained_run", "other_runs", "other_h"]
OTHER_NOTE = (" Demos + metrics: wall hours of demo generation and the representation metrics, over the runs whose "
              "records time them (newer records; demos already made by another run of the seed take near none).")


def _train_seconds(rec: dict) -> tuple[float, bool]:
    """(training core-seconds of the whole run, whether they were scaled up from a resumed process)."""
    seconds = float(rec["timing"]["train_s"] or 0.0) * int(rec["config"].get("threads") or 1)
    train = rec.get("train") or {}
    start, steps = int(train.get("start_step") or 0), int(train.get("steps") or 0)
    if seconds and 0 < start < steps:
        return seconds * steps / (steps - start), True
    return seconds, False


def _stage_seconds(rec: dict) -> tuple[float, float, bool] | None:
    """(training core-seconds of the whole run, evaluation core-seconds, whether training resumed); None where the
    record is untimed."""
    timing = rec.get("timing") or {}
    if timing.get("eval_s") is None or timing.get("train_s") is None:
        return None
    train_s, resumed = _train_seconds(rec)
    return train_s, float(timing["eval_s"]) * int(rec["config"].get("workers") or 1), resumed


def core_seconds(rec: dict) -> float | None:
    """A record's training and evaluation core-seconds (training resumed: scaled to the whole run); None untimed."""
    stages = _stage_seconds(rec)
    return None if stages is None else stages[0] + stages[1]


def cost(records: list[dict], by: str = "pair") -> pd.DataFrame:
    """Per pair (or per value of the records' config key `by`, the first column): runs read, trained runs (the
    others evaluate a checkpoint trained elsewhere), resumed and untimed runs (no `timing` in the record: left out
    of the sums), core-hours of training, of evaluation and in all, and core-minutes per trained run (its training
    and evaluation); a last row `all` sums the others."""
    rows: dict[str, dict] = {}
    for rec in records:
        key = rec["config"][by]
        row = rows.setdefault(key, dict(pair=key, runs=0, trained=0, resumed=0, untimed=0, train_s=0.0,
                                         eval_s=0.0, trained_s=0.0, other_runs=0, other_s=0.0))
        row["runs"] += 1
        timing = rec.get("timing") or {}
        if timing.get("demos_s") is not None and timing.get("metrics_s") is not None:
            row["other_runs"] += 1
            row["other_s"] += float(timing["demos_s"]) + float(timing["metrics_s"])
        stages = _stage_seconds(rec)
        if stages is None:
            row["untimed"] += 1
            continue
        train_s, eval_s, resumed = stages
        row["resumed"] += resumed
        row["train_s"] += train_s
        row["eval_s"] += eval_s
        if rec.get("train") is not None:  # an evaluation-only record (a no-gap control) has none
            row["trained"] += 1
            row["trained_s"] += train_s + eval_s
    table = list(rows.values())
    if table:
        table.append({key: ("all" if key == "pair" else sum(r[key] for r in table)) for key in table[0]})
    out = []
    for r in table:
        out.append(dict(pair=r["pair"], runs=r["runs"], trained=r["trained"], resumed=r["resumed"],
                        untimed=r["untimed"], train_h=r["train_s"] / 3600, eval_h=r["eval_s"] / 3600,
                        total_h=(r["train_s"] + r["eval_s"]) / 3600,
                        minutes_per_trained_run=r["trained_s"] / r["trained"] / 60 if r["trained"] else float("nan"),
                        other_runs=r["other_runs"], other_h=r["other_s"] / 3600))
    return pd.DataFrame(out, columns=COST_COLUMNS).rename(columns={"pair": by})


def cost_note(df: pd.DataFrame) -> str:
    """The note under `cost_table(df)`: what it sums, and its demos + metrics column where it has one."""
    return COST_NOTE + (OTHER_NOTE if df["other_runs"].any() else "")


def cost_table(df: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """The markdown table of `cost`: header and rows; a demos + metrics column where any record times them."""
    other = bool(df["other_runs"].any())
    header = [df.columns[0], "runs (trained)", "resumed", "untimed", "training h", "evaluation h", "total h",
              "minutes per trained run"] + (["demos + metrics h (runs)"] if other else [])
    rows = [[r[0], f"{r.runs} ({r.trained})", str(r.resumed), str(r.untimed), f"{r.train_h:.2f}",
             f"{r.eval_h:.2f}", f"{r.total_h:.2f}",
             "n/a" if pd.isna(r.minutes_per_trained_run) else f"{r.minutes_per_trained_run:.1f}"]
            + ([f"{r.other_h:.2f} ({r.other_runs})"] if other else [])
            for r in df.itertuples(index=False)]
    return header, rows
