"""Small test helpers shared by every test package: polling with a deadline instead of fixed sleeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout_s: float = 30.0, interval_s: float = 0.05,
               what: str = "condition") -> T:
    """Poll `predicate` until it returns a truthy value; fail with `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what} (last value {value!r})")
        time.sleep(interval_s)


async def async_wait_until(predicate: Callable[[], Awaitable[T]] | Callable[[], T], timeout_s: float = 30.0,
                           interval_s: float = 0.05, what: str = "condition") -> T:
    """Async form of wait_until; `predicate` may be a plain or an async callable."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what} (last value {value!r})")
        await asyncio.sleep(interval_s)
