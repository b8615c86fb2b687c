"""Runs one managed service: spawns it in its own process group, notices its exit at once, stops it.

Exit is noticed through a pidfd registered with the event loop, so a crash is seen the moment the kernel
reports it, not at the next scan, and no thread per child is needed. Output is read from a non-blocking
pipe into a :class:`LogSink`. Nothing is ever run through a shell: the command is an argv list.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

from . import procfs
from .config import ServiceConfig
from .lineage import Descendants
from .logsink import LogSink
from .model import ExitInfo, ProcessIdentity, ServiceState

log = logging.getLogger(__name__)

ExitCallback = Callable[["ServiceRunner", ExitInfo], None]
StateCallback = Callable[["ServiceRunner", ServiceState, ServiceState], None]

# How long to wait for a SIGKILLed group before reporting the stop as stuck (a process in
# uninterruptible sleep can outlive SIGKILL for a while).
KILL_WAIT = 5.0


def signal_name(returncode: int) -> str | None:
    if returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to a whole process group; False when the group no longer exists."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return False


class ServiceRunner:
    def __init__(
        self,
        config: ServiceConfig,
        log_dir: Path,
        on_exit: ExitCallback,
        on_state: StateCallback,
        descendants: Descendants | None = None,
    ) -> None:
        self.config = config
        # Whatever the service forks, even into its own session or process group (see lineage.py).
        self.descendants = descendants
        self.name = config.name
        self.state = ServiceState.STOPPED
        self.identity: ProcessIdentity | None = None
        self.started_at: float | None = None
        self.restarts = 0
        self.starts = 0
        self.last_exit: ExitInfo | None = None
        self.spawn_error: str | None = None
        # Whether the current run has passed a health check yet (an exit before it is a failed start).
        self.healthy_since_start = False
        # Leaders of earlier runs and when they ended: a dying process may still be listed on the port
        # for a moment, and it is still this service's, not a stranger's.
        self.previous: list[tuple[int, float]] = []
        self.sink = LogSink(log_dir / f"{self.name}.log")
        self._on_exit = on_exit
        self._on_state = on_state
        self._popen: subprocess.Popen[bytes] | None = None
        self._exited: asyncio.Future[ExitInfo] | None = None
        self._expect_exit = False

    # --- queries -------------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self.identity.pid if self.identity else None

    @property
    def alive(self) -> bool:
        """Whether the leader runs now, as the kernel sees it: spawned, not reaped, and not a zombie.
        An exit the reaper has not collected yet (a zombie) is an exit all the same, so status, health
        and every actuator go by this, never by the bookkeeping alone."""
        stat = self.leader_stat()
        return stat is not None and stat.state not in procfs.ENDED_STATES

    def leader_stat(self) -> procfs.Stat | None:
        """The leader's stat line while its pid is ours (spawned, its exit not collected): one read
        that says both whether it is alive and whether it is stopped, as the kernel sees it now."""
        return procfs.read_stat(self._popen.pid) if self._unreaped and self._popen is not None else None

    @property
    def _unreaped(self) -> bool:
        """Spawned and its exit not collected yet: until then the pid stays ours and must be waited for."""
        return self._popen is not None and self._popen.returncode is None

    @property
    def exited_unreaped(self) -> bool:
        """The leader has exited (a zombie, or gone) but its exit has not been collected yet."""
        return self._unreaped and not self.alive

    async def reaped(self, timeout: float) -> bool:
        """Wait (up to ``timeout``) for an exited leader's exit to be collected; True once it is."""
        exited = self._exited
        if self.exited_unreaped and exited is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(exited), timeout)
        return not self._unreaped or self.alive

    def uptime(self, now: float | None = None) -> float | None:
        if not self.alive or self.started_at is None:
            return None
        return max(0.0, (now or time.time()) - self.started_at)

    def set_state(self, new: ServiceState) -> None:
        old = self.state
        if old is new:
            return
        self.state = new
        self._on_state(self, old, new)

    # --- lifecycle -----------------------------------------------------------------------------------

    def spawn(self) -> bool:
        """Start the process now. Returns False (state ``failed``) when it cannot be spawned at all."""
        if self._unreaped:
            if self.alive:
                return True
            # The last leader exited and its exit is not collected yet: a second leader now would
            # have the first one's exit reported as its own.
            self.spawn_error = f"pid {self.pid} exited and is not reaped yet"
            return False
        loop = asyncio.get_running_loop()
        env = {**os.environ, **dict(self.config.env), **(self.descendants.env if self.descendants else {})}
        try:
            popen = subprocess.Popen(
                list(self.config.command),
                cwd=self.config.cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own session and process group: stop signals reach the whole tree
                close_fds=True,
                preexec_fn=self.descendants.preexec() if self.descendants else None,
            )
        except OSError as exc:
            self.spawn_error = f"cannot start {self.config.command[0]!r}: {exc.strerror or exc}"
            self.set_state(ServiceState.FAILED)
            self.sink.mark(self.spawn_error)
            return False
        self.spawn_error = None
        self.healthy_since_start = False
        self._popen = popen
        if self.descendants is not None:
            self.descendants.started(popen.pid)
        self._expect_exit = False
        self._exited = loop.create_future()
        self.started_at = time.time()
        self.starts += 1
        self.identity = ProcessIdentity(popen.pid, self.started_at, tuple(self.config.command))
        self.read_identity()
        # The exit watcher and the output reader first: nothing that can fail (a log write on a full
        # disk) may stand between a spawned process and the watcher that notices its exit.
        pidfd = os.pidfd_open(popen.pid)
        loop.add_reader(pidfd, self._reap, popen, pidfd)
        assert popen.stdout is not None
        out_fd = popen.stdout.fileno()
        os.set_blocking(out_fd, False)
        loop.add_reader(out_fd, self._read_output, popen)
        self.set_state(ServiceState.STARTING)
        self.sink.mark(f"started pid {popen.pid}: {' '.join(self.config.command)}")
        return True

    def read_identity(self) -> bool:
        """Read the running leader's identity from /proc; False until it has exec'd (see
        :func:`procfs.identity` for how that is told).

        A vfork()ed child releases its parent inside execve, before the kernel has laid out the new
        argv, so a read right after spawn can see an empty command line: an identity stored then
        would never match the process again, and a later engine could not recognise it. Until then
        the identity holds what exec cannot change (start time, group, session) and no command line,
        rather than a guess."""
        if self.identity is None or not self.alive:
            return False
        found = procfs.identity(self.identity.pid)
        if found is None:
            if self.identity.starttime is None:
                self.identity = procfs.early_identity(self.identity.pid, ()) or self.identity
            return False
        self.identity = found
        return True

    async def stop(self, timeout: float | None = None) -> ExitInfo | None:
        """SIGTERM the group, wait ``stop_timeout``, then SIGKILL it. Returns how the process ended."""
        popen, exited = self._popen, self._exited
        # A zombie leader is still waited for: the stop is over once its exit has been collected.
        if popen is None or exited is None or not self._unreaped:
            if self.state not in (ServiceState.FAILED,):
                self.set_state(ServiceState.STOPPED)
            return self.last_exit
        self._expect_exit = True
        self.set_state(ServiceState.STOPPING)
        pgid = popen.pid
        self._signal_all(pgid, signal.SIGTERM)
        # A stopped (SIGSTOP) process keeps SIGTERM pending until it is continued.
        self._signal_all(pgid, signal.SIGCONT)
        wait = self.config.stop_timeout if timeout is None else timeout
        try:
            info = await asyncio.wait_for(asyncio.shield(exited), wait)
        except asyncio.TimeoutError:
            self.sink.mark(f"did not stop within {wait:.1f}s of SIGTERM; sending SIGKILL")
            self._signal_all(pgid, signal.SIGKILL)
            info = await asyncio.wait_for(asyncio.shield(exited), KILL_WAIT)
        await self.clear_descendants()
        return info

    def _signal_all(self, pgid: int, sig: int) -> None:
        signal_group(pgid, sig)
        if self.descendants is not None:
            self.descendants.signal(sig)

    async def clear_descendants(self) -> list[int]:
        """Kill what is left of earlier runs (workers holding the port, daemons that left the group)
        and wait until it is gone, so a new run starts on a clean slate. Returns who was left."""
        if self.descendants is None or self.alive:
            return []
        left = await asyncio.to_thread(self.descendants.clear, KILL_WAIT)
        if left:
            self.sink.mark(f"killed {len(left)} descendants left by the last run: {' '.join(map(str, left))}")
        return left

    def send_signal(self, sig: int) -> bool:
        """Signal the leader only. Safe against pid reuse: the pid stays ours until we reap it."""
        if not self.alive or self._popen is None:
            return False
        try:
            self._popen.send_signal(sig)
            return True
        except ProcessLookupError:
            return False

    # --- loop callbacks ------------------------------------------------------------------------------

    def _read_output(self, popen: subprocess.Popen[bytes]) -> None:
        assert popen.stdout is not None
        fd = popen.stdout.fileno()
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self.sink.write(data)
            return
        asyncio.get_running_loop().remove_reader(fd)
        popen.stdout.close()

    def _reap(self, popen: subprocess.Popen[bytes], pidfd: int) -> None:
        returncode = popen.poll()
        if returncode is None:
            return
        loop = asyncio.get_running_loop()
        loop.remove_reader(pidfd)
        os.close(pidfd)
        # The exit is recorded and the state set before anything that can fail (signalling leftovers,
        # writing the log, the listeners): a failure there must never leave a dead service "stopping".
        now = time.time()
        info = ExitInfo(
            ts=now,
            code=returncode if returncode >= 0 else None,
            signal=signal_name(returncode),
            expected=self._expect_exit,
            runtime=now - (self.started_at or now),
            was_healthy=self.healthy_since_start,
        )
        self.last_exit = info
        self.previous = [(pid, ts) for pid, ts in self.previous if now - ts < 30.0] + [(popen.pid, now)]
        if self._exited is not None and not self._exited.done():
            self._exited.set_result(info)
        if info.expected:
            self.set_state(ServiceState.STOPPED)
        try:
            # Like systemd's control-group kill mode: whatever the dead leader left in its group (workers,
            # helpers holding its port) goes with it, so the next start finds a clean slate.
            self._signal_all(popen.pid, signal.SIGKILL)
        except OSError as exc:
            log.warning("could not signal what %s's pid %d left behind: %s", self.name, popen.pid, exc)
        self.sink.mark(f"pid {popen.pid} {info.describe()}" + ("" if info.expected else " (unexpected)"))
        try:
            self._on_exit(self, info)
        except Exception:  # the exit is recorded; one broken listener must not hide it from the rest
            log.exception("handling the exit of %s (pid %d) failed", self.name, popen.pid)

    def close(self) -> None:
        self.sink.close()
