"""How long steps report progress without printing: the CLI installs a reporter, library code
calls `advance()`. Without a reporter (tests, schedulers, the API) the calls do nothing.

A module-level reporter rather than a parameter because Prefect serialises flow parameters, and
a terminal progress bar is no business of a flow run's record.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class Reporter(Protocol):
    def start(self, step: str, total: int | None) -> None: ...
    def advance(self, step: str, amount: int = 1) -> None: ...
    def finish(self, step: str) -> None: ...


_reporter: Reporter | None = None


def install(reporter: Reporter | None) -> None:
    global _reporter
    _reporter = reporter


@contextmanager
def step(name: str, total: int | None = None) -> Iterator[None]:
    if _reporter is not None:
        _reporter.start(name, total)
    try:
        yield
    finally:
        if _reporter is not None:
            _reporter.finish(name)


def advance(name: str, amount: int = 1) -> None:
    if _reporter is not None:
        _reporter.advance(name, amount)
