"""The repository as a whole: it cites only documents it contains, and states its version once."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".py", ".md", ".cfg", ".toml", ".yaml", ".yml", ".sh", ".txt", ".cff", ".json"}
DOC_NAME = re.compile(r"(?<![\w/.<>-])((?:[\w.-]+/)+[\w-]+\.md|[A-Z][A-Z_]*\.md)\b")  # a path, or a bare upper-case name
MD_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    return [ROOT / n for n in names if Path(n).suffix in TEXT_SUFFIXES and (ROOT / n).is_file()]


def missing_citations(files: list[Path]) -> list[str]:
    """`file: name` for every document a file cites that the repository lacks: a bare upper-case
    markdown file name, a markdown path (from the root or the file's folder) or a markdown link.
    Lower-case bare names are output files a command writes (the leaderboard's), not citations."""
    basenames = {f.name for f in _tracked_text_files()}
    missing = []
    for f in files:
        text = f.read_text(errors="replace")
        for name in DOC_NAME.findall(text):
            if "/" in name and not name.startswith("../") and not (ROOT / name.split("/")[0]).is_dir():
                continue  # a path under a folder the repository has none of: an output a command writes
            exists = (ROOT / name).exists() or (f.parent / name).exists() if "/" in name else name in basenames
            if not exists:
                missing.append(f"{f.relative_to(ROOT)}: {name}")
        if f.suffix == ".md":
            for link in MD_LINK.findall(text):
                if "://" not in link and not link.startswith("mailto:") and not (f.parent / link).exists():
                    missing.append(f"{f.relative_to(ROOT)}: {link}")
    return sorted(set(missing))


def test_no_file_cites_a_document_the_repository_lacks():
    assert missing_citations(_tracked_text_files()) == []


def test_the_citation_check_sees_a_missing_document():
    readme = ROOT / "README.md"
    cited = [readme, ROOT / "docs" / "PROTOCOL.md"]
    assert missing_citations(cited) == []
    stray = ROOT / "tests" / "_stray_citation.txt"
    paper, design = "PAPER" + ".md", "../DESIGN" + ".md"  # spelled apart: this file cites neither
    stray.write_text(f"As argued in {paper} and [the design]({design}).\n")
    try:
        assert missing_citations([*cited, stray]) == [f"tests/_stray_citation.txt: {design}",
                                                      f"tests/_stray_citation.txt: {paper}"]
    finally:
        stray.unlink()


def test_the_version_is_stated_once():
    from benchmark import __version__
    from benchmark.harness.config import SUITE_VERSION

    out = subprocess.run([sys.executable, "-m", "benchmark.cli", "--version"], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == f"cotrain-bench {__version__}" and SUITE_VERSION == __version__
    assert "attr: benchmark.__version__" in (ROOT / "setup.cfg").read_text()
    assert (ROOT / "LICENSE").exists() and f"version: {__version__}" in (ROOT / "CITATION.cff").read_text()


@pytest.mark.parametrize("package", ["tasks", "baselines"])
def test_tasks_and_baselines_never_import_the_harness(package):
    code = f"import sys, {package}, pkgutil, importlib\n" \
           f"for m in pkgutil.walk_packages({package}.__path__, '{package}.'):\n" \
           "    importlib.import_module(m.name)\n" \
           "print(sorted(n for n in sys.modules if n == 'benchmark' or n.startswith('benchmark.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_importing_tasks_loads_no_simulator_backend():
    """`import tasks` (which every command and record reader does) leaves robosuite and numba to the first env."""
    code = "import sys, tasks; print(sorted({'robosuite', 'numba'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
