"""The leaderboard's HTML page, built by ``cotrain leaderboard`` from the committed mini-sweep records.

The page's values are compared with the CSV's, its figures with the PNGs beside it, and its script is run
in a real headless Chromium (``--dump-dom`` after a sort and filters given in the URL fragment, and a
screenshot). Without Chromium the browser tests skip with the reason, and fail under ``CI=true``.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from benchmark.analysis import leaderboard as L
from benchmark.analysis.cells import drop_text
from benchmark.analysis import records as R
from benchmark.cli import main

SWEEP = Path(__file__).parent / "data" / "mini_sweep"
FIGURES = ("success_per_pair.png", "diff_vs_cotrain.png", "success_vs_ratio.png", "success_vs_magnitude.png",
           "alignment_vs_discernibility.png", "training_curves.png")


class Page(HTMLParser):
    """Rows (their ``data-*`` attributes, hidden flag and cell texts) of each ``table.board`` and
    ``table.plain``, the image sources, the ``<html>`` attributes, and every ``src``/``href`` value."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: dict[str, list[dict]] = {}
        self.images: dict[str, str] = {}
        self.links: list[str] = []
        self.root: dict[str, str] = {}
        self.status: list[str] = []
        self._table = self._cell = None
        self._in_status = self._plain = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = {k: v or "" for k, v in attrs}
        self.links += [a[k] for k in ("src", "href") if k in a and not a[k].startswith("data:")]
        if tag == "html":
            self.root = a
        elif tag == "table" and a.get("class", "") in ("board", "plain"):
            self._table = self.tables.setdefault(a["id"], [])
            self._plain = a["class"] == "plain"
        elif tag == "tr" and self._table is not None and (self._plain or any(k.startswith("data-") for k in a)):
            self._table.append({"data": {k[5:]: v for k, v in a.items() if k.startswith("data-")},
                                "hidden": "hidden" in a, "cells": []})
        elif tag == "td" and self._table:
            self._table[-1]["cells"].append("")
            self._cell = self._table[-1]["cells"]
        elif tag == "img":
            self.images[a["alt"]] = a["src"]
        elif tag == "span" and a.get("class") == "status":
            self._in_status = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag == "td":
            self._cell = None
        elif tag == "span":
            self._in_status = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell[-1] += data
        if self._in_status:
            self.status.append(data)


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> Path:
    """``cotrain leaderboard`` on the mini-sweep, written to a fresh folder (md, csv, html and figures)."""
    out = tmp_path_factory.mktemp("board")
    assert main(["leaderboard", str(SWEEP), "--out", str(out)]) == 0
    return out


def _same(page_value: str, csv_value: object) -> bool:
    if pd.isna(csv_value):
        return page_value == ""
    if isinstance(csv_value, str):
        return page_value == csv_value
    return float(page_value) == float(csv_value)


def test_page_values_are_the_csv_values(board):
    """Every per-pair row carries every CSV column with the CSV's value, in the CSV's order, and its cells
    show those values as the markdown formats them."""
    csv = pd.read_csv(board / "leaderboard.csv")
    rows = Page((board / "leaderboard.html").read_text(encoding="utf-8")).tables["pairs"]
    assert len(rows) == len(csv) > 0
    md = (board / "leaderboard.md").read_text(encoding="utf-8")
    drops = 0
    for row, (_, expected) in zip(rows, csv.iterrows()):
        assert set(row["data"]) == set(csv.columns)
        bad = {c: (row["data"][c], expected[c]) for c in csv.columns if not _same(row["data"][c], expected[c])}
        assert not bad, bad
        success = next(c for c in row["cells"] if "seed" in c)
        assert success.startswith(f"{expected.success_mean:.2f} [{expected.success_lo:.2f}, {expected.success_hi:.2f}]")
        assert success in md  # the markdown's own cell text
        if expected.method != "cotrain":
            assert f"{expected.diff_vs_cotrain:+.2f}".replace("-", "\u2212") in "".join(row["cells"])
        drop = drop_text(expected)  # the drop with its paired interval, as the markdown has it
        assert drop in row["cells"] and drop in md
        drops += "[" in drop
    assert drops  # some rows have a control, so their drop carries an interval


