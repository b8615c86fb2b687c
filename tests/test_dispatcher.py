"""The dispatcher: routing (pure), the response adapter (pure), and Dispatcher against a REAL engine running
the demo fleet (real processes, real crashes; nothing mocked)."""
from __future__ import annotations

import re
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aurora_tui.core.api import Confirmation, PlanRow, Reply
from aurora_tui.core.catalogue import Catalogue
from aurora_tui.core.dispatch import guidance, replies
from aurora_tui.core.dispatch.commands import ACTIONS
from aurora_tui.core.dispatch.detector import CONVERSATION_TYPES, load_messages
from aurora_tui.core.dispatch.dispatcher import Dispatcher, spot_pattern
from aurora_tui.core.dispatch.router import DEFAULT_PROGRAM, TYPE_OF_ACTION, Route, route
from aurora_tui.core.model import FleetSnapshot, ServiceStatus, to_jsonable

from .fleet import demo_fleet
from .helpers import async_wait_until
from .live import running

SERVICES = ("aurora_ui", "bridge_api", "learning_api", "file_server")
REPLY_KEYS = {"reply", "type", "confidence", "score", "program", "tiers", "modules", "action", "target", "confirm",
              "usage", "active_modules"}


# --------------------------------------------------------------------------------------------------
# route (pure)


@pytest.mark.parametrize("text, typ, program", [
    ("write a python function that parses durations like 30m", "code_generation", 1),
    ("write a go program that tails a log file with goroutines", "code_generation", 3),
    ("getting a null pointer exception in production, stack trace attached", "debugging", 8),
    ("the bridge api keeps crashing", "debugging", 61),  # names a fleet service: the live program
    ("explain how the strategy pattern works", "explanation", 40),
    ("explain blue green deployments", "explanation", 37),
    ("design a rest api for the learning api", "architecture", 16),
    ("should we split the file server into microservices", "architecture", 14),
    ("reduce memory usage of the learning api", "optimization", 26),
    ("make the file server faster", "optimization", 25),
    ("add unit tests for the parser", "testing", 19),
    ("write integration tests for the bridge api", "testing", 20),
    ("hello", "general_chat", 65),
    ("what port is learning api on", "question_answering", 47),
    ("what's the capital of australia", "question_answering", 37),
    ("analyze the incident trend this week", "analysis", 47),
    ("review the dependency graph of the fleet", "analysis", 46),
    ("refactor the bridge client", "refactoring", 29),
])
def test_route_picks_the_program_for_each_type(text, typ, program):
    r = route(text, SERVICES)
    assert (r.type, r.program["id"]) == (typ, program), r
    assert r.action is None and r.refusal is None
    assert 0.0 < r.confidence < 1.0 and 1 <= r.score <= 10
    cat = Catalogue.load()
    assert typ in cat.program(program).conversation_types
    assert r.program["name"] == cat.program(program).name
    assert r.why.startswith("because ") and r.why.endswith(".")


@pytest.mark.parametrize("text, action, target, program", [
    ("status", "status", None, 47),
    ("how's the fleet doing", "status", None, 47),
    ("logs bridge_api", "logs", "bridge_api", 43),
    ("incidents in the last 2h", "incidents", None, 47),
    ("approvals", "approvals", None, 47),
    ("scan", "scan", None, 47),
    ("restart bridge_api", "restart", "bridge_api", 62),
    ("start learning_api", "start", "learning_api", 62),
    ("stop the file server", "stop", "file_server", 62),
    ("rollback bridge_api", "rollback", "bridge_api", 66),
    ("why bridge_api", "why", "bridge_api", 61),
    ("approve 12", "approve", "12", 62),
    ("reject 7 because it is too risky", "reject", "7", 62),
    ("grade 4 8/10", "grade", "4", 62),
    ("silence ui for 30m", "silence", "aurora_ui", 65),
    ("explain crash loop", "explain", "crash_loop", 40),
    ("help", "help", None, None),
])
def test_commands_route_to_live_programs(text, action, target, program):
    r = route(text, SERVICES)
    assert (r.action, r.target) == (action, target), r
    assert (r.program or {}).get("id") == program
    assert r.type == TYPE_OF_ACTION[action]
    if program is not None and action != "explain":
        assert Catalogue.load().program(program).live
    assert r.confidence >= 0.95


