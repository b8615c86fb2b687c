"""What each action kind of a fix plan does: one function per kind of ``catalogue/actions.toml``, in a
registry checked against that file, so the closed set of actions is the same in data and in code.

Targets are re-identified (pid *and* create time *and* command line) right before any signal, and
nothing is run through a shell.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import dataclass
from typing import Awaitable, Callable

import psutil

from .fleet import Fleet
from .monitor_only import run_program
from .plans import Action, FixPlan, ProcessTarget, action_catalogue

log = logging.getLogger(__name__)

TERMINATE_WAIT = 5.0


class IdentityMismatch(RuntimeError):
    """The pid no longer belongs to the process the plan was made for."""


def identify(pid: int, role: str, owned_pids: set[int]) -> ProcessTarget | None:
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            return ProcessTarget(pid, proc.create_time(), tuple(proc.cmdline()), proc.uids().real, pid in owned_pids, role)
    except psutil.Error:
        return None


def check_identity(target: ProcessTarget) -> psutil.Process:
    """The live process, only if it is still the one the plan was made for."""
    try:
        proc = psutil.Process(target.pid)
        same = abs(proc.create_time() - target.create_time) < 0.05 and tuple(proc.cmdline()) == target.cmdline
    except psutil.NoSuchProcess:
        raise IdentityMismatch(f"pid {target.pid} is gone") from None
    except psutil.Error as exc:
        raise IdentityMismatch(f"pid {target.pid} cannot be inspected: {exc}") from None
    if not same:
        raise IdentityMismatch(f"pid {target.pid} now belongs to another program ({' '.join(proc.cmdline())[:80]}); not touched")
    return proc


@dataclass
class ActionContext:
    """What an action may reach: the fleet, and the healer's way of telling the operator."""

    fleet: Fleet
    notify: Callable[[FixPlan], Awaitable[str]]


Actuator = Callable[[ActionContext, Action, FixPlan], Awaitable[str]]


async def _restart(ctx: ActionContext, action: Action, plan: FixPlan) -> str:
    return await ctx.fleet.restart(_service(action))


async def _start(ctx: ActionContext, action: Action, plan: FixPlan) -> str:
    return await ctx.fleet.start(_service(action))


async def _stop(ctx: ActionContext, action: Action, plan: FixPlan) -> str:
    return await ctx.fleet.stop(_service(action))


async def _terminate(ctx: ActionContext, action: Action, plan: FixPlan) -> str:
    """SIGTERM, then SIGKILL after a wait; the service's own leader is stopped with its whole group."""
    target, service = _target(action), action.service
    runner = ctx.fleet.runners.get(service) if service else None
    if service and runner is not None and runner.alive and runner.pid == target.pid:
        await asyncio.to_thread(check_identity, target)
        await ctx.fleet.stop(service)
        return f"{service} (pid {target.pid}) terminated with its process group"
    proc = await asyncio.to_thread(check_identity, target)
    proc.send_signal(signal.SIGTERM)
    with contextlib.suppress(psutil.Error):
        proc.send_signal(signal.SIGCONT)
    try:
        await asyncio.to_thread(proc.wait, TERMINATE_WAIT)
        return f"pid {target.pid} ended after SIGTERM"
    except psutil.TimeoutExpired:
        await asyncio.to_thread(check_identity, target)  # still the same process before forcing it
        proc.send_signal(signal.SIGKILL)
        return f"pid {target.pid} ignored SIGTERM for {TERMINATE_WAIT:g}s; SIGKILL sent"
    except psutil.NoSuchProcess:
        return f"pid {target.pid} ended after SIGTERM"


async def _kill(ctx: ActionContext, action: Action, plan: FixPlan) -> str:
    target = _target(action)
    proc = await asyncio.to_thread(check_identity, target)
    proc.send_signal(signal.SIGKILL)
    return f"SIGKILL sent to pid {target.pid}"


async def _reap_zombies(ctx: ActionContext, action: Action, plan: FixPlan) -> str:
    return await ctx.fleet.reap_zombies(_service(action))


async def _backoff(ctx: ActionContext, action: Action, plan: FixPlan) -> str:
    return await ctx.fleet.backoff_until_stable(_service(action))


async def _throttle_probes(ctx: ActionContext, action: Action, plan: FixPlan) -> str:
    return ctx.fleet.throttle_probes(action.service)


async def _rotate_logs(ctx: ActionContext, action: Action, plan: FixPlan) -> str:
    return ctx.fleet.rotate_logs()


async def _rollback(ctx: ActionContext, action: Action, plan: FixPlan) -> str:
    return await ctx.fleet.rollback(_service(action))


def _program(kind: str) -> Actuator:
    """Run a monitor-only service's configured start or stop program; the guardians let such a plan
    run only once a human approved it (the program acts on a process Aurora does not own)."""

    async def run(ctx: ActionContext, action: Action, plan: FixPlan) -> str:
        svc = ctx.fleet.config.service(_service(action))
        argv = getattr(svc, kind)
        if svc.managed or not argv:
            raise ValueError(f"{svc.name} has no {kind}: Aurora does not act on a monitor-only service without one")
        return await run_program(argv, svc.cwd)

    run.__name__ = f"_{kind}"
    return run


async def _notify(ctx: ActionContext, action: Action, plan: FixPlan) -> str:
    return await ctx.notify(plan)


ACTUATORS: dict[str, Actuator] = {
    "restart": _restart,
    "start": _start,
    "stop": _stop,
    "terminate": _terminate,
    "free_port": _terminate,  # freeing a port is terminating its identified holder
    "kill": _kill,
    "reap_zombies": _reap_zombies,
    "backoff": _backoff,
    "throttle_probes": _throttle_probes,
    "rotate_logs": _rotate_logs,
    "rollback": _rollback,
    "start_command": _program("start_command"),
    "stop_command": _program("stop_command"),
    "notify": _notify,
}


async def execute(ctx: ActionContext, action: Action, plan: FixPlan) -> str:
    actuator = ACTUATORS.get(action.kind)
    if actuator is None:
        raise ValueError(f"unknown action {action.kind!r}")
    return await actuator(ctx, action, plan)


def check_registry() -> None:
    """The code's actions and the catalogue's are the same set (a test and start-up call this)."""
    declared, implemented = set(action_catalogue()), set(ACTUATORS)
    if declared != implemented:
        raise RuntimeError(
            f"actions.toml and the actuators disagree: only in the catalogue {sorted(declared - implemented)}, "
            f"only in code {sorted(implemented - declared)}"
        )


def _service(action: Action) -> str:
    if not action.service:
        raise ValueError(f"{action.kind} needs a service")
    return action.service


def _target(action: Action) -> ProcessTarget:
    if action.target is None:
        raise ValueError(f"{action.kind} needs an identified target process")
    return action.target
