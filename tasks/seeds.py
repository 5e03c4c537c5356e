"""Disjoint episode-seed ranges per purpose, so no two purposes ever share an initial state.

A run seed `s` (0 <= s < 1000) and a stream give the range
`STREAM_BASE[stream] + s * SPAN ... + SPAN - 1`. SPAN bounds the attempts rejection sampling
may make (demo generation fails loudly before crossing into the next range).
"""
from __future__ import annotations

STREAMS = ("source_demos", "target_demos", "replay", "validation", "test")
SPAN = 100_000
MAX_RUN_SEED = 1000
STREAM_BASE = {name: (i + 1) * SPAN * MAX_RUN_SEED for i, name in enumerate(STREAMS)}
# The start state whose frames an evaluation with frozen frames shows a policy throughout
# (`benchmark.harness.evaluate.EvalSpec.frozen_frames`): past every stream, so no run starts there.
FROZEN_FRAME_SEED = (len(STREAMS) + 1) * SPAN * MAX_RUN_SEED


def episode_seeds(stream: str, run_seed: int, count: int) -> list[int]:
    """The first `count` episode seeds of `stream` for `run_seed`."""
    if stream not in STREAM_BASE:
        raise ValueError(f"unknown seed stream {stream!r}; known: {', '.join(STREAMS)}")
    if not 0 <= run_seed < MAX_RUN_SEED:
        raise ValueError(f"run seed must be in [0, {MAX_RUN_SEED}), got {run_seed}")
    if not 0 <= count <= SPAN:
        raise ValueError(f"count must be in [0, {SPAN}], got {count}")
    start = STREAM_BASE[stream] + run_seed * SPAN
    return list(range(start, start + count))


def demo_stream(domain: str) -> str:
    """The seed stream of a domain's demonstrations."""
    return {"source": "source_demos", "target": "target_demos"}[domain]
