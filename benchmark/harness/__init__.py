"""The harness: a run's config and its hash, demo caching, training, evaluation in the target and the
source, the representation measures of a trained policy, sweeps of runs (local processes or Ray), the
committed tracks (`tracks/*.yaml`), the recipe search and the quickstart."""
