"""The harness around the policy: runs, their analysis, the study, the toy study, deployment, performance.

Subpackages, by what they do: `harness` (configs, runs, training, evaluation, sweeps, tracks),
`analysis` (metrics, statistics, leaderboards, plots, submissions), `study` (the study track's
analyses and claims), `toy` (the simulator-free toy study), `deploy` (export to a policy bundle and the
simulated stand-in arm; the robot side is the `cotrain_robot` package), `perf` (throughput benchmarks)
and `cli` (the `cotrain` command).
"""

__version__ = "0.2.0"  # the one place: setup.cfg, records and `cotrain --version` read it
