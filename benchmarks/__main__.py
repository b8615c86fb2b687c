"""``make bench``: every benchmark Aurora has, one after another."""
from aurora_tui.bench import BENCHMARKS, run_benchmark

for name in BENCHMARKS:
    run_benchmark(name)
