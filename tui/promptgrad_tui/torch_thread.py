"""Torch work from the TUI runs in a thread of its own that ends when the work does.

Textual's thread workers run on asyncio's shared pool, whose threads live on. PyTorch's CPU kernels
parallelise with OpenMP, and each thread that starts parallel work gets a team of worker threads for
as long as it lives. Once two teams existed on a small machine (a probe answered on one pool thread
while the run trained on another), the run trained about 20% slower for the rest of its steps
(SmolLM2, bf16, 2 cores: 45.6 against 35.6 examples/s), most likely because libgomp, counting more
threads than cores, stops spinning between kernels (one such run made 164,000 voluntary context
switches against 1,000). A thread that ends takes its team with it.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def in_own_thread(work: Callable[[], T], name: str) -> T:
    """Run `work` in a new thread, wait for it, and return its result or raise its exception."""
    with ThreadPoolExecutor(1, thread_name_prefix=name) as pool:  # its one thread ends with the `with`
        return pool.submit(work).result()
