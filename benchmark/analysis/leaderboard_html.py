"""The leaderboard as one self-contained HTML page: sortable, filterable tables with their intervals drawn.

Built from the same frames as ``leaderboard.md`` and ``leaderboard.csv``
(:func:`benchmark.analysis.leaderboard.aggregate` and ``aggregate_across_pairs``): every row carries each
column's raw value as a ``data-<column>`` attribute (what the page sorts by, equal to the CSV's value) and
shows it formatted as the markdown does. The PNG figures beside the page are embedded as data URIs and the
little CSS and JavaScript are inline, so the file opens from disk without a server or a network. Videos
beside it or in its ``media/`` folder (``cotrain videos``) are linked by relative path; the page works
without them. The state of the per-pair table (sort, filters) lives in the URL's fragment, e.g.
``leaderboard.html#sort=success_mean&dir=desc&method=cotrain``.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

import pandas as pd

from benchmark.analysis.cells import drop_text, num, success_text
from benchmark.analysis.leaderboard_assets import PAGE_CSS, PAGE_JS
from benchmark.analysis.videos import VIDEOS_NOTE, parse_video_name

__all__ = ["Column", "leaderboard_page"]

VIDEO_SUFFIXES = (".mp4", ".webm", ".gif")
MEDIA_FOLDER = "media"  # where `cotrain videos --out BOARD/media` puts a board's rollout videos
REBUILD_COMMAND = "cotrain leaderboard RUNS_DIR"


@dataclass(frozen=True)
class Column:
    """One displayed column: ``key`` (the frame column it sorts by), header ``label``, how a row's cell is
    drawn (``cell``, HTML), ``numeric`` for right alignment, and the first direction a header click sorts."""

    key: str
    label: str
    cell: Callable[[Any], str]
    numeric: bool = True
    first_dir: str = "asc"
    hint: str = ""


def _missing(x: Any) -> bool:
    return x is None or (not isinstance(x, str) and pd.isna(x))


def _raw(x: Any) -> str:
    """A frame value as the CSV writes it: empty when missing, else its plain text."""
    return "" if _missing(x) else str(x)


def _pct(x: float, lo: float, hi: float) -> float:
    """Position of ``x`` on a ``[lo, hi]`` scale, in percent, clipped."""
    return 100.0 * min(max((x - lo) / (hi - lo), 0.0), 1.0)


def _whisker(lo: Any, hi: Any, a: float, b: float) -> str:
    if _missing(lo) or _missing(hi):
        return ""
    left, right = _pct(float(lo), a, b), _pct(float(hi), a, b)
    return f'<i class="ci" style="left:{left:.1f}%;width:{right - left:.1f}%"></i>'


def _rate_bar(point: Any, lo: Any, hi: Any, text: str, title: str) -> str:
    """A 0–1 bar filled to ``point`` with a whisker from ``lo`` to ``hi``, then ``text``."""
    fill = "" if _missing(point) else f'<i class="fill" style="width:{_pct(float(point), 0, 1):.1f}%"></i>'
    return (f'<span class="bar" title="{html.escape(title)}">{fill}{_whisker(lo, hi, 0, 1)}</span>'
            f'<span class="txt">{html.escape(text)}</span>')


def _diff_scale(df: pd.DataFrame) -> float:
    """Half-width of the difference bars: the largest |interval end| rounded up to a quarter, at most 1."""
    ends = pd.concat([df["diff_lo"], df["diff_hi"], df["diff_vs_cotrain"]]).abs().dropna()
    return min(1.0, max(0.25, math.ceil(float(ends.max()) * 4) / 4)) if len(ends) else 1.0


def _diff_cell(r: Any, scale: float, reference: str) -> str:
    if r.method == reference:
        return '<span class="txt ref">reference</span>'
    if _missing(r.diff_vs_cotrain):
        return '<span class="txt">n/a</span>'
    side = "up" if r.diff_lo > 0 else "down" if r.diff_hi < 0 else "even"
    point = _pct(float(r.diff_vs_cotrain), -scale, scale)
    text = f"{num(r.diff_vs_cotrain, signed=True)} [{num(r.diff_lo)}, {num(r.diff_hi)}]"
    verdict = {"up": "above cotrain", "down": "below cotrain", "even": "interval includes 0"}[side]
    return (f'<span class="bar diff {side}" title="{html.escape(text)}: {verdict}"><i class="zero"></i>'
            f'{_whisker(r.diff_lo, r.diff_hi, -scale, scale)}<i class="pt" style="left:{point:.1f}%"></i></span>'
            f'<span class="txt">{html.escape(text)}</span>')


def _success_cell(r: Any) -> str:
    text = success_text(r)
    return _rate_bar(r.success_mean, r.success_lo, r.success_hi, text, f"{text}; whisker: the 95% interval")


def _plain(key: str, fmt: Callable[[Any], str] = num) -> Callable[[Any], str]:
    return lambda r: html.escape(fmt(getattr(r, key)))


def _method_cell(self_reported: set[str]) -> Callable[[Any], str]:
    """The method's name; a policy trained elsewhere (in `self_reported`) is marked so."""
    tag = ' <span class="tag" title="trained elsewhere: declared training data, unchecked">self-reported</span>'
    return lambda r: html.escape(str(r.method)) + (tag if r.method in self_reported else "")


