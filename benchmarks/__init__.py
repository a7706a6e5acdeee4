"""Reproducible throughput, latency and memory benchmarks for longline, with baselines.

Run ``python -m benchmarks capture`` for the full suite (a few minutes) or ``python -m benchmarks
smoke`` for a seconds-long run that only proves the harness works (CI). Every longline figure is
measured in the same run as the baselines it is compared with, against the local provider
running in another process, on loopback. See docs/benchmarks.md.
"""
