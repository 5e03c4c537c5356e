"""The toy pairs (tasks/toy.py) in the suite: their harness hooks (`harness`: sampled demos, the toy policy
and its normalizer, exact evaluation), and `cotrain toy`, which measures the study's toy findings through
ordinary harness runs (`grid`: the runs; `summary`: `results/toy/summary.md`; `figures`; `stats`)."""
from benchmark.toy.grid import FULL, ToySize
from benchmark.toy.summary import toy_study

__all__ = ["FULL", "ToySize", "toy_study"]
