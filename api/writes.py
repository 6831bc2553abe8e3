"""API writes that wait for the warehouse's writer lock, without holding up reads.

A POST that makes a checkpoint needs the writer lock, which a pipeline run holds for minutes.
Waiting for it in the server's thread pool took one of the threads that serve reads per
waiting request: 45 waiting POSTs stalled a GET for 23 s (SPEC section 7: the API keeps
answering while a run writes). Writes therefore wait in a thread of their own, one at a time
(the lock lets one writer in anyway), each for the lock at most until `api_write_wait_seconds`
after its arrival, queueing included (one whose time ran out in the queue still tries the lock
once), and no more than MAX_WAITING of them at once; otherwise 409.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from flows.errors import WarehouseBusyError

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_WAITING = 64
# Who holds the lock (pid, host, purpose) and where the warehouse is stay in the server's log.
BUSY = "a pipeline run is writing the warehouse; try again when it has finished"


class WriteQueue:
    def __init__(self, wait_seconds: float, max_waiting: int = MAX_WAITING) -> None:
        self.wait_seconds = wait_seconds
        self.max_waiting = max_waiting
        self.waiting = 0  # changed on the event loop only
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="api-write")

    async def run(self, work: Callable[[float], T]) -> T:
        """`work(seconds it may wait for the lock)` in the writers' thread."""
        if self.waiting >= self.max_waiting:
            raise WarehouseBusyError(BUSY)
        deadline = time.monotonic() + self.wait_seconds
        loop = asyncio.get_running_loop()
        self.waiting += 1
        try:
            return await loop.run_in_executor(
                self._pool, lambda: work(max(0.0, deadline - time.monotonic()))
            )
        except WarehouseBusyError as err:
            log.warning("an API write gave up waiting: %s", err.message)
            raise WarehouseBusyError(BUSY) from None
        finally:
            self.waiting -= 1