def test_page_is_self_contained(board):
    """No network and no server: no external link, script or style; the figures beside the page are
    embedded byte for byte; the across-pairs table is there too."""
    page = Page((board / "leaderboard.html").read_text(encoding="utf-8"))
    assert page.links and all(link.startswith("#") for link in page.links), page.links
    assert set(page.images) == {Path(f).stem.replace("_", " ") for f in FIGURES}
    for name in FIGURES:
        src = page.images[Path(name).stem.replace("_", " ")]
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]) == (board / name).read_bytes()
    across = L.aggregate_across_pairs(R.load_records(SWEEP))
    assert [float(r["data"]["iqm"]) for r in page.tables["across"]] == across.iqm.tolist()


def test_page_shows_the_markdowns_resolution_and_cost_tables(board):
    """The resolution (each pair's smallest resolved difference) and cost tables are on the page, cell for cell
    as the markdown has them."""
    page = Page((board / "leaderboard.html").read_text(encoding="utf-8"))
    md = (board / "leaderboard.md").read_text(encoding="utf-8")
    for section, table_id in (("Resolution per pair", "resolution-per-pair-table"), ("Cost", "cost-table")):
        lines = md.split(f"## {section}\n\n", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
        expected = [[cell.strip().replace("\\|", "|") for cell in line.strip("|").split(" | ")] for line in lines]
        shown = [row["cells"] for row in page.tables[table_id] if row["cells"]]
        assert shown == expected and expected


def test_page_links_videos_beside_it(tmp_path, board):
    """A video beside the page is linked by its relative path (the page itself does not need it)."""
    shutil.copy(board / "training_curves.png", tmp_path / "training_curves.png")
    (tmp_path / "rollout seed0.mp4").write_bytes(b"")
    page = Page(L.write_leaderboard(R.load_records(SWEEP), tmp_path)["html"].read_text(encoding="utf-8"))
    assert "rollout%20seed0.mp4" in page.links and set(page.images) == {"training curves"}


def _chromium() -> str:
    """The Chromium binary; fails under CI=true when missing, else skips with the reason."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    reason = "Chromium not installed (Debian: apt-get install chromium; .ci/run installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _browse(page: Path, fragment: str, profile: Path, *flags: str) -> subprocess.CompletedProcess:
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={profile}", *flags, f"{page.as_uri()}#{fragment}"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)


def test_browser_applies_sort_and_filters_from_the_address(board, tmp_path):
    """In Chromium the script sorts by success (descending, missing values last) and hides the rows the
    method and column filters exclude; the row count says so."""
    csv = pd.read_csv(board / "leaderboard.csv")
    page = board / "leaderboard.html"
    dom = Page(_browse(page, "sort=success_mean&dir=desc&method=cotrain", tmp_path / "p1", "--dump-dom").stdout)
    assert dom.root.get("data-ready") == "1"
    rows = dom.tables["pairs"]
    shown = [float(r["data"]["success_mean"]) for r in rows if not r["hidden"]]
    assert shown == sorted(csv[csv.method == "cotrain"].success_mean, reverse=True)
    assert {r["data"]["method"] for r in rows if r["hidden"]} == set(csv.method) - {"cotrain"}
    assert "".join(dom.status).startswith(f"{len(shown)} of {len(csv)} rows shown, sorted by success")

    dom = Page(_browse(page, "sort=diff_vs_cotrain&dir=asc&col.magnitude=%3E0", tmp_path / "p2", "--dump-dom").stdout)
    rows = [r for r in dom.tables["pairs"] if not r["hidden"]]
    assert len(rows) == (csv.magnitude > 0).sum() and all(float(r["data"]["magnitude"]) > 0 for r in rows)
    diffs = [r["data"]["diff_vs_cotrain"] for r in rows]
    assert diffs[-1] == "" and [float(d) for d in diffs if d] == sorted(csv[csv.magnitude > 0].diff_vs_cotrain.dropna())


def test_browser_screenshot(board, tmp_path):
    """Chromium renders the page to a PNG that is not blank."""
    from matplotlib.image import imread

    shot = tmp_path / "leaderboard.png"
    _browse(board / "leaderboard.html", "sort=success_mean&dir=desc", tmp_path / "p", "--window-size=1400,1600",
            f"--screenshot={shot}")
    pixels = imread(shot)
    assert pixels.shape[:2] == (1600, 1400) and pixels[..., :3].std() > 0.05
