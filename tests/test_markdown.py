"""The reports' one markdown-table writer, and the committed reports' tables it wrote."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from benchmark.analysis.markdown import ci, md_table, num

ROOT = Path(__file__).resolve().parents[1]
UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def cells(line: str) -> list[str]:
    """A table line's cells, split at pipes that are not escaped."""
    return [c.strip() for c in UNESCAPED_PIPE.split(line.strip())[1:-1]]


def tables(text: str) -> list[list[str]]:
    """Every markdown table in ``text`` as its lines (a run of lines that start with a pipe)."""
    found, run = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            run.append(line)
        elif run:
            found.append(run)
            run = []
    return found


def test_a_cell_with_a_pipe_stays_one_cell():
    table = md_table(["pair", "what"], [["lift|dynamics", "a | b"], ["stack", "c"]]).splitlines()
    assert [len(cells(line)) for line in table] == [2, 2, 2, 2]
    assert cells(table[2]) == [r"lift\|dynamics", r"a \| b"]
    assert set(table[1]) <= set("|-")  # the separator line


def test_no_rows_is_said_not_drawn():
    assert "|" not in md_table(["a", "b"], [])


def test_numbers_and_intervals():
    assert num(0.5) == "0.50" and num(-0.25, signed=True) == "-0.25" and num(float("nan")) == "n/a"
    assert ci(0.3, 0.1, 0.5, signed=True) == "+0.30 [0.10, 0.50]"
    assert ci(0.3, float("nan"), float("nan")) == "0.30 [no interval]"


DOCUMENTS = sorted([*(p for p in (ROOT / "results").rglob("*.md") if "runs" not in p.relative_to(ROOT).parts),
                    *ROOT.glob("*.md"), *(ROOT / "docs").glob("*.md")])


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_committed_table_has_its_headers_columns(document):
    """A report writer (or a hand-written table) that drops or splits a cell shows here as a row wider or narrower
    than its header."""
    for table in tables(document.read_text()):
        widths = {len(cells(line)) for line in table}
        assert len(widths) == 1, f"{document}: a table's rows have {sorted(widths)} cells:\n" + "\n".join(table[:3])
