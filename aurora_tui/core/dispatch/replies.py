"""The response adapter: the dispatcher's answers as Markdown, shaped by conversation type. Pure.

Every function takes plain data (a :class:`~.router.Route`, catalogue entries, the engine's dicts or a
:class:`~aurora_tui.core.model.FleetSnapshot`) and returns Markdown; nothing here awaits, reads the
clock (callers pass ``now``) or touches the fleet.

Shapes by type:

* ``debugging`` — cause → evidence → next step;
* ``analysis`` — a compact table (the fleet's, when there is live data), then questions;
* ``explanation`` — concept, why it matters, example;
* ``question_answering`` — a one-line answer first, then the detail;
* ``code_generation`` — a fenced code sketch built from the program's checklist;
* ``architecture`` / ``optimization`` / ``testing`` / ``refactoring`` — decide / do / avoid, in their words;
* ``general_chat`` — one friendly line, the fleet's health when known, and where to go next.

Every reply ends with :func:`footer`: one italic line naming the program, tiers and modules that answered
and why.  Whatever the operator typed is escaped and clipped before it is echoed.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

from ..format import STATE_GLYPHS, bytes_h, duration_h, health_h, percent_h

__all__ = [
    "COMMAND_HELP",
    "confirm_question",
    "did_you_mean",
    "done_reply",
    "footer",
    "guidance",
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

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\ufeff]")
# `_` is only special at a word edge; inside "bridge_api" it is literal in CommonMark.
_MD_SPECIAL = re.compile(r"([\\`*\[\]<>|~])|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")


def md_escape(text: Any, limit: int = 200) -> str:
    """``text`` safe to drop into Markdown on one line: control characters and newlines become spaces,
    Markdown punctuation is escaped, and it is clipped to ``limit`` characters."""
    s = " ".join(_CONTROL.sub(" ", str(text)).split())
    if len(s) > limit:
        s = s[: max(limit - 1, 1)] + "…"
    s = _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), s)
    return re.sub(r"^([#+\-=>]|\d+[.)])", r"\\\1", s)


def _code(text: Any, limit: int = 80) -> str:
    """An inline code span (backticks inside are replaced, since they cannot be escaped there)."""
    s = " ".join(_CONTROL.sub(" ", str(text)).split()).replace("`", "'")
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return f"`{s}`" if s else "``"


def _cell(text: Any, limit: int = 60) -> str:
    return md_escape("-" if text is None or text == "" else text, limit)


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


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


def _bullets(items: Iterable[str], numbered: bool = False, task: bool = False) -> str:
    out = []
    for i, item in enumerate(items, 1):
        prefix = f"{i}." if numbered else ("- [ ]" if task else "-")
        out.append(f"{prefix} {item}")
    return "\n".join(out)


def _sentences(text: str) -> str:
    """The first sentence of ``text``."""
    m = re.match(r"(.+?[.!?])(?:\s|$)", text.strip())
    return m.group(1) if m else text.strip()


# --------------------------------------------------------------------------------------------------
# the footer


def footer(route: Any, direct_modules: Sequence[str] = ()) -> str:
    """``_Program 62 Automatic Repair · tiers 184 Self-Repair Mechanisms, … · modules aurora.restart, … · because …_``.

    ``direct_modules`` (the program's own list, before dependencies) are shown first when given.
    """
    program = _get(route, "program")
    why = str(_get(route, "why") or "").strip()
    parts = []
    if program:
        parts.append(f"Program {program['id']} {program['name']}")
        tiers = _get(route, "tiers") or []
        if tiers:
            parts.append(("tier " if len(tiers) == 1 else "tiers ") + ", ".join(f"{t['id']} {t['name']}" for t in tiers))
        modules = list(_get(route, "modules") or [])
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


def with_footer(body: str, route: Any, direct_modules: Sequence[str] = ()) -> str:
    return body.rstrip() + "\n\n---\n" + footer(route, direct_modules)


# --------------------------------------------------------------------------------------------------
# the fleet


def service_line(status: Any, now: float | None = None) -> str:
    """One service in words: ``bridge_api is running (pid 4729, port 5001), healthy, 1 restart, up 2m03s.``"""
    name = _get(status, "name", "?")
    state = _get(status, "state", "?")
    bits = []
    if _get(status, "pid"):
        bits.append(f"pid {_get(status, 'pid')}")
    if _get(status, "port"):
        bits.append(f"port {_get(status, 'port')}")
    text = f"{_code(name)} is {state}" + (f" ({', '.join(bits)})" if bits else "")
    healthy = _get(status, "healthy")
    if healthy is True:
        latency = _get(status, "latency_ms")
        text += ", healthy" + (f" ({latency:.0f} ms)" if isinstance(latency, (int, float)) else "")
    elif healthy is False:
        err = _get(status, "health_error")
        text += ", **not healthy**" + (f" ({md_escape(err, 80)})" if err else "")
    restarts = _get(status, "restarts") or 0
    text += f", {restarts} restart{'s' if restarts != 1 else ''}"
    if _get(status, "uptime") is not None and state == "running":
        text += f", up {duration_h(_get(status, 'uptime'))}"
    last = _get(status, "last_exit")
    if last:
        how = f"killed by {_get(last, 'signal')}" if _get(last, "signal") else f"exited with status {_get(last, 'code')}"
        when = _clock(_get(last, "ts"), now) if now is not None else ""
        text += f"; last exit: {how}" + (f" at {when}" if when else "")
    return text + "."


def status_table(snapshot: Any, only: str | None = None) -> str:
    """The fleet (or one service) as a Markdown table, with a one-line summary under it."""
    services = list(_get(snapshot, "services") or [])
    if only:
        services = [s for s in services if _get(s, "name") == only]
    if not services:
        return f"No service named {_code(only)} in this fleet." if only else "The fleet has no services."
    rows = ["| service | state | pid | port | health | restarts | uptime | cpu | rss |",
            "|---|---|---:|---:|---|---:|---:|---:|---:|"]
    for s in services:
        state = str(_get(s, "state", "?"))
        rows.append(
            f"| {_code(_get(s, 'name'))} | {STATE_GLYPHS.get(state, '?')} {md_escape(state)} | {_get(s, 'pid') or '-'} | "
            f"{_get(s, 'port') or '-'} | {health_h(_get(s, 'healthy'), _get(s, 'latency_ms'))} | {_get(s, 'restarts') or 0} | "
            f"{duration_h(_get(s, 'uptime'))} | {percent_h(_get(s, 'cpu'))} | {bytes_h(_get(s, 'rss'))} |"
        )
    healthy = sum(1 for s in services if _get(s, "healthy"))
    summary = f"**{healthy}/{len(services)} healthy**"
    if not only:
        scans = _get(snapshot, "scans")
        last = _get(snapshot, "last_scan_at")
        if scans is not None:
            summary += f" · {scans} scans"
        if last:
            summary += f" · last scan {_clock(last, _get(snapshot, 'ts'))}"
        down = [str(_get(s, "name")) for s in services if _get(s, "healthy") is False]
        if down:
            summary += " · not healthy: " + ", ".join(_code(n) for n in down)
    return "\n".join(rows) + "\n\n" + summary


def fleet_health_line(snapshot: Any) -> str:
    services = list(_get(snapshot, "services") or [])
    if not services:
        return "The fleet has no services."
    healthy = sum(1 for s in services if _get(s, "healthy"))
    down = [str(_get(s, "name")) for s in services if not _get(s, "healthy")]
    if not down:
        return f"All {len(services)} services are healthy."
    return f"{healthy}/{len(services)} services are healthy; not healthy: {', '.join(_code(n) for n in down)}."


def incidents_table(rows: Sequence[Mapping[str, Any]], now: float, what: str = "incidents") -> str:
    if not rows:
        return f"No {what}."
    out = ["| # | service | pattern | status | conf | seen | opened | summary |", "|---:|---|---|---|---:|---:|---|---|"]
    for r in rows:
        out.append(
            f"| {r.get('id')} | {_code(r.get('service'))} | {_code(r.get('pattern'))} | {_cell(r.get('status'))} | "
            f"{r.get('confidence', '-')}/10 | {r.get('count', 1)}× | {_clock(r.get('opened_at'), now)} | {_cell(r.get('summary'), 70)} |"
        )
    return "\n".join(out)


def plans_table(rows: Sequence[Mapping[str, Any]], now: float | None = None, empty: str = "No fix plans are waiting for a decision.") -> str:
    if not rows:
        return empty
    out = ["| plan | service | pattern | fix | risk | conf | status | why |", "|---:|---|---|---|---|---:|---|---|"]
    for r in rows:
        out.append(
            f"| #{r.get('id')} | {_code(r.get('service'))} | {_code(r.get('pattern'))} | {_cell(r.get('fix'))} | "
            f"{_cell(r.get('risk'))} | {r.get('confidence', '-')}/10 | {_cell(r.get('status'))} | {_cell(r.get('summary'), 70)} |"
        )
    return "\n".join(out)


def logs_block(service: str, lines: Sequence[str], asked: int) -> str:
    if not lines:
        return f"{_code(service)} has written nothing to its log yet."
    body = "\n".join(_CONTROL.sub(" ", str(line)).replace("```", "'''")[:300] for line in lines)
    return f"The last {len(lines)} line{'s' if len(lines) != 1 else ''} of {_code(service)} (asked for {asked}):\n\n```text\n{body}\n```"


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
                ex = " · ".join(_code(e.strip()) for e in examples.split("·"))
                confirm = (" Anything that changes the fleet is not done at once: I ask first, and you answer "
                           f"**yes** (or **no**) as your next message, within {ttl:g}s.") if "asks first" in what else ""
                return f"**{verb}**: {what}.{confirm}\n\nFor example: {ex}"
    lines = ["**What I understand** (plain words work too; typos in names are fine):", "",
             "| command | what it does | for example |", "|---|---|---|"]
    for verb, examples, what in COMMAND_HELP:
        first = examples.split("·")[0].strip()
        lines.append(f"| **{verb}** | {what} | {_code(first)} |")
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
        options = " or ".join(_code(c) for c in choices[:3])
        return f"I don't know the {kind} {_code(given, 40)}. Did you mean {options}?"
    known = ", ".join(_code(s) for s in services) if services else "none"
    return f"I don't know the {kind} {_code(given, 40)}. The services are: {known}."


def pattern_reply(pattern: Any) -> str:
    causes = list(_get(pattern, "causes") or [])
    actions = ", ".join(_code(a) for a in (_get(pattern, "actions") or [])) or "none"
    lines = [
        f"**{md_escape(_get(pattern, 'title'))}** ({_code(_get(pattern, 'id'))}, {md_escape(_get(pattern, 'severity'))}, "
        f"{md_escape(_get(pattern, 'scope'))} scope)",
        "",
        f"**What it is.** {md_escape(_get(pattern, 'explanation'), 600)}",
        "",
        f"**What it looks like.** {md_escape(_get(pattern, 'looks_like'), 600)}",
    ]
    if causes:
        lines += ["", "**Usual causes.**", _bullets(md_escape(c, 300) for c in causes)]
    lines += ["", f"**The fix.** {md_escape(_get(pattern, 'fix'), 600)} Aurora's actions for it: {actions}; risk "
              f"class **{md_escape(_get(pattern, 'risk'))}** (low runs on its own when confident, high always waits "
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


def done_reply(action: str, target: str, result: Any) -> str:
    """What happened after a confirmed action."""
    if action in ("restart", "start", "stop") and isinstance(result, Mapping):
        state = result.get("state")
        if action == "stop":
            return f"Done: {_code(target)} is {md_escape(state or 'stopped')}."
        pid = result.get("pid")
        health = "healthy" if result.get("healthy") else "not healthy yet (the next scans will tell)"
        verb = "restarted" if action == "restart" else "started"
        return f"Done: {_code(target)} {verb}" + (f", now pid {pid}" if pid else "") + f", {health}."
    if action in ("approve", "reject", "grade") and isinstance(result, Mapping):
        status = result.get("status")
        text = f"Plan #{result.get('id', target)} ({md_escape(result.get('fix'))} for {_code(result.get('pattern'))} on {_code(result.get('service'))}) is now **{md_escape(status)}**"
        if action == "grade":
            text += f", graded {result.get('grade')}/10"
        elif action == "approve" and status == "pending":
            text += " (it was already being decided; nothing changed)"
        elif action == "approve" and status not in ("approved", "executing", "verified", "executed"):
            text += " (it was no longer pending, so nothing ran)"
        return text + "."
    if action == "silence" and isinstance(result, Mapping):
        return (f"Done: {_code(result.get('service', target))} is silenced until {_clock(result.get('until'))}: "
                f"{md_escape(result.get('reason'), 200)}.")
    return f"Done: {md_escape(action)} {_code(target)}."


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


def _plan_line(plan: Mapping[str, Any], now: float) -> str:
    verdicts = ", ".join(f"{v.get('level')} {v.get('outcome')}" for v in plan.get("verdicts") or [])
    decided = plan.get("decided_by") or "nobody yet"
    text = (f"plan **#{plan.get('id')}** {_code(plan.get('fix'))} (risk {md_escape(plan.get('risk'))}, confidence "
            f"{plan.get('confidence')}/10): decided by {md_escape(decided)}")
    if verdicts:
        text += f" ({verdicts})"
    text += f" → **{md_escape(plan.get('status'))}**"
    outcome = plan.get("outcome")
    if outcome:
        text += f": {md_escape(outcome, 160)}"
    return text


def why_reply(service: str, incidents: Sequence[Mapping[str, Any]], plans: Sequence[Mapping[str, Any]],
              status: Any, patterns: Mapping[str, Any], now: float, older: Sequence[Mapping[str, Any]] = ()) -> str:
    """The story of ``service``'s newest incident(s): what happened, when, the likely cause with its
    evidence, and what was done (the plans with their outcome).  ``incidents`` carry their timeline."""
    if not incidents:
        lines = [f"**No incident on record for {_code(service)}.** Aurora has not seen anything wrong with it."]
        if status is not None:
            lines += ["", "**Now.** " + service_line(status, now)]
        return "\n".join(lines)
    out: list[str] = []
    for n, inc in enumerate(incidents):
        pat = patterns.get(inc.get("pattern")) if patterns else None
        title = _get(pat, "title") or inc.get("pattern")
        resolved = inc.get("resolved_at")
        state = f"resolved {_clock(resolved, now)}" if resolved else md_escape(inc.get("status"))
        if n:
            out += ["", "---", ""]
        out.append(f"**{_code(service)}: {md_escape(title)}** — incident #{inc.get('id')}, {state}")
        out += ["", f"**What happened.** {md_escape(inc.get('summary'), 300)}, first seen {_clock(inc.get('onset_at') or inc.get('opened_at'), now)}"
                + (f"; seen {inc.get('count')}×" if (inc.get("count") or 1) > 1 else "")
                + (f"; detected in {inc['detect_seconds']:.2f}s" if isinstance(inc.get("detect_seconds"), (int, float)) else "")
                + (f"; recovered after {inc['recover_seconds']:.2f}s" if isinstance(inc.get("recover_seconds"), (int, float)) and inc.get("recover_seconds") else "")
                + "."]
        cause = _get(pat, "explanation")
        causes = list(_get(pat, "causes") or [])
        evidence = inc.get("evidence") or {}
        out += ["", f"**Likely cause.** {md_escape(cause, 400) if cause else md_escape(inc.get('pattern'))}"
                + (f" Usual reasons: {'; '.join(md_escape(c, 120) for c in causes[:4])}." if causes else "")
                + f" (confidence {inc.get('confidence')}/10)"]
        if inc.get("caused_by"):
            out.append(f"It was caused by incident #{inc.get('caused_by')}.")
        ev = _evidence_lines(evidence)
        if ev or evidence.get("log_tail"):
            out += ["", "**Evidence.**"]
            out += [f"- {line}" for line in ev]
            tail = [str(x) for x in evidence.get("log_tail") or []][-6:]
            if tail:
                body = "\n".join(_CONTROL.sub(" ", x).replace("```", "'''")[:240] for x in tail)
                out += ["- the last log lines:", "", "```text", body, "```"]
        mine = [p for p in plans if p.get("incident_id") == inc.get("id")]
        out += ["", "**What was done.**"]
        if mine:
            out += [f"- {_plan_line(p, now)}" for p in sorted(mine, key=lambda p: p.get("id") or 0)]
        else:
            out.append("- no fix plan was made for it" + (" (it cleared on its own)" if resolved else ""))
        timeline = inc.get("timeline") or []
        if timeline:
            steps = " → ".join(f"{md_escape(e.get('kind'))} {_clock(e.get('ts'))}" for e in timeline[:12])
            out.append(f"- timeline: {steps}")
    if older:
        out += ["", "Earlier: " + "; ".join(
            f"#{r.get('id')} {_code(r.get('pattern'))} {_clock(r.get('opened_at'), now)}" for r in older)]
    if status is not None:
        out += ["", "**Now.** " + service_line(status, now)]
    return "\n".join(out)


# --------------------------------------------------------------------------------------------------
# guidance by conversation type

_GREETING = re.compile(r"\b(?:hello|hi|hey|yo|howdy|good (?:morning|afternoon|evening)|hiya|greetings)\b")
_THANKS = re.compile(r"\b(?:thanks|thank you|thx|ty|cheers|much appreciated)\b")
_BYE = re.compile(r"\b(?:bye|goodbye|see you|later|good night|cya)\b")

_CODE_LANG = {1: "python", 2: "javascript", 3: "go", 4: "rust", 5: "csharp", 6: "python", 55: "python", 56: "python",
              57: "python"}
_LANG_HINTS = (
    (re.compile(r"\bdockerfile\b|\bdocker file\b"), "dockerfile"),
    (re.compile(r"\btypescript\b|\bts\b"), "typescript"),
    (re.compile(r"\b(?:bash|shell script|sh script|shell)\b"), "bash"),
    (re.compile(r"\b(?:yaml|yml|kubernetes manifest|k8s manifest|helm|github actions?|workflow|compose file)\b"), "yaml"),
    (re.compile(r"\bsql\b|\bquery\b|\bmigration\b"), "sql"),
    (re.compile(r"\btoml\b|\baurora config\b|\bfleet config\b"), "toml"),
    (re.compile(r"\bgolang\b|\bgo (?:code|program|service|function)\b"), "go"),
    (re.compile(r"\brust\b"), "rust"),
    (re.compile(r"\bjavascript\b|\bnode(?:\.?js)?\b"), "javascript"),
    (re.compile(r"\bc#|\bcsharp\b|\.net\b"), "csharp"),
    (re.compile(r"\bpython\b"), "python"),
)
_COMMENT = {"python": "#", "bash": "#", "yaml": "#", "toml": "#", "dockerfile": "#", "sql": "--"}


def _language(program_id: int | None, text: str) -> str:
    lowered = text.lower()
    for rx, lang in _LANG_HINTS:
        if rx.search(lowered):
            return lang
    return _CODE_LANG.get(program_id or 0, "python")


def _code_sketch(lang: str, task: str, steps: Sequence[str]) -> str:
    c = _COMMENT.get(lang, "//")
    head = [f"{c} Sketch: {task}"] + [f"{c} {i}. {s}" for i, s in enumerate(steps, 1)]
    head = [h.replace("```", "'''") for h in head]
    body = {
        "python": ['from __future__ import annotations', '', '', 'def main() -> int:',
                   '    """Fill in each numbered step above; keep the happy path and one failure path tested."""',
                   '    raise NotImplementedError("sketch")', '', '', 'if __name__ == "__main__":',
                   '    raise SystemExit(main())'],
        "javascript": ['"use strict";', '', 'async function main() {', '  // fill in the numbered steps above',
                       '  throw new Error("sketch");', '}', '', 'main().catch((err) => {', '  console.error(err);',
                       '  process.exitCode = 1;', '});'],
        "typescript": ['export async function main(): Promise<void> {', '  // fill in the numbered steps above',
                       '  throw new Error("sketch");', '}'],
        "go": ['package main', '', 'import (', '\t"context"', '\t"log"', ')', '', 'func run(ctx context.Context) error {',
               '\t// fill in the numbered steps above', '\treturn nil', '}', '', 'func main() {',
               '\tif err := run(context.Background()); err != nil {', '\t\tlog.Fatal(err)', '\t}', '}'],
        "rust": ['fn run() -> Result<(), Box<dyn std::error::Error>> {', '    // fill in the numbered steps above',
                 '    Ok(())', '}', '', 'fn main() {', '    if let Err(e) = run() {', '        eprintln!("{e}");',
                 '        std::process::exit(1);', '    }', '}'],
        "csharp": ['public static class Program', '{', '    public static async Task<int> Main(string[] args)', '    {',
                   '        // fill in the numbered steps above', '        await Task.CompletedTask;', '        return 0;',
                   '    }', '}'],
        "bash": ['set -euo pipefail', '', 'main() {', '  # fill in the numbered steps above', '  :', '}', '', 'main "$@"'],
        "yaml": ['# fill in the numbered steps above', 'name: sketch'],
        "toml": ['# fill in the numbered steps above'],
        "dockerfile": ['FROM python:3.12-slim', 'WORKDIR /app', 'COPY . .', '# fill in the numbered steps above',
                       'USER 1000', 'CMD ["python", "-m", "app"]'],
        "sql": ['-- fill in the numbered steps above', 'BEGIN;', 'COMMIT;'],
    }.get(lang, [f"{c} fill in the numbered steps above"])
    return f"```{lang}\n" + "\n".join(head + [""] + body) + "\n```"


def _tier_notes(tiers: Sequence[Any], field: str = "checklist", n: int = 1) -> list[str]:
    notes = []
    for t in tiers:
        items = list(_get(t, field) or [])[:n]
        for item in items:
            notes.append(f"*{md_escape(_get(t, 'name'))}*: {md_escape(item, 300)}")
    return notes


def guidance(route: Any, text: str, program: Any, tiers: Sequence[Any], *, snapshot: Any = None,
             facts: Sequence[str] = (), answer: str | None = None, pattern: Any = None) -> str:
    """A non-command reply from the catalogue guidance of ``program`` and ``tiers``, shaped by the route's
    type.  ``facts`` are live lines about the fleet (evidence); ``answer`` is a one-line answer already
    known (a question about a service's port, pid …); ``snapshot`` adds the status table where natural;
    ``pattern`` is an issue pattern the message describes (a debugging reply leads with it)."""
    typ = _get(route, "type") or "general_chat"
    ask = md_escape(text, 90) or "(empty message)"
    if program is None:
        return "I could not place that message. Type **help** to see what I can do."
    summary = md_escape(program.summary, 400)
    questions = [md_escape(q, 300) for q in program.questions]
    checklist = [md_escape(c, 300) for c in program.checklist]
    pitfalls = [md_escape(p, 300) for p in program.pitfalls]
    live = [f for f in facts if f]

    if typ == "debugging":
        if pattern is not None:
            causes = "; ".join(md_escape(c, 120) for c in list(_get(pattern, "causes") or [])[:4])
            cause = (f"It sounds like **{md_escape(_get(pattern, 'title'))}** ({_code(_get(pattern, 'id'))}): "
                     f"{md_escape(_get(pattern, 'explanation'), 300)}" + (f" Usual causes: {causes}." if causes else ""))
        else:
            cause = f"Not diagnosed yet. What usually goes wrong here: {' '.join(pitfalls[:2])}"
        out = [f"**Likely cause.** {cause}", "", "**Evidence.**"]
        out += [f"- {f}" for f in live] + [f"- {q}" for q in questions[: 3 if live else 4]]
        steps = ([md_escape(_get(pattern, "fix"), 300)] if pattern is not None else []) + checklist
        out += ["", "**Next step.**", _bullets(steps[:4], numbered=True)]
        notes = _tier_notes(tiers)
        if notes:
            out += ["", "**From the tiers.**", _bullets(notes)]
        return "\n".join(out)

    if typ == "analysis":
        out = [f"**{md_escape(program.name)}** — {summary}", ""]
        if snapshot is not None:
            out += [status_table(snapshot), ""]
        out += [f"- {f}" for f in live] + ([""] if live else [])
        out += ["| step | what to check |", "|---:|---|"] + [f"| {i} | {c} |" for i, c in enumerate(checklist[:5], 1)]
        out += ["", "**Questions to settle first.**", _bullets(questions[:3])]
        return "\n".join(out)

    if typ == "explanation":
        focus = tiers[0] if tiers else program
        example = list(_get(focus, "checklist") or []) or list(program.checklist)
        why = list(_get(focus, "pitfalls") or []) or list(program.pitfalls)
        out = [f"**Concept.** {md_escape(_get(focus, 'summary'), 400)}", "",
               f"**Why it matters.** Getting it wrong looks like this: {' '.join(md_escape(w, 300) for w in why[:2])}", "",
               f"**Example.** {md_escape(example[0], 300)}" if example else ""]
        more = [md_escape(q, 300) for q in list(_get(focus, "questions") or [])[:2]] + questions[:1]
        if more:
            out += ["", "**To go further, ask yourself.**", _bullets(more)]
        return "\n".join(out)

    if typ == "question_answering":
        first = answer or (f"**Short answer:** {md_escape(_sentences(program.summary), 300)}" if _get(route, "keywords")
                           else f"**Short answer:** I have no stored fact for “{ask}”; the closest guidance is "
                                f"{md_escape(program.name)}: {md_escape(_sentences(program.summary), 300)}")
        out = [first, ""]
        out += [f"- {f}" for f in live]
        out += ["**Worth checking.**", _bullets(checklist[:3])]
        return "\n".join(out)

    if typ == "code_generation":
        lang = _language(_get(program, "id"), text)
        sketch = _code_sketch(lang, " ".join(_CONTROL.sub(" ", text).split())[:100] or "the task", list(program.checklist[:5]))
        out = [f"A sketch for “{ask}”, following {md_escape(program.name)}: {summary}", "", sketch, "",
               "**Decide before filling it in.**", _bullets(questions[:3]), "", "**Pitfalls.**", _bullets(pitfalls)]
        return "\n".join(out)

    if typ == "architecture":
        out = [f"**Design.** {summary}", "", "**Decide first.**", _bullets(questions[:4]), "",
               "**Design checklist.**", _bullets(checklist[:5], numbered=True), "", "**Trade-offs to watch.**",
               _bullets(pitfalls)]
        notes = _tier_notes(tiers)
        if notes:
            out += ["", "**From the tiers.**", _bullets(notes)]
        return "\n".join(out)

    if typ == "optimization":
        out = [f"**Goal.** {summary}", ""]
        out += [f"- {f}" for f in live] + ([""] if live else [])
        out += ["**Measure first.**", _bullets(questions[:3]), "", "**Then.**", _bullets(checklist[:5], numbered=True),
                "", "**Avoid.**", _bullets(pitfalls)]
        return "\n".join(out)

    if typ == "testing":
        out = [f"**Approach.** {summary}", "", "**Test plan.**", _bullets(checklist[:6], task=True), "",
               "**Cover these questions.**", _bullets(questions[:3]), "", "**Traps.**", _bullets(pitfalls)]
        return "\n".join(out)

    if typ == "refactoring":
        out = [f"**Goal.** {summary}", "", "**Safe steps.**", _bullets(checklist[:6], numbered=True), "",
               "**Keep the behaviour the same.**", _bullets(pitfalls), "", "**Before you start.**",
               _bullets(questions[:3])]
        return "\n".join(out)

    # general_chat
    lowered = text.lower()
    if _THANKS.search(lowered):
        opener = "You're welcome."
    elif _BYE.search(lowered):
        opener = "Bye — Aurora keeps watching the fleet."
    elif _GREETING.search(lowered):
        opener = "Hello! I'm Aurora's dispatcher."
    elif not text.strip():
        opener = "That message was empty."
    else:
        opener = "I'm Aurora's dispatcher: I answer questions about the fleet and give engineering guidance."
    out = [opener]
    if snapshot is not None:
        out += ["", fleet_health_line(snapshot)]
    out += ["", "Try `status`, `incidents`, `why <service>` or ask a question; **help** lists every command."]
    return "\n".join(out)