def pair_columns(df: pd.DataFrame, reference: str, self_reported: set[str] = frozenset()) -> list[Column]:
    """The per-pair table's columns; frame columns none of them shows follow under their CSV names."""
    scale = _diff_scale(df)
    cols = [
        Column("pair", "pair", _plain("pair", str), numeric=False),
        Column("magnitude", "gap", _plain("magnitude", lambda x: f"{x:g}")),
        Column("n_target", "N", _plain("n_target", str)),
        Column("n_source", "M", _plain("n_source", str)),
        Column("method", "method", _method_cell(self_reported), numeric=False),
        Column("w", "w", _plain("w", lambda x: "\u2014" if _missing(x) else f"{x:g}")),
        Column("success_mean", "success [95% CI]", _success_cell, first_dir="desc",
               hint="bar: 0 to 1; whisker: the 95% interval (two-level bootstrap; Wilson with one seed)"),
        Column("episodes", "episodes / seed", _plain("episodes", str)),
        Column("diff_vs_cotrain", f"diff vs {reference} [95% CI]", lambda r: _diff_cell(r, scale, reference),
               first_dir="desc", hint=f"bar: \u2212{scale:g} to +{scale:g}, line at 0; whisker: 95% interval"),
        Column("drop_vs_nogap", "drop vs no-gap [95% CI]", lambda r: html.escape(drop_text(r)),
               hint="the no-gap control's success minus this one, with its paired 95% interval"),
        Column("rank", "rank", _plain("rank", lambda x: "n/a" if _missing(x) else str(x))),
        Column("align_wasserstein_norm", "Wasserstein (norm.)", _plain("align_wasserstein_norm")),
        Column("discern_mlp_cond", "discern. MLP z_cond", _plain("discern_mlp_cond")),
        Column("structured_alignment", "structured alignment", _plain("structured_alignment")),
    ]
    if df["target_error_mean"].notna().any():
        cols.append(Column("target_error_mean", "target error", _plain("target_error_mean")))
    folded = {"seeds", "success_se", "success_lo", "success_hi", "diff_lo", "diff_hi", "drop_lo", "drop_hi",
              "align_wasserstein", "target_error_mean"}
    shown = {c.key for c in cols} | folded
    cols += [Column(k, k, _plain(k, lambda x: num(x) if isinstance(x, float) else str(x)),
                    numeric=pd.api.types.is_numeric_dtype(df[k])) for k in df.columns if k not in shown]
    return cols


def across_columns() -> list[Column]:
    """The across-pairs table's columns (IQM drawn as a bar with its stratified bootstrap interval)."""
    def iqm(r: Any) -> str:
        text = f"{num(r.iqm)} [{num(r.iqm_lo)}, {num(r.iqm_hi)}]"
        return _rate_bar(r.iqm, r.iqm_lo, r.iqm_hi, text, f"IQM {text}; whisker: 95% stratified bootstrap")

    return [Column("magnitude", "gap", _plain("magnitude", lambda x: f"{x:g}")),
            Column("method", "method", _plain("method", str), numeric=False),
            Column("w", "w", _plain("w", lambda x: "\u2014" if _missing(x) else f"{x:g}")),
            Column("pairs", "pairs", _plain("pairs", str)),
            Column("runs", "runs", _plain("runs", str)),
            Column("iqm", "IQM success [95% CI]", iqm, first_dir="desc", hint="bar: 0 to 1; whisker: 95% interval")]