def test_every_action_has_a_type_and_the_table_is_complete():
    assert set(TYPE_OF_ACTION) == set(ACTIONS)
    assert set(DEFAULT_PROGRAM) == set(CONVERSATION_TYPES)
    cat = Catalogue.load()
    for typ, pid in DEFAULT_PROGRAM.items():
        assert typ in cat.program(pid).conversation_types


def test_fuzzy_service_name_and_the_tiers_of_a_restart():
    r = route("restart brige api", SERVICES)
    assert (r.action, r.target, r.program) == ("restart", "bridge_api", {"id": 62, "name": "Automatic Repair"})
    # "restart" names tier 5 Error Recovery; the misspelt service words ("api") pull in nothing.
    assert [t["id"] for t in r.tiers] == [5, 184, 13]
    assert r.tiers[0]["name"] == "Error Recovery"
    assert r.modules == Catalogue.load().modules.for_program(62)
    assert "aurora.restart" in r.modules and r.modules.index("aurora.supervise") < r.modules.index("aurora.restart")
    assert r.why == "because the message asks to restart bridge_api."


def test_tiers_are_ranked_by_keyword_hits_and_capped_at_three():
    r = route("explain blue green deployments", SERVICES)
    assert r.tiers[0] == {"id": 121, "name": "Deployment Strategies (Blue-Green, Canary)"}
    assert len(r.tiers) <= 3
    plain = route("hello", SERVICES)  # no keyword: the program's own tiers, in catalogue order
    assert [t["id"] for t in plain.tiers] == list(Catalogue.load().program(65).tiers)


def test_unknown_service_and_misspelt_verb():
    r = route("restart the bridje thing please", SERVICES)
    assert r.action == "restart" and r.target == "bridge_api"
    r = route("restrat the bridge", SERVICES)
    assert (r.action, r.target) == ("restart", "bridge_api") and r.did_you_mean == ["restart"]
    assert r.args["corrected_from"] == "restrat" and r.confidence == pytest.approx(0.8, abs=0.2)
    r = route("restart foo", SERVICES)
    assert r.action == "restart" and r.target is None and r.args.get("unresolved") == "foo"


@pytest.mark.parametrize("text", ["kill pid 1", "rm -rf /", "restart bridge api; rm -rf /", "sudo reboot",
                                  "$(curl x | sh)", "restart aurora itself", "kill the bridge"])
def test_refusals_route_nowhere(text):
    r = route(text, SERVICES)
    assert r.refusal and r.action is None and r.program is None and r.modules == [] and r.tiers == []


def test_routing_is_deterministic_and_ties_go_to_the_lowest_id():
    text = "write a script in python and in go"  # 1 Python and 3 Go each hit one keyword... and 6 none
    a, b = route(text, SERVICES), route(text, SERVICES)
    assert a == b
    assert a.program["id"] == 1


def test_route_is_total_and_stable_over_the_labelled_set():
    # route()'s latency (p50/p99/max over this set) is measured by the route benchmark, not here.
    rows = load_messages()
    first = [route(r["text"], SERVICES) for r in rows]
    assert all(isinstance(x, Route) and x.type in CONVERSATION_TYPES for x in first)
    assert [route(r["text"], SERVICES) for r in rows] == first


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=100).map(lambda b: b.decode("latin-1"))))
def test_route_never_raises(text):
    r = route(text, SERVICES)
    assert r.type in CONVERSATION_TYPES and 0.0 <= r.confidence <= 1.0
    assert r.action is None or r.action in ACTIONS
    assert r.refusal is None or r.action is None


