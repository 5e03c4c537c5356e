"""The harness around the policy: runs, their analysis, the study, the toy study, deployment, performance.

Subpackages, by what they do: `harness` (configs, runs, training, evaluation, sweeps, tracks),
`analysis` (metrics, statistics, leaderboards, plots, submissions), `study` (the study track's
analyses and claims), `toy` (the simulator-free toy study), `deploy` (export to a policy bundle and the
arm-side evaluation), `perf` (throughput benchmarks) and `cli` (the `cotrain` command).
"""
