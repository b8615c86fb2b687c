"""Shared fixtures. Every test runs under a guard that fails it if a process it started survives."""
from __future__ import annotations

import os
import signal
import time
import uuid

import psutil
import pytest

TAG_VAR = "AURORA_TEST_TAG"


def _tagged(proc: psutil.Process, tag: str) -> bool:
    try:
        return proc.environ().get(TAG_VAR) == tag
    except (psutil.Error, OSError):
        return False


def _survivors(tag: str, me: int) -> list[psutil.Process]:
    found: dict[int, psutil.Process] = {}
    try:
        for child in psutil.Process(me).children(recursive=True):
            found[child.pid] = child
    except psutil.Error:
        pass
    for proc in psutil.process_iter():
        if proc.pid != me and proc.pid not in found and _tagged(proc, tag):
            found[proc.pid] = proc
    alive = []
    for proc in found.values():
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.Error:
            pass
    return alive


@pytest.fixture(autouse=True)
def no_leftover_processes(monkeypatch):
    """Tag every process the test starts (through the inherited environment) and fail if any survives it."""
    tag = uuid.uuid4().hex
    monkeypatch.setenv(TAG_VAR, tag)
    me = os.getpid()
    yield tag
    deadline = time.monotonic() + 10.0
    survivors = _survivors(tag, me)
    while survivors and time.monotonic() < deadline:
        time.sleep(0.1)
        survivors = _survivors(tag, me)
    if survivors:
        described = []
        for proc in survivors:
            try:
                described.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
                os.killpg(proc.pid, signal.SIGKILL) if os.getpgid(proc.pid) == proc.pid else proc.kill()
            except (psutil.Error, OSError):
                pass
        pytest.fail("processes left behind by the test:\n  " + "\n  ".join(described))
