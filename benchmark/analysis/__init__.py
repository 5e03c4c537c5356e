"""Analysis of finished runs: the representation metrics, interval statistics, leaderboards with
their figures, metric-against-success analyses and validated submissions to a published board."""