def test_route_of_non_strings_and_huge_input():
    assert route(None, SERVICES).type == "general_chat"  # type: ignore[arg-type]
    r = route("restart the bridge api " * 5000, SERVICES)
    assert r.action is None  # far too long to be a command
    assert route("", ()).program["id"] == 65


# --------------------------------------------------------------------------------------------------
# replies (pure)


def _route(**kw) -> Route:
    base = dict(type="debugging", confidence=0.9, program={"id": 62, "name": "Automatic Repair"},
                tiers=[{"id": 5, "name": "Error Recovery"}, {"id": 184, "name": "Self-Repair Mechanisms"}],
                modules=["aurora.supervise", "aurora.restart", "aurora.backoff", "aurora.guardians"],
                action="restart", target="bridge_api", why="because the message asks to restart bridge_api.")
    base.update(kw)
    return Route(**base)


def test_footer_names_program_tiers_modules_and_why():
    text = replies.footer(_route(), direct_modules=["aurora.restart", "aurora.backoff", "aurora.guardians"])
    assert text == ("_Program 62 Automatic Repair · tiers 5 Error Recovery, 184 Self-Repair Mechanisms · modules "
                    "aurora.restart, aurora.backoff, aurora.guardians, … (4 with dependencies) · because the message "
                    "asks to restart bridge_api._")
    assert replies.footer(_route(program=None, tiers=[], modules=[], why="because it asks for help.")) == \
        "_No program: the dispatcher answered this itself · because it asks for help._"
    body = replies.with_footer("hello", _route())
    assert body.startswith("hello\n\n---\n_Program 62") and body.endswith("_")


def test_md_escape_is_one_safe_clipped_line():
    out = replies.md_escape("**bold** `code` [x](y) | _a_ \n# title\x00\x1b" + "z" * 500, 60)
    assert "\n" not in out and "\x00" not in out and "\x1b" not in out
    assert "\\*\\*bold\\*\\*" in out and "\\`code\\`" in out and "\\[x\\]" in out and "\\|" in out and "\\_a\\_" in out
    assert len(out) < 80 and out.endswith("…")
    assert replies.md_escape("bridge_api") == "bridge_api"  # intraword underscores are literal already
    assert replies.md_escape("- not a list").startswith("\\-")


def _guidance(typ: str, text: str, program: int, **kw) -> str:
    cat = Catalogue.load()
    r = route(text, SERVICES)
    r = Route(**{**r.__dict__, "type": typ})
    return guidance.guidance(r, text, cat.program(program), [cat.tier(t["id"]) for t in r.tiers], **kw)


def test_replies_are_shaped_by_type():
    debugging = _guidance("debugging", "the bridge keeps crashing", 61,
                          pattern=Catalogue.load().pattern("crashed"), facts=["Now: bridge_api is running."])
    assert debugging.index("**Likely cause.**") < debugging.index("**Evidence.**") < debugging.index("**Next step.**")
    assert "Process crashed" in debugging and "- Now: bridge_api is running." in debugging
    assert "1. Restart the service" in debugging  # the pattern's own fix comes first

    analysis = _guidance("analysis", "analyze the incident trend this week", 47)
    assert "| step | what to check |" in analysis

    explanation = _guidance("explanation", "explain blue green deployments", 37)
    assert explanation.index("**Concept.**") < explanation.index("**Why it matters.**") < explanation.index("**Example.**")
    assert "blue-green" in explanation.split("**Why it matters.**")[0]  # tier 121 is the focus

    qa = _guidance("question_answering", "what's the capital of australia", 37)
    assert qa.splitlines()[0].startswith("**Short answer:**") and "no stored fact" in qa.splitlines()[0]
    qa = _guidance("question_answering", "what port is learning api on", 47, answer="**Short answer:** port 5002.")
    assert qa.splitlines()[0] == "**Short answer:** port 5002."

    code = _guidance("code_generation", "write a python function that parses durations like 30m", 1)
    assert "```python\n# Sketch: write a python function" in code and "def main() -> int:" in code
    assert "```dockerfile" in _guidance("code_generation", "write a dockerfile for learning_api", 1)
    assert "```go" in _guidance("code_generation", "write a go program that tails a log", 3)

    chat = _guidance("general_chat", "hello", 65)
    assert chat.startswith("Hello!") and "help" in chat
    for typ, text, pid, marker in (("architecture", "design an api", 16, "**Decide first.**"),
                                   ("optimization", "make it faster", 25, "**Measure first.**"),
                                   ("testing", "add tests", 19, "- [ ] "),
                                   ("refactoring", "refactor it", 29, "**Safe steps.**")):
        assert marker in _guidance(typ, text, pid)


