"""The response adapter: the dispatcher's answers to fleet commands, as Markdown. Pure.

Every function takes plain data (a :class:`~.router.Route`, catalogue entries, the engine's typed results
such as :class:`~aurora_tui.core.api.IncidentRow` or a :class:`~aurora_tui.core.model.FleetSnapshot`) and
returns Markdown; nothing here awaits, reads the clock (callers pass ``now``) or touches the fleet.
Answers to messages that are not commands, shaped by conversation type, are in :mod:`.guidance`.

Every reply ends with :func:`footer`: one italic line naming the program, tiers and modules that answered
and why.  Whatever the operator typed is escaped and clipped before it is echoed.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from ..api import ActionResult, IncidentRow, PlanRow, SilenceRow
from ..format import STATE_GLYPHS, bytes_h, duration_h, health_h, percent_h
from ..model import FleetSnapshot, ServiceStatus
from ..patterns import Pattern

if TYPE_CHECKING:
    from .router import Route

__all__ = [
    "COMMAND_HELP",
    "CONTROL",
    "bullets",
    "code_span",
    "confirm_question",
    "did_you_mean",
    "done_reply",
    "first_sentence",
    "fleet_health_line",
    "footer",
    "help_reply",
    "incidents_table",
    "logs_block",
    "md_escape",
    "pattern_reply",
    "plans_table",
    "refusal_reply",
    "service_line",
    "status_table",
    "why_reply",
    "with_footer",
]

# --------------------------------------------------------------------------------------------------
# text helpers

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]")
# `_` is only special at a word edge; inside "bridge_api" it is literal in CommonMark.
_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|~])|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")


def md_escape(text: Any, limit: int = 200) -> str:
    """``text`` safe to drop into Markdown on one line: control characters and newlines become spaces,
    Markdown punctuation is escaped, and it is clipped to ``limit`` characters."""
    s = " ".join(CONTROL.sub(" ", str(text)).split())
    if len(s) > limit:
        s = s[: max(limit - 1, 1)] + "…"
    s = _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), s)
    return re.sub(r"^([#+\-=>]|\d+[.)])", r"\\\1", s)


def code_span(text: Any, limit: int = 80) -> str:
    """An inline code span (backticks inside are replaced, since they cannot be escaped there)."""
    s = " ".join(CONTROL.sub(" ", str(text)).split()).replace("`", "'")
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return f"`{s}`" if s else "``"


def _cell(text: Any, limit: int = 60) -> str:
    return md_escape("-" if text is None or text == "" else text, limit)


def _clock(ts: Any, now: float | None = None) -> str:
    """``09:34:00 (2m ago)``."""
    try:
        value = float(ts)
    except (TypeError, ValueError):
        return "-"
    stamp = datetime.fromtimestamp(value).strftime("%H:%M:%S")
    if now is None:
        return stamp
    age = now - value
    return f"{stamp} ({duration_h(max(age, 0))} ago)" if age >= 0 else stamp


def bullets(items: Iterable[str], numbered: bool = False, task: bool = False) -> str:
    out = []
    for i, item in enumerate(items, 1):
        prefix = f"{i}." if numbered else ("- [ ]" if task else "-")
        out.append(f"{prefix} {item}")
    return "\n".join(out)


def first_sentence(text: str) -> str:
    """The first sentence of ``text``."""
    m = re.match(r"(.+?[.!?])(?:\s|$)", text.strip())
    return m.group(1) if m else text.strip()


# --------------------------------------------------------------------------------------------------
# the footer


def footer(route: Route, direct_modules: Sequence[str] = ()) -> str:
    """``_Program 62 Automatic Repair · tiers 184 Self-Repair Mechanisms, … · modules aurora.restart, … · because …_``.

    ``direct_modules`` (the program's own list, before dependencies) are shown first when given.
    """
    program = route.program
    why = (route.why or "").strip()
    parts = []
    if program:
        parts.append(f"Program {program['id']} {program['name']}")
        tiers = route.tiers
        if tiers:
            parts.append(("tier " if len(tiers) == 1 else "tiers ") + ", ".join(f"{t['id']} {t['name']}" for t in tiers))
        modules = list(route.modules)
        if modules:
            shown = [m for m in direct_modules if m in modules][:3] or modules[:3]
            more = len(modules) - len(shown)
            parts.append("modules " + ", ".join(shown) + (f", … ({len(modules)} with dependencies)" if more > 0 else ""))
    else:
        parts.append("No program: the dispatcher answered this itself")
    if why:
        parts.append(why)
    text = " · ".join(md_escape(p, 400) for p in parts)
    return f"_{text}_"


def with_footer(body: str, route: Route, direct_modules: Sequence[str] = ()) -> str:
    return body.rstrip() + "\n\n---\n" + footer(route, direct_modules)


# --------------------------------------------------------------------------------------------------
# the fleet


def service_line(status: ServiceStatus, now: float | None = None) -> str:
    """One service in words: ``bridge_api is running (pid 4729, port 5001), healthy, 1 restart, up 2m03s.``"""
    state = status.state
    bits = []
    if status.pid:
        bits.append(f"pid {status.pid}")
    if status.port:
        bits.append(f"port {status.port}")
    text = f"{code_span(status.name)} is {state}" + (f" ({', '.join(bits)})" if bits else "")
    if status.healthy is True:
        latency = status.latency_ms
        text += ", healthy" + (f" ({latency:.0f} ms)" if isinstance(latency, (int, float)) else "")
    elif status.healthy is False:
        err = status.health_error
        text += ", **not healthy**" + (f" ({md_escape(err, 80)})" if err else "")
    restarts = status.restarts or 0
    text += f", {restarts} restart{'s' if restarts != 1 else ''}"
    if status.uptime is not None and state == "running":
        text += f", up {duration_h(status.uptime)}"
    last = status.last_exit
    if last:
        how = f"killed by {last.signal}" if last.signal else f"exited with status {last.code}"
        when = _clock(last.ts, now) if now is not None else ""
        text += f"; last exit: {how}" + (f" at {when}" if when else "")
    return text + "."


def status_table(snapshot: FleetSnapshot, only: str | None = None) -> str:
    """The fleet (or one service) as a Markdown table, with a one-line summary under it."""
    services = list(snapshot.services)
    if only:
        services = [s for s in services if s.name == only]
    if not services:
        return f"No service named {code_span(only)} in this fleet." if only else "The fleet has no services."
    rows = ["| service | state | pid | port | health | restarts | uptime | cpu | rss |",
            "|---|---|---:|---:|---|---:|---:|---:|---:|"]
    for s in services:
        state = str(s.state)
        rows.append(
            f"| {code_span(s.name)} | {STATE_GLYPHS.get(state, '?')} {md_escape(state)} | {s.pid or '-'} | "
            f"{s.port or '-'} | {health_h(s.healthy, s.latency_ms)} | {s.restarts or 0} | "
            f"{duration_h(s.uptime)} | {percent_h(s.cpu)} | {bytes_h(s.rss)} |"
        )
    healthy = sum(1 for s in services if s.healthy)
    summary = f"**{healthy}/{len(services)} healthy**"
    if not only:
        scans = snapshot.scans
        last = snapshot.last_scan_at
        if scans is not None:
            summary += f" · {scans} scans"
        if last:
            summary += f" · last scan {_clock(last, snapshot.ts)}"
        down = [s.name for s in services if s.healthy is False]
        if down:
            summary += " · not healthy: " + ", ".join(code_span(n) for n in down)
    return "\n".join(rows) + "\n\n" + summary


def fleet_health_line(snapshot: FleetSnapshot) -> str:
    services = snapshot.services
    if not services:
        return "The fleet has no services."
    healthy = sum(1 for s in services if s.healthy)
    down = [s.name for s in services if not s.healthy]
    if not down:
        return f"All {len(services)} services are healthy."
    return f"{healthy}/{len(services)} services are healthy; not healthy: {', '.join(code_span(n) for n in down)}."


def incidents_table(rows: Sequence[IncidentRow], now: float, what: str = "incidents") -> str:
    if not rows:
        return f"No {what}."
    out = ["| # | service | pattern | status | conf | seen | opened | summary |", "|---:|---|---|---|---:|---:|---|---|"]
    for r in rows:
        out.append(
            f"| {r.id} | {code_span(r.service)} | {code_span(r.pattern)} | {_cell(r.status)} | "
            f"{r.confidence}/10 | {r.count}× | {_clock(r.opened_at, now)} | {_cell(r.summary, 70)} |"
        )
    return "\n".join(out)


def plans_table(rows: Sequence[PlanRow], now: float | None = None, empty: str = "No fix plans are waiting for a decision.") -> str:
    if not rows:
        return empty
    out = ["| plan | service | pattern | fix | risk | conf | status | why |", "|---:|---|---|---|---|---:|---|---|"]
    for r in rows:
        out.append(
            f"| #{r.id} | {code_span(r.service)} | {code_span(r.pattern)} | {_cell(r.fix)} | "
            f"{_cell(r.risk)} | {r.confidence}/10 | {_cell(r.status)} | {_cell(r.summary, 70)} |"
        )
    return "\n".join(out)


def logs_block(service: str, lines: Sequence[str], asked: int) -> str:
    if not lines:
        return f"{code_span(service)} has written nothing to its log yet."
    body = "\n".join(CONTROL.sub(" ", str(line)).replace("```", "'''")[:300] for line in lines)
    return f"The last {len(lines)} line{'s' if len(lines) != 1 else ''} of {code_span(service)} (asked for {asked}):\n\n```text\n{body}\n```"


# --------------------------------------------------------------------------------------------------
# commands answered by the dispatcher itself

#: (command, example, what it does) — the help text and the "did you mean" hints use it.
COMMAND_HELP: tuple[tuple[str, str, str], ...] = (
    ("status", "status · status bridge_api · how's the fleet", "the fleet, or one service, as a table"),
    ("logs", "logs bridge_api · last 50 lines of file_server", "a service's log tail"),
    ("incidents", "incidents · open incidents for ui · incidents in the last 2h", "the incident history"),
    ("why", "why bridge_api · what happened to the bridge · explain incident 9",
     "the newest incident of a service: what happened, the evidence, what was done"),
    ("scan", "scan · run a scan", "scan the fleet now"),
    ("approvals", "approvals · what's waiting for me", "fix plans waiting for a human"),
    ("restart", "restart bridge_api · bounce the file server", "stop and start a service (asks first)"),
    ("stop", "stop learning_api", "stop a service (asks first)"),
    ("start", "start learning_api", "start a stopped service (asks first)"),
    ("approve", "approve 12 · lgtm #12", "approve a pending fix plan (asks first)"),
    ("reject", "reject 12 because it is too risky", "reject a pending fix plan, with a reason (asks first)"),
    ("grade", "grade 12 8/10", "grade a decided fix plan 1-10 (asks first)"),
    ("silence", "silence ui for 30m", "open no new incidents for a service for a while (asks first)"),
    ("rollback", "rollback bridge_api", "what Aurora can roll back, and when"),
    ("explain", "explain crash loop · what is a zombie", "what an issue pattern means and how it is fixed"),
    ("help", "help · help restart", "this list"),
)


def help_reply(topic: str | None = None, ttl: float = 120.0) -> str:
    if topic:
        for verb, examples, what in COMMAND_HELP:
            if verb == topic:
                ex = " · ".join(code_span(e.strip()) for e in examples.split("·"))
                confirm = (" Anything that changes the fleet is not done at once: I ask first, and you answer "
                           f"**yes** (or **no**) as your next message, within {ttl:g}s.") if "asks first" in what else ""
                return f"**{verb}**: {what}.{confirm}\n\nFor example: {ex}"
    lines = ["**What I understand** (plain words work too; typos in names are fine):", "",
             "| command | what it does | for example |", "|---|---|---|"]
    for verb, examples, what in COMMAND_HELP:
        first = examples.split("·")[0].strip()
        lines.append(f"| **{verb}** | {what} | {code_span(first)} |")
    lines += ["", "Anything that changes the fleet asks for confirmation first: answer **yes** or **no** next. "
              "Chat text is never run as a shell command. Other questions (code, design, debugging, "
              "tests …) get guidance from the matching program."]
    return "\n".join(lines)


def refusal_reply(reason: str) -> str:
    return (
        f"**I won't run that.** {md_escape(reason[:1].upper() + reason[1:], 300)}.\n\n"
        "Chat text is never executed: I only act on the services Aurora supervises, through the engine and "
        "its guardians, and only after you confirm. Instead:\n\n"
        "- to stop or restart a service, name it: `stop learning_api`, `restart bridge_api`;\n"
        "- to see what a process is doing: `status bridge_api`, `logs bridge_api`, `why bridge_api`;\n"
        "- for anything on the host itself (other processes, files, reboots), use a shell you control."
    )


def did_you_mean(kind: str, given: str, choices: Sequence[str], services: Sequence[str] = ()) -> str:
    if choices:
        options = " or ".join(code_span(c) for c in choices[:3])
        return f"I don't know the {kind} {code_span(given, 40)}. Did you mean {options}?"
    known = ", ".join(code_span(s) for s in services) if services else "none"
    return f"I don't know the {kind} {code_span(given, 40)}. The services are: {known}."


def pattern_reply(pattern: Pattern) -> str:
    causes = list(pattern.causes)
    actions = ", ".join(code_span(a) for a in pattern.actions) or "none"
    lines = [
        f"**{md_escape(pattern.title)}** ({code_span(pattern.id)}, {md_escape(pattern.severity)}, "
        f"{md_escape(pattern.scope)} scope)",
        "",
        f"**What it is.** {md_escape(pattern.explanation, 600)}",
        "",
        f"**What it looks like.** {md_escape(pattern.looks_like, 600)}",
    ]
    if causes:
        lines += ["", "**Usual causes.**", bullets(md_escape(c, 300) for c in causes)]
    lines += ["", f"**The fix.** {md_escape(pattern.fix, 600)} Aurora's actions for it: {actions}; risk "
              f"class **{md_escape(pattern.risk)}** (low runs on its own when confident, high always waits "
              "for a human)."]
    return "\n".join(lines)


def confirm_question(action: str, target: str, args: Mapping[str, Any]) -> tuple[str, str]:
    """(one-line question, what will happen) for a fleet-changing action."""
    t = str(target)
    if action == "restart":
        return f"Restart {t}?", ("It is stopped (SIGTERM to its process group, SIGKILL after its stop timeout) "
                                 "and started again, through Aurora's guardians.")
    if action == "stop":
        return f"Stop {t}?", ("It is stopped (SIGTERM to its process group, SIGKILL after its stop timeout) and "
                              "stays stopped until you start it; the guardians judge the stop first.")
    if action == "start":
        return f"Start {t}?", "It is started with its configured command, through Aurora's guardians."
    if action == "approve":
        grade = args.get("grade")
        return f"Approve plan #{t}?" + (f" (graded {grade}/10)" if grade is not None else ""), \
            "The plan's actions run after the guardians look again at fresh evidence."
    if action == "reject":
        return f"Reject plan #{t}?", f"Reason recorded: “{md_escape(args.get('reason', ''), 200)}”. Aurora learns from it."
    if action == "grade":
        return f"Grade plan #{t} {args.get('grade')}/10?", "The grade feeds what Aurora has learned about that fix."
    if action == "silence":
        return f"Silence {t} for {duration_h(args.get('duration_s'))}?", \
            ("No new incidents are opened for it until then (open ones stay open)." +
             (f" Reason: “{md_escape(args.get('reason'), 200)}”." if args.get("reason") else ""))
    return f"{action.capitalize()} {t}?", ""


def done_reply(action: str, target: str, result: ActionResult | PlanRow | SilenceRow | None) -> str:
    """What happened after a confirmed action."""
    if action in ("restart", "start", "stop") and isinstance(result, ActionResult):
        if action == "stop":
            return f"Done: {code_span(target)} is {md_escape(result.state or 'stopped')}."
        pid = result.pid
        health = "healthy" if result.healthy else "not healthy yet (the next scans will tell)"
        verb = "restarted" if action == "restart" else "started"
        return f"Done: {code_span(target)} {verb}" + (f", now pid {pid}" if pid else "") + f", {health}."
    if action in ("approve", "reject", "grade") and isinstance(result, PlanRow):
        status = result.status
        text = f"Plan #{result.id} ({md_escape(result.fix)} for {code_span(result.pattern)} on {code_span(result.service)}) is now **{md_escape(status)}**"
        if action == "grade":
            text += f", graded {result.grade}/10"
        elif action == "approve" and status == "pending":
            text += " (it was already being decided; nothing changed)"
        elif action == "approve" and status not in ("approved", "executing", "verified", "executed"):
            text += " (it was no longer pending, so nothing ran)"
        return text + "."
    if action == "silence" and isinstance(result, SilenceRow):
        return (f"Done: {code_span(result.service)} is silenced until {_clock(result.until)}: "
                f"{md_escape(result.reason, 200)}.")
    return f"Done: {md_escape(action)} {code_span(target)}."


# --------------------------------------------------------------------------------------------------
# why SERVICE


_EVIDENCE_LABELS = {
    "exit_code": "exit code", "signal": "signal", "runtime_s": "ran for (s)", "holder_pid": "port holder pid",
    "holder_cmdline": "port holder", "holder_username": "port holder user", "port": "port",
    "health_error": "health error", "rss_mb": "RSS (MB)", "limit_mb": "limit (MB)", "cpu_percent": "CPU %",
    "fds": "open fds", "fd_limit": "fd limit", "status_codes": "HTTP statuses", "latency_ms": "latency (ms)",
    "exits_in_window": "exits in window", "exit_codes": "exit codes", "start_errors": "start errors",
    "dependencies_down": "dependencies down", "orphan_pids": "orphan pids", "recent_errors": "recent errors",
}
_SKIP_EVIDENCE = {"log_tail", "exited_at", "predicted_at", "down_since", "history"}


def _evidence_lines(evidence: Mapping[str, Any]) -> list[str]:
    out = []
    if "signal" in evidence or "exit_code" in evidence:
        sig, code = evidence.get("signal"), evidence.get("exit_code")
        how = f"killed by **{md_escape(sig)}**" if sig else f"exited with status **{md_escape(code)}**"
        ran = evidence.get("runtime_s")
        out.append(f"the process was {how}" + (f" after {ran:g}s" if isinstance(ran, (int, float)) else ""))
    for key, value in evidence.items():
        if key in _SKIP_EVIDENCE or key in ("signal", "exit_code", "runtime_s") or value in (None, "", [], {}):
            continue
        if isinstance(value, (list, tuple)):
            shown = ", ".join(md_escape(v, 60) for v in list(value)[:6]) + (" …" if len(value) > 6 else "")
        elif isinstance(value, float):
            shown = f"{value:g}"
        elif isinstance(value, Mapping):
            shown = md_escape(", ".join(f"{k}={v}" for k, v in list(value.items())[:6]), 160)
        else:
            shown = md_escape(value, 160)
        out.append(f"{_EVIDENCE_LABELS.get(key, key.replace('_', ' '))}: {shown}")
    return out


def _plan_line(plan: PlanRow, now: float) -> str:
    verdicts = ", ".join(f"{v.get('level')} {v.get('outcome')}" for v in plan.verdicts or [])
    decided = plan.decided_by or "nobody yet"
    text = (f"plan **#{plan.id}** {code_span(plan.fix)} (risk {md_escape(plan.risk)}, confidence "
            f"{plan.confidence}/10): decided by {md_escape(decided)}")
    if verdicts:
        text += f" ({verdicts})"
    text += f" → **{md_escape(plan.status)}**"
    outcome = plan.outcome
    if outcome:
        text += f": {md_escape(outcome, 160)}"
    return text


def why_reply(service: str, incidents: Sequence[IncidentRow], plans: Sequence[PlanRow],
              status: ServiceStatus | None, patterns: Mapping[str, Pattern], now: float,
              older: Sequence[IncidentRow] = ()) -> str:
    """The story of ``service``'s newest incident(s): what happened, when, the likely cause with its
    evidence, and what was done (the plans with their outcome).  ``incidents`` carry their timeline."""
    if not incidents:
        lines = [f"**No incident on record for {code_span(service)}.** Aurora has not seen anything wrong with it."]
        if status is not None:
            lines += ["", "**Now.** " + service_line(status, now)]
        return "\n".join(lines)
    out: list[str] = []
    for n, inc in enumerate(incidents):
        pat = patterns.get(inc.pattern) if patterns else None
        title = (pat.title if pat else None) or inc.pattern
        resolved = inc.resolved_at
        state = f"resolved {_clock(resolved, now)}" if resolved else md_escape(inc.status)
        if n:
            out += ["", "---", ""]
        out.append(f"**{code_span(service)}: {md_escape(title)}** — incident #{inc.id}, {state}")
        out += ["", f"**What happened.** {md_escape(inc.summary, 300)}, first seen {_clock(inc.onset_at or inc.opened_at, now)}"
                + (f"; seen {inc.count}×" if (inc.count or 1) > 1 else "")
                + (f"; detected in {inc.detect_seconds:.2f}s" if isinstance(inc.detect_seconds, (int, float)) else "")
                + (f"; recovered after {inc.recover_seconds:.2f}s" if isinstance(inc.recover_seconds, (int, float)) and inc.recover_seconds else "")
                + "."]
        cause = pat.explanation if pat else None
        causes = list(pat.causes) if pat else []
        evidence = inc.evidence or {}
        out += ["", f"**Likely cause.** {md_escape(cause, 400) if cause else md_escape(inc.pattern)}"
                + (f" Usual reasons: {'; '.join(md_escape(c, 120) for c in causes[:4])}." if causes else "")
                + f" (confidence {inc.confidence}/10)"]
        if inc.caused_by:
            out.append(f"It was caused by incident #{inc.caused_by}.")
        ev = _evidence_lines(evidence)
        if ev or evidence.get("log_tail"):
            out += ["", "**Evidence.**"]
            out += [f"- {line}" for line in ev]
            tail = [str(x) for x in evidence.get("log_tail") or []][-6:]
            if tail:
                body = "\n".join(CONTROL.sub(" ", x).replace("```", "'''")[:240] for x in tail)
                out += ["- the last log lines:", "", "```text", body, "```"]
        mine = [p for p in plans if p.incident_id == inc.id]
        out += ["", "**What was done.**"]
        if mine:
            out += [f"- {_plan_line(p, now)}" for p in sorted(mine, key=lambda p: p.id)]
        else:
            out.append("- no fix plan was made for it" + (" (it cleared on its own)" if resolved else ""))
        if inc.timeline:
            steps = " → ".join(f"{md_escape(e.kind)} {_clock(e.ts)}" for e in inc.timeline[:12])
            out.append(f"- timeline: {steps}")
    if older:
        out += ["", "Earlier: " + "; ".join(
            f"#{r.id} {code_span(r.pattern)} {_clock(r.opened_at, now)}" for r in older)]
    if status is not None:
        out += ["", "**Now.** " + service_line(status, now)]
    return "\n".join(out)