def _table(table_id: str, frame: pd.DataFrame, columns: list[Column]) -> str:
    """A ``<table>`` whose rows carry every frame column as ``data-*`` and whose header sorts and filters."""
    names = "".join(
        f'<th data-key="{c.key}" data-first="{c.first_dir}" class="{"num" if c.numeric else "text"}"'
        f' title="{html.escape(c.hint or "click to sort")}" aria-sort="none">{html.escape(c.label)}</th>'
        for c in columns)
    filters = "".join(
        f'<th><input type="search" size="4" data-key="{c.key}" aria-label="filter {html.escape(c.label)}" '
        f'placeholder="filter" title="{"text, or a comparison: &gt;0.5, &lt;=3" if c.numeric else "text"}">'
        f'</th>' for c in columns)
    body = []
    for r in frame.itertuples(index=False):
        attrs = "".join(f' data-{k}="{html.escape(_raw(v))}"' for k, v in zip(frame.columns, r))
        cells = "".join(f'<td class="{"num" if c.numeric else "text"}">{c.cell(r)}</td>' for c in columns)
        body.append(f"<tr{attrs}>{cells}</tr>")
    return (f'<div class="scroll"><table id="{table_id}" class="board">\n<thead><tr class="names">{names}</tr>'
            f'<tr class="filters">{filters}</tr></thead>\n<tbody>\n' + "\n".join(body) + "\n</tbody>\n</table></div>")


def _controls(table_id: str, frame: pd.DataFrame) -> str:
    """Global filter, pair and method choosers, reset, and the row count."""
    def chooser(key: str, every: str) -> str:
        opts = "".join(f'<option value="{html.escape(v)}">{html.escape(v)}</option>'
                       for v in sorted(frame[key].dropna().astype(str).unique()))
        return f'<select data-role="{key}" aria-label="{every}"><option value="">{every}</option>{opts}</select>'

    return (f'<div class="controls" data-for="{table_id}"><input type="search" data-role="filter" '
            f'placeholder="Filter rows (any column)" aria-label="filter rows">{chooser("pair", "all pairs")}'
            f'{chooser("method", "all methods")}<button type="button" data-role="reset">reset</button>'
            f'<span class="status" role="status"></span></div>')


def _figures(folder: Path) -> str:
    """Every PNG directly in ``folder`` as an embedded ``<figure>`` (name order)."""
    figs = []
    for png in sorted(folder.glob("*.png")):
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        caption = png.stem.replace("_", " ")
        figs.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                    f'<figcaption>{html.escape(caption)} <span class="file">({html.escape(png.name)})</span>'
                    f'</figcaption></figure>')
    if not figs:
        return ("<p class=\"note\">No figures beside this page; <code>cotrain leaderboard</code> draws them "
                "next to it.</p>")
    return '<div class="figures">' + "\n".join(figs) + "</div>"


def _media(folder: Path) -> str:
    """Videos directly in ``folder`` and in its ``media/``, linked by relative path (empty when there are none);
    ``cotrain videos`` files captioned with their episode and whether the record's success and length match."""
    videos = [p.relative_to(folder) for d in (folder, folder / MEDIA_FOLDER) if d.is_dir()
              for p in sorted(d.iterdir()) if p.suffix.lower() in VIDEO_SUFFIXES]
    if not videos:
        return ""
    items, filmed = [], [parse_video_name(v.name) for v in videos]
    for v, episode in zip(videos, filmed):
        src = quote(v.as_posix())
        player = (f'<img alt="{html.escape(v.name)}" loading="lazy" src="{src}">' if v.suffix.lower() == ".gif"
                  else f'<video controls preload="none" src="{src}"></video>')
        label = ""
        if episode is not None:
            marked = "" if episode["matches"] else ' class="differs"'
            label = f'{html.escape(episode["episode"])}: <b{marked}>{html.escape(episode["label"])}</b><br>'
        items.append(f'<figure>{player}<figcaption>{label}<a href="{src}">{html.escape(v.name)}</a>'
                     f'</figcaption></figure>')
    note = f'<p class="note">{html.escape(VIDEOS_NOTE)}</p>' if any(filmed) else ""
    return f'<section id="media"><h2>Media</h2>{note}<div class="figures">{"".join(items)}</div></section>'


def _distinct(values: list[Any]) -> str:
    seen = sorted({str(v) for v in values if v is not None})
    return ", ".join(seen) if seen else "not recorded"


