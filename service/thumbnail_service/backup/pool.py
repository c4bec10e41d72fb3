"""Run a blocking function over many items on a few threads, with a bounded backlog."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def run_all(fn: Callable[[T], R], items: Iterable[T], threads: int) -> Iterator[R]:
    """Results in completion order. Items are taken from `items` only as threads free up
    (so a lazily decoded job list is never materialised); the first exception stops
    everything: nothing new starts, and it is raised once the running calls are done."""
    window = threads * 2
    pending: set[Future[R]] = set()
    source = iter(items)
    exhausted = False
    with ThreadPoolExecutor(threads, thread_name_prefix="backup") as executor:
        try:
            while True:
                while not exhausted and len(pending) < window:
                    try:
                        item = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    pending.add(executor.submit(fn, item))
                if not pending:
                    return
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
        finally:
            for future in pending:
                future.cancel()
