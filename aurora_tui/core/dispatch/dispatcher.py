"""The dispatcher: one operator message in, one Markdown answer out, backed by a real engine.

``await Dispatcher(engine).ask(message, session)`` routes the message (:mod:`.router`), answers it from the
engine's public API (:mod:`.replies`) or from the catalogue's guidance (:mod:`.guidance`), and returns a
:class:`~aurora_tui.core.api.Reply`: the Markdown ``reply``, its ``type``, ``confidence`` and ``score``
(1-10), the ``program`` / ``tiers`` / ``modules`` that answered, the command's ``action`` and ``target``,
``confirm`` (a :class:`~aurora_tui.core.api.Confirmation` or ``None``), ``usage`` and ``active_modules``.

``usage`` counts, since this dispatcher was made, how often each program, tier and module answered a
routed message; ``active_modules`` are the modules active in the dispatcher's own
:class:`~aurora_tui.core.modules.ModuleRegistry` (each routed message activates its program's modules;
nothing is deactivated).  Both are a copy, in memory only; :meth:`Dispatcher.stats` returns them too.

Rules that never bend:

* **Nothing typed is executed.**  A shell line, a pid, PID 1 / init / Aurora itself is refused with an
  explanation.  Fleet commands are parsed into (action, target) and carried out only through the
  engine's API (``restart``, ``stop_service``, ``start_service``, ``approve``, ``reject``, ``grade``,
  ``silence``), which goes through Aurora's guardians.
* **Anything that changes the fleet waits for a yes.**  The reply carries ``confirm = Confirmation(token, question)``
  and the action is remembered per session (one at a time, :data:`CONFIRM_TTL` seconds).  ``yes`` / ``y``
  / ``confirm`` in that session, or :meth:`Dispatcher.confirm` with the token, performs it; ``no`` /
  ``cancel`` drops it.  A new fleet-changing request replaces the pending one.
* **ask never raises** for any input: every failure becomes a helpful answer (and is logged).  Nothing is printed.

The engine is any :class:`~aurora_tui.core.api.EngineAPI` (the in-process
:class:`~aurora_tui.core.engine.Engine` or :class:`~aurora_tui.core.remote.RemoteEngine`).  No Textual here.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import re
import secrets
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping

from ..api import ActionResult, Confirmation, EngineAPI, IncidentRow, PlanRow, Reply, SilenceRow
from ..catalogue import Catalogue, Program, Tier
from ..model import FleetSnapshot, ServiceStatus
from ..modules import ModuleError, ModuleRegistry
from ..patterns import HOST, Pattern
from . import replies
from .guidance import guidance
from .names import PATTERN_IDS, PATTERN_PHRASES, resolve_service
from .detector import MAX_CHARS, ConversationDetector
from .router import Route, route, warm

__all__ = ["CONFIRM_TTL", "Dispatcher"]

log = logging.getLogger(__name__)

#: Seconds a pending confirmation stays valid.
CONFIRM_TTL = 120.0
#: Sessions remembered at most (the oldest pending confirmations are dropped beyond it).
MAX_SESSIONS = 1000
DEFAULT_LOG_LINES = 20
MAX_LOG_LINES = 200
DEFAULT_SILENCE_S = 1800.0
#: Actions that change the fleet or a pending decision: they are confirmed first.
CONFIRMED_ACTIONS = frozenset({"restart", "start", "stop", "approve", "reject", "grade", "silence"})
#: Refused activations remembered (the newest).
MAX_REFUSED = 50

_YES = re.compile(r"^(?:y|yes|yep|yeah|yup|confirm|confirmed|do it|go ahead|go|sure|ok|okay|proceed)"
                  r"(?:\s+(?:please|pls|do it|go ahead))?[\s.!]*$")
_NO = re.compile(r"^(?:n|no|nope|nah|cancel|abort|never ?mind|nevermind|don'?t|do not|forget it)"
                 r"(?:\s+(?:thanks|thank you|please|pls))?[\s.!]*$")
_OPEN_WORDS = re.compile(r"\b(?:open|active|unresolved|ongoing|current)\b")
_FACT_WORDS = re.compile(r"\b(?:port|pid|uptime|up|running|healthy|health|restarts?|memory|rss|cpu|latency|state|depends?|dependencies)\b")
_LIVE_TYPES = ("analysis", "debugging", "question_answering", "general_chat", "optimization")


@dataclass
class Pending:
    token: str
    session: str
    action: str
    target: str
    args: dict[str, Any]
    question: str
    route: Route
    created: float
    expires: float


@dataclass
class _Answer:
    reply: str
    route: Route
    confirm: Confirmation | None = None
    footer: bool = True


@dataclass
class Dispatcher:
    engine: EngineAPI
    catalogue: Catalogue = field(default_factory=Catalogue.load)
    clock: Callable[[], float] = time.monotonic
    ttl: float = CONFIRM_TTL
    _pending: dict[str, Pending] = field(default_factory=dict, repr=False)
    _warm: bool = field(default=False, repr=False)
    #: How often each program, tier and module answered a routed message: ``"program:62"`` -> 3.
    usage: Counter[str] = field(default_factory=Counter, repr=False)
    #: The dispatcher's own registry: routed messages activate their program's modules here.
    registry: ModuleRegistry = field(default_factory=ModuleRegistry.load, repr=False)
    #: Activations the registry refused (a conflict with an active module), newest last.
    refused: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_REFUSED), repr=False)

    # -- the public API --------------------------------------------------------------------------------

    async def ask(self, message: Any, session: str = "default") -> Reply:
        """Answer one message.  Never raises (except cancellation); never acts without a confirmation."""
        session = session if isinstance(session, str) else str(session)
        try:
            text = message if isinstance(message, str) else ("" if message is None else str(message))
            text = text[: MAX_CHARS * 4]
            return self._result(await self._ask(text, session))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the boundary: whatever went wrong, the operator gets an answer
            log.exception("answering a chat message (session %s) failed", session)
            fallback = Route(type="general_chat", confidence=0.0, why="because answering failed.")
            return self._result(_Answer(
                f"Something went wrong while answering that ({replies.md_escape(type(exc).__name__)}: "
                f"{replies.md_escape(exc, 200)}). Nothing was changed. Try **help**.", fallback, footer=False))

    async def confirm(self, token: str) -> Reply:
        """Carry out the pending action with this token (from any session).  Never raises."""
        try:
            self._expire()
            found = next((p for p in self._pending.values() if isinstance(token, str) and secrets.compare_digest(p.token, token)), None)
            if found is None:
                r = _answering("yes", "because a confirmation arrived.")
                return self._result(_Answer("Nothing is waiting for that confirmation: it was done, cancelled "
                                            "or expired. Ask again.", r, footer=False))
            self._pending.pop(found.session, None)
            return self._result(await self._perform(found))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("a confirmation failed")
            r = Route(type="question_answering", confidence=0.0, why="because a confirmation arrived.")
            return self._result(_Answer(f"The confirmation failed ({replies.md_escape(exc, 200)}).", r, footer=False))

    def cancel(self, session: str = "default") -> bool:
        """Drop the session's pending action.  True if there was one."""
        return self._pending.pop(session, None) is not None

    def pending(self, session: str = "default") -> Confirmation | None:
        self._expire()
        p = self._pending.get(session)
        return Confirmation(p.token, p.question) if p else None

    def stats(self) -> dict[str, Any]:
        """Usage counts, the active modules (in the order they became active) and refused activations."""
        return {"usage": dict(self.usage), "active_modules": self.registry.active(), "refused": list(self.refused)}

    def _record(self, r: Route) -> None:
        """Count a routed message's program, tiers and modules, and activate the modules.  Never raises."""
        if r.program:
            self.usage[f"program:{r.program['id']}"] += 1
        for tier in r.tiers:
            self.usage[f"tier:{tier['id']}"] += 1
        for module_id in r.modules:
            self.usage[f"module:{module_id}"] += 1
        if not r.modules:
            return
        try:
            self.registry.activate(r.modules)
        except ModuleError as exc:  # a conflict with an active module: noted, and the answer goes on
            self.refused.append({"program": dict(r.program) if r.program else None, "modules": list(r.modules),
                                 "error": str(exc), "ts": time.time()})

    # -- the answer ------------------------------------------------------------------------------------

    def _result(self, a: _Answer) -> Reply:
        r = a.route
        reply = a.reply
        if a.footer:
            direct = ()
            if r.program:
                direct = self.catalogue.modules.programs().get(str(r.program["id"]), ())
            reply = replies.with_footer(reply, r, direct)
        confidence = min(max(float(r.confidence), 0.0), 1.0)
        return Reply(
            reply=reply,
            type=r.type,
            confidence=confidence,
            score=int(round(1 + 9 * confidence)),
            program=dict(r.program) if r.program else None,
            tiers=[dict(t) for t in r.tiers],
            modules=list(r.modules),
            action=r.action,
            target=r.target,
            confirm=a.confirm,
            usage=dict(self.usage),
            active_modules=self.registry.active(),
        )

    def _expire(self) -> None:
        now = self.clock()
        for key in [k for k, p in self._pending.items() if p.expires <= now]:
            del self._pending[key]

    async def _services(self) -> tuple[list[str], FleetSnapshot | None]:
        """The live service names (for fuzzy matching) and the snapshot they came from."""
        try:
            snap = await self.engine.snapshot()
        except Exception:  # an unreachable engine: the message is still answered, without live names
            log.warning("could not read the fleet for a chat message", exc_info=True)
            return [], None
        return [s.name for s in snap.services], snap

    async def _ask(self, text: str, session: str) -> _Answer:
        self._expire()
        stripped = " ".join(text.lower().split())
        waiting = self._pending.get(session)
        if _YES.match(stripped) and waiting is not None:
            self._pending.pop(session, None)
            return await self._perform(waiting)
        if _NO.match(stripped):
            r = _answering(stripped, "because the message answers a confirmation.")
            if waiting is not None:
                self._pending.pop(session, None)
                return _Answer(f"Cancelled: {replies.md_escape(waiting.question)} Nothing was changed.", r, footer=False)
            if stripped in ("n", "no", "cancel", "abort"):
                return _Answer("There is nothing waiting for a confirmation.", r, footer=False)
        if _YES.match(stripped) and stripped in ("y", "yes", "confirm", "confirmed", "yep", "yeah", "yup", "do it", "proceed"):
            r = _answering(stripped, "because the message answers a confirmation.")
            return _Answer("There is nothing waiting for a confirmation (it may have expired after "
                           f"{self.ttl:g}s). Ask again.", r, footer=False)

        # A yes only ever answers the question just asked: any other message drops what was waiting.
        dropped = self._pending.pop(session, None)
        answer = await self._answer(text, session)
        if dropped is not None and session not in self._pending:
            note = f"(The earlier request, “{replies.md_escape(dropped.question)}”, was dropped: ask again when you want it.)"
            answer.reply = note + "\n\n" + answer.reply
        elif dropped is not None:
            answer.reply = f"(This replaces the earlier request: {replies.md_escape(dropped.question)})\n\n" + answer.reply
        return answer

    async def _answer(self, text: str, session: str) -> _Answer:
        if not self._warm:
            await asyncio.to_thread(warm)  # the detector trains once (~0.2 s): not on the event loop
            self._warm = True
        names, snap = await self._services()
        patterns = tuple(self.catalogue.patterns) or PATTERN_IDS
        r = route(text, names, patterns)
        self._record(r)
        if r.refusal:
            return _Answer(replies.refusal_reply(r.refusal), r)
        if r.action:
            return await self._command(r, text, session, names, snap)
        return await self._guidance(r, text, names, snap)

    # -- commands --------------------------------------------------------------------------------------

    async def _command(self, r: Route, text: str, session: str, names: list[str],
                       snap: FleetSnapshot | None) -> _Answer:
        action, target, args = r.action, r.target, r.args
        now = time.time()
        if action == "help":
            return _Answer(replies.help_reply(args.get("topic"), self.ttl), r)
        if action == "explain":
            try:
                return _Answer(replies.pattern_reply(self.catalogue.pattern(str(target))), r)
            except KeyError:
                return _Answer(f"I don't know an issue pattern called {replies.code_span(target)}. The patterns are: "
                               + ", ".join(replies.code_span(p) for p in self.catalogue.patterns) + ".", r)

        missing = self._missing_target(r, text, names)
        if missing is not None:
            return missing

        if action == "status":
            snap = snap if snap is not None else await self.engine.snapshot()
            if target:
                status = snap.service(target)
                line = "\n\n" + replies.service_line(status, now) if status is not None else ""
                return _Answer(replies.status_table(snap, only=target) + line, r)
            return _Answer(replies.status_table(snap), r)
        if action == "scan":
            fresh = await self.engine.scan_now()
            opened = await self._open_incidents()
            body = "Scanned the fleet now.\n\n" + replies.status_table(fresh)
            body += "\n\n**Open incidents.**\n\n" + replies.incidents_table(opened, now, "open incidents")
            return _Answer(body, r)
        if action == "logs":
            n = min(max(int(args.get("lines") or DEFAULT_LOG_LINES), 1), MAX_LOG_LINES)
            lines = await self.engine.logs(target, n)
            return _Answer(replies.logs_block(target, list(lines)[-n:], n), r)
        if action == "incidents":
            open_only = bool(_OPEN_WORDS.search(text.lower()))
            window = args.get("window_s")
            since = now - float(window) if window else None
            rows = await self.engine.list_incidents(open_only=open_only, service=target, since=since, limit=20)
            what = ("open " if open_only else "") + "incidents" + (f" for {target}" if target else "") + \
                (f" in the last {replies.duration_h(window)}" if window else "")
            head = f"**{what[:1].upper() + what[1:]}** (newest first, at most 20):\n\n" if rows else ""
            return _Answer(head + replies.incidents_table(rows, now, what), r)
        if action == "approvals":
            rows = await self.engine.list_plans()
            head = f"**{len(rows)} fix plan{'s' if len(rows) != 1 else ''} waiting for a decision.** Answer with " \
                   "`approve <id>` or `reject <id> because …`.\n\n" if rows else ""
            return _Answer(head + replies.plans_table(rows, now), r)
        if action == "why":
            return _Answer(await self._why(target, snap, now), r)
        if action == "rollback":
            return _Answer(await self._rollback(target, now), r)
        if action in CONFIRMED_ACTIONS:
            return await self._ask_confirmation(r, session, snap)
        return _Answer(replies.help_reply(), r)

    def _missing_target(self, r: Route, text: str, names: list[str]) -> _Answer | None:
        """An answer when the command needs a target it does not have (unknown name, whole fleet …)."""
        action, target, args = r.action, r.target, r.args
        if target is not None:
            if action in ("logs", "silence", "start", "stop", "restart", "rollback") and target not in names \
                    and not (action == "rollback" and target.isdigit()) and target != HOST:
                return _Answer(replies.did_you_mean("service", target, [], names), r)
            return None
        needs = {"logs", "why", "restart", "start", "stop", "silence", "rollback", "approve", "reject", "grade"}
        given = str(args.get("unresolved") or "").strip()
        if action not in needs and not (given and action in ("status", "incidents")):
            return None  # status, scan, incidents, approvals of the whole fleet
        if r.did_you_mean and action not in ("approve", "reject", "grade"):
            suggestions = [d for d in r.did_you_mean if d in names]
            if suggestions:
                return _Answer(replies.did_you_mean("service", given or text, suggestions), r)
            if r.did_you_mean == [action]:  # a corrected verb with no target: "restrat"
                return _Answer(f"Did you mean **{action}**? Name the service too, e.g. "
                               f"{replies.code_span(action + ' ' + (names[0] if names else 'bridge_api'))}.", r)
        if args.get("targets"):
            options = " or ".join(replies.code_span(t) for t in args["targets"][:4])
            return _Answer(f"That matches more than one service: {options}. Which one?", r)
        if args.get("scope") == "all" and action in ("restart", "start", "stop", "silence"):
            return _Answer(f"I {action} one service at a time from chat, so each gets its own confirmation. "
                           "Which one? " + ", ".join(replies.code_span(n) for n in names) + ".", r)
        if action in ("approve", "reject", "grade"):
            return _Answer(f"Which plan? Say e.g. {replies.code_span(action + ' 12')}; `approvals` lists the waiting ones.", r)
        if given:
            # an unknown service name: offer close ones, else the list
            close = resolve_service(given, names)[2]
            return _Answer(replies.did_you_mean("service", given, close, names), r)
        return _Answer("Which service? " + ", ".join(replies.code_span(n) for n in names) + ".", r)

    async def _open_incidents(self) -> list[IncidentRow]:
        try:
            return list(await self.engine.list_incidents(open_only=True, limit=20))
        except Exception:
            return []

    async def _why(self, target: str, snap: FleetSnapshot | None, now: float) -> str:
        patterns = self.catalogue.patterns
        if target.isdigit():  # "explain incident 9"
            try:
                incident = await self.engine.incident(int(target))
            except KeyError:
                return f"There is no incident #{target}."
            plans = await self._plans_for([incident])
            status = _service(snap, incident.service)
            return replies.why_reply(incident.service, [incident], plans, status, patterns, now)
        rows = list(await self.engine.list_incidents(service=target, limit=5))
        status = _service(snap, target)
        if not rows:
            return replies.why_reply(target, [], [], status, patterns, now)
        # The newest incident, plus any others of the same burst (opened within a minute of it).
        newest = rows[0]
        burst = [x for x in rows if abs((x.opened_at or 0) - (newest.opened_at or 0)) <= 60][:3]
        detailed = []
        for row in burst:
            try:
                detailed.append(await self.engine.incident(row.id))
            except Exception:
                detailed.append(row)
        older = [x for x in rows if x not in burst]
        plans = await self._plans_for(detailed)
        return replies.why_reply(target, detailed, plans, status, patterns, now, older)

    async def _plans_for(self, incidents: list[IncidentRow]) -> list[PlanRow]:
        ids = {i.id for i in incidents}
        try:
            rows = await self.engine.list_plans(status=None, limit=200)
        except Exception:
            return []
        return [p for p in rows if p.incident_id in ids]

    async def _rollback(self, target: str, now: float) -> str:
        service = target
        if target.isdigit():
            try:
                incident = await self.engine.incident(int(target))
                service = incident.service
            except KeyError:
                return f"There is no incident #{target}."
        try:
            rows = [p for p in await self.engine.list_plans(status=None, limit=200) if p.service == service][:5]
        except Exception:
            rows = []
        proposing = [pid for pid, pat in self.catalogue.patterns.items() if "rollback" in pat.actions]
        if proposing:
            when = ("the guardians propose it as the fix for " + ", ".join(replies.code_span(x) for x in proposing)
                    + ", and it always waits for a human (approve it in `approvals`)")
        else:
            when = ("but no diagnosis proposes it today: for a crash loop or a start-up failure Aurora backs "
                    "off the restarts and tells you, with the start-up error from the log")
        body = [
            "**There is no manual rollback from chat, and nothing was changed.** Aurora's closed set of fixes "
            "has a high-risk `rollback` (restart the service with the configuration it last ran healthily "
            f"with), {when}.",
        ]
        body += ["", f"**Recent fix plans for {replies.code_span(service)}.**", "",
                 replies.plans_table(rows, now, empty="None yet.")]
        return "\n".join(body)

    async def _ask_confirmation(self, r: Route, session: str, snap: FleetSnapshot | None) -> _Answer:
        action, target = r.action or "", str(r.target)
        args = dict(r.args)
        # Check what can be checked now, so a confirmation is only asked for something that can happen.
        if action in ("approve", "reject", "grade"):
            try:
                plan = await self.engine.plan(int(target))
            except (KeyError, ValueError):
                return _Answer(f"There is no plan #{replies.md_escape(target)}. `approvals` lists the waiting ones.", r)
            status = plan.status
            if action in ("approve", "reject") and status != "pending":
                return _Answer(f"Plan #{target} is **{replies.md_escape(status)}**, not pending: there is nothing to "
                               f"{action}." + (" You can still grade it." if action == "approve" else ""), r)
            if action == "grade":
                grade = args.get("grade")
                if not isinstance(grade, int) or not 1 <= grade <= 10:
                    return _Answer("A grade is a whole number from 1 to 10, e.g. `grade 12 8/10`.", r)
                if status == "pending":
                    return _Answer(f"Plan #{target} is still pending: approve it with a grade "
                                   f"(`approve {target} as a {grade}`), or grade it once it is decided.", r)
            if action == "approve" and args.get("grade") is not None and not 1 <= int(args["grade"]) <= 10:
                args.pop("grade")
            if action == "reject" and not str(args.get("reason") or "").strip():
                return _Answer(f"A rejection needs a reason, e.g. `reject {target} because it is too risky`.", r)
        if action in ("start", "stop") and snap is not None:
            service = snap.service(target)
            state = service.state if service is not None else None
            if action == "start" and service is not None and state in ("running", "starting"):
                return _Answer(f"{replies.code_span(target)} is already {state} (pid {service.pid}); "
                               "nothing to start. Did you mean `restart`?", r)
            if action == "stop" and state == "stopped":
                return _Answer(f"{replies.code_span(target)} is already stopped.", r)
            if state == "unmanaged":
                return _Answer(f"{replies.code_span(target)} is monitor-only: Aurora never starts or stops it.", r)
        if action == "silence":
            args["duration_s"] = float(args.get("duration_s") or DEFAULT_SILENCE_S)
            if not 0 < args["duration_s"] <= 7 * 86400:
                return _Answer("A silence lasts more than 0 seconds and at most 7 days.", r)
        question, detail = replies.confirm_question(action, target, args)
        now = self.clock()
        token = secrets.token_urlsafe(12)
        self._pending[session] = Pending(token, session, action, target, args, question, r, now, now + self.ttl)
        while len(self._pending) > MAX_SESSIONS:
            oldest = min(self._pending.values(), key=lambda p: p.created)
            del self._pending[oldest.session]
        corrected = args.get("corrected_from")
        lines = []
        if corrected:
            lines.append(f"I read {replies.code_span(corrected, 30)} as **{action}**.")
        lines += [f"**{replies.md_escape(question)}** {detail}".strip(), "",
                  f"Reply **yes** to go ahead or **no** to cancel (this expires in {self.ttl:g}s)."]
        return _Answer("\n".join(x for x in lines), r, confirm=Confirmation(token, question))

    async def _perform(self, p: Pending) -> _Answer:
        """Carry out a confirmed action through the engine's API; a refusal becomes the answer."""
        r = p.route
        calls: dict[str, Callable[[], Awaitable[ActionResult | PlanRow | SilenceRow]]] = {
            "restart": lambda: self.engine.restart(p.target),
            "stop": lambda: self.engine.stop_service(p.target),
            "start": lambda: self.engine.start_service(p.target),
            "approve": lambda: self.engine.approve(int(p.target), grade=p.args.get("grade"),
                                                   comment=str(p.args.get("reason") or "")),
            "reject": lambda: self.engine.reject(int(p.target), reason=str(p.args.get("reason"))),
            "grade": lambda: self.engine.grade(int(p.target), int(p.args["grade"])),
            "silence": lambda: self.engine.silence(p.target, float(p.args["duration_s"]),
                                                   str(p.args.get("reason") or "silenced from chat")),
        }
        call = calls.get(p.action)
        if call is None:
            return _Answer(f"I can't {replies.md_escape(p.action)} from chat.", r)
        try:
            result = await call()
        except (ValueError, KeyError, RuntimeError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            return _Answer(f"**Refused.** {replies.md_escape(message, 400)}. Nothing was changed.", r)
        except Exception as exc:  # the engine is gone, a timeout …
            log.warning("%s %s from chat did not happen", p.action, p.target, exc_info=True)
            return _Answer(f"**It did not happen:** {replies.md_escape(type(exc).__name__)}: "
                           f"{replies.md_escape(exc, 300)}.", r)
        return _Answer(replies.done_reply(p.action, p.target, result), r)

    # -- everything else -------------------------------------------------------------------------------

    async def _guidance(self, r: Route, text: str, names: list[str], snap: FleetSnapshot | None) -> _Answer:
        program: Program | None = None
        tiers: list[Tier] = []
        if r.program:
            program = self.catalogue.program(r.program["id"])
            tiers = [self.catalogue.tier(t["id"]) for t in r.tiers]
        facts: list[str] = []
        answer = None
        table = None
        named = resolve_service(text[:MAX_CHARS], names)[0] if names else None
        now = time.time()
        live = program is not None and program.live
        if snap is not None and r.type in _LIVE_TYPES:
            if named is not None:
                status = snap.service(named)
                if status is not None:
                    line = replies.service_line(status, now)
                    if r.type == "question_answering" and _FACT_WORDS.search(text.lower()):
                        answer = "**Short answer:** " + line
                    elif live or r.type in ("debugging", "optimization"):
                        facts.append("Now: " + line)
                if live and r.type in ("debugging", "analysis"):
                    for inc in (await self._open_incidents()):
                        if inc.service == named:
                            facts.append(f"open incident #{inc.id}: {replies.code_span(inc.pattern)} — "
                                         f"{replies.md_escape(inc.summary, 160)}")
            elif r.type == "general_chat" or (live and r.type == "analysis"):
                table = snap
            elif live and r.type == "question_answering":
                answer = "**Short answer:** " + replies.fleet_health_line(snap)
        pattern = spot_pattern(text, self.catalogue.patterns) if r.type == "debugging" else None
        body = guidance(r, text, program, tiers, snapshot=table, facts=facts, answer=answer, pattern=pattern)
        if r.did_you_mean:
            body = (f"(If that was a command: did you mean **{replies.md_escape(r.did_you_mean[0])}**? "
                    "Type `help` for the list.)\n\n" + body)
        return _Answer(body, r)


@functools.cache
def _pattern_phrases(ids: tuple[str, ...]) -> tuple[tuple[re.Pattern[str], str], ...]:
    """(regex, pattern id) for every phrase of every pattern, longest first; a word may run on
    ("crash" finds "crashing")."""
    pairs: dict[str, str] = {}
    for pid in ids:
        pairs.setdefault(" ".join(re.findall(r"[a-z0-9]+", pid)), pid)
        for phrase in PATTERN_PHRASES.get(pid, ()):
            pairs.setdefault(" ".join(re.findall(r"[a-z0-9]+", phrase.lower())), pid)
    ordered = sorted(pairs.items(), key=lambda kv: (-len(kv[0]), kv[0]))
    return tuple((re.compile(r"(?<![a-z0-9])" + r"[\s_\-]+".join(map(re.escape, ph.split())) +
                             (r"[a-z]{0,4}" if ph[-1:].isalpha() and len(ph) >= 4 else "") + r"(?![a-z0-9])"), pid)
                 for ph, pid in ordered if ph)


def spot_pattern(text: str, patterns: Mapping[str, Pattern]) -> Pattern | None:
    """The issue pattern a message describes ("the bridge keeps crashing" -> crashed), or ``None``."""
    lowered = " ".join(text[:MAX_CHARS].lower().split())
    for rx, pid in _pattern_phrases(tuple(patterns)):
        if rx.search(lowered):
            return patterns.get(pid)
    return None


def _service(snap: FleetSnapshot | None, name: str) -> ServiceStatus | None:
    return snap.service(name) if snap is not None else None


def _answering(text: str, why: str) -> Route:
    """A yes or no is still a message: its type and confidence come from the detector, not a fixed
    certainty (the detector's confidence is calibrated and never saturates)."""
    detection = ConversationDetector.default().detect(text)
    return Route(type=detection.type, confidence=detection.confidence, why=why)