def test_status_table_and_refusal_reply():
    snap = FleetSnapshot(ts=time.time(), services=[
        ServiceStatus("bridge_api", "running", True, 42, 5001, True, 1, 12.0, 0.5, 20_000_000, latency_ms=3.0),
        ServiceStatus("file_server", "backoff", True, None, 8080, False, 3, None, None, None),
    ], host=None, last_scan_at=time.time(), scans=7, interval=15.0, engine_pid=1, db="x", config_source="x")
    table = replies.status_table(snap)
    assert table.splitlines()[0].startswith("| service | state |")
    assert "| `bridge_api` | ● running | 42 | 5001 | ok 3ms | 1 |" in table
    assert "**1/2 healthy**" in table and "not healthy: `file_server`" in table
    refusal = replies.refusal_reply("that looks like a shell line; chat text is never executed")
    assert refusal.startswith("**I won't run that.**") and "never executed" in refusal


def test_spot_pattern():
    patterns = Catalogue.load().patterns
    assert spot_pattern("the bridge keeps crashing", patterns).id == "crashed"
    assert spot_pattern("zombies piling up on the file server", patterns).id == "zombie_children"
    assert spot_pattern("please write a haiku", patterns) is None


# --------------------------------------------------------------------------------------------------
# Dispatcher against a real engine


def _pids(engine) -> dict[str, int | None]:
    return {name: runner.pid for name, runner in engine.fleet.runners.items()}


async def _manual_plans(engine) -> list[PlanRow]:
    return [p for p in await engine.list_plans(status=None, limit=200) if p.pattern == "manual"]


async def test_status_is_a_table_of_the_services(tmp_path):
    async with running(demo_fleet(tmp_path)) as engine:
        d = Dispatcher(engine)
        answer = await d.ask("status")
        assert isinstance(answer, Reply) and set(to_jsonable(answer)) == REPLY_KEYS
        assert (answer.action, answer.program, answer.confirm) == ("status", {"id": 47, "name": "Metrics"}, None)
        lines = answer.reply.splitlines()
        assert lines[0].startswith("| service | state | pid |")
        for name in SERVICES:
            row = next(line for line in lines if line.startswith(f"| `{name}` |"))
            assert str(engine.fleet.runners[name].pid) in row and "running" in row
        assert "**4/4 healthy**" in answer.reply
        assert answer.reply.rstrip().endswith("because the message asks for the fleet's status._")
        assert 1 <= answer.score <= 10 and answer.type == "analysis"


