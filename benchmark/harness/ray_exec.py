"""Sweeps on Ray, with no folder shared between the driver and the nodes.

Each run is a Ray task asking for what the run uses (`task_options`: its CPU threads or evaluation workers, one
GPU for a `cuda` device). The task runs in a fresh scratch folder on its node (`run_in_scratch`, under the node's
temporary folder, `TMPDIR`), with the node's demo cache beside it (demos are deterministic from their seeds, so
each node makes or reuses its own). What it is given and what it returns travel as bytes through Ray: the
driver's run folder as it is (a resumed run goes on from its last stage), for a no-gap evaluation also its
trained run's folder (record and checkpoint); back comes the whole run folder, which the **driver** writes under
its runs folder. The driver holds each run's lock while the run is out, as a local run holds it while it works.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from benchmark.harness.lock import LOCK_FILE, RunInProgress, run_lock
from benchmark.harness.grid import NoGapEval
from benchmark.harness.jobs import InProgressElsewhere, Item, run_item

if TYPE_CHECKING:
    from tqdm import tqdm

SCRATCH = "cotrain-scratch"  # a node's scratch root, in its temporary folder: `_demos/` and one folder per task
MAX_IN_FLIGHT = 256  # tasks submitted at once (each holds its run's lock on the driver, one open file)
Files = dict[str, bytes]  # a folder's files by their path relative to it


@dataclass(frozen=True)
class TaskOutput:
    """What a task sends back: the run's id, its error (None: finished), its folder's files, and where it ran."""

    run_id: str
    error: str | None
    files: Files
    node_id: str
    scratch: str


def task_options(item: Item) -> dict[str, Any]:
    """The Ray resources a run asks for: a CPU per training thread or evaluation worker (whichever is more; the
    two stages do not overlap), and one GPU where its device is `cuda` (Ray shows a task only the GPUs it got)."""
    cfg = item.trained if isinstance(item, NoGapEval) else item
    kind, _, index = cfg.device.partition(":")
    if kind == "cuda" and index not in ("", "0"):
        raise ValueError(f"device {cfg.device!r}: a Ray task sees only the one GPU it is given; use --device cuda")
    return {"num_cpus": max(cfg.threads, cfg.workers), "num_gpus": 1 if kind == "cuda" else 0}


def read_folder(folder: Path) -> Files:
    """Every file under `folder` (none where it does not exist), leaving out its lock and temporary files."""
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != LOCK_FILE and not p.name.startswith(".")}


def write_folder(folder: Path, files: Files) -> None:
    """Write `files` into `folder`, each atomically, the `done` marker last (an interrupted write leaves a run
    that resumes, never one that looks finished)."""
    for rel in sorted(files, key=lambda r: r == "done"):
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise ValueError(f"{rel!r} is not a path inside a run folder")
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(files[rel])
        os.replace(tmp, path)


def run_in_scratch(item: Item, track: dict | None, inputs: dict[str, Files]) -> TaskOutput:
    """On a node: lay out `inputs` (run id -> files) in a fresh runs folder of the node's scratch, execute `item`
    there, and return its run folder's files; the scratch folder is removed, the node's demo cache kept."""
    import ray

    root = Path(tempfile.gettempdir()) / SCRATCH
    (root / "_demos").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=root))
    try:
        (work / "_demos").symlink_to(root / "_demos")
        for run_id, files in inputs.items():
            write_folder(work / run_id, files)
        run_id, error = run_item(item, str(work), track)
        return TaskOutput(run_id, error, read_folder(work / run_id), ray.get_runtime_context().get_node_id(),
                          str(work))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _held(item: Item, runs_dir: Path) -> ExitStack | str | None:
    """Take the driver's lock of `item`'s run folder: the held lock, or what stops the run from being sent
    (an `InProgressElsewhere`, an error text, or None where it finished meanwhile)."""
    from benchmark.harness.errors import describe_os_error

    run_dir = runs_dir / item.run_id()
    hold = ExitStack()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        hold.enter_context(run_lock(run_dir))
    except RunInProgress as err:
        return InProgressElsewhere(err)
    except OSError as err:
        return describe_os_error(err)
    if (run_dir / "done").exists():
        hold.close()
        return None
    return hold


def _inputs(item: Item, runs_dir: Path) -> dict[str, Files]:
    """What a task is given: the run's folder as the driver has it and, for a no-gap evaluation, its trained run's."""
    inputs = {item.run_id(): read_folder(runs_dir / item.run_id())}
    if isinstance(item, NoGapEval):
        inputs[item.trained.run_id()] = read_folder(runs_dir / item.trained.run_id())
    return inputs


def _write_back(ref: Any, run_dir: Path) -> tuple[str | None, str | None]:
    """Fetch a finished task's output and write its run folder on the driver: (error or None, node id)."""
    import ray

    from benchmark.harness.errors import describe_os_error

    try:
        out: TaskOutput = ray.get(ref)
    except ray.exceptions.RayError as err:  # the task's worker or node was lost
        return f"{type(err).__name__}: {err}", None
    try:
        write_folder(run_dir, out.files)
    except OSError as err:
        return f"{describe_os_error(err)} (writing the run's folder on the driver)", out.node_id
    return out.error, out.node_id


@contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Connect to the cluster at `address` (default: start a local instance) for the block, unless this process
    is connected already."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def _warn_unplaceable(options: list[dict[str, Any]]) -> None:
    """Say where no node of the cluster has the resources a run asks for (its tasks wait for such a node)."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    for need in {tuple(sorted(o.items())) for o in options}:
        cpus, gpus = dict(need)["num_cpus"], dict(need)["num_gpus"]
        if not any(n.get("CPU", 0) >= cpus and n.get("GPU", 0) >= gpus for n in nodes):
            print(f"ray: no node has {cpus} CPUs and {gpus} GPUs, which runs ask for (--threads, --workers, "
                  f"--device); they wait until such a node joins the cluster")


def run_on_ray(todo: list[Item], runs_dir: Path, track: dict | None, bar: tqdm) -> dict[str, str | None]:
    """Run `todo` as Ray tasks on the connected cluster (`ray_session`); returns {run_id: error or None}, and
    prints how many runs each node ran."""
    import ray

    from benchmark.harness.errors import describe_os_error

    options = {item.run_id(): task_options(item) for item in todo}
    remote = ray.remote(run_in_scratch)
    results: dict[str, str | None] = {}
    pending: dict[Any, tuple[Item, ExitStack]] = {}
    nodes: Counter[str] = Counter()
    queue: Iterator[Item] = iter(todo)
    try:
        _warn_unplaceable(list(options.values()))
        while True:
            for item in queue:
                held = _held(item, runs_dir)
                if not isinstance(held, ExitStack):
                    results[item.run_id()] = held
                    bar.update(1)
                    continue
                try:
                    ref = remote.options(**options[item.run_id()]).remote(item, track, _inputs(item, runs_dir))
                except OSError as err:  # the driver could not read what the run is given
                    held.close()
                    results[item.run_id()] = describe_os_error(err)
                    bar.update(1)
                    continue
                except BaseException:
                    held.close()
                    raise
                pending[ref] = (item, held)  # the lock is kept while the run is out
                if len(pending) >= MAX_IN_FLIGHT:
                    break
            if not pending:
                break
            [ref], _ = ray.wait(list(pending), num_returns=1)
            item, hold = pending.pop(ref)
            with hold:
                results[item.run_id()], node = _write_back(ref, runs_dir / item.run_id())
            nodes[node or "lost"] += 1
            bar.update(1)
    finally:
        for _, hold in pending.values():
            hold.close()
    if nodes:
        print("ray: runs per node: " + ", ".join(f"{node} {n}" for node, n in sorted(nodes.items())))
    return results
