"""Monitor-only services (``managed = false``): finding a process Aurora did not start, noticing that
someone else restarted it, and running the start or stop program a human approved.

Aurora never signals such a process itself. The only way it acts on one is :func:`run_program`, and
only from a plan a human approved (guardian L1).
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import tempfile
from pathlib import Path
from typing import Callable, Iterable

import psutil

from .config import ServiceConfig
from .model import ServiceSample

# How long a start or stop program may run before it is killed with its process group.
PROGRAM_TIMEOUT = 30.0
OUTPUT_KEPT = 400


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def from_pidfile(path: str) -> tuple[int | None, str]:
    """The pid a pid file names, if that process runs; else None and why not."""
    try:
        text = Path(path).read_text().strip()
    except FileNotFoundError:
        return None, f"pid file {path} does not exist"
    except OSError as exc:
        return None, f"pid file {path} cannot be read: {exc.strerror or exc}"
    if not text.isdigit() or int(text) <= 0:
        return None, f"pid file {path} does not hold a pid ({text[:40]!r})"
    pid = int(text)
    if not _running(pid):
        return None, f"pid file {path} names pid {pid}, which is not running"
    return pid, f"pid {pid} from pid file {path}"


def by_match(pattern: str, exclude: Iterable[int]) -> tuple[int | None, str]:
    """The oldest process whose joined command line contains ``pattern`` (like Monit's ``matching``):
    the oldest, because a server's workers and helpers usually start after its master."""
    regex = re.compile(pattern)
    skip = set(exclude)
    found: list[tuple[float, int]] = []
    for proc in psutil.process_iter(["pid", "cmdline", "create_time", "status"]):
        info = proc.info
        if info["pid"] in skip or not info["cmdline"] or info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if regex.search(" ".join(info["cmdline"])):
            found.append((info["create_time"] or 0.0, info["pid"]))
    if not found:
        return None, f"no process's command line matches {pattern!r}"
    pid = min(found)[1]
    return pid, f"pid {pid}, whose command line matches {pattern!r}"


def by_port(port: int, listeners: Callable[[int], list[int | None]]) -> tuple[int | None, str]:
    holders = [p for p in listeners(port) if p is not None]
    if not holders:
        return None, f"nothing listens on port {port}"
    return holders[0], f"pid {holders[0]}, listening on port {port}"


def locate(svc: ServiceConfig, listeners: Callable[[int], list[int | None]]) -> tuple[int | None, str]:
    """The process of a monitor-only service, found the way its config says, and how it was found
    (or why it was not). A pid file or match, when given, decides; the port is the last resort."""
    if svc.pidfile is not None:
        return from_pidfile(svc.pidfile)
    if svc.match is not None:
        # Aurora's own command line may contain the pattern (it was given on it); never count itself.
        return by_match(svc.match, {os.getpid()})
    if svc.port is not None:
        return by_port(svc.port, listeners)
    return None, "no pidfile, match or port to find it by"


def pid_change(previous: ServiceSample | None, current: ServiceSample) -> tuple[int, int] | None:
    """(old pid, new pid) when the process found is another one than at the previous sample: someone
    else restarted the service. A different create time under the same pid is another process too."""
    if previous is None or previous.process is None or current.process is None:
        return None
    old, new = previous.process, current.process
    if old.pid == new.pid and abs(old.create_time - new.create_time) < 0.05:
        return None
    return old.pid, new.pid


async def run_program(argv: tuple[str, ...], cwd: str | None, timeout: float = PROGRAM_TIMEOUT) -> str:
    """Run a start or stop program with no shell, in its own session, and wait for it; at the timeout
    its whole process group is killed. Raises RuntimeError when it fails or times out, with its output.

    Output goes to a file, not a pipe: a start program that leaves the server running in the
    background hands it its stdout, and a pipe would then never reach its end."""
    with tempfile.TemporaryFile() as out:
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=cwd, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
        )
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except (asyncio.TimeoutError, asyncio.CancelledError) as exc:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await asyncio.shield(proc.wait())
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise RuntimeError(f"{argv[0]} still ran after {timeout:g}s; killed with its process group") from None
        out.seek(0)
        text = out.read().decode(errors="replace").strip()[-OUTPUT_KEPT:]
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} exited with status {proc.returncode}" + (f": {text}" if text else ""))
    return f"{' '.join(argv)[:120]} exited 0" + (f": {text}" if text else "")
