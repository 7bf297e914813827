"""Timing shared by the benchmarks."""

import time


def best_time(function, repeats: int):
    """The fastest of ``repeats`` runs (the least disturbed by other work on the machine), and the last result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result
