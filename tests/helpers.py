"""Small shared helpers for tests: deadlines instead of sleeps, free ports on 127.0.0.1."""
from __future__ import annotations

import asyncio
import socket
import time
from typing import Awaitable, Callable, TypeVar

T = TypeVar("T")

DEMO_PORTS = (5000, 5001, 5002, 8080)


def wait_until(predicate: Callable[[], T], timeout: float = 30.0, interval: float = 0.05, what: str = "condition") -> T:
    """Poll ``predicate`` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


async def async_wait_until(
    predicate: Callable[[], Awaitable[T] | T], timeout: float = 30.0, interval: float = 0.05, what: str = "condition"
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_demo_offset(start: int = 20000) -> int:
    """An offset N such that every demo port + N is free on 127.0.0.1 right now."""
    import random

    for _ in range(200):
        offset = random.randrange(start, 50000, 7)
        if all(port_is_free(p + offset) for p in DEMO_PORTS):
            return offset
    raise RuntimeError("no free demo port offset found")


def gone(pid: int) -> bool:
    """True when ``pid`` no longer runs. A zombie counts as gone: it holds nothing, and once its parent
    is dead it is PID 1's to reap, in PID 1's own time."""
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
