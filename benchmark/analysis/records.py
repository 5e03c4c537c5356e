"""Reading ``record.json`` files: only records of the current schema (``benchmark.harness.run.RECORD_SCHEMA``)
are read; an older record is refused with the reason its measures are not today's, and a record without the
fields every table needs is refused naming them."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmark.harness.run import RECORD_SCHEMA, SUPERSEDED_SCHEMAS

_REQUIRED_CONFIG = ("pair", "magnitude", "method", "n_target", "n_source", "seed")


class RecordError(ValueError):
    """A ``record.json`` that does not parse, is not of the current schema, or lacks a field."""


def _check_record(rec: Any, path: Path) -> dict:
    got = rec.get("schema") if isinstance(rec, dict) else type(rec).__name__
    if got in SUPERSEDED_SCHEMAS:
        raise RecordError(f"{path}: a schema-{got} record, refused: it was {SUPERSEDED_SCHEMAS[got]}")
    if got != RECORD_SCHEMA:
        raise RecordError(f"{path}: expected schema {RECORD_SCHEMA}, got {got!r}")
    cfg, target = rec.get("config"), (rec.get("eval") or {}).get("target")
    missing = [k for k in _REQUIRED_CONFIG if not isinstance(cfg, dict) or k not in cfg]
    missing += [f"eval.target.{k}" for k in ("n", "successes") if not isinstance(target, dict) or k not in target]
    if missing:
        raise RecordError(f"{path}: missing {', '.join(missing)}")
    return rec


def load_records(runs_dir: str | Path) -> list[dict]:
    """Parse every ``record.json`` below ``runs_dir`` (recursively, sorted by path).

    Run folders without a ``record.json`` are skipped. Raises :class:`RecordError` naming the
    file for invalid JSON, another schema than the current one, or missing config/eval fields.
    """
    root = Path(runs_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"runs directory not found: {root}")
    return [read_record(path) for path in sorted(root.rglob("record.json"))]


def read_record(path: str | Path) -> dict:
    """Parse and validate one ``record.json`` (:class:`RecordError` naming the file if invalid)."""
    path = Path(path)
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RecordError(f"{path}: not a readable JSON record ({e})") from e
    return _check_record(rec, path)
