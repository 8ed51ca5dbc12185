"""Run the generator's jobs on all cores, results in job order."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import cv2

Job = TypeVar("Job")
Result = TypeVar("Result")


def _single_threaded() -> None:
    """Pool initializer: one OpenCV thread per worker, or workers fight over the cores."""
    cv2.setNumThreads(1)


def ordered_map(function: Callable[[Job], Result], jobs: Sequence[Job], workers: int,
                chunksize: int = 2) -> Iterator[Result]:
    """``map(function, jobs)`` over ``workers`` processes, yielding in job order.

    ``function`` must be importable at module level. Workers come from a forkserver that
    preloads ``function``'s module: forking the caller itself can deadlock the children when
    another of its threads holds a lock (OpenCV's pool, a test runner's).
    """
    if workers <= 1:
        yield from map(function, jobs)
        return
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([function.__module__])
    with context.Pool(workers, initializer=_single_threaded) as pool:
        yield from pool.imap(function, jobs, chunksize=chunksize)
