"""The harness: runs, evaluation, metrics, sweeps, leaderboards, export and the arm adapter."""
