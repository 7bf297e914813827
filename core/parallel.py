"""Run blocking work (HTTP requests) on a thread pool while the calling thread reports progress and watches cancel.

QGIS feedback objects belong to the thread that runs the algorithm, so workers never touch them:
the calling thread polls, calls ``on_poll`` and ``is_canceled`` itself, and sets a stop event that
workers check between chunks of work.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait


def map_polling(function: Callable, items: Iterable, *, workers: int, on_poll: Callable[[int], None] | None = None,
                is_canceled: Callable[[], bool] | None = None, poll_seconds: float = 0.1) -> tuple[list, bool]:
    """``[function(item, stop_event) for item in items]`` in parallel; returns (results, canceled).

    ``on_poll(finished_count)`` runs in the calling thread about every ``poll_seconds``. When the
    caller cancels, the stop event is set and the results of unfinished items are None. An exception
    in a worker stops the others and is raised here.
    """
    items = list(items)
    results: list = [None] * len(items)
    stop = threading.Event()
    canceled = False
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="spacenet") as pool:
        futures = {pool.submit(function, item, stop): index for index, item in enumerate(items)}
        pending, finished_count = set(futures), 0
        try:
            while pending:
                finished, pending = wait(pending, timeout=poll_seconds, return_when=FIRST_COMPLETED)
                for future in finished:
                    results[futures[future]] = future.result()
                    finished_count += 1
                if on_poll:
                    on_poll(finished_count)
                if not canceled and is_canceled and is_canceled():
                    canceled = True
                    stop.set()
        finally:
            stop.set()  # also on an exception: the other workers return at their next check
    return results, canceled