async def test_restart_asks_first_then_yes_restarts_for_real(tmp_path):
    async with running(demo_fleet(tmp_path)) as engine:
        d = Dispatcher(engine)
        before = _pids(engine)
        answer = await d.ask("restart brige api", session="ops")
        assert (answer.action, answer.target) == ("restart", "bridge_api")
        assert answer.confirm.question.startswith("Restart bridge_api?") and answer.confirm.token
        assert "Reply **yes**" in answer.reply
        assert isinstance(answer.confirm, Confirmation)
        assert to_jsonable(answer)["confirm"] == {"token": answer.confirm.token, "question": answer.confirm.question}
        await engine.scan_now()  # give it every chance to have happened: it must not have
        assert _pids(engine) == before and await _manual_plans(engine) == []
        assert d.pending("ops") == answer.confirm and d.pending("other") is None
        # "yes" in another session confirms nothing
        other = await d.ask("yes", session="other")
        assert "nothing waiting" in other.reply and _pids(engine) == before

        done = await d.ask("yes", session="ops")
        assert "restarted" in done.reply and done.action == "restart"
        after = _pids(engine)
        assert after["bridge_api"] != before["bridge_api"] and after["bridge_api"] is not None
        assert {k: v for k, v in after.items() if k != "bridge_api"} == {k: v for k, v in before.items() if k != "bridge_api"}
        plans = await _manual_plans(engine)
        assert [(p.service, p.fix, p.decided_by) for p in plans] == [("bridge_api", "restart", "operator")]
        assert d.pending("ops") is None
        again = await d.ask("yes", session="ops")  # a yes is used once
        assert "nothing waiting" in again.reply and _pids(engine) == after

        # the token path: confirm() performs it too, and only once
        asked = await d.ask("bounce the file server", session="ops")
        token = asked.confirm.token
        old = engine.fleet.runners["file_server"].pid
        done = await d.confirm(token)
        assert "restarted" in done.reply and engine.fleet.runners["file_server"].pid != old
        assert "Nothing is waiting" in (await d.confirm(token)).reply


async def test_no_cancels_and_other_messages_drop_the_pending_action(tmp_path):
    async with running(demo_fleet(tmp_path)) as engine:
        d = Dispatcher(engine)
        before = _pids(engine)
        asked = await d.ask("stop learning_api")
        assert asked.confirm.question == "Stop learning_api?"
        cancelled = await d.ask("no")
        assert cancelled.reply == "Cancelled: Stop learning_api? Nothing was changed."
        assert "nothing waiting" in (await d.ask("yes")).reply

        await d.ask("restart learning_api")
        status = await d.ask("status")  # anything else drops it: a yes only answers the question just asked
        assert "was dropped" in status.reply
        assert "nothing waiting" in (await d.ask("yes")).reply

        asked = await d.ask("restart learning_api")
        d.clock = lambda: time.monotonic() + 121  # two minutes later
        assert "nothing waiting" in (await d.ask("yes")).reply
        assert "Nothing is waiting" in (await d.confirm(asked.confirm.token)).reply
        assert _pids(engine) == before and await _manual_plans(engine) == []


async def test_refusals_did_you_mean_and_engine_refusals(tmp_path):
    async with running(demo_fleet(tmp_path)) as engine:
        d = Dispatcher(engine)
        before = _pids(engine)
        refused = await d.ask("kill pid 1")
        assert refused.reply.startswith("**I won't run that.**") and "never executed" in refused.reply
        assert refused.action is None and refused.program is None and refused.confirm is None
        unknown = await d.ask("restart foo")
        assert "I don't know the service `foo`" in unknown.reply and unknown.confirm is None
        close = await d.ask("restart the brdgx")
        assert "Did you mean `bridge_api`?" in close.reply and close.confirm is None
        typo = await d.ask("restrat")
        assert "Did you mean **restart**?" in typo.reply
        running_already = await d.ask("start bridge_api")
        assert "already running" in running_already.reply and running_already.confirm is None
        no_plan = await d.ask("approve 999")
        assert "There is no plan #999" in no_plan.reply and no_plan.confirm is None
        rollback = await d.ask("rollback bridge_api")
        assert "no manual rollback" in rollback.reply and rollback.confirm is None
        assert rollback.program == {"id": 66, "name": "Rollback"}
        explained = await d.ask("explain zombies")
        assert "**Zombie children**" in explained.reply and "reap" in explained.reply
        help_ = await d.ask("help")
        assert "| **restart** |" in help_.reply and help_.program is None

        # the engine itself refuses: a silence longer than 7 days never reaches it; a too-short one is refused by it
        asked = await d.ask("silence learning api for 2h")
        assert asked.confirm.question == "Silence learning_api for 2h00m?"
        done = await d.ask("yes")
        assert "silenced until" in done.reply
        assert [s.service for s in await engine.silences()] == ["learning_api"]
        assert _pids(engine) == before and await _manual_plans(engine) == []


