"""Long checks, run with `./scripts/test.sh -m slow`: training to a success rate."""
from __future__ import annotations

import pytest

from benchmark.harness.config import RunConfig
from benchmark.harness.run import execute_run


@pytest.mark.slow
def test_target_only_learns_lift_from_50_demos(tmp_path):
    """The diffusion policy reaches most of the expert's success on the easiest pair's source domain
    (magnitude 0) from 50 demos at the quick profile."""
    record = execute_run(RunConfig(pair="lift/dynamics", method="target_only", magnitude=0.0, n_target=50,
                                   n_source=1, profile="quick", episodes=30), tmp_path, progress=False)
    assert record["eval"]["target"]["success_rate"] >= 0.6, record["eval"]["target"]