def _count(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _plain_section(section_id: str, title: str, header: list[str], rows: list[list[str]], note: str) -> str:
    """A section with a plain (unsorted, unfiltered) table of already formatted cells and its note."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return (f'<section id="{section_id}"><h2>{html.escape(title)}</h2><div class="scroll">'
            f'<table id="{section_id}-table" class="plain">'
            f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table></div>"
            f'<p class="note">{html.escape(note)}</p></section>')


def _facts(records: list[dict], df: pd.DataFrame) -> str:
    """What the board holds and where its records come from, as a definition list."""
    configs = [r["config"] for r in records]
    counts = " \u00b7 ".join(_count(n, what) for n, what in [
        (len(records), "run"), (df["pair"].nunique(), "pair"), (df["method"].nunique(), "method"),
        (len({c["seed"] for c in configs}), "seed"), (len(df), "row")])
    facts = [("records", counts),
             ("profile (budget)", _distinct([c.get("profile") for c in configs])),
             ("suite version", _distinct([c.get("suite_version") for c in configs])),
             ("code revision", _distinct([(r.get("fingerprint") or {}).get("git") for r in records])),
             ("written", dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d (UTC)")),
             ("rebuild with", f"<code>{REBUILD_COMMAND}</code>")]
    return '<dl class="facts">' + "".join(
        f"<dt>{k}</dt><dd>{v if k == 'rebuild with' else html.escape(v)}</dd>" for k, v in facts) + "</dl>"


def _how_to_read(reference: str) -> str:
    return f"""<section id="how"><h2>How to read this</h2><ul>
<li><b>Success</b> is the fraction of test episodes solved in the target domain, averaged over training seeds.
The bar runs from 0 to 1; its whisker is the 95% interval (two-level bootstrap over seeds, then start states; Wilson on the pooled episodes with one seed).</li>
<li><b>Diff vs {reference}</b> is this method's success minus {reference}'s on the same seeds and the same
start states, with a 95% paired bootstrap interval (seeds resampled, then episodes). The dot is the estimate,
the whisker the interval, the line zero: <span class="key up">green</span> lies wholly above {reference},
<span class="key down">red</span> wholly below, <span class="key even">grey</span> includes zero (not
resolved at this budget).</li>
<li><b>Drop vs no-gap</b> is the no-gap control's success (gap magnitude 0) minus this one: what the gap costs.
<b>Rank</b> orders methods by mean success within a pair, gap and N/M; read it with the intervals.</li>
<li>Click a header to sort (again to reverse); type in the boxes under it to filter a column (a number with
&lt;, &gt;, &lt;= or &gt;= compares). The address keeps the view, so a link reopens it.</li></ul></section>"""


def leaderboard_page(df: pd.DataFrame, across: pd.DataFrame, records: list[dict], *, title: str, summary: str,
                     pair_note: str, across_note: str, folder: Path, reference: str,
                     self_reported: set[str] = frozenset(),
                     plain: tuple[tuple[str, tuple[list[str], list[list[str]]], str], ...] = ()) -> str:
    """The page for the per-pair frame ``df`` and the across-pairs frame ``across`` (the CSV's and the
    markdown's frames) of ``records``; ``folder`` is where it will be written (its PNGs are embedded, its
    videos linked); ``reference`` is the method differences are taken against; ``self_reported`` the policies
    trained elsewhere, marked so; ``plain`` more tables, (title, (header, rows), note) each, shown as they are
    after the across-pairs table."""
    folder = Path(folder)
    sections = [(title.lower().replace(" ", "-"), title, table, note) for title, table, note in plain]
    extra = "\n".join(_plain_section(sid, name, *table, note) for sid, name, table, note in sections)
    links = "".join(f'<a href="#{sid}">{html.escape(name)}</a>' for sid, name, _, _ in sections)
    pairs = _table("pairs", df, pair_columns(df, reference, self_reported)) if not df.empty else "<p>No rows.</p>"
    across_table = _table("across", across, across_columns()) if not across.empty else "<p>No rows.</p>"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{PAGE_CSS}</style>
</head>
<body>
<header><h1>{html.escape(title)}</h1>
<p class="lede">{html.escape(summary)}</p>
{_facts(records, df) if records else ""}
<nav><a href="#how">How to read this</a><a href="#per-pair">Per pair</a><a href="#across-pairs">Across pairs</a>
{links}<a href="#figures">Figures</a></nav></header>
{_how_to_read(reference)}
<section id="per-pair"><h2>Per pair</h2>
{_controls("pairs", df) if not df.empty else ""}
{pairs}
<p class="note">{html.escape(pair_note)}</p></section>
<section id="across-pairs"><h2>Across pairs</h2>
{across_table}
<p class="note">{html.escape(across_note)}</p></section>
{extra}
<section id="figures"><h2>Figures</h2>
{_figures(folder) if folder.is_dir() else ""}
</section>
{_media(folder)}
<script>{PAGE_JS}</script>
</body>
</html>
"""