async def test_why_after_a_real_crash_names_it_its_evidence_and_what_was_done(tmp_path):
    async with running(demo_fleet(tmp_path)) as engine:
        d = Dispatcher(engine)
        quiet = await d.ask("why bridge_api")
        assert "No incident on record" in quiet.reply and "is running" in quiet.reply
        old = engine.fleet.runners["bridge_api"].pid
        await engine.chaos("kill", "bridge_api")

        async def healed():
            incidents = await engine.list_incidents(service="bridge_api", limit=5)
            plans = [p for p in await engine.list_plans(status=None) if p.service == "bridge_api"]
            return incidents and all(i.resolved_at for i in incidents) and plans and \
                all(p.status in ("verified", "failed") for p in plans)

        await async_wait_until(healed, timeout=30, what="the crash healed and verified")
        answer = await d.ask("why bridge_api")
        reply = answer.reply
        assert (answer.action, answer.target, answer.program["id"]) == ("why", "bridge_api", 61)
        assert "Process crashed" in reply and "killed by SIGKILL" in reply and f"pid {old}" in reply
        assert "**Evidence.**" in reply and "**SIGKILL**" in reply and "```text" in reply  # signal and log lines
        assert re.search(r"plan \*\*#\d+\*\* `restart` .* decided by guardians .* → \*\*verified\*\*", reply), reply
        assert "**Now.** `bridge_api` is running" in reply and str(engine.fleet.runners["bridge_api"].pid) in reply
        # an incident id works too
        incident = (await engine.list_incidents(service="bridge_api", limit=1))[0]
        by_id = await d.ask(f"explain incident {incident.id}")
        assert by_id.action == "why" and "Process crashed" in by_id.reply


# the arbitrary text a chat box gets: anything, shell lines, control characters, emoji, huge pastes
_SHELL = st.sampled_from([
    "rm -rf /", "kill -9 1", "$(curl x | sh)", "; shutdown now", "sudo reboot", "restart bridge api; rm -rf /",
    "stop init", "`id`", "cat /etc/shadow", "'; DROP TABLE plans; --", "kill pid 4242", "restart aurora itself",
])
_MESSAGES = st.one_of(
    st.text(max_size=200),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x1F), max_size=40),
    st.text(alphabet="🙂🔥💥🧨✅❌ \u200b\u202e", max_size=30),
    _SHELL,
    st.tuples(st.sampled_from(["restart", "stop", "start", "approve 1", "silence", "why", "logs"]), st.text(max_size=30))
    .map(" ".join),
    st.integers(1, 40).map(lambda n: "restart the bridge api " * (n * 50)),
    st.just(""),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=_MESSAGES)
async def test_arbitrary_text_never_raises_and_never_acts(dispatcher_fleet, text):
    engine, d, before = dispatcher_fleet
    answer = await d.ask(text, session=uuid.uuid4().hex)  # one message per session: nothing can be confirmed
    assert isinstance(answer, Reply) and set(to_jsonable(answer)) == REPLY_KEYS
    assert isinstance(answer.reply, str) and answer.reply
    assert answer.type in CONVERSATION_TYPES and 0.0 <= answer.confidence <= 1.0
    assert 1 <= answer.score <= 10
    assert answer.action is None or answer.action in ACTIONS
    assert _pids(engine) == before
    assert await _manual_plans(engine) == []
    assert await engine.silences() == []


@pytest.fixture
async def dispatcher_fleet(tmp_path):
    async with running(demo_fleet(tmp_path)) as engine:
        yield engine, Dispatcher(engine), _pids(engine)
