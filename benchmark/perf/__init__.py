"""Throughput benchmarks that print ratios measured in one run: rollouts (`rollout`), training
(`python -m benchmark.perf.train`) and rendering (`python -m benchmark.perf.render`)."""
