"""The action registry: the same closed set as catalogue/actions.toml, and targets re-identified on real
processes before any signal."""
from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from aurora_tui.core.actuators import ACTUATORS, ActionContext, IdentityMismatch, check_registry, execute, identify
from aurora_tui.core.events import EventBus
from aurora_tui.core.fleet import Fleet
from aurora_tui.core.plans import Action, FixPlan, action_catalogue
from aurora_tui.core.records import Records

from .fleet import script_fleet


def test_the_registry_is_the_catalogue():
    check_registry()
    assert set(ACTUATORS) == set(action_catalogue())


@pytest.fixture
def context(tmp_path):
    config = script_fleet(tmp_path, {"idle": {"script": "import time; time.sleep(600)"}})

    async def notify(plan: FixPlan) -> str:
        return f"told the operator about {plan.service}"

    return ActionContext(Fleet(config, Records(tmp_path / "unused.db"), EventBus()), notify)


@pytest.fixture
def sleeper():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield proc
    proc.kill()
    proc.wait(10)


def _plan(action: Action) -> FixPlan:
    return FixPlan("idle", "orphaned_children", None, [action], 8, "test", {}, time.time())


async def test_terminate_ends_the_identified_process(context, sleeper):
    target = identify(sleeper.pid, "orphan", owned_pids=set())
    assert target is not None and not target.owned
    action = Action("terminate", None, target)
    result = await execute(context, action, _plan(action))
    assert result == f"pid {sleeper.pid} ended after SIGTERM"
    assert sleeper.wait(10) is not None and not psutil.pid_exists(sleeper.pid)


async def test_a_pid_that_is_no_longer_the_same_process_is_not_touched(context, sleeper):
    target = identify(sleeper.pid, "orphan", owned_pids=set())
    assert target is not None
    forged = type(target)(target.pid, target.create_time - 100.0, target.cmdline, target.uid, False, "orphan")
    action = Action("kill", None, forged)
    with pytest.raises(IdentityMismatch):
        await execute(context, action, _plan(action))
    assert psutil.Process(sleeper.pid).is_running() and sleeper.poll() is None


async def test_unknown_kinds_and_missing_targets_are_refused(context):
    with pytest.raises(ValueError, match="unknown action"):
        # Only a plan read back from a tampered database could carry a kind outside the catalogue.
        await execute(context, Action("format_disk", "idle"), _plan(Action("notify", "idle")))
    with pytest.raises(ValueError, match="needs an identified target"):
        await execute(context, Action("terminate", None), _plan(Action("terminate", None)))


async def test_notify_goes_through_the_healers_callback(context):
    action = Action("notify", "idle")
    assert await execute(context, action, _plan(action)) == "told the operator about idle"
